"""Executions offline: the step timeline from recorded histories (AWS's and
MiniStack's event shapes), how a ref resolves to executions, retry names and
the retry decision (redrive or a new execution) with exact requests (Stubber),
and the commands' exit codes and output through CliRunner."""

from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace

import pytest
from botocore.stub import ANY, Stubber
from typer.testing import CliRunner

from tests.unit.conftest import EVENTS_DIR, REGION, stubbed
from tmctl.cli.app import app
from tmctl.cli.context import State
from tmctl.core.errors import ExitCode, NotFound, UsageError
from tmctl.core.executions import (
    NAME_LIMIT,
    TERMINAL_FAIL_STATE,
    find_executions,
    history_rows,
    last_state_entered,
    list_executions,
    original_name,
    parse_since,
    retry_name,
    retry_task,
    task_id_of_name,
    timeline,
)
from tmctl.core.stack import StackInfo

pytestmark = pytest.mark.unit

SM_ARN = f"arn:aws:states:{REGION}:123456789012:stateMachine:taskmanager-dev-workflow"
TABLE = "taskmanager-dev-tasks"
CLI_ENV = {"TMCTL_ENDPOINT_URL": "http://127.0.0.1:9", "TMCTL_LOCAL": "", "NO_COLOR": "1", "COLUMNS": "200"}
T0 = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


def recorded(name: str) -> list[dict]:
    """A recorded history, with timestamps as boto3 hands them over (datetimes)."""
    events = json.loads((EVENTS_DIR / f"{name}.json").read_text())["events"]
    for event in events:
        event["timestamp"] = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    return events


def ex_arn(name: str) -> str:
    return SM_ARN.replace(":stateMachine:", ":execution:") + ":" + name


def stack_info() -> StackInfo:
    return StackInfo("taskmanager-dev", "CREATE_COMPLETE", {
        "TasksTableName": TABLE, "StateMachineArn": SM_ARN,
        "TaskApiFunctionName": "taskmanager-dev-task-api",
        "EventProcessorFunctionName": "taskmanager-dev-event-processor",
        "WorkflowStepsFunctionName": "taskmanager-dev-workflow-steps"}, {}, "http://api.invalid")


def item(task_id: str, status: str, started: list[str]) -> dict:
    """A task item in DynamoDB's wire format, with one `started` entry per execution."""
    history = [{"M": {"step": {"S": "created"}, "outcome": {"S": "ok"}, "at": {"S": "2026-11-24T09:29:59.871Z"}}}]
    history += [{"M": {"step": {"S": "started"}, "outcome": {"S": "ok"}, "at": {"S": "2026-11-24T09:30:00.160Z"},
                       "detail": {"S": name}}} for name in started]
    return {"Item": {"taskID": {"S": task_id}, "status": {"S": status}, "history": {"L": history}}}


def described(name: str, status: str, *, start: dt.datetime = T0, task_id: str = "boom-7f3a",
              retry: dict | None = None, redrive: str | None = None) -> dict:
    body = {"taskID": task_id, "task": {"taskID": task_id, "title": "fail me"}}
    if retry:
        body["retry"] = retry
    answer = {"executionArn": ex_arn(name), "stateMachineArn": SM_ARN, "name": name, "status": status,
              "startDate": start, "input": json.dumps(body)}
    if status != "RUNNING":
        answer["stopDate"] = start + dt.timedelta(seconds=4)
    if status == "FAILED":
        answer["error"], answer["cause"] = "InjectedFailure", '{"errorMessage": "failure injected"}'
    if redrive:
        answer["redriveStatus"] = redrive
    return answer


@pytest.fixture
def sfn():
    with stubbed("stepfunctions") as pair:
        yield pair


@pytest.fixture
def ddb():
    with stubbed("dynamodb") as pair:
        yield pair


def expect_described(stub: Stubber, answer: dict) -> None:
    stub.add_response("describe_execution", answer, {"executionArn": answer["executionArn"]})


def expect_no_execution(stub: Stubber, name: str) -> None:
    stub.add_client_error("describe_execution", "ExecutionDoesNotExist", expected_params={"executionArn": ex_arn(name)})


def expect_get_item(stub: Stubber, answer: dict, task_id: str = "boom-7f3a") -> None:
    stub.add_response("get_item", answer, {"TableName": TABLE, "Key": {"taskID": {"S": task_id}},
                                           "ConsistentRead": True})


