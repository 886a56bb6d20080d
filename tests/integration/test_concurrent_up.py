"""Two `tmctl up --local` at once on a fresh port, as a user in two terminals
would run them: both must succeed (the second waits for the first and says for
whom), one engine must serve the port, and `tmctl local stop` afterwards must
stop it. Before the locks, one failed with ChangeSetNotFound (the other had
replaced its change set) and the engine that lost the port overwrote the
running one's process record, so `local stop` could not stop it.

Its own port and state dir, not the session's engine; whatever engine it
started is stopped by pid in `finally`, even if tmctl lost track of it."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tmctl.core.local import emulator
from tmctl.core.target import Clients, resolve_target

from .conftest import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"ministack \S+ on \S+ \(pid (\d+), log ")


def engines_in(wd: Path, reported: set[int]) -> set[int]:
    """Every live MiniStack started in `wd` (tmctl starts it there), plus any pid a run reported."""
    pids = set(reported)
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                if (entry / "cwd").resolve() == wd.resolve():
                    pids.add(int(entry.name))
            except OSError:
                continue
    return {pid for pid in pids if (info := emulator.process_info(pid)) and emulator.MINISTACK in info.command}


@pytest.mark.parametrize("stages", [("twice", "twice"), ("one", "two")], ids=["one stage", "two stages"])
def test_two_ups_at_once_both_succeed_and_local_stop_stops_the_engine(tmp_path, stages):
    # One stage: the second `up` waits for the first. Two stages: they deploy side by side, and
    # only the engine start is one at a time.
    endpoint = f"http://127.0.0.1:{free_port()}"
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, env={}), state_dir=tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMCTL_") and k != "AWS_ENDPOINT_URL"}
    env.update({"TMCTL_STATE_DIR": str(tmp_path), "TMCTL_ENDPOINT_URL": endpoint, "NO_COLOR": "1", "COLUMNS": "200"})
    reported: set[int] = set()
    try:
        # WHEN two `up` start at the same moment against a port nothing answers on
        t = time.monotonic()
        runs = [subprocess.Popen([sys.executable, "-m", "tmctl", "--stage", stage, "up", "--local"], env=env,
                                 cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for stage in stages]
        outputs = [run.communicate(timeout=300) for run in runs]
        both = time.monotonic() - t
        for _, err in outputs:
            reported |= {int(pid) for pid in STARTED.findall(err)}

        # THEN both succeed
        for run, (_, err) in zip(runs, outputs, strict=True):
            assert run.returncode == 0, f"pid {run.pid} exited {run.returncode}:\n{err}"
        # of one stage, one waited for the other and said so once, naming it
        waited = [(run, err) for run, (_, err) in zip(runs, outputs, strict=True) if "· waiting for pid" in err]
        if stages[0] == stages[1]:
            assert len(waited) == 1, [err for _, err in outputs]
            other = next(run for run in runs if run is not waited[0][0])
            assert waited[0][1].count("waiting for pid") == 1
            assert f"· waiting for pid {other.pid} (deploying taskmanager-{stages[0]} to {endpoint} since " in \
                waited[0][1]
        else:
            assert waited == []
        # one engine serves the port: the one recorded, the one both runs named
        recorded = emulator.read_process(target)
        assert recorded is not None, "no live engine recorded"
        assert emulator.serves(recorded.pid, target.port) is not False
        assert reported == {recorded.pid}, f"runs named {reported}, the record {recorded.pid}"
        assert engines_in(emulator.workdir(target), reported) == {recorded.pid}
        cfn = Clients(target).cloudformation
        for stage in set(stages):
            stack = cfn.describe_stacks(StackName=f"taskmanager-{stage}")["Stacks"][0]
            assert stack["StackStatus"] in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
        print(f"two concurrent `up --local` ({', '.join(stages)}): {both:.1f}s wall")

        # WHEN the engine is stopped the usual way
        stopped = subprocess.run([sys.executable, "-m", "tmctl", "local", "stop"], env=env, cwd=ROOT,
                                 capture_output=True, text=True, timeout=60)
        # THEN it is: the port no longer answers and its process is gone
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopped emulator pid {recorded.pid}" in stopped.stderr
        assert emulator.probe(endpoint) is None, f"{endpoint} still answers after `tmctl local stop`"
        assert emulator.process_info(recorded.pid) is None
    finally:
        for pid in engines_in(emulator.workdir(target), reported):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # started with its own session: its workers go with it
