"""tmctl task trace: where a task's event is and what to do about it (pure
logic), the one-line log summary, and global options after the subcommand."""

from __future__ import annotations

import pytest

from tmctl.cli.app import hoist_global_options
from tmctl.cli.tasks import _log_summary
from tmctl.core.queues import PeekedMessage
from tmctl.core.trace import locate, next_step

pytestmark = pytest.mark.unit


def message(visible: bool | None = True, receives: int = 1) -> PeekedMessage:
    return PeekedMessage("url", "m-1", "{}", None, {}, {}, receives, 0.0, "t-1", visible)


@pytest.mark.parametrize(("task", "in_queue", "in_dlq", "executions", "where"), [
    ({"status": "DEAD_LETTERED"}, [], [message(receives=3)], [], "DLQ"),
    ({"status": "QUEUED"}, [message(visible=True)], [], [], "main queue"),
    ({"status": "QUEUED"}, [message(visible=False)], [], [], "in flight"),
    ({"status": "COMPLETED"}, [], [], ["ex"], "consumed"),
    ({"status": "PROCESSING"}, [], [], [], "consumed"),
    ({"status": "PENDING"}, [], [], [], "never published"),
    ({"status": "QUEUED"}, [], [], [], "unknown"),  # in neither queue, no workflow: lost
    ({"status": "DEAD_LETTERED"}, None, None, [], "DLQ"),  # AWS: not peeked, the status says it
    ({"status": "QUEUED"}, None, None, [], "main queue"),
    (None, [], [], [], "unknown"),
])
def test_locate_says_where_the_event_is(task, in_queue, in_dlq, executions, where):
    assert locate(task, in_queue, in_dlq, executions).where == where


def test_a_dead_lettered_task_whose_message_is_gone_is_not_said_to_be_in_the_dlq():
    loc = locate({"status": "DEAD_LETTERED"}, [], [], [])
    assert loc.where == "unknown" and "not in the DLQ" in loc.detail


@pytest.mark.parametrize(("status", "hint"), [
    ("DEAD_LETTERED", "tmctl dlq redrive --task-id t-1"),
    ("FAILED", "tmctl task retry t-1"),
    ("PENDING", "tmctl task reconcile"),
])
def test_next_step_names_the_command_that_fixes_it(status, hint):
    task = {"status": status, "error": {"code": "Boom", "message": "it broke"}}
    step = next_step("t-1", task, locate(task, [], [], []))
    assert hint in step
    assert status == "PENDING" or "Boom: it broke" in step


def test_a_completed_task_needs_nothing():
    task = {"status": "COMPLETED"}
    assert next_step("t-1", task, locate(task, [], [], ["ex"])) is None


def test_structured_log_lines_are_summarised_and_others_kept():
    line = ('{"level":"WARNING","location":"record_handler:9","message":"record failed","timestamp":"x",'
            '"service":"event-processor","cold_start":false,"function_name":"f","taskID":"t-1","receiveCount":2}')
    assert _log_summary(line) == "WARNING record failed receiveCount=2"
    assert _log_summary("START RequestId: abc\n") == "START RequestId: abc"
    assert _log_summary("[1, 2]") == "[1, 2]"


OPTIONS = {"--output": True, "-o": True, "--stage": True, "--local": False, "--debug": False}


@pytest.mark.parametrize(("argv", "expected"), [
    (["task", "list", "--output", "json"], ["--output", "json", "task", "list"]),
    (["task", "get", "x", "-o", "json", "--local"], ["-o", "json", "--local", "task", "get", "x"]),
    (["--stage", "qa", "status"], ["--stage", "qa", "status"]),
    (["task", "list", "--stage=qa"], ["--stage=qa", "task", "list"]),
    # a subcommand's own options stay; nothing after `--` is touched
    (["task", "create", "--title", "t", "--", "--output", "json"],
     ["task", "create", "--title", "t", "--", "--output", "json"]),
])
def test_global_options_after_the_subcommand_move_to_the_front(argv, expected):
    assert hoist_global_options(argv, OPTIONS) == expected
