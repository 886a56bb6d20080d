"""The embedded emulator's state across a stop, a start and a reboot.

MiniStack (PERSIST_STATE=1) saves every service's state as `<service>.json`
under its STATE_DIR when it shuts down gracefully (SIGTERM), and loads it when
it starts; S3 objects live as files under S3_DATA_DIR (S3_PERSIST=1). A
SIGKILL or a power loss saves nothing: what comes back is the last clean
stop's state. Each file is `{"__ministack_format__": N, "payload": …}`, and a
MiniStack that reads an older N refuses that one service's file and loads the
others: a half-loaded engine. tmctl therefore checks every file's version
before it starts the engine.

What tmctl adds around the engine, all in its work dir:
- a clean-stop marker, written by `local stop` once the engine exited on its
  own after SIGTERM (it saved), removed when the next engine starts; a process
  record without it means the last engine ended some other way (a crash);
- the SQS messages that were in flight at the stop: MiniStack keeps them with
  their visibility deadline, so they would stay hidden for up to the
  visibility timeout; their receipt handles are in the saved file, and
  ChangeMessageVisibility(0) through the ordinary API makes them visible again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tmctl.core import settings
from tmctl.core.errors import TmctlError

STATE = "state"  # MiniStack's STATE_DIR, under the emulator's work dir
S3_DATA = "s3-data"  # its S3_DATA_DIR
CLEAN_STOP = "clean-stop.json"
FORMAT_KEY = "__ministack_format__"
_FORMAT = re.compile(rb'"__ministack_format__"\s*:\s*(\d+)')
SQS_FILE = "sqs.json"


class NewerStateError(TmctlError):
    """The saved state was written by a newer MiniStack than the one installed."""


def enabled(env=None) -> bool:
    return settings.PERSIST.enabled(env)


def engine_env(wd: Path, env=None) -> dict[str, str]:
    """What the engine is started with: persistence on (the default) or off."""
    if not enabled(env):
        return {"PERSIST_STATE": "0", "S3_PERSIST": "0"}
    return {"PERSIST_STATE": "1", "S3_PERSIST": "1", "S3_DATA_DIR": str(wd / S3_DATA)}


def state_files(wd: Path) -> list[Path]:
    d = wd / STATE
    return sorted(p for p in d.glob("*.json")) if d.is_dir() else []


def last_saved(wd: Path) -> dt.datetime | None:
    """When the engine last saved its state (the newest state file), or None."""
    times = [p.stat().st_mtime for p in state_files(wd)]
    return dt.datetime.fromtimestamp(max(times), tz=dt.UTC) if times else None


def file_format(path: Path) -> int | None:
    """The format version a state file was written with, from its first bytes;
    None for a legacy (unwrapped) file or one that cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    match = _FORMAT.search(head)
    return int(match.group(1)) if match else None


def supported_format(service: str) -> int | None:
    """The newest format the installed MiniStack reads for `service` (None: cannot tell)."""
    try:
        from ministack.core import persistence
    except ImportError:
        return None
    versions = getattr(persistence, "SERVICE_STATE_FORMAT_VERSIONS", {})
    return int(versions.get(service, getattr(persistence, "STATE_FORMAT_VERSION", 0))) or None


def check_versions(wd: Path, supported=supported_format) -> None:
    """Refuse, before the engine starts, state that a newer engine wrote: the
    engine itself would skip just those services and load the rest."""
    newer = []
    for path in state_files(wd):
        written, readable = file_format(path), supported(path.stem)
        if written is not None and readable is not None and written > readable:
            newer.append(f"{path.name} v{written} > v{readable}")
    if newer:
        raise NewerStateError(f"the saved state in {wd / STATE} was written by a newer MiniStack "
                              f"({', '.join(newer)}); nothing was loaded",
                              "`tmctl local reset` (empties it) or `tmctl local start --fresh`; "
                              "or upgrade ministack")


_REFUSAL = "refusing to load"  # MiniStack's log line for a state file newer than it reads


