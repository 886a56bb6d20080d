"""Workflow steps: the pure step functions through handler(event, context), and
the workflow as deployed — the real ASL (with the template's substitutions, as
created in moto) walked by a small interpreter that calls the real handler for
Lambda states and moto DynamoDB for the table states. That pins the contract
between what a step returns ("ddb") and what the state machine writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
from taskcore.model import WORKFLOW_FIELDS, TaskInput

pytestmark = pytest.mark.unit

CREATED = "2026-03-10T12:00:00.000Z"
FAR_FUTURE = "2099-01-01"
TODAY = dt.date(2026, 3, 10)


def workflow_task(task_id: str = "task-173", **fields) -> dict:
    """The task as it travels in the execution input (WORKFLOW_FIELDS of the stored item)."""
    item = TaskInput.parse({"taskID": task_id, **fields}).new_item(CREATED)
    return {k: item[k] for k in WORKFLOW_FIELDS if k in item}


@pytest.fixture
def step(workflow_steps, lambda_context):
    """Invoke one step as Step Functions does: {"step": ..., "task": ...}."""

    def invoke(name: str, task: dict) -> dict:
        return workflow_steps.handler({"step": name, "task": task}, lambda_context)

    return invoke


# ------------------------------------------------------------------ the steps


def test_validate_ok_returns_a_timed_entry_in_dynamodb_form(step):
    # GIVEN a sensible task
    task = workflow_task(title="Write the quarterly report", dueDate=FAR_FUTURE)

    # WHEN validated
    result = step("validate", task)

    # THEN the outcome is data, and the history entry is ready for the state
    # machine's list_append (typed values: it has no Lambda to convert them)
    assert (result["step"], result["outcome"], result["reason"], result["fields"]) == ("validate", "ok", "valid", {})
    assert result["ddb"]["at"] == {"S": result["at"]}
    (entry,) = result["ddb"]["history"]["L"]
    assert {k: entry["M"][k] for k in ("step", "outcome", "detail", "at")} == {
        "step": {"S": "validate"}, "outcome": {"S": "ok"}, "detail": {"S": "valid"}, "at": {"S": result["at"]}}
    assert float(entry["M"]["durationMs"]["N"]) >= 0
    json.dumps(result)  # what the Lambda runtime must be able to serialise


def test_one_invocation_runs_every_step_in_order(workflow_steps, lambda_context):
    # GIVEN the state machine's request: the task, no step named
    task = workflow_task(title="Fix #Login bug", priority="HIGH", dueDate=FAR_FUTURE)

    # WHEN invoked once
    result = workflow_steps.handler({"task": task}, lambda_context)

    # THEN validate, enrich and process each left a timed entry, in order, and
    # every field they set is ready for one conditional write
    assert [e["step"] for e in result["steps"]] == ["validate", "enrich", "process"]
    assert (result["step"], result["outcome"]) == ("process", "ok")
    assert result["reason"] == "valid · score 70 · 3 words"
    history = result["ddb"]["history"]["L"]
    assert [e["M"]["step"]["S"] for e in history] == ["validate", "enrich", "process"]
    assert all(float(e["M"]["durationMs"]["N"]) >= 0 for e in history)
    assert result["ddb"]["at"] == {"S": result["steps"][-1]["at"]}
    assert set(result["fields"]) == {"priorityScore", "slaDeadline", "result"}
    assert {"priorityScore", "slaDeadline", "result"} <= set(result["ddb"])
    json.dumps(result)


def test_the_steps_stop_at_the_first_that_says_no(workflow_steps, lambda_context):
    result = workflow_steps.handler({"task": workflow_task(dueDate="2026-03-01")}, lambda_context)

    assert [e["step"] for e in result["steps"]] == ["validate"]
    assert (result["step"], result["outcome"]) == ("validate", "failed")
    assert result["reason"] == "dueDate 2026-03-01 is before the task was created"
    assert result["fields"] == {} and "priorityScore" not in result["ddb"]


def test_an_injected_failure_fails_the_whole_invocation(workflow_steps, lambda_context, stack):
    stack.set_failure_rules([{"at": "enrich", "match": "inj-*"}])

    with pytest.raises(workflow_steps.InjectedFailure, match="'enrich'"):
        workflow_steps.handler({"task": workflow_task("inj-2")}, lambda_context)
    assert workflow_steps.handler({"task": workflow_task("task-2")}, lambda_context)["outcome"] == "ok"


def test_enrich_returns_priority_score_and_sla_deadline(step):
    # A HIGH task due far away: HIGH's weight, SLA 24 h after creation
    result = step("enrich", workflow_task(priority="HIGH", dueDate=FAR_FUTURE))

    assert result["outcome"] == "ok"
    assert result["fields"] == {"priorityScore": 70, "slaDeadline": "2026-03-11T12:00:00Z"}
    assert result["ddb"]["priorityScore"] == {"N": "70"}
    assert result["ddb"]["slaDeadline"] == {"S": "2026-03-11T12:00:00Z"}


def test_process_extracts_tags_and_fingerprints_the_text(step):
    result = step("process", workflow_task(title="Fix #Login bug", description="see #ui and #login again"))

    text = "Fix #Login bug see #ui and #login again"
    assert (result["outcome"], result["reason"]) == ("ok", "8 words")
    assert result["fields"]["result"] == {
        "words": 8, "tags": ["login", "ui"], "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}
    assert result["ddb"]["result"]["M"]["tags"] == {"L": [{"S": "login"}, {"S": "ui"}]}


def test_due_date_before_creation_is_a_business_failure(step):
    # Returned as data, not raised: no pointless retries of a rule that will fail again
    result = step("validate", workflow_task(dueDate="2026-03-01"))

    assert (result["outcome"], result["reason"]) == ("failed", "dueDate 2026-03-01 is before the task was created")
    assert result["ddb"]["history"]["L"][0]["M"]["outcome"] == {"S": "failed"}


@pytest.mark.parametrize("title", ["TODO", "tbd", "  Todo "])
def test_placeholder_title_is_a_business_failure(step, title):
    result = step("validate", workflow_task(title="x") | {"title": title})

    assert (result["outcome"], result["reason"]) == ("failed", "the title says nothing about the work")


def test_injected_failure_raises_at_the_named_step_only(workflow_steps, step, stack):
    # GIVEN the switch (the template's SSM parameter) targets the process step for inj-* tasks
    stack.set_failure_rules([{"at": "process", "match": "inj-*"}])
    task = workflow_task("inj-1")

    # THEN other steps and other tasks pass, and process raises (transient: retried, then caught)
    assert step("validate", task)["outcome"] == "ok"
    assert step("process", workflow_task("task-2"))["outcome"] == "ok"
    with pytest.raises(workflow_steps.InjectedFailure, match="process"):
        step("process", task)


def test_injected_failure_is_ignored_on_prod(step, stack, monkeypatch):
    stack.set_failure_rules([{"at": "process", "match": "*"}])
    monkeypatch.setenv("STAGE", "prod")

    assert step("process", workflow_task())["outcome"] == "ok"


@pytest.mark.parametrize("event", [
    {"step": "publish", "task": {"taskID": "t", "createdAt": CREATED}},
    {"step": "validate"},
    {"step": "validate", "task": "task-173"},
    {"step": "validate", "task": {"taskID": 173, "createdAt": CREATED}},
    {"step": "validate", "task": {"taskID": "task-173"}},  # no createdAt: rules need it
    {"step": "validate", "taskID": "task-173"},  # the old contract
    {},
])
def test_malformed_step_request_raises(workflow_steps, lambda_context, event):
    with pytest.raises(ValueError, match="bad step request"):
        workflow_steps.handler(event, lambda_context)


def test_warmup_answers_at_once(workflow_steps, lambda_context):
    assert workflow_steps.handler({"warmup": True}, lambda_context) == {"warm": True}


@pytest.mark.parametrize(("priority", "due", "score", "sla"), [
    ("LOW", None, 10, "2026-03-17T12:00:00Z"),
    ("MEDIUM", "2026-03-17", 45, "2026-03-13T12:00:00Z"),  # due within a week: +5
    ("HIGH", "2026-03-11", 80, "2026-03-11T12:00:00Z"),  # due tomorrow: +10
    ("URGENT", "2026-03-10", 100, "2026-03-10T16:00:00Z"),  # 90 + 10, capped at 100
    ("URGENT", "2026-03-30", 90, "2026-03-10T16:00:00Z"),
])
def test_enrich_scores_against_a_fixed_today(workflow_steps, priority, due, score, sla):
    task = {"priority": priority, "createdAt": CREATED, **({"dueDate": due} if due else {})}

    outcome, fields, detail = workflow_steps.enrich(task, TODAY)

    assert (outcome, fields, detail) == ("ok", {"priorityScore": score, "slaDeadline": sla}, f"score {score}")


def test_validate_accepts_a_due_date_on_the_creation_day(workflow_steps):
    task = {"title": "Ship", "createdAt": CREATED, "dueDate": "2026-03-10"}

    assert workflow_steps.validate(task, TODAY)[0] == "ok"


# ------------------------------------------------------------------ the workflow as deployed


class MiniStepFunctions:
    """Walks the deployed definition: Lambda states call the real handler,
    dynamodb:updateItem states call moto. Retries are not replayed (a repeated
    deterministic error ends the same way); Catch, ResultPath, Choice
    (StringEquals, IsPresent), Pass Parameters and States.Format are."""

    def __init__(self, stack, steps_handler, context):
        self.stack, self.steps_handler, self.context = stack, steps_handler, context
        self.definition = json.loads(stack.sfn.describe_state_machine(
            stateMachineArn=stack.state_machine_arn)["definition"])
        self.visited: list[str] = []

    def run(self, data: dict, start: str | None = None) -> tuple[str, dict]:
        name = start or self.definition["StartAt"]
        ctx = {"Execution": {"Name": data["taskID"]}, "State": {}}
        while True:
            self.visited.append(name)
            state = self.definition["States"][name]
            ctx["State"]["EnteredTime"] = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            kind = state["Type"]
            if kind in {"Succeed", "Fail"}:
                return name, data
            if kind == "Choice":
                name = next((c["Next"] for c in state["Choices"] if self.matches(c, data, ctx)), state["Default"])
                continue
            if kind == "Pass":
                data = self.params(state["Parameters"], data, ctx)
            else:
                try:
                    result = self.task(state, self.params(state["Parameters"], data, ctx))
                except _StateError as err:
                    catcher = next(c for c in state["Catch"]
                                   if err.error in c["ErrorEquals"] or "States.ALL" in c["ErrorEquals"])
                    data = self.result_path(data, catcher.get("ResultPath", "$"),
                                            {"Error": err.error, "Cause": err.cause})
                    name = catcher["Next"]
                    continue
                data = self.result_path(data, state.get("ResultPath", "$"), result)
            if state.get("End"):
                return name, data
            name = state["Next"]

    def matches(self, rule: dict, data: dict, ctx: dict) -> bool:
        try:
            value, present = self.path(rule["Variable"], data, ctx), True
        except (KeyError, TypeError):
            value, present = None, False
        if "IsPresent" in rule:
            return present == rule["IsPresent"]
        return present and value == rule["StringEquals"]

    def task(self, state: dict, params: dict) -> dict:
        if state["Resource"] == "arn:aws:states:::dynamodb:updateItem":
            try:
                return self.stack.ddb.update_item(**params)
            except self.stack.ddb.exceptions.ConditionalCheckFailedException as err:
                raise _StateError("DynamoDB.ConditionalCheckFailedException", str(err)) from None
        assert state["Resource"] == self.stack.cfn.attrs["WorkflowStepsFunction.Arn"], state["Resource"]
        try:
            return json.loads(json.dumps(self.steps_handler(params, self.context)))
        except Exception as err:  # Lambda reports the exception's class name as the Error
            raise _StateError(type(err).__name__, json.dumps({"errorMessage": str(err)})) from None

    @staticmethod
    def result_path(data: dict, result_path: str | None, result) -> dict:
        if result_path is None:
            return data
        if result_path == "$":
            return result
        return {**data, result_path.removeprefix("$."): result}

    def params(self, template, data, ctx):
        if isinstance(template, list):
            return [self.params(v, data, ctx) for v in template]
        if not isinstance(template, dict):
            return template
        return {(k[:-2] if k.endswith(".$") else k): (self.path(v, data, ctx) if k.endswith(".$")
                                                      else self.params(v, data, ctx))
                for k, v in template.items()}

    def path(self, expr: str, data: dict, ctx: dict):
        fmt = re.fullmatch(r"States\.Format\('([^']*)',\s*(.+)\)", expr)
        if fmt:
            text = fmt.group(1)
            for arg in fmt.group(2).split(","):
                text = text.replace("{}", str(self.path(arg.strip(), data, ctx)), 1)
            return text
        node, rest = (ctx, expr[3:]) if expr.startswith("$$.") else (data, expr[2:])
        for part in filter(None, rest.split(".")):
            node = node[part]
        return node


class _StateError(Exception):
    def __init__(self, error: str, cause: str):
        super().__init__(error)
        self.error, self.cause = error, cause


@pytest.fixture
def workflow(stack, workflow_steps, lambda_context):
    return MiniStepFunctions(stack, workflow_steps.handler, lambda_context)


def queued_task(stack, task_id: str = "task-173", **fields) -> dict:
    """Store a task as the API leaves it once its event is out (QUEUED)."""
    item = TaskInput.parse({"taskID": task_id, **fields}).new_item(CREATED)
    item["status"] = "QUEUED"
    item["history"].append({"step": "queued", "outcome": "ok", "at": CREATED, "detail": "msg-1"})
    stack.put_item(item)
    return item


def execution_input(item: dict) -> dict:
    # What the event processor starts the execution with
    return {"taskID": item["taskID"], "task": {k: item[k] for k in WORKFLOW_FIELDS if k in item}}


def test_workflow_completes_a_task_and_records_every_step(workflow, stack):
    # GIVEN a QUEUED task and its execution input
    item = queued_task(stack, title="Fix #Login bug", priority="HIGH", dueDate=FAR_FUTURE)

    # WHEN the deployed definition runs
    end, _ = workflow.run(execution_input(item))

    # THEN the task is COMPLETED with each step's trace and output on it
    assert end == "MarkCompleted"
    done = stack.get_item("task-173")
    assert done["status"] == "COMPLETED"
    assert [h["step"] for h in done["history"]] == ["created", "queued", "started", "validate", "enrich", "process"]
    assert all(h["outcome"] == "ok" for h in done["history"])
    assert all(h["durationMs"] >= 0 for h in done["history"][3:])
    assert done["history"][2]["detail"] == "task-173"  # the execution's name
    assert done["priorityScore"] == 70 and done["slaDeadline"] == "2026-03-11T12:00:00Z"
    assert done["result"]["tags"] == ["login"]
    assert done["completedAt"] == done["updatedAt"] == done["history"][-1]["at"]


def test_workflow_records_a_business_failure_without_retrying(workflow, stack):
    item = queued_task(stack, dueDate="2026-03-01")

    end, _ = workflow.run(execution_input(item))

    assert end == "TaskFailed"
    assert "MarkCompleted" not in workflow.visited
    failed = stack.get_item("task-173")
    assert failed["status"] == "FAILED"
    assert failed["error"]["code"] == "BusinessRuleFailed"
    assert failed["error"]["message"] == "validate: dueDate 2026-03-01 is before the task was created"
    # the steps stop at the one that said no: enrich and process never ran
    assert [(h["step"], h["outcome"]) for h in failed["history"]][-2:] == [("started", "ok"), ("validate", "failed")]


def test_workflow_marks_a_task_failed_when_a_step_keeps_raising(workflow, stack):
    # GIVEN the process step fails for this task (injected; a transient error that never clears)
    stack.set_failure_rules([{"at": "process", "match": "task-173"}])
    item = queued_task(stack)

    end, _ = workflow.run(execution_input(item))

    # THEN the Catch records FAILED with the error naming the step, and nothing the
    # steps computed is written (the invocation failed as a whole)
    assert end == "TaskFailed"
    failed = stack.get_item("task-173")
    assert failed["status"] == "FAILED"
    assert failed["error"]["code"] == "InjectedFailure"
    assert "failure injected at step 'process'" in failed["error"]["message"]
    assert [h["step"] for h in failed["history"]][-2:] == ["started", "failed"]
    assert not {"result", "priorityScore"} & set(failed)


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED", "PROCESSING"])
def test_workflow_for_a_task_past_queued_does_nothing(workflow, stack, status):
    # GIVEN a redelivered/duplicate execution for a task already taken further
    item = queued_task(stack)
    stack.put_item({**item, "status": status})
    before = stack.get_item("task-173")

    end, _ = workflow.run(execution_input(item))

    # THEN it ends quietly and the task never moves backwards
    assert end == "NothingToDo"
    assert stack.get_item("task-173") == before


@pytest.mark.parametrize("record_state", ["MarkCompleted", "MarkRejected"])
def test_recording_the_steps_on_a_task_that_left_processing_changes_nothing(
        workflow, workflow_steps, lambda_context, stack, record_state):
    # GIVEN a task another writer already finished, and a late result of its steps
    item = queued_task(stack)
    stack.put_item({**item, "status": "COMPLETED"})
    before = stack.get_item("task-173")
    data = {**execution_input(item), "last": workflow_steps.handler({"task": execution_input(item)["task"]},
                                                                    lambda_context),
            "error": {"Error": "BusinessRuleFailed", "Cause": "late"}}

    # WHEN the state machine tries to record it
    end, _ = workflow.run(data, start=record_state)

    # THEN the conditional write refuses, the execution ends without failing it
    # twice, and the item is exactly as it was
    assert end in {"NothingToDo", "TaskFailed"}
    assert stack.get_item("task-173") == before


def test_workflow_for_a_missing_task_creates_nothing(workflow, stack):
    end, _ = workflow.run(execution_input(TaskInput.parse({"taskID": "task-ghost"}).new_item(CREATED)))

    assert end == "NothingToDo"
    assert stack.get_item("task-ghost") is None


def dead_lettered_task(stack, task_id: str = "task-173") -> dict:
    """A task whose event the processor gave up on (as it marks it)."""
    item = queued_task(stack, task_id)
    item["status"] = "DEAD_LETTERED"
    item["error"] = {"code": "InjectedFailure", "message": "boom", "at": CREATED}
    item["history"].append({"step": "dead-lettered", "outcome": "failed", "at": CREATED, "detail": "boom"})
    stack.put_item(item)
    return item


def test_a_redriven_dead_lettered_task_records_the_redrive_and_completes(workflow, stack):
    # GIVEN a dead-lettered task whose event came back from the DLQ
    item = dead_lettered_task(stack)

    # WHEN its (first) execution runs
    end, _ = workflow.run(execution_input(item))

    # THEN the redrive is on its history, the error is gone, and it runs to COMPLETED
    assert end == "MarkCompleted"
    assert "MarkRedriven" in workflow.visited
    done = stack.get_item("task-173")
    assert done["status"] == "COMPLETED" and "error" not in done
    assert [h["step"] for h in done["history"]] == [
        "created", "queued", "dead-lettered", "redriven", "started", "validate", "enrich", "process"]


def failed_task(stack, task_id: str = "task-173") -> dict:
    item = queued_task(stack, task_id)
    item["status"] = "FAILED"
    item["error"] = {"code": "InjectedFailure", "message": "boom", "at": CREATED}
    item["history"] += [{"step": "started", "outcome": "ok", "at": CREATED, "detail": "task-173-first"},
                        {"step": "failed", "outcome": "failed", "at": CREATED, "detail": "InjectedFailure"}]
    stack.put_item(item)
    return item


def test_a_retried_failed_task_records_the_retry_and_completes(workflow, stack):
    # GIVEN a FAILED task and `tmctl task retry`'s input (the original plus retry.of)
    item = failed_task(stack)

    end, _ = workflow.run({**execution_input(item), "retry": {"of": "task-173-first", "attempt": 1}})

    assert end == "MarkCompleted"
    done = stack.get_item("task-173")
    assert done["status"] == "COMPLETED" and "error" not in done
    steps = [(h["step"], h.get("detail")) for h in done["history"]]
    assert steps[-5:-3] == [("retried", "task-173-first"), ("started", "task-173")]
    assert [s for s, _ in steps[-3:]] == ["validate", "enrich", "process"]


def test_a_failed_task_is_never_restarted_without_a_retry(workflow, stack):
    # A late duplicate event for a FAILED task must not bring it back to life.
    item = failed_task(stack)
    before = stack.get_item("task-173")

    end, _ = workflow.run(execution_input(item))

    assert end == "NothingToDo"
    assert stack.get_item("task-173") == before


def test_a_retry_only_resumes_a_failed_task(workflow, stack):
    # `retry` on a task that is not FAILED (here: dead-lettered) changes nothing.
    item = dead_lettered_task(stack)
    before = stack.get_item("task-173")

    end, _ = workflow.run({**execution_input(item), "retry": {"of": "x", "attempt": 1}})

    assert end == "NothingToDo"
    assert stack.get_item("task-173") == before
