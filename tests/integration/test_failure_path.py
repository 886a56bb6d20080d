"""The failure path as a user lives it, through the CLI on the real stack: a
poison task goes to the DLQ and says DEAD_LETTERED, is redriven once the cause
is gone and completes with the redrive on its history; `task trace` explains a
completed, a failed and a dead-lettered task; `task reconcile` and `status`
see what they should."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import FAILURE_RULES, uid, wait_for
from tmctl.cli.app import app

pytestmark = pytest.mark.integration

CONFIG_CACHE_SECONDS = 5  # the Lambdas cache the failure switch this long (taskcore.config)


def cli(env, *args: str, output: str = "json"):
    # Global options after the subcommand, as aws CLI users type them.
    return CliRunner().invoke(app, [*args, "--output", output], env=env.cli_env)


def final_task(env, task_id: str, timeout: float = 30.0) -> dict:
    return wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") in {"COMPLETED", "FAILED"},
                    timeout=timeout)


def dead_lettered(env, task_id: str) -> dict:
    return wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") == "DEAD_LETTERED",
                    timeout=30, interval=0.1)


def in_dlq(env, task_id: str) -> bool:
    peek = cli(env, "dlq", "peek", "-n", "100")
    assert peek.exit_code == 0, peek.output
    return task_id in {m["task_id"] for m in json.loads(peek.stdout)["messages"]}


@pytest.fixture
def switch_restored(env):
    yield
    env.set_failure_rules(FAILURE_RULES)


def test_a_dead_lettered_task_is_redriven_after_the_fix_and_completes(env, switch_restored):
    # GIVEN a task whose event the processor keeps failing (this test's own rule)
    task_id = uid("sick")
    env.set_failure_rules([*FAILURE_RULES, {"at": "processor", "match": task_id}])
    time.sleep(CONFIG_CACHE_SECONDS + 0.5)
    assert env.api.create({"taskID": task_id, "title": "sick at first"}).status == 202

    # THEN it is dead-lettered: the task says so, its message sits in the DLQ, `task get` shows it
    task = dead_lettered(env, task_id)
    assert task["status"] == "DEAD_LETTERED" and task["error"]["code"] == "InjectedFailure"
    assert wait_for(lambda: in_dlq(env, task_id), bool, timeout=10)
    got = cli(env, "task", "get", task_id)
    assert got.exit_code == 0 and json.loads(got.stdout)["status"] == "DEAD_LETTERED"

    # WHEN the cause is fixed and the DLQ redriven (just this task; --yes: no terminal here)
    env.set_failure_rules(FAILURE_RULES)
    time.sleep(CONFIG_CACHE_SECONDS + 0.5)
    redrive = cli(env, "dlq", "redrive", "--task-id", task_id, "--yes")
    assert redrive.exit_code == 0, redrive.output
    assert json.loads(redrive.stdout)["moved"] == 1

    # THEN it runs to COMPLETED, and its history tells the whole story
    done = final_task(env, task_id)
    assert done["status"] == "COMPLETED", done
    assert "error" not in done
    assert [h["step"] for h in done["history"]] == [
        "created", "queued", "dead-lettered", "redriven", "started", "validate", "enrich", "process"]
    assert not in_dlq(env, task_id)


def test_trace_explains_a_completed_task(env):
    task_id = uid("fine")
    assert env.api.create({"taskID": task_id, "title": "all good"}).status == 202
    assert final_task(env, task_id)["status"] == "COMPLETED"

    result = cli(env, "task", "trace", task_id)

    assert result.exit_code == 0, result.output
    t = json.loads(result.stdout)
    assert t["task"]["status"] == "COMPLETED"
    assert t["message"]["where"] == "consumed"
    [ex] = t["executions"]
    assert ex["status"] == "SUCCEEDED"
    states = [s["name"] for s in ex["steps"]]
    assert {"MarkProcessing", "RunSteps", "MarkCompleted"} <= set(states)
    assert [h["step"] for h in t["task"]["history"]][-3:] == ["validate", "enrich", "process"]
    assert all(s["seconds"] is not None and s["seconds"] >= 0 for s in ex["steps"])
    functions = {line["function"] for line in t["logs"]}
    assert {env.stack.functions[f] for f in ("TaskApi", "EventProcessor", "WorkflowSteps")} <= functions
    assert all(task_id in line["message"] for line in t["logs"])
    assert t["nextStep"] is None


def test_trace_explains_a_failed_task(env):
    task_id = uid("boom")  # the session's rule fails boom-* at its process step
    assert env.api.create({"taskID": task_id}).status == 202
    assert final_task(env, task_id)["status"] == "FAILED"

    t = json.loads(cli(env, "task", "trace", task_id).stdout)

    [ex] = t["executions"]
    assert ex["status"] == "FAILED"
    process = next(s for s in ex["steps"] if s["name"] == "RunSteps")
    assert process["status"] == "FAILED" and len(process["attempts"]) == 3  # tried, retried twice, caught
    assert "failure injected" in (process["cause"] or "") + (process["error"] or "")
    assert "tmctl task retry" in t["nextStep"]


def test_trace_explains_a_dead_lettered_task_and_a_table_on_a_terminal_says_so_too(env):
    task_id = uid("poison")  # the session's rule fails poison-* in the processor
    assert env.api.create({"taskID": task_id}).status == 202
    dead_lettered(env, task_id)
    wait_for(lambda: in_dlq(env, task_id), bool, timeout=10)

    t = json.loads(cli(env, "task", "trace", task_id).stdout)

    assert t["task"]["status"] == "DEAD_LETTERED"
    assert t["message"]["where"] == "DLQ"
    assert t["message"]["messages"][0]["task_id"] == task_id
    assert t["executions"] == []
    warnings = [line["message"] for line in t["logs"] if "going to the DLQ" in line["message"]]
    assert len(warnings) == 1
    assert f"dlq redrive --task-id {task_id}" in t["nextStep"]
    table = cli(env, "task", "trace", task_id, output="table")
    assert table.exit_code == 0 and "DEAD_LETTERED" in table.stdout and "DLQ" in table.stdout
    # Leave the DLQ as the other tests expect it.
    purge = cli(env, "dlq", "redrive", "--task-id", task_id, "--to", env.stack.dlq_url + "-nowhere", "--yes")
    assert purge.exit_code != 0  # no such destination: refused, nothing moved or lost
    assert in_dlq(env, task_id)
    env.clients.sqs.purge_queue(QueueUrl=env.stack.dlq_url)


def test_trace_of_an_unknown_task_is_not_found(env):
    result = cli(env, "task", "trace", "no-such-task")
    assert result.exit_code == 3 and result.stdout == "" and result.stderr.count("\n") == 1


def test_status_counts_tasks_by_status_and_options_work_after_the_subcommand(env):
    result = CliRunner().invoke(app, ["status", "--output", "json", "--stage", env.target.stage],
                                env={**env.cli_env, "TMCTL_STAGE": "elsewhere"})
    assert result.exit_code in {0, 5}, result.output
    s = json.loads(result.stdout)
    assert s["stack"] == env.stack.name
    assert set(s["tasks"]) == {"PENDING", "QUEUED", "DEAD_LETTERED", "PROCESSING", "COMPLETED", "FAILED"}
    assert s["tasks"]["COMPLETED"] >= 1
