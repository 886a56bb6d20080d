"""Queues and their DLQs: which pair a command works on, their stats, and a
non-consuming look at their messages.

The pair is found from SQS itself, without CloudFormation when possible
(CloudFormation's client and DescribeStacks cost more than the whole answer):
the stack's main queue has a fixed name (the template's `${AppName}-${Stage}-tasks`)
and names its DLQ in its RedrivePolicy. A queue given by the user is classified
the same way: a RedrivePolicy makes it the main queue; without one it is taken
as a DLQ whose source is found by ListDeadLetterSourceQueues where the backend
has it, else the stack's outputs, else a ListQueues scan.

Peeking never consumes and never raises a receive count on an emulator (its
inspection endpoint). On AWS there is no such endpoint: the only way to see a
message is ReceiveMessage, which counts toward maxReceiveCount, so it is done
only when the caller allows it (`allow_receive`) and with VisibilityTimeout=0.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn

from tmctl.core.backend import Backend, unsupported
from tmctl.core.errors import NotFound, TmctlError, UsageError, error_code, from_client_error

MAIN_QUEUE_SUFFIX = "-tasks"  # cloudformation/template.yaml: TaskQueue QueueName "${AppName}-${Stage}-tasks"
PEEK_TIMEOUT = 30.0
RECEIVE_PEEK_EMPTY_TRIES = 3  # AWS short polls sample servers: a few empty answers before "no more"
NOT_EXISTS_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


class PeekUnavailable(UsageError):
    """The backend has no non-consuming inspection endpoint and receiving was not allowed."""


# ------------------------------------------------------------------ queues and pairs


@dataclass(frozen=True)
class QueueRef:
    url: str
    attributes: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def arn(self) -> str:
        return self.attributes.get("QueueArn", "")

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo") or self.attributes.get("FifoQueue") == "true"

    @property
    def redrive_policy(self) -> dict | None:
        raw = self.attributes.get("RedrivePolicy")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    @property
    def dlq_arn(self) -> str | None:
        policy = self.redrive_policy
        return str(policy["deadLetterTargetArn"]) if policy and policy.get("deadLetterTargetArn") else None

    @property
    def max_receive_count(self) -> int | None:
        policy = self.redrive_policy
        try:
            return int(policy["maxReceiveCount"]) if policy else None
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class QueuePair:
    """A main queue and its DLQ. Either may be unknown (None): a DLQ whose
    source could not be found, or a queue without a redrive policy."""

    main: QueueRef | None
    dlq: QueueRef | None
    found_by: str
    sources: tuple[str, ...] = ()  # every queue URL whose RedrivePolicy targets the DLQ, when looked up

    def require_dlq(self) -> QueueRef:
        if self.dlq is None:
            raise NotFound(f"queue {self.main.name if self.main else '?'} has no dead-letter queue",
                           "pass the DLQ itself with --queue, or give the queue a RedrivePolicy")
        return self.dlq

    def require_main(self) -> QueueRef:
        if self.main is None:
            raise NotFound(f"no queue has {self.dlq.name if self.dlq else '?'} as its dead-letter queue",
                           "pass the main queue with --queue (or the destination with --to)")
        return self.main


def name_from_arn(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def stack_queue_name(app: str, stage: str) -> str:
    return f"{app}-{stage}{MAIN_QUEUE_SUFFIX}"


def queue_url(sqs, ident: str) -> str:
    """A queue URL from a URL, an ARN or a name."""
    if "://" in ident:
        return ident
    kwargs: dict[str, str] = {"QueueName": ident}
    if ident.startswith("arn:"):
        parts = ident.split(":")
        if len(parts) < 6:
            raise UsageError(f"{ident!r} is not an SQS queue ARN", "use arn:aws:sqs:REGION:ACCOUNT:NAME")
        kwargs = {"QueueName": parts[5], "QueueOwnerAWSAccountId": parts[4]}
    try:
        return sqs.get_queue_url(**kwargs)["QueueUrl"]
    except Exception as err:
        _raise_queue_error(err, ident, "get")


def load_queue(sqs, ident: str) -> QueueRef:
    url = queue_url(sqs, ident)
    try:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
    except Exception as err:
        _raise_queue_error(err, url, "read")
    return QueueRef(url, attrs)


def _raise_queue_error(err: Exception, queue: str, action: str) -> NoReturn:
    """A failed queue lookup: NotFound for a missing queue, a tmctl error for
    any other AWS error, anything else as it was."""
    if error_code(err) in NOT_EXISTS_CODES:
        raise NotFound(f"queue {queue} does not exist", "check the name with `aws sqs list-queues`") from None
    if type(err).__module__.startswith("botocore"):
        raise from_client_error(err, f"{action} queue {queue}") from err
    raise err


def find_sources(sqs, backend: Backend, dlq: QueueRef,
                 stack_outputs: Callable[[], dict[str, str] | None] | None = None) -> tuple[list[str], str]:
    """URLs of the queues whose RedrivePolicy targets `dlq`, and how they were found."""
    if backend.has_dead_letter_source_listing:
        try:
            urls: list[str] = []
            for page in sqs.get_paginator("list_dead_letter_source_queues").paginate(QueueUrl=dlq.url):
                urls += page.get("queueUrls", [])
            return urls, "ListDeadLetterSourceQueues"
        except Exception as err:
            if not unsupported(err):
                raise
    outputs = _safe_outputs(stack_outputs)
    if outputs and dlq.arn and outputs.get("DeadLetterQueueArn") == dlq.arn and outputs.get("TaskQueueUrl"):
        return [outputs["TaskQueueUrl"]], "stack outputs"
    urls = []
    for page in sqs.get_paginator("list_queues").paginate():
        urls += page.get("QueueUrls", [])
    candidates = [u for u in urls if u != dlq.url]

    def targets(url: str) -> bool:
        try:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
        except Exception as err:
            if error_code(err) in NOT_EXISTS_CODES:  # deleted while we looked
                return False
            raise
        return QueueRef(url, attrs).dlq_arn == dlq.arn

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = [u for u, hit in zip(candidates, pool.map(targets, candidates), strict=True) if hit]
    return found, "ListQueues scan"


def _safe_outputs(stack_outputs: Callable[[], dict[str, str] | None] | None) -> dict[str, str] | None:
    if stack_outputs is None:
        return None
    try:
        return stack_outputs()
    except TmctlError:
        return None  # no stack: the caller falls back to other ways


def resolve_pair(sqs, backend: Backend, queue: str | None = None, *, default_name: str | None = None,
                 stack_outputs: Callable[[], dict[str, str] | None] | None = None) -> QueuePair:
    """The queue pair a command works on.

    queue: a name, URL or ARN given by the user (--queue), or None for the stack's
    own pair: `default_name` (see `stack_queue_name`) looked up directly, the stack's
    outputs (`stack_outputs`, e.g. CloudFormation) only when that name is not there.
    """
    if queue is None:
        return _stack_pair(sqs, backend, default_name, stack_outputs)
    named = load_queue(sqs, queue)
    if named.dlq_arn:
        return QueuePair(named, load_queue(sqs, named.dlq_arn), "RedrivePolicy")
    sources, how = find_sources(sqs, backend, named, stack_outputs)
    if not sources:
        # No policy and nothing targets it: a lone queue. DLQ commands use it as the DLQ.
        return QueuePair(None, named, f"no RedrivePolicy; no source queue found ({how})")
    main = load_queue(sqs, sources[0]) if len(sources) == 1 else None
    return QueuePair(main, named, how, tuple(sources))


def _stack_pair(sqs, backend: Backend, default_name: str | None,
                stack_outputs: Callable[[], dict[str, str] | None] | None) -> QueuePair:
    if default_name:
        # The main queue and its conventional DLQ name at once: one round trip for
        # the common case, checked against the main queue's RedrivePolicy below.
        with ThreadPoolExecutor(max_workers=2) as pool:
            main_f = pool.submit(_try_load, sqs, default_name)
            guess_f = pool.submit(_try_load, sqs, default_name + "-dlq")
            main, guess = main_f.result(), guess_f.result()
        if main is not None:
            dlq = None
            if main.dlq_arn:
                dlq = guess if guess is not None and guess.arn == main.dlq_arn else load_queue(sqs, main.dlq_arn)
            return QueuePair(main, dlq, "stack queue name")
    outputs = stack_outputs() if stack_outputs else None
    if not outputs or "TaskQueueUrl" not in outputs:
        raise NotFound(f"queue {default_name or '(stack main queue)'} does not exist",
                       "run `tmctl up` for this stage first, or pass --queue NAME|URL")
    main = load_queue(sqs, outputs["TaskQueueUrl"])
    dlq_ident = main.dlq_arn or outputs.get("DeadLetterQueueUrl")
    return QueuePair(main, load_queue(sqs, dlq_ident) if dlq_ident else None, "stack outputs")


def _try_load(sqs, ident: str) -> QueueRef | None:
    try:
        return load_queue(sqs, ident)
    except NotFound:
        return None


# ------------------------------------------------------------------ messages


@dataclass(frozen=True)
class PeekedMessage:
    queue_url: str
    message_id: str
    body: str
    md5_of_body: str | None
    attributes: dict[str, str]  # system attributes (SentTimestamp, ApproximateReceiveCount, …)
    message_attributes: dict[str, dict[str, Any]]  # BinaryValue as base64 text (JSON-safe)
    receive_count: int | None
    sent_timestamp: float | None  # epoch seconds
    task_id: str | None
    visible: bool | None = None  # None: the backend does not say
    md5_of_message_attributes: str | None = None
    group_id: str | None = None
    deduplication_id: str | None = None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class PeekResult:
    queue_url: str
    messages: list[PeekedMessage]
    method: str  # "inspection endpoint" | "ReceiveMessage (VisibilityTimeout=0)"
    consumed_receives: bool  # whether looking raised receive counts
    total: int | None = None  # messages the endpoint holds (before -n)


def task_id_of(body: str, message_attributes: dict) -> str | None:
    """The message attribute `taskID`, else the JSON body's `taskID`."""
    attr = message_attributes.get("taskID") or {}
    if attr.get("StringValue"):
        return str(attr["StringValue"])
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("taskID"), str | int):
        return str(parsed["taskID"])
    return None


