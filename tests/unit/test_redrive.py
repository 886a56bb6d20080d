"""Redrive (tmctl.core.redrive and `tmctl dlq redrive`): the server-side move
task with botocore's Stubber, the client-side send-then-delete with moto SQS."""

from __future__ import annotations

import io
import json

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from typer.testing import CliRunner

from tests.unit.conftest import stubbed
from tests.unit.test_queues import CLI_ENV, make_pair
from tmctl.cli.app import app
from tmctl.core.errors import ExitCode, UsageError
from tmctl.core.queues import QueueRef, load_queue
from tmctl.core.redrive import (
    LINEAGE_COUNT,
    LINEAGE_ORIGINAL_ID,
    MoveTasksUnsupported,
    RateLimiter,
    RedriveOptions,
    RedriveReport,
    redrive_client_side,
    redrive_server_side,
    with_lineage,
)

pytestmark = pytest.mark.unit
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:orders-dlq"
MAIN_ARN = "arn:aws:sqs:us-east-1:123456789012:orders"


@pytest.fixture
def sqs(monkeypatch, aws_clients):
    # moto sleeps out a long poll on an empty queue: 1 s per worker thread at the end of each AWS-mode run
    monkeypatch.setattr("tmctl.core.redrive.AWS_WAIT_SECONDS", 0)
    with mock_aws():
        yield aws_clients["sqs"]  # the session's client: building one per test cost more than most tests


def everything(sqs, url: str) -> list[dict]:
    """Every message of a queue, received and left hidden (the test is over after this)."""
    out: dict[str, dict] = {}
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                  AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return list(out.values())
        out.update({m["MessageId"]: m for m in got})


def depth(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def fill(sqs, url: str, n: int, **extra) -> None:
    for start in range(0, n, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"taskID": f"t-{i}", "priority": "HIGH" if i % 2 else "LOW"}),
             **extra} for i in range(start, min(n, start + 10))])


# ------------------------------------------------------------------ server-side

DLQ = QueueRef("https://q/orders-dlq", {"QueueArn": DLQ_ARN})
MAIN = QueueRef("https://q/orders", {"QueueArn": MAIN_ARN})
LIST = {"SourceArn": DLQ_ARN, "MaxResults": 10}
T0 = 1_764_150_000_000  # a task's StartedTimestamp (epoch ms): 2025-11-26T09:40:00Z


def listed(stub, *tasks: dict) -> None:
    stub.add_response("list_message_move_tasks", {"Results": list(tasks)}, LIST)


def follow(client, destination=MAIN, **kwargs):
    notices = []
    report = redrive_server_side(client, DLQ, destination, on_notice=notices.append, sleep=lambda s: None,
                                 now=lambda: T0 / 1000 + 300, **kwargs)
    return report, notices


def test_server_side_starts_a_move_task_and_follows_it_to_completion():
    with stubbed("sqs") as (client, stub):
        listed(stub)  # none running: start one
        stub.add_response("start_message_move_task", {"TaskHandle": "h-1"},
                          {"SourceArn": DLQ_ARN, "DestinationArn": MAIN_ARN, "MaxNumberOfMessagesPerSecond": 50})
        for status, moved in (("RUNNING", 10), ("RUNNING", 60), ("COMPLETED", 100)):
            listed(stub, {"TaskHandle": "h-1", "Status": status, "SourceArn": DLQ_ARN, "StartedTimestamp": T0,
                          "ApproximateNumberOfMessagesMoved": moved, "ApproximateNumberOfMessagesToMove": 100})
        seen = []
        report, notices = follow(client, rate=50, on_progress=lambda r: seen.append(r.moved))

    assert seen == [10, 60, 100] and notices == []
    assert (report.mode, report.moved, report.to_move, report.ok, report.cancelled, report.followed) == (
        "server-side", 100, 100, True, False, False)
    assert report.destination == MAIN.url and report.task_started == "2025-11-26T09:40:00Z"


