"""One at a time, across processes: an exclusive `fcntl.flock` on a file in the
target's state dir. Two `tmctl up` of one stack on one endpoint would replace
each other's change sets (ExecuteChangeSet then fails with ChangeSetNotFound);
two engine starts on one port would fight over its process record.

The kernel drops a flock when its holder exits, however it exits, so a crashed
tmctl never leaves a lock behind. The files stay (removing a lock file races
whoever opens it next); while held, each names its holder so that a waiter can
say whom it waits for. Linux and macOS (flock is local-filesystem only)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from tmctl.core.errors import TmctlError
from tmctl.core.target import Target

LOCK_DIR = "locks"  # under the state dir
POLL = 0.1
NAME_WAIT = 0.5  # how long a waiter gives a new holder to write its name
# How long a second `up` waits for the first: a local deploy takes seconds, an AWS one
# minutes (and may sit at its confirmation question).
LOCAL_UP_WAIT = 600.0
AWS_UP_WAIT = 3600.0

Waiting = Callable[[str], None]


def quiet(_message: str) -> None:
    """The default `waiting` callback: say nothing."""


def lock_path(state_dir: Path, name: str) -> Path:
    return state_dir / LOCK_DIR / f"{name}.lock"


@contextmanager
def file_lock(path: Path, what: str, *, timeout: float, waiting: Waiting = quiet) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the `with` block. When another
    process (or thread) holds it, call `waiting` once with a line naming the
    holder, then wait up to `timeout` seconds for it; past that, TmctlError.
    `what` is what the holder does while it holds the lock (a waiter is shown it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (PEP 446)
    try:
        if not _try_lock(fd):
            _wait_for(fd, path, what, timeout, waiting)
        _write_holder(fd, {"pid": os.getpid(), "what": what, "since": time.time()})
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # released below, by close: a holder's record never outlives its hold
    finally:
        os.close(fd)


def _wait_for(fd: int, path: Path, what: str, timeout: float, waiting: Waiting) -> None:
    """Poll until the lock is ours; say once whom we wait for. A holder names
    itself just after it locks: its name is given NAME_WAIT to appear."""
    now = time.monotonic()
    deadline, named_by, said = now + timeout, now + NAME_WAIT, False
    while not _try_lock(fd):
        now = time.monotonic()
        holder = None if said else _holder(fd)
        if not said and (holder is not None or now >= named_by):
            waiting(f"waiting for {holder or f'another process ({what})'}; lock {path}")
            said = True
        if now >= deadline:
            raise TmctlError(f"gave up after {timeout:g}s waiting for {_holder(fd) or f'another process ({what})'}",
                             f"let it finish, or stop it, then retry; its lock file: {path}")
        time.sleep(POLL if said else 0.01)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(fd: int, holder: dict) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)


def _holder(fd: int) -> str | None:
    """Who holds the lock, as a waiter says it: "pid 123 (deploying … since 10:00:00)";
    None while it has not named itself (read without the lock)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid, since, what = int(holder["pid"]), float(holder["since"]), str(holder["what"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"pid {pid} ({what} since {time.strftime('%H:%M:%S', time.localtime(since))})"


def deploy_lock(target: Target, *, waiting: Waiting = quiet, timeout: float | None = None) -> (
        AbstractContextManager[None]):
    """One `up` per stack and endpoint at a time, from this machine (this state dir):
    per port and stack on an emulator, per stack on AWS."""
    if target.endpoint_url:  # an emulator, or AWS mode sent to one
        name, where = f"up-{target.port}-{target.stack_name}", target.endpoint_url
    else:
        name, where = f"up-aws-{target.stack_name}", "AWS"
    if timeout is None:
        timeout = LOCAL_UP_WAIT if target.local else AWS_UP_WAIT
    return file_lock(lock_path(target.state_dir, name), f"deploying {target.stack_name} to {where}",
                     timeout=timeout, waiting=waiting)
