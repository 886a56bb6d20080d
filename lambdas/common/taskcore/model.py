"""The task contract: what a client may send, what the server adds, and the
status machine every writer respects."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_BODY_BYTES = 16 * 1024
MAX_TITLE = 200
MAX_DESCRIPTION = 4000
CLIENT_FIELDS = ("taskID", "title", "description", "priority", "dueDate")


class Status(StrEnum):
    """PENDING → QUEUED → PROCESSING → COMPLETED | FAILED, each move a conditional
    write that never goes backwards. DEAD_LETTERED is the side state of a task
    whose event went to the DLQ (the processor gave up on it); it is left only
    through an explicit, recorded redrive (the workflow records `redriven` when
    the redriven event starts it), as FAILED is left only by `tmctl task retry`
    (recorded as `retried`)."""

    PENDING = "PENDING"  # stored, event not yet published
    QUEUED = "QUEUED"  # event published to the queue
    DEAD_LETTERED = "DEAD_LETTERED"  # the processor gave up on its event: it is in the DLQ
    PROCESSING = "PROCESSING"  # workflow started
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


FINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED})


class Priority(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"


class ValidationError(ValueError):
    """Client input that breaks the contract. `code` is the API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _require_str(data: dict, name: str, max_len: int, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ValidationError("VALIDATION_ERROR", f"'{name}' is required")
        return None
    if not isinstance(value, str):
        raise ValidationError("VALIDATION_ERROR", f"'{name}' must be a string")
    value = value.strip()
    if required and not value:
        raise ValidationError("VALIDATION_ERROR", f"'{name}' must not be empty")
    if len(value) > max_len:
        raise ValidationError("VALIDATION_ERROR", f"'{name}' is longer than {max_len} characters")
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
                "UNKNOWN_FIELD", f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(CLIENT_FIELDS)}"
            )
        task_id = data.get("taskID")
        generated = task_id is None
        if generated:
            task_id = f"task-{uuid.uuid4().hex[:20]}"
        elif not isinstance(task_id, str) or not TASK_ID_PATTERN.fullmatch(task_id):
            raise ValidationError(
                "INVALID_TASK_ID",
                "'taskID' must be 1-64 characters of letters, digits, '-' or '_', starting with a letter or digit",
            )
        title = _require_str(data, "title", MAX_TITLE) or task_id
        description = _require_str(data, "description", MAX_DESCRIPTION)
        raw_priority = data.get("priority", Priority.MEDIUM.value)
        try:
            priority = Priority(raw_priority.upper() if isinstance(raw_priority, str) else raw_priority)
        except ValueError:
            raise ValidationError(
                "VALIDATION_ERROR", f"'priority' must be one of {', '.join(p.value for p in Priority)}"
            ) from None
        due = _require_str(data, "dueDate", 40)
        if due is not None:
            try:
                due = dt.date.fromisoformat(due).isoformat()
            except ValueError:
                raise ValidationError("VALIDATION_ERROR", "'dueDate' must be a date like 2026-12-31") from None
        return cls(task_id, title, description, priority, due, generated)

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


# What the workflow needs of a task; travels in the event and the execution input.
WORKFLOW_FIELDS = ("taskID", "title", "description", "priority", "dueDate", "createdAt")

def workflow_view(task: dict) -> dict:
    """The part of a task the workflow needs (sent in the event and the execution input)."""
    return {k: task[k] for k in WORKFLOW_FIELDS if k in task}


def execution_name(task_id: str, created_at: str) -> str:
    """One workflow per task, ever: the taskID plus its creation time (base 36
    milliseconds), so a taskID reused after a stage is recreated still gets its
    own execution. Step Functions names: ≤ 80 characters of [A-Za-z0-9_-]."""
    millis = int(dt.datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp() * 1000)
    digits = ""
    while millis:
        millis, rem = divmod(millis, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rem] + digits
    return f"{task_id}-{digits or '0'}"


PUBLIC_FIELDS = (
    "taskID", "title", "description", "priority", "dueDate", "status", "createdAt", "updatedAt",
    "history", "error", "priorityScore", "slaDeadline", "result", "completedAt",
)


def public_view(item: dict) -> dict:
    """The task as the API shows it: server bookkeeping (requestHash) left out."""
    return {k: item[k] for k in PUBLIC_FIELDS if k in item}
