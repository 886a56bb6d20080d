"""The embedded emulator's state across a restart: what the engine is started
with, the clean-stop marker and crash detection, the refusal of a newer
engine's state before anything loads, the in-flight messages read from the
engine's own file format, and the executions a restart ended."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from tmctl.core import reconcile
from tmctl.core.local import emulator, persist
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit


@pytest.fixture
def target(tmp_path):
    target = dataclasses.replace(resolve_target(endpoint_url="http://127.0.0.1:45998", env={}), state_dir=tmp_path)
    emulator.workdir(target).mkdir(parents=True)
    return target


# ------------------------------------------------------------------ the engine's environment


def test_persistence_is_on_by_default_with_everything_under_the_work_dir(target, monkeypatch):
    monkeypatch.delenv("TMCTL_PERSIST", raising=False)
    wd = emulator.workdir(target)
    env = emulator.emulator_env(target, wd)
    assert env["PERSIST_STATE"] == "1" and env["S3_PERSIST"] == "1"
    assert Path(env["STATE_DIR"]) == wd / "state" and Path(env["S3_DATA_DIR"]) == wd / "s3-data"


def test_tmctl_persist_0_turns_it_off(target, monkeypatch):
    monkeypatch.setenv("TMCTL_PERSIST", "0")
    env = emulator.emulator_env(target, emulator.workdir(target))
    assert env["PERSIST_STATE"] == "0" and env["S3_PERSIST"] == "0" and "S3_DATA_DIR" not in env


# ------------------------------------------------------------------ clean stop and crash

SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"
DEAF = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(60)")


def _spawn(code: str, *argv: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], start_new_session=True, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_a_graceful_stop_is_marked_clean_and_the_state_kept(target):
    wd = emulator.workdir(target)
    (wd / "state").mkdir()
    (wd / "state" / "sqs.json").write_text('{"__ministack_format__": 2, "payload": {}}')
    proc = _spawn(SLEEPER, "ministack")
    try:
        emulator.record_process(target, proc.pid)
        assert emulator.stop(target, timeout=5) == proc.pid
    finally:
        proc.stdout.close()
    marker = persist.clean_stop(wd)
    assert marker is not None and marker["pid"] == proc.pid and marker["savedAt"]
    assert (wd / "state" / "sqs.json").exists()  # stop never removes the saved state


def test_an_engine_killed_after_the_timeout_is_not_marked_clean(target):
    wd = emulator.workdir(target)
    proc = _spawn(DEAF, "ministack")  # ignores SIGTERM: it would never save
    try:
        emulator.record_process(target, proc.pid)
        assert emulator.stop(target, timeout=0.3) == proc.pid
        proc.wait(5)
    finally:
        proc.stdout.close()
    assert persist.clean_stop(wd) is None


def test_a_record_without_a_clean_stop_is_a_crash_and_the_marker_is_used_once(target):
    wd = emulator.workdir(target)
    (wd / emulator.RECORD_FILE).write_text(json.dumps({"pid": 999999, "started": "x"}))  # process gone
    assert emulator._before_spawn(target, wd).crashed
    persist.mark_clean_stop(wd, 999999)
    restored = emulator._before_spawn(target, wd)
    assert not restored.crashed
    assert persist.clean_stop(wd) is None  # the next engine must stop cleanly again to be trusted


def test_a_first_start_is_no_crash(target):
    assert not emulator._before_spawn(target, emulator.workdir(target)).crashed


def test_saved_state_without_a_clean_stop_is_a_crash_even_without_a_record(target):
    # `local stop` after a crash drops the dead engine's record: the missing marker still tells.
    wd = emulator.workdir(target)
    (wd / "state").mkdir()
    (wd / "state" / "ssm.json").write_text('{"__ministack_format__": 2, "payload": {}}')
    restored = emulator._before_spawn(target, wd)
    assert restored.crashed and restored.saved_at is not None


# ------------------------------------------------------------------ a newer engine's state


def test_the_installed_engine_reads_its_own_format():
    from ministack.core import persistence

    assert persist.supported_format("sqs") == persistence._state_format_version("sqs")
    assert persist.supported_format("sns") == persistence._state_format_version("sns")


def test_state_from_a_newer_engine_is_refused_before_the_engine_starts(target, monkeypatch):
    wd = emulator.workdir(target)
    (wd / "state").mkdir()
    (wd / "state" / "dynamodb.json").write_text('{"__ministack_format__": 2, "payload": {}}')
    (wd / "state" / "sqs.json").write_text('{"__ministack_format__": 99, "payload": {}}')
    monkeypatch.setattr(emulator, "probe", lambda *a, **k: None)
    monkeypatch.setattr(emulator, "_spawn", lambda *a, **k: pytest.fail("an engine started on newer state"))
    with pytest.raises(persist.NewerStateError) as err:
        emulator.launch(target)
    assert "sqs.json v99" in err.value.message and "tmctl local reset" in err.value.fix
    assert "--fresh" in err.value.fix


def test_fresh_removes_the_newer_state_and_starts(target, monkeypatch):
    wd = emulator.workdir(target)
    (wd / "state").mkdir()
    (wd / "state" / "sqs.json").write_text('{"__ministack_format__": 99, "payload": {}}')
    restored = emulator._before_spawn(target, wd, fresh=True)
    assert restored.saved_at is None and persist.state_files(wd) == []


def test_own_and_legacy_formats_pass(target):
    wd = emulator.workdir(target)
    (wd / "state").mkdir()
    (wd / "state" / "sqs.json").write_text('{"__ministack_format__": 2, "payload": {}}')
    (wd / "state" / "old.json").write_text('{"queues": {}}')  # unwrapped: an older engine's, it migrates
    persist.check_versions(wd)


# ------------------------------------------------------------------ in-flight messages


def _saved_sqs(wd: Path, monkeypatch, messages: list[dict]) -> None:
    """sqs.json written by MiniStack's own persistence code, as at a shutdown."""
    from ministack.core import persistence
    from ministack.core.responses import AccountRegionScopedDict

    monkeypatch.setattr(persistence, "PERSIST_STATE", True)
    monkeypatch.setattr(persistence, "STATE_DIR", str(wd / "state"))
    queues = AccountRegionScopedDict()
    queues._data[("000000000000", "us-east-1", "http://127.0.0.1:4566/000000000000/q")] = {
        "name": "q", "messages": messages, "attributes": {}}
    persistence.save_state("sqs", {"queues": queues, "queue_name_to_url": {}})


