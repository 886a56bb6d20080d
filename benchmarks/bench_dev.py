"""`tmctl dev`: how long from a save to the next request running the new code,
next to the emulator's own warm invoke time, measured in one run.

    python benchmarks/bench_dev.py [--edits 20]

Starts its own embedded emulator on a free 127.0.0.1 port (state and a copy of
the project in a temp dir), runs `tmctl dev` on the copy, then edits the
workflow step's reply --edits times. After each save it invokes the function
directly, back to back, until the new reply comes: save → new reply is the
latency; a reply with the old text from a request sent after `live` was
printed is a stale reply (must be 0); a request that fails while the code
switches is counted apart. Then saves a module that does not import and
checks the old code keeps answering. Stops `tmctl dev` (SIGINT, must exit 0)
and the emulator by pid at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import free_port, pct

from tmctl.core.local import emulator
from tmctl.core.stack import load_stack
from tmctl.core.target import Clients, resolve_target

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL = 'return "ok", {}, "valid"'
REQUEST = json.dumps({"step": "validate", "task": {"taskID": "bench-dev", "title": "measure the dev loop",
                                                   "createdAt": "2026-12-04T00:00:00Z"}}).encode()






class Output(threading.Thread):
    """The dev process's lines, each with the time it was read."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, queue.Queue()
        self.all: list[tuple[float, str]] = []

    def run(self):
        for line in self.stream:
            item = (time.perf_counter(), line.rstrip("\n"))
            self.all.append(item)
            self.lines.put(item)

    def wait_for(self, pattern: str, timeout: float) -> tuple[float, re.Match]:
        rx, deadline = re.compile(pattern), time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                at, line = self.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if m := rx.search(line):
                return at, m
        raise SystemExit(f"no {pattern!r} within {timeout}s:\n" + "\n".join(x for _, x in self.all[-30:]))


def reply(lam, fn: str) -> tuple[str | None, bool]:
    """(validate's detail, failed) of one direct invoke."""
    try:
        resp = lam.invoke(FunctionName=fn, Payload=REQUEST)
    except Exception:  # noqa: BLE001 - a request that fails while the code switches
        return None, True
    body = json.loads(resp["Payload"].read() or b"{}")
    if resp.get("FunctionError"):
        return None, True
    return body.get("reason"), False


def raw_invoke(lam, fn: str, n: int = 50) -> dict:
    """The emulator's own warm invoke, sequential: what no tool can beat."""
    lam.invoke(FunctionName=fn, Payload=REQUEST)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        lam.invoke(FunctionName=fn, Payload=REQUEST)
        times.append(time.perf_counter() - t)
    return {"p50": pct(times, 50), "p95": pct(times, 95)}


