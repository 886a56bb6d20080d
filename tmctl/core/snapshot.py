"""A stage's data as one portable file: `tmctl snapshot save|load|show`.

Everything goes through the AWS APIs (Scan, the SQS inspection endpoint or
ReceiveMessage, GetParametersByPath; BatchWriteItem, SendMessageBatch,
PutParameter), never an engine's own files, so a snapshot taken on the embedded
emulator loads into LocalStack, an emulator on another port, another stage or a
non-production AWS stage, and back.

The format: gzip'd JSON lines. Line 1 is a header (`format`, `version`, where
it came from, the `counts` of each kind, and what was skipped and why); every
later line is one record, `{"kind": "task" | "message" | "parameter", …}`.
Why this and not one JSON document, SQLite or a tarball:
- streamable both ways: save writes record by record, load and validation read
  line by line, so 10,000 tasks never need one giant parse; `show` reads only
  the first line (gzip decompresses just that far);
- portable and inspectable with the standard tools (`zcat f | head`, `jq`),
  no schema outside the file, nothing engine-specific;
- exact: task items are kept in DynamoDB's own typed JSON (`{"S": …}`,
  `{"N": "1.50"}`, `{"SS": […]}`, `{"B": base64}` — the wire format), so numbers
  keep their text and sets stay sets; message bodies are text as SQS holds them,
  binary attribute values base64;
- a truncated or corrupted file is caught: gzip's CRC and length at the end,
  and the header's counts, which the records must match exactly.

Messages are read without consuming them where the engine can peek (its
inspection endpoint); on AWS only when the caller allows receives, since each
receive raises a message's receive count (on the main queue, toward the DLQ).
A loaded message is a new message with the same body and attributes (and FIFO
group/dedup ids); its original id, receive count and sent time stay in the file
as information only — SQS assigns new ones.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from tmctl.core.backend import Backend
from tmctl.core.config import PRODUCTION_STAGES
from tmctl.core.errors import ExitCode, TmctlError, UsageError, error_code

FORMAT = "tmctl-snapshot"
FORMAT_VERSION = 1
KINDS = ("tasks", "main", "dlq", "config")  # what a snapshot counts: items, messages of each queue, parameters
QUEUE_ROLES = ("main", "dlq")
SCAN_SEGMENTS = 4
WRITE_WORKERS = 8
BATCH_WRITE_MAX = 25  # DynamoDB's limit per BatchWriteItem
SEND_BATCH_MAX = 10  # SQS's limit per SendMessageBatch
SEND_BATCH_BYTES = 256 * 1024  # SQS's payload limit per batch (everywhere; AWS now takes more)
UNPROCESSED_RETRIES = 8
RECEIVE_VISIBILITY = 120  # AWS save with allow_receive: seconds a received message stays hidden while we read
RECEIVE_EMPTY_TRIES = 3
RECEIVE_WAIT_SECONDS = 1  # AWS short polls sample servers: a 1 s long poll sees them all
PURGE_SETTLE_SECONDS_AWS = 60  # AWS may delete messages sent within 60 s after PurgeQueue
TYPES = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})
PARAMETER_TYPES = frozenset({"String", "StringList"})


class SnapshotInvalid(UsageError):
    """The file is not a snapshot this tmctl can load in full; nothing was written."""


# ------------------------------------------------------------------ what a stage is


@dataclass(frozen=True)
class StageRefs:
    """Where a stage keeps its data (from its stack's outputs and its config path)."""

    app: str
    stage: str
    table: str
    queue_url: str
    dlq_url: str
    config_path: str  # "/<app>/<stage>/"


@dataclass
class Header:
    format: str
    version: int
    created_at: str
    source: dict[str, Any]
    counts: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)  # kind → why it is not in the file
    key_schema: list[dict[str, str]] = field(default_factory=list)  # the table's, for information

    def to_line(self) -> dict:
        return {"format": self.format, "version": self.version, "createdAt": self.created_at, "source": self.source,
                "counts": self.counts, "skipped": self.skipped, "keySchema": self.key_schema}


@dataclass
class SnapshotInfo:
    path: str
    bytes: int
    header: Header

    def to_dict(self) -> dict:
        return {"path": self.path, "bytes": self.bytes, **self.header.to_line()}


