"""Event Processor: the real SQS batch event (tests/events) through
handler(event, context), against moto Step Functions/SQS/SSM built from the
template; botocore Stubber where the exact request matters."""

from __future__ import annotations

import json

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from taskcore.model import WORKFLOW_FIELDS, TaskInput, execution_name, workflow_view

pytestmark = pytest.mark.unit

STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:taskmanager-dev-workflow"
CREATED = "2025-03-10T15:42:24.301Z"
RECREATED = "2025-03-11T08:00:00.000Z"  # the same taskID, after its stage was recreated


@pytest.fixture
def batch(load_event):
    """The real two-record batch; optionally with other bodies/receive counts."""

    def make(*bodies: str, receive_counts: tuple[str, ...] = ()) -> dict:
        event = load_event("sqs_task_created_batch")
        for record, body in zip(event["Records"], bodies, strict=False):
            record["body"] = body
        for record, count in zip(event["Records"], receive_counts, strict=False):
            record["attributes"]["ApproximateReceiveCount"] = count
        return event

    return make


def workflow_task(task_id: str, **fields) -> dict:
    """The task as the Task API puts it in the event (WORKFLOW_FIELDS of the stored item)."""
    item = TaskInput.parse({"taskID": task_id, **fields}).new_item(CREATED)
    return {k: item[k] for k in WORKFLOW_FIELDS if k in item}


def task_body(task_id: str, *, with_task: bool = True, **overrides) -> str:
    """A TaskCreated v1 body; overrides replace (or, set to None, drop) its top-level keys."""
    body = {"type": "TaskCreated", "version": 1, "taskID": task_id}
    if with_task:
        body["task"] = workflow_task(task_id)
    body.update(overrides)
    return json.dumps({k: v for k, v in body.items() if v is not None})


def run_name(task: dict) -> str:
    """The execution name the processor must use for a task (taskID + its createdAt)."""
    return execution_name(task["taskID"], task["createdAt"])


def started(stack) -> dict[str, dict]:
    """Execution name → its input, for every execution of the workflow."""
    return {e["name"]: json.loads(stack.sfn.describe_execution(executionArn=e["executionArn"])["input"])
            for e in stack.executions()}


def sample_task(load_event, index: int) -> dict:
    return json.loads(load_event("sqs_task_created_batch")["Records"][index]["body"])["task"]


def sample_name(load_event, index: int) -> str:
    return run_name(sample_task(load_event, index))


@pytest.fixture
def sqs_stub(event_processor):
    """A stubbed SQS client in place of the processor's: any call not expected fails the test."""
    client = boto3.client("sqs", region_name="us-east-1")
    event_processor.Clients.sqs = client
    with Stubber(client) as stubber:
        yield stubber


def test_valid_batch_starts_one_execution_per_task(event_processor, lambda_context, batch, stack, load_event):
    # GIVEN the sample batch: TaskCreated for task-173 and task-174, each carrying its task
    event = batch()

    # WHEN the processor handles it
    result = event_processor.handler(event, lambda_context)

    # THEN both workflows start, named by taskID + createdAt (one per task), with
    # the task as their input (no table read needed), and nothing is retried
    assert result == {"batchItemFailures": []}
    first, second = sample_task(load_event, 0), sample_task(load_event, 1)
    assert started(stack) == {
        execution_name("task-173", first["createdAt"]): {"taskID": "task-173", "task": first},
        execution_name("task-174", second["createdAt"]): {"taskID": "task-174", "task": second},
    }
    assert stack.ddb.scan(TableName=stack.table)["Count"] == 0


def test_hand_sent_event_without_the_task_loads_it_from_the_table(event_processor, lambda_context, batch, stack):
    # GIVEN an event sent by hand (no "task"), and one whose "task" is for another ID
    stored = TaskInput.parse({"taskID": "task-173", "title": "Stored title", "priority": "HIGH"}).new_item(CREATED)
    stack.put_item({**stored, "status": "QUEUED"})
    other = TaskInput.parse({"taskID": "task-174", "title": "Stored 174"}).new_item(RECREATED)
    stack.put_item({**other, "status": "QUEUED"})
    mismatched = task_body("task-174", task=workflow_task("task-999"))

    # WHEN handled
    result = event_processor.handler(batch(task_body("task-173", with_task=False), mismatched), lambda_context)

    # THEN the workflow input is the stored task, cut to what the workflow needs
    # (no status, history or requestHash), and the execution is named from the
    # stored createdAt; the mismatched copy is ignored
    assert result == {"batchItemFailures": []}
    assert started(stack) == {
        execution_name("task-173", CREATED): {
            "taskID": "task-173", "task": {k: stored[k] for k in WORKFLOW_FIELDS if k in stored}},
        execution_name("task-174", RECREATED): {"taskID": "task-174", "task": workflow_view(other)},
    }