def refusals(log: Path, offset: int = 0) -> list[str]:
    """The engine's own refusals of a saved state file, logged since `offset`:
    the safety net behind check_versions (an engine that half-loaded must not
    run, nor save over the files it skipped)."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line.split("Persistence: ", 1)[-1].strip() for line in text.splitlines() if _REFUSAL in line]


# ------------------------------------------------------------------ clean stop / crash


def mark_clean_stop(wd: Path, pid: int, *, seconds: float = 0.0, now: dt.datetime | None = None) -> None:
    """The engine `pid` exited on SIGTERM after `seconds`: it saved its state."""
    now = now or dt.datetime.now(dt.UTC)
    saved = last_saved(wd)
    tmp = wd / f".{CLEAN_STOP}.tmp"
    tmp.write_text(json.dumps({"pid": pid, "stoppedAt": now.isoformat(timespec="milliseconds"),
                               "seconds": round(seconds, 3), "savedAt": saved.isoformat() if saved else None}))
    os.replace(tmp, wd / CLEAN_STOP)


def clean_stop(wd: Path) -> dict | None:
    try:
        return json.loads((wd / CLEAN_STOP).read_text())
    except (OSError, ValueError):
        return None


def clear_clean_stop(wd: Path) -> None:
    (wd / CLEAN_STOP).unlink(missing_ok=True)


def crashed(wd: Path, *, record_present: bool, running: bool) -> bool:
    """The last engine of ours ended without a clean stop: its process record is
    still there, it no longer runs, and no clean-stop marker was written."""
    return record_present and not running and clean_stop(wd) is None


# ------------------------------------------------------------------ in-flight messages


@dataclass
class InFlight:
    """Messages received but neither deleted nor returned when the engine stopped."""

    by_queue: dict[str, list[str]] = field(default_factory=dict)  # queue name -> receipt handles

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_queue.values())


def in_flight(wd: Path, saved_at: float | None = None) -> InFlight:
    """The in-flight messages in the saved SQS state: received (a receipt handle,
    a receive count) and still hidden past the moment the state was saved."""
    path = wd / STATE / SQS_FILE
    try:
        data = json.loads(path.read_text())
        saved_at = saved_at if saved_at is not None else path.stat().st_mtime
    except (OSError, ValueError):
        return InFlight()
    payload = data.get("payload", data) if isinstance(data, dict) else {}
    queues = (payload.get("queues") or {}) if isinstance(payload, dict) else {}
    if isinstance(queues, dict) and ("__account_region_scoped__" in queues or "__scoped__" in queues):
        queues = queues.get("data") or {}
    found = InFlight()
    for queue in queues.values() if isinstance(queues, dict) else ():
        if not isinstance(queue, dict):
            continue
        handles = [m["receipt_handle"] for m in queue.get("messages") or ()
                   if isinstance(m, dict) and m.get("receipt_handle") and (m.get("receive_count") or 0) > 0
                   and float(m.get("visible_at") or 0) > saved_at]
        if handles and queue.get("name"):
            found.by_queue.setdefault(queue["name"], []).extend(handles)
    return found


def release_in_flight(sqs, pending: InFlight) -> int:
    """Make messages that were in flight at the stop visible again (their consumer
    is gone), through ChangeMessageVisibility; how many were released."""
    released = 0
    for name, handles in pending.by_queue.items():
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except Exception:  # noqa: BLE001 - a queue deleted since: its messages went with it
            continue
        for i in range(0, len(handles), 10):
            batch = handles[i:i + 10]
            resp = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0} for n, h in enumerate(batch)])
            released += len(resp.get("Successful", []))
    return released


# ------------------------------------------------------------------ emptying


def wipe(wd: Path) -> None:
    """Remove every saved state file, Lambda code blob and S3 object, and the marker."""
    for name in (STATE, S3_DATA):
        shutil.rmtree(wd / name, ignore_errors=True)
    clear_clean_stop(wd)
    with contextlib.suppress(OSError):
        (wd / STATE).mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------ after a start


@dataclass
class Recovery:
    released: int = 0  # in-flight messages made visible again
    rerun: list = field(default_factory=list)  # reconcile.Interrupted: workflows a restart ended, run again


def recover(sqs, sfn, ddb, stack, pending: InFlight, started_at: dt.datetime | None = None) -> Recovery:
    """After an engine came back from saved state: run again the workflows the
    stop interrupted (States.ServiceRestart), then give back the messages that
    were in flight. `stack` None (not deployed on this stage): messages only."""
    from tmctl.core.reconcile import rerun_service_restarts

    done = Recovery()
    if stack is not None:
        done.rerun = rerun_service_restarts(sfn, ddb, stack, stopped_since=started_at)
    if pending.count:
        done.released = release_in_flight(sqs, pending)
    return done
