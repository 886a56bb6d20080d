"""Moving messages out of a DLQ: the backend's own move task where it has one,
else (or when the user selects messages) client-side send-then-delete.

Client-side, each worker thread loops: receive up to 10 (held invisible for
`visibility_timeout`) → decide per message → SendMessageBatch to the destination
(body and message attributes unchanged, FIFO group/dedup ids kept) →
DeleteMessageBatch of exactly the entries whose send succeeded. A crash between
the send and the delete leaves the message in both queues: a duplicate, never a
loss. Messages that are not to move (no match, over --max, a failed send) stay
held until the end of the run — so no worker receives them twice — and are then
released with visibility 0, left in the DLQ as they were (receive count +1).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tmctl.core.backend import Backend, unsupported
from tmctl.core.errors import ExitCode, TmctlError, UsageError, error_code
from tmctl.core.queues import QueuePair, QueueRef, approximate_count, from_received, inspect_messages, load_queue
from tmctl.core.wait import poll

MAX_MESSAGE_ATTRIBUTES = 10  # SQS's limit per message
LINEAGE_ORIGINAL_ID = "tmctl.redrive.originalMessageId"
LINEAGE_COUNT = "tmctl.redrive.count"
MOVE_TASK_DONE = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
SAMPLE_SIZE = 5
AWS_WAIT_SECONDS = 1  # ReceiveMessage long poll on AWS, where a short poll samples only some servers


@dataclass
class RedriveOptions:
    dry_run: bool = False
    max_messages: int | None = None  # move at most this many
    filter_expr: str | None = None  # JMESPath over {"body", "attributes", "messageAttributes"}
    task_ids: frozenset[str] | None = None  # only these taskIDs
    rate: float | None = None  # messages per second
    export: IO[str] | None = None  # JSON lines of what moves, flushed before each batch moves
    visibility_timeout: int = 30  # seconds a received batch stays hidden from other consumers
    workers: int = 4
    lineage: bool = True  # add originalMessageId/redrive count attributes when the 10-attribute limit allows
    wait_seconds: int = 0  # ReceiveMessage long poll; 1+ on AWS, where a short poll may miss messages

    @property
    def selects(self) -> bool:
        return bool(self.filter_expr or self.task_ids or self.max_messages is not None or self.export)


@dataclass
class RedriveReport:
    mode: str  # client-side | server-side | dry-run
    source: str
    destination: str | None
    scanned: int = 0  # distinct messages looked at
    matched: int = 0  # of those, selected by --filter/--task-id
    moved: int = 0  # sent to the destination; server-side, the task's total (a followed one's: with `moved_before`)
    skipped: int = 0  # left in the DLQ on purpose (no match, over --max, dry run)
    failed: int = 0  # could not be sent (left in the DLQ), or sent but not deleted (a duplicate will follow)
    not_deleted: int = 0  # part of `failed`: sent, but the delete failed
    errors: list[str] = field(default_factory=list)
    sample: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False
    task_handle: str | None = None
    to_move: int | None = None  # server-side: the task's estimate
    task_started: str | None = None  # server-side: when the move task started (ISO 8601, UTC)
    followed: bool = False  # server-side: the task was already running (a killed run's) and was followed, not started
    moved_before: int = 0  # server-side, followed: what the task had moved when this run began following it
    detached: bool = False  # server-side, followed: Ctrl-C stopped following; the task was not ours and still runs

    @property
    def rate(self) -> float:
        """Messages per second while this run was watching: a followed task's
        earlier moves (`moved_before`) happened outside `seconds`."""
        return max(0, self.moved - self.moved_before) / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rate"] = round(self.rate, 1)
        data["seconds"] = round(self.seconds, 3)
        data["ok"] = self.ok
        return data


# ------------------------------------------------------------------ selection


def filter_document(body: str, attributes: dict, message_attributes: dict) -> dict:
    """What --filter sees: the body parsed as JSON when it is JSON, else the raw
    string; system attributes; message attributes as name → value (String/Number
    as text, Binary as base64 text)."""
    try:
        parsed: Any = json.loads(body)
    except (TypeError, ValueError):
        parsed = body
    values = {}
    for name, value in (message_attributes or {}).items():
        if value.get("StringValue") is not None:
            values[name] = value["StringValue"]
        elif value.get("BinaryValue") is not None:
            raw = value["BinaryValue"]
            values[name] = _b64(raw) if isinstance(raw, bytes | bytearray) else raw
    return {"body": parsed, "attributes": dict(attributes or {}), "messageAttributes": values}


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


class Selector:
    """--filter and --task-id, compiled once."""

    def __init__(self, filter_expr: str | None, task_ids: Iterable[str] | None):
        self.expr = None
        if filter_expr:
            import jmespath
            from jmespath.exceptions import JMESPathError

            try:
                self.expr = jmespath.compile(filter_expr)
            except JMESPathError as err:
                raise UsageError(f"--filter {filter_expr!r} is not valid JMESPath: {err}",
                                 "e.g. --filter \"body.priority == 'HIGH'\"") from None
        self.task_ids = frozenset(task_ids) if task_ids else None

    @property
    def active(self) -> bool:
        return self.expr is not None or self.task_ids is not None

    def __call__(self, body: str, attributes: dict, message_attributes: dict, task_id: str | None) -> bool:
        if self.task_ids is not None and task_id not in self.task_ids:
            return False
        if self.expr is not None:
            return bool(self.expr.search(filter_document(body, attributes, message_attributes)))
        return True


# ------------------------------------------------------------------ the message copy


def copy_attributes(message_attributes: dict) -> dict:
    """Message attributes as SendMessage takes them, values untouched (bytes stay bytes)."""
    out = {}
    for name, value in (message_attributes or {}).items():
        entry = {"DataType": value["DataType"]}
        for key in ("StringValue", "BinaryValue"):
            if value.get(key) is not None:
                entry[key] = value[key]
        for key in ("StringListValues", "BinaryListValues"):
            if value.get(key):
                entry[key] = value[key]
        out[name] = entry
    return out


def with_lineage(message_id: str, attrs: dict) -> dict:
    """Add lineage (first original message id, redrive count) where the
    10-attribute limit allows; an existing count is incremented, an existing
    original id kept. Attributes never dropped to make room."""
    out = dict(attrs)
    if LINEAGE_ORIGINAL_ID not in out and len(out) < MAX_MESSAGE_ATTRIBUTES:
        out[LINEAGE_ORIGINAL_ID] = {"DataType": "String", "StringValue": message_id}
    count = out.get(LINEAGE_COUNT)
    if count is not None:
        with contextlib.suppress(KeyError, TypeError, ValueError):  # not a number: not ours, leave it
            out[LINEAGE_COUNT] = {"DataType": count["DataType"], "StringValue": str(int(count["StringValue"]) + 1)}
    elif len(out) < MAX_MESSAGE_ATTRIBUTES:
        out[LINEAGE_COUNT] = {"DataType": "Number", "StringValue": "1"}
    return out


def send_entry(index: int, m: dict, *, fifo: bool, lineage: bool) -> dict:
    attrs = copy_attributes(m.get("MessageAttributes") or {})
    if lineage:
        attrs = with_lineage(m["MessageId"], attrs)
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": m["Body"]}
    if attrs:
        entry["MessageAttributes"] = attrs
    sys_attrs = m.get("Attributes") or {}
    if sys_attrs.get("AWSTraceHeader"):
        entry["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String",
                                                               "StringValue": sys_attrs["AWSTraceHeader"]}}
    if fifo:
        entry["MessageGroupId"] = sys_attrs.get("MessageGroupId") or "tmctl-redrive"
        if sys_attrs.get("MessageDeduplicationId"):
            entry["MessageDeduplicationId"] = sys_attrs["MessageDeduplicationId"]
    return entry


def export_line(m: dict, destination: str | None) -> str:
    p = from_received("", m)
    return json.dumps({"messageId": p.message_id, "taskID": p.task_id, "destination": destination, "body": p.body,
                       "md5OfBody": p.md5_of_body, "attributes": p.attributes,
                       "messageAttributes": p.message_attributes}, ensure_ascii=False)


# ------------------------------------------------------------------ pacing


class RateLimiter:
    """Messages per second across all workers (a token bucket of one second)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self._lock = threading.Lock()
        self._next = clock()

    def acquire(self, n: int) -> None:
        if not self.rate or n <= 0:
            return
        with self._lock:
            now = self.clock()
            start = max(self._next, now - 1.0)  # at most one second of burst
            self._next = start + n / self.rate
            delay = start - now
        if delay > 0:
            self.sleep(delay)


