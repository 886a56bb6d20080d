"""`up`'s engine check against the real engine: the session's embedded emulator
has everything the stack needs, so the check passes with no unknown and `up`/`diff`
go on; an engine lacking a service (simulated by its health) is refused before
any bucket or change set exists."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.core import preflight
from tmctl.core.bundle import project_dir
from tmctl.core.deploy import TEMPLATE_FILE
from tmctl.core.errors import ExitCode
from tmctl.core.local import emulator
from tmctl.core.target import Clients

pytestmark = pytest.mark.integration


def test_the_check_matches_what_the_engine_is(engine_target, engine_caps):
    target, _ = engine_target
    template = project_dir() / TEMPLATE_FILE
    if "apigatewayv2" in engine_caps.lacks:  # LocalStack's free plan, or on the host
        # Unasked, a template with the FrontDoor choice gets the REST front door there: insist on the HTTP API.
        with pytest.raises(preflight.EngineLacks, match="HTTP API"):
            preflight.require(Clients(target), target, template, front_door="http")
        return
    result = preflight.require(Clients(target), target, template)
    assert result is not None and result.ok and not result.unknown
    assert (result.engine, result.version) == (engine_caps.engine, engine_caps.version)
    assert {"apigatewayv2", "lambda", "dynamodb", "sqs", "stepfunctions", "ssm", "iam"} <= set(result.needed)


@pytest.mark.parametrize("command", ["diff", "up"])
def test_up_and_diff_go_through_the_check_where_the_engine_has_everything(env, command):
    result = CliRunner().invoke(app, ["--output", "json", command, "--param", "LogRetentionDays=1",
                                      "--front-door", "HTTP"], env=env.cli_env)
    assert result.exit_code == 0, result.stderr
    assert "lacks" not in result.stderr
    # An engine with the HTTP API keeps it (any case accepted), and says so
    assert json.loads(result.stdout)["frontDoor"] == "http"
    assert "REST front door" not in result.stderr


def test_an_engine_lacking_a_service_is_refused_before_anything_is_created(engine_env, monkeypatch):
    # GIVEN the real engine, whose health (as tmctl reads it) lists no Step Functions
    real = emulator.probe(engine_env.target.endpoint_url)
    assert real is not None
    services = {k: v for k, v in (real.health.get("services") or {}).items() if k not in {"stepfunctions", "states"}}
    lacking = dataclasses.replace(real, health={**real.health, "services": services or {"sqs": "available"}})
    monkeypatch.setattr(emulator, "probe", lambda *_a, **_k: lacking)
    s3, cfn = engine_env.clients.s3, engine_env.clients.cloudformation
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    stage = "nopreflight"

    # WHEN `up` runs for a stage that does not exist yet
    result = CliRunner().invoke(app, ["up", "--stage", stage], env=engine_env.cli_env)

    # THEN one error line naming Step Functions and the engine to use, exit 2, and nothing new on the engine
    assert result.exit_code == ExitCode.USAGE, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("tmctl: error:")]
    assert len(errors) == 1 and "Step Functions" in errors[0] and "tmctl up --local" in errors[0]
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == buckets
    names = {s["StackName"] for s in cfn.list_stacks()["StackSummaries"]}
    assert f"taskmanager-{stage}" not in names
