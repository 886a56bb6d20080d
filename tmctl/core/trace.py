"""One task end to end: its item and history, where its message is now, its
workflow executions with each step's timing, its errors, and the log lines
each function wrote about it. Read-only: nothing is received or consumed.

Built from the pieces the other commands use (queues.find_task_messages,
executions.find_executions/timeline, logs.find_log_events), fetched in
parallel so one screen costs about one round trip of each."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tmctl.core.backend import Backend
from tmctl.core.contract import Status
from tmctl.core.dynamo import get_task_item
from tmctl.core.errors import NotFound
from tmctl.core.executions import Execution, Step, find_executions, get_history, timeline
from tmctl.core.logs import LogEvent, find_log_events, log_group
from tmctl.core.queues import PeekedMessage, find_task_messages
from tmctl.core.stack import StackInfo

MAX_EXECUTIONS = 3  # the newest few; `tmctl executions show` has the rest


@dataclass
class Location:
    """Where the task's event is now."""

    where: str  # main queue | in flight | DLQ | consumed | never published | unknown
    detail: str
    messages: list[PeekedMessage] = field(default_factory=list)


@dataclass
class ExecutionTrace:
    execution: Execution
    steps: list[Step]
    events: list[dict] = field(default_factory=list)  # the raw history, oldest first (for a drawing of the path)


@dataclass
class TaskTrace:
    task_id: str
    task: dict | None
    location: Location
    executions: list[ExecutionTrace]
    logs: list[LogEvent]
    next_step: str | None  # what to do about it, when something went wrong
    stack_name: str = ""

    def to_dict(self) -> dict:
        return {
            "taskID": self.task_id, "task": self.task,
            "message": {"where": self.location.where, "detail": self.location.detail,
                        "messages": [m.to_dict() for m in self.location.messages]},
            "executions": [{"name": e.execution.name, "arn": e.execution.arn, "status": e.execution.status,
                            "start": e.execution.start.isoformat() if e.execution.start else None,
                            "stop": e.execution.stop.isoformat() if e.execution.stop else None,
                            "error": e.execution.error, "cause": e.execution.cause,
                            "steps": [s.to_dict() for s in e.steps]} for e in self.executions],
            "logs": [e.to_dict() for e in self.logs],
            "nextStep": self.next_step,
        }


def locate(task: dict | None, in_queue: list[PeekedMessage] | None, in_dlq: list[PeekedMessage] | None,
           executions: list[Execution]) -> Location:
    """Where the event is, from what the queues show (None: this backend cannot
    look without consuming) and what the task and its executions say."""
    status = (task or {}).get("status")
    if in_dlq:
        m = in_dlq[0]
        return Location("DLQ", f"message {m.message_id}, received {m.receive_count} time(s)", in_dlq)
    if in_queue:
        m = in_queue[0]
        if m.visible is False:
            return Location("in flight", f"message {m.message_id} is being processed (receive {m.receive_count})",
                            in_queue)
        return Location("main queue", f"message {m.message_id} waits to be received", in_queue)
    if executions or status in {Status.PROCESSING, Status.COMPLETED, Status.FAILED}:
        return Location("consumed", "the processor started its workflow; the message is gone")
    if status == Status.PENDING:
        return Location("never published", "stored, but its event was never sent to the queue")
    if status == Status.DEAD_LETTERED:
        where = "not in the DLQ any more (purged, or redriven and on its way)" if in_dlq is not None \
            else "in the DLQ, per the task (AWS: the DLQ is not peeked, as that would count as a receive)"
        return Location("DLQ" if in_dlq is None else "unknown", where)
    if status == Status.QUEUED:
        if in_queue is None:
            return Location("main queue", "published; AWS queues are not peeked (a look counts as a receive)")
        return Location("unknown", "published, but in neither the queue nor the DLQ, and no workflow started")
    return Location("unknown", "no task, message or execution found")


def next_step(task_id: str, task: dict | None, location: Location) -> str | None:
    status = (task or {}).get("status")
    error = (task or {}).get("error") or {}
    why = f"{error.get('code')}: {error.get('message')}" if error else ""
    if status == Status.DEAD_LETTERED:
        return (f"its event went to the DLQ ({why}); fix the cause, then "
                f"`tmctl dlq redrive --task-id {task_id}`")
    if status == Status.FAILED:
        return f"the workflow failed ({why}); fix the cause, then `tmctl task retry {task_id}`"
    if status == Status.PENDING or location.where == "unknown" and status == Status.QUEUED:
        return "the event is missing; `tmctl task reconcile` publishes it again"
    return None


def trace_task(*, ddb, sqs, sfn, logs, backend: Backend, stack: StackInfo, task_id: str,
               log_limit: int = 50) -> TaskTrace:
    task = get_task_item(ddb, stack.table, task_id)
    since = None
    if task and task.get("createdAt"):
        since = dt.datetime.fromisoformat(task["createdAt"].replace("Z", "+00:00")) - dt.timedelta(seconds=5)

    def messages(url: str) -> list[PeekedMessage] | None:
        if backend.peek_url is None:
            return None  # AWS: looking is a receive; the task's status says enough
        return find_task_messages(sqs, backend, url, task_id)

    def executions() -> list[ExecutionTrace]:
        try:
            found = find_executions(sfn, ddb, stack, task_id)
        except NotFound:
            return []
        traces = []
        for ex in found[:MAX_EXECUTIONS]:
            events = get_history(sfn, ex.arn)
            traces.append(ExecutionTrace(ex, timeline(events), events))
        return traces

    groups = [log_group(fn) for fn in stack.functions.values()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        queue_f = pool.submit(messages, stack.queue_url)
        dlq_f = pool.submit(messages, stack.dlq_url)
        ex_f = pool.submit(executions)
        logs_f = pool.submit(find_log_events, logs, groups, task_id, since, log_limit)
        in_queue, in_dlq, traces, lines = queue_f.result(), dlq_f.result(), ex_f.result(), logs_f.result()
    if task is None and not in_queue and not in_dlq and not traces:
        raise NotFound(f"no task {task_id!r}, and no message or execution for it",
                       "check the taskID and --stage; `tmctl task list` shows the tasks")
    location = locate(task, in_queue, in_dlq, [t.execution for t in traces])
    return TaskTrace(task_id, task, location, traces, lines, next_step(task_id, task, location), stack.name)