def test_hand_sent_event_whose_task_has_no_created_at_loads_it_from_the_table(
        event_processor, lambda_context, batch, stack, load_event):
    # GIVEN a hand-sent event whose embedded task lacks createdAt (so no execution
    # name can be derived from it), and the stored task it refers to
    stored = TaskInput.parse({"taskID": "task-173", "title": "Stored title"}).new_item(RECREATED)
    stack.put_item({**stored, "status": "QUEUED"})
    partial = {k: v for k, v in workflow_task("task-173", title="Hand-written").items() if k != "createdAt"}

    # WHEN handled
    result = event_processor.handler(batch(task_body("task-173", task=partial)), lambda_context)

    # THEN the embedded copy is ignored: the stored task is the input and names the execution
    assert result == {"batchItemFailures": []}
    assert started(stack) == {
        execution_name("task-173", RECREATED): {"taskID": "task-173", "task": workflow_view(stored)},
        sample_name(load_event, 1): {"taskID": "task-174", "task": sample_task(load_event, 1)},
    }


def test_hand_sent_event_for_an_unknown_task_fails_alone(event_processor, lambda_context, batch, stack, load_event):
    event = batch(task_body("task-ghost", with_task=False))

    result = event_processor.handler(event, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert set(started(stack)) == {sample_name(load_event, 1)}


@pytest.mark.parametrize("bad_body", [
    "not json",
    "null",
    '["task-173"]',
    '{"type": "TaskCreated", "version": 1}',
    '{"type": "TaskCreated", "version": 1, "taskID": "has space"}',
    '{"type": "TaskCreated", "version": 1, "taskID": 173}',
    # Otherwise valid (task embedded) but not a TaskCreated v1 event: no longer accepted
    pytest.param(task_body("task-173", version=None), id="no version"),
    pytest.param(task_body("task-173", version=2), id="version 2"),
    pytest.param(task_body("task-173", version="1"), id="version as a string"),
    pytest.param(task_body("task-173", type=None), id="no type"),
])
def test_one_bad_record_fails_alone(event_processor, lambda_context, batch, stack, load_event, bad_body):
    # GIVEN a batch whose first record can never be processed and a valid second one
    event = batch(bad_body)
    bad_id = event["Records"][0]["messageId"]

    # WHEN handled
    result = event_processor.handler(event, lambda_context)

    # THEN only the bad record goes back to the queue (and on to the DLQ);
    # its neighbour's workflow still started
    assert result == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert set(started(stack)) == {sample_name(load_event, 1)}


def test_other_event_type_is_poison_and_fails_alone(event_processor, lambda_context, batch, stack, load_event):
    # GIVEN a TaskCancelled event for a task that exists (with the task embedded,
    # so only its type is wrong) next to a valid TaskCreated
    task = workflow_task("task-173")
    stack.put_item({**TaskInput.parse({"taskID": "task-173"}).new_item(CREATED), "status": "QUEUED"})
    event = batch(task_body("task-173", type="TaskCancelled", task=task))

    # WHEN handled
    result = event_processor.handler(event, lambda_context)

    # THEN it is not mistaken for a creation: it alone fails, and only the
    # neighbour's workflow starts
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert set(started(stack)) == {sample_name(load_event, 1)}


def test_batch_where_every_record_fails_lists_each_record_instead_of_raising(
        event_processor, lambda_context, batch, stack):
    # Raising would mean the same to AWS (all retried) but costs an emulator its worker
    # and a paced mapping: every record is reported as a failure instead.
    event = batch("not json", "also not json")

    result = event_processor.handler(event, lambda_context)

    # (records run concurrently: the failures come in the order they finish, which SQS does not mind)
    assert list(result) == ["batchItemFailures"]
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        r["messageId"] for r in event["Records"])
    assert started(stack) == {}


