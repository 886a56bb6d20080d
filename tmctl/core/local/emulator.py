"""The local engine: detect what answers on the endpoint, start the embedded
MiniStack as a background process (pid, start time and log in the state dir),
stop it by pid once the pid is proven to still be that process.

Starting and stopping take a per-port lock (tmctl.core.lock), so two tmctl
never start two engines on one port; the process record is written once the
engine answers, and never over the record of a live one."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tmctl.core import settings
from tmctl.core.errors import BackendUnreachable, TmctlError, UsageError
from tmctl.core.local import persist
from tmctl.core.local.limits import local_engine_env
from tmctl.core.lock import Waiting, file_lock, lock_path, quiet
from tmctl.core.target import Target

MINISTACK = "ministack"
LOCALSTACK = "localstack"
HEALTH_PATHS = ((MINISTACK, "/_ministack/health"), (LOCALSTACK, "/_localstack/health"))
START_TIMEOUT = 30.0
START_LOCK_WAIT = 2 * START_TIMEOUT + 10.0  # its holder boots an engine (or stops one) and lets go


@dataclass(frozen=True)
class Engine:
    name: str  # ministack | localstack
    version: str
    endpoint: str
    health: dict = field(default_factory=dict, compare=False, repr=False)  # its health body, as it answered


@dataclass(frozen=True)
class EmulatorProcess:
    pid: int
    port: int
    log: Path
    workdir: Path


def _get_json(url: str, timeout: float) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback/explicit endpoint
            if resp.status != 200:
                return None
            return json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def probe(endpoint: str, timeout: float = 0.5) -> Engine | None:
    """The engine answering on `endpoint`, or None. MiniStack also answers
    LocalStack's path, so its own is asked first."""
    for name, path in HEALTH_PATHS:
        body = _get_json(endpoint + path, timeout)
        if body is not None:
            return Engine(name, str(body.get("version", "?")), endpoint, body)
    return None


def localstack_session(endpoint: str, timeout: float = 1.0) -> str | None:
    """LocalStack's run id (/_localstack/info `session_id`): new at every start."""
    body = _get_json(endpoint + "/_localstack/info", timeout)
    session = (body or {}).get("session_id")
    return str(session) if session else None


def workdir(target: Target) -> Path:
    return target.state_dir / f"emulator-{target.port}"


RECORD_FILE = "process.json"  # pid + start time of the emulator tmctl started (older tmctl: a bare `pid` file)
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    """What names one process for its whole life: a pid is reused, (pid, start) is not."""

    started: str  # opaque, compared for equality only
    command: str


