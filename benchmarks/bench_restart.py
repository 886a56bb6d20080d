"""State across a restart, timed and counted: 1,000 tasks (most completed,
some dead-lettered, some still queued) → `tmctl local stop` → `tmctl local
start`, on its own embedded emulator.

    python benchmarks/bench_restart.py [--tasks 1000] [--poison 100] [--queued 100]

Deploys the stack with `tmctl up --local`, turns the processor's failure
injection on for poison-*, posts the completed and poison tasks (16 clients),
waits until each is COMPLETED or DEAD_LETTERED, then disables the processor's
event source mapping and posts the queued ones (their messages wait on the
queue). Then counts, through the API-free paths (a DynamoDB scan, the engine's
non-consuming SQS inspection endpoint, ListExecutions): tasks by status with
their items, messages in the queue and the DLQ by id with body, attributes and
receive count, executions. Runs `tmctl local stop` and `tmctl local start` as a
user would, timing each, and counts again: lost (before, not after), duplicated
(more than once after), changed (same id, other content). Finally it enables
the mapping again and waits for the queued tasks to complete: the messages that
came back are live, not just listed.

Beside tmctl's figures, the engine's own from the same run: its SIGTERM → exit
(the save; tmctl's clean-stop marker), its boot to first health answer with
nothing saved (the first start) and with the saved state, and the state's size
on disk. Target: 0 lost, 0 duplicated, stop + start ≤ 3 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import free_port

from tmctl.core.api import TaskApi
from tmctl.core.dynamo import from_item
from tmctl.core.local import emulator, persist
from tmctl.core.stack import load_stack
from tmctl.core.target import Clients, resolve_target

ROOT = Path(__file__).resolve().parents[1]




def peek(endpoint: str, queue_url: str) -> list[dict]:
    url = f"{endpoint}/_ministack/sqs/messages?" + urllib.parse.urlencode({"QueueUrl": queue_url})
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - our own loopback emulator
        body = json.loads(resp.read())
    return [m for acct in body["messages"].values() for region in acct.values() for msgs in region.values()
            for m in msgs]


def scan(ddb, table: str) -> list[dict]:
    return [from_item(i) for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
            for i in page["Items"]]


def snapshot(clients: Clients, stack, endpoint: str) -> dict:
    tasks = scan(clients.dynamodb, stack.table)
    msgs = {q: peek(endpoint, url) for q, url in (("queue", stack.queue_url), ("dlq", stack.dlq_url))}
    runs = [e["name"] for page in clients.stepfunctions.get_paginator("list_executions").paginate(
        stateMachineArn=stack.state_machine_arn) for e in page["executions"]]
    return {"tasks": tasks, "msgs": msgs, "runs": runs}


def compare(before: list, after: list, key) -> tuple[int, int, int]:
    """(lost, duplicated, changed) of `after` against `before`, by `key`."""
    counted = Counter(key(x) for x in after)
    then = {key(x): x for x in before}
    now = {key(x): x for x in after}
    lost = len(then.keys() - now.keys())
    duplicated = sum(n - 1 for n in counted.values() if n > 1) + len(now.keys() - then.keys())
    changed = sum(1 for k in then.keys() & now.keys() if then[k] != now[k])
    return lost, duplicated, changed


def message_view(m: dict) -> dict:
    return {k: m.get(k) for k in ("MessageId", "Body", "MD5OfBody", "MD5OfMessageAttributes", "MessageAttributes",
                                  "SentTimestamp", "ReceiveCount")}


def wait_statuses(clients: Clients, stack, want: dict[str, int], timeout: float, still: float = 15.0) -> Counter:
    """Until the counts reach `want`, or stop moving for `still` seconds (a task stuck for another
    reason is reported, not waited for), or `timeout`."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        by = Counter(t["status"] for t in scan(clients.dynamodb, stack.table))
        if by != last:
            last, since = by, time.monotonic()
        if all(by[s] >= n for s, n in want.items()) or time.monotonic() > min(deadline, since + still):
            return by
        time.sleep(1.0)


