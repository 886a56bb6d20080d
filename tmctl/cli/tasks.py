"""Tasks through the real HTTP API: create, get, list."""

from typing import Annotated

import typer

from tmctl.cli import options as opt
from tmctl.cli import output as out
from tmctl.cli.context import state

app = typer.Typer(help="Create and read tasks through the HTTP API.\n\n"
                       "Example: tmctl --local task create --title 'write docs' --wait",
                  no_args_is_help=True)


def _api(ctx: typer.Context):
    from tmctl.core.api import task_api

    st = state(ctx)
    return task_api(st.stack(), st.clients().session)  # SigV4-signed when the stack's ApiAuth is AWS_IAM


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
    priority: opt.PriorityChoice = None,
    due: Annotated[str | None, typer.Option("--due", help="Due date, YYYY-MM-DD.")] = None,
    wait: opt.Wait = False,
    timeout: opt.Timeout = 60.0,
) -> None:
    """POST /tasks. With --wait, exit 1 unless the task ends COMPLETED.

    Example: tmctl --local task create --title 'write docs' --priority HIGH --wait
    """
    from tmctl.core.api import new_task_id, ok, wait_final

    api = _api(ctx)
    body = {"taskID": task_id or new_task_id(), "title": title, "description": description,
            "priority": priority.value if priority else None, "dueDate": due}
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
    status: opt.TaskStatusChoice = None,
    limit: opt.PageSize = 20,
    next_token: Annotated[str | None, typer.Option("--next-token", help="Continue from a previous page.")] = None,
) -> None:
    """GET /tasks, optionally by status, one page at a time.

    Example: tmctl --local task list --status FAILED
    """
    from tmctl.core.api import ok

    page = ok(_api(ctx).list(status.value if status else None, limit, next_token))

    def render():
        parts = [out.table(None, ["taskID", "status", "priority", "title", "updatedAt"], [
            (t["taskID"], out.styled(t["status"]), t.get("priority"), t.get("title"), t.get("updatedAt"))
            for t in page.get("items", [])])]
        if page.get("nextToken"):
            parts.append(f"more: --next-token {page['nextToken']}")
        return parts

    out.emit(state(ctx), page, render)


@app.command("trace")
def trace(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="The taskID.")],
    log_lines: Annotated[int, typer.Option("--log-lines", help="Newest log lines to show (0: none).")] = 30,
) -> None:
    """One task end to end on one screen: its item and history, where its message
    is now (queue, in flight, DLQ, consumed), its workflow executions with each
    step's timing and errors, and the log lines each function wrote about it.
    Nothing is received or consumed.

    Example: tmctl task trace task-173
    """
    from tmctl.core.trace import trace_task

    st = state(ctx)
    c = st.clients()
    result = trace_task(ddb=c.dynamodb, sqs=c.sqs, sfn=c.stepfunctions, logs=c.client("logs"),
                        backend=st.backend(), stack=st.stack(), task_id=task_id, log_limit=log_lines or None)
    if not log_lines:
        result.logs = []
    out.emit(st, result.to_dict(), lambda: _render_trace(result))


def _render_trace(t):
    from tmctl.cli.executions import timeline_rows, took

    parts = _render_task(t.task) if t.task else [f"[yellow]no task item for {out.escape(t.task_id)}[/yellow]"]
    where = t.location.where
    colour = "red" if where == "DLQ" else "yellow" if where in {"unknown", "never published"} else "green"
    parts.append(f"[bold]message[/bold]  [{colour}]{where}[/{colour}]: {out.escape(t.location.detail)}")
    for e in t.executions:
        ex = e.execution
        parts.append(out.table(f"execution {ex.name}: {out.styled(ex.status)} "
                               f"{took((ex.stop - ex.start).total_seconds()) if ex.stop and ex.start else ''}",
                               ["#", "state", "type", "status", "at", "took", "tries", "result / error"],
                               timeline_rows(e.steps)))
    if not t.executions:
        parts.append("[bold]executions[/bold]  none")
    if t.logs:
        prefix = t.stack_name + "-"
        parts.append(out.table(f"log lines mentioning {out.escape(t.task_id)}", ["time", "function", "message"], [
            (ev.time.strftime("%H:%M:%S.%f")[:-3], ev.function.removeprefix(prefix),
             out.escape(_log_summary(ev.message))) for ev in t.logs]))
    if t.next_step:
        parts.append(f"[bold yellow]next[/bold yellow]  {out.escape(t.next_step)}")
    return parts


# Powertools' standard keys: the same on every line, so left out of a one-line summary.
_LOG_BOILERPLATE = frozenset({"level", "message", "timestamp", "service", "cold_start", "location",
                              "function_name", "function_memory_size", "function_arn", "function_request_id",
                              "xray_trace_id", "sampling_rate", "taskID"})


