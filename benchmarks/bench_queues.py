"""Queue benchmarks, each next to the emulator's raw capability in the same run.

    python benchmarks/bench_queues.py [--messages 10000] [--workers 4] [--runs 11] [--json]

Starts its own MiniStack on a free 127.0.0.1 port (state in a temp dir) and measures:
  - raw SendMessageBatch and ReceiveMessage+DeleteMessageBatch rates (same thread count as the redrive);
  - client-side redrive of --messages messages (msg/s, lost, duplicates), tmctl's own core;
  - `tmctl queue stats` wall time next to `aws sqs get-queue-attributes --attribute-names All`
    on the same queue (medians, runs interleaved). The aws CLI comes from $TMCTL_BENCH_AWSCLI
    (a path to `aws`), else it is installed from PyPI into a throwaway venv in the temp dir.
Stops the emulator by pid at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import free_port

from tmctl.core import settings
from tmctl.core.backend import detect
from tmctl.core.local import emulator
from tmctl.core.queues import inspect_messages, load_queue
from tmctl.core.redrive import RedriveOptions, redrive_client_side
from tmctl.core.target import Clients, resolve_target

ROOT = Path(__file__).resolve().parents[1]




def make_pair(sqs, name: str) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    main = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": "3"})})["QueueUrl"]
    return main, dlq


def entry(i: int) -> dict:
    return {"Id": str(i % 10), "MessageBody": json.dumps({"taskID": f"b-{i}", "n": i}),
            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "bench"},
                                  "blob": {"DataType": "Binary", "BinaryValue": i.to_bytes(4, "big")}}}


def send_all(sqs, url: str, n: int, workers: int) -> float:
    """msg/s of SendMessageBatch with `workers` threads."""
    def batch(start: int) -> None:
        resp = sqs.send_message_batch(QueueUrl=url, Entries=[entry(i) for i in range(start, min(n, start + 10))])
        assert not resp.get("Failed"), resp["Failed"]

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(batch, range(0, n, 10)))
    return n / (time.perf_counter() - t)


def drain(sqs, url: str, workers: int) -> tuple[float, int]:
    """msg/s of ReceiveMessage (10) + DeleteMessageBatch with `workers` threads."""
    count, lock = [0], threading.Lock()

    def worker() -> None:
        while True:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                       AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            if not msgs:
                return
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])
            with lock:
                count[0] += len(msgs)

    t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return count[0] / (time.perf_counter() - t), count[0]


def awscli(tmp: Path) -> str:
    given = settings.BENCH_AWSCLI.get()
    if given:
        return given
    venv = tmp / "awscli-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "awscli"], check=True)
    return str(venv / "bin" / "aws")


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=RedriveOptions().workers)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tmctl-bench-queues-"))
    endpoint = f"http://127.0.0.1:{free_port()}"
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, env={}), state_dir=tmp / "state")
    results: dict[str, object] = {"messages": args.messages, "workers": args.workers}
    proc = None
    try:
        aws = awscli(tmp)
        _, proc = emulator.start(target)
        clients = Clients(target)
        sqs = clients.sqs
        backend = detect(target)

        raw_src, _ = make_pair(sqs, "bench-raw")
        results["raw_send_msg_s"] = round(send_all(sqs, raw_src, args.messages, args.workers))
        rate, drained = drain(sqs, raw_src, args.workers)
        results["raw_receive_delete_msg_s"] = round(rate)
        assert drained == args.messages, f"raw drain saw {drained}"

        main_url, dlq_url = make_pair(sqs, "bench-redrive")
        send_all(sqs, dlq_url, args.messages, args.workers)
        report = redrive_client_side(sqs, load_queue(sqs, dlq_url), load_queue(sqs, main_url),
                                     RedriveOptions(workers=args.workers))
        arrived = [json.loads(m.body)["taskID"] for m in inspect_messages(backend, main_url)]
        expected = {f"b-{i}" for i in range(args.messages)}
        results["redrive_msg_s"] = round(report.rate)
        results["redrive_seconds"] = round(report.seconds, 2)
        results["redrive_lost"] = len(expected - set(arrived))
        results["redrive_duplicates"] = len(arrived) - len(set(arrived))
        results["redrive_left_in_dlq"] = len(inspect_messages(backend, dlq_url))
        results["redrive_vs_raw_receive_delete"] = round(report.rate / results["raw_receive_delete_msg_s"], 2)

        # Side by side on one queue holding messages; interleaved so machine noise hits both alike.
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_DEFAULT_REGION": target.region, "TMCTL_STATE_DIR": str(tmp / "state")}
        env.pop("AWS_PROFILE", None)
        tmctl_cmd = [sys.executable, "-m", "tmctl", "--endpoint-url", endpoint, "queue", "stats",
                     "--queue", "bench-redrive", "-o", "json"]
        aws_cmd = [aws, "--endpoint-url", endpoint, "sqs", "get-queue-attributes", "--queue-url", main_url,
                   "--attribute-names", "All"]
        timed(tmctl_cmd, env), timed(aws_cmd, env)  # warm the page cache for both
        t_tmctl, t_aws = [], []
        for _ in range(args.runs):
            t_tmctl.append(timed(tmctl_cmd, env))
            t_aws.append(timed(aws_cmd, env))
        results["stats_tmctl_s"] = round(statistics.median(t_tmctl), 3)
        results["stats_aws_s"] = round(statistics.median(t_aws), 3)
        results["stats_ratio"] = round(results["stats_tmctl_s"] / results["stats_aws_s"], 2)
    finally:
        if proc is not None:
            emulator.stop(target)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    rows = [
        ("raw SendMessageBatch", f"{results['raw_send_msg_s']} msg/s ({args.workers} threads)"),
        ("raw ReceiveMessage+DeleteMessageBatch", f"{results['raw_receive_delete_msg_s']} msg/s"),
        (f"client-side redrive of {args.messages}",
         f"{results['redrive_msg_s']} msg/s in {results['redrive_seconds']} s "
         f"({results['redrive_vs_raw_receive_delete']}x raw receive+delete); lost {results['redrive_lost']}, "
         f"duplicates {results['redrive_duplicates']}, left in DLQ {results['redrive_left_in_dlq']}"),
        ("tmctl queue stats", f"{results['stats_tmctl_s']} s (median of {args.runs})"),
        ("aws sqs get-queue-attributes All", f"{results['stats_aws_s']} s (median of {args.runs})"),
        ("stats ratio tmctl/aws", f"{results['stats_ratio']}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
