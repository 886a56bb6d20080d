"""Queues, peek and redrive against the real engine. Each test makes its own
queue pair (a main queue with a RedrivePolicy to its own DLQ, no consumer) and
points tmctl at it with --queue, so nothing else takes these messages — and no
stack is needed: the tests run on any engine with SQS (LocalStack on the host
included), through `engine_env`."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import dlq_pair
from tmctl.cli.app import app
from tmctl.core.backend import detect
from tmctl.core.queues import inspect_messages
from tmctl.core.redrive import LINEAGE_COUNT, LINEAGE_ORIGINAL_ID

pytestmark = [pytest.mark.integration, pytest.mark.needs("sqs")]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def pair(engine_env):
    """A fresh main queue + DLQ (maxReceiveCount 3); both deleted afterwards."""
    with dlq_pair(engine_env.clients.sqs, "it-q") as made:
        yield made


def tmctl(env, *args: str):
    result = CliRunner().invoke(app, list(args), env=env.cli_env)
    return result


def fill(sqs, url: str, n: int, make) -> None:
    def batch(start: int) -> None:
        resp = sqs.send_message_batch(QueueUrl=url, Entries=[make(i) for i in range(start, min(n, start + 10))])
        assert not resp.get("Failed"), resp["Failed"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(batch, range(0, n, 10)))


def snapshot(env, url: str) -> list:
    return inspect_messages(detect(env.target), url)


def attributes_md5(attrs: dict) -> str:
    """SQS's MD5 of message attributes (the algorithm every SDK checks)."""
    def part(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    buf = b""
    for name in sorted(attrs):
        value = attrs[name]
        buf += part(name.encode()) + part(value["DataType"].encode())
        if "BinaryValue" in value:
            buf += b"\x02" + part(base64.b64decode(value["BinaryValue"]))
        else:
            buf += b"\x01" + part(value["StringValue"].encode())
    return hashlib.md5(buf).hexdigest()  # noqa: S324 - SQS's own checksum, not security


def mixed(i: int) -> dict:
    attrs = {"seq": {"DataType": "Number", "StringValue": str(i)},
             "kind": {"DataType": "String", "StringValue": "poison ☠" if i % 2 else "plain"},
             "blob": {"DataType": "Binary", "BinaryValue": bytes([i % 256, 0, 255]) + os.urandom(i % 5)}}
    if i % 3 == 0:
        attrs["custom"] = {"DataType": "Number.float", "StringValue": f"{i}.5"}
    body = json.dumps({"taskID": f"t-{i}", "n": i}) if i % 4 else f"naïve body #{i} — ünïcode ✓"
    return {"Id": str(i % 10), "MessageBody": body, "MessageAttributes": attrs}


def test_peek_does_not_consume_or_count(engine_env, pair):
    name, main, dlq = pair
    sqs = engine_env.clients.sqs
    sqs.send_message(QueueUrl=main, MessageBody=json.dumps({"taskID": "peek-1"}))
    sqs.send_message(QueueUrl=dlq, MessageBody="dead", MessageAttributes={
        "taskID": {"DataType": "String", "StringValue": "peek-2"}})

    for args in (["queue", "peek", "--queue", name], ["dlq", "peek", "--queue", name],
                 ["queue", "peek", "--dlq", "--queue", name]):
        result = tmctl(engine_env, *args, "-o", "json")
        assert result.exit_code == 0, result.stderr
        (msg,) = json.loads(result.stdout)["messages"]
        assert msg["task_id"] in {"peek-1", "peek-2"} and msg["receive_count"] == 0

    # Nothing was received: the first real receive is the first.
    got = sqs.receive_message(QueueUrl=main, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert got[0]["Attributes"]["ApproximateReceiveCount"] == "1"
    stats = json.loads(tmctl(engine_env, "queue", "stats", "--queue", name, "-o", "json").stdout)
    assert stats["dlq"]["visible"] == 1 and stats["main"]["max_receive_count"] == 3
    assert stats["dlq"]["oldest_age_seconds"] is not None


def test_redrive_of_1000_mixed_messages_is_byte_exact_and_complete(engine_env, pair):
    name, main, dlq = pair
    sqs = engine_env.clients.sqs
    fill(sqs, dlq, 1000, mixed)
    before = {m.message_id: m for m in snapshot(engine_env, dlq)}
    assert len(before) == 1000

    started = time.monotonic()
    result = tmctl(engine_env, "dlq", "redrive", "--queue", f"{name}-dlq", "--yes", "-o", "json")
    seconds = time.monotonic() - started

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["scanned"], report["moved"], report["failed"], report["skipped"]) == (1000, 1000, 0, 0)
    assert snapshot(engine_env, dlq) == []
    after = snapshot(engine_env, main)
    assert len(after) == 1000, "lost or duplicated messages"
    if report["mode"] == "client-side":  # send-then-delete: each copy names its original and counts the redrive
        by_origin = {m.message_attributes[LINEAGE_ORIGINAL_ID]["StringValue"]: m for m in after}
        assert all(m.message_attributes[LINEAGE_COUNT]["StringValue"] == "1" for m in after)
    else:  # SQS's own move task adds nothing; every body is unique, so bodies pair the copies with the originals
        assert report["mode"] == "server-side" and not report["followed"]
        assert not any(k.startswith("tmctl.redrive.") for m in after for k in m.message_attributes)
        by_body = {m.body: m for m in after}
        by_origin = {mid: by_body.get(old.body) for mid, old in before.items()}
    assert set(by_origin) == set(before) and None not in by_origin.values()
    for origin, old in before.items():
        new = by_origin[origin]
        assert new.body == old.body and new.md5_of_body == old.md5_of_body
        kept = {k: v for k, v in new.message_attributes.items() if not k.startswith("tmctl.redrive.")}
        assert kept == old.message_attributes
        assert attributes_md5(kept) == old.md5_of_message_attributes
    assert seconds < 30


def test_dry_run_filter_and_max_move_exactly_what_they_say(engine_env, pair):
    name, main, dlq = pair
    sqs = engine_env.clients.sqs
    fill(sqs, dlq, 60, lambda i: {"Id": str(i % 10), "MessageBody": json.dumps(
        {"taskID": f"t-{i}", "priority": "HIGH" if i % 3 == 0 else "LOW"})})  # 20 HIGH

    dry = tmctl(engine_env, "dlq", "redrive", "--queue", name, "--dry-run", "--filter", "body.priority == 'HIGH'",
                "-o", "json")
    assert dry.exit_code == 0, dry.stderr
    assert (json.loads(dry.stdout)["matched"], len(snapshot(engine_env, main)),
            len(snapshot(engine_env, dlq))) == (20, 0, 60)

    some = tmctl(engine_env, "dlq", "redrive", "--queue", name, "--filter", "body.priority == 'HIGH'", "--max", "7",
                 "--yes", "-o", "json")
    assert some.exit_code == 0, some.stderr
    moved = snapshot(engine_env, main)
    assert json.loads(some.stdout)["moved"] == 7 and len(moved) == 7
    assert all(json.loads(m.body)["priority"] == "HIGH" for m in moved)
    left = snapshot(engine_env, dlq)
    assert len(left) == 53 and all(m.visible for m in left), "skipped messages must be visible again at once"

    rest = tmctl(engine_env, "dlq", "redrive", "--queue", name, "--task-id", "t-1", "--task-id", "t-2", "--yes",
                 "-o", "json")
    assert rest.exit_code == 0 and json.loads(rest.stdout)["moved"] == 2
    assert len(snapshot(engine_env, dlq)) == 51


def kill_part_way(cmd: list[str], env: dict[str, str], far_enough) -> None:
    """Run `cmd` and SIGKILL it once `far_enough()` (within 30 s), as a crash would."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not far_enough() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the first run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()


def test_a_redrive_killed_mid_run_and_run_again_loses_nothing(engine_env, pair, tmp_path):
    name, main, dlq = pair
    sqs = engine_env.clients.sqs
    n = 3000
    fill(sqs, dlq, n, lambda i: {"Id": str(i % 10), "MessageBody": json.dumps({"taskID": f"k-{i}"})})
    cmd = [sys.executable, "-m", "tmctl", "dlq", "redrive", "--queue", f"{name}-dlq", "--yes", "-o", "json",
           "--visibility-timeout", "2", "--rate", "600", "--export", str(tmp_path / "moved.jsonl")]
    proc_env = {**os.environ, **engine_env.cli_env}

    kill_part_way(cmd, proc_env, lambda: len(snapshot(engine_env, main)) >= n // 5)
    first = len(snapshot(engine_env, main))
    assert 0 < first < n

    time.sleep(2.5)  # the killed run's held batches come back after their 2 s visibility timeout
    again = subprocess.run(cmd, env=proc_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr

    arrived = [json.loads(m.body)["taskID"] for m in snapshot(engine_env, main)]
    assert set(arrived) == {f"k-{i}" for i in range(n)}, "a message was lost"
    assert snapshot(engine_env, dlq) == []
    duplicates = len(arrived) - n
    assert 0 <= duplicates <= 10 * 4, f"{duplicates} duplicates: more than the batches in flight at the kill"
    exported = {json.loads(line)["taskID"] for line in (tmp_path / "moved.jsonl").read_text().splitlines()}
    assert exported == set(arrived), "every moved message was exported before it moved"


def test_a_server_side_redrive_killed_mid_run_is_followed_when_run_again(engine_env, pair):
    """The move task outlives the killed client: the second run follows it to
    its end (SQS refuses a second task for the same DLQ) and nothing is lost."""
    if not detect(engine_env.target).has_move_tasks:
        pytest.skip(f"{detect(engine_env.target).describe()} has no StartMessageMoveTask: redrive is client-side")
    name, main, dlq = pair
    n = 600
    fill(engine_env.clients.sqs, dlq, n, lambda i: {"Id": str(i % 10), "MessageBody": json.dumps({"taskID": f"s-{i}"})})
    cmd = [sys.executable, "-m", "tmctl", "dlq", "redrive", "--queue", f"{name}-dlq", "--yes", "-o", "json",
           "--rate", "100"]  # ~6 s: time to kill it part-way
    proc_env = {**os.environ, **engine_env.cli_env}

    kill_part_way(cmd, proc_env, lambda: len(snapshot(engine_env, main)) >= n // 5)
    assert 0 < len(snapshot(engine_env, main)) < n, "the move task should still be running"

    again = subprocess.run(cmd, env=proc_env, cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert again.returncode == 0, again.stderr
    assert "following the move task already running since" in again.stderr
    report = json.loads(again.stdout)
    assert (report["mode"], report["followed"], report["ok"], report["moved"]) == ("server-side", True, True, n)
    arrived = [json.loads(m.body)["taskID"] for m in snapshot(engine_env, main)]
    assert sorted(arrived) == sorted(f"s-{i}" for i in range(n)), "a message was lost or duplicated"
    assert snapshot(engine_env, dlq) == []
