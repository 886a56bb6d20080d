"""The failure path, timed: poison POST → its message in the DLQ (and the task
DEAD_LETTERED), on its own embedded emulator.

    python benchmarks/bench_failure_path.py [--tasks 10]

Deploys the stack with `tmctl up --local` (the local parameter values: back-off
1 s doubling, none after the last of 3 receives), switches the processor's
failure injection on for poison-*, then posts --tasks poison tasks one at a
time and times each from the POST's answer to the message being in the DLQ
(the engine's non-consuming inspection endpoint, polled every 20 ms) and to the
task reading DEAD_LETTERED, beside the floor: the back-off the stack asks for.
Target: ≤ 5 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from benchlib import free_port

from tmctl.core.api import TaskApi
from tmctl.core.local import emulator
from tmctl.core.stack import load_stack
from tmctl.core.target import Clients, resolve_target

ROOT = Path(__file__).resolve().parents[1]




def in_dlq(endpoint: str, dlq_url: str, task_id: str) -> bool:
    url = f"{endpoint}/_ministack/sqs/messages?" + urllib.parse.urlencode({"QueueUrl": dlq_url})
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own loopback emulator
        return task_id.encode() in resp.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=10)
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="tmctl-bench-fail-"))
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "TMCTL_ENDPOINT_URL": endpoint, "TMCTL_STATE_DIR": str(state), "TMCTL_STAGE": "bench"}
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, stage="bench", env={}), state_dir=state)
    to_dlq, to_mark = [], []
    try:
        subprocess.run([sys.executable, "-m", "tmctl", "-o", "json", "up"], env=env, check=True, cwd=ROOT,
                       capture_output=True)
        clients = Clients(target)
        stack = load_stack(clients.cloudformation, target)
        params = stack.parameters
        clients.ssm.put_parameter(Name=stack.out("FailureInjectionParameterName"), Type="String", Overwrite=True,
                                  Value=json.dumps([{"at": "processor", "match": "poison-*"}]))
        time.sleep(6)  # the Lambdas cache the switch for up to 5 s
        api = TaskApi(stack.api_url)
        for _ in range(args.tasks):
            task_id = f"poison-{uuid.uuid4().hex[:10]}"
            assert api.create({"taskID": task_id}).status == 202
            posted = time.monotonic()
            while not in_dlq(endpoint, stack.dlq_url, task_id):
                if time.monotonic() - posted > 60:
                    raise SystemExit(f"{task_id} never reached the DLQ")
                time.sleep(0.02)
            to_dlq.append(time.monotonic() - posted)
            while api.get(task_id).body.get("status") != "DEAD_LETTERED":
                time.sleep(0.02)
            to_mark.append(time.monotonic() - posted)
    finally:
        emulator.stop(target)
        shutil.rmtree(state, ignore_errors=True)
    base, receives = (int(params.get(k, d)) for k, d in (("RetryBaseSeconds", 2), ("MaxReceiveCount", 3)))
    backoff = sum(min(60, base * 2 ** i) for i in range(receives - 1))
    print(f"poison POST -> in the DLQ, {len(to_dlq)} tasks: median {statistics.median(to_dlq):.2f} s, "
          f"max {max(to_dlq):.2f} s (target <= 5 s)")
    print(f"poison POST -> task DEAD_LETTERED:         median {statistics.median(to_mark):.2f} s, "
          f"max {max(to_mark):.2f} s")
    print(f"floor in this configuration: {backoff} s of back-off ({receives} receives, base {base} s, doubling)")


if __name__ == "__main__":
    main()