# ------------------------------------------------------------------ typed items <-> JSON


def item_to_json(value: Any) -> Any:
    """A low-level DynamoDB item or value (bytes for B/BS) as JSON-safe DynamoDB JSON."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "B":
                out[k] = _b64(v)
            elif k == "BS":
                out[k] = [_b64(b) for b in v]
            else:
                out[k] = item_to_json(v)
        return out
    if isinstance(value, list):
        return [item_to_json(v) for v in value]
    return value


def item_from_json(value: Any) -> Any:
    """The inverse of item_to_json: B/BS back to bytes."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "B" and isinstance(v, str):
                out[k] = base64.b64decode(v)
            elif k == "BS" and isinstance(v, list):
                out[k] = [base64.b64decode(b) for b in v]
            else:
                out[k] = item_from_json(v)
        return out
    if isinstance(value, list):
        return [item_from_json(v) for v in value]
    return value


def _b64(raw: Any) -> str:
    return base64.b64encode(bytes(raw)).decode() if isinstance(raw, bytes | bytearray) else str(raw)


def _check_b64(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_number(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def check_value(value: Any, where: str) -> None:
    """Refuse anything that is not one well-formed DynamoDB typed value."""
    if not isinstance(value, dict) or len(value) != 1:
        raise SnapshotInvalid(f"{where}: not a typed DynamoDB value ({{'S': …}}, {{'N': …}}, …)")
    (kind, v), = value.items()
    ok = {
        "S": lambda: isinstance(v, str),
        "N": lambda: _check_number(v),
        "B": lambda: _check_b64(v),
        "BOOL": lambda: isinstance(v, bool),
        "NULL": lambda: v is True,
        "SS": lambda: isinstance(v, list) and v and all(isinstance(s, str) for s in v) and len(set(v)) == len(v),
        "NS": lambda: isinstance(v, list) and v and all(_check_number(s) for s in v),
        "BS": lambda: isinstance(v, list) and v and all(_check_b64(s) for s in v),
        "M": lambda: isinstance(v, dict),
        "L": lambda: isinstance(v, list),
    }.get(kind)
    if ok is None or not ok():
        raise SnapshotInvalid(f"{where}: malformed {kind!r} value")
    if kind == "M":
        for k, sub in v.items():
            check_value(sub, f"{where}.{k}")
    elif kind == "L":
        for i, sub in enumerate(v):
            check_value(sub, f"{where}[{i}]")


# ------------------------------------------------------------------ records


def task_record(item: dict) -> dict:
    return {"kind": "task", "item": item_to_json(item)}


def message_record(role: str, m: Any) -> dict:
    """A queue's message (a queues.PeekedMessage: binary attribute values already base64)."""
    return {"kind": "message", "queue": role, "messageId": m.message_id, "body": m.body,
            "md5OfBody": m.md5_of_body, "messageAttributes": m.message_attributes,
            "groupId": m.group_id or m.attributes.get("MessageGroupId"),
            "deduplicationId": m.deduplication_id or m.attributes.get("MessageDeduplicationId"),
            "receiveCount": m.receive_count,
            "sentTimestamp": m.attributes.get("SentTimestamp") or (
                str(int(m.sent_timestamp * 1000)) if m.sent_timestamp else None)}


def parameter_record(key: str, p: dict) -> dict:
    return {"kind": "parameter", "name": key, "value": p["Value"], "type": p.get("Type", "String")}


def check_record(rec: Any, line_no: int, key_names: list[str] | None) -> str:
    """The record's kind for counting ("tasks", "main", "dlq", "config"), or SnapshotInvalid."""
    where = f"line {line_no}"
    if not isinstance(rec, dict):
        raise SnapshotInvalid(f"{where}: not a JSON object")
    kind = rec.get("kind")
    if kind == "task":
        item = rec.get("item")
        if not isinstance(item, dict) or not item:
            raise SnapshotInvalid(f"{where}: task without an item")
        for name, value in item.items():
            check_value(value, f"{where} item.{name}")
        for key in key_names or ["taskID"]:
            if key not in item:
                raise SnapshotInvalid(f"{where}: task item lacks its key attribute {key!r}")
        return "tasks"
    if kind == "message":
        role = rec.get("queue")
        if role not in QUEUE_ROLES:
            raise SnapshotInvalid(f"{where}: message for unknown queue {role!r} (main or dlq)")
        if not isinstance(rec.get("body"), str) or rec["body"] == "":
            raise SnapshotInvalid(f"{where}: message without a text body")
        attrs = rec.get("messageAttributes") or {}
        if not isinstance(attrs, dict):
            raise SnapshotInvalid(f"{where}: messageAttributes is not an object")
        for name, a in attrs.items():
            dtype = a.get("DataType") if isinstance(a, dict) else None
            if not isinstance(dtype, str) or dtype.split(".")[0] not in {"String", "Number", "Binary"}:
                raise SnapshotInvalid(f"{where}: attribute {name!r} has no valid DataType")
            if dtype.startswith("Binary"):
                if not _check_b64(a.get("BinaryValue")):
                    raise SnapshotInvalid(f"{where}: attribute {name!r}: BinaryValue is not base64")
            elif not isinstance(a.get("StringValue"), str):
                raise SnapshotInvalid(f"{where}: attribute {name!r}: StringValue missing")
        for opt in ("groupId", "deduplicationId"):
            if rec.get(opt) is not None and not isinstance(rec[opt], str):
                raise SnapshotInvalid(f"{where}: {opt} is not text")
        return role
    if kind == "parameter":
        name = rec.get("name")
        if not isinstance(name, str) or not name or name.startswith("/"):
            raise SnapshotInvalid(f"{where}: parameter name must be relative to the stage's path")
        if not isinstance(rec.get("value"), str) or rec.get("type", "String") not in PARAMETER_TYPES:
            raise SnapshotInvalid(f"{where}: parameter {name!r}: value must be text, type String or StringList")
        return "config"
    raise SnapshotInvalid(f"{where}: unknown record kind {kind!r}")


# ------------------------------------------------------------------ reading a file


def _open_text(path: Path) -> IO[str]:
    return gzip.open(path, "rt", encoding="utf-8", newline="\n")


def _parse_header(line: str, path: Path) -> Header:
    try:
        raw = json.loads(line)
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise SnapshotInvalid(f"{path} is not a tmctl snapshot (no header line)", "give a file `tmctl snapshot save` "
                                                                                   "wrote")
    version = raw.get("version")
    if not isinstance(version, int):
        raise SnapshotInvalid(f"{path}: the header has no format version")
    if version > FORMAT_VERSION:
        raise SnapshotInvalid(f"{path} is snapshot format v{version}, newer than this tmctl reads (v{FORMAT_VERSION})",
                              "upgrade tmctl (pip install -U tmctl), then load it again")
    counts = raw.get("counts")
    if not isinstance(counts, dict) or set(counts) != set(KINDS) or not all(
            isinstance(v, int) and v >= 0 for v in counts.values()):
        raise SnapshotInvalid(f"{path}: the header's counts are missing or malformed")
    return Header(FORMAT, version, str(raw.get("createdAt", "")), dict(raw.get("source") or {}), dict(counts),
                  dict(raw.get("skipped") or {}), list(raw.get("keySchema") or []))


def read_info(path: Path) -> SnapshotInfo:
    """The header only: what the file holds, without reading (or loading) the records."""
    path = Path(path)
    try:
        with _open_text(path) as f:
            first = f.readline()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", "give the path `tmctl snapshot save` wrote") from None
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise SnapshotInvalid(f"{path} is not a readable gzip'd snapshot: {err}") from None
    return SnapshotInfo(str(path), path.stat().st_size, _parse_header(first, path))


def iter_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for every record after the header; SnapshotInvalid on a
    corrupt, truncated or non-JSON file."""
    try:
        with _open_text(Path(path)) as f:
            f.readline()
            for n, line in enumerate(f, start=2):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except ValueError:
                    raise SnapshotInvalid(f"{path}: line {n} is not JSON (corrupt file)") from None
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as err:
        raise SnapshotInvalid(f"{path} is corrupt or truncated: {err}",
                              "take the snapshot again (or fetch the whole file)") from None


def validate(path: Path) -> SnapshotInfo:
    """Read the whole file and check everything a load relies on: header, format
    version, each record well-formed, and the counts exact. Writes nothing."""
    info = read_info(path)
    keys = [k["AttributeName"] for k in info.header.key_schema if isinstance(k, dict) and "AttributeName" in k]
    found = dict.fromkeys(KINDS, 0)
    seen_keys: set[str] = set()
    for n, rec in iter_records(path):
        kind = check_record(rec, n, keys or None)
        found[kind] += 1
        if kind == "tasks":
            ident = json.dumps({k: rec["item"][k] for k in keys or ["taskID"]}, sort_keys=True)
            if ident in seen_keys:
                raise SnapshotInvalid(f"{path}: line {n}: a second task with the key {ident}")
            seen_keys.add(ident)
    if found != info.header.counts:
        diff = ", ".join(f"{k} {info.header.counts[k]} in the header, {found[k]} in the file"
                         for k in KINDS if found[k] != info.header.counts[k])
        raise SnapshotInvalid(f"{path}: counts do not match ({diff}): truncated or edited",
                              "take the snapshot again")
    return info


# ------------------------------------------------------------------ save


@dataclass
class SaveReport:
    path: str
    bytes: int
    counts: dict[str, int]
    skipped: dict[str, str]
    seconds: float
    method: dict[str, str]  # queue role → how its messages were read

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


def scan_items(ddb, table: str, segments: int = SCAN_SEGMENTS,
               on_progress: Callable[[int], None] | None = None) -> list[dict]:
    """Every item of the table, typed (the low-level client), by a parallel scan."""
    lock = threading.Lock()
    items: list[dict] = []

    def segment(n: int) -> None:
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        if segments > 1:
            kwargs.update(Segment=n, TotalSegments=segments)
        while True:
            page = ddb.scan(**kwargs)
            with lock:
                items.extend(page.get("Items", []))
                done = len(items)
            if on_progress:
                on_progress(done)
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with ThreadPoolExecutor(max_workers=segments) as pool:
        list(pool.map(segment, range(segments)))
    return items


def receive_all(sqs, queue_url: str) -> list:
    """Every message by ReceiveMessage (AWS: no other way), each held hidden while
    the rest are read, then made visible again. Raises each receive count by one."""
    from tmctl.core.queues import from_received

    seen: dict[str, Any] = {}
    handles: list[str] = []
    empty = 0
    while empty < RECEIVE_EMPTY_TRIES:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=RECEIVE_VISIBILITY,
                                  WaitTimeSeconds=RECEIVE_WAIT_SECONDS, AttributeNames=["All"],
                                  MessageAttributeNames=["All"]).get("Messages", [])
        new = [m for m in got if m["MessageId"] not in seen]
        empty = 0 if new else empty + 1
        for m in got:
            handles.append(m["ReceiptHandle"])
        for m in new:
            seen[m["MessageId"]] = from_received(queue_url, m)
    for start in range(0, len(handles), 10):  # back in the queue now, not after the visibility timeout
        entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                   for i, h in enumerate(handles[start:start + 10])]
        # On failure they come back by themselves after RECEIVE_VISIBILITY.
        with contextlib.suppress(Exception):
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
    return list(seen.values())


def read_messages(sqs, backend: Backend, queue_url: str, *, allow_receive: bool) -> tuple[list | None, str]:
    """A queue's messages and how they were read; (None, why) when skipped."""
    from tmctl.core.queues import inspect_messages

    if backend.peek_url is not None:
        return inspect_messages(backend, queue_url), "inspection endpoint (nothing consumed)"
    if not allow_receive:
        return None, (f"{backend.describe()} has no non-consuming way to read messages; "
                      "--allow-receive reads them by ReceiveMessage (each receive raises a receive count)")
    return receive_all(sqs, queue_url), "ReceiveMessage (receive counts raised by one)"


def read_parameters(ssm, path: str) -> tuple[list[dict], list[str]]:
    """Parameters directly under the stage's path, names relative to it; and the
    names left out (SecureStrings: a snapshot is not a place for secrets)."""
    records, left_out = [], []
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path.rstrip("/"), Recursive=False):
        for p in page["Parameters"]:
            key = p["Name"][len(path):] if p["Name"].startswith(path) else p["Name"].rsplit("/", 1)[-1]
            if p.get("Type") == "SecureString":
                left_out.append(key)
                continue
            records.append(parameter_record(key, p))
    return sorted(records, key=lambda r: r["name"]), left_out


def save(ddb, sqs, ssm, backend: Backend, refs: StageRefs, path: Path, *, allow_receive: bool = False,
         notice: Callable[[str], None] | None = None, segments: int = SCAN_SEGMENTS,
         clock: Callable[[], float] = time.monotonic) -> SaveReport:
    """Write the stage's tasks, queue messages and config to `path` (written to a
    temporary name and renamed: a failed save never leaves half a file)."""
    say = notice or (lambda _m: None)
    t0 = clock()
    key_schema = ddb.describe_table(TableName=refs.table)["Table"]["KeySchema"]
    say(f"scanning {refs.table} ({segments} segments)")
    items = scan_items(ddb, refs.table, segments)
    messages: dict[str, list] = {}
    skipped: dict[str, str] = {}
    method: dict[str, str] = {}
    for role, url in (("main", refs.queue_url), ("dlq", refs.dlq_url)):
        msgs, how = read_messages(sqs, backend, url, allow_receive=allow_receive)
        if msgs is None:
            skipped[role] = how
            say(f"{role} queue skipped: {how}")
            msgs = []
        else:
            method[role] = how
        messages[role] = msgs
    params, secrets = read_parameters(ssm, refs.config_path)
    if secrets:
        skipped["config"] = f"SecureString parameters left out: {', '.join(secrets)}"
    counts = {"tasks": len(items), "main": len(messages["main"]), "dlq": len(messages["dlq"]), "config": len(params)}
    header = Header(FORMAT, FORMAT_VERSION, datetime.now(UTC).isoformat(timespec="seconds"),
                    {"app": refs.app, "stage": refs.stage, "engine": backend.describe(), "table": refs.table},
                    counts, skipped, key_schema)
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        # compresslevel 6: a third of level 9's time for nearly its size on this JSON.
        with gzip.open(tmp, "wt", encoding="utf-8", newline="\n", compresslevel=6) as f:
            f.write(json.dumps(header.to_line(), ensure_ascii=False) + "\n")
            for item in items:
                f.write(json.dumps(task_record(item), ensure_ascii=False) + "\n")
            for role in QUEUE_ROLES:
                for m in messages[role]:
                    f.write(json.dumps(message_record(role, m), ensure_ascii=False) + "\n")
            for rec in params:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return SaveReport(str(path), path.stat().st_size, counts, skipped, clock() - t0, method)


# ------------------------------------------------------------------ load


@dataclass
class Tally:
    written: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class LoadPlan:
    """What a load would do, decided before anything is written."""

    info: SnapshotInfo
    refs: StageRefs
    merge: bool
    existing: dict[str, int]  # what the destination holds now (items approximate on AWS)
    unknown_parameters: list[str]  # in the file, not in the destination stage: skipped
    purge_settle_seconds: float

    def question(self) -> str:
        c = self.info.header.counts
        what = (f"{c['tasks']} task(s), {c['main']} + {c['dlq']} message(s) (queue + DLQ), {c['config']} parameter(s)")
        held = (f"it holds ~{self.existing['tasks']} task(s), {self.existing['main']} + {self.existing['dlq']} "
                f"message(s)")
        if self.merge:
            return f"Load {what} into stage {self.refs.stage!r}, overwriting by key ({held}; kept)?"
        return (f"Replace stage {self.refs.stage!r}'s data ({held}: the table is emptied and both queues purged) "
                f"with {what}?")


@dataclass
class LoadReport:
    stage: str
    merge: bool
    tallies: dict[str, Tally]
    removed: dict[str, int]  # replace: items deleted, messages purged (approximate)
    errors: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(t.failed for t in self.tallies.values()) and not self.errors

    def to_dict(self) -> dict:
        return {"stage": self.stage, "merge": self.merge, "ok": self.ok,
                "tallies": {k: asdict(v) for k, v in self.tallies.items()}, "removed": self.removed,
                "errors": self.errors[:50], "seconds": round(self.seconds, 3)}


def refuse_production(stage: str) -> None:
    if stage.lower() in PRODUCTION_STAGES:
        raise UsageError(f"refusing to load a snapshot into the production stage {stage!r}",
                         "load into a non-production stage (--stage dev, test, …)")


def _param_meta(ssm, path: str) -> dict[str, dict]:
    meta = {}
    for page in ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "Path", "Option": "OneLevel", "Values": [path.rstrip("/")]}]):
        for p in page["Parameters"]:
            meta[p["Name"][len(path):]] = p
    return meta