# ------------------------------------------------------------------ timeline


def test_timeline_of_a_completed_ministack_execution_has_every_business_step():
    steps = timeline(recorded("sfn_history_ministack_completed"))

    assert [s.name for s in steps] == [
        "MarkProcessing", "Validate", "ValidateOutcome", "RecordValidate", "Enrich", "EnrichOutcome",
        "RecordEnrich", "Process", "ProcessOutcome", "MarkCompleted"]
    assert all(s.status == "SUCCEEDED" and s.exited is not None for s in steps)
    by_name = {s.name: s for s in steps}
    assert by_name["Validate"].result == "ok: valid" and by_name["Enrich"].result == "ok: score 40"
    assert by_name["Validate"].resource == "lambda:taskmanager-it-workflow-steps"
    assert by_name["MarkCompleted"].result == "dynamodb:updateItem"
    assert by_name["ValidateOutcome"].result == "→ RecordValidate"
    # offsets count from ExecutionStarted and never go back
    assert steps[0].offset == pytest.approx(0.151)
    assert [s.offset for s in steps] == sorted(s.offset for s in steps)
    assert by_name["Validate"].seconds == pytest.approx(0.097)


def test_timeline_of_a_ministack_failure_shows_each_retry_and_the_catch():
    steps = timeline(recorded("sfn_history_ministack_failed_process"))
    process = next(s for s in steps if s.name == "Process")

    # MiniStack: TaskScheduled then TaskFailed per attempt, no TaskStarted
    assert process.status == "FAILED" and process.retries == 2
    assert [a.status for a in process.attempts] == ["FAILED", "FAILED", "FAILED"]
    assert all(a.started is None and a.seconds is not None for a in process.attempts)
    assert process.error_text == "Runtime.HandlerError: failure injected at step 'process' for boom-sample1"
    assert process.result == "caught → MarkFailed" and process.next == "MarkFailed"
    assert process.seconds == pytest.approx(4.356)
    assert [s.name for s in steps[-2:]] == ["MarkFailed", TERMINAL_FAIL_STATE]
    assert steps[-1].type == "Fail" and steps[-1].status == "FAILED" and "failure injected" in steps[-1].error_text


def test_timeline_reads_aws_lambda_function_events_and_a_timed_out_attempt():
    steps = timeline(recorded("sfn_history_aws_failed_process"))
    by_name = {s.name: s for s in steps}
    process = by_name["Process"]

    assert [a.status for a in process.attempts] == ["FAILED", "TIMED_OUT", "FAILED"]
    assert [a.error for a in process.attempts] == ["InjectedFailure", "States.Timeout", "InjectedFailure"]
    assert process.attempts[0].started is not None  # AWS records LambdaFunctionStarted
    assert process.attempts[1].seconds == pytest.approx(30.009)
    assert process.resource == "lambda:taskmanager-dev-workflow-steps"
    assert process.error_text == "InjectedFailure: failure injected at step 'process' for boom-7f3a"
    # a service integration on AWS names its resourceType and the bare action
    assert by_name["MarkProcessing"].result == "dynamodb:updateItem"
    assert by_name["Validate"].result == "ok: valid" and by_name["Validate"].status == "SUCCEEDED"
    assert steps[-1].name == TERMINAL_FAIL_STATE and steps[-1].status == "FAILED"
    assert last_state_entered(recorded("sfn_history_aws_failed_process")) == TERMINAL_FAIL_STATE


def _event(i: int, kind: str, ms: int, **details) -> dict:
    return {"id": i, "previousEventId": i - 1, "type": kind, "timestamp": T0 + dt.timedelta(milliseconds=ms),
            **details}


