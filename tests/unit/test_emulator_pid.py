"""Stopping the emulator signals a pid only while it is still the process tmctl
started: same start time, still MiniStack. A pid file alone proves nothing once
the process is gone and the pid reused (macOS has no /proc to ask).

Real child processes stand in for the emulator: what is checked is the operating
system's own answer about them, through /proc and through `ps` (macOS's path)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tmctl.core.local import emulator
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit

# Says when it runs: until then its command line may still be empty (exec in progress).
SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


@pytest.fixture(params=["proc", "ps"])
def backend(request, monkeypatch) -> str:
    """Run each test with Linux's /proc and with the `ps` fallback macOS uses."""
    if request.param == "ps":
        monkeypatch.setattr(emulator, "PROC", Path("/nonexistent-proc"))
    elif not (emulator.PROC / "self" / "stat").exists():
        pytest.skip("no /proc on this system")
    return request.param


@pytest.fixture
def target(tmp_path):
    target = dataclasses.replace(resolve_target(endpoint_url="http://127.0.0.1:45999", env={}), state_dir=tmp_path)
    emulator.workdir(target).mkdir(parents=True)
    return target


@pytest.fixture
def spawn() -> Iterator:
    """Start a sleeping process (in its own group, as the emulator is); kill what is left after the test."""
    procs: list[subprocess.Popen] = []

    def start(*argv: str, cwd: Path | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", SLEEPER, *argv], start_new_session=True,
                                stdout=subprocess.PIPE, text=True, cwd=cwd)
        procs.append(proc)
        assert proc.stdout.readline() == "ready\n"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        proc.stdout.close()


def record(target) -> dict:
    return json.loads((emulator.workdir(target) / emulator.RECORD_FILE).read_text())


def rewrite(target, **changes) -> None:
    path = emulator.workdir(target) / emulator.RECORD_FILE
    path.write_text(json.dumps({**record(target), **changes}))


def no_record(target) -> bool:
    wd = emulator.workdir(target)
    return not (wd / emulator.RECORD_FILE).exists() and not (wd / "pid").exists()


def test_the_process_tmctl_started_is_signalled(backend, target, spawn, monkeypatch):
    # GIVEN the emulator tmctl started, still running
    proc = spawn("ministack")
    emulator.record_process(target, proc.pid)
    assert emulator.read_process(target).pid == proc.pid
    sent = []
    real = emulator._signal_group
    monkeypatch.setattr(emulator, "_signal_group", lambda pid, sig: (sent.append((pid, sig)), real(pid, sig)))
    # WHEN it is stopped
    assert emulator.stop(target, timeout=5) == proc.pid
    # THEN its group got SIGTERM, it is gone (stop reaped it), and the record went with it
    assert sent[0] == (proc.pid, signal.SIGTERM)
    assert proc.wait(5) is not None and emulator.process_info(proc.pid) is None
    assert no_record(target)


def test_a_reused_pid_is_not_signalled_and_the_stale_record_is_dropped(backend, target, spawn):
    # GIVEN a record whose process is gone, its pid now another process's
    # (same pid, a different start time: what a reused pid looks like)
    proc = spawn("ministack")
    emulator.record_process(target, proc.pid)
    rewrite(target, started=record(target)["started"] + "-earlier")
    # THEN it is not ours: status shows none, stop signals nothing and forgets the record
    assert emulator.read_process(target) is None
    assert emulator.stop(target, timeout=1) is None
    assert proc.poll() is None, "a process that is not ours was signalled"
    assert no_record(target)


def test_a_pid_that_is_not_ministack_is_not_signalled(backend, target, spawn):
    proc = spawn("something-else")
    emulator.record_process(target, proc.pid)
    assert emulator.stop(target, timeout=1) is None
    assert proc.poll() is None
    assert no_record(target)


def test_a_pid_that_is_gone_is_not_signalled(backend, target, spawn, monkeypatch):
    # GIVEN the emulator exited (and was reaped) since it was recorded
    proc = spawn("ministack")
    emulator.record_process(target, proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)
    sent = []
    monkeypatch.setattr(emulator, "_signal_group", lambda pid, sig: sent.append((pid, sig)))
    # THEN nothing is signalled and the record is cleaned up
    assert emulator.read_process(target) is None
    assert emulator.stop(target, timeout=1) is None
    assert sent == []
    assert no_record(target)


def test_an_old_bare_pid_file_is_not_trusted(target, spawn):
    # A record from before start times were kept, for a process elsewhere: nothing proves it ours.
    proc = spawn("ministack")
    (emulator.workdir(target) / "pid").write_text(str(proc.pid))
    assert emulator.stop(target, timeout=1) is None
    assert proc.poll() is None
    assert no_record(target)


def test_an_old_bare_pid_file_of_an_emulator_in_its_work_dir_is_still_stopped(backend, target, spawn, monkeypatch):
    # Upgrading tmctl must not orphan the emulator the old one started: on Linux its
    # work dir (tmctl starts it there) and command line prove it ours; without /proc nothing does.
    proc = spawn("ministack", cwd=emulator.workdir(target))
    (emulator.workdir(target) / "pid").write_text(str(proc.pid))
    sent = []
    monkeypatch.setattr(emulator, "_signal_group", lambda pid, sig: sent.append((pid, sig)))

    stopped = emulator.stop(target, timeout=0.1)

    if backend == "proc":
        assert stopped == proc.pid and sent and sent[0] == (proc.pid, signal.SIGTERM)
    else:
        assert stopped is None and sent == []
    assert no_record(target)


def test_process_info_names_a_process_for_its_life(backend, spawn):
    proc = spawn("ministack")
    first = emulator.process_info(proc.pid)
    assert first is not None and "ministack" in first.command
    assert first.started.startswith("linux:" if backend == "proc" else "ps:")
    assert emulator.process_info(proc.pid) == first  # stable while it runs
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)
    assert emulator.process_info(proc.pid) is None


def test_a_corrupt_record_is_no_process(target):
    (emulator.workdir(target) / emulator.RECORD_FILE).write_text("{not json")
    assert emulator.read_process(target) is None
    assert emulator.stop(target, timeout=1) is None
    assert no_record(target)
