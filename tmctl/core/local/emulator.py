"""The local engine: detect what answers on the endpoint, start the embedded
MiniStack as a background process (pid, start time and log in the state dir),
stop it by pid once the pid is proven to still be that process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tmctl.core import settings
from tmctl.core.errors import BackendUnreachable, TmctlError, UsageError
from tmctl.core.local.limits import local_engine_env
from tmctl.core.target import Target

MINISTACK = "ministack"
LOCALSTACK = "localstack"
HEALTH_PATHS = ((MINISTACK, "/_ministack/health"), (LOCALSTACK, "/_localstack/health"))
START_TIMEOUT = 30.0


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
        return ProcessInfo(f"linux:{boot}:{stat[19]}", cmdline.strip())  # field 22: starttime
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-o", "command=", "-p", str(pid)],  # noqa: S607 - POSIX ps
                             capture_output=True, text=True, timeout=5, env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.split(None, 5)  # "Tue May 12 10:00:00 2026 python -m ministack"
    return ProcessInfo("ps:" + " ".join(parts[:5]), parts[5].strip()) if len(parts) == 6 else None


def record_process(target: Target, pid: int) -> None:
    """Remember the emulator just started. Read at once: until tmctl reaps its
    child the pid cannot be reused, so this is that process's identity."""
    info = process_info(pid)  # its command line may not be set yet (exec in progress); its start time is
    wd = workdir(target)
    data = {"pid": pid, "started": info.started if info else None}
    tmp = wd / (RECORD_FILE + ".part")
    tmp.write_text(json.dumps(data))
    tmp.replace(wd / RECORD_FILE)


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
        "STATE_DIR": str(wd / "state"),  # the engine's own files stay in tmctl's state dir, not /tmp
        "LOG_LEVEL": settings.EMULATOR_LOG_LEVEL.get(env),
        **local_engine_env(),
    })
    env.update(extra or {})
    return env


@dataclass
class Launch:
    """An engine being brought up: `wait()` returns once it answers. Lets `up`
    package artifacts and load boto3 while the emulator boots."""

    target: Target
    timeout: float
    engine: Engine | None = None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def wait(self) -> tuple[Engine, EmulatorProcess | None]:
        if self.engine is not None:  # something already answered
            return self.engine, read_process(self.target)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            engine = probe(self.target.endpoint_url, timeout=0.3)
            if engine is not None:
                self.engine = engine
                return engine, EmulatorProcess(self.proc.pid, self.target.port, self.log_path, self.log_path.parent)
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
                raise TmctlError(f"the embedded emulator exited with {self.proc.returncode}: {tail[0]}",
                                 f"see {self.log_path}; is port {self.target.port} taken?")
            time.sleep(0.05)
        stop(self.target)
        raise BackendUnreachable(f"the embedded emulator did not answer within {self.timeout:.0f}s",
                                 f"see {self.log_path}")


def launch(target: Target, *, extra_env: dict[str, str] | None = None, timeout: float = START_TIMEOUT) -> Launch:
    """Reuse whatever LocalStack-compatible engine answers; else start MiniStack (without waiting)."""
    engine = probe(target.endpoint_url)
    if engine is not None:
        return Launch(target, timeout, engine=engine)
    if not target.is_loopback:
        raise BackendUnreachable(f"nothing answers on {target.endpoint_url}",
                                 "start the engine there, or use a localhost endpoint to get the embedded one")
    wd = workdir(target)
    (wd / "tmp").mkdir(parents=True, exist_ok=True)
    log_path = wd / "ministack.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed args
            [sys.executable, "-m", "ministack"], env=emulator_env(target, wd, extra=extra_env),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=wd,
        )
    record_process(target, proc.pid)
    return Launch(target, timeout, proc=proc, log_path=log_path)


def start(target: Target, *, extra_env: dict[str, str] | None = None, timeout: float = START_TIMEOUT) -> tuple[
        Engine, EmulatorProcess | None]:
    return launch(target, extra_env=extra_env, timeout=timeout).wait()


def stop(target: Target, timeout: float = 10.0) -> int | None:
    """Stop the emulator tmctl started on this port (by its pid, with its
    worker processes), and remove its temp files. Returns the pid, or None."""
    proc = read_process(target)
    wd = workdir(target)
    if proc is None:
        forget_process(target)  # nothing of ours runs: a stale record must not outlive it
        return None
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers: Lambda workers that ignored SIGTERM
    forget_process(target)
    shutil.rmtree(wd / "tmp", ignore_errors=True)
    return proc.pid


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