def test_a_step_that_succeeds_on_its_second_attempt_is_succeeded_with_both_attempts():
    fn = "arn:aws:lambda:eu-west-1:123456789012:function:taskmanager-dev-workflow-steps"
    events = [
        _event(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
        _event(2, "TaskStateEntered", 10, stateEnteredEventDetails={"name": "Validate", "input": "{}"}),
        _event(3, "LambdaFunctionScheduled", 11, lambdaFunctionScheduledEventDetails={"resource": fn}),
        _event(4, "LambdaFunctionStarted", 20),
        _event(5, "LambdaFunctionFailed", 30, lambdaFunctionFailedEventDetails={
            "error": "Lambda.TooManyRequestsException", "cause": "Rate Exceeded."}),
        _event(6, "LambdaFunctionScheduled", 1030, lambdaFunctionScheduledEventDetails={"resource": fn}),
        _event(7, "LambdaFunctionStarted", 1040),
        _event(8, "LambdaFunctionSucceeded", 1090, lambdaFunctionSucceededEventDetails={
            "output": json.dumps({"step": "validate", "outcome": "ok", "reason": "valid"})}),
        _event(9, "TaskStateExited", 1091, stateExitedEventDetails={"name": "Validate", "output": "{}"}),
    ]
    (step,) = timeline(events)

    assert step.status == "SUCCEEDED" and step.error is None and step.result == "ok: valid"
    assert [(a.number, a.status) for a in step.attempts] == [(1, "FAILED"), (2, "SUCCEEDED")]
    assert step.attempts[0].error == "Lambda.TooManyRequestsException"
    assert step.seconds == pytest.approx(1.081)


def test_an_uncaught_failure_and_a_running_execution_close_their_steps_correctly():
    fn = "arn:aws:lambda:eu-west-1:123456789012:function:f"
    started = [_event(1, "ExecutionStarted", 0),
               _event(2, "TaskStateEntered", 5, stateEnteredEventDetails={"name": "Process"}),
               _event(3, "LambdaFunctionScheduled", 6, lambdaFunctionScheduledEventDetails={"resource": fn}),
               _event(4, "LambdaFunctionStarted", 7)]
    (running,) = timeline(started)
    assert running.status == "RUNNING" and running.exited is None and running.attempts[0].status == "RUNNING"

    failed = [*started,
              _event(5, "LambdaFunctionFailed", 50, lambdaFunctionFailedEventDetails={"error": "Boom", "cause": "x"}),
              _event(6, "ExecutionFailed", 51, executionFailedEventDetails={"error": "Boom", "cause": "x"})]
    (step,) = timeline(list(reversed(failed)))  # order comes from the event ids
    assert step.status == "FAILED" and step.error_text == "Boom: x" and step.seconds == pytest.approx(0.046)


def test_timeline_of_a_retry_shows_the_caught_start_then_mark_retried():
    steps = timeline(recorded("sfn_history_ministack_retry"))
    names = [s.name for s in steps]

    assert names[:3] == ["MarkProcessing", "Resume", "MarkRetried"]
    assert steps[0].status == "FAILED" and steps[0].result == "caught → Resume"
    assert steps[0].error == "DynamoDB.ConditionalCheckFailedException"
    assert steps[1].result == "→ MarkRetried"
    assert {"Validate", "Enrich", "Process", "MarkCompleted"} <= set(names)
    assert all(s.status == "SUCCEEDED" for s in steps[1:])


def test_history_rows_give_each_event_its_gist():
    rows = history_rows(recorded("sfn_history_aws_failed_process"))
    by_type = {}
    for row in rows:
        by_type.setdefault(row.type, row)
    assert [r.id for r in rows] == list(range(1, len(rows) + 1))
    assert by_type["TaskStateEntered"].detail == "MarkProcessing"
    assert by_type["LambdaFunctionFailed"].detail.startswith("InjectedFailure: failure injected")
    assert by_type["ExecutionFailed"].detail.startswith("InjectedFailure")


# ------------------------------------------------------------------ names and times


def test_retry_names_are_labelled_and_stay_within_80_characters():
    assert retry_name("task-173-mwxffdqv", 1) == "task-173-mwxffdqv-retry1"
    at_limit = "t" * (NAME_LIMIT - len("-retry1"))
    assert retry_name(at_limit, 1) == at_limit + "-retry1" and len(retry_name(at_limit, 1)) == NAME_LIMIT
    longer = at_limit + "x"
    assert retry_name(longer, 1) == longer + "-r1"
    # the longest execution name the processor makes: a 64-character taskID plus its stamp
    longest = "a" * 64 + "-mwxffdqv"
    assert retry_name(longest, 9) == longest + "-retry9"  # exactly 80
    for attempt in (10, 12, 100):
        name = retry_name(longest, attempt)
        assert len(name) <= NAME_LIMIT and re.fullmatch(r"[A-Za-z0-9_-]+", name)
        assert name == f"{longest}-r{attempt}"
    assert len(retry_name("b" * 80, 3)) == NAME_LIMIT  # cut only when nothing else fits


def test_original_name_strips_only_the_retry_suffix_it_made():
    from tmctl.core.executions import Execution

    def ex(name, attempt):
        return Execution(arn=ex_arn(name), name=name, status="FAILED", start=T0, retry_attempt=attempt)

    assert original_name(ex("boom-1-mwx", None)) == "boom-1-mwx"
    assert original_name(ex("boom-1-mwx-retry2", 2)) == "boom-1-mwx"
    assert original_name(ex("boom-1-mwx-r7", 7)) == "boom-1-mwx"
    assert original_name(ex("boom-1-mwx-retry2", None)) == "boom-1-mwx-retry2"


@pytest.mark.parametrize(("name", "task_id"), [
    ("task-173-mwxffdqv", "task-173"), ("boom-1-mwxffdqv-retry1", "boom-1"), ("x_y-mwxf-r12", "x_y"),
    ("nostamp", None)])
def test_task_id_of_an_execution_name(name, task_id):
    assert task_id_of_name(name) == task_id


@pytest.mark.parametrize(("text", "expected"), [
    ("10m", T0 - dt.timedelta(minutes=10)),
    ("2h", T0 - dt.timedelta(hours=2)),
    ("90s", T0 - dt.timedelta(seconds=90)),
    ("1d", T0 - dt.timedelta(days=1)),
    ("1.5h", T0 - dt.timedelta(minutes=90)),
    ("2026-11-24T08:00:00Z", dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)),
    ("2026-11-24T08:00:00", dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)),
    ("2026-11-24T10:00:00+02:00", dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)),
    ("2026-11-24", dt.datetime(2026, 11, 24, tzinfo=dt.UTC)),
])
def test_parse_since(text, expected):
    assert parse_since(text, now=T0) == expected


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "-5m", "yesterday"])
def test_parse_since_refuses_what_it_cannot_read(text):
    with pytest.raises(UsageError):
        parse_since(text, now=T0)


