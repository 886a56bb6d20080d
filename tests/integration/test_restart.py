"""State across a restart of the embedded emulator, as a user drives it:
`up`, some work, `local stop`, `local start` — everything back byte for byte,
`up` a no-change, the dead-lettered task redriven to COMPLETED, the workflow
the stop interrupted run again; then a crash (SIGKILL) that `local start`
warns about, and `local reset --yes` that leaves nothing.

Its own port and state dir, not the session's engine; every engine started in
its work dir is stopped by pid in `finally`, even if tmctl lost track of it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tmctl.core.dynamo import from_item
from tmctl.core.local import emulator
from tmctl.core.target import Clients, resolve_target

from .conftest import free_port
from .test_concurrent_up import engines_in

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Cli:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        run = subprocess.run([sys.executable, "-m", "tmctl", *args], env=self.env, cwd=ROOT, text=True,
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if check:
            assert run.returncode == 0, f"tmctl {' '.join(args)} exited {run.returncode}:\n{run.stderr}"
        return run

    def json(self, *args: str) -> dict | list:
        return json.loads(self(*args, "-o", "json").stdout)


def peek(endpoint: str, queue_url: str) -> list[dict]:
    url = f"{endpoint}/_ministack/sqs/messages?QueueUrl={urllib.parse.quote(queue_url, safe='')}"
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - the loopback engine
        body = json.loads(resp.read())
    return [m for acct in body["messages"].values() for region in acct.values() for msgs in region.values()
            for m in msgs]


def wait_for(fetch, done, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def stop_every_engine(target, wd) -> None:
    """tmctl's stop, then SIGKILL for any engine still running in `wd` (a failed test's leftovers)."""
    with contextlib.suppress(Exception):
        emulator.stop(target, timeout=10)
    for pid in engines_in(wd, set()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def test_state_survives_stop_and_start_and_a_crash_warns_and_reset_empties(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, env={}), state_dir=tmp_path)
    wd = emulator.workdir(target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMCTL_") and k != "AWS_ENDPOINT_URL"}
    env.update({"TMCTL_STATE_DIR": str(tmp_path), "TMCTL_ENDPOINT_URL": endpoint, "TMCTL_LOCAL": "1",
                "NO_COLOR": "1", "COLUMNS": "200"})
    cli = Cli(env)
    try:
        # GIVEN a stack with a completed task, a dead-lettered one, one whose workflow is running
        # (its step fails and waits out slow retries: SFN_WAIT_SCALE 10), a queued message (delayed:
        # nothing consumes it yet), an in-flight DLQ message and an SSM switch
        cli.env = {**env, "TMCTL_SFN_WAIT_SCALE": "10"}  # this engine only: the next start has the default
        cli("up", "-o", "json")
        cli.env = env
        c = Clients(target)
        from tmctl.core.stack import load_stack

        stack = load_stack(c.cloudformation, target)
        cli("config", "set", "failure-injection",
            '[{"at":"processor","match":"poison-*"},{"at":"process","match":"boom-*"}]')
        done = cli.json("task", "create", "--id", "done-1", "--title", "kept #restart", "--wait")
        assert done["status"] == "COMPLETED"
        cli("task", "create", "--id", "poison-1")
        assert wait_for(lambda: peek(endpoint, stack.dlq_url), lambda m: len(m) == 1)
        cli("task", "create", "--id", "boom-1")
        assert wait_for(lambda: c.dynamodb.get_item(TableName=stack.table, Key={"taskID": {"S": "boom-1"}})
                        ["Item"]["status"]["S"], lambda s: s == "PROCESSING") == "PROCESSING"
        c.sqs.send_message(QueueUrl=stack.queue_url, MessageBody='{"type": "TaskCreated", "taskID": "later-1"}',
                           DelaySeconds=900, MessageAttributes={
                               "note": {"DataType": "String", "StringValue": "queued ✓"},
                               "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}})
        dlq_before = peek(endpoint, stack.dlq_url)
        got = c.sqs.receive_message(QueueUrl=stack.dlq_url, VisibilityTimeout=300)["Messages"]  # in flight
        assert len(got) == 1 and not peek(endpoint, stack.dlq_url)[0]["IsVisible"]
        queued_before = peek(endpoint, stack.queue_url)
        tasks_before = {i["taskID"]["S"]: from_item(i) for i in c.dynamodb.scan(TableName=stack.table)["Items"]}
        switch = c.ssm.get_parameter(Name=stack.out("FailureInjectionParameterName"))["Parameter"]["Value"]
        runs_before = c.stepfunctions.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
        bucket = next(b["Name"] for b in c.s3.list_buckets()["Buckets"] if b["Name"].startswith("tmctl-artifacts"))
        objects_before = sorted(o["Key"] for o in c.s3.list_objects_v2(Bucket=bucket).get("Contents", []))
        assert objects_before

        # WHEN the engine is stopped and started
        t = time.monotonic()
        stopped = cli("local", "stop")
        stop_s = time.monotonic() - t
        assert "state saved in" in stopped.stderr and (wd / "clean-stop.json").exists()
        t = time.monotonic()
        started = cli("local", "start", "-o", "json")
        start_s = time.monotonic() - t
        info = json.loads(started.stdout)
        print(f"stop {stop_s:.2f}s, start {start_s:.2f}s: {started.stderr.strip()}")

        # THEN it says what it restored and repaired
        assert info["stateSavedAt"] and not info["crashed"]
        assert info["rerun"] == 1 and info["released"] == 1, started.stderr
        assert "1 workflow(s) interrupted by the stop run again: boom-1 (started boom-1-" in started.stderr
        # the tasks with their history, byte for byte (boom-1 aside: it was re-run)
        c = Clients(target)
        tasks_after = {i["taskID"]["S"]: from_item(i) for i in c.dynamodb.scan(TableName=stack.table)["Items"]}
        assert tasks_after.keys() == tasks_before.keys()
        for task_id in tasks_before.keys() - {"boom-1"}:
            assert tasks_after[task_id] == tasks_before[task_id], task_id
        # the dead-lettered message: same id, body, attributes, MD5s; the receive count of the
        # receive before the stop, and visible again at once (its consumer went with the stop)
        dlq_after = peek(endpoint, stack.dlq_url)
        same = ("MessageId", "Body", "MD5OfBody", "MD5OfMessageAttributes", "MessageAttributes", "SentTimestamp")
        assert [{k: m[k] for k in same} for m in dlq_after] == [{k: m[k] for k in same} for m in dlq_before]
        assert dlq_after[0]["ReceiveCount"] == dlq_before[0]["ReceiveCount"] + 1 and dlq_after[0]["IsVisible"]
        # the queued (delayed) message exactly as it was
        assert peek(endpoint, stack.queue_url) == queued_before
        # the SSM switch, the executions, the artifacts
        assert c.ssm.get_parameter(Name=stack.out("FailureInjectionParameterName"))["Parameter"]["Value"] == switch
        runs_after = c.stepfunctions.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
        assert {r["name"] for r in runs_before} <= {r["name"] for r in runs_after}
        assert sorted(o["Key"] for o in c.s3.list_objects_v2(Bucket=bucket).get("Contents", [])) == objects_before
        # the interrupted workflow was run again as a labelled execution, and the task moved on
        boom = wait_for(lambda: cli.json("task", "get", "boom-1"), lambda t: t["status"] != "PROCESSING")
        steps = [h["step"] for h in boom["history"]]
        assert boom["status"] == "FAILED" and "retried" in steps, boom  # its step fails by design
        assert any(h.get("detail") == "States.ServiceRestart" for h in boom["history"])

        # AND `up` changes nothing
        again = cli("up", "-o", "json")
        assert json.loads(again.stdout)["changed"] is False and "no changes" in again.stderr

        # AND a redrive completes the dead-lettered task
        cli("config", "set", "failure-injection", "[]")
        cli("dlq", "redrive", "--task-id", "poison-1", "--yes")
        poison = wait_for(lambda: cli.json("task", "get", "poison-1"), lambda t: t["status"] == "COMPLETED")
        assert poison["status"] == "COMPLETED" and "redriven" in [h["step"] for h in poison["history"]]

        # WHEN the engine crashes (SIGKILL: nothing saved since the last clean stop)
        pid = cli.json("local", "status")["pid"]
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: emulator.process_info(pid), lambda i: i is None, timeout=5)
        status = cli("local", "status", check=False)
        assert status.returncode == 4
        # THEN `local start` warns that the state is older than the crash
        warned = cli("local", "start", "-o", "json")
        assert "ended without `tmctl local stop`" in warned.stderr and "anything after that is lost" in warned.stderr
        assert json.loads(warned.stdout)["crashed"] is True
        # the last clean stop's state: poison-1 dead-lettered again, its redrive lost with the crash
        assert cli.json("task", "get", "poison-1")["status"] == "DEAD_LETTERED"

        # WHEN it is reset
        assert cli("local", "reset", check=False).returncode == 2  # asks; nobody to answer
        cli("local", "reset", "--yes")
        # THEN nothing is left, running or after a restart
        assert Clients(target).dynamodb.list_tables()["TableNames"] == []
        cli("local", "stop")
        cli("local", "start")
        assert Clients(target).dynamodb.list_tables()["TableNames"] == []
        assert cli("task", "list", check=False).returncode == 3
    finally:
        stop_every_engine(target, wd)


def test_a_newer_engines_state_is_refused_never_half_loaded(tmp_path, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, env={}), state_dir=tmp_path)
    wd = emulator.workdir(target)
    (wd / "state").mkdir(parents=True)
    newer = '{"__ministack_format__": 99, "payload": {"queues": {}}}'
    (wd / "state" / "sqs.json").write_text(newer)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMCTL_") and k != "AWS_ENDPOINT_URL"}
    env.update({"TMCTL_STATE_DIR": str(tmp_path), "TMCTL_ENDPOINT_URL": endpoint, "NO_COLOR": "1", "COLUMNS": "300"})
    try:
        # WHEN a user starts the engine: refused before it starts, in one line with the fix
        run = Cli(env)("local", "start", check=False)
        assert run.returncode == 1 and emulator.probe(endpoint) is None
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "newer MiniStack" in lines[0] and "tmctl local reset" in lines[0], run.stderr
        # AND if that check were missed, the engine's own refusal in its log ends it unsaved
        from tmctl.core.local import persist

        monkeypatch.setattr(persist, "check_versions", lambda wd: None)
        with pytest.raises(persist.NewerStateError):
            emulator.launch(target).wait()
        assert emulator.probe(endpoint) is None and emulator.read_process(target) is None
        assert (wd / "state" / "sqs.json").read_text() == newer  # never saved over
        # AND --fresh starts from nothing
        assert Cli(env)("local", "start", "--fresh").returncode == 0
        assert not (wd / "state" / "sqs.json").exists() or "99" not in (wd / "state" / "sqs.json").read_text()
    finally:
        stop_every_engine(target, wd)
