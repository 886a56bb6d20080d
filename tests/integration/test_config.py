"""`tmctl config` against the running stack: a switch set with the CLI is
followed by the deployed functions within their cache time, no redeploy."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import wait_for
from tmctl.cli.app import app
from tmctl.core.api import TaskApi
from tmctl.core.config import LOCAL_CACHE_SECONDS as CACHE_SECONDS

pytestmark = pytest.mark.integration


def cli(env, *args: str):
    return CliRunner().invoke(app, ["--output", "json", *args], env=env.cli_env)


def test_list_shows_the_stacks_configuration(env):
    result = cli(env, "config", "list")

    assert result.exit_code == 0, result.stderr
    keys = {s["key"]: s for s in json.loads(result.stdout)}
    assert {"failure-injection", "intake", "log-level", "retry-base-seconds"} <= set(keys)
    assert keys["intake"]["allowed_pattern"] == "^(open|paused)$"


def test_pausing_intake_refuses_new_tasks_until_it_is_opened_again(env):
    plain = TaskApi(env.stack.api_url, max_attempts=1)  # a client that does not retry the 503
    ids = iter(f"intake-{uuid.uuid4().hex[:8]}-{n}" for n in range(1000))
    task_id = ""

    def post_new():
        nonlocal task_id
        task_id = next(ids)  # a fresh task each time: one stored before the switch took is no answer
        return plain.create({"taskID": task_id})

    try:
        assert cli(env, "config", "set", "intake", "paused").exit_code == 0

        refused = wait_for(post_new, lambda r: r.status == 503, timeout=CACHE_SECONDS + 10, interval=0.5)
        assert (refused.status, refused.body.get("error")) == (503, "INTAKE_PAUSED"), refused
        # Reads go on, and the refused task was never stored.
        assert plain.get(task_id).status == 404
    finally:
        assert cli(env, "config", "set", "intake", "open").exit_code == 0

    accepted = wait_for(lambda: plain.create({"taskID": task_id}), lambda r: r.status == 202,
                        timeout=CACHE_SECONDS + 10, interval=0.5)
    assert accepted.status == 202
    done = wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") == "COMPLETED")
    assert done["status"] == "COMPLETED"


def test_an_invalid_value_never_reaches_the_stack(env):
    result = cli(env, "config", "set", "log-level", "LOUD")

    assert result.exit_code != 0
    assert "LOUD" in result.stderr
    assert env.clients.ssm.get_parameter(Name=f"/taskmanager/{env.target.stage}/log-level")["Parameter"]["Value"] \
        == "INFO"