# ------------------------------------------------------------------ client-side


class _Run:
    """Shared state of one client-side run; every counter changes under one lock."""

    def __init__(self, report: RedriveReport, opts: RedriveOptions, selector: Selector,
                 on_progress: Callable[[RedriveReport], None] | None):
        self.report, self.opts, self.selector, self.on_progress = report, opts, selector, on_progress
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.seen: set[str] = set()
        self.held: dict[str, str] = {}  # message id → latest receipt handle, released at the end
        self.claimed = 0  # messages claimed against --max
        self.export_lock = threading.Lock()

    def classify(self, msgs: list[dict]) -> list[dict]:
        """Count what arrived; hold what must stay; return what moves now."""
        report, opts = self.report, self.opts
        move: list[dict] = []
        would_move: list[dict] = []  # a dry run's: written to --export as a real run would
        with self.lock:
            for m in msgs:
                mid = m["MessageId"]
                if mid in self.held:  # its hold expired during the run and it came back: hold it again
                    self.held[mid] = m["ReceiptHandle"]
                    continue
                if mid in self.seen:  # sent before but its delete failed, or a duplicate receive: keep it
                    self.held[mid] = m["ReceiptHandle"]
                    continue
                self.seen.add(mid)
                report.scanned += 1
                p = from_received("", m) if self.selector.active or opts.dry_run else None
                if p is not None and not self.selector(p.body, p.attributes, p.message_attributes, p.task_id):
                    report.skipped += 1
                    self.held[mid] = m["ReceiptHandle"]
                    continue
                report.matched += 1
                if opts.max_messages is not None and self.claimed >= opts.max_messages:
                    report.skipped += 1
                    self.held[mid] = m["ReceiptHandle"]
                    continue
                self.claimed += 1
                if opts.dry_run:
                    report.skipped += 1
                    self.held[mid] = m["ReceiptHandle"]
                    if len(report.sample) < SAMPLE_SIZE:
                        report.sample.append(_sample(p))
                    would_move.append(m)
                    continue
                move.append(m)
            if opts.max_messages is not None and self.claimed >= opts.max_messages and not opts.dry_run:
                self.stop.set()  # nothing more can move: stop receiving
        if would_move:
            self.export(would_move)
        return move

    def export(self, msgs: list[dict]) -> None:
        """--export: one JSON line per message, on disk before it moves."""
        if self.opts.export is None or not msgs:
            return
        lines = "".join(export_line(m, self.report.destination) + "\n" for m in msgs)
        with self.export_lock:
            self.opts.export.write(lines)
            self.opts.export.flush()
            with contextlib.suppress(AttributeError, OSError, ValueError):  # not a real file: flushed is all
                os.fsync(self.opts.export.fileno())

    def hold(self, msgs: list[dict]) -> None:
        with self.lock:
            for m in msgs:
                self.held[m["MessageId"]] = m["ReceiptHandle"]

    def progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.report)