def test_server_side_follows_the_task_a_killed_run_left_running_instead_of_starting_another():
    running = {"TaskHandle": "h-old", "Status": "RUNNING", "SourceArn": DLQ_ARN, "DestinationArn": MAIN_ARN,
               "StartedTimestamp": T0, "ApproximateNumberOfMessagesMoved": 400,
               "ApproximateNumberOfMessagesToMove": 1000}
    with stubbed("sqs") as (client, stub):
        listed(stub, running)
        # no start_message_move_task queued: SQS would refuse it ("There is already a task running")
        listed(stub, {**running, "ApproximateNumberOfMessagesMoved": 700})
        done = {k: v for k, v in running.items() if k != "TaskHandle"}  # AWS lists handles of RUNNING tasks only
        listed(stub, {**done, "Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 1000})
        report, notices = follow(client)

    assert notices == ["following the move task already running since 2025-11-26T09:40:00Z, 5 min ago: "
                       "400 moved so far, to orders"]
    assert (report.followed, report.task_handle, report.moved, report.ok, report.destination) == (
        True, "h-old", 1000, True, MAIN.url)
    # the 400 moved before this run looked are in the task's total, not in this run's rate
    report.seconds = 10.0
    assert (report.moved_before, report.rate, report.to_dict()["rate"]) == (400, 60.0, 60.0)


OTHER_ARN = "arn:aws:sqs:us-east-1:123456789012:elsewhere"


@pytest.mark.parametrize("goes_to", [{"DestinationArn": OTHER_ARN}, {}])  # another queue; back to the sources
def test_server_side_refuses_to_follow_a_running_task_that_goes_elsewhere_than_the_destination_given(goes_to):
    # GIVEN a task of this DLQ already running, to somewhere other than the queue the user named
    running = {"TaskHandle": "h-old", "Status": "RUNNING", "SourceArn": DLQ_ARN, "StartedTimestamp": T0,
               "ApproximateNumberOfMessagesMoved": 40, **goes_to}
    with stubbed("sqs") as (client, stub):
        listed(stub, running)  # nothing else queued: neither a start nor a poll of the other task
        # WHEN the user asks for --to orders
        with pytest.raises(UsageError) as caught:
            follow(client, destination_given=True)

    # THEN it names the task in the way (source, destination, start) and how to clear it
    where = "to elsewhere" if goes_to else "back to the queues the messages came from"
    assert caught.value.message == (f"a move task from orders-dlq {where}, running since 2025-11-26T09:40:00Z, "
                                    "5 min ago, is in the way of moving to orders (SQS runs one per DLQ at a time)")
    assert caught.value.fix == "wait for it, or cancel it: aws sqs cancel-message-move-task --task-handle h-old"


def test_server_side_a_start_lost_to_a_task_going_elsewhere_than_the_destination_given_is_refused():
    with stubbed("sqs") as (client, stub):
        listed(stub)
        stub.add_client_error("start_message_move_task", "InvalidParameterValue", "There is already a task running")
        listed(stub, {"TaskHandle": "h-other", "Status": "RUNNING", "DestinationArn": OTHER_ARN,
                      "StartedTimestamp": T0})
        with pytest.raises(UsageError, match="to elsewhere") as caught:
            follow(client, destination_given=True)

    assert caught.value.fix.endswith("--task-handle h-other")


def test_server_side_follows_a_running_task_to_the_destination_given():
    running = {"TaskHandle": "h-old", "Status": "RUNNING", "DestinationArn": MAIN_ARN, "StartedTimestamp": T0}
    with stubbed("sqs") as (client, stub):
        listed(stub, running)
        listed(stub, {**running, "Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 3})
        report, _ = follow(client, destination_given=True)

    assert (report.followed, report.moved, report.ok) == (True, 3, True)


def test_server_side_ctrl_c_stops_following_a_task_it_did_not_start_and_leaves_it_running():
    running = {"TaskHandle": "h-old", "Status": "RUNNING", "DestinationArn": MAIN_ARN, "StartedTimestamp": T0,
               "ApproximateNumberOfMessagesMoved": 400}
    with stubbed("sqs") as (client, stub):
        listed(stub, running)
        listed(stub, {**running, "ApproximateNumberOfMessagesMoved": 450})
        # no cancel_message_move_task queued: the Stubber fails the test if it is called

        def interrupted(_seconds):
            raise KeyboardInterrupt

        report = redrive_server_side(client, DLQ, MAIN, sleep=interrupted)

    assert (report.detached, report.cancelled, report.followed, report.moved, report.moved_before) == (
        True, False, True, 450, 400)


def test_server_side_says_where_a_followed_task_goes_when_it_is_not_where_asked():
    running = {"TaskHandle": "h-old", "Status": "RUNNING", "StartedTimestamp": T0,
               "ApproximateNumberOfMessagesMoved": 5}
    with stubbed("sqs") as (client, stub):
        listed(stub, running)  # started without a destination: back to the source queues
        listed(stub, {**running, "Status": "COMPLETED", "ApproximateNumberOfMessagesToMove": 5})
        report, notices = follow(client)

    assert "back to the queues the messages came from, not to orders" in notices[0]
    assert report.destination == "original source queues" and report.ok


def test_server_side_a_failed_previous_task_does_not_block_a_new_one():
    failed = {"Status": "FAILED", "SourceArn": DLQ_ARN, "StartedTimestamp": T0 - 60_000,
              "FailureReason": "AWS.SimpleQueueService.NonExistentQueue", "ApproximateNumberOfMessagesMoved": 3}
    with stubbed("sqs") as (client, stub):
        listed(stub, failed)
        stub.add_response("start_message_move_task", {"TaskHandle": "h-new"},
                          {"SourceArn": DLQ_ARN, "DestinationArn": MAIN_ARN})
        listed(stub, failed)  # ours not listed yet: the old failure must not be taken for ours
        listed(stub, {"Status": "COMPLETED", "StartedTimestamp": T0, "ApproximateNumberOfMessagesMoved": 8,
                      "ApproximateNumberOfMessagesToMove": 8}, failed)  # ended before we saw its handle
        report, notices = follow(client)

    assert notices == ["the previous move task (started 2025-11-26T09:39:00Z, 6 min ago) failed: "
                       "AWS.SimpleQueueService.NonExistentQueue; starting a new one"]
    assert (report.followed, report.task_handle, report.moved, report.ok, report.errors) == (
        False, "h-new", 8, True, [])


def test_server_side_waits_out_a_cancelling_task_then_starts_one():
    with stubbed("sqs") as (client, stub):
        listed(stub, {"TaskHandle": "h-old", "Status": "CANCELLING", "StartedTimestamp": T0})
        listed(stub, {"Status": "CANCELLED", "StartedTimestamp": T0})
        stub.add_response("start_message_move_task", {"TaskHandle": "h-new"},
                          {"SourceArn": DLQ_ARN, "DestinationArn": MAIN_ARN})
        listed(stub, {"TaskHandle": "h-new", "Status": "COMPLETED", "StartedTimestamp": T0 + 1,
                      "ApproximateNumberOfMessagesMoved": 2, "ApproximateNumberOfMessagesToMove": 2})
        report, notices = follow(client)

    assert "still stopping" in notices[0] and (report.task_handle, report.moved, report.ok) == ("h-new", 2, True)


def test_server_side_a_start_refused_because_another_client_just_started_one_follows_that_one():
    with stubbed("sqs") as (client, stub):
        listed(stub)
        stub.add_client_error("start_message_move_task", "InvalidParameterValue", "There is already a task running")
        running = {"TaskHandle": "h-other", "Status": "RUNNING", "DestinationArn": MAIN_ARN, "StartedTimestamp": T0}
        listed(stub, running)
        listed(stub, {**running, "Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 4})
        report, notices = follow(client)

    assert notices[0].startswith("following the move task already running since")
    assert (report.followed, report.task_handle, report.moved) == (True, "h-other", 4)


def test_server_side_a_refused_start_with_nothing_running_is_the_error():
    with stubbed("sqs") as (client, stub):
        listed(stub)
        stub.add_client_error("start_message_move_task", "AccessDenied", "no")
        listed(stub)
        with pytest.raises(ClientError):
            follow(client)


def test_server_side_without_move_tasks_says_so():
    with stubbed("sqs") as (client, stub):
        stub.add_client_error("list_message_move_tasks", "InvalidAction", "not here", http_status_code=400)
        with pytest.raises(MoveTasksUnsupported):
            follow(client)


def test_server_side_ctrl_c_cancels_the_task_and_reports_what_moved():
    with stubbed("sqs") as (client, stub):
        listed(stub)
        stub.add_response("start_message_move_task", {"TaskHandle": "h-2"}, {"SourceArn": DLQ_ARN})
        listed(stub, {"TaskHandle": "h-2", "Status": "RUNNING", "ApproximateNumberOfMessagesMoved": 7})
        stub.add_response("cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 12}, {"TaskHandle": "h-2"})

        def interrupted(_seconds):
            raise KeyboardInterrupt

        report = redrive_server_side(client, DLQ, None, sleep=interrupted)

    assert (report.cancelled, report.moved, report.destination) == (True, 12, "original source queues")
    assert not report.detached and report.moved_before == 0


def test_server_side_reports_a_failed_task():
    with stubbed("sqs") as (client, stub):
        listed(stub)
        stub.add_response("start_message_move_task", {"TaskHandle": "h-3"}, {"SourceArn": DLQ_ARN})
        listed(stub, {"TaskHandle": "h-3", "Status": "FAILED", "FailureReason": "AccessDenied",
                      "ApproximateNumberOfMessagesMoved": 3, "ApproximateNumberOfMessagesToMove": 10})
        report = redrive_server_side(client, DLQ, None, sleep=lambda s: None)

    assert not report.ok and report.failed == 7 and "AccessDenied" in report.errors[0]


# ------------------------------------------------------------------ client-side


def test_client_side_keeps_bodies_and_attributes_byte_exact(sqs):
    main, dlq = make_pair(sqs, "orders")
    attrs = {"s": {"DataType": "String", "StringValue": "héllo ✓"},
             "n": {"DataType": "Number", "StringValue": "-12.5e3"},
             "b": {"DataType": "Binary", "BinaryValue": bytes(range(256))},
             "c": {"DataType": "Binary.gif", "BinaryValue": b"\x00\xff"},
             "k": {"DataType": "String.custom", "StringValue": " spaced "}}
    bodies = ["plain ünïcode ☃", json.dumps({"taskID": "t-1"}), "  leading and trailing  "]
    for body in bodies:
        sqs.send_message(QueueUrl=dlq, MessageBody=body, MessageAttributes=attrs)
    before = {m["Body"]: m for m in everything(sqs, dlq)}
    sqs.change_message_visibility_batch(QueueUrl=dlq, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
        for i, m in enumerate(before.values())])

    report = redrive_client_side(sqs, load_queue(sqs, dlq), load_queue(sqs, main), RedriveOptions(lineage=False))

    after = {m["Body"]: m for m in everything(sqs, main)}
    assert sorted(after) == sorted(bodies) and depth(sqs, dlq) == 0
    for body, m in after.items():
        assert m["MessageAttributes"] == before[body]["MessageAttributes"]
        assert m["MD5OfBody"] == before[body]["MD5OfBody"]
        assert m["MD5OfMessageAttributes"] == before[body]["MD5OfMessageAttributes"]
    assert (report.scanned, report.matched, report.moved, report.skipped, report.failed) == (3, 3, 3, 0, 0)


def test_lineage_is_added_kept_and_counted_within_the_ten_attribute_limit():
    plain = with_lineage("m-1", {})
    assert plain[LINEAGE_ORIGINAL_ID]["StringValue"] == "m-1" and plain[LINEAGE_COUNT]["StringValue"] == "1"

    again = with_lineage("m-2", plain)  # redriven a second time: first id kept, count incremented
    assert again[LINEAGE_ORIGINAL_ID]["StringValue"] == "m-1" and again[LINEAGE_COUNT]["StringValue"] == "2"

    nine = {f"a{i}": {"DataType": "String", "StringValue": "x"} for i in range(9)}
    assert set(with_lineage("m-1", nine)) == set(nine) | {LINEAGE_ORIGINAL_ID}  # room for one only
    ten = {f"a{i}": {"DataType": "String", "StringValue": "x"} for i in range(10)}
    assert with_lineage("m-1", ten) == ten  # no room: nothing added, nothing dropped


def test_client_side_adds_lineage_to_the_redriven_message(sqs):
    main, dlq = make_pair(sqs, "orders")
    sqs.send_message(QueueUrl=dlq, MessageBody="x")
    original_id = everything(sqs, dlq)[0]["MessageId"]
    sqs.purge_queue(QueueUrl=dlq)
    sqs.send_message(QueueUrl=dlq, MessageBody="x", MessageAttributes={
        LINEAGE_ORIGINAL_ID: {"DataType": "String", "StringValue": original_id},
        LINEAGE_COUNT: {"DataType": "Number", "StringValue": "1"}})

    redrive_client_side(sqs, load_queue(sqs, dlq), load_queue(sqs, main), RedriveOptions())

    (m,) = everything(sqs, main)
    assert m["MessageAttributes"][LINEAGE_ORIGINAL_ID]["StringValue"] == original_id
    assert m["MessageAttributes"][LINEAGE_COUNT]["StringValue"] == "2"


class RejectingDestination:
    """An SQS client whose SendMessageBatch refuses every entry of a body that
    contains 'reject', as a real queue refuses an oversized or invalid entry."""

    def __init__(self, sqs):
        self._sqs = sqs

    def __getattr__(self, name):
        return getattr(self._sqs, name)

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803 - boto3's names
        good = [e for e in Entries if "reject" not in e["MessageBody"]]
        resp = self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=good) if good else {"Successful": []}
        resp["Failed"] = [{"Id": e["Id"], "Code": "InvalidMessageContents", "SenderFault": True, "Message": "no"}
                          for e in Entries if "reject" in e["MessageBody"]]
        return resp


def test_client_side_deletes_only_what_the_destination_accepted(sqs):
    main, dlq = make_pair(sqs, "orders")
    sqs.send_message_batch(QueueUrl=dlq, Entries=[
        {"Id": str(i), "MessageBody": f"reject {i}" if i % 3 == 0 else f"ok {i}"} for i in range(10)])

    report = redrive_client_side(RejectingDestination(sqs), load_queue(sqs, dlq), load_queue(sqs, main),
                                 RedriveOptions(workers=2))

    assert sorted(m["Body"] for m in everything(sqs, main)) == sorted(f"ok {i}" for i in range(10) if i % 3)
    assert sorted(m["Body"] for m in everything(sqs, dlq)) == [f"reject {i}" for i in (0, 3, 6, 9)]
    assert (report.scanned, report.moved, report.failed, report.ok) == (10, 6, 4, False)
    assert "InvalidMessageContents" in report.errors[0]


def test_filter_and_max_move_exactly_that_and_leave_the_rest_visible(sqs):
    main, dlq = make_pair(sqs, "orders")
    fill(sqs, dlq, 40)  # odd i: HIGH

    report = redrive_client_side(sqs, load_queue(sqs, dlq), load_queue(sqs, main), RedriveOptions(
        filter_expr="body.priority == 'HIGH'", max_messages=5, workers=1))

    moved = everything(sqs, main)
    assert len(moved) == 5 and all(json.loads(m["Body"])["priority"] == "HIGH" for m in moved)
    assert depth(sqs, dlq) == 35  # released with visibility 0, at once: not waiting out a timeout
    assert report.moved == 5 and report.matched >= 5 and report.scanned == report.moved + report.skipped


def test_task_ids_select_messages_by_their_task(sqs):
    main, dlq = make_pair(sqs, "orders")
    fill(sqs, dlq, 20)

    report = redrive_client_side(sqs, load_queue(sqs, dlq), load_queue(sqs, main), RedriveOptions(
        task_ids=frozenset({"t-3", "t-17"})))

    assert sorted(json.loads(m["Body"])["taskID"] for m in everything(sqs, main)) == ["t-17", "t-3"]
    assert (report.scanned, report.matched, report.moved, report.skipped) == (20, 2, 2, 18)
    assert depth(sqs, dlq) == 18


def test_dry_run_counts_and_samples_and_moves_nothing(sqs):
    main, dlq = make_pair(sqs, "orders")
    fill(sqs, dlq, 12)

    report = redrive_client_side(sqs, load_queue(sqs, dlq), load_queue(sqs, main), RedriveOptions(
        dry_run=True, filter_expr="body.priority == 'LOW'"))

    assert (report.mode, report.scanned, report.matched, report.moved, report.skipped) == ("dry-run", 12, 6, 0, 12)
    assert len(report.sample) == 5 and all("LOW" in s["body"] for s in report.sample)
    assert depth(sqs, main) == 0 and depth(sqs, dlq) == 12


def test_export_writes_what_moves(sqs):
    main, dlq = make_pair(sqs, "orders")
    fill(sqs, dlq, 3)
    sink = io.StringIO()

    redrive_client_side(sqs, load_queue(sqs, dlq), load_queue(sqs, main), RedriveOptions(export=sink))

    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert sorted(x["taskID"] for x in lines) == ["t-0", "t-1", "t-2"] and lines[0]["destination"] == main


def test_fifo_keeps_group_and_deduplication_ids(sqs):
    main, dlq = make_pair(sqs, "orders", fifo=True)
    for i in range(4):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"m{i}", MessageGroupId=f"g{i % 2}",
                         MessageDeduplicationId=f"d{i}")

    report = redrive_client_side(sqs, load_queue(sqs, dlq), load_queue(sqs, main), RedriveOptions(workers=1))

    got = {}
    for _ in range(8):  # FIFO hands out one group at a time
        for m in sqs.receive_message(QueueUrl=main, MaxNumberOfMessages=10, AttributeNames=["All"],
                                     VisibilityTimeout=0).get("Messages", []):
            got[m["Body"]] = (m["Attributes"]["MessageGroupId"], m["Attributes"]["MessageDeduplicationId"])
    assert got == {f"m{i}": (f"g{i % 2}", f"d{i}") for i in range(4)} and report.moved == 4


def test_a_destination_of_another_queue_type_is_refused(sqs):
    _, dlq = make_pair(sqs, "orders")
    fifo_main, _ = make_pair(sqs, "fifo", fifo=True)
    with pytest.raises(UsageError):
        redrive_client_side(sqs, load_queue(sqs, dlq), load_queue(sqs, fifo_main), RedriveOptions())


def test_rate_limiter_paces_messages():
    clock = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        clock[0] += s

    limiter = RateLimiter(10, clock=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire(10)  # 50 messages at 10/s: about 4 s of waiting after the first batch

    assert sum(slept) == pytest.approx(4.0)


# ------------------------------------------------------------------ CLI


def test_cli_redrive_refuses_without_a_terminal_or_yes(sqs):
    _, dlq = make_pair(sqs, "orders")
    fill(sqs, dlq, 3)

    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders-dlq", "--client-side"], env=CLI_ENV)

    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == "" and "--yes" in result.stderr and result.stderr.count("\n") == 1
    assert depth(sqs, dlq) == 3


def test_cli_redrive_with_yes_moves_and_prints_the_accounting(sqs):
    main, dlq = make_pair(sqs, "orders")
    fill(sqs, dlq, 3)

    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders-dlq", "--client-side", "--yes",
                                      "-o", "json"], env=CLI_ENV)

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["moved"], data["failed"], data["ok"]) == (3, 0, True)
    assert depth(sqs, main) == 3 and depth(sqs, dlq) == 0


def test_cli_export_moves_client_side_even_where_a_move_task_exists(sqs, tmp_path):
    main, dlq = make_pair(sqs, "orders")
    fill(sqs, dlq, 3)
    sink = tmp_path / "moved.jsonl"

    # CLI_ENV targets AWS, which has move tasks: only client-side can write what moves
    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders-dlq", "--export", str(sink), "--yes",
                                      "-o", "json"], env=CLI_ENV)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["mode"] == "client-side"
    assert sorted(json.loads(line)["taskID"] for line in sink.read_text().splitlines()) == ["t-0", "t-1", "t-2"]