def health_time(endpoint: str, since: float, timeout: float = 30) -> float:
    while time.monotonic() - since < timeout:
        if emulator.probe(endpoint, timeout=0.2) is not None:
            return time.monotonic() - since
        time.sleep(0.01)
    raise SystemExit("the engine did not answer")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=1000, help="all tasks (completed + poison + queued)")
    ap.add_argument("--poison", type=int, default=100, help="of them, dead-lettered")
    ap.add_argument("--queued", type=int, default=100, help="of them, left on the queue")
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="tmctl-bench-restart-"))
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMCTL_") and k != "AWS_ENDPOINT_URL"}
    env.update({"TMCTL_ENDPOINT_URL": endpoint, "TMCTL_STATE_DIR": str(state), "TMCTL_STAGE": "bench",
                "TMCTL_LOCAL": "1"})
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, stage="bench", env={}), state_dir=state)
    wd = emulator.workdir(target)

    def tmctl(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tmctl", *argv], env=env, check=True, cwd=ROOT,
                              capture_output=True, text=True)

    completed_n = args.tasks - args.poison - args.queued
    try:
        t = time.monotonic()
        booting = emulator.launch(target)  # the engine's boot with nothing saved, timed alone
        boot_empty = health_time(endpoint, t)
        booting.wait()
        tmctl("-o", "json", "up")
        clients = Clients(target)
        stack = load_stack(clients.cloudformation, target)
        clients.ssm.put_parameter(Name=stack.out("FailureInjectionParameterName"), Type="String", Overwrite=True,
                                  Value=json.dumps([{"at": "processor", "match": "poison-*"}]))
        time.sleep(6)  # the Lambdas cache the switch for up to 5 s
        api = TaskApi(stack.api_url)

        def post(task_id: str) -> None:
            resp = api.create({"taskID": task_id})
            assert resp.status == 202, (task_id, resp.status, resp.body)

        run = uuid.uuid4().hex[:6]
        ids = [f"t-{run}-{i}" for i in range(completed_n)] + [f"poison-{run}-{i}" for i in range(args.poison)]
        t = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(post, ids))
        by = wait_statuses(clients, stack, {"COMPLETED": completed_n, "DEAD_LETTERED": args.poison}, 300)
        print(f"posted {len(ids)} tasks, settled in {time.monotonic() - t:.1f}s: {dict(by)}")
        for task in scan(clients.dynamodb, stack.table):
            if task["status"] not in ("COMPLETED", "DEAD_LETTERED"):  # stuck before any restart: said, not hidden
                runs = [e for e in clients.stepfunctions.list_executions(
                    stateMachineArn=stack.state_machine_arn)["executions"] if e["name"].startswith(task["taskID"])]
                print(f"  not settled: {task['taskID']} {task['status']}, executions "
                      f"{[(e['name'], e['status']) for e in runs]}")

        mapping = clients.lambda_.list_event_source_mappings(
            FunctionName=stack.out("EventProcessorFunctionName"))["EventSourceMappings"][0]["UUID"]
        clients.lambda_.update_event_source_mapping(UUID=mapping, Enabled=False)
        time.sleep(1.0)
        queued_ids = [f"q-{run}-{i}" for i in range(args.queued)]
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(post, queued_ids))
        before = snapshot(clients, stack, endpoint)
        by_before = Counter(t["status"] for t in before["tasks"])

        t = time.monotonic()
        tmctl("local", "stop")
        stop_s = time.monotonic() - t
        marker = persist.clean_stop(wd) or {}
        state_bytes = sum(p.stat().st_size for p in (wd / persist.STATE).rglob("*") if p.is_file())
        t = time.monotonic()
        started = tmctl("-o", "json", "local", "start")
        start_s = time.monotonic() - t
        start_info = json.loads(started.stdout)

        # The engine's own boot with this state, timed alone (a second restart, tmctl's stop in between).
        tmctl("local", "stop")
        stop2 = (persist.clean_stop(wd) or {}).get("seconds")
        t = time.monotonic()
        booting = emulator.launch(target)
        boot_state = health_time(endpoint, t)
        booting.wait()

        clients = Clients(target)
        after = snapshot(clients, stack, endpoint)
        by_after = Counter(t["status"] for t in after["tasks"])
        tasks = compare(before["tasks"], after["tasks"], key=lambda x: x["taskID"])
        queue = compare([message_view(m) for m in before["msgs"]["queue"]],
                        [message_view(m) for m in after["msgs"]["queue"]], key=lambda m: m["MessageId"])
        dlq = compare([message_view(m) for m in before["msgs"]["dlq"]],
                      [message_view(m) for m in after["msgs"]["dlq"]], key=lambda m: m["MessageId"])
        runs = compare(before["runs"], after["runs"], key=lambda x: x)

        clients.lambda_.update_event_source_mapping(UUID=mapping, Enabled=True)
        t = time.monotonic()
        final = wait_statuses(clients, stack, {"COMPLETED": completed_n + args.queued}, 120)
        drained = time.monotonic() - t
    finally:
        emulator.stop(target)
        shutil.rmtree(state, ignore_errors=True)

    print(f"before: tasks {dict(by_before)}, queue {len(before['msgs']['queue'])} msgs, "
          f"DLQ {len(before['msgs']['dlq'])} msgs, executions {len(before['runs'])}")
    print(f"after:  tasks {dict(by_after)}, queue {len(after['msgs']['queue'])} msgs, "
          f"DLQ {len(after['msgs']['dlq'])} msgs, executions {len(after['runs'])}")
    for name, (lost, dup, changed) in (("tasks", tasks), ("queue msgs", queue), ("DLQ msgs", dlq),
                                       ("executions", runs)):
        print(f"  {name:<11} lost {lost}, duplicated {dup}, changed {changed}")
    print(f"tmctl local stop  {stop_s:.2f} s   (engine SIGTERM -> exit, its save: {marker.get('seconds')} s; "
          f"again: {stop2} s)")
    print(f"tmctl local start {start_s:.2f} s   (engine boot to health: {boot_state:.2f} s with the saved state, "
          f"{boot_empty:.2f} s with nothing saved; rerun {start_info.get('rerun')}, "
          f"released {start_info.get('released')})")
    print(f"restart (stop + start) {stop_s + start_s:.2f} s (target <= 3 s); state on disk "
          f"{state_bytes / 2**20:.1f} MiB")
    print(f"queued tasks after the mapping was enabled again: {final['COMPLETED']} COMPLETED of "
          f"{completed_n + args.queued} in {drained:.1f} s; {dict(final)}")


if __name__ == "__main__":
    main()
