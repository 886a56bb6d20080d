"""tmctl.core.reconcile: what counts as stuck (moto), and what it publishes
again. The execution name and the event are the Lambdas' own (tmctl.core.contract
loads their file: tests/unit/test_contract.py), so no test compares copies."""

from __future__ import annotations

import datetime as dt

import pytest

from tmctl.core import reconcile
from tmctl.core.contract import (
    EVENT_TYPE,
    EVENT_TYPE_ATTRIBUTE,
    TASK_ID_ATTRIBUTE,
    execution_name,
    parse_task_created,
    task_created_message,
)
from tmctl.core.reconcile import StuckTask, delivery_window, find_stuck

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def test_reconcile_uses_the_contracts_execution_name_and_event():
    # A copy here would be a second contract, free to drift from the Lambdas'.
    assert reconcile.execution_name is execution_name
    assert reconcile.task_created_message is task_created_message


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


def test_a_lost_event_is_sent_again_as_the_processor_parses_it(stack):
    # GIVEN a QUEUED task whose event was lost
    put(stack, "queued-lost", "QUEUED", "2026-03-10T11:00:00.000Z")
    lost = StuckTask("queued-lost", "QUEUED", "2026-03-10T11:00:00.000Z", "2026-03-10T11:00:00.000Z", "lost")

    # WHEN it is republished
    result = reconcile.republish(stack.ddb, stack.sqs, None, _Queue(stack), lost)

    # THEN one TaskCreated event is on the queue: the taskID only (the processor
    # reads the task from the table), with the attributes the tools look for
    (message,) = stack.sqs.receive_message(QueueUrl=stack.queue_url, MessageAttributeNames=["All"],
                                           MaxNumberOfMessages=10)["Messages"]
    assert result == f"event sent ({message['MessageId']})"
    event = parse_task_created(message["Body"])
    assert (event.task_id, event.task) == ("queued-lost", None)
    assert {k: v["StringValue"] for k, v in message["MessageAttributes"].items()} == {
        TASK_ID_ATTRIBUTE: "queued-lost", EVENT_TYPE_ATTRIBUTE: EVENT_TYPE}


class _Queue(_Info):
    def __init__(self, stack):
        super().__init__(stack)
        self.queue_url = stack.queue_url
