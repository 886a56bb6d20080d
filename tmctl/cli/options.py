"""Options more than one command takes, declared once (sqlite-utils'
`output_options` idea): the same name, help, bounds and choices everywhere, so
shell completion offers the choices and `--help` lists them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class Priority(StrEnum):
    """The API's priorities (the task contract's; tests/unit/test_options.py keeps them equal)."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"


class TaskStatus(StrEnum):
    """The task statuses (the task contract's; tests/unit/test_options.py keeps them equal)."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    DEAD_LETTERED = "DEAD_LETTERED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"


class FrontDoor(StrEnum):
    """The API's front door (tmctl.core.frontdoor.DOORS; tests/unit/test_options.py keeps them equal)."""

    http = "http"
    rest = "rest"


# Choices are case-insensitive (`--status failed` works) and listed by --help and completion.
def _choices(enum: type[StrEnum]) -> str:
    return "[" + "|".join(enum) + "]"  # as the API spells them (Click would show them lower-cased)


PriorityChoice = Annotated[Priority | None, typer.Option(
    "--priority", case_sensitive=False, metavar=_choices(Priority), help="The task's priority.")]
TaskStatusChoice = Annotated[TaskStatus | None, typer.Option(
    "--status", case_sensitive=False, metavar=_choices(TaskStatus), help="Only tasks in this status.")]
ExecutionStatusChoice = Annotated[ExecutionStatus | None, typer.Option(
    "--status", case_sensitive=False, metavar=_choices(ExecutionStatus), help="Only executions in this status.")]
FrontDoorChoice = Annotated[FrontDoor | None, typer.Option(
    "--front-door", case_sensitive=False, metavar=_choices(FrontDoor),
    help="The API's front door: http (HTTP API, API Gateway v2) or rest (REST API). Default: the stack's "
         "current one, else rest on an engine without API Gateway v2 (LocalStack's free plans), else http.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for CI and scripts).")]
Wait = Annotated[bool, typer.Option("--wait", help="Follow the task to COMPLETED or FAILED.")]
Timeout = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds --wait waits.")]
PageSize = Annotated[int, typer.Option("--limit", min=1, max=100, help="Page size (1-100).")]
Params = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="Template parameter override KEY=VALUE (repeatable).")]


def parse_params(param: list[str] | None) -> dict[str, str]:
    """`-p KEY=VALUE …` as a dict; a malformed one is a usage error."""
    from tmctl.core.errors import UsageError

    overrides = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r} is not KEY=VALUE", "e.g. --param LogRetentionDays=7")
        overrides[key] = value
    return overrides
