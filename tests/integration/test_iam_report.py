"""`tmctl iam report` on the real stack: after a task has flowed, each role's
grants stand beside the calls the emulator's CloudTrail saw its workers make.

MiniStack records allowed HTTP calls (CLOUDTRAIL_RECORDING, switched on here at
run time through its admin endpoint) under the worker's session key; calls it
makes in-process (the event source mapping's polling, a state machine's tasks,
function logs) are never recorded, and the report must say "not observable"
for those rather than "unused"."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.core.api import new_task_id, ok, wait_final
from tmctl.core.iam_report import enable_ministack_recording
from tmctl.core.local.emulator import probe

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flowed(env):
    """Recording on, one task through the whole pipeline; the window starts here,
    so other tests' traffic in the same session cannot count."""
    engine = probe(env.target.endpoint_url)
    if engine is None or engine.name != "ministack":
        pytest.skip(f"per-role CloudTrail needs MiniStack; {engine.name if engine else '?'} answers")
    assert enable_ministack_recording(env.target.endpoint_url)
    # No look-back: the module before this one on the same worker (pytest-xdist) may have listed tasks
    # a moment ago, and its Scan would count. The emulator stamps events with this machine's clock.
    since = datetime.now(UTC)
    task_id = new_task_id()
    ok(env.api.create({"taskID": task_id, "title": "least privilege, measured"}))
    assert wait_final(env.api, task_id)["status"] == "COMPLETED"
    time.sleep(0.2)  # the last step's calls are recorded after it answers
    return env, since


def run_report(env, since: datetime):
    result = CliRunner().invoke(app, ["iam", "report", "--since", since.isoformat(), "--output", "json"],
                                env={**os.environ, **env.cli_env})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def actions(report: dict, role: str) -> dict[str, dict]:
    (found,) = [r for r in report["roles"] if r["role"] == role]
    return {a["action"]: a for a in found["actions"]}


def test_task_api_calls_are_seen_and_unused_grants_flagged(flowed):
    # GIVEN one task posted and completed WHEN the report is read as JSON
    env, since = flowed
    report = run_report(env, since)
    api = actions(report, "TaskApiRole")
    # THEN the Task API's own writes are counted against its role
    assert api["dynamodb:PutItem"]["used"] >= 1 and api["dynamodb:PutItem"]["flag"] == "used"
    assert api["sqs:SendMessage"]["used"] >= 1 and api["sqs:SendMessage"]["flag"] == "used"
    # AND what nothing called in the window (no list request was made) is flagged unused
    assert api["dynamodb:Query"]["flag"] == "unused" and api["dynamodb:Query"]["used"] == 0
    assert api["dynamodb:Scan"]["flag"] == "unused"
    # AND the logs grant, exercised by the Lambda service itself, is not called unused
    assert {a["flag"] for name, a in api.items() if name.startswith("logs:")} == {"unobservable"}
    # AND every call seen was granted (IAM enforcement would have refused it otherwise)
    assert not [a for r in report["roles"] for a in r["actions"] if a["flag"] == "not-granted"]


def test_processor_and_state_machine_limits_are_stated(flowed):
    # GIVEN the same window WHEN the report is read
    env, since = flowed
    report = run_report(env, since)
    processor = actions(report, "EventProcessorRole")
    # THEN the processor's StartExecution is counted under its own role
    assert processor["states:StartExecution"]["flag"] == "used"
    # AND the polling the event source mapping does in-process is "not observable", never "unused"
    assert processor["sqs:ReceiveMessage"]["flag"] == "unobservable"
    # AND the state machine's role, whose tasks the emulator runs under no role, is all "not observable"
    assert {a["flag"] for a in actions(report, "StateMachineRole").values()} == {"unobservable"}
    assert report["backend"] == "ministack"
    # AND calls of role sessions it cannot map (another stage's functions in the same
    # emulator, a changed key derivation) are never silent: counted, and said in a note.
    # (That this stack's own workers are mapped is what the "used" flags above prove.)
    if report["unattributed"]:
        assert any("no role of this stack maps to" in n for n in report["notes"]), report["notes"]


def test_table_output_per_role(flowed):
    # GIVEN the same window WHEN the report is asked for as a table THEN one table per role, exit 0
    env, since = flowed
    result = CliRunner().invoke(app, ["iam", "report", "--since", since.isoformat(), "--output", "table"],
                                env={**os.environ, **env.cli_env})
    assert result.exit_code == 0, result.output
    for role in ("TaskApiRole", "EventProcessorRole", "WorkflowStepsRole", "StateMachineRole"):
        assert role in result.stdout
    assert "UNUSED" in result.stdout and "dynamodb:PutItem" in result.stdout
