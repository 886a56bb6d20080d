"""What users feel, next to what the emulator can do, measured in one run.

    python benchmarks/bench.py [--tasks 1000] [--threads 32] [--paced-rate 20]

Starts its own embedded emulator on a free 127.0.0.1 port (state in a temp
dir), runs `tmctl up --local` from nothing and again with no change, posts
--tasks tasks concurrently right after that cold `up` and again warm, then a
paced run for latency, measures the emulator's raw rates, and the CLI's start-up.
Prints a table (and JSON with --json); stops the emulator by pid at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from benchlib import free_port, pct

from tmctl.core.local import emulator
from tmctl.core.stack import load_stack
from tmctl.core.target import Clients, resolve_target

ROOT = Path(__file__).resolve().parents[1]
TMCTL = [sys.executable, "-m", "tmctl"]






def iso_to_epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class MemorySampler(threading.Thread):
    """Peak resident memory (RSS, summed: shared pages count once per process)
    of the emulator's process group (it and its Lambda workers), and of the
    emulator process alone."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_emulator, self.peak_procs, self.peak_pss = pid, 0, 0, 0, 0
        self._done = threading.Event()

    def run(self):
        ticks = 0
        while not self._done.is_set():
            self.peak = max(self.peak, emulator.group_rss_bytes(self.pid))
            self.peak_emulator = max(self.peak_emulator, rss_bytes(self.pid))
            self.peak_procs = max(self.peak_procs, count_group(self.pid))
            if ticks % 8 == 0:  # every 2 s: smaps_rollup costs ~1 ms of kernel time per process
                self.peak_pss = max(self.peak_pss, group_pss_bytes(self.pid))
            ticks += 1
            self._done.wait(0.25)

    def stop(self) -> tuple[float, int]:
        self._done.set()
        self.join()
        return self.peak / 2**20, self.peak_procs


def group_pss_bytes(pgid: int) -> int:
    """Proportional set size of the group: pages shared between its processes
    (the interpreter, shared libraries) counted once, as the machine holds them."""
    total = 0
    for pid, _ in emulator.group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
    return total


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def count_group(pgid: int) -> int:
    return len(emulator.group_members(pgid))


TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclasses.dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds so far of the emulator process, of its Lambda workers (live
    ones, plus finished ones the emulator has reaped), and of the whole machine."""

    emulator: float
    workers: float
    client: float  # this process: the load generator (on AWS it would be elsewhere)
    machine_busy: float
    machine_total: float

    @classmethod
    def take(cls, pid: int) -> CpuSnapshot:
        engine = workers = 0.0
        for member, f in emulator.group_members(pid):
            # fields[11:15] = utime stime cutime cstime (stat fields 14-17)
            own = (int(f[11]) + int(f[12])) / TICK
            if member == pid:
                engine = own
                workers += (int(f[13]) + int(f[14])) / TICK  # reaped workers
            else:
                workers += own
        cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = cpu[3] + cpu[4]  # idle + iowait
        me = resource.getrusage(resource.RUSAGE_SELF)
        return cls(engine, workers, me.ru_utime + me.ru_stime, (sum(cpu) - idle) / TICK, sum(cpu) / TICK)

    def since(self, before: CpuSnapshot, tasks: int) -> dict:
        emu_ms = (self.emulator - before.emulator) * 1000 / max(tasks, 1)
        wrk_ms = (self.workers - before.workers) * 1000 / max(tasks, 1)
        total = self.machine_total - before.machine_total
        busy_ms = (self.machine_busy - before.machine_busy) * 1000 / max(tasks, 1)
        return {
            "emulatorMsPerTask": round(emu_ms, 2), "workersMsPerTask": round(wrk_ms, 2),
            "clientMsPerTask": round((self.client - before.client) * 1000 / max(tasks, 1), 2),
            # Everything the machine did (kernel included), per task:
            "machineBusyMsPerTask": round(busy_ms, 2),
            "machineBusyFraction": round((self.machine_busy - before.machine_busy) / total, 2) if total else None,
            # One core running nothing but the emulator's share of each task:
            "singleCoreBoundTasksPerSecond": round(1000 / emu_ms, 1) if emu_ms else None,
            # Every core running the emulator's and the workers' share:
            "machineBoundTasksPerSecond": round((os.cpu_count() or 1) * 1000 / (emu_ms + wrk_ms), 1)
            if emu_ms + wrk_ms else None,
        }


class Poster:
    """One keep-alive HTTP connection per thread. A plain client (`retries=False`,
    as curl, hey or a browser) sends each task once and takes the answer; a
    retrying one retries 429/5xx with jittered back-off, as any SDK would, and a
    retried create carries the same taskID: an idempotent replay."""

    def __init__(self, api_url: str, retries: bool = False):
        u = urlparse(api_url)
        self.host, self.port, self.prefix = u.hostname, u.port, u.path
        self.local = threading.local()
        self.retries = retries

    def _conn(self) -> http.client.HTTPConnection:
        if getattr(self.local, "conn", None) is None:
            self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        return self.local.conn

    def post(self, task_id: str) -> tuple[int, float, int]:
        body = json.dumps({"taskID": task_id, "title": f"bench {task_id} #bench"})
        started, attempts = time.time(), 0
        while True:
            attempts += 1
            try:
                conn = self._conn()
                conn.request("POST", self.prefix + "/tasks", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                self.local.conn = None
                status = 0
            if not self.retries or status not in (0, 429, 502, 503, 504) or attempts >= 40:
                return status, started, attempts
            time.sleep(random.uniform(0, min(1.0, 0.02 * 2 ** attempts)))


def scan_tasks(ddb, table: str) -> dict[str, dict]:
    out = {}
    for page in ddb.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="taskID, #s, completedAt, updatedAt, #h",
            ExpressionAttributeNames={"#s": "status", "#h": "history"}):
        for item in page["Items"]:
            row = {k: list(v.values())[0] for k, v in item.items() if k != "history"}
            row["at"] = {h["M"]["step"]["S"]: h["M"]["at"]["S"] for h in item.get("history", {}).get("L", [])}
            out[item["taskID"]["S"]] = row
    return out


# Where a task's time goes, from the timestamps on its history: the API's work
# (POST → created), the hop through the queue and the processor into a running
# workflow (queued → started), the steps (started → validate), and the rest.
STAGES = (("post→created", None, "created"), ("created→queued", "created", "queued"),
          ("queued→started", "queued", "started"), ("started→validate", "started", "validate"),
          ("validate→completed", "validate", "completed"))


def stage_latencies(tasks: dict, posted_at: dict[str, float], ids: list[str]) -> dict:
    out = {}
    for name, a, b in STAGES:
        values = []
        for i in ids:
            at = {**tasks[i]["at"], "completed": tasks[i].get("completedAt")}
            if at.get(b) and (a is None or at.get(a)):
                values.append(iso_to_epoch(at[b]) - (posted_at[i] if a is None else iso_to_epoch(at[a])))
        out[name] = {"p50": round(pct(values, 50), 3), "p99": round(pct(values, 99), 3)}
    return out


def quiescent(clients: Clients, stack) -> bool:
    attrs = clients.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    if any(int(v) for v in attrs.values()):
        return False
    return not clients.stepfunctions.list_executions(stateMachineArn=stack.state_machine_arn,
                                                     statusFilter="RUNNING", maxResults=1)["executions"]


def run_load(clients: Clients, stack, proc_pid: int, n: int, threads: int, prefix: str,
             retries: bool = False, timeout: float = 600) -> dict:
    poster = Poster(stack.api_url, retries=retries)
    ids = [f"{prefix}-{uuid.uuid4().hex[:6]}-{i:05d}" for i in range(n)]
    sampler = MemorySampler(proc_pid)
    sampler.start()
    cpu_before = CpuSnapshot.take(proc_pid)
    t0 = time.time()
    with ThreadPoolExecutor(threads) as pool:
        posted = list(pool.map(poster.post, ids))
    post_seconds = time.time() - t0
    accepted = {i: started for i, (status, started, _) in zip(ids, posted, strict=True) if status == 202}
    post_retries = sum(a - 1 for _, _, a in posted)
    deadline = time.time() + timeout
    while True:
        # Cheap while the load runs (a full scan costs the emulator as much CPU as
        # ten tasks): scan only once the queue is drained and no execution runs.
        if quiescent(clients, stack) or time.time() > deadline:
            tasks = scan_tasks(clients.dynamodb, stack.table)
            final = {i for i in accepted if tasks.get(i, {}).get("status") in ("COMPLETED", "FAILED")}
            if len(final) == len(accepted) or time.time() > deadline:
                break
        time.sleep(0.5)
    cpu = CpuSnapshot.take(proc_pid).since(cpu_before, len(final))
    done_at = max((iso_to_epoch(tasks[i]["completedAt"]) for i in final if tasks[i].get("completedAt")),
                  default=time.time())
    peak_mib, peak_procs = sampler.stop()
    completed = [i for i in accepted if tasks.get(i, {}).get("status") == "COMPLETED"]
    latencies = [iso_to_epoch(tasks[i]["completedAt"]) - accepted[i] for i in completed]
    names = [e["name"] for p in clients.stepfunctions.get_paginator("list_executions").paginate(
        stateMachineArn=stack.state_machine_arn) for e in p["executions"] if e["name"].startswith(prefix + "-")]
    dlq = clients.sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["All"])["Attributes"]
    all_done = done_at - t0
    return {
        "tasks": n, "clients": threads, "clientRetries": retries,
        "accepted": len(accepted), "completed": len(completed),
        "non2xx": dict(sorted(Counter(str(s) for s, _, _ in posted if not 200 <= s < 300).items())),
        "failed": sum(1 for i in accepted if tasks.get(i, {}).get("status") == "FAILED"),
        "lost": len(accepted) - len(final) + (n - len(accepted)),
        "duplicateWorkflows": len(names) - len(set(names)),
        "dlq": int(dlq["ApproximateNumberOfMessages"]) + int(dlq["ApproximateNumberOfMessagesNotVisible"]),
        "postSeconds": round(post_seconds, 2), "postRetries": post_retries,
        "allDoneSeconds": round(all_done, 2), "tasksPerSecond": round(len(completed) / all_done, 1),
        "latencyP50": round(pct(latencies, 50), 3), "latencyP99": round(pct(latencies, 99), 3),
        "stages": stage_latencies(tasks, accepted, completed),
        "peakMemoryMiB": round(peak_mib), "peakEmulatorMemoryMiB": round(sampler.peak_emulator / 2**20),
        "peakPssMiB": round(sampler.peak_pss / 2**20),
        "peakProcesses": peak_procs, "cpu": cpu,
    }


def run_paced(clients: Clients, stack, rate: float, seconds: float, prefix: str) -> dict:
    """Open loop at `rate` tasks/s: latency when the system is not saturated."""
    poster = Poster(stack.api_url)
    n = int(rate * seconds)
    ids = [f"{prefix}-{uuid.uuid4().hex[:6]}-{i:05d}" for i in range(n)]
    results: list = [None] * n
    t0 = time.time()

    def fire(k: int):
        delay = t0 + k / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        results[k] = poster.post(ids[k])

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(fire, range(n)))
    time.sleep(1)
    deadline = time.time() + 120
    while True:
        tasks = scan_tasks(clients.dynamodb, stack.table)
        if all(tasks.get(i, {}).get("status") in ("COMPLETED", "FAILED") for i in ids) or time.time() > deadline:
            break
        time.sleep(0.5)
    lat = [iso_to_epoch(tasks[i]["completedAt"]) - results[k][1] for k, i in enumerate(ids)
           if tasks.get(i, {}).get("completedAt")]
    return {"rate": rate, "tasks": n, "completed": len(lat),
            "latencyP50": round(pct(lat, 50), 3), "latencyP99": round(pct(lat, 99), 3),
            "non2xx": dict(Counter(str(r[0]) for r in results if not 200 <= r[0] < 300)),
            "stages": stage_latencies(tasks, {i: results[k][1] for k, i in enumerate(ids)},
                                      [i for i in ids if tasks.get(i, {}).get("completedAt")])}


def raw_rates(clients: Clients, stack, threads: int = 8, seconds: float = 3.0) -> dict:
    """The emulator's own capability, in the same run: warm Lambda invoke, StartExecution, SQS send."""
    lam, sfn, sqs = clients.lambda_, clients.stepfunctions, clients.sqs
    fn = stack.functions["WorkflowSteps"]
    qurl = sqs.create_queue(QueueName=f"bench-raw-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    role = clients.iam.create_role(RoleName=f"bench-raw-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    sm = sfn.create_state_machine(name=f"bench-raw-{uuid.uuid4().hex[:6]}", roleArn=role,
                                  definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass",
                                                                                          "End": True}}}))
    ops = {
        "lambdaInvoke": lambda: lam.invoke(FunctionName=fn, Payload=b'{"warmup": true}'),
        "startExecution": lambda: sfn.start_execution(stateMachineArn=sm["stateMachineArn"],
                                                      name=uuid.uuid4().hex),
        "sqsSend": lambda: sqs.send_message(QueueUrl=qurl, MessageBody="x" * 200),
    }
    out = {}
    for name, op in ops.items():
        op()
        count = [0] * threads
        stop = time.time() + seconds

        def work(k: int, op=op, stop=stop, count=count):
            while time.time() < stop:
                op()
                count[k] += 1

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
        out[name] = round(sum(count) / seconds)
    sqs.delete_queue(QueueUrl=qurl)
    sfn.delete_state_machine(stateMachineArn=sm["stateMachineArn"])
    return out


