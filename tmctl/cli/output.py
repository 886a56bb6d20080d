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
    """The one progress reporter (`progress(message, detail=False)`), on stderr.
    On a terminal, routine lines (detail=True) fold into one live status line and
    only what matters stays on screen; piped (CI logs), or with `fold=False` (an
    AWS deploy, whose stack events are worth keeping), every line is kept."""

    def __init__(self, title: str, *, fold: bool = True):
        self.title, self.fold, self.count, self._status = title, fold, 0, None

    def __enter__(self) -> Reporter:
        console = stderr_console()
        if console.is_terminal and self.fold:
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


def require_answerable(what: str, yes: bool) -> None:
    """Refuse up front, before anything is built or created, when a question
    would have nobody to answer it (no terminal on stdin, no --yes)."""
    from tmctl.core.errors import ConfirmationRequired

    if not yes and not sys.stdin.isatty():
        raise ConfirmationRequired(what)


ACTION_STYLE = {"Add": "green", "Modify": "yellow", "Remove": "red", "Import": "cyan", "Dynamic": "magenta"}
REPLACEMENT_STYLE = {"True": "bold red", "Conditional": "yellow"}


def change_table(cs):
    """A change set as a table: action, logical id, type, replacement."""
    title = f"change set for {cs.stack_name} ({cs.change_type.lower()}): {len(cs.changes)} resource change(s)"

    def styled_as(value: str, styles: dict[str, str]) -> str:
        style = styles.get(value)
        return f"[{style}]{value}[/{style}]" if style else value

    return table(title, ["action", "logical id", "type", "replacement"],
                 [(styled_as(c.action, ACTION_STYLE), escape(c.logical_id), c.resource_type,
                   styled_as(c.replacement, REPLACEMENT_STYLE)) for c in cs.changes])


def confirm_change_set(cs, where: str, *, yes: bool, discard: Callable[[], None]) -> None:
    """The one change-set question (`up`, `pipeline up`): the table on stderr, then
    yes/no. Anything but yes (declined, no terminal, Ctrl-C) discards the change
    set, so nothing is left behind (nor the empty stack of a first deploy)."""
    if cs.empty:
        return
    try:
        stderr_console().print(change_table(cs))
        confirm(f"Execute change set {cs.name} on {where}?", yes=yes)
    except BaseException:
        discard()
        raise


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
