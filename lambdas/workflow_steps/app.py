"""Workflow steps: validate → enrich (prioritise) → process. Pure business
logic: the task comes in the execution's input, the outcomes go back as data,
and the state machine records them on the task with one conditional write (it
is the only writer of workflow state).

One invocation runs the steps in order and stops at the first that says no,
returning a timed history entry per step run. The steps are pure functions
of the task taking about a millisecond, while every Lambda hop costs a
scheduling round trip, a state transition and, on an emulator, a worker's
time: three hops per task were two thirds of the workflow's cost and throttled
under bursts. `{"step": name}` still runs a single step.

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
from taskcore import config
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
    steps: tuple[str, ...]
    task: dict

    @classmethod
    def parse(cls, event: dict) -> StepRequest:
        """`{"task": …}` runs every step in order; `{"step": name, "task": …}` runs one."""
        task = event.get("task")
        steps = (event["step"],) if "step" in event else STEPS
        if any(step not in HANDLERS for step in steps) or not isinstance(task, dict) \
                or not isinstance(task.get("taskID"), str) or not isinstance(task.get("createdAt"), str):
            raise ValueError(f"bad step request: steps={steps!r}, task keys={sorted(task or {})}")
        return cls(steps, task)


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
STEPS = tuple(HANDLERS)  # the order they run in


def run_steps(req: StepRequest, today: dt.date | None = None) -> dict:
    """The outcome of the steps run (each until one says no), plus the same
    values in DynamoDB's typed form ("ddb": a history entry per step and the
    fields they set) so the state machine writes them without another Lambda.
    `step`, `outcome` and `reason` are those of the deciding step: the one
    that failed, else the last; an exception (transient, or injected) fails
    the whole call, and the state machine retries it."""
    today = today or dt.datetime.now(dt.UTC).date()
    task_id = req.task["taskID"]
    entries: list[dict] = []
    fields: dict = {}
    for step in req.steps:
        started = time.perf_counter()
        if injected_failure(step, task_id):
            raise InjectedFailure(f"failure injected at step '{step}' for {task_id}")
        outcome, step_fields, detail = HANDLERS[step](req.task, today)
        entries.append({"step": step, "outcome": outcome, "at": now_iso(),
                        "durationMs": round((time.perf_counter() - started) * 1000, 2), "detail": detail})
        fields.update(step_fields)
        if outcome != "ok":
            break
    last = entries[-1]
    logger.info("steps done", extra={"taskID": task_id, "steps": [e["step"] for e in entries],
                                     "outcome": last["outcome"]})
    reason = last["detail"] if last["outcome"] != "ok" or len(entries) == 1 else \
        " · ".join(e["detail"] for e in entries)
    return {
        "step": last["step"], "outcome": last["outcome"], "reason": reason, "at": last["at"], "fields": fields,
        "steps": entries,
        "ddb": {"history": to_value(entries), "at": to_value(last["at"]),
                **{name: to_value(value) for name, value in fields.items()}},
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context) -> dict:
    config.apply_log_level(logger)
    if event.get("warmup"):
        logger.info("warm")
        return {"warm": True}
    return run_steps(StepRequest.parse(event))