def timed(cmd: list[str], env: dict[str, str], runs: int = 1) -> tuple[float, subprocess.CompletedProcess]:
    best, last = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        last = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
        best = min(best, time.perf_counter() - t)
        if last.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({last.returncode}): {last.stderr.strip()[-500:]}")
    return best, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=32, help="client connections posting concurrently")
    ap.add_argument("--retry", action="store_true",
                    help="clients retry 429/5xx with back-off (default: plain clients, each POST sent once)")
    ap.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                    help="stack parameter passed to `tmctl up` (repeatable)")
    ap.add_argument("--skip", action="append", default=[], choices=["warm", "paced", "raw", "cli"],
                    help="leave out a part of the run (repeatable)")
    ap.add_argument("--paced-rate", type=float, default=20.0, help="tasks/s of the paced latency run")
    ap.add_argument("--paced-seconds", type=float, default=10.0)
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()

    state = Path(tempfile.mkdtemp(prefix="tmctl-bench-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TMCTL_ENDPOINT_URL": endpoint, "TMCTL_STATE_DIR": str(state), "TMCTL_STAGE": "bench"}
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, stage="bench", env={}), state_dir=state)
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    try:
        up = TMCTL + ["-o", "json", "up"] + [a for kv in args.parameter for a in ("-p", kv)]
        cold_up, _ = timed(up, env)
        rerun, out = timed(up, env, runs=3)
        results["up"] = {"fromNothingSeconds": round(cold_up, 2), "noChangeSeconds": round(rerun, 2),
                         "noChangeChanged": json.loads(out.stdout)["changed"]}
        proc = emulator.read_process(target)
        clients = Clients(target)
        stack = load_stack(clients.cloudformation, target)
        results["parameters"] = args.parameter
        results["cold"] = run_load(clients, stack, proc.pid, args.tasks, args.threads, "cold", args.retry)
        if "warm" not in args.skip:
            results["warm"] = run_load(clients, stack, proc.pid, args.tasks, args.threads, "warm", args.retry)
        if "paced" not in args.skip:
            results["paced"] = run_paced(clients, stack, args.paced_rate, args.paced_seconds, "paced")
        if "raw" not in args.skip:
            results["raw"] = raw_rates(clients, stack)
        if "cli" not in args.skip:
            # Bytecode compiled first, as a normal install has it (this sandbox sets PYTHONDONTWRITEBYTECODE).
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "tmctl")], check=True,
                           capture_output=True)
            script = shutil.which("tmctl") or ""
            cli = [script] if script else TMCTL
            help_s, _ = timed([*cli, "--help"], env, runs=7)
            comp_env = {**env, "_TMCTL_COMPLETE": "complete_bash", "COMP_WORDS": "tmctl ta", "COMP_CWORD": "1"}
            comp_s, _ = timed(cli, comp_env, runs=7)
            floor_s, _ = timed([sys.executable, "-c", "import typer"], env, runs=7)
            results["cli"] = {"helpSeconds": round(help_s, 3), "completionSeconds": round(comp_s, 3),
                              "importTyperSeconds": round(floor_s, 3)}
    finally:
        emulator.stop(target)
        shutil.rmtree(state, ignore_errors=True)
    print_table(results)
    if args.json:
        print(json.dumps(results, indent=2))


