"""Workflow executions: find them (by ARN, name or taskID), read their history,
turn it into a step timeline, and retry a FAILED task's workflow.

The history shapes differ by engine: AWS records a Task state that calls a
Lambda ARN as LambdaFunctionScheduled/Started/Succeeded|Failed|TimedOut and a
service integration as TaskScheduled/Started/Succeeded|Failed; MiniStack
records both as TaskScheduled/TaskSucceeded|TaskFailed (no Started). A retried
state is one *StateEntered with several Scheduled…Failed attempts inside.
`timeline` reads all of them the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from tmctl.core.contract import Status
from tmctl.core.dynamo import get_task_item
from tmctl.core.errors import NotFound, TmctlError, UsageError, error_code, from_client_error
from tmctl.core.stack import StackInfo
from tmctl.core.verify import execution_arn
from tmctl.core.wait import poll

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
# The workflow's own terminal Fail state: every caught step failure ends here
# after MarkFailed has recorded the task FAILED (cloudformation/statemachine.asl.json).
TERMINAL_FAIL_STATE = "TaskFailed"
NAME_LIMIT = 80  # Step Functions execution names: 1-80 of [A-Za-z0-9_-]
_RETRY_SUFFIX = re.compile(r"-(?:retry|r)(\d+)$")
_STAMP_SUFFIX = re.compile(r"-([0-9a-z]+)$")  # <createdAt ms, base 36>
_NOT_THERE = frozenset({"ExecutionDoesNotExist", "InvalidArn", "InvalidName", "ResourceNotFound"})


# ------------------------------------------------------------------ time


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """`10m`, `2h`, `90s`, `1d`, `1w` before now, or an ISO 8601 time (UTC
    unless it carries an offset). Returns an aware UTC datetime."""
    now = now or dt.datetime.now(dt.UTC)
    value = text.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", value.lower())
    if m:
        return now - dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r} is neither a duration nor an ISO time",
                         "e.g. --since 10m, --since 2h, --since 2026-11-26T10:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _ts(value: Any) -> dt.datetime | None:
    """A timestamp as boto3 gives it (datetime), as JSON samples keep it (ISO text), or epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


# ------------------------------------------------------------------ executions


@dataclass
class Execution:
    arn: str
    name: str
    status: str
    start: dt.datetime | None
    stop: dt.datetime | None = None
    task_id: str | None = None
    input: dict | None = None  # only from DescribeExecution
    error: str | None = None
    cause: str | None = None
    redrive_status: str | None = None  # AWS: REDRIVABLE | NOT_REDRIVABLE | …
    redrive_count: int | None = None
    retry_of: str | None = None  # the execution this one retried (input.retry.of)
    retry_attempt: int | None = None

    @property
    def seconds(self) -> float | None:
        return _seconds(self.start, self.stop)

    def to_dict(self) -> dict:
        return {"name": self.name, "arn": self.arn, "status": self.status,
                "start": self.start.isoformat() if self.start else None,
                "stop": self.stop.isoformat() if self.stop else None, "seconds": self.seconds,
                "taskID": self.task_id, "error": self.error, "cause": self.cause,
                "redriveStatus": self.redrive_status, "redriveCount": self.redrive_count,
                "retryOf": self.retry_of, "retryAttempt": self.retry_attempt, "input": self.input}


def task_id_of_name(name: str) -> str | None:
    """The taskID in an execution name `<taskID>-<base36 stamp>[-retry<n>|-r<n>]`."""
    base = _RETRY_SUFFIX.sub("", name)
    stripped = _STAMP_SUFFIX.sub("", base)
    return stripped if stripped != base else None


