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
import threading
import time
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
        # ps cuts a command line to the terminal's width (COLUMNS, else 80 when piped): a narrow one must
        # not hide "ministack" from the check that a recorded pid is still the emulator.
        monkeypatch.setenv("COLUMNS", "40")
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


# ------------------------------------------------------------- writing the record
# Two `up --local` at once used to start two engines: the one that lost the port
# overwrote the record of the one that runs, and `local stop` could no longer stop it.


def test_a_live_record_is_never_overwritten(backend, target, spawn):
    # GIVEN the record of an emulator of ours that still runs
    first, second = spawn("ministack"), spawn("ministack")
    assert emulator.record_process(target, first.pid) is True
    # WHEN another start tries to record its own
    assert emulator.record_process(target, second.pid) is False
    # THEN the record still names the live one, which `stop` still stops
    assert record(target)["pid"] == first.pid
    assert emulator.stop(target, timeout=5) == first.pid
    # and once it is gone, a new one may be recorded
    assert emulator.record_process(target, second.pid) is True
    assert emulator.read_process(target).pid == second.pid


def test_the_record_is_written_whole_under_a_temp_name_of_its_own(target, spawn, monkeypatch):
    # GIVEN another writer's temp file beside the record (a fixed temp name is shared by every writer)
    wd = emulator.workdir(target)
    theirs = wd / (emulator.RECORD_FILE + ".part")
    theirs.write_text("another writer's half-written record")
    proc = spawn("ministack")
    moved = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (moved.append(Path(src)), real_replace(src, dst)))
    # WHEN the record is written
    emulator.record_process(target, proc.pid)
    # THEN it arrived by one rename of a file of its own, the other writer's file is untouched, nothing is left over
    assert record(target)["pid"] == proc.pid
    assert len(moved) == 1 and moved[0].parent == wd and moved[0] != theirs
    assert theirs.read_text() == "another writer's half-written record"
    assert sorted(p.name for p in wd.iterdir()) == sorted([emulator.RECORD_FILE, theirs.name])


def test_a_failed_write_leaves_the_old_record_and_no_temp_file(target, spawn, monkeypatch):
    old = spawn("something-else")  # recorded, but not a live emulator of ours: may be replaced
    emulator.record_process(target, old.pid)
    before = (emulator.workdir(target) / emulator.RECORD_FILE).read_text()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        emulator.record_process(target, spawn("ministack").pid)
    assert (emulator.workdir(target) / emulator.RECORD_FILE).read_text() == before
    assert [p.name for p in emulator.workdir(target).iterdir()] == [emulator.RECORD_FILE]


# ------------------------------------------------------------- starting the engine
# Sleepers named ministack stand in for the engine tmctl starts; the health probe
# (a network call) is replaced by "answers once the test says so".

LISTENER = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "print(s.getsockname()[1], flush=True); time.sleep(60)")


@dataclasses.dataclass
class Engines:
    """What tmctl started (`spawned`) and what answers on the port (`answering`)."""

    spawned: list[subprocess.Popen] = dataclasses.field(default_factory=list)
    answering: bool = False
    boot_seconds: float | None = None  # set: a spawned engine answers that long after it starts
    on_spawn: object = None  # called as tmctl starts its engine: what else happens meanwhile
    listening: set[int] = dataclasses.field(default_factory=set)  # pids that hold the port
    spawned_listen: bool = False  # set: what tmctl starts holds the port

    def answers(self) -> bool:
        if self.boot_seconds is not None and self.spawned:
            return time.monotonic() - self.spawned[0].started_at >= self.boot_seconds
        return self.answering


@pytest.fixture
def engines(monkeypatch, target) -> Iterator[Engines]:
    world = Engines()
    real_popen = subprocess.Popen

    def popen(args, **kwargs):
        if list(args[1:]) != ["-m", "ministack"]:
            return real_popen(args, **kwargs)
        if callable(world.on_spawn):
            world.on_spawn()
        proc = real_popen([sys.executable, "-c", SLEEPER, "ministack"], **kwargs)
        proc.started_at = time.monotonic()
        world.spawned.append(proc)
        if world.spawned_listen:
            world.listening.add(proc.pid)
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(emulator, "probe", lambda endpoint, timeout=0.5: emulator.Engine(
        "ministack", "1.5.33", endpoint) if world.answers() else None)
    real_serves = getattr(emulator, "serves", None)
    monkeypatch.setattr(emulator, "serves", lambda pid, port: True if pid in world.listening else (
        real_serves(pid, port) if real_serves else False), raising=False)
    yield world
    for proc in world.spawned:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def test_the_record_is_written_once_the_engine_answers(target, engines):
    booting = emulator.launch(target)
    time.sleep(0.3)
    assert len(engines.spawned) == 1
    assert no_record(target), "recorded before it answered"
    ours = engines.spawned[0]
    engines.listening.add(ours.pid)
    engines.answering = True

    engine, proc = booting.wait()

    assert proc.pid == ours.pid and record(target)["pid"] == ours.pid
    assert emulator.read_process(target).pid == ours.pid


