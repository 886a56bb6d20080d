"""Workflow steps: validate → enrich (prioritise) → process, one Lambda with a
step per call. Pure business logic: the task comes in the execution's input,
the outcome goes back as data, and the state machine records it on the task
with a conditional write (it is the only writer of workflow state).

Business failures are returned as data ({"outcome": "failed"}) so the state
machine routes them without retries, identically on AWS and on emulators that
report every exception as Runtime.HandlerError. Exceptions mean "transient":
the state machine retries them, then catches them and marks the task FAILED."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from taskcore.config import injected_failure
from taskcore.dynamo import to_value
from taskcore.model import now_iso

logger = Logger(service="workflow-steps")
PRIORITY_WEIGHT = {"LOW": 10, "MEDIUM": 40, "HIGH": 70, "URGENT": 90}
SLA_HOURS = {"LOW": 168, "MEDIUM": 72, "HIGH": 24, "URGENT": 4}


class InjectedFailure(Exception):
    """The failure-injection switch matched this task at this step."""


@dataclass(frozen=True)
class StepRequest:
    step: str
    task: dict

    @classmethod
    def parse(cls, event: dict) -> StepRequest:
        step, task = event.get("step"), event.get("task")
        if step not in HANDLERS or not isinstance(task, dict) or not isinstance(task.get("taskID"), str) \
                or not isinstance(task.get("createdAt"), str):
            raise ValueError(f"bad step request: step={step!r}, task keys={sorted(task or {})}")
        return cls(step, task)


def validate(task: dict, today: dt.date) -> tuple[str, dict, str]:
    """Business rules the API's syntax checks cannot know."""
    due = task.get("dueDate")
    if due and dt.date.fromisoformat(due) < dt.date.fromisoformat(task["createdAt"][:10]):
        return "failed", {}, f"dueDate {due} is before the task was created"
    if task.get("title", "").strip().lower() in {"", "todo", "tbd"}:
        return "failed", {}, "the title says nothing about the work"
    return "ok", {}, "valid"


def enrich(task: dict, today: dt.date) -> tuple[str, dict, str]:
    """Priority score (0-100) from the stated priority and how close the due date is; SLA deadline."""
    priority = task.get("priority", "MEDIUM")
    score = PRIORITY_WEIGHT.get(priority, 40)
    due = task.get("dueDate")
    if due:
        days = (dt.date.fromisoformat(due) - today).days
        score += 10 if days <= 1 else 5 if days <= 7 else 0
    created = dt.datetime.fromisoformat(task["createdAt"].replace("Z", "+00:00"))
    sla = (created + dt.timedelta(hours=SLA_HOURS.get(priority, 72))).isoformat(timespec="seconds")
    score = min(score, 100)
    return "ok", {"priorityScore": score, "slaDeadline": sla.replace("+00:00", "Z")}, f"score {score}"


def process(task: dict, today: dt.date) -> tuple[str, dict, str]:
    """The work: normalise the text, extract #tags, fingerprint the content."""
    text = " ".join(filter(None, [task.get("title"), task.get("description")]))
    tags = sorted({t.lower() for t in re.findall(r"#(\w{1,30})", text)})
    result = {"words": len(text.split()), "tags": tags, "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}
    return "ok", {"result": result}, f"{result['words']} words"


HANDLERS = {"validate": validate, "enrich": enrich, "process": process}


def run_step(req: StepRequest, today: dt.date | None = None) -> dict:
    """The step's outcome, plus the same values in DynamoDB's typed form
    ("ddb") so the state machine can write them without another Lambda."""
    started = time.perf_counter()
    task_id = req.task["taskID"]
    if injected_failure(req.step, task_id):
        raise InjectedFailure(f"failure injected at step '{req.step}' for {task_id}")
    outcome, fields, detail = HANDLERS[req.step](req.task, today or dt.datetime.now(dt.UTC).date())
    at = now_iso()
    entry = {"step": req.step, "outcome": outcome, "at": at,
             "durationMs": round((time.perf_counter() - started) * 1000, 2), "detail": detail}
    logger.info("step done", extra={"taskID": task_id, "step": req.step, "outcome": outcome})
    return {
        "step": req.step, "outcome": outcome, "reason": detail, "at": at, "fields": fields,
        "ddb": {"history": to_value([entry]), "at": to_value(at),
                **{name: to_value(value) for name, value in fields.items()}},
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context) -> dict:
    if event.get("warmup"):
        logger.info("warm")
        return {"warm": True}
    return run_step(StepRequest.parse(event))