def created_at_of_name(name: str) -> dt.datetime | None:
    """A first execution's task creation time, from its name (`<taskID>-<base36 ms>`); None for retries."""
    if _RETRY_SUFFIX.search(name):
        return None
    match = _STAMP_SUFFIX.search(name)
    if not match or not 6 <= len(match.group(1)) <= 10:  # ms since 1970 in base 36: 8-9 digits these decades
        return None
    try:
        return dt.datetime.fromtimestamp(int(match.group(1), 36) / 1000, tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _names_of_task(task_id: str) -> re.Pattern:
    return re.compile(re.escape(task_id) + r"-[0-9a-z]+(?:-(?:retry|r)\d+)?")


def execution_from(data: dict) -> Execution:
    """An Execution from a ListExecutions item or a DescribeExecution answer."""
    raw_input = data.get("input")
    parsed: dict | None = None
    if raw_input:
        try:
            value = json.loads(raw_input)
            parsed = value if isinstance(value, dict) else {"value": value}
        except ValueError:
            parsed = None
    retry = (parsed or {}).get("retry")
    retry = retry if isinstance(retry, dict) else {}
    task_id = (parsed or {}).get("taskID")
    return Execution(
        arn=data["executionArn"], name=data["name"], status=data["status"], start=_ts(data.get("startDate")),
        stop=_ts(data.get("stopDate")),
        task_id=task_id if isinstance(task_id, str) else task_id_of_name(data["name"]),
        input=parsed, error=data.get("error"), cause=data.get("cause"), redrive_status=data.get("redriveStatus"),
        redrive_count=data.get("redriveCount"), retry_of=retry.get("of"),
        retry_attempt=retry.get("attempt") if isinstance(retry.get("attempt"), int) else None)


def describe_execution(sfn, arn: str) -> Execution:
    try:
        return execution_from(sfn.describe_execution(executionArn=arn))
    except ClientError as err:
        if error_code(err) in _NOT_THERE:
            raise NotFound(f"no execution {arn}", "see `tmctl executions list`") from None
        raise from_client_error(err, f"describe execution {arn}") from err


def _try_describe(sfn, arn: str) -> Execution | None:
    try:
        return describe_execution(sfn, arn)
    except NotFound:
        return None


def execution_status(status: str | None) -> str | None:
    """An execution status filter, upper-cased; UsageError for anything else."""
    if status is None:
        return None
    if status.upper() not in STATUSES:
        raise UsageError(f"--status {status!r} is not an execution status", "one of " + ", ".join(STATUSES))
    return status.upper()


def list_executions(sfn, state_machine_arn: str, *, status: str | None = None, since: dt.datetime | None = None,
                    limit: int | None = 20, page_size: int | None = None) -> list[Execution]:
    """Newest first (ListExecutions' own order), stopping at `limit` or at the
    first execution started before `since`. `page_size` (maxResults) keeps a
    frequent small look cheap: without it an engine may send its whole list."""
    status = execution_status(status)
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn}
    if status:
        kwargs["statusFilter"] = status
    if page_size:
        kwargs["PaginationConfig"] = {"PageSize": page_size}
    found: list[Execution] = []
    for page in sfn.get_paginator("list_executions").paginate(**kwargs):
        for item in page.get("executions", []):
            ex = execution_from(item)
            if since is not None and ex.start is not None and ex.start < since:
                return found
            found.append(ex)
            if limit is not None and len(found) >= limit:
                return found
    return found


ENDED_BADLY = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def with_errors(sfn, executions: list[Execution], limit: int = 25) -> list[Execution]:
    """`executions` with the first `limit` that ended badly described for their error
    and cause (ListExecutions carries neither): one DescribeExecution each, 4 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    failed = [i for i, ex in enumerate(executions) if ex.status in ENDED_BADLY and ex.error is None][:limit]
    if not failed:
        return executions
    with ThreadPoolExecutor(max_workers=4) as pool:
        described = list(pool.map(lambda i: _try_describe(sfn, executions[i].arn), failed))
    out = list(executions)
    for i, ex in zip(failed, described, strict=True):
        if ex is not None:
            out[i] = ex
    return out


def find_executions(sfn, ddb, stack: StackInfo, ref: str) -> list[Execution]:
    """The executions `ref` names, newest first, each described (input, error):
    an execution ARN or name gives one; a taskID gives every execution recorded
    on the task's history (`started` entries: a retried task has several), else
    those whose name is `<taskID>-<stamp>[-retry<n>]`. NotFound when none."""
    ref = ref.strip()
    if not ref:
        raise UsageError("no execution given", "pass an execution ARN or name, or a taskID")
    if ref.startswith("arn:"):
        return [describe_execution(sfn, ref)]
    item = get_task_item(ddb, stack.table, ref)
    return _executions_of(sfn, stack, ref, item)


def _executions_of(sfn, stack: StackInfo, ref: str, item: dict | None) -> list[Execution]:
    if item:
        names = [h.get("detail") for h in reversed(item.get("history") or [])
                 if h.get("step") == "started" and h.get("detail")]
        found = [ex for name in dict.fromkeys(names)
                 if (ex := _try_describe(sfn, execution_arn(stack.state_machine_arn, name)))]
        if found:
            return _newest_first(found)
    if re.fullmatch(r"[A-Za-z0-9_-]{1,80}", ref):
        named = _try_describe(sfn, execution_arn(stack.state_machine_arn, ref))
        if named:
            return [named]
    pattern = _names_of_task(ref)
    matches = [ex for ex in list_executions(sfn, stack.state_machine_arn, limit=None) if pattern.fullmatch(ex.name)]
    if matches:
        return _newest_first([describe_execution(sfn, ex.arn) for ex in matches[:20]])
    raise NotFound(f"no execution found for {ref!r}" + (f" (task {ref} is {item.get('status')})" if item else ""),
                   "pass an execution ARN or name, or a taskID; see `tmctl executions list`")


def _newest_first(executions: Iterable[Execution]) -> list[Execution]:
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(executions, key=lambda e: e.start or epoch, reverse=True)


def state_machine_definition(sfn, state_machine_arn: str) -> dict:
    """The deployed workflow's ASL definition (DescribeStateMachine), parsed."""
    try:
        raw = sfn.describe_state_machine(stateMachineArn=state_machine_arn)["definition"]
    except ClientError as err:
        raise from_client_error(err, f"describe state machine {state_machine_arn}") from err
    return _definition(raw, state_machine_arn)