def _sample(p) -> dict:
    return {"messageId": p.message_id, "taskID": p.task_id, "body": p.body[:200],
            "receiveCount": p.receive_count}


def _worker(sqs, source: QueueRef, destination: QueueRef, run: _Run, limiter: RateLimiter) -> None:
    opts = run.opts
    while not run.stop.is_set():
        msgs = sqs.receive_message(QueueUrl=source.url, MaxNumberOfMessages=10,
                                   VisibilityTimeout=opts.visibility_timeout, WaitTimeSeconds=opts.wait_seconds,
                                   AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not msgs:
            return  # nothing visible: the rest is held, in flight elsewhere, or gone
        move = run.classify(msgs)
        if move:
            _move_batch(sqs, source, destination, move, run, limiter)
        run.progress()
        if opts.max_messages is not None and run.stop.is_set():
            return


def _move_batch(sqs, source: QueueRef, destination: QueueRef, move: list[dict], run: _Run,
                limiter: RateLimiter) -> None:
    opts, report = run.opts, run.report
    run.export(move)
    limiter.acquire(len(move))
    entries = [send_entry(i, m, fifo=destination.fifo, lineage=opts.lineage) for i, m in enumerate(move)]
    try:
        resp = sqs.send_message_batch(QueueUrl=destination.url, Entries=entries)
    except Exception as err:  # the whole batch failed: every message stays in the DLQ
        with run.lock:
            report.failed += len(move)
            report.errors.append(f"SendMessageBatch: {_describe(err)}")
        run.hold(move)
        return
    sent_ids = {e["Id"] for e in resp.get("Successful", [])}
    failed = [f for f in resp.get("Failed", [])]
    sent = [m for i, m in enumerate(move) if str(i) in sent_ids]
    unsent = [m for i, m in enumerate(move) if str(i) not in sent_ids]
    if unsent:
        run.hold(unsent)
        with run.lock:
            report.failed += len(unsent)
            for f in failed[:3]:
                report.errors.append(f"send {move[int(f['Id'])]['MessageId']}: {f.get('Code')} {f.get('Message', '')}")
    if not sent:
        return
    with run.lock:
        report.moved += len(sent)
    # Only now, and only what arrived: a crash before this line duplicates, never loses.
    try:
        dresp = sqs.delete_message_batch(QueueUrl=source.url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(sent)])
        not_deleted = len(dresp.get("Failed", []))
        why = [f"{f.get('Code')}" for f in dresp.get("Failed", [])[:1]]
    except Exception as err:
        not_deleted, why = len(sent), [_describe(err)]
    if not_deleted:
        with run.lock:
            report.failed += not_deleted
            report.not_deleted += not_deleted
            report.errors.append(f"DeleteMessageBatch: {not_deleted} sent but not deleted "
                                 f"(they will be redriven again: duplicates) {' '.join(why)}")