@pytest.mark.parametrize("ours", ["still booting", "exited: the port was taken"])
def test_the_loser_of_a_start_race_does_not_clobber_the_winner(backend, target, spawn, engines, ours):
    # GIVEN another engine of ours that takes the port (and records itself) just as this start begins
    winner = None

    def another_start_wins():
        nonlocal winner
        winner = spawn("ministack")
        emulator.record_process(target, winner.pid)
        engines.listening.add(winner.pid)
        engines.answering = True

    engines.on_spawn = another_start_wins
    # WHEN this start's engine loses the port
    booting = emulator.launch(target)
    loser = engines.spawned[0]
    if ours.startswith("exited"):
        os.killpg(loser.pid, signal.SIGKILL)
    engine, proc = booting.wait()
    # THEN it reuses the winner: the record still names it, ours is gone, and `stop` stops the winner
    assert proc is not None and proc.pid == winner.pid
    assert record(target)["pid"] == winner.pid
    assert loser.poll() is not None, "the losing engine was left running"
    assert emulator.stop(target, timeout=5) == winner.pid
    assert winner.wait(5) is not None


def test_two_starts_at_once_start_one_engine_and_the_second_says_whom_it_waits_for(target, engines):
    # GIVEN two starts on one port, both looking before either engine answers
    engines.boot_seconds = 0.3
    engines.spawned_listen = True
    results, lines = [], []

    def start():
        results.append(emulator.launch(target, waiting=lines.append).wait())

    # WHEN they run at once
    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # THEN one engine started, both use it, it is the one recorded, and the second said whom it waited for
    assert len(engines.spawned) == 1, "two engines started for one port"
    ours = engines.spawned[0].pid
    assert [proc.pid for _, proc in results] == [ours, ours]
    assert record(target)["pid"] == ours
    assert len(lines) == 1 and lines[0].startswith(f"waiting for pid {os.getpid()} (starting the emulator on port")


def test_a_start_that_finds_an_engine_just_answering_still_finds_its_record(target, engines, monkeypatch):
    # GIVEN a start whose engine answers, caught between its first answer and its record
    engines.spawned_listen = True
    recording, real_record = threading.Event(), emulator.record_process

    def slow_record(target, pid):
        recording.set()
        time.sleep(0.3)
        return real_record(target, pid)

    monkeypatch.setattr(emulator, "record_process", slow_record)
    first = emulator.launch(target)
    engines.answering = True
    assert recording.wait(5)
    # WHEN another start looks now
    _, proc = emulator.launch(target).wait()
    # THEN it reuses that engine and names it, as `up` and `local start` show it
    assert proc is not None and proc.pid == engines.spawned[0].pid
    assert first.wait()[1].pid == proc.pid and len(engines.spawned) == 1


def test_a_recorded_engine_still_booting_is_waited_for_not_doubled(target, spawn, engines):
    # GIVEN a live engine of ours, recorded, not answering yet
    booting_engine = spawn("ministack")
    emulator.record_process(target, booting_engine.pid)
    # WHEN a start comes
    booting = emulator.launch(target)
    engines.answering = True
    _, proc = booting.wait()
    # THEN it starts no second engine on the port: it waits for that one and names it
    assert engines.spawned == []
    assert proc.pid == booting_engine.pid and record(target)["pid"] == booting_engine.pid


def test_serves_tells_which_process_holds_a_listening_port(backend, spawn):
    listener = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(listener.stdout.readline())
        other = spawn("ministack")
        assert emulator.serves(listener.pid, port) is True
        assert emulator.serves(other.pid, port) is False
        assert emulator.serves(listener.pid, port + 1 if port < 65535 else port - 1) is False
    finally:
        listener.kill()
        listener.wait(5)
        listener.stdout.close()