def plan_load(ddb, sqs, ssm, backend: Backend, refs: StageRefs, path: Path, *, merge: bool) -> LoadPlan:
    """Validate the whole file and look at the destination; raises before anything
    is written (a production stage, a bad file, a value the destination refuses)."""
    import re

    from tmctl.core.queues import approximate_count

    refuse_production(refs.stage)
    info = validate(path)
    meta = _param_meta(ssm, refs.config_path)
    unknown = []
    for _n, rec in iter_records(path):
        if rec.get("kind") != "parameter":
            continue
        m = meta.get(rec["name"])
        if m is None:
            unknown.append(rec["name"])
        elif m.get("AllowedPattern") and not re.fullmatch(m["AllowedPattern"], rec["value"]):
            raise SnapshotInvalid(f"parameter {rec['name']!r}: {rec['value']!r} does not match stage "
                                  f"{refs.stage!r}'s AllowedPattern {m['AllowedPattern']}",
                                  "edit the value in a copy of the file, or load into a stage on the same template")
    table = ddb.describe_table(TableName=refs.table)["Table"]
    existing = {"tasks": int(table.get("ItemCount", 0)), "main": approximate_count(sqs, refs.queue_url),
                "dlq": approximate_count(sqs, refs.dlq_url)}
    if existing["tasks"] == 0:  # ItemCount lags on AWS: one page tells whether the table is empty
        existing["tasks"] = ddb.scan(TableName=refs.table, Select="COUNT", Limit=25).get("Count", 0)
    settle = 0.0 if backend.is_emulator else PURGE_SETTLE_SECONDS_AWS
    return LoadPlan(info, refs, merge, existing, unknown, settle)


