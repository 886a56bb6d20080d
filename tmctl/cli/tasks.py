"""Tasks through the real HTTP API: create, get, list."""

from typing import Annotated

import typer

from tmctl.cli import output as out
from tmctl.cli.context import state

app = typer.Typer(help="Create and read tasks through the HTTP API.\n\n"
                       "Example: tmctl --local task create --title 'write docs' --wait",
                  no_args_is_help=True)


def _api(ctx: typer.Context):
    from tmctl.core.api import TaskApi

    return TaskApi(state(ctx).stack().api_url)


def _task_rows(task: dict) -> list:
    rows = [(k, out.styled(str(task[k])) if k == "status" else task[k])
            for k in ("taskID", "title", "description", "priority", "dueDate", "status", "createdAt", "updatedAt",
                      "priorityScore", "slaDeadline") if task.get(k) is not None]
    if task.get("error"):
        err = task["error"]
        rows.append(("error", f"[red]{err.get('code', '')}[/red] {err.get('message', '')}" if isinstance(err, dict)
                     else err))
    return rows


def _render_task(task: dict):
    parts = [out.table(None, ["field", "value"], _task_rows(task))]
    if task.get("history"):
        parts.append(out.table("history", ["step", "outcome", "at", "ms", "detail"], [
            (h.get("step"), out.styled("FAILED") if h.get("outcome") == "failed" else h.get("outcome"), h.get("at"),
             h.get("durationMs", ""), h.get("detail", "")) for h in task["history"]]))
    return parts


@app.command("create")
def create(
    ctx: typer.Context,
    task_id: Annotated[str | None, typer.Option("--id", help="taskID (generated if absent).")] = None,
    title: Annotated[str | None, typer.Option(help="Title (defaults to the taskID).")] = None,
    description: Annotated[str | None, typer.Option(help="Free text; #tags are extracted.")] = None,
    priority: Annotated[str | None, typer.Option(help="LOW, MEDIUM, HIGH or URGENT.")] = None,
    due: Annotated[str | None, typer.Option("--due", help="Due date, YYYY-MM-DD.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the task to COMPLETED or FAILED.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 60.0,
) -> None:
    """POST /tasks. With --wait, exit 1 unless the task ends COMPLETED.

    Example: tmctl --local task create --title 'write docs' --priority HIGH --wait
    """
    from tmctl.core.api import new_task_id, ok, wait_final

    api = _api(ctx)
    body = {"taskID": task_id or new_task_id(), "title": title, "description": description,
            "priority": priority, "dueDate": due}
    task = ok(api.create({k: v for k, v in body.items() if v is not None}))
    if wait:
        out.progress(f"{task['taskID']} {task['status']}; waiting for a final status")
        task = wait_final(api, task["taskID"], timeout=timeout)
    out.emit(state(ctx), task, lambda: _render_task(task))
    if wait and task.get("status") != "COMPLETED":
        from tmctl.core.errors import TmctlError

        why = (task.get("error") or {}).get("code") if task.get("status") == "FAILED" else f"still after {timeout:g}s"
        raise TmctlError(f"task {task['taskID']} is {task.get('status')}: {why}",
                         f"see `tmctl task get {task['taskID']}`")


@app.command("get")
def get(ctx: typer.Context, task_id: Annotated[str, typer.Argument(help="The taskID.")]) -> None:
    """GET /tasks/{taskID}: the task with its history.

    Example: tmctl --local task get task-173
    """
    from tmctl.core.api import ok

    task = ok(_api(ctx).get(task_id))
    out.emit(state(ctx), task, lambda: _render_task(task))


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="PENDING, QUEUED, PROCESSING, COMPLETED or FAILED.")] = None,
    limit: Annotated[int, typer.Option(help="Page size (1-100).")] = 20,
    next_token: Annotated[str | None, typer.Option("--next-token", help="Continue from a previous page.")] = None,
) -> None:
    """GET /tasks, optionally by status, one page at a time.

    Example: tmctl --local task list --status FAILED
    """
    from tmctl.core.api import ok

    page = ok(_api(ctx).list(status.upper() if status else None, limit, next_token))

    def render():
        parts = [out.table(None, ["taskID", "status", "priority", "title", "updatedAt"], [
            (t["taskID"], out.styled(t["status"]), t.get("priority"), t.get("title"), t.get("updatedAt"))
            for t in page.get("items", [])])]
        if page.get("nextToken"):
            parts.append(f"more: --next-token {page['nextToken']}")
        return parts

    out.emit(state(ctx), page, render)


@app.command("republish")
def republish(
    ctx: typer.Context,
    older_than: Annotated[float, typer.Option(help="Only tasks PENDING for at least this many seconds.")] = 60.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List them; publish nothing.")] = False,
) -> None:
    """Find tasks stuck PENDING (stored, event never published) and publish them
    again, by replaying each one's identical create through the API.

    Example: tmctl --local task republish --older-than 30 --dry-run
    """
    from tmctl.core.api import TaskApi
    from tmctl.core.reconcile import republish_pending
    from tmctl.core.stack import load_stack

    st = state(ctx)
    c = st.clients()
    info = load_stack(c.cloudformation, st.target())
    results = republish_pending(c.dynamodb, info.table, TaskApi(info.api_url), older_than=older_than,
                                dry_run=dry_run)
    out.emit(st, results, lambda: out.table(None, ["taskID", "createdAt", "result"], [
        (r["taskID"], r["createdAt"], r["result"]) for r in results]))
    if any(r["result"].startswith("error") for r in results):
        from tmctl.core.errors import TmctlError

        raise TmctlError("some tasks could not be republished", "see the table above and `tmctl status`")