def test_cli_dry_run_needs_no_confirmation_and_moves_nothing(sqs):
    main, dlq = make_pair(sqs, "orders")
    fill(sqs, dlq, 4)

    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders", "--dry-run", "-o", "json"], env=CLI_ENV)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["matched"] == 4 and depth(sqs, main) == 0 and depth(sqs, dlq) == 4
    assert "receive count" in result.stderr  # on AWS a dry run has a cost, and says so


def test_cli_redrive_exits_1_when_messages_failed(sqs, monkeypatch):
    main, dlq = make_pair(sqs, "orders")
    sqs.send_message(QueueUrl=dlq, MessageBody="reject me")
    import tmctl.core.redrive as redrive_mod

    real = redrive_mod.redrive_client_side
    monkeypatch.setattr(redrive_mod, "redrive_client_side",
                        lambda client, *a, **k: real(RejectingDestination(client), *a, **k))

    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders-dlq", "--client-side", "--yes",
                                      "-o", "json"], env=CLI_ENV)

    assert result.exit_code == ExitCode.ERROR
    assert json.loads(result.stdout)["failed"] == 1  # the accounting still goes to stdout
    assert result.stderr.startswith("tmctl: error: redrive finished with 1 failed")
    assert depth(sqs, dlq) == 1 and depth(sqs, main) == 0