def execution_definition(sfn, execution_arn: str) -> dict:
    """The definition an execution ran (DescribeStateMachineForExecution): after a
    deploy or a `tmctl dev` swap, older executions keep the machine they ran on."""
    try:
        raw = sfn.describe_state_machine_for_execution(executionArn=execution_arn)["definition"]
    except ClientError as err:
        raise from_client_error(err, f"describe the state machine of {execution_arn}") from err
    return _definition(raw, execution_arn)


def _definition(raw: str, arn: str) -> dict:
    try:
        value = json.loads(raw)
    except ValueError:
        raise TmctlError(f"the definition of {arn} is not JSON") from None
    return value if isinstance(value, dict) else {}


def count_by_status(executions: Iterable[Execution]) -> dict[str, int]:
    """Executions per status, every status present (0 when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for ex in executions:
        counts[ex.status] = counts.get(ex.status, 0) + 1
    return counts


def get_history(sfn, arn: str) -> list[dict]:
    """Every history event, oldest first (all pages)."""
    try:
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
        return [event for page in pages for event in page.get("events", [])]
    except ClientError as err:
        if error_code(err) in _NOT_THERE:
            raise NotFound(f"no execution {arn}", "see `tmctl executions list`") from None
        raise from_client_error(err, f"history of {arn}") from err


# ------------------------------------------------------------------ timeline


@dataclass
class Attempt:
    """One try of a Task state's resource (a Retry makes several)."""

    number: int
    scheduled: dt.datetime
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    status: str = "RUNNING"  # SUCCEEDED | FAILED | TIMED_OUT | RUNNING
    resource: str | None = None
    result: str | None = None
    error: str | None = None
    cause: str | None = None

    @property
    def seconds(self) -> float | None:
        return _seconds(self.scheduled, self.ended)


@dataclass
class Step:
    """One state entered, with its timing and outcome."""

    name: str
    type: str  # Task, Choice, Pass, Fail, Succeed, Wait, Map, Parallel; Redrive for AWS's redrive marker
    entered: dt.datetime
    offset: float  # seconds after the execution started
    exited: dt.datetime | None = None
    status: str = "RUNNING"  # SUCCEEDED | FAILED | TIMED_OUT | ABORTED | RUNNING
    resource: str | None = None
    result: str | None = None
    error: str | None = None
    cause: str | None = None
    next: str | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return _seconds(self.entered, self.exited)

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)

    @property
    def error_text(self) -> str | None:
        return error_text(self.error, self.cause)

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "status": self.status, "offset": self.offset,
                "seconds": self.seconds, "entered": self.entered.isoformat(),
                "exited": self.exited.isoformat() if self.exited else None, "resource": self.resource,
                "result": self.result, "error": self.error, "cause": self.cause, "next": self.next,
                "attempts": [{"number": a.number, "status": a.status, "seconds": a.seconds,
                              "offset": round((a.scheduled - self.entered).total_seconds() + self.offset, 3),
                              "result": a.result, "error": a.error, "cause": a.cause} for a in self.attempts]}


_TASK_FAMILIES = ("LambdaFunction", "Activity", "Task")
_PHASES = {"Scheduled": "scheduled", "Started": "started", "Submitted": "started", "Succeeded": "SUCCEEDED",
           "Failed": "FAILED", "TimedOut": "TIMED_OUT", "ScheduleFailed": "FAILED", "StartFailed": "FAILED",
           "SubmitFailed": "FAILED"}