def _describe(err: Exception) -> str:
    code = error_code(err)
    return f"{code}: {err}" if code else f"{type(err).__name__}: {err}"


def release(sqs, queue_url: str, receipt_handles: list[str], workers: int = 4) -> int:
    """Make held messages visible again at once; returns how many were released
    (a handle whose hold already expired fails harmlessly: it is visible anyway)."""
    chunks = [receipt_handles[i:i + 10] for i in range(0, len(receipt_handles), 10)]

    def one(chunk: list[str]) -> int:
        try:
            resp = sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(chunk)])
        except Exception:  # noqa: BLE001 - their hold times out by itself
            return 0
        return len(resp.get("Successful", []))

    if not chunks:
        return 0
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks)))) as pool:
        return sum(pool.map(one, chunks))


def check_destination(source: QueueRef, destination: QueueRef) -> None:
    if source.url == destination.url:
        raise UsageError(f"the destination is the DLQ itself ({source.name})", "pass another queue with --to")
    if source.fifo != destination.fifo:
        raise UsageError(f"{source.name} and {destination.name} are not the same queue type (FIFO vs standard)",
                         "redrive into a queue of the same type with --to")


def redrive_client_side(sqs, source: QueueRef, destination: QueueRef | None, opts: RedriveOptions, *,
                        on_progress: Callable[[RedriveReport], None] | None = None) -> RedriveReport:
    """Move messages from `source` (a DLQ) to `destination` by send-then-delete.
    A dry run moves nothing, so it may go without a destination (a move task
    would send each message back where it came from)."""
    if destination is None:
        if not opts.dry_run or opts.export is not None:
            raise NoDestination(source, ())
    else:
        check_destination(source, destination)
    selector = Selector(opts.filter_expr, opts.task_ids)
    report = RedriveReport("dry-run" if opts.dry_run else "client-side", source.url,
                           destination.url if destination else None)
    run = _Run(report, opts, selector, on_progress)
    limiter = RateLimiter(opts.rate)
    started = time.monotonic()
    threads = [threading.Thread(target=_guard, args=(run, _worker, sqs, source, destination, run, limiter),
                                name=f"redrive-{i}", daemon=True) for i in range(max(1, opts.workers))]
    keeper_done = threading.Event()
    keeper = threading.Thread(target=_keep_held, args=(sqs, source.url, run, keeper_done), name="redrive-hold",
                              daemon=True)
    try:
        keeper.start()
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():  # join in slices so Ctrl-C reaches this thread
                t.join(0.2)
    except KeyboardInterrupt:
        run.stop.set()
        report.cancelled = True
        for t in threads:
            t.join()
    finally:
        keeper_done.set()
        keeper.join()
        report.seconds = time.monotonic() - started
        with run.lock:
            handles = list(run.held.values())
        release(sqs, source.url, handles, opts.workers)
    return report


