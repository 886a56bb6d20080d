"""The stack's function logs (CloudWatch Logs `/aws/lambda/<function>`):
search them, interleaved by time, and follow them without repeating a line."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from botocore.exceptions import ClientError

from tmctl.core.errors import UsageError, error_code, from_client_error
from tmctl.core.wait import pauses

LAMBDA_LOG_PREFIX = "/aws/lambda/"
MAX_SCAN = 10_000  # events read per group for one search; the newest `limit` of them are kept
FOLLOW_OVERLAP_MS = 10_000  # re-read this much before the newest line seen: late-ingested lines still show


@dataclass(frozen=True)
class LogEvent:
    group: str
    stream: str
    timestamp: int  # epoch milliseconds
    message: str
    event_id: str | None = None
    ingestion_time: int | None = None

    @property
    def function(self) -> str:
        return self.group.removeprefix(LAMBDA_LOG_PREFIX)

    @property
    def time(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.timestamp / 1000, dt.UTC)

    @property
    def key(self) -> tuple:
        """Identity for de-duplication: the event id where the engine gives one."""
        if self.event_id:
            return (self.group, self.event_id)
        return (self.group, self.stream, self.timestamp, self.ingestion_time, self.message)

    def to_dict(self) -> dict:
        return {"function": self.function, "time": self.time.isoformat(timespec="milliseconds"),
                "timestamp": self.timestamp, "stream": self.stream, "message": self.message.rstrip("\n")}


def log_group(function_name: str) -> str:
    return LAMBDA_LOG_PREFIX + function_name


def kebab(logical: str) -> str:
    """`TaskApi` → `task-api` (the stack's output names to the functions' own suffixes)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", logical).lower()


def function_labels(functions: dict[str, str]) -> dict[str, str]:
    """{short label: function name} from StackInfo.functions ({logical: name})."""
    return {kebab(logical): name for logical, name in sorted(functions.items())}


def resolve_functions(functions: dict[str, str], wanted: str | None) -> dict[str, str]:
    """The functions to read, {label: function name}: all, or the one `wanted`
    names by label (task-api), logical name (TaskApi) or full function name."""
    labels = function_labels(functions)
    if not wanted:
        return labels
    w = wanted.strip()
    for label, name in labels.items():
        if label in (w.lower(), kebab(w)) or w == name or w.lower() == label.replace("-", ""):
            return {label: name}
    raise UsageError(f"no function {wanted!r} in this stack",
                     "one of " + ", ".join(labels) + " (or its full name: " + ", ".join(labels.values()) + ")")


def filter_pattern(text: str | None) -> str | None:
    """A CloudWatch Logs filter pattern. A single bare term with characters other
    than letters, digits and '_' (a taskID like `task-173`) must be quoted for
    AWS to read it as one literal term; anything already a pattern is kept."""
    if not text or not text.strip():
        return None
    text = text.strip()
    if (len(text.split()) == 1 and text[0] not in '{["?-+' and not text.startswith("%")
            and re.search(r"[^A-Za-z0-9_]", text) and '"' not in text):
        return f'"{text}"'
    return text


def _millis(when: dt.datetime | int | None) -> int | None:
    if when is None:
        return None
    if isinstance(when, int):
        return when
    return int(when.timestamp() * 1000)


def _group_events(logs, group: str, pattern: str | None, start: int | None, end: int | None,
                  max_items: int) -> list[LogEvent]:
    kwargs: dict = {"logGroupName": group}
    if pattern:
        kwargs["filterPattern"] = pattern
    if start is not None:
        kwargs["startTime"] = start
    if end is not None:
        kwargs["endTime"] = end
    events: list[LogEvent] = []
    try:
        for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
            for e in page.get("events", []):
                events.append(LogEvent(group, e.get("logStreamName", ""), int(e["timestamp"]), e.get("message", ""),
                                       e.get("eventId"), e.get("ingestionTime")))
            if len(events) >= max_items:
                break
    except ClientError as err:
        if error_code(err) == "ResourceNotFoundException":
            return []  # a function that never logged: no group yet
        raise from_client_error(err, f"read {group}") from err
    return events


def find_log_events(logs, group_names: Iterable[str], pattern: str | None = None,
                    since: dt.datetime | int | None = None, limit: int | None = 100, *,
                    until: dt.datetime | int | None = None) -> list[LogEvent]:
    """Events of every group matching `pattern` (a filter pattern, or a bare
    term such as a taskID: see `filter_pattern`) from `since` on, interleaved by
    time (oldest first); the newest `limit` of them (all when None)."""
    pattern = filter_pattern(pattern)
    start, end = _millis(since), _millis(until)
    merged: list[LogEvent] = []
    for group in dict.fromkeys(group_names):
        merged += _group_events(logs, group, pattern, start, end, MAX_SCAN)
    merged.sort(key=lambda e: (e.timestamp, e.ingestion_time or 0, e.group))
    return merged[-limit:] if limit else merged


class LogFollower:
    """New events of the groups at each `poll()`, each exactly once: every read
    starts a little before the newest line seen (lines can be ingested late)
    and drops what was already returned."""

    def __init__(self, logs, group_names: Iterable[str], pattern: str | None = None,
                 since: dt.datetime | int | None = None, overlap_ms: int = FOLLOW_OVERLAP_MS):
        self.logs, self.groups, self.pattern, self.overlap = logs, list(group_names), pattern, overlap_ms
        self.cursor = _millis(since)
        self.started = False
        self.seen: dict[tuple, int] = {}

    def poll(self, limit: int | None = None) -> list[LogEvent]:
        start = self.cursor if not self.started or self.cursor is None else self.cursor - self.overlap
        self.started = True
        events = find_log_events(self.logs, self.groups, self.pattern, start, None)
        new = [e for e in events if e.key not in self.seen]
        for e in new:
            self.seen[e.key] = e.timestamp
        if events:
            self.cursor = max(self.cursor or 0, events[-1].timestamp)
        if self.cursor is not None:  # forget what no later read can return again
            horizon = self.cursor - 2 * self.overlap
            self.seen = {k: t for k, t in self.seen.items() if t >= horizon}
        return new[-limit:] if limit else new


def follow(logs, group_names: Iterable[str], pattern: str | None = None, since: dt.datetime | int | None = None,
           limit: int | None = 100, *, sleep: Callable[[float], None] = time.sleep,
           first_pause: float = 0.5, longest_pause: float = 2.0) -> Iterator[LogEvent]:
    """Every matching event from `since` (the newest `limit` of those already
    there), then new ones as they arrive, forever; the caller stops it (Ctrl-C)."""
    follower = LogFollower(logs, group_names, pattern, since)
    yield from follower.poll(limit)
    waits = pauses(first_pause, longest_pause)
    while True:
        sleep(next(waits))
        new = follower.poll()
        if new:
            waits = pauses(first_pause, longest_pause)
        yield from new