_EXECUTION_END = {"ExecutionSucceeded": "SUCCEEDED", "ExecutionFailed": "FAILED", "ExecutionTimedOut": "TIMED_OUT",
                  "ExecutionAborted": "ABORTED"}


def details_of(event: dict) -> dict:
    """The event's `<type>EventDetails` (or any *EventDetails it carries)."""
    key = event["type"][0].lower() + event["type"][1:] + "EventDetails"
    if isinstance(event.get(key), dict):
        return event[key]
    return next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})


def _task_phase(kind: str) -> str | None:
    for family in _TASK_FAMILIES:
        if kind.startswith(family) and not kind.startswith(family + "State"):
            return _PHASES.get(kind[len(family):])
    return None


def short_resource(details: dict) -> str | None:
    """`lambda:<function>` or `dynamodb:updateItem`, from either engine's shape."""
    resource, kind = details.get("resource"), details.get("resourceType")
    if not resource:
        return None
    if ":function:" in resource:
        return "lambda:" + resource.split(":function:", 1)[1].split(":", 1)[0]
    if resource.startswith("arn:aws:states:::"):
        return resource.removeprefix("arn:aws:states:::")
    if kind and not resource.startswith("arn:"):
        return f"{kind}:{resource}"
    return resource


def error_text(error: str | None, cause: str | None, width: int = 300) -> str | None:
    """`Error: message`, taking errorMessage out of a Lambda's JSON cause."""
    if not error and not cause:
        return None
    message = cause or ""
    try:
        parsed = json.loads(message) if message else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        message = str(parsed["errorMessage"])
    text = f"{error}: {message}" if error and message else (error or message)
    return text if len(text) <= width else text[: width - 1] + "…"


