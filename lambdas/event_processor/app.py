"""Event Processor: SQS batch → one Step Functions execution per task.

Powertools' AsyncBatchProcessor reports per-record failures, so one bad record
never fails its neighbours, and handles a batch's records concurrently: each
is a StartExecution round trip, and one after another a batch of ten took ten
round trips, which bounded how fast the queue drained. A failed record's
visibility is shortened with backoff, so retries come in seconds rather than
after the queue's whole visibility timeout. On its last receive (maxReceiveCount) a failing record is
going to the DLQ: the task is marked DEAD_LETTERED with the error, and the
record is released at once so SQS moves it there on the next poll."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from dataclasses import dataclass

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError
from taskcore import config
from taskcore.aws import BOTO_CONFIG
from taskcore.config import injected_failure
from taskcore.contract import (
    EVENT_TYPE,
    TASK_ID_ATTRIBUTE,
    TASK_ID_PATTERN,
    InvalidEvent,
    Status,
    execution_name,
    parse_task_created,
    workflow_view,
)
from taskcore.dynamo import from_item, to_value
from taskcore.model import now_iso

logger = Logger(service="event-processor")
# A batch whose every record failed is answered like any other (each record
# listed as failed) instead of raising: the effect on AWS is the same, and on
# an emulator a raised error costs the worker (next call cold) and pauses the
# mapping, which slowed the poison path to the DLQ by seconds.
processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

STATE_MACHINE_ARN = os.environ.get("STATE_MACHINE_ARN", "")
QUEUE_URL = os.environ.get("QUEUE_URL", "")
TABLE = os.environ.get("TABLE_NAME", "")
RETRY_BASE_SECONDS = 2  # when the stage's retry-base-seconds parameter is missing or invalid
RETRY_MAX_SECONDS = int(os.environ.get("RETRY_MAX_SECONDS", "60"))
MAX_RECEIVE_COUNT = int(os.environ.get("MAX_RECEIVE_COUNT", "3"))  # the queue's redrive policy


class PoisonEvent(Exception):
    """The record can never be processed as sent (bad body)."""


class InjectedFailure(Exception):
    """The failure-injection switch matched this task (non-production only)."""


@dataclass(frozen=True)
class TaskEvent:
    task_id: str
    event_type: str
    task: dict | None  # the task as created; absent in events sent by hand

    @classmethod
    def from_record(cls, record: SQSRecord) -> TaskEvent:
        try:
            event = parse_task_created(record.body)
        except InvalidEvent as err:
            raise PoisonEvent(str(err)) from None
        return cls(event.task_id, EVENT_TYPE, event.task)


class Clients:
    """Built on first use and kept while warm. Only Step Functions is on the
    hot path; SQS and DynamoDB serve failed records and hand-sent events, so a
    worker that never sees one never pays for them (~4 MB of memory each, and
    every concurrent invocation is a worker process on an emulator)."""

    _creating = threading.Lock()  # clients are thread-safe; creating them from boto3's default session is not

    @functools.cached_property
    def sfn(self):
        with self._creating:
            return boto3.client("stepfunctions", config=BOTO_CONFIG)

    @functools.cached_property
    def sqs(self):
        with self._creating:
            return boto3.client("sqs", config=BOTO_CONFIG)

    @functools.cached_property
    def ddb(self):
        with self._creating:
            return boto3.client("dynamodb", config=BOTO_CONFIG)

    @classmethod
    def ensure(cls) -> Clients:
        global _clients
        if _clients is None:
            _clients = cls()
        return _clients


_clients: Clients | None = None


def load_task(ddb, table: str, task_id: str) -> dict:
    """The task for an event that did not carry it (e.g. one sent by hand)."""
    got = ddb.get_item(TableName=table, Key={"taskID": {"S": task_id}}, ConsistentRead=True)
    if "Item" not in got:
        raise PoisonEvent(f"no task {task_id} in {table}")
    return workflow_view(from_item(got["Item"]))


def start_workflow(sfn, state_machine_arn: str, event: TaskEvent, task: dict) -> str:
    """Returns 'started' or 'duplicate'; raises on anything transient."""
    try:
        sfn.start_execution(stateMachineArn=state_machine_arn, name=execution_name(event.task_id, task["createdAt"]),
                            input=json.dumps({"taskID": event.task_id, "task": task}))
        return "started"
    except ClientError as err:
        if err.response["Error"]["Code"] == "ExecutionAlreadyExists":
            return "duplicate"  # a redelivered message: the workflow already exists
        raise


def retry_delay(receive_count: int) -> int:
    """Back-off before the next receive; none after the last one, when the
    record's next stop is the DLQ and waiting would only delay it."""
    if receive_count >= MAX_RECEIVE_COUNT:
        return 0
    return min(RETRY_MAX_SECONDS, config.retry_base_seconds(RETRY_BASE_SECONDS) * 2 ** max(0, receive_count - 1))