def test_only_received_messages_hidden_past_the_save_are_in_flight(target, monkeypatch):
    wd = emulator.workdir(target)
    now = time.time()
    _saved_sqs(wd, monkeypatch, [
        {"id": "a", "receipt_handle": "rh-a", "receive_count": 1, "visible_at": now + 300},  # in flight
        {"id": "b", "receipt_handle": None, "receive_count": 0, "visible_at": now},  # waiting
        {"id": "c", "receipt_handle": None, "receive_count": 0, "visible_at": now + 300},  # delayed, never received
        {"id": "d", "receipt_handle": "rh-d", "receive_count": 2, "visible_at": now - 5},  # visible again
    ])
    assert persist.in_flight(wd, saved_at=now).by_queue == {"q": ["rh-a"]}


def test_in_flight_messages_are_released_by_their_receipt_handles():
    sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    handles = [f"rh-{i}" for i in range(12)]
    with Stubber(sqs) as stub:
        stub.add_response("get_queue_url", {"QueueUrl": "http://h/000000000000/q"}, {"QueueName": "q"})
        for chunk in (handles[:10], handles[10:]):
            entries = [{"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0} for n, h in enumerate(chunk)]
            stub.add_response("change_message_visibility_batch",
                              {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []},
                              {"QueueUrl": "http://h/000000000000/q", "Entries": entries})
        assert persist.release_in_flight(sqs, persist.InFlight({"q": handles})) == 12


# ------------------------------------------------------------------ executions a restart ended

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:sm"


def _ex(name: str, status: str, start: float, **extra) -> dict:
    return {"executionArn": f"{ARN.replace('stateMachine', 'execution')}:{name}", "stateMachineArn": ARN,
            "name": name, "status": status, "startDate": dt.datetime.fromtimestamp(start, dt.UTC), **extra}


def _put(stack, task_id: str, status: str) -> None:
    stack.put_item({"taskID": task_id, "title": task_id, "priority": "MEDIUM", "status": status,
                    "createdAt": "2026-03-10T11:00:00.000Z", "updatedAt": "2026-03-10T11:00:00.000Z",
                    "history": [{"step": "started", "outcome": "ok", "at": "2026-03-10T11:00:01.000Z",
                                 "detail": f"{task_id}-m1"}]})


class _Info:
    def __init__(self, stack):
        self.table, self.state_machine_arn = stack.table, ARN


def test_service_restart_failures_of_unfinished_tasks_are_found(stack):
    # GIVEN a restart-ended execution of a PROCESSING task, one of a task retried since,
    # one of a task that completed anyway, and an ordinary failure
    for task_id, status in (("hung", "PROCESSING"), ("retried", "PROCESSING"), ("done", "COMPLETED"),
                            ("plain", "PROCESSING")):
        _put(stack, task_id, status)
    sfn = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    listed = [_ex("retried-m1-retry1", "RUNNING", 50), _ex("hung-m1", "FAILED", 40), _ex("retried-m1", "FAILED", 30),
              _ex("done-m1", "FAILED", 20), _ex("plain-m1", "FAILED", 10)]
    restart = {"error": "States.ServiceRestart", "cause": "Execution was running when service restarted",
               "stopDate": dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC), "input": "{}"}
    with Stubber(sfn) as stub:
        stub.add_response("list_executions", {"executions": listed}, {"stateMachineArn": ARN})
        stub.add_response("describe_execution", _ex("hung-m1", "FAILED", 40, **restart),
                          {"executionArn": listed[1]["executionArn"]})
        stub.add_response("describe_execution", _ex("done-m1", "FAILED", 20, **restart),
                          {"executionArn": listed[3]["executionArn"]})
        stub.add_response("describe_execution", _ex("plain-m1", "FAILED", 10, error="Runtime.HandlerError"),
                          {"executionArn": listed[4]["executionArn"]})
        found = reconcile.find_service_restarts(sfn, stack.ddb, _Info(stack))
        stub.assert_no_pending_responses()
    # THEN only the task nothing else will move on
    assert [(t.taskID, t.status, t.execution) for t in found] == [("hung", "PROCESSING", "hung-m1")]


def test_an_interrupted_task_is_marked_failed_once_then_retried_as_a_labelled_execution(stack, monkeypatch):
    _put(stack, "hung", "PROCESSING")
    task = reconcile.Interrupted("hung", "PROCESSING", "hung-m1", "")
    assert reconcile.mark_interrupted(stack.ddb, _Info(stack), task)
    item = stack.get_item("hung")
    assert item["status"] == "FAILED" and item["error"]["code"] == "States.ServiceRestart"
    assert item["history"][-1]["detail"] == "States.ServiceRestart"
    assert not reconcile.mark_interrupted(stack.ddb, _Info(stack), task)  # it moved on: not twice

    _put(stack, "hung2", "PROCESSING")
    monkeypatch.setattr(reconcile, "find_service_restarts",
                        lambda *a, **k: [reconcile.Interrupted("hung2", "PROCESSING", "hung2-m1", "")])
    started = []
    import tmctl.core.executions as executions

    monkeypatch.setattr(executions, "retry_task", lambda sfn, ddb, stack, task_id, **k: started.append(task_id)
                        or type("R", (), {"execution_name": f"{task_id}-m1-retry1"})())
    done = reconcile.rerun_service_restarts(None, stack.ddb, _Info(stack))
    assert started == ["hung2"] and done[0].result == "started hung2-m1-retry1"
    assert reconcile.rerun_service_restarts(None, stack.ddb, _Info(stack), dry_run=True)[0].result == "would re-run"


def test_an_exited_engine_whose_parent_has_not_reaped_it_counts_as_stopped(target):
    # `tmctl local stop` run from another process than the engine's parent sees a zombie:
    # it has exited (and saved); waiting out the timeout for it would mark the stop unclean.
    if not (emulator.PROC / "self" / "stat").exists():
        pytest.skip("no /proc on this system")
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'pass']); "
        "print(p.pid, flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 5
        while (emulator.PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not emulator._alive(pid)
    finally:
        parent.kill()
        parent.wait(5)
        parent.stdout.close()


# ------------------------------------------------------------------ the commands

CLI_ENV = {"TMCTL_ENDPOINT_URL": "http://127.0.0.1:9", "TMCTL_LOCAL": "", "NO_COLOR": "1", "COLUMNS": "200"}


def _saved_dir(tmp_path: Path) -> Path:
    wd = tmp_path / "emulator-9"
    (wd / "state" / "lambda-blobs").mkdir(parents=True)
    (wd / "state" / "dynamodb.json").write_text('{"__ministack_format__": 2, "payload": {}}')
    (wd / "s3-data" / "000000000000").mkdir(parents=True)
    return wd


@pytest.fixture
def nothing_answers(monkeypatch):
    from tmctl.core.local import localstack

    monkeypatch.setattr(emulator, "probe", lambda *a, **k: None)
    monkeypatch.setattr(localstack, "client_if_available", lambda: None)


def test_local_reset_asks_and_with_yes_removes_every_saved_thing(tmp_path, nothing_answers):
    from typer.testing import CliRunner

    from tmctl.cli.app import app

    wd = _saved_dir(tmp_path)
    env = {**CLI_ENV, "TMCTL_STATE_DIR": str(tmp_path)}
    asked = CliRunner().invoke(app, ["local", "reset"], env=env)
    assert asked.exit_code == 2 and "--yes" in asked.stderr and persist.state_files(wd)  # nothing removed
    done = CliRunner().invoke(app, ["local", "reset", "--yes"], env=env)
    assert done.exit_code == 0, done.stderr
    assert persist.state_files(wd) == [] and not (wd / "s3-data").exists()
    assert not (wd / "state" / "lambda-blobs").exists()


def test_local_status_says_where_the_state_lives_and_when_it_was_saved(tmp_path, nothing_answers):
    from typer.testing import CliRunner

    from tmctl.cli.app import app

    wd = _saved_dir(tmp_path)
    os.utime(wd / "state" / "dynamodb.json", (1_700_000_000, 1_700_000_000))
    env = {**CLI_ENV, "TMCTL_STATE_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["local", "status", "-o", "json"], env=env)
    assert result.exit_code == 4  # nothing answers on port 9
    data = json.loads(result.stdout)
    assert data["stateDir"] == str(wd / "state") and data["persist"] is True
    assert data["stateSavedAt"] == "2023-11-14T22:13:20+00:00"


def test_the_engines_own_refusal_is_read_from_its_log_after_the_offset(tmp_path):
    log = tmp_path / "ministack.log"
    old = ("2026-12-04 20:00:00 ERROR [persistence] Persistence: sqs state is format v9 but this MiniStack only "
           "understands v2 — refusing to load (downgrade not supported)\n")
    log.write_text(old)
    assert persist.refusals(log, 0) == ["sqs state is format v9 but this MiniStack only understands v2 — "
                                        "refusing to load (downgrade not supported)"]
    assert persist.refusals(log, len(old.encode())) == []  # an earlier engine's line is not this one's
    assert persist.refusals(tmp_path / "missing.log") == []


def test_after_a_start_only_failures_since_the_start_are_described(stack):
    # Every business failure on record would otherwise cost a DescribeExecution at each start.
    _put(stack, "old", "PROCESSING")
    _put(stack, "hung", "PROCESSING")
    since = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
    sfn = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    listed = [_ex("hung-m1", "FAILED", 40, stopDate=since + dt.timedelta(seconds=2)),
              _ex("old-m1", "FAILED", 10, stopDate=since - dt.timedelta(days=1))]
    with Stubber(sfn) as stub:
        stub.add_response("list_executions", {"executions": listed}, {"stateMachineArn": ARN})
        stub.add_response("describe_execution", _ex("hung-m1", "FAILED", 40, error="States.ServiceRestart",
                                                    stopDate=since + dt.timedelta(seconds=2)),
                          {"executionArn": listed[0]["executionArn"]})
        found = reconcile.find_service_restarts(sfn, stack.ddb, _Info(stack), stopped_since=since)
        stub.assert_no_pending_responses()
    assert [t.taskID for t in found] == ["hung"]