def test_duplicate_record_in_a_batch_starts_one_execution(event_processor, lambda_context, batch, stack):
    # GIVEN the same TaskCreated twice (SQS is at-least-once)
    event = batch(task_body("task-173"), task_body("task-173"))

    # WHEN handled
    result = event_processor.handler(event, lambda_context)

    # THEN one workflow exists and neither copy is reported failed
    assert result == {"batchItemFailures": []}
    assert list(started(stack)) == [execution_name("task-173", CREATED)]


def test_task_id_reused_after_recreation_gets_its_own_execution(event_processor, lambda_context, batch, stack):
    # GIVEN task-173's workflow already ran
    assert event_processor.handler(batch(task_body("task-173")), lambda_context)["batchItemFailures"] == []

    # WHEN the same taskID is created again (a recreated stage) and its event arrives
    reborn = {**workflow_task("task-173"), "createdAt": RECREATED}
    result = event_processor.handler(batch(task_body("task-173", task=reborn)), lambda_context)

    # THEN it starts a workflow of its own rather than being taken for a redelivery
    assert result == {"batchItemFailures": []}
    inputs = started(stack)
    assert inputs[execution_name("task-173", RECREATED)] == {"taskID": "task-173", "task": reborn}
    assert execution_name("task-173", CREATED) in inputs


def test_redelivery_after_the_workflow_finished_is_not_a_failure(
        event_processor, lambda_context, batch, stack, load_event):
    # GIVEN task-173's workflow already ran (closed executions make StartExecution
    # answer ExecutionAlreadyExists, even with the same input)
    assert event_processor.handler(batch(), lambda_context) == {"batchItemFailures": []}
    first = next(e for e in stack.executions() if e["name"] == sample_name(load_event, 0))
    stack.sfn.stop_execution(executionArn=first["executionArn"])

    # WHEN the message is delivered again
    result = event_processor.handler(batch(), lambda_context)

    # THEN it counts as done: no retry, no second execution
    assert result == {"batchItemFailures": []}
    assert sorted(e["name"] for e in stack.executions()) == sorted(
        [sample_name(load_event, 0), sample_name(load_event, 1)])


def test_start_workflow_sends_the_exact_request_and_maps_already_exists(event_processor):
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    task = workflow_task("task-9")
    event = event_processor.TaskEvent("task-9", "TaskCreated", task)
    name = execution_name("task-9", CREATED)
    expected = {"stateMachineArn": STATE_MACHINE_ARN, "name": name,
                "input": json.dumps({"taskID": "task-9", "task": workflow_view(task)})}

    with Stubber(sfn) as stub:
        stub.add_response("start_execution",
                          {"executionArn": f"{STATE_MACHINE_ARN.replace('stateMachine', 'execution')}:{name}",
                           "startDate": "2026-03-10T12:00:00Z"}, expected)
        stub.add_client_error("start_execution", "ExecutionAlreadyExists", http_status_code=400,
                              expected_params=expected)
        stub.add_client_error("start_execution", "ThrottlingException", http_status_code=400,
                              expected_params=expected)

        assert event_processor.start_workflow(sfn, STATE_MACHINE_ARN, event, task) == "started"
        assert event_processor.start_workflow(sfn, STATE_MACHINE_ARN, event, task) == "duplicate"
        # Anything else is transient: raised, so the record is retried
        with pytest.raises(ClientError) as caught:
            event_processor.start_workflow(sfn, STATE_MACHINE_ARN, event, task)
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"
        stub.assert_no_pending_responses()


def test_transient_start_failure_fails_the_record_and_shortens_its_visibility(
        event_processor, lambda_context, batch, sqs_stub, load_event):
    # GIVEN Step Functions throttles the first start and accepts the second
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    event_processor.Clients.sfn = sfn
    event = batch(receive_counts=("2", "1"))
    first = event["Records"][0]
    sqs_stub.add_response("change_message_visibility", {}, {
        "QueueUrl": event_processor.QUEUE_URL, "ReceiptHandle": first["receiptHandle"], "VisibilityTimeout": 4})
    second_arn = f"{STATE_MACHINE_ARN.replace('stateMachine', 'execution')}:{sample_name(load_event, 1)}"

    with Stubber(sfn) as sfn_stub:
        sfn_stub.add_client_error("start_execution", "ThrottlingException", http_status_code=400)
        sfn_stub.add_response("start_execution", {"executionArn": second_arn, "startDate": "2026-03-10T12:00:00Z"})

        # WHEN handled
        result = event_processor.handler(event, lambda_context)

        # THEN the throttled record alone is retried, after the backoff for its 2nd receive
        assert result == {"batchItemFailures": [{"itemIdentifier": first["messageId"]}]}
        sfn_stub.assert_no_pending_responses()
    sqs_stub.assert_no_pending_responses()