def _fake_server_side(calls: list, **report_fields):
    def fake(sqs, source, destination, **kwargs):
        calls.append((destination.name if destination else None, kwargs["destination_given"]))
        return RedriveReport("server-side", source.url, destination.url if destination else None, **report_fields)
    return fake


@pytest.mark.parametrize(("args", "expected"), [([], ("orders", False)), (["--to", "other"], ("other", True))])
def test_cli_tells_the_core_whether_the_destination_was_given(sqs, monkeypatch, args, expected):
    make_pair(sqs, "orders")
    sqs.create_queue(QueueName="other")
    import tmctl.core.redrive as redrive_mod

    calls: list = []
    monkeypatch.setattr(redrive_mod, "redrive_server_side", _fake_server_side(calls))

    # CLI_ENV targets AWS, which has move tasks
    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders-dlq", "--yes", *args], env=CLI_ENV)

    assert result.exit_code == 0, result.stderr
    assert calls == [expected]


def test_cli_ctrl_c_on_a_followed_task_exits_130_and_says_it_still_runs(sqs, monkeypatch):
    make_pair(sqs, "orders")
    import tmctl.core.redrive as redrive_mod

    monkeypatch.setattr(redrive_mod, "redrive_server_side", _fake_server_side(
        [], followed=True, detached=True, moved=450, moved_before=400, task_handle="h-old"))

    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders-dlq", "--yes", "-o", "json"],
                                env=CLI_ENV)

    assert result.exit_code == ExitCode.INTERRUPTED
    assert json.loads(result.stdout)["detached"] is True
    assert "it still runs" in result.stderr and "cancel-message-move-task --task-handle h-old" in result.stderr