def print_table(r: dict) -> None:
    rows = [
        ("tmctl up --local from nothing", f"{r['up']['fromNothingSeconds']} s", "≤ 3 s"),
        ("tmctl up --local, no change", f"{r['up']['noChangeSeconds']} s (changed={r['up']['noChangeChanged']})",
         "≤ 1.5 s"),
    ]
    if r.get("parameters"):
        rows.append(("stack parameters", " ".join(r["parameters"]), ""))
    for name in ("cold", "warm"):
        if name not in r:
            continue
        x, c = r[name], r[name]["cpu"]
        kind = "retrying" if x["clientRetries"] else "plain"
        non2xx = ", ".join(f"{k}×{v}" for k, v in x["non2xx"].items()) or "none"
        rows += [
            (f"{name}: {x['tasks']} tasks, {x['clients']} {kind} clients: non-2xx answers", non2xx, "none"),
            (f"{name}: lost / failed / dup workflows / DLQ",
             f"{x['lost']} / {x['failed']} / {x['duplicateWorkflows']} / {x['dlq']}", "0 / 0 / 0 / 0"),
            (f"{name}: all done, throughput", f"{x['allDoneSeconds']} s, {x['tasksPerSecond']} tasks/s", "≥ 100/s"),
            (f"{name}: CPU ms per task: emulator / workers / load client / machine",
             f"{c['emulatorMsPerTask']} / {c['workersMsPerTask']} / {c['clientMsPerTask']} / "
             f"{c['machineBusyMsPerTask']} ms", ""),
            (f"{name}: bound 1000/emulator ms (one core) / both cores",
             f"{c['singleCoreBoundTasksPerSecond']} / {c['machineBoundTasksPerSecond']} tasks/s", ""),
            (f"{name}: machine busy during the load", f"{round(100 * (c['machineBusyFraction'] or 0))} %", ""),
            (f"{name}: POST→COMPLETED p50 / p99", f"{x['latencyP50']} s / {x['latencyP99']} s", ""),
            (f"{name}: p50 by stage (s)", "  ".join(f"{k} {v['p50']}" for k, v in x["stages"].items()), ""),
            (f"{name}: peak RSS summed, emulator+workers (emulator alone)",
             f"{x['peakMemoryMiB']} MiB, {x['peakProcesses']} processes ({x['peakEmulatorMemoryMiB']} MiB)",
             "≤ 2048 MiB"),
            (f"{name}: peak PSS (shared pages once; sampled every 2 s)", f"{x['peakPssMiB']} MiB", ""),
            (f"{name}: POST time, client retries", f"{x['postSeconds']} s, {x['postRetries']}", ""),
        ]
    if "paced" in r:
        p = r["paced"]
        rows.append((f"paced {p['rate']:g}/s warm: POST→COMPLETED p50 / p99",
                     f"{p['latencyP50']} s / {p['latencyP99']} s ({p['completed']}/{p['tasks']})",
                     "≤ 0.15 s / ≤ 0.6 s"))
        rows.append(("paced: p50 by stage (s)", "  ".join(f"{k} {v['p50']}" for k, v in p["stages"].items()), ""))
    if "raw" in r:
        raw = r["raw"]
        rows.append(("emulator raw (8 threads): invoke / StartExecution / SQS send",
                     f"{raw['lambdaInvoke']} / {raw['startExecution']} / {raw['sqsSend']} per s", ""))
    if "cli" in r:
        rows.append(("tmctl --help / completion (best of 7)",
                     f"{r['cli']['helpSeconds']} s / {r['cli']['completionSeconds']} s", "≤ 0.12 s"))
        rows.append(("python -c 'import typer' (the floor)", f"{r['cli']['importTyperSeconds']} s", ""))
    width = max(len(a) for a, _, _ in rows)
    vwidth = max(len(b) for _, b, _ in rows)
    print(f"{'measure':<{width}}  {'result':<{vwidth}}  target")
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:<{vwidth}}  {c}")
    print(f"machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']}")


if __name__ == "__main__":
    main()