def _keep_held(sqs, queue_url: str, run: _Run, done: threading.Event) -> None:
    """Extend the hold on messages left in the DLQ every half visibility timeout,
    so a run longer than the timeout does not receive (and count) them again.
    If tmctl dies, the last extension runs out and they are visible again."""
    vt = run.opts.visibility_timeout
    while not done.wait(max(1.0, vt / 2)):
        with run.lock:
            handles = list(run.held.values())
        chunks = [handles[i:i + 10] for i in range(0, len(handles), 10)]
        for chunk in chunks:
            if done.is_set():
                return
            try:
                sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": vt} for i, h in enumerate(chunk)])
            except Exception:  # noqa: BLE001 - a lapsed hold only means the message is received again
                continue


def _guard(run: _Run, fn, *args) -> None:
    try:
        fn(*args)
    except Exception as err:  # a worker's crash stops the run; its batch is in the DLQ or moved, never both lost
        run.stop.set()
        with run.lock:
            run.report.errors.append(f"worker stopped: {_describe(err)}")


def dry_run_by_inspection(backend: Backend, source: QueueRef, destination: QueueRef | None,
                          opts: RedriveOptions) -> RedriveReport:
    """A dry run that receives nothing: the engine's inspection endpoint shows every message."""
    selector = Selector(opts.filter_expr, opts.task_ids)
    report = RedriveReport("dry-run", source.url, destination.url if destination else None)
    started = time.monotonic()
    for p in inspect_messages(backend, source.url):
        report.scanned += 1
        if not selector(p.body, p.attributes, p.message_attributes, p.task_id):
            report.skipped += 1
            continue
        report.matched += 1
        report.skipped += 1
        if opts.max_messages is not None and report.matched > opts.max_messages:
            continue
        if len(report.sample) < SAMPLE_SIZE:
            report.sample.append(_sample(p))
        if opts.export is not None:
            opts.export.write(json.dumps({"messageId": p.message_id, "taskID": p.task_id,
                                          "destination": destination.url if destination else None,
                                          "body": p.body, "md5OfBody": p.md5_of_body, "attributes": p.attributes,
                                          "messageAttributes": p.message_attributes}, ensure_ascii=False) + "\n")
    if opts.export is not None:
        opts.export.flush()
    report.seconds = time.monotonic() - started
    return report


# ------------------------------------------------------------------ server-side


class MoveTasksUnsupported(TmctlError):
    pass


class NoDestination(UsageError):
    """A client-side redrive needs one destination, and the DLQ's is unknown or ambiguous."""

    def __init__(self, source: QueueRef, sources: tuple[str, ...]):
        if len(sources) > 1:
            names = ", ".join(url.rsplit("/", 1)[-1] for url in sources[:3]) + (", …" if len(sources) > 3 else "")
            why = f"the destination is ambiguous: {len(sources)} queues dead-letter into it ({names})"
        else:
            why = "the destination is unknown: no queue's RedrivePolicy targets it"
        super().__init__(f"cannot redrive {source.name}: {why}", "choose one with --to NAME|URL|ARN")


CANCELLING_TIMEOUT = 120.0  # seconds to wait for a cancelled move task to let go of its source