# ------------------------------------------------------------------ the plan (issue 15: defects 1 and 2)


def two_sources(sqs) -> str:
    """A DLQ two queues dead-letter into: its destination is ambiguous."""
    main, dlq = make_pair(sqs, "orders")
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(QueueName="refunds", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": 3})})
    return dlq


@pytest.mark.parametrize("extra", [["--dry-run"], ["--dry-run", "--max", "1"], ["--client-side", "--yes"]])
def test_cli_an_ambiguous_destination_is_one_usage_line_naming_to(sqs, extra):
    # GIVEN a DLQ on AWS that two queues dead-letter into (was: "unexpected AttributeError", exit 1)
    dlq = two_sources(sqs)
    fill(sqs, dlq, 2)

    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders-dlq", *extra], env=CLI_ENV)

    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert "ambiguous" in result.stderr and "2 queues" in result.stderr and "--to" in result.stderr
    assert depth(sqs, dlq) == 2  # nothing received, nothing moved


def test_cli_an_unknown_destination_is_one_usage_line_naming_to(sqs):
    dlq = sqs.create_queue(QueueName="lonely-dlq")["QueueUrl"]
    fill(sqs, dlq, 1)

    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "lonely-dlq", "--dry-run"], env=CLI_ENV)

    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "unknown" in result.stderr and "--to" in result.stderr and result.stderr.count("\n") == 1