class _Counter:
    def __init__(self, tallies: dict[str, Tally], on_progress: Callable[[int], None] | None):
        self.tallies, self.on_progress, self.lock, self.done = tallies, on_progress, threading.Lock(), 0

    def add(self, kind: str, written: int = 0, failed: int = 0, skipped: int = 0) -> None:
        with self.lock:
            t = self.tallies[kind]
            t.written += written
            t.failed += failed
            t.skipped += skipped
            self.done += written + failed + skipped
            done = self.done
        if self.on_progress:
            self.on_progress(done)


def _batch_write(ddb, table: str, requests: list[dict], sleep: Callable[[float], None]) -> tuple[int, str | None]:
    """One BatchWriteItem, UnprocessedItems retried with back-off; (left unwritten, error)."""
    pending = requests
    for attempt in range(UNPROCESSED_RETRIES + 1):
        try:
            resp = ddb.batch_write_item(RequestItems={table: pending})
        except Exception as err:  # noqa: BLE001 - counted and reported, the other batches go on
            code = error_code(err)
            if code in {"ProvisionedThroughputExceededException", "ThrottlingException"} and \
                    attempt < UNPROCESSED_RETRIES:
                sleep(min(2.0, 0.05 * 2 ** attempt))
                continue
            return len(pending), f"BatchWriteItem: {code or type(err).__name__}: {err}"
        pending = resp.get("UnprocessedItems", {}).get(table, [])
        if not pending:
            return 0, None
        sleep(min(2.0, 0.05 * 2 ** attempt))
    return len(pending), f"BatchWriteItem: {len(pending)} item(s) still unprocessed after {UNPROCESSED_RETRIES} retries"