# ------------------------------------------------------------------ listing and resolving


def summary(name: str, status: str, minutes_ago: int) -> dict:
    return {"executionArn": ex_arn(name), "stateMachineArn": SM_ARN, "name": name, "status": status,
            "startDate": T0 - dt.timedelta(minutes=minutes_ago)}


def test_list_stops_at_the_limit_and_at_since_across_pages(sfn):
    client, stub = sfn
    stub.add_response("list_executions", {"executions": [summary("a-1", "FAILED", 1), summary("b-2", "SUCCEEDED", 5)],
                                           "nextToken": "p2"}, {"stateMachineArn": SM_ARN, "statusFilter": "FAILED"})
    stub.add_response("list_executions", {"executions": [summary("c-3", "FAILED", 9), summary("d-4", "FAILED", 30)],
                                           "nextToken": "p3"},
                      {"stateMachineArn": SM_ARN, "statusFilter": "FAILED", "nextToken": "p2"})
    found = list_executions(client, SM_ARN, status="failed", since=T0 - dt.timedelta(minutes=10), limit=10)
    assert [e.name for e in found] == ["a-1", "b-2", "c-3"]  # page 3 never read
    assert found[0].task_id == "a"

    stub.add_response("list_executions", {"executions": [summary("a-1", "FAILED", 1), summary("b-2", "FAILED", 2)]},
                      {"stateMachineArn": SM_ARN})
    assert [e.name for e in list_executions(client, SM_ARN, limit=1)] == ["a-1"]

    with pytest.raises(UsageError):
        list_executions(client, SM_ARN, status="DONE")


def test_a_task_id_resolves_through_its_history_newest_first(sfn, ddb):
    (client, stub), (dclient, dstub) = sfn, ddb
    expect_get_item(dstub, item("boom-7f3a", "COMPLETED", ["boom-7f3a-mwx", "boom-7f3a-mwx-retry1"]))
    stub.add_response("describe_execution", described("boom-7f3a-mwx-retry1", "SUCCEEDED",
                                                      start=T0 + dt.timedelta(minutes=3),
                                                      retry={"of": "boom-7f3a-mwx", "attempt": 1}),
                      {"executionArn": ex_arn("boom-7f3a-mwx-retry1")})
    stub.add_response("describe_execution", described("boom-7f3a-mwx", "FAILED"),
                      {"executionArn": ex_arn("boom-7f3a-mwx")})

    found = find_executions(client, dclient, stack_info(), "boom-7f3a")

    assert [e.name for e in found] == ["boom-7f3a-mwx-retry1", "boom-7f3a-mwx"]
    assert found[0].retry_of == "boom-7f3a-mwx" and found[0].retry_attempt == 1
    assert found[1].error == "InjectedFailure" and found[1].task_id == "boom-7f3a"