def _log_summary(message: str, width: int = 200) -> str:
    """A structured (JSON) log line as `LEVEL message key=value …`; anything else as is."""
    import json

    text = message.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:width]
    if not isinstance(data, dict):
        return text[:width]
    extra = " ".join(f"{k}={v}" for k, v in data.items() if k not in _LOG_BOILERPLATE)
    return f"{data.get('level', '')} {data.get('message', '')} {extra}".strip()[:width]


@app.command("reconcile")
def reconcile(
    ctx: typer.Context,
    older_than: Annotated[float, typer.Option(
        help="PENDING tasks (event never published) at least this many seconds old.")] = 60.0,
    queued_after: Annotated[float | None, typer.Option(
        help="QUEUED tasks untouched this long with no execution and no message "
             "(default: the queue's delivery window, visibility timeout x max receives).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List them; publish nothing.")] = False,
) -> None:
    """Find stuck tasks and publish them again: PENDING ones (stored, event never
    published) by replaying their identical create through the API; QUEUED ones
    long past the queue's delivery window with no execution and no message (the
    event was lost, e.g. purged) by sending their event again. A task can never
    get a second workflow: the execution name is derived from the task. And tasks
    whose workflow an emulator restart ended (States.ServiceRestart): run again as
    labelled executions, <name>-retry<n>.

    Example: tmctl task reconcile --dry-run
    """
    from tmctl.core.api import task_api
    from tmctl.core.reconcile import delivery_window, task_ids_in_queues
    from tmctl.core.reconcile import reconcile as run_reconcile

    st = state(ctx)
    c, info = st.clients(), st.stack()
    window = queued_after if queued_after is not None else delivery_window(c.sqs, info.queue_url)
    results = run_reconcile(c.dynamodb, c.sqs, c.stepfunctions, task_api(info, c.session), info,
                            older_than=older_than, queued_after=window,
                            task_ids_in_queues=task_ids_in_queues(st.backend(), info), dry_run=dry_run)
    from tmctl.core.reconcile import SERVICE_RESTART, StuckTask, rerun_service_restarts

    # Workflows an emulator restart ended (States.ServiceRestart): run again as labelled executions.
    results += [StuckTask(t.taskID, t.status, "", t.stoppedAt, f"{SERVICE_RESTART} ({t.execution})", t.result)
                for t in rerun_service_restarts(c.stepfunctions, c.dynamodb, info, dry_run=dry_run)]
    out.emit(st, results, lambda: out.table(
        f"{len(results)} stuck task(s)" + (" (dry run)" if dry_run else ""),
        ["taskID", "status", "createdAt", "why", "result"],
        [(r.taskID, out.styled(r.status), r.createdAt, r.reason, r.result) for r in results]))
    if any(r.result.startswith("error") for r in results):
        from tmctl.core.errors import TmctlError

        raise TmctlError("some tasks could not be republished", "see the table above and `tmctl status`")


@app.command("retry")
def retry(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="The taskID of a FAILED task.")],
    wait: opt.Wait = False,
    timeout: opt.Timeout = 60.0,
) -> None:
    """Run a FAILED task's workflow again. On AWS a redrivable execution that did
    not end in the workflow's own Fail state is redriven; otherwise a new execution
    starts from the original input, named <original>-retry<n>, and the workflow
    records `retried` on the task. Refused for a task that is not FAILED.

    Example: tmctl --local task retry boom-42 --wait
    """
    from tmctl.core.executions import retry_task

    st = state(ctx)
    c = st.clients()
    result = retry_task(c.stepfunctions, c.dynamodb, st.stack(), task_id,
                        can_redrive=st.backend().has_redrive_execution)
    verb = "redrove" if result.action == "redrive" else "started"
    out.progress(f"{verb} {result.execution_name} (after {result.previous.name}"
                 + (f"; {result.reason}" if result.reason else "") + ")")
    data = {**result.to_dict(), "task": None}
    task = None
    if wait:
        from tmctl.core.api import wait_final

        out.progress(f"{task_id} {result.task_status}; waiting for a final status")
        from tmctl.core.executions import describe_execution

        task = wait_final(_api(ctx), task_id, timeout=timeout)
        result.task_status = task.get("status")
        result.execution_status = describe_execution(c.stepfunctions, result.execution_arn).status
        data = {**result.to_dict(), "task": task}

    def render():
        parts = [out.table(None, ["", ""], [
            ("task", task_id), ("status", out.styled(str(data["taskStatus"]))),
            ("action", result.action), ("execution", result.execution_name),
            ("execution status", out.styled(str(result.execution_status))),
            ("previous", result.previous.name), ("why", result.reason)])]
        if task is not None:
            parts += _render_task(task)[1:]  # its history: `retried`, then the new run's steps
        return parts

    out.emit(st, data, render)
    if wait and data["taskStatus"] != "COMPLETED":
        from tmctl.core.errors import TmctlError

        raise TmctlError(f"task {task_id} is {data['taskStatus']} after the retry",
                         f"see `tmctl executions show {result.execution_name}`")
