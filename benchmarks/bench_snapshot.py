"""Snapshot benchmark, next to the emulator's raw capability in the same run.

    python benchmarks/bench_snapshot.py [--tasks 10000] [--dlq 1000] [--json]

Starts its own MiniStack on a free 127.0.0.1 port (state in a temp dir), makes a
stage's resources there (the tasks table's key, the queue pair, config
parameters; no Lambdas, so nothing consumes the queues while they are measured)
and seeds them directly: --tasks task items shaped like real ones (history,
nested maps, numbers, a binary) by BatchWriteItem and --dlq DLQ messages (text
body, String/Number/Binary attributes) by SendMessageBatch — those two are the
raw rates. Then `tmctl snapshot save` (tmctl's core) to a file, a second, fresh
MiniStack on another free port with the same resources, `load` into it, and a
byte-exact comparison (every typed item, every DLQ body and attribute set, the
parameters). Targets: save ≤ 10 s, load ≤ 20 s. Stops both emulators by pid.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import free_port

from tmctl.core.backend import detect
from tmctl.core.local import emulator
from tmctl.core.queues import inspect_messages
from tmctl.core.snapshot import WRITE_WORKERS, StageRefs, load, plan_load, save
from tmctl.core.target import Clients, resolve_target

STAGE = "bench"
PARAMS = {"intake": "open", "log-level": "INFO", "retry-base-seconds": "1", "failure-injection": "[]"}




def make_stage(clients: Clients) -> StageRefs:
    ddb, sqs, ssm = clients.dynamodb, clients.sqs, clients.ssm
    table = f"taskmanager-{STAGE}-tasks"
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "taskID", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "taskID", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    dlq = sqs.create_queue(QueueName=f"taskmanager-{STAGE}-tasks-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    main = sqs.create_queue(QueueName=f"taskmanager-{STAGE}-tasks", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": "3"})})["QueueUrl"]
    path = f"/taskmanager/{STAGE}/"
    for key, value in PARAMS.items():
        ssm.put_parameter(Name=path + key, Value=value, Type="String", Overwrite=True)
    return StageRefs("taskmanager", STAGE, table, main, dlq, path)


def task_item(i: int) -> dict:
    at = f"2026-12-04T20:{i % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
    return {
        "taskID": {"S": f"task-{i:06d}"}, "title": {"S": f"task number {i} ✓"}, "status": {"S": "COMPLETED"},
        "priority": {"S": ("LOW", "MEDIUM", "HIGH", "URGENT")[i % 4]}, "createdAt": {"S": at},
        "updatedAt": {"S": at}, "description": {"S": "x" * (i % 200)}, "attempt": {"N": str(i % 3)},
        "score": {"N": f"{i}.50"}, "tags": {"SS": ["bench", f"t{i % 7}"]}, "blob": {"B": i.to_bytes(4, "big")},
        "error": {"NULL": True}, "done": {"BOOL": True},
        "history": {"L": [{"M": {"step": {"S": s}, "at": {"S": at}, "ms": {"N": str(j * 7)}}}
                          for j, s in enumerate(("created", "queued", "started", "validate", "enrich", "process"))]},
    }


def dlq_entry(i: int) -> dict:
    return {"Id": str(i % 10), "MessageBody": json.dumps({"type": "TaskCreated", "version": 1, "taskID": f"dl-{i}"}),
            "MessageAttributes": {"taskID": {"DataType": "String", "StringValue": f"dl-{i}"},
                                  "n": {"DataType": "Number", "StringValue": str(i)},
                                  "blob": {"DataType": "Binary", "BinaryValue": i.to_bytes(4, "big") + b"\xff"}}}


def seed(clients: Clients, refs: StageRefs, tasks: int, dlq: int) -> dict[str, float]:
    ddb, sqs = clients.dynamodb, clients.sqs

    def put(start: int) -> None:
        reqs = [{"PutRequest": {"Item": task_item(i)}} for i in range(start, min(tasks, start + 25))]
        while reqs:
            reqs = ddb.batch_write_item(RequestItems={refs.table: reqs}).get("UnprocessedItems", {}).get(refs.table)

    def send(start: int) -> None:
        resp = sqs.send_message_batch(QueueUrl=refs.dlq_url,
                                      Entries=[dlq_entry(i) for i in range(start, min(dlq, start + 10))])
        assert not resp.get("Failed"), resp["Failed"]

    with ThreadPoolExecutor(max_workers=WRITE_WORKERS) as pool:
        t = time.perf_counter()
        list(pool.map(put, range(0, tasks, 25)))
        items_s = tasks / (time.perf_counter() - t)
        t = time.perf_counter()
        list(pool.map(send, range(0, dlq, 10)))
        msgs_s = dlq / (time.perf_counter() - t)
    return {"raw_batch_write_items_s": round(items_s), "raw_send_batch_msg_s": round(msgs_s)}


def all_items(clients: Clients, table: str) -> dict[str, dict]:
    out = {}
    for page in clients.dynamodb.get_paginator("scan").paginate(TableName=table):
        out.update({i["taskID"]["S"]: i for i in page["Items"]})
    return out


def dlq_contents(target, url: str) -> Counter:
    return Counter((m.body, json.dumps(m.message_attributes, sort_keys=True))
                   for m in inspect_messages(detect(target), url))


def params(clients: Clients, path: str) -> dict[str, str]:
    got = clients.ssm.get_parameters_by_path(Path=path.rstrip("/"))["Parameters"]
    return {p["Name"][len(path):]: p["Value"] for p in got}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--dlq", type=int, default=1_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tmctl-bench-snapshot-"))
    targets = [dataclasses.replace(resolve_target(endpoint_url=f"http://127.0.0.1:{free_port()}", stage=STAGE,
                                                  env={}), state_dir=tmp / f"state{n}") for n in (1, 2)]
    started = []
    results: dict[str, object] = {"tasks": args.tasks, "dlq_messages": args.dlq}
    try:
        _, proc = emulator.start(targets[0])
        started.append(targets[0])
        src = Clients(targets[0])
        refs = make_stage(src)
        results.update(seed(src, refs, args.tasks, args.dlq))

        file = tmp / "bench.snap.gz"
        t = time.perf_counter()
        saved = save(src.dynamodb, src.sqs, src.ssm, detect(targets[0]), refs, file)
        results["save_s"] = round(time.perf_counter() - t, 2)
        results["file_bytes"] = saved.bytes
        assert saved.counts == {"tasks": args.tasks, "main": 0, "dlq": args.dlq, "config": len(PARAMS)}, saved.counts

        t = time.perf_counter()
        _, proc2 = emulator.start(targets[1])
        started.append(targets[1])
        results["second_emulator_start_s"] = round(time.perf_counter() - t, 2)
        dst = Clients(targets[1])
        refs2 = make_stage(dst)
        t = time.perf_counter()
        plan = plan_load(dst.dynamodb, dst.sqs, dst.ssm, detect(targets[1]), refs2, file, merge=False)
        report = load(dst.dynamodb, dst.sqs, dst.ssm, plan)
        results["load_s"] = round(time.perf_counter() - t, 2)
        results["load_ok"] = report.ok
        results["load_items_s"] = round(args.tasks / results["load_s"])

        results["items_identical"] = all_items(src, refs.table) == all_items(dst, refs2.table)
        results["dlq_identical"] = dlq_contents(targets[0], refs.dlq_url) == dlq_contents(targets[1], refs2.dlq_url)
        results["config_identical"] = params(src, refs.config_path) == params(dst, refs2.config_path)
    finally:
        for target in reversed(started):
            emulator.stop(target)
        shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        rows = [
            ("raw BatchWriteItem (8 threads)", f"{results['raw_batch_write_items_s']} items/s"),
            ("raw SendMessageBatch (8 threads)", f"{results['raw_send_batch_msg_s']} msg/s"),
            (f"save {args.tasks} tasks + {args.dlq} DLQ msgs", f"{results['save_s']} s ({results['file_bytes']:,} "
                                                              "bytes; target ≤ 10 s)"),
            ("load into a fresh emulator", f"{results['load_s']} s ({results['load_items_s']} tasks/s; "
                                           "target ≤ 20 s)"),
            ("byte-exact: items / DLQ / config", f"{results['items_identical']} / {results['dlq_identical']} / "
                                                 f"{results['config_identical']}"),
        ]
        width = max(len(r[0]) for r in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
    ok = results["load_ok"] and results["items_identical"] and results["dlq_identical"] and results["config_identical"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