def test_failure_injection_fails_only_matching_records_with_backoff(
        event_processor, lambda_context, batch, stack, sqs_stub, load_event):
    # GIVEN the switch in SSM (the template's parameter) targets poison-* in the processor
    stack.set_failure_rules([{"at": "processor", "match": "poison-*"}])
    event = batch(task_body("poison-1"), receive_counts=("2", "1"))
    poison = event["Records"][0]
    # and the retry backoff for a 2nd receive is what the queue is told
    sqs_stub.add_response("change_message_visibility", {}, {
        "QueueUrl": stack.queue_url, "ReceiptHandle": poison["receiptHandle"],
        "VisibilityTimeout": event_processor.retry_delay(2)})

    # WHEN handled
    result = event_processor.handler(event, lambda_context)

    # THEN only the matching record fails, its workflow never starts, and the
    # other task proceeds
    assert result == {"batchItemFailures": [{"itemIdentifier": poison["messageId"]}]}
    assert set(started(stack)) == {sample_name(load_event, 1)}
    assert event_processor.retry_delay(2) == 4
    sqs_stub.assert_no_pending_responses()


def stored_task(stack, task_id: str, status: str = "QUEUED") -> dict:
    item = TaskInput.parse({"taskID": task_id}).new_item(CREATED)
    item["status"] = status
    stack.put_item(item)
    return item