def summarize_output(output: Any, resource: str | None = None, width: int = 80) -> str | None:
    """A step result in a few words: a workflow step's `outcome: reason`, else short JSON."""
    if output is None:
        return resource
    try:
        value = json.loads(output) if isinstance(output, str) else output
    except ValueError:
        value = output
    if isinstance(value, dict) and "outcome" in value:
        reason = value.get("reason")
        return f"{value['outcome']}: {reason}" if reason else str(value["outcome"])
    if value in ({}, None, "", []):
        return resource
    text = json.dumps(value, separators=(",", ":"), default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def timeline(events: Iterable[dict]) -> list[Step]:
    """The steps of an execution from its history events (oldest first, as
    GetExecutionHistory returns them): each state entered, when (seconds after
    the start), how long, its attempts, and its result or error."""
    events = sorted(events, key=lambda e: int(e.get("id", 0)))
    steps: list[Step] = []
    start: dt.datetime | None = None
    current: Step | None = None
    for event in events:
        kind, at, details = event["type"], _ts(event["timestamp"]), details_of(event)
        if start is None:
            start = at
        if kind.endswith("StateEntered"):
            if current is not None and current.exited is None:  # no Exited event: closed by the next state
                current.exited = at
                if current.status == "RUNNING":
                    current.status = "SUCCEEDED"
            if steps and steps[-1].next is None:
                steps[-1].next = details.get("name")
                if steps[-1].type != "Task" and steps[-1].status == "SUCCEEDED" and steps[-1].result is None:
                    steps[-1].result = f"→ {details.get('name')}"
                elif steps[-1].status == "FAILED" and steps[-1].result is None:
                    steps[-1].result = f"caught → {details.get('name')}"
            current = Step(name=details.get("name", "?"), type=kind.removesuffix("StateEntered"), entered=at,
                           offset=round((at - start).total_seconds(), 3))
            steps.append(current)
        elif kind.endswith("StateExited") and current is not None:
            current.exited = at
            if current.status == "RUNNING":
                current.status = "SUCCEEDED"
        elif kind.endswith(("StateAborted", "StateFailed")) and current is not None:
            current.exited = current.exited or at
            current.status = "ABORTED" if kind.endswith("Aborted") else "FAILED"
        elif (phase := _task_phase(kind)) is not None and current is not None:
            _task_event(current, phase, at, details)
        elif kind == "ExecutionRedriven":
            current = None
            steps.append(Step(name="(redriven)", type="Redrive", entered=at,
                              offset=round((at - start).total_seconds(), 3), exited=at, status="SUCCEEDED",
                              result=f"redrive {details.get('redriveCount', '')}".strip()))
        elif kind in _EXECUTION_END and current is not None:
            if current.exited is None or current.type == "Fail":
                current.exited = current.exited or at
                if kind != "ExecutionSucceeded":
                    current.status = _EXECUTION_END[kind]
                    current.error = current.error or details.get("error")
                    current.cause = current.cause or details.get("cause")
            current = None
    return steps


def _task_event(step: Step, phase: str, at: dt.datetime, details: dict) -> None:
    if phase == "scheduled" or not step.attempts:
        step.attempts.append(Attempt(number=len(step.attempts) + 1, scheduled=at))
    attempt = step.attempts[-1]
    resource = short_resource(details)
    if resource:
        attempt.resource = step.resource = resource
    if phase == "scheduled":
        return
    if phase == "started":
        attempt.started = attempt.started or at
        return
    attempt.ended, attempt.status = at, phase
    if phase == "SUCCEEDED":
        attempt.result = summarize_output(details.get("output"), step.resource)
        step.result, step.status, step.error, step.cause = attempt.result, "RUNNING", None, None
    else:
        attempt.error, attempt.cause = details.get("error") or phase, details.get("cause")
        step.status, step.error, step.cause = "FAILED", attempt.error, attempt.cause


def last_state_entered(events: Iterable[dict]) -> str | None:
    """The name of the last state the execution entered (where it ended, if it ended)."""
    name = None
    for event in sorted(events, key=lambda e: int(e.get("id", 0))):
        if event["type"].endswith("StateEntered"):
            name = details_of(event).get("name")
    return name


@dataclass
class HistoryRow:
    id: int
    type: str
    timestamp: dt.datetime
    detail: str


def history_rows(events: Iterable[dict]) -> list[HistoryRow]:
    """Each raw event with its one-line gist (state name, resource, error, result)."""
    rows = []
    for event in events:
        details = details_of(event)
        parts = [details.get("name"), short_resource(details), error_text(details.get("error"), details.get("cause"))]
        if "output" in details and not details.get("name"):
            parts.append(summarize_output(details.get("output")))
        rows.append(HistoryRow(int(event.get("id", 0)), event["type"], _ts(event["timestamp"]),
                               "  ".join(p for p in parts if p)))
    return rows


def jsonable(value: Any) -> Any:
    """Raw API data (datetimes inside) as JSON-ready values."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


# ------------------------------------------------------------------ retry


def retry_name(original: str, attempt: int) -> str:
    """`<original>-retry<n>`, or `<original>-r<n>` when that would pass Step
    Functions' 80-character limit (cut further only if even that does not fit)."""
    for suffix in (f"-retry{attempt}", f"-r{attempt}"):
        if len(original) + len(suffix) <= NAME_LIMIT:
            return original + suffix
    return original[: NAME_LIMIT - len(suffix)] + suffix


def original_name(execution: Execution) -> str:
    """The first execution's name: a retry's own `-retry<n>`/`-r<n>` suffix removed."""
    if execution.retry_attempt is not None:
        for suffix in (f"-retry{execution.retry_attempt}", f"-r{execution.retry_attempt}"):
            if execution.name.endswith(suffix):
                return execution.name[: -len(suffix)]
    return execution.name


@dataclass
class RetryResult:
    task_id: str
    action: str  # "redrive" | "new-execution"
    reason: str
    previous: Execution
    execution_name: str
    execution_arn: str
    attempt: int | None = None
    execution_status: str | None = None
    task_status: str | None = None

    def to_dict(self) -> dict:
        return {"taskID": self.task_id, "action": self.action, "reason": self.reason,
                "previous": self.previous.name, "execution": self.execution_name, "executionArn": self.execution_arn,
                "attempt": self.attempt, "executionStatus": self.execution_status, "taskStatus": self.task_status}


_REFUSALS = {
    Status.COMPLETED: "it already completed; nothing to retry",
    Status.PROCESSING: "its workflow is still running; see `tmctl executions show {id}`",
    Status.PENDING: "its event was never published; see `tmctl task reconcile`",
    Status.QUEUED: "its event is still on the queue; wait, or see `tmctl task trace {id}`",
    Status.DEAD_LETTERED: "its event is in the DLQ; redrive it with `tmctl dlq redrive`",
}


def retry_task(sfn, ddb, stack: StackInfo, task_id: str, *, can_redrive: bool = False, settle: float = 10.0,
               sleep: Callable[[float], None] | None = None) -> RetryResult:
    """Run a FAILED task's workflow again.

    Redrive (AWS only: `can_redrive`) when its newest execution is redrivable
    and did not end in the workflow's own Fail state; otherwise start a new
    execution from that execution's input plus `retry: {of, attempt}` (the
    workflow then records `retried` and moves the task FAILED → PROCESSING),
    named `<original>-retry<n>`. Then wait up to `settle` seconds for the task
    to leave FAILED (or the execution to finish) and report both statuses."""
    item = get_task_item(ddb, stack.table, task_id)
    if item is None:
        raise NotFound(f"no task {task_id} in {stack.table}", "see `tmctl task list`")
    status = item.get("status")
    if status != Status.FAILED:
        raise UsageError(f"task {task_id} is {status}: only a FAILED task can be retried",
                         _REFUSALS.get(str(status), "see `tmctl task get {id}`").format(id=task_id))
    previous = _executions_of(sfn, stack, task_id, item)[0]

    result = None
    reason = "this backend has no RedriveExecution" if not can_redrive else ""
    if can_redrive:
        result, reason = _redrive(sfn, previous, task_id)
    if result is None:
        result = _start_retry(sfn, stack, task_id, previous, reason)

    def fetch() -> tuple[str | None, str | None]:
        task = get_task_item(ddb, stack.table, task_id) or {}
        ex = _try_describe(sfn, result.execution_arn)
        return task.get("status"), ex.status if ex else None

    result.task_status, result.execution_status = poll(
        fetch, lambda r: r[0] != Status.FAILED or r[1] not in (None, "RUNNING"), timeout=settle, interval=0.1,
        max_interval=0.5, sleep=sleep or time.sleep)
    return result


def _redrive(sfn, previous: Execution, task_id: str) -> tuple[RetryResult | None, str]:
    """Redrive where it would do something; else (None, why not)."""
    if previous.redrive_status not in (None, "REDRIVABLE"):
        return None, f"{previous.name} is {previous.redrive_status}"
    if previous.status not in ("FAILED", "TIMED_OUT", "ABORTED"):
        return None, f"{previous.name} is {previous.status}"
    # The workflow catches every step failure, marks the task FAILED (MarkFailed)
    # and then fails in its own Fail state. Redriving restarts from the state that
    # failed, i.e. that Fail state: it would only fail again and change nothing.
    # Only an execution that stopped anywhere else is worth redriving.
    last = last_state_entered(get_history(sfn, previous.arn))
    if last == TERMINAL_FAIL_STATE:
        return None, (f"{previous.name} ended in the workflow's Fail state {TERMINAL_FAIL_STATE}: "
                      "a redrive would re-run only that")
    try:
        sfn.redrive_execution(executionArn=previous.arn)
    except ClientError as err:
        from tmctl.core.backend import unsupported

        code = error_code(err)
        if unsupported(err) or code == "ExecutionNotRedrivable":
            return None, f"redrive refused ({code})"
        raise from_client_error(err, f"redrive {previous.name}") from err
    return RetryResult(task_id=task_id, action="redrive",
                       reason=f"{previous.name} stopped in {last or '?'}: redriven from there", previous=previous,
                       execution_name=previous.name, execution_arn=previous.arn), ""


def _start_retry(sfn, stack: StackInfo, task_id: str, previous: Execution, reason: str) -> RetryResult:
    if previous.input is None:
        raise TmctlError(f"execution {previous.name} has no readable input to start again from",
                         "start the task again with `tmctl task create` under a new taskID")
    base_input = {k: v for k, v in previous.input.items() if k != "retry"}
    base_input.setdefault("taskID", task_id)
    original = original_name(previous)
    attempt = (previous.retry_attempt or 0) + 1
    for _ in range(20):  # a name taken by an earlier retry (one that never ran the task): the next number
        name = retry_name(original, attempt)
        body = {**base_input, "retry": {"of": previous.name, "attempt": attempt}}
        try:
            started = sfn.start_execution(stateMachineArn=stack.state_machine_arn, name=name, input=json.dumps(body))
        except ClientError as err:
            if error_code(err) == "ExecutionAlreadyExists":
                attempt += 1
                continue
            raise from_client_error(err, f"start execution {name}") from err
        return RetryResult(task_id=task_id, action="new-execution", reason=reason, previous=previous,
                           execution_name=name, execution_arn=started["executionArn"], attempt=attempt)
    raise TmctlError(f"every retry name for {original} up to attempt {attempt} is taken",
                     f"see `tmctl executions list` for {task_id}")