def _json_safe_attrs(message_attributes: dict) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in (message_attributes or {}).items():
        entry = {"DataType": value.get("DataType")}
        if value.get("StringValue") is not None:
            entry["StringValue"] = value["StringValue"]
        if value.get("BinaryValue") is not None:
            raw = value["BinaryValue"]
            entry["BinaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, bytes | bytearray) else raw
        out[name] = entry
    return out


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _sent_seconds(attrs: dict, fallback=None) -> float | None:
    ms = _int(attrs.get("SentTimestamp"))
    if ms is not None:
        return ms / 1000.0
    return float(fallback) if fallback else None


def from_received(queue_url: str, m: dict) -> PeekedMessage:
    """A PeekedMessage from a ReceiveMessage entry (boto3 shape)."""
    attrs = {k: str(v) for k, v in (m.get("Attributes") or {}).items()}
    mattrs = _json_safe_attrs(m.get("MessageAttributes") or {})
    return PeekedMessage(queue_url, m["MessageId"], m.get("Body", ""), m.get("MD5OfBody"), attrs, mattrs,
                         _int(attrs.get("ApproximateReceiveCount")), _sent_seconds(attrs),
                         task_id_of(m.get("Body", ""), mattrs), None, m.get("MD5OfMessageAttributes"),
                         attrs.get("MessageGroupId"), attrs.get("MessageDeduplicationId"))


def _from_ministack(queue_url: str, m: dict) -> PeekedMessage:
    attrs = {k: str(v) for k, v in (m.get("Attributes") or {}).items()}
    receive_count = _int(m.get("ReceiveCount"))
    if receive_count is not None:
        attrs.setdefault("ApproximateReceiveCount", str(receive_count))
    mattrs = _json_safe_attrs(m.get("MessageAttributes") or {})
    body = m.get("Body", "")
    sent = m.get("SentTimestamp")
    return PeekedMessage(queue_url, m.get("MessageId", ""), body, m.get("MD5OfBody"), attrs, mattrs, receive_count,
                         _sent_seconds(attrs, sent), task_id_of(body, mattrs), m.get("IsVisible"),
                         m.get("MD5OfMessageAttributes"), m.get("MessageGroupId"), m.get("MessageDeduplicationId"))


def _from_localstack(queue_url: str, m: dict) -> PeekedMessage:
    # Query-protocol JSON: Attribute/MessageAttribute lists of {Name, Value}; JSON protocol: dicts.
    attrs = m.get("Attributes")
    if attrs is None:
        raw = m.get("Attribute") or []
        attrs = {a["Name"]: a["Value"] for a in (raw if isinstance(raw, list) else [raw])}
    mattrs = m.get("MessageAttributes")
    if mattrs is None:
        raw = m.get("MessageAttribute") or []
        mattrs = {a["Name"]: a["Value"] for a in (raw if isinstance(raw, list) else [raw])}
    attrs = {k: str(v) for k, v in attrs.items()}
    mattrs = _json_safe_attrs(mattrs)
    body = m.get("Body", "")
    visible = attrs.get("IsVisible")
    return PeekedMessage(queue_url, m.get("MessageId", ""), body, m.get("MD5OfBody"), attrs, mattrs,
                         _int(attrs.get("ApproximateReceiveCount")), _sent_seconds(attrs), task_id_of(body, mattrs),
                         None if visible is None else visible.lower() == "true", m.get("MD5OfMessageAttributes"),
                         attrs.get("MessageGroupId"), attrs.get("MessageDeduplicationId"))


def _http_get_json(url: str, timeout: float = PEEK_TIMEOUT) -> Any:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the emulator's own endpoint
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        if err.code in (400, 404):
            raise NotFound(f"the inspection endpoint does not know this queue (HTTP {err.code})",
                           "check --queue") from None
        raise TmctlError(f"the emulator's inspection endpoint answered HTTP {err.code}") from None
    except (OSError, ValueError) as err:
        raise TmctlError(f"the emulator's inspection endpoint failed: {err}",
                         "is the emulator running? `tmctl local status`") from None


def inspect_messages(backend: Backend, queue_url: str,
                     http_get: Callable[[str], Any] = _http_get_json) -> list[PeekedMessage]:
    """Every message in the queue (visible, in flight, delayed) from the engine's
    non-consuming inspection endpoint; nothing is received or counted."""
    if backend.peek_url is None:
        raise PeekUnavailable(f"{backend.describe()} has no non-consuming inspection endpoint",
                              "on AWS pass --allow-receive (each look counts as a receive)")
    if backend.name == "localstack":
        query = urllib.parse.urlencode({"QueueUrl": queue_url, "ShowInvisible": "true", "ShowDelayed": "true"})
        data = http_get(f"{backend.peek_url}?{query}")
        if "Messages" in data:
            raw = data.get("Messages") or []
        else:
            raw = ((data.get("ReceiveMessageResponse") or {}).get("ReceiveMessageResult") or {}).get("Message") or []
        return [_from_localstack(queue_url, m) for m in (raw if isinstance(raw, list) else [raw])]
    data = http_get(f"{backend.peek_url}?{urllib.parse.urlencode({'QueueUrl': queue_url})}")
    out: list[PeekedMessage] = []
    for regions in (data.get("messages") or {}).values():
        for queues in regions.values():
            for msgs in queues.values():
                out += [_from_ministack(queue_url, m) for m in msgs]
    out.sort(key=lambda p: p.sent_timestamp or 0)
    return out


def receive_peek(sqs, queue_url: str, limit: int) -> list[PeekedMessage]:
    """Look by ReceiveMessage with VisibilityTimeout=0. Raises each message's
    receive count, may return one message twice (deduplicated here) or miss some."""
    seen: dict[str, PeekedMessage] = {}
    empty = 0
    while len(seen) < limit and empty < RECEIVE_PEEK_EMPTY_TRIES:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=min(10, limit - len(seen)),
                                  VisibilityTimeout=0, WaitTimeSeconds=1, AttributeNames=["All"],
                                  MessageAttributeNames=["All"]).get("Messages", [])
        new = [m for m in got if m["MessageId"] not in seen]
        empty = 0 if new else empty + 1
        for m in new:
            seen[m["MessageId"]] = from_received(queue_url, m)
    return list(seen.values())[:limit]


