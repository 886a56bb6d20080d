"""`tmctl verify`: the seed's own acceptance checks as one run: POST a task,
then find its item, its SQS message, its workflow execution (started and
finished) and an empty DLQ."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from tmctl.core.api import TaskApi, new_task_id, ok
from tmctl.core.contract import Status
from tmctl.core.dynamo import get_task_item
from tmctl.core.errors import TmctlError, error_code
from tmctl.core.stack import StackInfo
from tmctl.core.status import queue_depth
from tmctl.core.wait import poll


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    seconds: float = 0.0


@dataclass
class Verification:
    task_id: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


def execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + name


def execution_name_of(task: dict) -> str | None:
    """The execution name the workflow wrote on the task's 'started' step."""
    return next((h.get("detail") for h in task.get("history", []) if h.get("step") == "started"), None)


def verify(ddb, sqs, sfn, stack: StackInfo, *, task_id: str | None = None, timeout: float = 60.0,
           on_check: Callable[[Check], None] = lambda _c: None, api: TaskApi | None = None) -> Verification:
    task_id = task_id or new_task_id().replace("task-", "verify-")
    result = Verification(task_id)
    started = time.monotonic()

    def record(name: str, passed: bool, detail: str) -> bool:
        check = Check(name, passed, detail, round(time.monotonic() - started, 3))
        result.checks.append(check)
        on_check(check)
        return passed

    api = api or TaskApi(stack.api_url)  # a signed one (tmctl.core.api.task_api) for an AWS_IAM stack
    try:
        created = ok(api.create({"taskID": task_id, "title": "tmctl verify"}))
        record("POST /tasks accepted", True, f"{task_id} → {created.get('status')}")
    except TmctlError as err:
        record("POST /tasks accepted", False, err.message)
        return result

    item = get_task_item(ddb, stack.table, task_id)
    record("DynamoDB item created", item is not None,
           f"{stack.table}: status {item['status']}" if item else f"no item in {stack.table}")

    queued = next((h for h in (item or {}).get("history", []) if h.get("step") == "queued"), None)
    record("SQS message sent", queued is not None,
           f"message {queued.get('detail', '?')} to {stack.queue_url.rsplit('/', 1)[-1]}" if queued
           else "the task has no 'queued' step: its event was not published")

    names: list[str] = []  # found once: the workflow records it on the task when it starts

    def execution() -> tuple[str, str]:
        if not names:
            found = execution_name_of(get_task_item(ddb, stack.table, task_id) or {})
            if found is None:
                return "", f"no workflow has started for {task_id}"
            names.append(found)
        name = names[0]
        try:
            ex = sfn.describe_execution(executionArn=execution_arn(stack.state_machine_arn, name))
        except ClientError as err:
            return "", f"no execution {name} ({error_code(err)})"
        took = f" in {(ex['stopDate'] - ex['startDate']).total_seconds():.2f}s" if ex.get("stopDate") else ""
        return ex["status"], f"{ex['status']} ({ex['name']}){took}"

    status, detail = poll(execution, lambda r: r[0] != "", timeout=timeout, max_interval=0.5)
    if not record("Workflow execution started", status != "", detail):
        return result
    status, detail = poll(execution, lambda r: r[0] not in {"", "RUNNING"}, timeout=timeout,
                          max_interval=0.5)
    record("Workflow execution finished", status == "SUCCEEDED", detail)

    final = get_task_item(ddb, stack.table, task_id) or {}
    record("Task COMPLETED", final.get("status") == Status.COMPLETED,
           f"status {final.get('status')}" + (f": {final['error']}" if final.get("error") else ""))

    dlq = queue_depth(sqs, stack.dlq_url)
    record("DLQ empty", dlq.total == 0, f"{dlq.name}: {dlq.total} message(s)")
    return result
