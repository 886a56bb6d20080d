"""tmctl.core.reconcile: what counts as stuck (moto), and the execution name
tmctl derives agreeing with the one the processor uses."""

from __future__ import annotations

import datetime as dt

import pytest
from taskcore.model import execution_name as processor_execution_name

from tmctl.core.reconcile import delivery_window, execution_name, find_stuck

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("created", ["2025-03-10T15:42:24.301Z", "1970-01-01T00:00:00.000Z", "2026-11-26T00:00:00Z"])
def test_execution_name_is_the_processors_own(created):
    assert execution_name("task-173", created) == processor_execution_name("task-173", created)


def test_delivery_window_is_visibility_times_max_receives(stack):
    assert delivery_window(stack.sqs, stack.queue_url) == 60 * stack.cfn.refs["MaxReceiveCount"]


def put(stack, task_id: str, status: str, created: str, updated: str | None = None) -> None:
    stack.put_item({"taskID": task_id, "title": task_id, "priority": "MEDIUM", "status": status,
                    "createdAt": created, "updatedAt": updated or created, "history": []})


class _Info:
    def __init__(self, stack):
        self.table, self.state_machine_arn = stack.table, stack.state_machine_arn


def test_find_stuck_picks_old_pending_and_lost_queued_tasks_only(stack):
    old, recent = "2026-03-10T11:00:00.000Z", "2026-03-10T11:59:30.000Z"
    put(stack, "pending-old", "PENDING", old)
    put(stack, "pending-new", "PENDING", recent)
    put(stack, "queued-lost", "QUEUED", old)
    put(stack, "queued-touched", "QUEUED", old, updated=recent)  # moved recently: within its window
    put(stack, "queued-in-dlq", "QUEUED", old)  # its message is still somewhere
    put(stack, "queued-running", "QUEUED", old)  # the workflow has it
    stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn,
                              name=execution_name("queued-running", old), input="{}")
    put(stack, "done", "COMPLETED", old)

    stuck = find_stuck(stack.ddb, stack.sfn, _Info(stack), older_than=60, queued_after=180,
                       task_ids_in_queues={"queued-in-dlq"}, now=NOW)

    assert {(t.taskID, t.status) for t in stuck} == {("pending-old", "PENDING"), ("queued-lost", "QUEUED")}


def test_without_a_view_of_the_queues_the_window_alone_decides(stack):
    put(stack, "queued-lost", "QUEUED", "2026-03-10T11:00:00.000Z")

    stuck = find_stuck(stack.ddb, stack.sfn, _Info(stack), older_than=60, queued_after=180,
                       task_ids_in_queues=None, now=NOW)

    assert [t.taskID for t in stuck] == ["queued-lost"] and "past the delivery window" in stuck[0].reason
