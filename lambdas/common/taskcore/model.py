"""A client's task, validated at the edge, and the views of it the table and
the API hold. The contract underneath (statuses, fields, execution names, the
event) is taskcore.contract's."""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass

# The pure contract lives in taskcore.contract (tmctl loads that file too); its
# names are re-exported here, where the Lambdas and their tests have always found them.
from taskcore.contract import (  # noqa: F401
    CLIENT_FIELDS,
    FINAL_STATUSES,
    TASK_ID_PATTERN,
    WORKFLOW_FIELDS,
    Priority,
    Status,
    execution_name,
    workflow_view,
)

MAX_BODY_BYTES = 16 * 1024
MAX_TITLE = 200
MAX_DESCRIPTION = 4000


class ValidationError(ValueError):
    """Client input that breaks the contract. `code` is the API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------ the body, before any field

# Limits on the JSON text itself, checked at the edge before a field is read. A
# task is one flat object (depth 1), so 32 leaves room for any honest mistake
# while keeping the parser's recursion far below Python's limit (1000).
MAX_JSON_DEPTH = 32
# No field is a number: a number is at best a wrong type, so it need not be long.
# (Python refuses to convert integers of more than 4300 digits, with a ValueError.)
MAX_NUMBER_CHARS = 64

# One JSON string, from its opening quote to its closing one or to the end of the
# text: the two branches inside cannot both match a character, so this never
# backtracks, and an unterminated string ends the scan instead of restarting it.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKETS = str.maketrans("", "", "".join(chr(c) for c in range(128) if chr(c) not in "[]{}"))
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def json_depth(text: str) -> int:
    """How deeply containers nest in a JSON text, found by one linear scan
    without parsing (so without recursion): brackets inside strings are not
    counted. Malformed text gets a number too; the parser rejects it later."""
    depth = deepest = 0
    for bracket in _JSON_STRING.sub("", text).translate(_BRACKETS):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif bracket in "]}":
            depth -= 1
    return deepest


def _json_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValidationError("LIMIT_EXCEEDED", f"a number has {len(text)} characters; the limit is {MAX_NUMBER_CHARS}")
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValidationError("LIMIT_EXCEEDED", f"a number has {len(text)} characters; the limit is {MAX_NUMBER_CHARS}")
    value = float(text)
    if not math.isfinite(value):
        raise ValidationError("LIMIT_EXCEEDED", f"the number {text} is outside the range of a double")
    return value


def _not_json(name: str) -> None:
    raise ValidationError("MALFORMED_JSON", f"{name} is not JSON (JSON has no NaN or Infinity)")


def _unique_object(pairs: list[tuple[str, object]]) -> dict:
    """One object of the body. A name twice is refused, not resolved: which
    value wins differs between parsers, so a proxy and this API could each see
    a different task in the same bytes."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValidationError("DUPLICATE_FIELD", f"the name {json.dumps(name)} appears twice in one object")
            seen.add(name)
    return obj