def peek(sqs, backend: Backend, queue_url: str, *, limit: int = 10, allow_receive: bool = False,
         http_get: Callable[[str], Any] = _http_get_json) -> PeekResult:
    """Up to `limit` messages of a queue without consuming them: the engine's
    inspection endpoint, or (only with allow_receive) ReceiveMessage with
    VisibilityTimeout=0, which counts toward maxReceiveCount."""
    if backend.peek_url is not None:
        msgs = inspect_messages(backend, queue_url, http_get)
        return PeekResult(queue_url, msgs[:limit], "inspection endpoint", False, len(msgs))
    if not allow_receive:
        raise PeekUnavailable(f"{backend.describe()} has no non-consuming way to look at messages",
                              "pass --allow-receive: each look counts as a receive toward maxReceiveCount")
    return PeekResult(queue_url, receive_peek(sqs, queue_url, limit), "ReceiveMessage (VisibilityTimeout=0)", True)


def find_task_messages(sqs, backend: Backend, queue_url: str, task_id: str, *, allow_receive: bool = False,
                       http_get: Callable[[str], Any] = _http_get_json) -> list[PeekedMessage]:
    """The messages in `queue_url` that carry `task_id` (message attribute
    `taskID`, else the JSON body's `taskID`), without consuming them.

    Emulators: their inspection endpoint (exact, no side effects). AWS: raises
    PeekUnavailable unless `allow_receive`, since the only way to look is a
    receive (raises receive counts; may miss messages in a large queue)."""
    if backend.peek_url is not None:
        msgs = inspect_messages(backend, queue_url, http_get)
    elif allow_receive:
        msgs = receive_peek(sqs, queue_url, limit=100)
    else:
        raise PeekUnavailable(f"{backend.describe()} has no non-consuming way to look at messages",
                              "pass allow_receive to look by ReceiveMessage (counts toward maxReceiveCount)")
    return [m for m in msgs if m.task_id == task_id]