def test_without_a_task_item_a_ref_is_an_execution_name_or_a_name_prefix(sfn, ddb):
    (client, stub), (dclient, dstub) = sfn, ddb
    # an execution name
    expect_get_item(dstub, {}, "happy-1-mwx")
    stub.add_response("describe_execution", described("happy-1-mwx", "SUCCEEDED", task_id="happy-1"),
                      {"executionArn": ex_arn("happy-1-mwx")})
    assert [e.name for e in find_executions(client, dclient, stack_info(), "happy-1-mwx")] == ["happy-1-mwx"]

    # a taskID whose item is gone: executions named <taskID>-<stamp>[-retry<n>] only
    expect_get_item(dstub, {}, "abc")
    expect_no_execution(stub, "abc")
    stub.add_response("list_executions", {"executions": [
        summary("abc-def-mwx", "SUCCEEDED", 1), summary("abc-mwy-retry1", "SUCCEEDED", 2),
        summary("abc-mwx", "FAILED", 3), summary("abcd-mwx", "FAILED", 4)]}, {"stateMachineArn": SM_ARN})
    stub.add_response("describe_execution", described("abc-mwy-retry1", "SUCCEEDED", task_id="abc"),
                      {"executionArn": ex_arn("abc-mwy-retry1")})
    expect_described(stub, described("abc-mwx", "FAILED", start=T0 - dt.timedelta(hours=1),
                                                      task_id="abc"))
    assert [e.name for e in find_executions(client, dclient, stack_info(), "abc")] == ["abc-mwy-retry1", "abc-mwx"]

    # nothing at all
    expect_get_item(dstub, {}, "nope")
    expect_no_execution(stub, "nope")
    stub.add_response("list_executions", {"executions": []}, {"stateMachineArn": SM_ARN})
    with pytest.raises(NotFound):
        find_executions(client, dclient, stack_info(), "nope")


# ------------------------------------------------------------------ retry


def expect_started(stub: Stubber, name: str, retry: dict) -> None:
    body = {"taskID": "boom-7f3a", "task": {"taskID": "boom-7f3a", "title": "fail me"}, "retry": retry}
    stub.add_response("start_execution", {"executionArn": ex_arn(name), "startDate": T0},
                      {"stateMachineArn": SM_ARN, "name": name, "input": json.dumps(body)})


def expect_settled(stub: Stubber, dstub: Stubber, name: str, task_status: str = "PROCESSING") -> None:
    expect_get_item(dstub, item("boom-7f3a", task_status, []))
    stub.add_response("describe_execution", described(name, "RUNNING"), {"executionArn": ex_arn(name)})


def run_retry(client, dclient, *, can_redrive: bool):
    return retry_task(client, dclient, stack_info(), "boom-7f3a", can_redrive=can_redrive, settle=0,
                      sleep=lambda _s: None)


def test_retry_without_redrive_starts_a_labelled_execution_from_the_original_input(sfn, ddb):
    (client, stub), (dclient, dstub) = sfn, ddb
    expect_get_item(dstub, item("boom-7f3a", "FAILED", ["boom-7f3a-mwx"]))
    expect_described(stub, described("boom-7f3a-mwx", "FAILED"))
    expect_started(stub, "boom-7f3a-mwx-retry1", {"of": "boom-7f3a-mwx", "attempt": 1})
    expect_settled(stub, dstub, "boom-7f3a-mwx-retry1")

    result = run_retry(client, dclient, can_redrive=False)

    assert result.action == "new-execution" and result.attempt == 1
    assert result.execution_name == "boom-7f3a-mwx-retry1" and result.previous.name == "boom-7f3a-mwx"
    assert result.task_status == "PROCESSING" and result.execution_status == "RUNNING"
    assert "RedriveExecution" in result.reason


