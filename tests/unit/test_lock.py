"""One `up` per stack and endpoint at a time: a second waits for the first,
says once whom it waits for, and gives up with a clear error past its timeout.
Two `up` at once used to replace each other's change sets (ExecuteChangeSet:
ChangeSetNotFound).

Real threads and real processes take the locks: what is checked is the
kernel's flock between them, not a stand-in."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tmctl.core import lock
from tmctl.core import up as up_module
from tmctl.core.errors import ExitCode, TmctlError
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit

# Holds the lock at argv[1] until its stdin closes; says "held" once it has it.
HOLDER = """
import sys
from pathlib import Path
from tmctl.core.lock import file_lock
with file_lock(Path(sys.argv[1]), "holding it for the test", timeout=5):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder_process(tmp_path):
    """Another process holding a lock file (in its own session, killed after the test)."""
    procs: list[subprocess.Popen] = []

    def start(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        procs.append(proc)
        assert proc.stdout.readline() == "held\n"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        proc.stdin.close()
        proc.stdout.close()


class HeldInThread:
    """A lock held by another thread of this process until `release()`."""

    def __init__(self, cm):
        self._held, self._release = threading.Event(), threading.Event()
        self.released_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(cm,))
        self._thread.start()
        assert self._held.wait(5)

    def _run(self, cm) -> None:
        with cm:
            self._held.set()
            self._release.wait(10)
            self.released_at = time.monotonic()

    def release(self) -> None:
        self._release.set()
        self._thread.join(5)


def local_target(tmp_path, stage="dev", port=45999):
    return dataclasses.replace(resolve_target(endpoint_url=f"http://127.0.0.1:{port}", stage=stage, env={}),
                               state_dir=tmp_path)


def aws_target(tmp_path, stage="prod"):
    return dataclasses.replace(resolve_target(stage=stage, env={}), state_dir=tmp_path)


def must_wait(cm_factory) -> str:
    """Assert the lock is held elsewhere: a try with no patience fails. Returns its error."""
    with pytest.raises(TmctlError) as err, cm_factory(timeout=0):
        pytest.fail("got a lock that another holds")
    return str(err.value)


def test_a_second_thread_waits_says_for_whom_and_goes_on_once_the_first_lets_go(tmp_path):
    path = tmp_path / "locks" / "x.lock"
    first = HeldInThread(lock.file_lock(path, "deploying the first", timeout=1))
    lines: list[str] = []
    got_at: list[float] = []

    def second() -> None:
        with lock.file_lock(path, "deploying the second", timeout=10, waiting=lines.append):
            got_at.append(time.monotonic())

    waiter = threading.Thread(target=second)
    waiter.start()
    time.sleep(0.3)
    assert got_at == [], "the second got the lock while the first held it"
    first.release()
    waiter.join(5)

    assert got_at and got_at[0] >= first.released_at
    # One line, naming the holder: its pid and what it does.
    assert len(lines) == 1
    assert f"waiting for pid {os.getpid()} (deploying the first since " in lines[0] and str(path) in lines[0]


def test_a_holder_that_has_not_named_itself_yet_is_still_named(tmp_path):
    # Two `up` started at the same moment: the waiter looks between the holder's flock and its write.
    import fcntl
    import json

    path = tmp_path / "x.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        name = json.dumps({"pid": 4242, "what": "naming itself late", "since": time.time()}).encode()
        threading.Timer(0.2, lambda: os.pwrite(fd, name, 0)).start()
        lines: list[str] = []
        with pytest.raises(TmctlError), lock.file_lock(path, "deploying", timeout=1, waiting=lines.append):
            pytest.fail("got a lock another holds")
    finally:
        os.close(fd)
    assert len(lines) == 1 and lines[0].startswith("waiting for pid 4242 (naming itself late since ")


def test_no_wait_no_line(tmp_path):
    lines: list[str] = []
    with lock.file_lock(tmp_path / "x.lock", "deploying", timeout=0, waiting=lines.append):
        pass
    with lock.file_lock(tmp_path / "x.lock", "deploying", timeout=0, waiting=lines.append):
        pass  # released by the first: taken again at once
    assert lines == []


def test_held_by_another_process_the_wait_times_out_with_a_clear_error(tmp_path, holder_process):
    path = tmp_path / "x.lock"
    other = holder_process(path)
    lines: list[str] = []
    t = time.monotonic()
    with pytest.raises(TmctlError) as err, lock.file_lock(path, "deploying", timeout=0.5, waiting=lines.append):
        pytest.fail("got a lock another process holds")
    waited = time.monotonic() - t

    assert 0.5 <= waited < 3
    assert err.value.exit_code == ExitCode.ERROR
    assert err.value.message.startswith(f"gave up after 0.5s waiting for pid {other.pid} "
                                        "(holding it for the test since ")
    assert str(path) in err.value.fix
    assert len(lines) == 1 and f"pid {other.pid}" in lines[0]


