"""The task contract as data: the statuses, the fields a client sends and the
workflow reads, the workflow's execution name, and the TaskCreated event.

One file for the Lambdas and tmctl alike. The Lambdas import it as
`taskcore.contract` (and through `taskcore.model`); tmctl loads this same file
(tmctl.core.contract) to publish an event again and find a task's execution.
So it stays pure: standard library only, no I/O, no AWS SDK, nothing read at
import. A change here is a change for both sides, in one commit."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from enum import StrEnum

TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

# What a client may send on POST /tasks (every other name is refused).
CLIENT_FIELDS = ("taskID", "title", "description", "priority", "dueDate")
# What the workflow needs of a task; travels in the event and the execution input.
WORKFLOW_FIELDS = ("taskID", "title", "description", "priority", "dueDate", "createdAt")


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
# Stages where failure injection is ignored and tmctl refuses what would change data behind CloudFormation.
PRODUCTION_STAGES = frozenset({"prod", "production"})


class Priority(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"


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


# ------------------------------------------------------------------ the TaskCreated event

EVENT_TYPE = "TaskCreated"
EVENT_VERSION = 1
# SQS message attributes, so a message can be found (and routed) without reading its body.
TASK_ID_ATTRIBUTE = "taskID"
EVENT_TYPE_ATTRIBUTE = "eventType"


class InvalidEvent(ValueError):
    """A message body that is not a TaskCreated event this version can process."""


@dataclass(frozen=True)
class TaskCreated:
    """A parsed TaskCreated event: the task's ID and, when the sender embedded
    it, the task as the workflow needs it (WORKFLOW_FIELDS)."""

    task_id: str
    task: dict | None = None  # absent in an event sent by hand: the processor reads the table


def task_created_message(task_id: str, task: dict | None = None) -> dict:
    """The SendMessage arguments of one TaskCreated event, body and message
    attributes: `sqs.send_message(QueueUrl=url, **task_created_message(...))`.
    With `task`, the event carries its WORKFLOW_FIELDS, so the processor need
    not read the table; without, it carries the taskID only."""
    body: dict = {"type": EVENT_TYPE, "version": EVENT_VERSION, "taskID": task_id}
    if task is not None:
        body["task"] = workflow_view(task)
    return {
        "MessageBody": json.dumps(body),
        "MessageAttributes": {
            TASK_ID_ATTRIBUTE: {"DataType": "String", "StringValue": task_id},
            EVENT_TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": EVENT_TYPE},
        },
    }


def parse_task_created(body: str | bytes) -> TaskCreated:
    """A message body as a TaskCreated event of this version, or InvalidEvent.
    An embedded task is kept only if it is this task's and says when it was
    created (the execution name needs it); otherwise the table is the source."""
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidEvent("body is not JSON") from None
    version = data.get("version") if isinstance(data, dict) else None
    # `type(...) is int`: JSON true or 1.0 compare equal to 1 but are not version 1.
    if not isinstance(data, dict) or data.get("type") != EVENT_TYPE or type(version) is not int \
            or version != EVENT_VERSION:
        raise InvalidEvent(f"not a {EVENT_TYPE} v{EVENT_VERSION} event")
    task_id = data.get("taskID")
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.fullmatch(task_id):
        raise InvalidEvent("body has no valid taskID")
    task = data.get("task")
    if not (isinstance(task, dict) and task.get("taskID") == task_id and isinstance(task.get("createdAt"), str)):
        return TaskCreated(task_id)
    return TaskCreated(task_id, workflow_view(task))