def test_retry_of_a_retry_counts_on_from_the_original_name(sfn, ddb):
    (client, stub), (dclient, dstub) = sfn, ddb
    expect_get_item(dstub, item("boom-7f3a", "FAILED", ["boom-7f3a-mwx", "boom-7f3a-mwx-retry1"]))
    stub.add_response("describe_execution", described("boom-7f3a-mwx-retry1", "FAILED", start=T0 + dt.timedelta(1),
                                                      retry={"of": "boom-7f3a-mwx", "attempt": 1}),
                      {"executionArn": ex_arn("boom-7f3a-mwx-retry1")})
    expect_described(stub, described("boom-7f3a-mwx", "FAILED"))
    # -retry2 exists already (a retry that never moved the task): the next number
    stub.add_client_error("start_execution", "ExecutionAlreadyExists", expected_params={
        "stateMachineArn": SM_ARN, "name": "boom-7f3a-mwx-retry2", "input": ANY})
    expect_started(stub, "boom-7f3a-mwx-retry3", {"of": "boom-7f3a-mwx-retry1", "attempt": 3})
    expect_settled(stub, dstub, "boom-7f3a-mwx-retry3")

    result = run_retry(client, dclient, can_redrive=False)

    assert result.execution_name == "boom-7f3a-mwx-retry3" and result.attempt == 3


def test_on_aws_an_execution_that_ended_in_the_fail_state_is_not_redriven(sfn, ddb):
    (client, stub), (dclient, dstub) = sfn, ddb
    expect_get_item(dstub, item("boom-7f3a", "FAILED", ["boom-7f3a-mwx"]))
    stub.add_response("describe_execution", described("boom-7f3a-mwx", "FAILED", redrive="REDRIVABLE"),
                      {"executionArn": ex_arn("boom-7f3a-mwx")})
    stub.add_response("get_execution_history", {"events": recorded("sfn_history_aws_failed_process")},
                      {"executionArn": ex_arn("boom-7f3a-mwx")})
    # no redrive_execution stubbed: calling it would fail the test
    expect_started(stub, "boom-7f3a-mwx-retry1", {"of": "boom-7f3a-mwx", "attempt": 1})
    expect_settled(stub, dstub, "boom-7f3a-mwx-retry1")

    result = run_retry(client, dclient, can_redrive=True)

    assert result.action == "new-execution" and TERMINAL_FAIL_STATE in result.reason


def _stopped_in_process_events() -> list[dict]:
    """An execution that timed out while in Process: never reached TaskFailed."""
    events = [e for e in recorded("sfn_history_aws_failed_process") if e["id"] <= 33]  # Process, attempt 1 running
    assert events[-1]["type"] == "LambdaFunctionStarted"
    timed_out = {"id": 34, "previousEventId": 33, "type": "ExecutionTimedOut", "timestamp": events[-1]["timestamp"],
                 "executionTimedOutEventDetails": {"error": "States.Timeout"}}
    return [*events, timed_out]


def test_on_aws_a_redrivable_execution_stopped_elsewhere_is_redriven(sfn, ddb):
    (client, stub), (dclient, dstub) = sfn, ddb
    expect_get_item(dstub, item("boom-7f3a", "FAILED", ["boom-7f3a-mwx"]))
    stub.add_response("describe_execution", described("boom-7f3a-mwx", "TIMED_OUT", redrive="REDRIVABLE"),
                      {"executionArn": ex_arn("boom-7f3a-mwx")})
    stub.add_response("get_execution_history", {"events": _stopped_in_process_events()},
                      {"executionArn": ex_arn("boom-7f3a-mwx")})
    stub.add_response("redrive_execution", {"redriveDate": T0}, {"executionArn": ex_arn("boom-7f3a-mwx")})
    expect_settled(stub, dstub, "boom-7f3a-mwx")

    result = run_retry(client, dclient, can_redrive=True)

    assert result.action == "redrive" and result.execution_name == "boom-7f3a-mwx"
    assert "Process" in result.reason and result.attempt is None


