"""Executions, retry and logs on the real stack: a completed task's timeline,
a task failed at its process step (with the error in the timeline), `task
retry` of it once the failure is switched off, and the function logs of a task."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import FAILURE_RULES, uid, wait_for
from tmctl.cli.app import app

pytestmark = pytest.mark.integration

# The Lambdas cache the failure-injection rules this long (CONFIG_CACHE_SECONDS 5, plus a margin).
RULES_CACHE_SECONDS = 6.0
FUNCTIONS = {"task-api", "event-processor", "workflow-steps"}


def cli(env, *args: str):
    return CliRunner().invoke(app, ["--output", "json", *args], env=env.cli_env)


def json_of(result) -> dict | list:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def final_task(env, task_id: str, timeout: float = 30.0) -> dict:
    return wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") in {"COMPLETED", "FAILED"},
                    timeout=timeout)


def test_show_of_a_completed_task_has_its_steps_in_order(env):
    task_id = uid("exshow")
    assert env.api.create({"taskID": task_id, "title": "ship #release notes"}).status == 202
    assert final_task(env, task_id)["status"] == "COMPLETED"

    shown = json_of(cli(env, "executions", "show", task_id))

    assert shown["execution"]["status"] == "SUCCEEDED" and shown["execution"]["taskID"] == task_id
    assert shown["others"] == []
    steps = {s["name"]: s for s in shown["steps"]}
    names = [s["name"] for s in shown["steps"]]
    assert names.index("MarkProcessing") < names.index("RunSteps") < names.index("MarkCompleted")
    run = steps["RunSteps"]
    assert run["status"] == "SUCCEEDED" and run["result"].startswith("ok: valid · score"), run
    assert len(run["attempts"]) == 1 and run["seconds"] is not None
    assert [s["offset"] for s in shown["steps"]] == sorted(s["offset"] for s in shown["steps"])

    name = shown["execution"]["name"]
    listed = json_of(cli(env, "executions", "list", "--since", "10m", "--limit", "1000", "--status", "succeeded"))
    assert [(e["name"], e["taskID"]) for e in listed if e["name"] == name] == [(name, task_id)]

    history = json_of(cli(env, "executions", "history", name))
    assert history["events"][0]["type"] == "ExecutionStarted"
    assert history["events"][-1]["type"] == "ExecutionSucceeded"
    assert json.loads(history["events"][0]["executionStartedEventDetails"]["input"])["taskID"] == task_id


def test_a_task_failed_at_process_shows_the_error_and_retry_completes_it(env):
    task_id = uid("exretry")
    env.set_failure_rules([*FAILURE_RULES, {"at": "process", "match": "exretry-*"}])
    try:
        time.sleep(RULES_CACHE_SECONDS)
        assert env.api.create({"taskID": task_id, "title": "fail then retry"}).status == 202
        failed = final_task(env, task_id)
        assert failed["status"] == "FAILED", failed
    finally:
        env.set_failure_rules(FAILURE_RULES)

    # THEN the timeline says where and why
    shown = json_of(cli(env, "executions", "show", task_id))
    first = shown["execution"]["name"]
    assert shown["execution"]["status"] == "FAILED" and "failure injected" in shown["execution"]["cause"]
    process = next(s for s in shown["steps"] if s["name"] == "RunSteps")
    assert process["status"] == "FAILED" and "failure injected at step 'process'" in process["cause"]
    assert len(process["attempts"]) == 3  # the state machine's two retries
    assert shown["steps"][-1]["name"] == "TaskFailed" and shown["steps"][-1]["status"] == "FAILED"

    # WHEN it is retried once the failure is switched off
    time.sleep(RULES_CACHE_SECONDS)
    retried = json_of(cli(env, "task", "retry", task_id, "--wait"))

    # THEN a second, labelled execution completes it, and the task's history says so
    assert retried["action"] == "new-execution" and retried["previous"] == first
    assert retried["execution"] == f"{first}-retry1"
    assert retried["taskStatus"] == "COMPLETED" and retried["executionStatus"] == "SUCCEEDED"
    history = [(h["step"], h.get("detail")) for h in retried["task"]["history"]]
    at = history.index(("retried", first))
    assert history[at + 1] == ("started", f"{first}-retry1")
    assert [step for step, _ in history[at + 2:]] == ["validate", "enrich", "process"]

    executions = json_of(cli(env, "executions", "show", task_id))
    assert executions["execution"]["name"] == f"{first}-retry1" and executions["execution"]["status"] == "SUCCEEDED"
    assert executions["execution"]["retryOf"] == first
    assert [(o["name"], o["status"]) for o in executions["others"]] == [(first, "FAILED")]

    again = cli(env, "task", "retry", task_id)
    assert again.exit_code == 2 and again.stdout == ""
    assert "is COMPLETED: only a FAILED task can be retried" in again.stderr


def test_logs_filtered_by_a_task_show_its_lines_from_each_function(env):
    task_id = uid("exlogs")
    assert env.api.create({"taskID": task_id, "title": "log me"}).status == 202
    assert final_task(env, task_id)["status"] == "COMPLETED"

    def lines() -> list[dict]:
        return json_of(cli(env, "logs", "--filter", task_id, "--since", "10m"))

    found = wait_for(lines, lambda ls: {line["function"] for line in ls} >= FUNCTIONS, timeout=15)

    assert {line["function"] for line in found} == FUNCTIONS
    assert all(task_id in line["message"] for line in found)
    assert [line["timestamp"] for line in found] == sorted(line["timestamp"] for line in found)
    steps = json_of(cli(env, "logs", "workflow-steps", "--filter", task_id, "--since", "10m"))
    assert steps and {line["function"] for line in steps} == {"workflow-steps"}
    assert len(steps) == len([line for line in found if line["function"] == "workflow-steps"])