def empty_table(ddb, table: str, key_names: list[str], workers: int = WRITE_WORKERS,
                sleep: Callable[[float], None] = time.sleep) -> tuple[int, list[str]]:
    """Delete every item (keys by a parallel scan, deletes by BatchWriteItem)."""
    names = {f"#k{i}": k for i, k in enumerate(key_names)}
    keys: list[dict] = []
    kwargs: dict[str, Any] = {"TableName": table, "ProjectionExpression": ", ".join(names),
                              "ExpressionAttributeNames": names}
    while True:
        page = ddb.scan(**kwargs)
        keys += page.get("Items", [])
        if not page.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    errors: list[str] = []
    chunks = [keys[i:i + BATCH_WRITE_MAX] for i in range(0, len(keys), BATCH_WRITE_MAX)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda c: _batch_write(ddb, table, [{"DeleteRequest": {"Key": k}} for k in c],
                                                       sleep), chunks))
    left = sum(n for n, _e in results)
    errors += [e for _n, e in results if e]
    return len(keys) - left, errors


def _send_entries(records: list[dict], fifo: bool) -> list[list[dict]]:
    """SendMessageBatch entries, ≤ 10 and ≤ the payload limit per batch."""
    batches: list[list[dict]] = []
    cur: list[dict] = []
    size = 0
    for i, rec in enumerate(records):
        entry: dict[str, Any] = {"Id": str(i), "MessageBody": rec["body"]}
        attrs = {}
        for name, a in (rec.get("messageAttributes") or {}).items():
            v: dict[str, Any] = {"DataType": a["DataType"]}
            if a.get("BinaryValue") is not None:
                v["BinaryValue"] = base64.b64decode(a["BinaryValue"])
            else:
                v["StringValue"] = a["StringValue"]
            attrs[name] = v
        if attrs:
            entry["MessageAttributes"] = attrs
        if fifo:
            entry["MessageGroupId"] = rec.get("groupId") or "tmctl-snapshot"
            if rec.get("deduplicationId"):
                entry["MessageDeduplicationId"] = rec["deduplicationId"]
        n = len(rec["body"].encode()) + sum(len(k) + len(str(v)) for k, v in attrs.items())
        if cur and (len(cur) == SEND_BATCH_MAX or size + n > SEND_BATCH_BYTES):
            batches.append(cur)
            cur, size = [], 0
        cur.append(entry)
        size += n
    if cur:
        batches.append(cur)
    return batches