def test_a_backend_that_answers_redrive_as_unsupported_gets_a_new_execution(sfn, ddb):
    (client, stub), (dclient, dstub) = sfn, ddb
    expect_get_item(dstub, item("boom-7f3a", "FAILED", ["boom-7f3a-mwx"]))
    stub.add_response("describe_execution", described("boom-7f3a-mwx", "TIMED_OUT"),
                      {"executionArn": ex_arn("boom-7f3a-mwx")})
    stub.add_response("get_execution_history", {"events": _stopped_in_process_events()},
                      {"executionArn": ex_arn("boom-7f3a-mwx")})
    stub.add_client_error("redrive_execution", "UnknownOperationException", http_status_code=400)
    expect_started(stub, "boom-7f3a-mwx-retry1", {"of": "boom-7f3a-mwx", "attempt": 1})
    expect_settled(stub, dstub, "boom-7f3a-mwx-retry1")

    result = run_retry(client, dclient, can_redrive=True)

    assert result.action == "new-execution" and "UnknownOperationException" in result.reason


@pytest.mark.parametrize("status", ["COMPLETED", "PROCESSING", "QUEUED", "PENDING", "DEAD_LETTERED"])
def test_only_a_failed_task_is_retried(sfn, ddb, status):
    (client, _stub), (dclient, dstub) = sfn, ddb
    expect_get_item(dstub, item("boom-7f3a", status, ["boom-7f3a-mwx"]))
    with pytest.raises(UsageError, match=f"is {status}: only a FAILED task"):
        run_retry(client, dclient, can_redrive=True)


def test_retry_of_an_unknown_task_is_not_found(sfn, ddb):
    (client, _stub), (dclient, dstub) = sfn, ddb
    expect_get_item(dstub, {})
    with pytest.raises(NotFound):
        run_retry(client, dclient, can_redrive=False)


# ------------------------------------------------------------------ the commands


@pytest.fixture
def offline_cli(monkeypatch, sfn, ddb):
    """The CLI's State answering with stubbed clients and a fixed stack."""
    clients = SimpleNamespace(stepfunctions=sfn[0], dynamodb=ddb[0], client=lambda name: None)
    monkeypatch.setattr(State, "clients", lambda self, local=False: clients)
    monkeypatch.setattr(State, "stack", lambda self: stack_info())
    monkeypatch.setattr(State, "backend", lambda self: SimpleNamespace(has_redrive_execution=False))
    return sfn[1], ddb[1]


def serve_history(monkeypatch, name: str) -> None:
    """MiniStack's recorded events lack fields AWS's model requires (Stubber validates
    answers against it): hand them to the command past the client instead."""
    import tmctl.core.executions as core

    monkeypatch.setattr(core, "get_history", lambda _sfn, _arn: recorded(name))


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env=CLI_ENV)


def test_show_prints_the_header_and_the_timeline_as_json(offline_cli, monkeypatch):
    stub, dstub = offline_cli
    serve_history(monkeypatch, "sfn_history_ministack_failed_process")
    expect_get_item(dstub, item("boom-sample1", "FAILED", ["boom-sample1-mwxffdqv"]), "boom-sample1")
    stub.add_response("describe_execution", described("boom-sample1-mwxffdqv", "FAILED", task_id="boom-sample1"),
                      {"executionArn": ex_arn("boom-sample1-mwxffdqv")})

    result = invoke("executions", "show", "boom-sample1", "--output", "json")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert data["execution"]["status"] == "FAILED" and data["execution"]["taskID"] == "boom-sample1"
    process = next(s for s in data["steps"] if s["name"] == "Process")
    assert process["status"] == "FAILED" and len(process["attempts"]) == 3


def test_show_as_a_table_lists_attempts_under_their_step(offline_cli, monkeypatch):
    stub, dstub = offline_cli
    serve_history(monkeypatch, "sfn_history_ministack_failed_process")
    expect_get_item(dstub, {}, "boom-sample1-mwxffdqv")
    stub.add_response("describe_execution", described("boom-sample1-mwxffdqv", "FAILED", task_id="boom-sample1"),
                      {"executionArn": ex_arn("boom-sample1-mwxffdqv")})

    result = invoke("--output", "table", "executions", "show", "boom-sample1-mwxffdqv")

    assert result.exit_code == 0, result.stderr
    assert "↳ attempt 3" in result.stdout and "caught → MarkFailed" in result.stdout
    assert "failure injected at step 'process'" in result.stdout