def process_info(pid: int) -> ProcessInfo | None:
    """The running process `pid`'s start time and command line, or None if it is gone.
    Linux: /proc (boot id + start in clock ticks: exact). Elsewhere (macOS, BSD):
    `ps -o lstart=` (to the second; the command line must match as well)."""
    if (PROC / "self" / "stat").exists():
        try:
            stat = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            boot = (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        except (OSError, IndexError):
            return None
        if stat[0] == "Z":  # exited, not yet reaped by its parent: gone all the same
            return None
        return ProcessInfo(f"linux:{boot}:{stat[19]}", cmdline.strip())  # field 22: starttime
    try:
        out = subprocess.run(["ps", "-ww", "-o", "lstart=", "-o", "command=", "-p", str(pid)],  # noqa: S607 - POSIX ps
                             capture_output=True, text=True, timeout=5, env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.split(None, 5)  # "Tue May 12 10:00:00 2026 python -m ministack"
    return ProcessInfo("ps:" + " ".join(parts[:5]), parts[5].strip()) if len(parts) == 6 else None


def record_process(target: Target, pid: int) -> bool:
    """Remember the emulator just started, once it answers; False (nothing
    written) when a live emulator of ours is recorded already: the record names
    the one process `local stop` stops, and another's is never overwritten.
    Written whole or not at all (a unique temp file, then os.replace). Callers
    hold the port's start lock, so the check and the write are not raced by tmctl."""
    current = read_process(target)
    if current is not None and current.pid != pid:
        return False
    info = process_info(pid)
    wd = workdir(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{RECORD_FILE}.", suffix=".tmp", dir=wd)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": pid, "started": info.started if info else None}, f)
        os.replace(tmp, wd / RECORD_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def forget_process(target: Target) -> None:
    wd = workdir(target)
    for name in (RECORD_FILE, "pid"):
        (wd / name).unlink(missing_ok=True)


def read_process(target: Target) -> EmulatorProcess | None:
    """The emulator tmctl started on this port, only if that very process still
    runs: same pid, same start time, still MiniStack. Anything else (gone, pid
    reused, an old record without a start time) is never ours to signal."""
    wd = workdir(target)
    try:
        record = json.loads((wd / RECORD_FILE).read_text())
        pid, started = int(record["pid"]), record["started"]
    except (OSError, ValueError, KeyError, TypeError):
        return _legacy_process(target)
    if not started or not _alive(pid):
        return None
    info = process_info(pid)
    if info is None or info.started != started or MINISTACK not in info.command:
        return None
    return EmulatorProcess(pid, target.port, wd / "ministack.log", wd)


def _legacy_process(target: Target) -> EmulatorProcess | None:
    """An emulator started by a tmctl that wrote only a bare `pid` file. Proven
    ours on Linux alone: it is MiniStack and runs in this very work dir (tmctl
    starts it there). Elsewhere nothing proves it, so it is left alone."""
    wd = workdir(target)
    try:
        pid = int((wd / "pid").read_text().strip())
        ours = (PROC / str(pid) / "cwd").resolve() == wd.resolve()
        command = (PROC / str(pid) / "cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if not ours or MINISTACK.encode() not in command:
        return None
    return EmulatorProcess(pid, target.port, wd / "ministack.log", wd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists"; reap it if so.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        pass
    # Another process's zombie (the engine's parent has not reaped it yet) has exited all the same:
    # waiting for it would turn a clean stop into a timeout.
    if (PROC / "self" / "stat").exists():
        return process_info(pid) is not None
    return True


def emulator_env(target: Target, wd: Path, *, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(var, None)  # the engine's own workers get their endpoint from it
    env.update({
        "GATEWAY_PORT": str(target.port),
        "BIND_HOST": "127.0.0.1",  # only ever started for a loopback endpoint
        "IOT_MTLS_ENABLED": "0",
        "AUTH": "true",  # every handler call checked against its role, as on AWS
        "MINISTACK_REGION": target.region,
        "TMPDIR": str(wd / "tmp"),  # worker temp dirs land here and go with `local stop`
        "STATE_DIR": str(wd / persist.STATE),  # the engine's own files stay in tmctl's state dir, not /tmp
        "LOG_LEVEL": settings.EMULATOR_LOG_LEVEL.get(env),
        **local_engine_env(),
        **persist.engine_env(wd, env),  # saved at a graceful stop, loaded at the next start
    })
    env.update(extra or {})
    return env


def start_lock(target: Target, what: str, waiting: Waiting = quiet):
    """One engine start (or stop) per port at a time, among tmctl sharing this state dir."""
    return file_lock(lock_path(target.state_dir, f"engine-{target.port}"), f"{what} the emulator on port "
                     f"{target.port}", timeout=START_LOCK_WAIT, waiting=waiting)


def serves(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds the listening TCP socket on `port`; None when
    the system cannot tell. Linux: its sockets in /proc; elsewhere `lsof`."""
    if (PROC / "self" / "stat").exists():
        inodes, tables = set(), 0
        for table in ("tcp", "tcp6"):
            try:
                rows = (PROC / str(pid) / "net" / table).read_text().splitlines()[1:]
            except OSError:
                continue
            tables += 1
            for row in rows:  # sl local_address rem_address st … inode
                fields = row.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")  # 0A: LISTEN
        try:
            fds = list((PROC / str(pid) / "fd").iterdir()) if tables else None
        except OSError:
            fds = None
        if fds is None:
            return None
        return any(_readlink(fd) in inodes for fd in fds)
    try:
        out = subprocess.run(["lsof", "-nP", "-a", "-p", str(pid), f"-iTCP:{port}", "-sTCP:LISTEN", "-t"],  # noqa: S607
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return str(pid) in out.stdout.split()


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


@dataclass(frozen=True)
class Restored:
    """What an engine just spawned found in its work dir, told before it starts."""

    state_dir: Path
    saved_at: dt.datetime | None  # the last save (None: nothing saved)
    crashed: bool  # the previous engine ended without a clean stop: the state may be older than that
    in_flight: persist.InFlight  # messages received but not finished at the stop
    log_offset: int = 0  # where the new engine's lines begin in its log
    spawned_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))  # before it loaded anything


def _before_spawn(target: Target, wd: Path, *, fresh: bool = False) -> Restored:
    """Look at the saved state before an engine loads it: refuse a newer engine's
    files (never half-loaded), note a crash, collect the in-flight messages."""
    record_present = (wd / RECORD_FILE).exists() or (wd / "pid").exists()
    crashed = persist.clean_stop(wd) is None and (record_present or bool(persist.state_files(wd)))
    if fresh or not persist.enabled():
        if fresh:
            persist.wipe(wd)
        persist.clear_clean_stop(wd)
        return Restored(wd / persist.STATE, None, False, persist.InFlight(), _size(wd / "ministack.log"))
    persist.check_versions(wd)
    saved = persist.last_saved(wd)
    restored = Restored(wd / persist.STATE, saved, crashed, persist.in_flight(wd), _size(wd / "ministack.log"))
    persist.clear_clean_stop(wd)  # written again only by the next clean stop
    return restored


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass
class Launch:
    """An engine being brought up: `wait()` returns once it answers. Lets `up`
    package artifacts and load boto3 while the emulator boots. Until it answers
    a thread of its own holds the port's start lock; it then records the engine
    (or, if another engine took the port first, stops ours and reuses that one)
    whether or not anyone waits, so an interrupted `up` leaves no unrecorded engine."""

    target: Target
    timeout: float
    engine: Engine | None = None
    proc: subprocess.Popen | None = None  # None: an engine of ours already recorded, still booting
    log_path: Path | None = None
    restored: Restored | None = None  # what a newly spawned engine loads from its saved state
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _outcome: tuple[Engine, EmulatorProcess | None] | None = field(default=None, init=False, repr=False)
    _error: BaseException | None = field(default=None, init=False, repr=False)

    def wait(self) -> tuple[Engine, EmulatorProcess | None]:
        if self._thread is None:  # something already answered
            return self.engine, read_process(self.target)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self.engine = self._outcome[0]
        return self._outcome

    def _settle(self, lock: contextlib.ExitStack) -> None:
        self._thread = threading.Thread(target=self._run, args=(lock,), name=f"tmctl-engine-{self.target.port}")
        self._thread.start()  # not a daemon: the process exits only once the engine is recorded or ended

    def _run(self, lock: contextlib.ExitStack) -> None:
        try:
            with lock:
                self._outcome = self._until_it_answers()
        except BaseException as err:  # noqa: BLE001 - handed to wait()
            self._error = err

    def _until_it_answers(self) -> tuple[Engine, EmulatorProcess | None]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            engine = probe(self.target.endpoint_url, timeout=0.3)
            if engine is not None:
                return self._claim(engine)
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
                raise TmctlError(f"the embedded emulator exited with {self.proc.returncode}: {tail[0]}",
                                 f"see {self.log_path}; is port {self.target.port} taken?")
            time.sleep(0.05)
        if self.proc is None:
            recorded = read_process(self.target)
            raise BackendUnreachable(f"the emulator tmctl started on port {self.target.port}"
                                     f"{f' (pid {recorded.pid})' if recorded else ''} does not answer",
                                     f"`tmctl local stop`, then retry; see {self.log_path}")
        _end_launched(self.proc)  # no record of it yet: ended through the child we hold
        raise BackendUnreachable(f"the embedded emulator did not answer within {self.timeout:.0f}s",
                                 f"see {self.log_path}")

    def _claim(self, engine: Engine) -> tuple[Engine, EmulatorProcess | None]:
        """Something answers: ours (record it), or another engine that took the port first (end ours)."""
        if self.proc is None:
            return engine, read_process(self.target)
        pid, port = self.proc.pid, self.target.port
        listening = serves(pid, port)  # None: cannot tell; then an answer while ours runs counts as ours
        if self.proc.poll() is None and listening is not False:
            refused = persist.refusals(self.log_path, self.restored.log_offset) if self.restored else []
            if refused:  # the check before the start missed it: end the engine unsaved, the files stay as they are
                _signal_group(pid, signal.SIGKILL)
                self.proc.wait()
                raise persist.NewerStateError(f"the emulator refused part of its saved state: {refused[0]}",
                                              "`tmctl local reset` (empties it) or `tmctl local start --fresh`")
            if record_process(self.target, pid):
                return engine, EmulatorProcess(pid, port, self.log_path, self.log_path.parent)
            recorded = read_process(self.target)
            _end_launched(self.proc)
            raise TmctlError(f"an emulator of tmctl's (pid {recorded.pid if recorded else '?'}) is recorded for "
                             f"port {port} already; stopped the one just started (pid {pid})",
                             "`tmctl local stop`, then retry")
        # Ours found the port taken (it exits) or is about to: it goes, the one that answers serves.
        _end_launched(self.proc, timeout=2.0)
        return engine, read_process(self.target)


def _spawn(target: Target, wd: Path, extra_env: dict[str, str] | None) -> subprocess.Popen:
    with open(wd / "ministack.log", "ab") as log:
        return subprocess.Popen(  # noqa: S603 - our own interpreter, fixed args
            [sys.executable, "-m", "ministack"], env=emulator_env(target, wd, extra=extra_env),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=wd,
        )


def launch(target: Target, *, extra_env: dict[str, str] | None = None, timeout: float = START_TIMEOUT,
           waiting: Waiting = quiet, fresh: bool = False) -> Launch:
    """Reuse whatever LocalStack-compatible engine answers; else start MiniStack (without waiting).
    `waiting` is told once if another tmctl is starting or stopping the engine on this port.
    `fresh`: start from nothing (the saved state is removed first); refused if an engine already answers."""
    if not target.is_loopback:
        engine = probe(target.endpoint_url)
        if engine is not None:
            return Launch(target, timeout, engine=engine)
        raise BackendUnreachable(f"nothing answers on {target.endpoint_url}",
                                 "start the engine there, or use a localhost endpoint to get the embedded one")
    wd = workdir(target)
    lock = contextlib.ExitStack()
    with lock:
        # Looked at under the lock: whoever starts an engine here holds it until that engine is recorded
        # (or ended), so reusing one that just began to answer still finds its record.
        lock.enter_context(start_lock(target, "starting", waiting))
        engine = probe(target.endpoint_url)
        if engine is not None:
            if fresh:
                raise UsageError(f"an emulator already runs on port {target.port}: --fresh starts only a new one",
                                 "`tmctl local reset` empties it, or `tmctl local stop` first")
            return Launch(target, timeout, engine=engine)
        (wd / "tmp").mkdir(parents=True, exist_ok=True)
        # A live engine of ours recorded but not answering yet is waited for, never doubled.
        restored = proc = None
        if read_process(target) is None:
            restored = _before_spawn(target, wd, fresh=fresh)
            proc = _spawn(target, wd, extra_env)
        booting = Launch(target, timeout, proc=proc, log_path=wd / "ministack.log", restored=restored)
        booting._settle(lock.pop_all())  # the lock goes with it, released once the engine answers
        return booting


def start(target: Target, *, extra_env: dict[str, str] | None = None, timeout: float = START_TIMEOUT) -> tuple[
        Engine, EmulatorProcess | None]:
    return launch(target, extra_env=extra_env, timeout=timeout).wait()


STOP_TIMEOUT = 60.0  # SIGTERM, then this long for the engine to save its state and exit, before SIGKILL


def stop(target: Target, timeout: float = STOP_TIMEOUT) -> int | None:
    """Stop the emulator tmctl started on this port (by its pid, with its
    worker processes), and remove its temp files. Gracefully: SIGTERM, and the
    engine saves its state as it shuts down; only what still runs after
    `timeout` is killed (then no clean stop is marked: persist.clean_stop tells
    which it was). The saved state stays. Returns the pid, or None."""
    with start_lock(target, "stopping"):  # never while another tmctl starts one here
        proc = read_process(target)
        wd = workdir(target)
        if proc is None:
            forget_process(target)  # nothing of ours runs: a stale record must not outlive it
            return None
        began = time.monotonic()
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = began + timeout
        while _alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        clean = not _alive(proc.pid)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers: Lambda workers that ignored SIGTERM
        if clean:
            persist.mark_clean_stop(wd, proc.pid, seconds=time.monotonic() - began)
        forget_process(target)
        shutil.rmtree(wd / "tmp", ignore_errors=True)
        return proc.pid


def _end_launched(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """End an engine this process started and has not recorded: its group, then reap it."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers left in its group
    proc.wait()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: pgid == pid
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def require_engine(target: Target) -> Engine:
    if not target.local:
        raise UsageError("this command needs an emulator target", "add --local")
    engine = probe(target.endpoint_url)
    if engine is None:
        raise BackendUnreachable(f"no emulator answers on {target.endpoint_url}",
                                 "run `tmctl up --local` (or `tmctl local start`)")
    return engine


def group_members(pgid: int) -> list[tuple[int, list[str]]]:
    """(pid, /proc/<pid>/stat fields after the command name) of every process in
    a process group: the emulator and its Lambda workers. Empty without /proc."""
    out = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # pgrp
                out.append((int(entry.name), fields))
        except (OSError, ValueError, IndexError):
            continue
    return out


def group_rss_bytes(pid: int) -> int:
    """Resident memory of a process group (the emulator and its Lambda workers)."""
    total = 0
    for member, _ in group_members(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            continue
    return total


@dataclass(frozen=True)
class ResetResult:
    running: bool  # a running engine was emptied (else only the saved state was removed)
    state_dir: Path


def reset(target: Target) -> ResetResult:
    """Empty the local engine and its saved state: nothing is kept. A running
    MiniStack is emptied through its reset endpoint (memory, state files, S3
    data); a stopped one's saved state is removed (files, code blobs, S3 objects)."""
    wd = workdir(target)
    with start_lock(target, "resetting"):
        engine = probe(target.endpoint_url)
        if engine is not None and engine.name != MINISTACK:
            raise UsageError(f"{engine.name} answers on {target.endpoint_url}: `local reset` empties MiniStack only",
                             "reset that engine its own way (LocalStack: restart its container without a volume)")
        if engine is not None:
            req = urllib.request.Request(target.endpoint_url + "/_ministack/reset", data=b"", method="POST")
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the loopback engine
                    resp.read()
            except (urllib.error.URLError, OSError) as err:
                raise BackendUnreachable(f"the emulator on {target.endpoint_url} did not reset: {err}",
                                         "`tmctl local stop`, then `tmctl local start --fresh`") from None
            persist.clear_clean_stop(wd)
        else:
            persist.wipe(wd)
    return ResetResult(engine is not None, wd / persist.STATE)