def task_id_of(record: SQSRecord) -> str | None:
    """The taskID of a record whose body may be unusable: the body's, else its message attribute."""
    try:
        body = json.loads(record.body)
    except ValueError:
        body = None
    value = body.get("taskID") if isinstance(body, dict) else None
    if not isinstance(value, str):
        attr = (record.message_attributes or {}).get(TASK_ID_ATTRIBUTE)
        value = attr.get("stringValue") if isinstance(attr, dict) else None
    return value if isinstance(value, str) and TASK_ID_PATTERN.fullmatch(value) else None


def mark_dead_lettered(ddb, table: str, task_id: str, error: Exception, receives: int, message_id: str) -> bool:
    """Record on the task that its event is going to the DLQ: status
    DEAD_LETTERED, the last error and when. Only a task the workflow never took
    (PENDING, QUEUED, or dead-lettered before and redriven) moves; True if it did."""
    at = now_iso()
    failure = {"code": type(error).__name__, "message": str(error)[:500], "at": at,
               "receiveCount": receives, "messageId": message_id}
    entry = {"step": "dead-lettered", "outcome": "failed", "at": at,
             "detail": f"{failure['code']}: {failure['message']} (after {receives} receives)"}
    try:
        ddb.update_item(
            TableName=table, Key={"taskID": {"S": task_id}},
            UpdateExpression="SET #s = :dead, #e = :e, updatedAt = :at, #h = list_append(#h, :h)",
            ConditionExpression="#s IN (:pending, :queued, :dead)",
            ExpressionAttributeNames={"#s": "status", "#e": "error", "#h": "history"},
            ExpressionAttributeValues={":dead": {"S": Status.DEAD_LETTERED}, ":pending": {"S": Status.PENDING},
                                       ":queued": {"S": Status.QUEUED}, ":e": to_value(failure),
                                       ":at": {"S": at}, ":h": to_value([entry])})
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False  # no such task, or the workflow has it: nothing to mark
        raise


async def record_handler(record: SQSRecord) -> None:
    """Records run concurrently: boto3 clients are thread-safe, and each call blocks a thread, not the loop."""
    await asyncio.to_thread(handle_record, record)


def handle_record(record: SQSRecord) -> None:
    clients = Clients.ensure()
    try:
        event = TaskEvent.from_record(record)
        if injected_failure("processor", event.task_id):
            raise InjectedFailure(f"failure injected in the processor for {event.task_id}")
        task = event.task or load_task(clients.ddb, TABLE, event.task_id)
        outcome = start_workflow(clients.sfn, STATE_MACHINE_ARN, event, task)
        logger.info("workflow " + outcome, extra={"taskID": event.task_id, "messageId": record.message_id})
    except Exception as err:
        receives = int(record.attributes.approximate_receive_count or 1)
        delay = retry_delay(receives)
        task_id = task_id_of(record)
        last = receives >= MAX_RECEIVE_COUNT
        logger.warning("record failed; " + ("going to the DLQ" if last else "retrying later"), extra={
            "taskID": task_id, "messageId": record.message_id, "receiveCount": receives, "retryInSeconds": delay,
            "error": f"{type(err).__name__}: {err}"})
        if last and task_id:
            try:
                mark_dead_lettered(clients.ddb, TABLE, task_id, err, receives, record.message_id)
            except (ClientError, BotoCoreError):
                # The message still goes to the DLQ; `tmctl task reconcile` finds the task.
                logger.exception("could not mark the task dead-lettered", extra={"taskID": task_id})
        try:
            clients.sqs.change_message_visibility(QueueUrl=QUEUE_URL, ReceiptHandle=record.receipt_handle,
                                                  VisibilityTimeout=delay)
        except (ClientError, BotoCoreError):
            logger.exception("could not shorten the visibility; the queue's timeout applies")
        raise


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context) -> dict:
    config.apply_log_level(logger)
    if event.get("warmup"):
        Clients.ensure().sfn  # noqa: B018 - the hot path's client, built while warming
        logger.info("warm")
        return {"warm": True}
    # Read (or refresh) the failure switch here, once, so the records' threads find
    # Powertools' SSM provider built and its cache fresh instead of racing to build them.
    config.failure_rules()
    return async_process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                          context=context)
