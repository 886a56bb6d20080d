"""Queue pairs, stats and the non-consuming peek (tmctl.core.queues), and the
`queue`/`dlq peek|purge` commands, against moto SQS."""

from __future__ import annotations

import json

import pytest
from moto import mock_aws
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.core.backend import Backend
from tmctl.core.errors import ExitCode, NotFound
from tmctl.core.queues import (
    PeekUnavailable,
    QueuePair,
    find_task_messages,
    peek,
    queue_stats,
    resolve_pair,
    stack_queue_name,
)

pytestmark = pytest.mark.unit
AWS = Backend("aws")
MINISTACK = Backend("ministack", "1.5.33", "http://127.0.0.1:4566")
LOCALSTACK = Backend("localstack", "4.9.2", "http://127.0.0.1:4566")
CLI_ENV = {"NO_COLOR": "1", "COLUMNS": "200", "TMCTL_STAGE": "dev"}


@pytest.fixture
def sqs(aws_clients):
    with mock_aws():
        yield aws_clients["sqs"]  # the session's client: building one per test cost more than most tests


def make_pair(sqs, name: str, max_receives: int = 3, fifo: bool = False) -> tuple[str, str]:
    suffix = ".fifo" if fifo else ""
    extra = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=extra)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    main = sqs.create_queue(QueueName=f"{name}{suffix}", Attributes={**extra, "RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})})["QueueUrl"]
    return main, dlq


# ------------------------------------------------------------------ pairs


def test_a_queue_with_a_redrive_policy_is_the_main_queue_and_names_its_dlq(sqs):
    main, dlq = make_pair(sqs, "orders", max_receives=5)

    pair = resolve_pair(sqs, AWS, "orders")

    assert (pair.main.url, pair.dlq.url) == (main, dlq)
    assert pair.main.max_receive_count == 5
    assert pair.found_by == "RedrivePolicy"


@pytest.mark.parametrize(("backend", "how"), [(AWS, "ListDeadLetterSourceQueues"), (MINISTACK, "ListQueues scan")])
def test_a_dlq_finds_its_source_by_listing_where_the_backend_can_else_by_scanning(sqs, backend, how):
    main, dlq = make_pair(sqs, "orders")
    make_pair(sqs, "other")  # another pair must not be taken for this one's source

    pair = resolve_pair(sqs, backend, dlq)  # by URL

    assert (pair.main.url, pair.dlq.url, pair.found_by) == (main, dlq, how)


def test_a_dlq_finds_its_source_from_the_stack_outputs_before_scanning(sqs):
    main, dlq = make_pair(sqs, "orders")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    pair = resolve_pair(sqs, MINISTACK, dlq_arn,  # by ARN
                        stack_outputs=lambda: {"DeadLetterQueueArn": dlq_arn, "TaskQueueUrl": main})

    assert (pair.main.url, pair.found_by) == (main, "stack outputs")


def test_a_lone_queue_is_taken_as_a_dlq_without_a_source(sqs):
    lone = sqs.create_queue(QueueName="lonely")["QueueUrl"]

    pair = resolve_pair(sqs, MINISTACK, "lonely")

    assert pair.main is None and pair.dlq.url == lone
    with pytest.raises(NotFound):
        pair.require_main()


def test_the_stack_pair_is_found_by_its_queue_name_without_cloudformation(sqs):
    main, dlq = make_pair(sqs, stack_queue_name("taskmanager", "dev"))

    def no_cloudformation():
        raise AssertionError("CloudFormation was asked although the queue name was enough")

    pair = resolve_pair(sqs, AWS, default_name="taskmanager-dev-tasks", stack_outputs=no_cloudformation)

    assert (pair.main.url, pair.dlq.url, pair.found_by) == (main, dlq, "stack queue name")


def test_the_stack_pair_falls_back_to_the_stack_outputs_when_the_name_differs(sqs):
    main, dlq = make_pair(sqs, "renamed")

    pair = resolve_pair(sqs, AWS, default_name="taskmanager-dev-tasks",
                        stack_outputs=lambda: {"TaskQueueUrl": main, "DeadLetterQueueUrl": dlq})

    assert (pair.main.url, pair.dlq.url, pair.found_by) == (main, dlq, "stack outputs")


def test_an_unknown_queue_is_not_found(sqs):
    with pytest.raises(NotFound):
        resolve_pair(sqs, AWS, "no-such-queue")


# ------------------------------------------------------------------ peek


def ministack_answer(url: str, messages: list[dict]) -> dict:
    return {"messages": {"000000000000": {"us-east-1": {url: messages}}}}


MINISTACK_MESSAGES = [
    {"MessageId": "m-2", "Body": '{"taskID": "from-body"}', "MD5OfBody": "x", "SentTimestamp": 1700000100,
     "IsVisible": False, "ReceiveCount": 2, "MessageAttributes": {},
     "Attributes": {"SenderId": "000000000000", "SentTimestamp": "1700000100500"}},
    {"MessageId": "m-1", "Body": "not json", "MD5OfBody": "y", "SentTimestamp": 1700000000, "IsVisible": True,
     "ReceiveCount": 0, "MessageAttributes": {"taskID": {"DataType": "String", "StringValue": "from-attr"},
                                              "blob": {"DataType": "Binary", "BinaryValue": "AAE="}},
     "Attributes": {"SentTimestamp": "1700000000250"}},
]


def test_peek_on_ministack_reads_the_inspection_endpoint_and_receives_nothing():
    url = "http://127.0.0.1:4566/000000000000/q"
    asked = []

    def http_get(u):
        asked.append(u)
        return ministack_answer(url, MINISTACK_MESSAGES)

    result = peek(object(), MINISTACK, url, limit=10, http_get=http_get)  # no SQS client needed at all

    assert asked[0].startswith("http://127.0.0.1:4566/_ministack/sqs/messages?QueueUrl=http%3A%2F%2F")
    assert not result.consumed_receives and result.total == 2
    first, second = result.messages  # oldest first
    assert (first.message_id, first.task_id, first.receive_count, first.visible) == ("m-1", "from-attr", 0, True)
    assert first.sent_timestamp == pytest.approx(1700000000.25)
    assert first.message_attributes["blob"] == {"DataType": "Binary", "BinaryValue": "AAE="}
    assert (second.task_id, second.receive_count, second.visible) == ("from-body", 2, False)


def test_peek_on_localstack_understands_its_query_protocol_json():
    url = "http://localhost:4566/000000000000/q"
    answer = {"ReceiveMessageResponse": {"ReceiveMessageResult": {"Message": {
        "MessageId": "l-1", "Body": '{"taskID": "t-9"}', "MD5OfBody": "z",
        "Attribute": [{"Name": "ApproximateReceiveCount", "Value": "4"}, {"Name": "SentTimestamp", "Value": "1000"}],
        "MessageAttribute": [{"Name": "kind", "Value": {"DataType": "String", "StringValue": "poison"}}]}}}}
    asked = []

    result = peek(object(), LOCALSTACK, url, http_get=lambda u: asked.append(u) or answer)

    assert "/_aws/sqs/messages?" in asked[0] and "ShowInvisible=true" in asked[0]
    (m,) = result.messages
    assert (m.message_id, m.task_id, m.receive_count, m.sent_timestamp) == ("l-1", "t-9", 4, 1.0)
    assert m.message_attributes == {"kind": {"DataType": "String", "StringValue": "poison"}}


def test_peek_on_aws_refuses_to_receive_unless_allowed(sqs):
    main, _ = make_pair(sqs, "orders")
    sqs.send_message(QueueUrl=main, MessageBody='{"taskID": "a"}')

    with pytest.raises(PeekUnavailable):
        peek(sqs, AWS, main)
    result = peek(sqs, AWS, main, allow_receive=True)

    assert result.consumed_receives and [m.task_id for m in result.messages] == ["a"]
    assert result.messages[0].receive_count == 1  # what peeking on AWS costs, and why it needs the flag


def test_find_task_messages_returns_only_that_tasks_messages():
    url = "http://127.0.0.1:4566/000000000000/q"

    found = find_task_messages(object(), MINISTACK, url, "from-body",
                               http_get=lambda u: ministack_answer(url, MINISTACK_MESSAGES))

    assert [m.message_id for m in found] == ["m-2"]


def test_find_task_messages_on_aws_says_it_cannot_look_without_receiving(sqs):
    main, _ = make_pair(sqs, "orders")
    with pytest.raises(PeekUnavailable):
        find_task_messages(sqs, AWS, main, "t-1")


# ------------------------------------------------------------------ stats


def test_stats_show_both_queues_the_policy_and_the_oldest_age_from_the_endpoint(sqs):
    main, dlq = make_pair(sqs, "orders", max_receives=4)
    sqs.send_message(QueueUrl=dlq, MessageBody="x")
    pair = resolve_pair(sqs, AWS, "orders")
    pair = QueuePair(pair.main, pair.dlq, pair.found_by)
    http_get = lambda u: ministack_answer(dlq, MINISTACK_MESSAGES) if "dlq" in u else {"messages": {}}  # noqa: E731

    main_stats, dlq_stats = queue_stats(MINISTACK, pair, http_get=http_get, now=lambda: 1700000060.25)

    assert (main_stats.role, main_stats.max_receive_count, main_stats.redrive_target.endswith(":orders-dlq")) == (
        "main", 4, True)
    assert main_stats.oldest_age_seconds is None and main_stats.oldest_age_note == "empty"
    assert dlq_stats.visible == 1 and dlq_stats.oldest_age_seconds == pytest.approx(60.0)


def test_stats_on_aws_omit_the_oldest_age_and_say_why(sqs):
    make_pair(sqs, "orders")
    main_stats, _ = queue_stats(AWS, resolve_pair(sqs, AWS, "orders"))
    assert main_stats.oldest_age_seconds is None and "CloudWatch" in main_stats.oldest_age_note


# ------------------------------------------------------------------ CLI


def test_cli_queue_stats_prints_json_for_any_pair(sqs):
    make_pair(sqs, "orders")
    result = CliRunner().invoke(app, ["queue", "stats", "--queue", "orders", "-o", "json"], env=CLI_ENV)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["main"]["name"], data["dlq"]["name"], data["foundBy"]) == ("orders", "orders-dlq", "RedrivePolicy")
    assert result.stderr == ""


def test_cli_main_queue_peek_on_aws_needs_allow_receive(sqs):
    make_pair(sqs, "orders")
    result = CliRunner().invoke(app, ["queue", "peek", "--queue", "orders"], env=CLI_ENV)
    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == "" and "--allow-receive" in result.stderr


def test_cli_dlq_peek_on_aws_says_what_it_costs(sqs):
    _, dlq = make_pair(sqs, "orders")
    sqs.send_message(QueueUrl=dlq, MessageBody='{"taskID": "t-1"}')
    result = CliRunner().invoke(app, ["dlq", "peek", "--queue", "orders", "-o", "json"], env=CLI_ENV)
    assert result.exit_code == 0, result.stderr
    assert "raises each message's receive count" in result.stderr
    data = json.loads(result.stdout)
    assert data["raisedReceiveCounts"] is True and data["messages"][0]["task_id"] == "t-1"


def test_cli_purge_refuses_without_a_terminal_or_yes(sqs):
    _, dlq = make_pair(sqs, "orders")
    sqs.send_message(QueueUrl=dlq, MessageBody="x")

    result = CliRunner().invoke(app, ["dlq", "purge", "--queue", "orders"], env=CLI_ENV)

    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == "" and "--yes" in result.stderr
    left = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert left["ApproximateNumberOfMessages"] == "1"


def test_cli_purge_with_yes_empties_the_dlq_and_says_how_many_were_there(sqs):
    _, dlq = make_pair(sqs, "orders")
    for i in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=str(i))

    result = CliRunner().invoke(app, ["dlq", "purge", "--queue", "orders", "--yes", "-o", "json"], env=CLI_ENV)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["messagesBefore"] == 3
    assert "3 message(s) were there" in result.stderr
    left = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert left["ApproximateNumberOfMessages"] == "0"


def test_stats_skip_the_age_scan_of_a_big_queue_and_say_so(sqs):
    _, dlq = make_pair(sqs, "orders")
    sqs.send_message_batch(QueueUrl=dlq, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(3)])

    def never(_url):
        raise AssertionError("the inspection endpoint was read for a queue over the limit")

    _, dlq_stats = queue_stats(MINISTACK, resolve_pair(sqs, AWS, "orders"), http_get=never, age_scan_limit=2)

    assert dlq_stats.oldest_age_seconds is None and "not scanned: 3 messages" in dlq_stats.oldest_age_note