def _send_batch(sqs, url: str, entries: list[dict]) -> tuple[int, int, list[str]]:
    """(sent, failed, errors); entries SQS failed for its own reasons are tried once more."""
    try:
        resp = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    except Exception as err:  # noqa: BLE001 - counted and reported
        return 0, len(entries), [f"SendMessageBatch: {error_code(err) or type(err).__name__}: {err}"]
    failed = resp.get("Failed", [])
    retry = [e for e in entries if e["Id"] in {f["Id"] for f in failed if not f.get("SenderFault")}]
    final = [f for f in failed if f.get("SenderFault")]
    sent = len(resp.get("Successful", []))
    if retry:
        try:
            again = sqs.send_message_batch(QueueUrl=url, Entries=retry)
            sent += len(again.get("Successful", []))
            final += again.get("Failed", [])
        except Exception as err:  # noqa: BLE001
            final += [{"Id": e["Id"], "Code": error_code(err) or type(err).__name__} for e in retry]
    return sent, len(final), [f"SendMessageBatch: {f.get('Code')}: {f.get('Message', '')}" for f in final]


def load(ddb, sqs, ssm, plan: LoadPlan, *, on_progress: Callable[[int], None] | None = None,
         notice: Callable[[str], None] | None = None, workers: int = WRITE_WORKERS,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> LoadReport:
    """Write a validated snapshot (see plan_load) into the stage: replace (empty the
    table, purge both queues) unless plan.merge, then items, messages, parameters."""
    say = notice or (lambda _m: None)
    t0 = clock()
    refs, path = plan.refs, Path(plan.info.path)
    tallies = {k: Tally() for k in KINDS}
    removed = {"tasks": 0, "main": 0, "dlq": 0}
    errors: list[str] = []
    key_names = [k["AttributeName"] for k in ddb.describe_table(TableName=refs.table)["Table"]["KeySchema"]]
    if not plan.merge:
        say(f"emptying {refs.table} and purging both queues")
        removed["tasks"], errs = empty_table(ddb, refs.table, key_names, workers, sleep)
        errors += errs
        to_purge = [(role, url) for role, url in (("main", refs.queue_url), ("dlq", refs.dlq_url))
                    if plan.existing[role]]  # an empty queue needs no purge (AWS: one per 60 s, then a wait)
        for role, url in to_purge:
            removed[role] = plan.existing[role]
            try:
                sqs.purge_queue(QueueUrl=url)
            except Exception as err:
                if error_code(err) == "AWS.SimpleQueueService.PurgeQueueInProgress":
                    raise TmctlError(f"a purge of the {role} queue is already in progress (one per 60 s)",
                                     "wait a minute and load again; the table was already emptied") from None
                raise
        if plan.purge_settle_seconds and to_purge:
            say(f"waiting {plan.purge_settle_seconds:.0f} s: AWS may still delete messages sent this soon "
                "after PurgeQueue")
            sleep(plan.purge_settle_seconds)
        if errors:  # not empty: loading now would merge, which was not asked for
            return LoadReport(refs.stage, plan.merge, tallies, removed, errors, clock() - t0)

    counter = _Counter(tallies, on_progress)
    items: list[dict] = []
    messages: dict[str, list[dict]] = {"main": [], "dlq": []}
    params: list[dict] = []
    for _n, rec in iter_records(path):
        if rec["kind"] == "task":
            items.append({"PutRequest": {"Item": item_from_json(rec["item"])}})
        elif rec["kind"] == "message":
            messages[rec["queue"]].append(rec)
        else:
            params.append(rec)

    def write_items(chunk: list[dict]) -> None:
        left, err = _batch_write(ddb, refs.table, chunk, sleep)
        counter.add("tasks", written=len(chunk) - left, failed=left)
        if err:
            with counter.lock:
                errors.append(err)

    def send(role: str, url: str, batch: list[dict]) -> None:
        sent, failed, errs = _send_batch(sqs, url, batch)
        counter.add(role, written=sent, failed=failed)
        if errs:
            with counter.lock:
                errors.extend(errs)

    say(f"writing {len(items)} task(s), {len(messages['main'])} + {len(messages['dlq'])} message(s), "
        f"{len(params)} parameter(s)")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(write_items, items[i:i + BATCH_WRITE_MAX])
                   for i in range(0, len(items), BATCH_WRITE_MAX)]
        for role, url in (("main", refs.queue_url), ("dlq", refs.dlq_url)):
            fifo = url.endswith(".fifo")
            if fifo:  # order within a group matters: one batch at a time, in the file's order
                futures.append(pool.submit(lambda r=role, u=url: [send(r, u, b) for b in
                                                                 _send_entries(messages[r], True)]))
            else:
                futures += [pool.submit(send, role, url, b) for b in _send_entries(messages[role], False)]
        for f in futures:
            f.result()

    meta = _param_meta(ssm, refs.config_path)
    for rec in params:
        m = meta.get(rec["name"])
        if m is None:
            counter.add("config", skipped=1)
            continue
        kwargs = {"Description": m["Description"]} if m.get("Description") else {}
        if m.get("AllowedPattern"):
            kwargs["AllowedPattern"] = m["AllowedPattern"]
        try:
            ssm.put_parameter(Name=refs.config_path + rec["name"], Value=rec["value"],
                              Type=rec.get("type", "String"), Overwrite=True, **kwargs)
            counter.add("config", written=1)
        except Exception as err:  # noqa: BLE001 - counted and reported
            counter.add("config", failed=1)
            errors.append(f"PutParameter {rec['name']}: {error_code(err) or type(err).__name__}")
    return LoadReport(refs.stage, plan.merge, tallies, removed, errors, clock() - t0)


def check_outcome(report: LoadReport) -> None:
    if not report.ok:
        failed = {k: t.failed for k, t in report.tallies.items() if t.failed}
        err = TmctlError(f"snapshot load finished with failures: {failed or report.errors[:1]}",
                         "see the accounting above; fix the cause and load again with --merge")
        err.exit_code = ExitCode.ERROR
        raise err