def test_the_other_process_letting_go_lets_the_waiter_in(tmp_path, holder_process):
    path = tmp_path / "x.lock"
    other = holder_process(path)
    threading.Timer(0.3, other.stdin.close).start()  # it finishes its work
    with lock.file_lock(path, "deploying", timeout=10):
        assert other.wait(5) == 0


def test_a_holder_that_dies_leaves_no_lock_behind(tmp_path, holder_process):
    # A crashed or killed `up` must not block the next one: the kernel drops its flock.
    path = tmp_path / "x.lock"
    other = holder_process(path)
    os.killpg(other.pid, signal.SIGKILL)
    other.wait(5)
    with lock.file_lock(path, "deploying", timeout=0):
        pass


def test_one_up_per_stack_and_endpoint(tmp_path):
    held = HeldInThread(lock.deploy_lock(local_target(tmp_path)))
    try:
        # Same stack, same port: waits. On AWS, the same stage from this machine: waits too.
        assert "deploying taskmanager-dev to http://127.0.0.1:45999" in must_wait(
            lambda **kw: lock.deploy_lock(local_target(tmp_path), **kw))
        # Another stage, or another port (another emulator): goes ahead.
        with lock.deploy_lock(local_target(tmp_path, stage="other"), timeout=0):
            pass
        with lock.deploy_lock(local_target(tmp_path, port=46000), timeout=0):
            pass
        with lock.deploy_lock(aws_target(tmp_path, stage="dev"), timeout=0):
            pass
    finally:
        held.release()


def test_an_aws_up_of_one_stage_waits_for_another(tmp_path):
    held = HeldInThread(lock.deploy_lock(aws_target(tmp_path)))
    try:
        error = must_wait(lambda **kw: lock.deploy_lock(aws_target(tmp_path), **kw))
        assert "deploying taskmanager-prod to AWS" in error
        with lock.deploy_lock(aws_target(tmp_path, stage="staging"), timeout=0):
            pass
    finally:
        held.release()


def test_bring_up_deploys_under_the_lock_and_says_whom_it_waited_for(tmp_path, monkeypatch):
    # bring_up is the tests' and benchmarks' `up`: the same one-at-a-time rule.
    target = local_target(tmp_path)
    seen: list[str] = []

    def prepare(clients, target, **kwargs):
        seen.append(must_wait(lambda **kw: lock.deploy_lock(target, **kw)))  # held while it deploys
        return "plan"

    monkeypatch.setattr(up_module, "prepare", prepare)
    monkeypatch.setattr(up_module, "report_changes", lambda plan, progress: None)
    monkeypatch.setattr(up_module, "apply", lambda clients, plan, **kwargs: "result")
    held = HeldInThread(lock.deploy_lock(target))
    threading.Timer(0.3, held.release).start()
    lines: list[str] = []

    assert up_module.bring_up(None, target, progress=lambda message, detail=False: lines.append(message)) == "result"
    assert len(seen) == 1
    assert len(lines) == 1 and lines[0].startswith(f"waiting for pid {os.getpid()} (deploying taskmanager-dev")


def test_tmctl_up_waits_for_the_up_before_it(tmp_path, monkeypatch):
    from tmctl.cli.app import app
    from tmctl.core.local import emulator

    # GIVEN another `up` of the same stack on the same endpoint, for longer than this one waits
    monkeypatch.setattr(lock, "LOCAL_UP_WAIT", 0.5)
    monkeypatch.setattr(emulator, "launch", lambda *a, **k: pytest.fail("the engine was touched without the lock"))
    held = HeldInThread(lock.deploy_lock(local_target(tmp_path)))
    try:
        # WHEN `tmctl up` runs
        result = CliRunner().invoke(app, ["up", "--local", "--endpoint-url", "http://127.0.0.1:45999"], env={
            "TMCTL_STATE_DIR": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"})
    finally:
        held.release()
    # THEN it said whom it waited for, then gave up with one error line, before touching anything
    assert result.exit_code == ExitCode.ERROR, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"· waiting for pid {os.getpid()} (deploying taskmanager-dev to http://127.0.0.1:45999")
    assert len(lines) == 2 and lines[1].startswith(f"tmctl: error: gave up after 0.5s waiting for pid {os.getpid()}")
    assert result.stdout == ""