def _check_strings(value: object) -> None:
    """Every name and string is Unicode a store can hold: JSON escapes can spell
    a lone surrogate ("\\ud800"), which no UTF-8 encoder accepts. The depth is
    already bounded, so this recursion is too."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise ValidationError("MALFORMED_JSON", "a string has an unpaired surrogate escape (\\ud800-\\udfff)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse_json_body(data: bytes) -> object:
    """The body as JSON (I-JSON, RFC 7493): UTF-8 without a byte order mark,
    nesting at most MAX_JSON_DEPTH, numbers a double can hold, no NaN or
    Infinity, no unpaired surrogates, no name twice in one object. Anything else
    is a ValidationError with its code (MALFORMED_JSON, LIMIT_EXCEEDED,
    DUPLICATE_FIELD); nothing here can recurse past the limit or raise another error."""
    if data.startswith(codecs.BOM_UTF8):
        raise ValidationError("MALFORMED_JSON", "the body starts with a byte order mark; send UTF-8 without one")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValidationError("MALFORMED_JSON", f"the body is not UTF-8 (byte {err.start}); send UTF-8") from None
    if "\x00" in text:  # never in JSON text: UTF-16 or UTF-32, most likely
        raise ValidationError("MALFORMED_JSON", "the body has NUL bytes; send UTF-8 (not UTF-16 or UTF-32)")
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ValidationError("LIMIT_EXCEEDED", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_not_json,
                           object_pairs_hook=_unique_object)
        _check_strings(value)
    except ValidationError:
        raise
    except RecursionError:  # json_depth makes this unreachable; a 4xx all the same if not
        raise ValidationError("LIMIT_EXCEEDED", f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as err:
        raise ValidationError("MALFORMED_JSON", f"the body is not valid JSON: {err}") from None
    return value


# ------------------------------------------------------------------ the fields

# Titles are one line; descriptions may have tabs and line breaks. No other C0 or
# C1 control character (NUL included) is stored. The OpenAPI document has the same patterns.
_TITLE_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DESCRIPTION_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _present(data: dict, name: str) -> object:
    """The value the client sent, or None if it left the field out. Every field
    is typed; none is nullable, so an explicit null is refused, not a default."""
    value = data.get(name)
    if name in data and value is None:
        raise ValidationError("VALIDATION_ERROR", f"'{name}' must not be null; leave it out for the default")
    return value


def _require_str(data: dict, name: str, max_len: int, *, required: bool = False,
                 forbidden: re.Pattern = _TITLE_FORBIDDEN) -> str | None:
    """A free-text field: a string of at most max_len characters as sent, with
    no forbidden control characters, trimmed."""
    value = _present(data, name)
    if value is None:
        if required:
            raise ValidationError("VALIDATION_ERROR", f"'{name}' is required")
        return None
    if not isinstance(value, str):
        raise ValidationError("VALIDATION_ERROR", f"'{name}' must be a string")
    if len(value) > max_len:
        raise ValidationError("VALIDATION_ERROR", f"'{name}' is longer than {max_len} characters")
    if forbidden.search(value):
        raise ValidationError("VALIDATION_ERROR", f"'{name}' must not contain control characters")
    value = value.strip()
    if required and not value:
        raise ValidationError("VALIDATION_ERROR", f"'{name}' must not be empty")
    return value


@dataclass(frozen=True)
class TaskInput:
    """A create request, validated. Built only through `parse`."""

    taskID: str
    title: str
    description: str | None
    priority: Priority
    dueDate: str | None
    generated_id: bool = False

    @classmethod
    def parse(cls, data: object) -> TaskInput:
        if not isinstance(data, dict):
            raise ValidationError("VALIDATION_ERROR", "the body must be a JSON object")
        unknown = sorted(set(data) - set(CLIENT_FIELDS))
        if unknown:
            raise ValidationError(
                "UNKNOWN_FIELD", f"unknown field(s): {', '.join(map(json.dumps, unknown))[:500]}; "
                                 f"allowed: {', '.join(CLIENT_FIELDS)}"
            )
        generated = "taskID" not in data
        task_id = f"task-{uuid.uuid4().hex[:20]}" if generated else data["taskID"]
        if not isinstance(task_id, str) or not TASK_ID_PATTERN.fullmatch(task_id):
            raise ValidationError(
                "INVALID_TASK_ID",
                "'taskID' must be 1-64 characters of letters, digits, '-' or '_', starting with a letter or digit "
                "(leave it out to have one generated)",
            )
        title = _require_str(data, "title", MAX_TITLE) or task_id
        description = _require_str(data, "description", MAX_DESCRIPTION, forbidden=_DESCRIPTION_FORBIDDEN)
        raw_priority = _present(data, "priority")
        if raw_priority is None:
            raw_priority = Priority.MEDIUM.value
        # Any ASCII spelling ("high", "High"); str.upper() alone would also map "hıgh" (dotless i) to HIGH.
        priority = raw_priority.upper() if isinstance(raw_priority, str) and raw_priority.isascii() else None
        if priority not in Priority.__members__:
            raise ValidationError("VALIDATION_ERROR",
                                  f"'priority' must be one of {', '.join(p.value for p in Priority)}")
        due = _present(data, "dueDate")
        if due is not None:
            try:
                if not isinstance(due, str) or not _DATE.fullmatch(due):
                    raise ValueError(due)
                due = dt.date.fromisoformat(due).isoformat()
            except ValueError:
                raise ValidationError("VALIDATION_ERROR", "'dueDate' must be a date like 2026-12-31") from None
        return cls(task_id, title, description, Priority(priority), due, generated)

    def fingerprint(self) -> str:
        """Hash of what the client asked for: equal for an identical replay."""
        canonical = json.dumps(
            {"title": self.title, "description": self.description,
             "priority": self.priority.value, "dueDate": self.dueDate},
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def new_item(self, at: str) -> dict:
        item = {
            "taskID": self.taskID,
            "title": self.title,
            "priority": self.priority.value,
            "status": Status.PENDING.value,
            "createdAt": at,
            "updatedAt": at,
            "requestHash": self.fingerprint(),
            "history": [{"step": "created", "outcome": "ok", "at": at}],
        }
        if self.description is not None:
            item["description"] = self.description
        if self.dueDate is not None:
            item["dueDate"] = self.dueDate
        return item


PUBLIC_FIELDS = (
    "taskID", "title", "description", "priority", "dueDate", "status", "createdAt", "updatedAt",
    "history", "error", "priorityScore", "slaDeadline", "result", "completedAt",
)


def public_view(item: dict) -> dict:
    """The task as the API shows it: server bookkeeping (requestHash) left out."""
    return {k: item[k] for k in PUBLIC_FIELDS if k in item}
