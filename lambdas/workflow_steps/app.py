"""Workflow steps: validate → enrich (prioritise) → process, one Lambda with a
step per call, each recording its outcome on the task.

Business failures are returned as data ({"outcome": "failed"}) so the state
machine routes them without retries, identically on AWS and on emulators that
report every exception as Runtime.HandlerError. Exceptions mean "transient":
the state machine retries them, then catches and marks the task FAILED."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
from dataclasses import dataclass

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError
from taskcore.config import injected_failure
from taskcore.dynamo import from_item, to_value
from taskcore.model import Status, now_iso

logger = Logger(service="workflow-steps")
_BOTO = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
TABLE = os.environ.get("TABLE_NAME", "")
PRIORITY_WEIGHT = {"LOW": 10, "MEDIUM": 40, "HIGH": 70, "URGENT": 90}
SLA_HOURS = {"LOW": 168, "MEDIUM": 72, "HIGH": 24, "URGENT": 4}
STEPS = ("validate", "enrich", "process")


class InjectedFailure(Exception):
    """The failure-injection switch matched this task at this step."""


@dataclass(frozen=True)
class StepRequest:
    step: str
    task_id: str

    @classmethod
    def parse(cls, event: dict) -> StepRequest:
        step, task_id = event.get("step"), event.get("taskID")
        if step not in STEPS or not isinstance(task_id, str):
            raise ValueError(f"bad step request: step={step!r} taskID={task_id!r}")
        return cls(step, task_id)


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
    return "ok", {"priorityScore": min(score, 100), "slaDeadline": sla.replace("+00:00", "Z")}, f"score {score}"


def process(task: dict, today: dt.date) -> tuple[str, dict, str]:
    """The work: normalise the text, extract #tags, fingerprint the content."""
    text = " ".join(filter(None, [task.get("title"), task.get("description")]))
    tags = sorted({t.lower() for t in re.findall(r"#(\w{1,30})", text)})
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    result = {"words": len(text.split()), "tags": tags, "digest": digest}
    return "ok", {"result": result}, f"{result['words']} words"


HANDLERS = {"validate": validate, "enrich": enrich, "process": process}


class StepRunner:
    def __init__(self, ddb, table: str):
        self.ddb, self.table = ddb, table

    def run(self, req: StepRequest) -> dict:
        started = time.perf_counter()
        got = self.ddb.get_item(TableName=self.table, Key={"taskID": {"S": req.task_id}}, ConsistentRead=True)
        if "Item" not in got:
            return {"outcome": "failed", "step": req.step, "reason": f"task {req.task_id} not found"}
        task = from_item(got["Item"])
        if injected_failure(req.step, req.task_id):
            raise InjectedFailure(f"failure injected at step '{req.step}' for {req.task_id}")
        outcome, fields, detail = HANDLERS[req.step](task, dt.datetime.now(dt.UTC).date())
        entry = {"step": req.step, "outcome": outcome, "at": now_iso(),
                 "durationMs": round((time.perf_counter() - started) * 1000, 1), "detail": detail}
        names = {"#s": "status", "#h": "history"}
        values = {":h": to_value([entry]), ":at": {"S": entry["at"]}, ":processing": {"S": Status.PROCESSING}}
        sets = ["#h = list_append(#h, :h)", "updatedAt = :at"]
        for i, (key, value) in enumerate(fields.items()):
            names[f"#f{i}"], values[f":f{i}"] = key, to_value(value)
            sets.append(f"#f{i} = :f{i}")
        try:
            self.ddb.update_item(TableName=self.table, Key={"taskID": {"S": req.task_id}},
                                 UpdateExpression="SET " + ", ".join(sets), ConditionExpression="#s = :processing",
                                 ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                # Another writer moved it on (never backwards): nothing left to do here.
                return {"outcome": "stale", "step": req.step, "reason": f"no longer {Status.PROCESSING}"}
            raise
        logger.info("step done", extra={"taskID": req.task_id, "step": req.step, "outcome": outcome})
        return {"outcome": outcome, "step": req.step, "reason": detail}


_runner: StepRunner | None = None


def runner() -> StepRunner:
    global _runner
    if _runner is None:
        _runner = StepRunner(boto3.client("dynamodb", config=_BOTO), TABLE)
    return _runner


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context) -> dict:
    if event.get("warmup"):
        runner()
        logger.info("warm")
        return {"warm": True}
    return runner().run(StepRequest.parse(event))