def test_history_as_json_has_every_raw_event(offline_cli):
    stub, dstub = offline_cli
    expect_get_item(dstub, {}, "happy-1-mwx")
    expect_described(stub, described("happy-1-mwx", "SUCCEEDED"))
    events = recorded("sfn_history_aws_failed_process")
    stub.add_response("get_execution_history", {"events": events[:20], "nextToken": "p2"},
                      {"executionArn": ex_arn("happy-1-mwx")})
    stub.add_response("get_execution_history", {"events": events[20:]},
                      {"executionArn": ex_arn("happy-1-mwx"), "nextToken": "p2"})

    result = invoke("executions", "history", "happy-1-mwx", "-o", "json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [e["id"] for e in data["events"]] == [e["id"] for e in events]  # both pages
    assert data["events"][0]["type"] == "ExecutionStarted"
    assert data["events"][-1]["executionFailedEventDetails"]["cause"]  # all of it, not a summary


@pytest.mark.parametrize(("args", "code"), [
    (["executions", "list", "--status", "DONE"], ExitCode.USAGE),
    (["executions", "list", "--since", "soon"], ExitCode.USAGE),
    (["executions", "list", "--limit", "0"], ExitCode.USAGE),
    (["executions", "show"], ExitCode.USAGE),
])
def test_bad_arguments_are_usage_errors_before_any_call(offline_cli, args, code):
    result = invoke(*args)
    assert result.exit_code == code
    assert result.stdout == ""
    assert result.stderr.strip()


def test_show_of_nothing_is_not_found_on_one_stderr_line(offline_cli):
    stub, dstub = offline_cli
    expect_get_item(dstub, {}, "nope")
    stub.add_client_error("describe_execution", "ExecutionDoesNotExist")
    stub.add_response("list_executions", {"executions": []}, {"stateMachineArn": SM_ARN})

    result = invoke("executions", "show", "nope")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tmctl: error: no execution found")


def test_task_retry_refuses_a_task_that_is_not_failed(offline_cli):
    _stub, dstub = offline_cli
    expect_get_item(dstub, item("happy-1", "COMPLETED", ["happy-1-mwx"]), "happy-1")

    result = invoke("task", "retry", "happy-1")

    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "only a FAILED task can be retried" in result.stderr


def test_task_retry_reports_the_new_execution(offline_cli):
    stub, dstub = offline_cli
    expect_get_item(dstub, item("boom-7f3a", "FAILED", ["boom-7f3a-mwx"]))
    expect_described(stub, described("boom-7f3a-mwx", "FAILED"))
    expect_started(stub, "boom-7f3a-mwx-retry1", {"of": "boom-7f3a-mwx", "attempt": 1})
    expect_settled(stub, dstub, "boom-7f3a-mwx-retry1")

    result = invoke("task", "retry", "boom-7f3a", "-o", "json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["execution"] == "boom-7f3a-mwx-retry1" and data["taskStatus"] == "PROCESSING"
    assert data["action"] == "new-execution" and data["previous"] == "boom-7f3a-mwx"
    assert "started boom-7f3a-mwx-retry1" in result.stderr


def test_the_listing_gets_the_error_of_each_execution_that_ended_badly_and_asks_for_no_other():
    from tmctl.core.executions import Execution, with_errors

    asked = []

    class Sfn:
        def describe_execution(self, executionArn):
            asked.append(executionArn)
            return {"executionArn": executionArn, "name": executionArn.rsplit(":", 1)[-1], "status": "FAILED",
                    "startDate": dt.datetime(2026, 12, 4, tzinfo=dt.UTC), "input": "{}",
                    "error": "States.TaskFailed", "cause": '{"errorMessage": "boom"}'}

    listed = [Execution(f"arn:aws:states:us-east-1:1:execution:m:{name}", name, status, None)
              for name, status in (("ok", "SUCCEEDED"), ("bad", "FAILED"), ("late", "TIMED_OUT"), ("run", "RUNNING"))]

    shown = with_errors(Sfn(), listed)

    assert [ex.name for ex in shown] == ["ok", "bad", "late", "run"]  # the order kept
    assert sorted(asked) == sorted([listed[1].arn, listed[2].arn])  # described 4 at a time: any order
    assert [ex.error for ex in shown] == [None, "States.TaskFailed", "States.TaskFailed", None]
    assert with_errors(Sfn(), listed[:1]) == listed[:1] and len(asked) == 2  # nothing failed: nothing asked
