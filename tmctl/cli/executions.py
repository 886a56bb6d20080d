"""Workflow executions: list, show (with a step timeline), history (raw events)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from tmctl.cli import options as opt
from tmctl.cli import output as out
from tmctl.cli.context import state

app = typer.Typer(help="Step Functions executions of the task workflow, with a step timeline.\n\n"
                       "Example: tmctl --local executions show task-173",
                  no_args_is_help=True)

REF_HELP = "Execution ARN, execution name, or taskID (its newest execution)."


def when(value: dt.datetime | None) -> str:
    """Local wall-clock time, to the millisecond."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value else ""


def took(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.3f}s" if seconds < 1 else f"{seconds:.2f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"


@app.command("list")
def list_(
    ctx: typer.Context,
    status: opt.ExecutionStatusChoice = None,
    since: Annotated[str | None, typer.Option(
        help="Only executions started since: a duration (10m, 2h, 1d) or an ISO time (UTC unless it has an "
             "offset).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 20,
) -> None:
    """Executions of the workflow, newest first: name, status, start, duration, taskID.

    Example: tmctl --local executions list --status FAILED --since 1h
    """
    from tmctl.core.executions import execution_status, list_executions, parse_since

    st = state(ctx)
    status, cutoff = execution_status(status.value if status else None), parse_since(since) if since else None
    found = list_executions(st.clients().stepfunctions, st.stack().state_machine_arn, status=status, since=cutoff,
                            limit=limit)
    data = [{k: v for k, v in ex.to_dict().items() if k != "input"} for ex in found]
    out.emit(st, data, lambda: out.table(
        f"{len(found)} execution(s)" + (f" {status}" if status else "") + (f" since {since}" if since else ""),
        ["name", "status", "start", "duration", "taskID"],
        [(ex.name, out.styled(ex.status), when(ex.start), took(ex.seconds), ex.task_id) for ex in found]))


def _resolve(ctx: typer.Context, ref: str):
    from tmctl.core.executions import find_executions

    st = state(ctx)
    c = st.clients()
    return find_executions(c.stepfunctions, c.dynamodb, st.stack(), ref)


def _header_rows(ex, others) -> list[tuple]:
    from tmctl.core.executions import error_text

    rows = [("execution", ex.name), ("status", out.styled(ex.status)), ("started", when(ex.start)),
            ("stopped", when(ex.stop)), ("duration", took(ex.seconds)), ("taskID", ex.task_id or "")]
    if ex.retry_of:
        rows.append(("retry of", f"{ex.retry_of} (attempt {ex.retry_attempt})"))
    if ex.redrive_count:
        rows.append(("redriven", f"{ex.redrive_count} time(s)"))
    if ex.error or ex.cause:
        rows.append(("error", f"[red]{out.escape(error_text(ex.error, ex.cause) or '')}[/red]"))
    if others:
        rows.append(("other executions", ", ".join(f"{o.name} ({out.styled(o.status)})" for o in others)))
    rows.append(("arn", ex.arn))
    return rows


def timeline_rows(steps) -> list[tuple]:
    rows = []
    for i, step in enumerate(steps, 1):
        detail = (f"[red]{out.escape(step.error_text or '')}[/red]" + (f" ({out.escape(step.result)})"
                                                                         if step.result else "")
                  if step.error else out.escape(step.result or ""))
        attempts = f"{len(step.attempts)} attempts" if len(step.attempts) > 1 else ""
        rows.append((str(i), step.name, step.type, out.styled(step.status), f"+{step.offset:.3f}s",
                     took(step.seconds), attempts, detail))
        if len(step.attempts) > 1:
            for a in step.attempts:
                offset = step.offset + (a.scheduled - step.entered).total_seconds()
                what = (f"[red]{out.escape(a.error or '')}[/red]" if a.status != "SUCCEEDED"
                        else out.escape(a.result or ""))
                rows.append(("", f"  ↳ attempt {a.number}", "", out.styled(a.status), f"+{offset:.3f}s",
                             took(a.seconds), "", what))
    return rows


@app.command("show")
def show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help=REF_HELP)]) -> None:
    """One execution: status, times, input taskID, error, and a step timeline
    (each state entered, when, how long, its attempts and result or error).
    For a taskID: its newest execution (a retried task has several; the others are listed).

    Example: tmctl --local executions show task-173
    """
    from tmctl.core.executions import get_history, timeline

    st = state(ctx)
    found = _resolve(ctx, ref)
    ex, others = found[0], found[1:]
    steps = timeline(get_history(st.clients().stepfunctions, ex.arn))
    data = {"execution": ex.to_dict(), "steps": [s.to_dict() for s in steps],
            "others": [{k: v for k, v in o.to_dict().items() if k != "input"} for o in others]}
    out.emit(st, data, lambda: [
        out.table(None, ["", ""], _header_rows(ex, others)),
        out.table("steps", ["#", "state", "type", "status", "start", "took", "attempts", "result"],
                  timeline_rows(steps)),
    ])


@app.command("history")
def history(ctx: typer.Context, ref: Annotated[str, typer.Argument(help=REF_HELP)]) -> None:
    """The raw history events of one execution (id, type, time, details); all of
    each event's data with --output json.

    Example: tmctl --local executions history task-173 --output json
    """
    from tmctl.core.executions import get_history, history_rows, jsonable

    st = state(ctx)
    found = _resolve(ctx, ref)
    ex = found[0]
    if len(found) > 1:
        out.progress(f"{ex.name} (newest of {len(found)} executions: "
                     + ", ".join(o.name for o in found[1:]) + ")")
    events = get_history(st.clients().stepfunctions, ex.arn)
    rows = history_rows(events)
    out.emit(st, {"executionArn": ex.arn, "events": jsonable(events)}, lambda: out.table(
        f"{ex.name}: {out.styled(ex.status)}, {len(rows)} event(s)", ["id", "type", "time", "details"],
        [(r.id, r.type, when(r.timestamp), out.escape(r.detail)) for r in rows]))