def test_cli_to_resolves_an_ambiguous_destination(sqs):
    dlq = two_sources(sqs)
    fill(sqs, dlq, 2)

    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders-dlq", "--to", "refunds", "--dry-run",
                                      "-o", "json"], env=CLI_ENV)

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["destination"].endswith("/refunds") and data["matched"] == 2


def test_cli_dry_run_export_on_aws_writes_each_message_that_would_move(sqs, tmp_path):
    # GIVEN AWS (no inspection endpoint: the dry run receives) and 4 DLQ messages, 2 of them HIGH
    main, dlq = make_pair(sqs, "orders")
    fill(sqs, dlq, 4)
    sink = tmp_path / "would-move.jsonl"

    result = CliRunner().invoke(app, ["dlq", "redrive", "--queue", "orders-dlq", "--dry-run", "--export", str(sink),
                                      "--filter", "body.priority == 'HIGH'", "-o", "json"], env=CLI_ENV)

    # THEN the file holds exactly the messages that would move (it was empty on AWS), and none moved
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert sorted(line["taskID"] for line in lines) == ["t-1", "t-3"]
    assert all(line["destination"] == main for line in lines)
    assert depth(sqs, main) == 0


def test_plan_chooses_the_move_task_only_when_nothing_selects(sqs, monkeypatch):
    from tmctl.core.backend import Backend
    from tmctl.core.queues import resolve_pair
    from tmctl.core.redrive import plan_redrive

    make_pair(sqs, "orders")
    aws = Backend("aws")
    pair = resolve_pair(sqs, aws, "orders-dlq", default_name="orders", stack_outputs=lambda: {})

    assert plan_redrive(sqs, aws, pair, RedriveOptions()).server_side
    assert not plan_redrive(sqs, aws, pair, RedriveOptions(max_messages=3)).server_side
    assert not plan_redrive(sqs, aws, pair, RedriveOptions(dry_run=True)).server_side
    assert not plan_redrive(sqs, aws, pair, RedriveOptions(), client_side=True).server_side
    assert not plan_redrive(sqs, Backend("ministack", "1", "http://x"), pair, RedriveOptions()).server_side
    # AWS's short poll can miss messages: a client-side run there long-polls
    monkeypatch.setattr("tmctl.core.redrive.AWS_WAIT_SECONDS", 1)
    assert plan_redrive(sqs, aws, pair, RedriveOptions(), client_side=True).opts.wait_seconds == 1
    plan = plan_redrive(sqs, aws, pair, RedriveOptions(max_messages=2))
    assert plan.question() == "Move up to 2 message(s) from orders-dlq (0 there) to orders?"
