"""Stuck tasks, found and published again.

Two ways a task can stall between its two homes (the table and the queue):

- PENDING: stored but its event never published (the Task API died, or SQS
  failed, between its PutItem and SendMessage). Replaying the identical create
  through the API publishes it; the API's idempotency makes a replay of
  anything already published a no-op.
- QUEUED long past the queue's delivery window (visibility timeout × max
  receives) with no workflow execution and, where the engine lets us look
  without consuming, no message in the queue or the DLQ: the event was lost
  (a purge, a deleted queue). A hand-sent TaskCreated event (taskID only: the
  processor reads the task from the table) starts it; the execution name is
  derived from the task, so a message that was not lost after all still
  cannot start a second workflow.

And one way the engine leaves a task hanging: a local engine stopped while
the task's workflow ran (MiniStack fails such executions at its next start
with States.ServiceRestart). The task is marked FAILED with that error and run
again as a labelled execution, as `tmctl task retry` does.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from botocore.exceptions import ClientError

from tmctl.core.api import TaskApi
from tmctl.core.backend import Backend
from tmctl.core.contract import CLIENT_FIELDS, Status, execution_name, task_created_message
from tmctl.core.dynamo import from_item, get_task_item
from tmctl.core.errors import error_code
from tmctl.core.queues import inspect_messages
from tmctl.core.stack import StackInfo
from tmctl.core.verify import execution_arn


@dataclass
class StuckTask:
    taskID: str
    status: str
    createdAt: str
    updatedAt: str
    reason: str
    result: str = ""


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def delivery_window(sqs, queue_url: str) -> float:
    """Seconds within which an event is consumed or dead-lettered: the queue's
    visibility timeout times its max receives (a processor that dies mid-batch
    gives the record back only after the visibility timeout)."""
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"])
    attrs = attrs.get("Attributes", {})
    visibility = int(attrs.get("VisibilityTimeout", 30))
    try:
        receives = int(json.loads(attrs.get("RedrivePolicy", "{}")).get("maxReceiveCount", 1))
    except ValueError:
        receives = 1
    return float(visibility * max(1, receives))


def tasks_in_status(ddb, table: str, status: str, created_before: str) -> list[dict]:
    found = []
    for page in ddb.get_paginator("query").paginate(
            TableName=table, IndexName="byStatus", KeyConditionExpression="#s = :s AND createdAt <= :cut",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}, ":cut": {"S": created_before}}):
        found += [from_item(item) for item in page["Items"]]
    return found


def has_execution(sfn, state_machine_arn: str, task: dict) -> bool:
    try:
        sfn.describe_execution(executionArn=execution_arn(state_machine_arn,
                                                          execution_name(task["taskID"], task["createdAt"])))
        return True
    except ClientError as err:
        if error_code(err) == "ExecutionDoesNotExist":
            return False
        raise


def find_stuck(ddb, sfn, stack: StackInfo, *, older_than: float, queued_after: float,
               task_ids_in_queues: set[str] | None, now: dt.datetime | None = None) -> list[StuckTask]:
    """PENDING tasks older than `older_than` seconds, and QUEUED ones untouched
    for `queued_after` seconds with no execution and (when `task_ids_in_queues`
    is known: the taskIDs of every message in the queue and the DLQ) no message."""
    now = now or dt.datetime.now(dt.UTC)
    stuck = []
    pending_cut = iso(now - dt.timedelta(seconds=older_than))
    for task in tasks_in_status(ddb, stack.table, Status.PENDING, pending_cut):
        why = (task.get("error") or {}).get("code") or "event never published"
        stuck.append(StuckTask(task["taskID"], Status.PENDING, task["createdAt"], task["updatedAt"], why))
    queued_cut = iso(now - dt.timedelta(seconds=queued_after))
    for task in tasks_in_status(ddb, stack.table, Status.QUEUED, queued_cut):
        if task["updatedAt"] > queued_cut:
            continue  # touched recently: still within its delivery window
        if task_ids_in_queues is not None and task["taskID"] in task_ids_in_queues:
            continue  # its message is still on its way
        if has_execution(sfn, stack.state_machine_arn, task):
            continue  # the workflow has it (and will move it on)
        where = "no message in the queue or the DLQ" if task_ids_in_queues is not None else \
            "past the delivery window"
        stuck.append(StuckTask(task["taskID"], Status.QUEUED, task["createdAt"], task["updatedAt"],
                               f"no execution, {where}"))
    return stuck


def republish(ddb, sqs, api: TaskApi, stack: StackInfo, task: StuckTask) -> str:
    if task.status == Status.PENDING:
        item = from_item(ddb.get_item(TableName=stack.table, Key={"taskID": {"S": task.taskID}},
                                      ConsistentRead=True).get("Item") or {})
        if not item:
            return "gone"
        resp = api.create({k: item[k] for k in CLIENT_FIELDS if item.get(k) is not None})
        return str(resp.body.get("status")) if resp.status == 202 else \
            f"error {resp.status} {resp.body.get('error')}"
    sent = sqs.send_message(QueueUrl=stack.queue_url, **task_created_message(task.taskID))
    return f"event sent ({sent['MessageId']})"


def task_ids_in_queues(backend: Backend, stack: StackInfo) -> set[str] | None:
    """taskIDs of every message in the main queue and the DLQ, where the engine can
    show them without consuming; None on AWS (reconcile relies on the window there)."""
    if backend.peek_url is None:
        return None
    return {m.task_id for url in (stack.queue_url, stack.dlq_url) for m in inspect_messages(backend, url)}


def reconcile(ddb, sqs, sfn, api: TaskApi, stack: StackInfo, *, older_than: float, queued_after: float,
              task_ids_in_queues: set[str] | None, dry_run: bool = False) -> list[StuckTask]:
    stuck = find_stuck(ddb, sfn, stack, older_than=older_than, queued_after=queued_after,
                       task_ids_in_queues=task_ids_in_queues)
    for task in stuck:
        task.result = "would republish" if dry_run else republish(ddb, sqs, api, stack, task)
    return stuck


# ------------------------------------------------------------------ executions a restart ended

SERVICE_RESTART = "States.ServiceRestart"  # MiniStack: an execution RUNNING when the engine stopped
_UNFINISHED = (Status.PENDING, Status.QUEUED, Status.PROCESSING)


@dataclass
class Interrupted:
    """A task whose newest execution was ended by an engine restart, not by its workflow."""

    taskID: str
    status: str
    execution: str
    stoppedAt: str
    result: str = ""


def find_service_restarts(sfn, ddb, stack: StackInfo, *, stopped_since: dt.datetime | None = None
                          ) -> list[Interrupted]:
    """Tasks still unfinished (PENDING/QUEUED/PROCESSING) whose newest execution
    FAILED with States.ServiceRestart: the engine stopped while it ran, and
    nothing will move the task on. A task retried since (a newer execution) or
    already final is not one of them. `stopped_since` (the engine's start): only
    executions failed since then are described, not every failure on record."""
    from tmctl.core.executions import describe_execution, list_executions

    everything = list_executions(sfn, stack.state_machine_arn, limit=None)
    newest: dict[str, object] = {}
    for ex in everything:  # newest first: the first seen of a task is its newest
        if ex.task_id and ex.task_id not in newest:
            newest[ex.task_id] = ex
    found = []
    for task_id, ex in newest.items():
        if ex.status != "FAILED" or (stopped_since and ex.stop and ex.stop < stopped_since):
            continue
        full = describe_execution(sfn, ex.arn)
        if full.error != SERVICE_RESTART:
            continue
        item = get_task_item(ddb, stack.table, task_id)
        if item is None or item.get("status") not in _UNFINISHED:
            continue
        found.append(Interrupted(task_id, str(item["status"]), full.name,
                                 iso(full.stop) if full.stop else ""))
    return found


def mark_interrupted(ddb, stack: StackInfo, task: Interrupted, now: dt.datetime | None = None) -> bool:
    """Record the restart's failure on the task (status FAILED, error, a `failed`
    history entry), only if it is still in the status it was found in: then
    `retry_task` can run it again like any failed task. False if it moved on."""
    at = iso(now or dt.datetime.now(dt.UTC))
    try:
        ddb.update_item(
            TableName=stack.table, Key={"taskID": {"S": task.taskID}},
            UpdateExpression="SET #s = :failed, updatedAt = :at, #e = :e, #h = list_append(#h, :h)",
            ConditionExpression="#s = :was",
            ExpressionAttributeNames={"#s": "status", "#e": "error", "#h": "history"},
            ExpressionAttributeValues={
                ":failed": {"S": Status.FAILED}, ":was": {"S": task.status}, ":at": {"S": at},
                ":e": {"M": {"code": {"S": SERVICE_RESTART}, "at": {"S": at},
                             "message": {"S": f"execution {task.execution} was running when the engine stopped"}}},
                ":h": {"L": [{"M": {"step": {"S": "failed"}, "outcome": {"S": "failed"}, "at": {"S": at},
                                    "detail": {"S": SERVICE_RESTART}}}]}})
    except ClientError as err:
        if error_code(err) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def rerun_service_restarts(sfn, ddb, stack: StackInfo, *, dry_run: bool = False, settle: float = 0.0,
                           stopped_since: dt.datetime | None = None) -> list[Interrupted]:
    """Find the tasks a restart left hanging and run each again as a labelled
    execution (`<name>-retry<n>`, through retry_task: the workflow records
    `retried` on the task and moves it on)."""
    from tmctl.core.executions import retry_task

    found = find_service_restarts(sfn, ddb, stack, stopped_since=stopped_since)
    for task in found:
        if dry_run:
            task.result = "would re-run"
        elif not mark_interrupted(ddb, stack, task):
            task.result = "moved on by itself"
        else:
            result = retry_task(sfn, ddb, stack, task.taskID, settle=settle)
            task.result = f"started {result.execution_name}"
    return found