def _millis_to_iso(ms: Any) -> str | None:
    try:
        return datetime.fromtimestamp(int(ms) / 1000.0, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _since(task: dict, now: Callable[[], float]) -> str:
    """'2026-11-26T10:00:00Z, 3 min ago' from a task's StartedTimestamp (epoch ms)."""
    when = _millis_to_iso(task.get("StartedTimestamp"))
    if when is None:
        return "an unknown time"
    ago = max(0.0, now() - int(task["StartedTimestamp"]) / 1000.0)
    return f"{when}, {ago / 60:.0f} min ago" if ago >= 90 else f"{when}, {ago:.0f} s ago"


def _list_tasks(sqs, source: QueueRef) -> list[dict]:
    """The source's most recent move tasks (SQS keeps up to 10), newest first."""
    try:
        return sqs.list_message_move_tasks(SourceArn=source.arn, MaxResults=10).get("Results", [])
    except Exception as err:
        if unsupported(err):
            raise MoveTasksUnsupported("the backend has no ListMessageMoveTasks") from err
        raise


def _active(tasks: list[dict], status: str) -> dict | None:
    return next((t for t in tasks if t.get("Status") == status), None)


def redrive_server_side(sqs, source: QueueRef, destination: QueueRef | None, *, rate: float | None = None,
                        destination_given: bool = False, on_progress: Callable[[RedriveReport], None] | None = None,
                        on_notice: Callable[[str], None] | None = None, timeout: float = 24 * 3600,
                        sleep: Callable[[float], None] = time.sleep, interval: float = 0.5,
                        max_interval: float = 5.0, now: Callable[[], float] = time.time) -> RedriveReport:
    """StartMessageMoveTask, progress from ListMessageMoveTasks until it ends;
    Ctrl-C cancels the task (CancelMessageMoveTask) and reports what moved.
    Without a destination SQS moves each message back to the queue it came from.

    SQS runs one move task per source at a time, and a task outlives the client
    that started it (a killed `tmctl dlq redrive`): a task already RUNNING for
    this DLQ is followed to its end instead of starting another (which SQS
    refuses) — Ctrl-C then only stops following it, since this run did not
    start it; one still CANCELLING is waited out first; a FAILED or finished one
    blocks nothing (its failure reason is passed to `on_notice`).
    `destination_given`: the user named `destination` (--to), so a running task
    that moves elsewhere is a UsageError, not followed."""
    if destination is not None:
        check_destination(source, destination)
    notice = on_notice or (lambda _message: None)
    started = time.monotonic()
    tasks = _list_tasks(sqs, source)
    if _active(tasks, "CANCELLING") is not None:
        notice("a cancelled move task of this DLQ is still stopping: waiting for it to end")
        tasks = poll(lambda: _list_tasks(sqs, source), lambda ts: _active(ts, "CANCELLING") is None,
                     timeout=CANCELLING_TIMEOUT, interval=interval, max_interval=max_interval, sleep=sleep)
        if _active(tasks, "CANCELLING") is not None:
            raise TmctlError(f"the move task of {source.name} is still CANCELLING after {CANCELLING_TIMEOUT:g}s",
                             "run it again in a minute")
    task = _active(tasks, "RUNNING")
    followed = task is not None
    if task is None:
        previous = tasks[0] if tasks else {}
        if previous.get("Status") == "FAILED":
            notice(f"the previous move task (started {_since(previous, now)}) failed: "
                   f"{previous.get('FailureReason') or 'no reason given'}; starting a new one")
        task, followed = _start(sqs, source, destination, rate)
    if followed:
        goes_to = task.get("DestinationArn")
        where = (f"to {goes_to.rsplit(':', 1)[-1]}" if goes_to else "back to the queues the messages came from")
        if destination_given and destination is not None and goes_to != destination.arn:
            raise UsageError(f"a move task from {source.name} {where}, running since {_since(task, now)}, "
                             f"is in the way of moving to {destination.name} (SQS runs one per DLQ at a time)",
                             "wait for it, or cancel it: aws sqs cancel-message-move-task --task-handle "
                             + shlex.quote(str(task.get("TaskHandle"))))
        if destination is not None and goes_to != destination.arn:
            where += f", not to {destination.name} (one move task per DLQ at a time)"
        notice(f"following the move task already running since {_since(task, now)}: "
               f"{task.get('ApproximateNumberOfMessagesMoved', 0)} moved so far, {where}")
    return _follow(sqs, source, destination, task, followed, on_progress, timeout=timeout, sleep=sleep,
                   interval=interval, max_interval=max_interval, started=started,
                   older={t.get("StartedTimestamp") for t in tasks})


def _start(sqs, source: QueueRef, destination: QueueRef | None, rate: float | None) -> tuple[dict, bool]:
    """StartMessageMoveTask → (the task, False). If the start is refused and a
    task is running now (another client started one since we looked; SQS's
    error code for that is not documented), → (that task, True) to follow."""
    kwargs: dict[str, Any] = {"SourceArn": source.arn}
    if destination is not None:
        kwargs["DestinationArn"] = destination.arn
    if rate:
        kwargs["MaxNumberOfMessagesPerSecond"] = int(rate)
    try:
        handle = sqs.start_message_move_task(**kwargs)["TaskHandle"]
    except Exception as err:
        if unsupported(err):
            raise MoveTasksUnsupported("the backend has no StartMessageMoveTask") from err
        if getattr(err, "response", None) is None:
            raise
        running = _active(_list_tasks(sqs, source), "RUNNING")  # lost a race with another start
        if running is None:
            raise
        return running, True
    return {"TaskHandle": handle, "Status": "RUNNING", "SourceArn": source.arn,
            "DestinationArn": kwargs.get("DestinationArn")}, False


def _follow(sqs, source: QueueRef, destination: QueueRef | None, task: dict, followed: bool,
            on_progress: Callable[[RedriveReport], None] | None, *, timeout: float, sleep: Callable[[float], None],
            interval: float, max_interval: float, started: float, older: set) -> RedriveReport:
    """Poll ListMessageMoveTasks until `task` ends. Ctrl-C cancels a task this
    run started; a `followed` one (not ours) is left running. `older`: the start
    times of the tasks listed before ours started."""
    handle = task["TaskHandle"]
    goes_to = task.get("DestinationArn")
    where = (destination.url if destination is not None and goes_to == destination.arn
             else goes_to or "original source queues")
    report = RedriveReport("server-side", source.url, where, task_handle=handle,
                           task_started=_millis_to_iso(task.get("StartedTimestamp")), followed=followed)
    if followed:
        report.moved = report.moved_before = int(task.get("ApproximateNumberOfMessagesMoved", 0) or 0)
    ours = {"started": task.get("StartedTimestamp")}

    def fetch() -> dict:
        tasks = sqs.list_message_move_tasks(SourceArn=source.arn, MaxResults=10).get("Results", [])
        # AWS lists the handle of RUNNING tasks only: once ours ends it is known by its start time,
        # or, if it ended before we saw it, as the one task that was not there before ours.
        current = next((t for t in tasks if t.get("TaskHandle") == handle), None)
        if current is None and ours["started"] is not None:
            current = next((t for t in tasks if t.get("StartedTimestamp") == ours["started"]), None)
        if current is None and not followed:
            current = next((t for t in tasks if t.get("StartedTimestamp") not in older), {"Status": "RUNNING"})
        if current is None:
            current = tasks[0] if tasks else {}
        if ours["started"] is None and current.get("TaskHandle") == handle:
            ours["started"] = current.get("StartedTimestamp")
        report.moved = int(current.get("ApproximateNumberOfMessagesMoved", 0) or 0)
        if current.get("ApproximateNumberOfMessagesToMove") is not None:
            report.to_move = int(current["ApproximateNumberOfMessagesToMove"])
        report.seconds = time.monotonic() - started
        if on_progress is not None:
            on_progress(report)
        return current

    try:
        current = poll(fetch, lambda t: t.get("Status") in MOVE_TASK_DONE, timeout=timeout, interval=interval,
                       max_interval=max_interval, sleep=sleep)
    except KeyboardInterrupt:
        if followed:  # someone else's task: stop watching it, nothing more
            report.detached = True
            report.seconds = time.monotonic() - started
            return report
        resp = sqs.cancel_message_move_task(TaskHandle=handle)
        report.moved = int(resp.get("ApproximateNumberOfMessagesMoved", report.moved) or 0)
        report.cancelled = True
        report.seconds = time.monotonic() - started
        return report
    if report.task_started is None:
        report.task_started = _millis_to_iso(current.get("StartedTimestamp"))
    status = current.get("Status")
    report.scanned = report.matched = report.to_move if report.to_move is not None else report.moved
    if status == "FAILED":
        report.errors.append(f"move task failed: {current.get('FailureReason', 'no reason given')}")
        report.failed = max(0, (report.to_move or 0) - report.moved)
    elif status == "CANCELLED":  # by someone else (the console, another tmctl): what did not move is still there
        report.cancelled = True
    elif status not in MOVE_TASK_DONE:
        report.errors.append(f"move task still {status} after {timeout:g}s (handle {handle})")
    report.seconds = time.monotonic() - started
    return report


# ------------------------------------------------------------------ the plan


@dataclass
class RedrivePlan:
    """What `dlq redrive` will do, decided before anything moves, so the command
    can ask its question from it and then run it (`execute`)."""

    source: QueueRef
    destination: QueueRef | None  # None: SQS's move task sends each message back where it came from
    opts: RedriveOptions
    server_side: bool  # try the backend's move task first
    export_path: Path | None = None
    destination_given: bool = False
    count: int = 0  # messages in the DLQ when planned (approximate)

    @property
    def destination_name(self) -> str:
        return self.destination.name if self.destination else "the queues they came from"

    def question(self) -> str:
        o = self.opts
        what = (f"up to {o.max_messages} message(s)" if o.max_messages else
                "the matching messages" if (o.filter_expr or o.task_ids) else "all messages")
        return f"Move {what} from {self.source.name} ({self.count} there) to {self.destination_name}?"


def read_task_ids(task_ids: Iterable[str] | None, path: Path | None) -> frozenset[str] | None:
    """--task-id values and a --task-ids-file (one a line, # comments), or None for no selection."""
    ids = set(task_ids or [])
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise UsageError(f"cannot read {path}: {err.strerror}", "give a file of taskIDs, one a line") from None
        ids |= {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
    return frozenset(ids) if ids else None


def plan_redrive(sqs, backend: Backend, pair: QueuePair, opts: RedriveOptions, *, to: str | None = None,
                 export: Path | None = None, client_side: bool = False) -> RedrivePlan:
    """Choose server-side or client-side and the destination, and refuse what
    cannot run, before anything is received or moved. The move task is used
    where the backend has one and nothing selects messages (it cannot filter,
    count or write what it moves); it alone can go without a destination."""
    source = pair.require_dlq()
    destination = load_queue(sqs, to) if to else pair.main
    move_task = backend.has_move_tasks and not (opts.selects or export is not None or client_side)
    # Only the move task can go without one (SQS returns each message to its own source); a dry run
    # shows what would move where, so it needs one too.
    if destination is None and (opts.dry_run or not move_task):
        raise NoDestination(source, pair.sources)
    if destination is not None:
        check_destination(source, destination)
    if not backend.is_emulator and opts.wait_seconds == 0:
        opts = replace(opts, wait_seconds=AWS_WAIT_SECONDS)  # a short poll on AWS may miss messages
    return RedrivePlan(source, destination, opts, server_side=move_task and not opts.dry_run,
                       export_path=export, destination_given=bool(to), count=approximate_count(sqs, source.url))


def execute(sqs, backend: Backend, plan: RedrivePlan, *,
            on_progress: Callable[[RedriveReport], None] | None = None,
            on_notice: Callable[[str], None] = lambda message: None) -> RedriveReport:
    """Run a plan: the move task (falling back to client-side where the engine
    turns out to lack it), a dry run by the engine's inspection endpoint where
    it has one (nothing received), else client-side send-then-delete."""
    export_file = open(plan.export_path, "a", encoding="utf-8") if plan.export_path else None  # noqa: SIM115
    opts = replace(plan.opts, export=export_file)
    try:
        if plan.server_side:
            try:
                return redrive_server_side(sqs, plan.source, plan.destination, rate=opts.rate,
                                           destination_given=plan.destination_given, on_progress=on_progress,
                                           on_notice=on_notice)
            except MoveTasksUnsupported:
                on_notice(f"{backend.describe()} has no StartMessageMoveTask: moving client-side")
        if opts.dry_run and backend.peek_url is not None:
            return dry_run_by_inspection(backend, plan.source, plan.destination, opts)
        if opts.dry_run:
            on_notice("dry run by ReceiveMessage: each message's receive count goes up by one")
        return redrive_client_side(sqs, plan.source, plan.destination, opts, on_progress=on_progress)
    finally:
        if export_file is not None:
            export_file.close()


def check_outcome(report: RedriveReport) -> None:
    """The run's exit: 130 when interrupted (or no longer followed), 1 when a
    message failed, nothing when all is well."""
    if report.cancelled:
        raise _interrupted(f"redrive interrupted after moving {report.moved} message(s)",
                           "run it again to move the rest")
    if report.detached:
        raise _interrupted(f"stopped following the move task ({report.moved} message(s) moved so far); it still runs",
                           "run it again to follow it, or cancel it: aws sqs cancel-message-move-task "
                           f"--task-handle {shlex.quote(str(report.task_handle))}")
    if not report.ok:
        raise TmctlError(f"redrive finished with {report.failed} failed message(s)"
                         + (f": {report.errors[0]}" if report.errors else ""),
                         "failed messages are still in the DLQ (or, if sent but not deleted, will be sent again); "
                         "see the accounting above and run it again")


def _interrupted(message: str, fix: str) -> TmctlError:
    err = TmctlError(message, fix)
    err.exit_code = ExitCode.INTERRUPTED
    return err