def test_last_receive_marks_the_task_dead_lettered_and_releases_the_record_at_once(
        event_processor, lambda_context, batch, stack, sqs_stub, load_event):
    # GIVEN a stored QUEUED task whose event fails in the processor, on its last allowed receive
    stack.set_failure_rules([{"at": "processor", "match": "poison-*"}])
    stored_task(stack, "poison-1")
    last = str(stack.cfn.refs["MaxReceiveCount"])
    event = batch(task_body("poison-1"), receive_counts=(last, "1"))
    poison = event["Records"][0]
    # THEN its visibility goes to 0: SQS moves it to the DLQ on the next poll, no back-off wait
    sqs_stub.add_response("change_message_visibility", {}, {
        "QueueUrl": stack.queue_url, "ReceiptHandle": poison["receiptHandle"], "VisibilityTimeout": 0})

    result = event_processor.handler(event, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": poison["messageId"]}]}
    sqs_stub.assert_no_pending_responses()
    # and the task says so: DEAD_LETTERED, the last error, when, and a history entry
    task = stack.get_item("poison-1")
    assert task["status"] == "DEAD_LETTERED"
    assert task["error"]["code"] == "InjectedFailure" and "poison-1" in task["error"]["message"]
    assert task["error"]["receiveCount"] == int(last) and task["error"]["messageId"] == poison["messageId"]
    entry = task["history"][-1]
    assert (entry["step"], entry["outcome"]) == ("dead-lettered", "failed")
    assert entry["at"] == task["updatedAt"] == task["error"]["at"]


def test_an_earlier_receive_does_not_mark_the_task(event_processor, lambda_context, batch, stack):
    stack.set_failure_rules([{"at": "processor", "match": "poison-*"}])
    stored_task(stack, "poison-1")

    event_processor.handler(batch(task_body("poison-1"), receive_counts=("1", "1")), lambda_context)

    assert stack.get_item("poison-1")["status"] == "QUEUED"


@pytest.mark.parametrize("status", ["PROCESSING", "COMPLETED", "FAILED"])
def test_a_task_the_workflow_already_has_is_never_marked_dead_lettered(
        event_processor, lambda_context, batch, stack, status):
    # GIVEN the workflow already moved the task on (its event fails only as a late duplicate)
    stack.set_failure_rules([{"at": "processor", "match": "poison-*"}])
    before = stored_task(stack, "poison-1", status)
    last = str(stack.cfn.refs["MaxReceiveCount"])

    event_processor.handler(batch(task_body("poison-1"), receive_counts=(last, "1")), lambda_context)

    # THEN its status never moves backwards
    assert stack.get_item("poison-1") == before


def test_a_poison_body_without_a_task_is_dead_lettered_without_marking_anything(
        event_processor, lambda_context, batch, stack):
    last = str(stack.cfn.refs["MaxReceiveCount"])

    result = event_processor.handler(batch("not json", receive_counts=(last, "1")), lambda_context)

    assert len(result["batchItemFailures"]) == 1
    assert stack.get_item("task-173") is None


@pytest.mark.parametrize("rules", [
    [{"at": "validate", "match": "poison-*"}],  # another stage of the pipeline
    [{"at": "processor", "match": "other-*"}],  # another task
    "not json at all",  # a broken switch must not stop real work
    {"at": "processor", "match": "*"},  # not a list
])
def test_failure_injection_rules_that_do_not_apply_are_ignored(
        event_processor, lambda_context, batch, stack, load_event, rules):
    stack.ssm.put_parameter(Name=stack.failure_param, Type="String", Overwrite=True,
                            Value=rules if isinstance(rules, str) else json.dumps(rules))

    result = event_processor.handler(batch(task_body("poison-1")), lambda_context)

    assert result == {"batchItemFailures": []}
    assert set(started(stack)) == {execution_name("poison-1", CREATED), sample_name(load_event, 1)}


def test_production_stage_ignores_the_failure_switch(
        event_processor, lambda_context, batch, stack, monkeypatch, load_event):
    # GIVEN a rule that would fail everything, on the prod stage
    stack.set_failure_rules([{"at": "processor", "match": "*"}])
    monkeypatch.setenv("STAGE", "prod")

    # WHEN a batch arrives
    result = event_processor.handler(batch(task_body("poison-1")), lambda_context)

    # THEN real work is never failed by a stray switch
    assert result == {"batchItemFailures": []}
    assert set(started(stack)) == {execution_name("poison-1", CREATED), sample_name(load_event, 1)}

    # and prod does not even read the parameter (deleting it changes nothing)
    stack.ssm.delete_parameter(Name=stack.failure_param)
    assert event_processor.handler(batch(task_body("poison-2")), lambda_context) == {"batchItemFailures": []}


@pytest.mark.parametrize(("receives", "delay"), [(0, 2), (1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (50, 60)])
def test_retry_delay_doubles_per_receive_up_to_the_cap(event_processor, receives, delay, monkeypatch):
    monkeypatch.setattr(event_processor, "MAX_RECEIVE_COUNT", 100)
    assert event_processor.retry_delay(receives) == delay


def test_no_delay_after_the_last_receive(event_processor, stack):
    # The DLQ is the record's next stop: back-off would only delay it.
    last = stack.cfn.refs["MaxReceiveCount"]
    assert event_processor.retry_delay(last) == event_processor.retry_delay(last + 1) == 0
    assert event_processor.retry_delay(last - 1) > 0


def test_retry_delay_stays_within_the_queue_visibility_timeout(event_processor, stack):
    # A "shortened" visibility longer than the queue's own would delay retries instead.
    visibility = stack.cfn.props("TaskQueue")["VisibilityTimeout"]
    max_receives = stack.cfn.refs["MaxReceiveCount"]

    assert max_receives >= 1  # or the range below is empty and checks nothing
    assert all(event_processor.retry_delay(n) <= visibility for n in range(1, max_receives + 1))


def test_task_event_parses_the_sample_record(event_processor, load_event):
    record = SQSRecord(load_event("sqs_task_created_batch")["Records"][1])

    event = event_processor.TaskEvent.from_record(record)

    assert event == event_processor.TaskEvent("task-174", "TaskCreated", sample_task(load_event, 1))
    assert set(event.task) <= set(WORKFLOW_FIELDS)


def test_module_reads_its_environment_from_the_template(event_processor, stack):
    assert stack.state_machine_arn == event_processor.STATE_MACHINE_ARN == STATE_MACHINE_ARN
    assert stack.queue_url == event_processor.QUEUE_URL
    assert stack.table == event_processor.TABLE
    assert stack.cfn.refs["MaxReceiveCount"] == event_processor.MAX_RECEIVE_COUNT


def test_warmup_event_answers_without_touching_records(event_processor, lambda_context, stack):
    assert event_processor.handler({"warmup": True}, lambda_context) == {"warm": True}
    assert started(stack) == {}