def cold_update(lam, fn: str, data: bytes, n: int = 5) -> float:
    """UpdateFunctionCode + the first invoke (a cold worker): the engine's own floor for a code switch."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        lam.update_function_code(FunctionName=fn, ZipFile=data)
        lam.invoke(FunctionName=fn, Payload=b'{"warmup": true}')
        times.append(time.perf_counter() - t)
    return pct(times, 50)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--poll-gap", type=float, default=0.02,
                    help="Seconds between the invokes that wait for the new reply (0: back to back).")
    ap.add_argument("--show-dev-output", action="store_true", help="Print what `tmctl dev` wrote, at the end.")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tmctl-bench-dev-"))
    project = work / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lambdas", project / "lambdas", ignore=ignore)
    shutil.copytree(ROOT / "cloudformation", project / "cloudformation", ignore=ignore)
    steps = project / "lambdas/workflow_steps/app.py"
    source = steps.read_text()
    assert ORIGINAL in source, "the workflow step's reply moved: update ORIGINAL"
    endpoint = f"http://127.0.0.1:{free_port()}"
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, stage="bench", env={}), state_dir=work / "state")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMCTL_") and k != "AWS_ENDPOINT_URL"}
    env.update({"TMCTL_ENDPOINT_URL": endpoint, "TMCTL_STAGE": "bench", "TMCTL_STATE_DIR": str(target.state_dir),
                "TMCTL_PROJECT_DIR": str(project), "NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    dev = out = None
    try:
        t = time.perf_counter()
        dev = subprocess.Popen([sys.executable, "-m", "tmctl", "dev", "--quiet"], env=env, cwd=work, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out = Output(dev.stderr)
        out.start()
        out.wait_for(r"^watching ", timeout=120)
        ready = time.perf_counter() - t
        clients = Clients(target)
        lam = clients.lambda_
        fn = load_stack(clients.cloudformation, target).functions["WorkflowSteps"]
        raw = raw_invoke(lam, fn)

        latencies, live_lines, stale, failed, polls, stuck = [], [], 0, 0, 0, []
        for i in range(args.edits):
            new = f"valid, edit {i}"
            time.sleep(0.3)  # a human pause; also lets the previous cold worker settle
            saved = time.perf_counter()
            steps.write_text(source.replace(ORIGINAL, f'return "ok", {{}}, "{new}"'))
            sent: list[tuple[float, str | None, bool]] = []
            while True:
                at = time.perf_counter()
                text, err = reply(lam, fn)
                sent.append((at, text, err))
                if text == new:
                    latencies.append(time.perf_counter() - saved)
                    break
                if at - saved > 15:  # a worker with the old code stuck in the pool: stale for good
                    stuck.append(i)
                    break
                time.sleep(args.poll_gap)
            live_at, m = out.wait_for(r"live: workflow-steps (\d+\.\d+) s", timeout=30)
            live_lines.append(float(m.group(1)))
            polls += len(sent)
            stale += sum(1 for at, text, err in sent if at > live_at and not err and text != new)
            failed += sum(1 for _, _, err in sent if err)

        # A save that does not import: reported, and the last good code keeps answering.
        good = source.replace(ORIGINAL, f'return "ok", {{}}, "valid, edit {args.edits - 1}"')
        time.sleep(0.3)
        steps.write_text(good.replace("from taskcore import config", "from taskcore import config\n"
                                      "import no_such_module_for_bench", 1))
        _, m = out.wait_for(r"error (lambdas/\S+:\d+): (.*)", timeout=30)
        kept = [reply(lam, fn) for _ in range(10)]
        old_code_answers = all(text == f"valid, edit {args.edits - 1}" and not err for text, err in kept)

        from tmctl.core import dev as core

        cold = cold_update(lam, fn, core.function_zip(project, "workflow_steps"))

        dev.send_signal(signal.SIGINT)
        code = dev.wait(timeout=30)
        dev = None
        if args.show_dev_output:
            print("\n".join(line for _, line in out.all))
        result = {
            "edits": args.edits, "load_average_1m_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
            "ready_s": round(ready, 2),
            "save_to_new_reply_s": {"p50": round(pct(latencies, 50), 3), "p95": round(pct(latencies, 95), 3),
                                    "max": round(max(latencies), 3)},
            "live_line_s": {"p50": pct(live_lines, 50), "p95": pct(live_lines, 95)},
            "stale_after_live": stale, "edits_never_live": stuck, "failed_during_switch": failed, "polls": polls,
            "broken_save": {"reported": f"{m.group(1)}: {m.group(2)}", "old_code_answers": old_code_answers},
            "engine_warm_invoke_ms": {k: round(v * 1000, 1) for k, v in raw.items()},
            "engine_update_plus_cold_invoke_s": round(cold, 3),
            "ctrl_c_exit": code,
        }
        print(json.dumps(result, indent=2))
        print(f"\nsave → next request runs the new code, {args.edits} edits: p50 {pct(latencies, 50):.3f} s, "
              f"p95 {pct(latencies, 95):.3f} s (targets 0.7 / 1.0 s); stale replies after `live`: {stale} "
              f"(edits whose new reply never came: {len(stuck)}); "
              f"requests failed while switching: {failed} of {polls}")
        print(f"engine, same run: warm invoke p50 {raw['p50'] * 1000:.1f} ms; UpdateFunctionCode + cold invoke "
              f"{cold:.3f} s")
        print(f"broken save: {result['broken_save']['reported']}; old code kept answering: {old_code_answers}")
    except SystemExit:
        if out is not None:  # what `tmctl dev` said, to see why
            print("\n".join(line for _, line in out.all[-30:]), file=sys.stderr)
        raise
    finally:
        if dev is not None and dev.poll() is None:
            dev.send_signal(signal.SIGINT)
            try:
                dev.wait(timeout=15)
            except subprocess.TimeoutExpired:
                dev.kill()
        emulator.stop(target)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
