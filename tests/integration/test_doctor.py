"""`tmctl doctor` against the real engine: the session's embedded emulator (its
own 127.0.0.1 port, IAM enforcement on), or whatever TMCTL_ENDPOINT_URL points
at — then the findings must match what the engine is (LocalStack on the host:
no HTTP API, no IAM enforcement)."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import STAGE, wait_for
from tmctl.cli.app import app
from tmctl.core.errors import ExitCode

pytestmark = pytest.mark.integration


def doctor(target, stage: str):
    env = {"TMCTL_ENDPOINT_URL": target.endpoint_url, "TMCTL_STAGE": stage, "TMCTL_STATE_DIR": str(target.state_dir),
           "NO_COLOR": "1", "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["doctor", "--no-aws", "-o", "json"], env=env)
    return result, {f["check"]: f for f in json.loads(result.stdout)["findings"]}


def test_doctor_names_the_engine_its_version_http_api_and_iam_enforcement(engine_target, engine_caps):
    target, _ = engine_target
    result, found = doctor(target, "nodoctorstack")  # a stage with no stack: engine findings only

    assert found["engine"]["level"] == "ok"
    assert (found["engine"]["data"]["engine"], found["engine"]["data"]["version"]) == (
        engine_caps.engine, engine_caps.version)
    has_http_api = "apigatewayv2" not in engine_caps.lacks
    assert found["http-api"]["data"]["available"] is has_http_api
    assert result.exit_code == (0 if has_http_api else ExitCode.CHECK_FAILED), result.stderr
    assert found["stack"]["level"] == "info" and "event-latency" not in found
    if engine_caps.engine == "ministack":  # tmctl starts it with AUTH=true
        assert has_http_api and found["iam"]["data"]["enforced"] is True and found["iam"]["level"] == "ok"
    if engine_caps.engine == "localstack" and engine_caps.lacks.get("apigatewayv2"):  # the free tier, or on the host
        assert "free tier" in found["http-api"]["message"] and found["iam"]["data"]["enforced"] is False


def test_doctor_sees_the_mapping_enabled_and_the_latency_of_a_real_event(env):
    task_id = f"doctor-{uuid.uuid4().hex[:8]}"
    assert env.api.create({"taskID": task_id, "title": "measured by doctor"}).status == 202
    # The workflow has started once the task leaves QUEUED.
    wait_for(lambda: env.api.get(task_id).body.get("status"), lambda s: s not in {None, "PENDING", "QUEUED"})

    result, found = doctor(env.target, STAGE)

    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert found["event-source-mapping"]["level"] == "ok"
    assert all(m["state"] == "Enabled" for m in found["event-source-mapping"]["data"]["mappings"])
    latency = found["event-latency"]
    assert latency["level"] == "ok" and latency["data"]["samples"] >= 1
    assert 0 <= latency["data"]["p50Seconds"] < 5, latency