# ------------------------------------------------------------------ stats


def age_text(seconds: float | None) -> str:
    """A message's age as people read it: 45s, 12m, 3.5h; "-" when unknown."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@dataclass(frozen=True)
class QueueStats:
    role: str  # main | dlq
    name: str
    url: str
    arn: str
    visible: int
    in_flight: int
    delayed: int
    oldest_age_seconds: float | None
    oldest_age_note: str
    fifo: bool
    visibility_timeout: int | None
    retention_seconds: int | None
    max_receive_count: int | None = None  # main queue: receives before the DLQ
    redrive_target: str | None = None  # main queue: its DLQ's ARN
    sources: tuple[str, ...] = ()  # DLQ: queue URLs that dead-letter into it, when known

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


def _stats_of(role: str, q: QueueRef, oldest: float | None, note: str, sources: tuple[str, ...] = ()) -> QueueStats:
    a = q.attributes
    return QueueStats(role, q.name, q.url, q.arn, _int(a.get("ApproximateNumberOfMessages")) or 0,
                      _int(a.get("ApproximateNumberOfMessagesNotVisible")) or 0,
                      _int(a.get("ApproximateNumberOfMessagesDelayed")) or 0, oldest, note, q.fifo,
                      _int(a.get("VisibilityTimeout")), _int(a.get("MessageRetentionPeriod")),
                      q.max_receive_count if role == "main" else None, q.dlq_arn if role == "main" else None, sources)


AGE_SCAN_LIMIT = 1000  # the inspection endpoint returns every message: ~40 ms per 1,000 on MiniStack


def _oldest_sent(backend: Backend, url: str, http_get) -> float | None:
    """The oldest SentTimestamp (epoch seconds) from the inspection endpoint, read
    straight from its answer (no per-message parsing: a stats call stays cheap)."""
    if backend.name == "localstack":
        sent = [m.sent_timestamp for m in inspect_messages(backend, url, http_get) if m.sent_timestamp]
        return min(sent) if sent else None
    data = http_get(f"{backend.peek_url}?{urllib.parse.urlencode({'QueueUrl': url})}")
    oldest = None
    for regions in (data.get("messages") or {}).values():
        for queues in regions.values():
            for msgs in queues.values():
                for m in msgs:
                    ms = _int((m.get("Attributes") or {}).get("SentTimestamp"))
                    sent = ms / 1000.0 if ms is not None else _int(m.get("SentTimestamp"))
                    if sent and (oldest is None or sent < oldest):
                        oldest = float(sent)
    return oldest


def _oldest_age(backend: Backend, q: QueueRef, http_get, now: float,
                scan_limit: int | None) -> tuple[float | None, str]:
    if backend.peek_url is None:
        return None, "not given by SQS itself (CloudWatch ApproximateAgeOfOldestMessage has it)"
    a = q.attributes
    total = sum(_int(a.get(k)) or 0 for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                               "ApproximateNumberOfMessagesDelayed"))
    if total == 0:
        return None, "empty"
    if scan_limit is not None and total > scan_limit:
        return None, f"not scanned: {total} messages, over {scan_limit} (--age scans them all)"
    oldest = _oldest_sent(backend, q.url, http_get)
    if oldest is None:
        return None, "empty"
    return max(0.0, now - oldest), "inspection endpoint (sent time)"


def queue_stats(backend: Backend, pair: QueuePair, *, http_get: Callable[[str], Any] = _http_get_json,
                now: Callable[[], float] = time.time, age_scan_limit: int | None = AGE_SCAN_LIMIT) -> list[QueueStats]:
    """Stats of the pair's queues from the attributes read while resolving it,
    plus the oldest message's age where the engine can tell without consuming
    (on queues of at most `age_scan_limit` messages; None: always)."""
    roles = [(role, q) for role, q in (("main", pair.main), ("dlq", pair.dlq)) if q is not None]
    t = now()
    with ThreadPoolExecutor(max_workers=max(1, len(roles))) as pool:
        ages = list(pool.map(lambda rq: _oldest_age(backend, rq[1], http_get, t, age_scan_limit), roles))
    return [_stats_of(role, q, age, note, pair.sources if role == "dlq" else ())
            for (role, q), (age, note) in zip(roles, ages, strict=True)]


# ------------------------------------------------------------------ purge


@dataclass(frozen=True)
class PurgeResult:
    queue: str
    url: str
    messages_before: int


def approximate_count(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"]).get("Attributes", {})
    return sum(_int(v) or 0 for v in attrs.values())


def purge(sqs, queue: QueueRef) -> PurgeResult:
    """PurgeQueue, after counting what is there (approximate, as SQS counts)."""
    before = approximate_count(sqs, queue.url)
    try:
        sqs.purge_queue(QueueUrl=queue.url)
    except Exception as err:
        if error_code(err) == "AWS.SimpleQueueService.PurgeQueueInProgress":
            raise TmctlError(f"{queue.name}: a purge is already in progress (SQS allows one per 60 s)",
                             "wait a minute and try again") from None
        raise
    return PurgeResult(queue.name, queue.url, before)
