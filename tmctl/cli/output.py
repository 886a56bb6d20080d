"""Rendering: data on stdout (a Rich table on a TTY, JSON when piped or asked),
progress and errors on stderr. Rich is imported only when something renders."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, is_dataclass
from typing import Any

from tmctl.cli.context import State


def wants_json(st: State) -> bool:
    if st.output:
        return st.output == "json"
    return not sys.stdout.isatty()


def _default(value: Any):
    if is_dataclass(value):
        return asdict(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_default, sort_keys=False) + "\n")


def stdout_console():
    from rich.console import Console

    # soft_wrap: long lines (URLs, curl commands) are never broken by inserted newlines.
    return Console(highlight=False, soft_wrap=True)


_stderr = None


def stderr_console():
    global _stderr
    if _stderr is None:
        from rich.console import Console

        _stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    return _stderr


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]):
    from rich.table import Table

    columns = list(columns)
    t = Table(title=title, title_justify="left", header_style="bold", show_header=any(columns))
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    return t


def emit(st: State, data: Any, render: Callable[[], Any]) -> None:
    """JSON of `data`, or whatever `render()` builds (Rich renderables) on a TTY."""
    if wants_json(st):
        print_json(data)
        return
    console = stdout_console()
    parts = render()
    for part in parts if isinstance(parts, list) else [parts]:
        console.print(part)


def progress(message: str, *, detail: bool = False) -> None:
    stderr_console().print(f"[dim]·[/dim] {escape(message)}", highlight=False)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class Reporter:
    """Progress on stderr. On a terminal, routine lines (detail=True) fold into one
    live status line and only what matters stays on screen; piped (CI logs),
    every line is kept."""

    def __init__(self, title: str):
        self.title, self.count, self._status = title, 0, None

    def __enter__(self) -> Reporter:
        console = stderr_console()
        if console.is_terminal:
            self._status = console.status(self.title)
            self._status.__enter__()
        return self

    def __call__(self, message: str, *, detail: bool = False) -> None:
        self.count += detail
        if detail and self._status is not None:
            self._status.update(f"{self.title}: {escape(message)}")
        else:
            progress(message)

    def __exit__(self, *exc) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)


def status_style(status: str) -> str:
    return {"COMPLETED": "green", "SUCCEEDED": "green", "FAILED": "red", "TIMED_OUT": "red", "ABORTED": "red",
            "PROCESSING": "yellow", "RUNNING": "yellow", "QUEUED": "cyan", "PENDING": "cyan",
            "DEAD_LETTERED": "bold red"}.get(status, "")


def styled(status: str) -> str:
    style = status_style(status)
    return f"[{style}]{status}[/{style}]" if style else status


def confirm(question: str, *, yes: bool) -> None:
    """The one question before anything destructive. `--yes` skips it; with no
    terminal on stdin and no `--yes` there is nobody to ask: a usage error."""
    from tmctl.core.errors import Cancelled, ConfirmationRequired

    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfirmationRequired(question.rstrip("?"))
    import typer

    if not typer.confirm(question, default=False, err=True):
        raise Cancelled("cancelled; nothing was changed")
