"""Function logs offline: which functions a name picks, filter patterns, the
exact FilterLogEvents requests (Stubber), interleaving by time, follow mode
printing each line once, and `tmctl logs` through CliRunner."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from tests.unit.conftest import stubbed
from tmctl.cli.app import app
from tmctl.cli.context import State
from tmctl.core.errors import ExitCode, UsageError
from tmctl.core.logs import (
    LogFollower,
    filter_pattern,
    find_log_events,
    follow,
    function_labels,
    resolve_functions,
)
from tmctl.core.stack import StackInfo

pytestmark = pytest.mark.unit

FUNCTIONS = {"TaskApi": "taskmanager-dev-task-api", "EventProcessor": "taskmanager-dev-event-processor",
             "WorkflowSteps": "taskmanager-dev-workflow-steps"}
API, PROC, STEPS = (f"/aws/lambda/{FUNCTIONS[k]}" for k in ("TaskApi", "EventProcessor", "WorkflowSteps"))
T0_MS = 1_795_689_940_000
CLI_ENV = {"TMCTL_ENDPOINT_URL": "http://127.0.0.1:9", "TMCTL_LOCAL": "", "NO_COLOR": "1", "COLUMNS": "200"}


def ev(ms: int, message: str, stream: str = "2026/11/26/[$LATEST]a5b6", event_id: str | None = None) -> dict:
    e = {"logStreamName": stream, "timestamp": T0_MS + ms, "message": message, "ingestionTime": T0_MS + ms + 3}
    if event_id:
        e["eventId"] = event_id
    return e


@pytest.fixture
def logs():
    with stubbed("logs") as pair:
        yield pair


# ------------------------------------------------------------------ names and patterns


def test_function_labels_follow_the_functions_own_suffixes():
    assert function_labels(FUNCTIONS) == {"event-processor": "taskmanager-dev-event-processor",
                                          "task-api": "taskmanager-dev-task-api",
                                          "workflow-steps": "taskmanager-dev-workflow-steps"}


@pytest.mark.parametrize("wanted", ["task-api", "TaskApi", "taskapi", "TASK-API", "taskmanager-dev-task-api"])
def test_one_function_by_label_logical_or_full_name(wanted):
    assert resolve_functions(FUNCTIONS, wanted) == {"task-api": "taskmanager-dev-task-api"}


def test_no_function_means_all_and_an_unknown_one_is_a_usage_error():
    assert len(resolve_functions(FUNCTIONS, None)) == 3
    with pytest.raises(UsageError, match="no function 'api'"):
        resolve_functions(FUNCTIONS, "api")


@pytest.mark.parametrize(("text", "pattern"), [
    (None, None), ("", None), ("  ", None),
    ("task-173", '"task-173"'),  # a bare taskID: one literal term on AWS
    ("ERROR", "ERROR"), ("task_173", "task_173"),
    ('"task-173"', '"task-173"'), ("ERROR -warm", "ERROR -warm"), ("-warm", "-warm"),
    ('{ $.taskID = "task-173" }', '{ $.taskID = "task-173" }'), ("[ip, user]", "[ip, user]"),
    ("?ERROR ?WARN", "?ERROR ?WARN"),
])
def test_filter_pattern_quotes_only_a_bare_term_that_needs_it(text, pattern):
    assert filter_pattern(text) == pattern


# ------------------------------------------------------------------ searching


def test_find_interleaves_groups_by_time_and_keeps_the_newest(logs):
    client, stub = logs
    since = dt.datetime.fromtimestamp(T0_MS / 1000, dt.UTC)
    stub.add_response("filter_log_events", {"events": [ev(10, "api 1"), ev(50, "api 2")], "nextToken": "n1"},
                      {"logGroupName": API, "filterPattern": '"task-173"', "startTime": T0_MS})
    stub.add_response("filter_log_events", {"events": [ev(90, "api 3")]},
                      {"logGroupName": API, "filterPattern": '"task-173"', "startTime": T0_MS, "nextToken": "n1"})
    stub.add_client_error("filter_log_events", "ResourceNotFoundException",  # never logged: no group yet
                          expected_params={"logGroupName": PROC, "filterPattern": '"task-173"', "startTime": T0_MS})
    stub.add_response("filter_log_events", {"events": [ev(20, "step 1"), ev(60, "step 2")]},
                      {"logGroupName": STEPS, "filterPattern": '"task-173"', "startTime": T0_MS})

    events = find_log_events(client, [API, PROC, STEPS], "task-173", since, 4)

    assert [e.message for e in events] == ["step 1", "api 2", "step 2", "api 3"]
    assert [e.function for e in events] == ["taskmanager-dev-workflow-steps", "taskmanager-dev-task-api",
                                            "taskmanager-dev-workflow-steps", "taskmanager-dev-task-api"]
    assert events[0].time == dt.datetime.fromtimestamp((T0_MS + 20) / 1000, dt.UTC)


def test_find_with_no_pattern_and_no_start_sends_neither(logs):
    client, stub = logs
    stub.add_response("filter_log_events", {"events": [ev(1, "x")]}, {"logGroupName": API})
    assert [e.message for e in find_log_events(client, [API], None, None, None)] == ["x"]


# ------------------------------------------------------------------ following


class ScriptedLogs:
    """FilterLogEvents answering from a growing list of lines per group, as a
    log store would: every line with a timestamp at or after startTime."""

    def __init__(self):
        self.lines: dict[str, list[dict]] = {API: [], STEPS: []}
        self.starts: list[int | None] = []

    def get_paginator(self, name):
        assert name == "filter_log_events"
        return self

    def paginate(self, logGroupName, startTime=None, filterPattern=None, **_):  # noqa: N803 (the API's names)
        self.starts.append(startTime)
        lines = [e for e in self.lines[logGroupName] if startTime is None or e["timestamp"] >= startTime]
        yield {"events": lines}


def test_follow_prints_each_line_once_including_late_arrivals():
    store = ScriptedLogs()
    store.lines[API] += [ev(0, "a0"), ev(100, "a1")]
    store.lines[STEPS] += [ev(50, "s0")]
    ticks = []

    def sleep(seconds):
        ticks.append(seconds)
        if len(ticks) == 1:
            store.lines[API].append(ev(200, "a2"))
            store.lines[STEPS].append(ev(90, "s-late"))  # ingested late, older than the newest line seen
        if len(ticks) == 3:
            store.lines[STEPS].append(ev(300, "s1"))

    stream = follow(store, [API, STEPS], None, T0_MS - 1000, limit=10, sleep=sleep, first_pause=0.5)
    messages = [e.message for e in itertools.islice(stream, 6)]

    assert messages == ["a0", "s0", "a1", "s-late", "a2", "s1"]
    assert ticks[:3] == [0.5, 0.5, 0.75]  # pauses grow while nothing new comes, and reset when it does
    assert store.starts[:2] == [T0_MS - 1000, T0_MS - 1000]  # the first read starts where asked
    # later reads go back a window before the newest line seen, not to the start
    assert store.starts[2:] and all(s == T0_MS + 100 - 10_000 for s in store.starts[2:4])


def test_the_first_batch_is_the_newest_lines_and_the_rest_are_not_repeated():
    store = ScriptedLogs()
    store.lines[API] += [ev(i * 10, f"a{i}") for i in range(5)]
    follower = LogFollower(store, [API, STEPS], None, T0_MS)

    assert [e.message for e in follower.poll(limit=2)] == ["a3", "a4"]
    assert follower.poll() == []
    store.lines[API].append(ev(60, "a6"))
    assert [e.message for e in follower.poll()] == ["a6"]


def test_lines_with_the_same_time_are_told_apart_by_event_id():
    store = ScriptedLogs()
    store.lines[API] += [ev(5, "same", event_id="1"), ev(5, "same", event_id="2")]
    follower = LogFollower(store, [API], None, T0_MS)
    assert len(follower.poll()) == 2 and follower.poll() == []


# ------------------------------------------------------------------ the command


@pytest.fixture
def offline_cli(monkeypatch, logs):
    clients = SimpleNamespace(client=lambda name: logs[0] if name == "logs" else None)
    info = StackInfo("taskmanager-dev", "CREATE_COMPLETE", {f"{k}FunctionName": v for k, v in FUNCTIONS.items()},
                     {}, "http://api.invalid")
    monkeypatch.setattr(State, "clients", lambda self, local=False: clients)
    monkeypatch.setattr(State, "stack", lambda self: info)
    return logs[1]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env=CLI_ENV)


def test_logs_of_one_function_as_json(offline_cli):
    offline_cli.add_response("filter_log_events", {"events": [ev(1, "START RequestId: r1\n"), ev(2, "step done")]},
                             {"logGroupName": STEPS, "filterPattern": '"task-173"', "startTime": ANY_START})

    result = invoke("logs", "workflow-steps", "--filter", "task-173", "--since", "2h", "-o", "json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(d["function"], d["message"]) for d in data] == [("workflow-steps", "START RequestId: r1"),
                                                            ("workflow-steps", "step done")]


def test_logs_on_a_terminal_prefix_each_line_with_its_function(offline_cli):
    offline_cli.add_response("filter_log_events", {"events": []}, {"logGroupName": PROC, "startTime": ANY_START})
    offline_cli.add_response("filter_log_events", {"events": [ev(5, "accepted [task-173]")]},
                             {"logGroupName": API, "startTime": ANY_START})
    offline_cli.add_response("filter_log_events", {"events": [ev(7, "step done")]},
                             {"logGroupName": STEPS, "startTime": ANY_START})

    result = invoke("logs", "-o", "table")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[1:] == ["task-api", "accepted", "[task-173]"]  # markup-like text printed as is
    assert lines[1].split()[1:] == ["workflow-steps", "step", "done"]


@pytest.mark.parametrize(("args", "code"), [
    (["logs", "--since", "whenever"], ExitCode.USAGE),
    (["logs", "no-such-function"], ExitCode.USAGE),
    (["logs", "--limit", "0"], ExitCode.USAGE),
])
def test_logs_usage_errors(offline_cli, args, code):
    result = invoke(*args)
    assert result.exit_code == code
    assert result.stdout == ""
    assert result.stderr.strip()


class _Any:
    def __eq__(self, other):
        return isinstance(other, int)


ANY_START = _Any()
