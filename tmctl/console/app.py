"""The console's web application: Starlette routes over `ConsoleSource`,
server-rendered Jinja2 pages, one small script (static/console.js) for the
live figures. Every request first passes `security.Guard`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tmctl.console import graph, live
from tmctl.console.security import CSRF_FIELD, Guard, csrf_token
from tmctl.console.source import TASK_STATUSES, ConsoleSource, choices
from tmctl.core.errors import NotFound, TmctlError, UsageError
from tmctl.core.executions import error_text
from tmctl.core.queues import age_text

log = logging.getLogger("tmctl.console")
HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["age"] = age_text
    env.filters["log_line"] = log_line
    env.globals["error_text"] = error_text
    # The stylesheet goes inside each page: a first paint waits for it, and as a separate request (every
    # response is no-store) it cost ~80 ms of a cold overview's ~250 (benchmarks/bench_console.py). Our own
    # file, read once; the CSP allows inline styles, scripts still only from /static.
    env.globals["stylesheet"] = Markup((STATIC / "console.css").read_text(encoding="utf-8"))  # noqa: S704
    return env


# What Powertools' Logger adds to every line: the same for each line of a function, so not shown per line.
LOG_BOILERPLATE = frozenset({"level", "location", "message", "timestamp", "service", "cold_start", "function_name",
                             "function_memory_size", "function_arn", "function_request_id", "xray_trace_id",
                             "sampling_rate"})


def log_line(message: str) -> dict:
    """A function's log line for the page: Powertools' JSON as level, message and its own keys; other text as is."""
    try:
        fields = json.loads(message)
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or "message" not in fields:
        return {"level": "", "message": message.rstrip(), "extra": ""}
    extra = {k: v for k, v in fields.items() if k not in LOG_BOILERPLATE}
    return {"level": str(fields.get("level", "")), "message": str(fields["message"]),
            "extra": json.dumps(extra, default=str, separators=(", ", ": ")) if extra else ""}


# The task's way through the pipeline, as the overview draws it: each stop's outcome from the item's own
# history (written by the Lambdas and the workflow), where its message is, and its newest execution.
STARTS = frozenset({"started", "redriven", "retried"})  # the workflow took it (after the processor)


def journey(task: dict | None, where: str, executions: list) -> list[dict]:
    """[{stop, label, outcome, detail}] for front door → queue → processor → workflow → result (+ DLQ when there).
    The outcome is the stop's colour; the detail, its words (the page shortens them, the tooltip has them all)."""
    history = (task or {}).get("history") or []
    steps = [h.get("step") for h in history]
    last_dead = max((i for i, s in enumerate(steps) if s == "dead-lettered"), default=-1)
    last_start = max((i for i, s in enumerate(steps) if s in STARTS), default=-1)
    newest = executions[0].execution if executions else None
    status = (task or {}).get("status")

    def stop(key, label, outcome, detail=""):
        return {"stop": key, "label": label, "outcome": outcome, "detail": detail}

    if task is None:
        return [stop("api", "Task API", "not_run", "no item")]
    stops = [stop("api", "Task API", "succeeded", "item stored")]
    if "queued" in steps:
        stops.append(stop("queue", "main queue", "succeeded", "event published"))
    else:
        stops.append(stop("queue", "main queue", "failed" if status else "not_run", "never published"))
    if last_dead > last_start:
        entry = history[last_dead]
        stops.append(stop("processor", "processor", "failed", entry.get("detail") or entry.get("reason") or ""))
    elif last_start >= 0 or newest is not None:
        stops.append(stop("processor", "processor", "succeeded", "workflow started"))
    else:
        stops.append(stop("processor", "processor", "running" if where in {"main queue", "in flight"} else "not_run",
                          where))
    if where == "DLQ" or last_dead >= 0:  # it went through the DLQ: still there (red), or redriven since
        waiting = where == "DLQ" or last_dead > last_start
        stops.append(stop("dlq", "DLQ", "failed" if waiting else "succeeded",
                          "waiting for a redrive" if waiting else "redriven"))
    if newest is None:
        stops.append(stop("workflow", "workflow", "not_run", "not run"))
    else:
        outcome = {"SUCCEEDED": "succeeded", "RUNNING": "running"}.get(newest.status, "failed")
        stops.append(stop("workflow", "workflow", outcome, newest.status))
    done = {"COMPLETED": "succeeded", "FAILED": "failed", "DEAD_LETTERED": "failed", "REJECTED": "failed"}
    stops.append(stop("result", status or "?", done.get(status or "", "running")))
    return stops


def _runs(events: list[dict] | None) -> dict:
    """Each state's run in this execution (tmctl.console.graph), {} without a history or when it cannot be read."""
    if not events:
        return {}
    try:
        return graph.path_from_history(events)
    except Exception:  # a history this reader does not know must not take the task's page with it
        log.exception("reading the execution's path failed")
        return {}


def drawing(definition: dict | None, events: list[dict] | None) -> Markup | None:
    """The state machine with this execution's path as SVG (tmctl.console.graph);
    None when there is no definition or the drawing fails (the page lists the states instead)."""
    if not definition:
        return None
    try:
        svg = graph.render_svg(definition, _runs(events) or None)
    except Exception:  # a drawing that fails must not take the task's page with it: the states as a list
        log.exception("drawing the state machine failed")
        return None
    return Markup(svg)  # noqa: S704 - SVG built by our own module, escaped there


def state_rows(definition: dict | None, steps: list | None, events: list[dict] | None = None) -> list[dict]:
    """Without the drawing: each state of the definition, its outcome as the drawing would colour it."""
    runs = _runs(events)
    by_name = {step.name: step for step in steps or []}  # the last visit wins
    return [{"name": name, "type": spec.get("Type", "?"),
             "outcome": runs[name].outcome if name in runs else "not_run", "step": by_name.get(name)}
            for name, spec in ((definition or {}).get("States") or {}).items()]


def create_app(source: ConsoleSource, *, token: str, port: int, hub: live.Hub | None = None) -> Any:
    """The console for one target and stage, guarded (security.Guard) for `port`."""
    env = _environment()
    csrf = csrf_token(token)
    hub = hub or live.Hub(lambda: source.overview().figures(), source.task_statuses, source.fingerprint)

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(request=request, csrf=csrf, csrf_field=CSRF_FIELD, source=source, writable=not source.read_only,
                       stage=source.target.stage, stack=source.stack.name, engine=source.engine)
        return HTMLResponse(env.get_template(name).render(**context), status_code=status_code)

    async def form(request: Request) -> dict[str, str]:
        data = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in data.items() if k != CSRF_FIELD}

    async def form_lists(request: Request) -> dict[str, list[str]]:
        return parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)

    # ------------------------------------------------------------ pages

    def overview(request: Request) -> Response:
        figures = hub.current_figures()  # the live poller looked under a second ago: no need to ask again
        if figures is None:
            figures = source.overview().figures()
        return page(request, "overview.html", figures=figures, statuses=TASK_STATUSES)

    def overview_json(request: Request) -> Response:
        return JSONResponse(source.overview().figures())

    def tasks(request: Request) -> Response:
        p = request.query_params
        status, q, before = p.get("status") or None, (p.get("q") or "").strip() or None, p.get("before") or None
        result = source.tasks(status=status, before=before, q=q)
        if q and len(result.items) == 1 and result.items[0]["taskID"] == q:
            return RedirectResponse(f"/tasks/{q}", status_code=303)
        return page(request, "tasks.html", result=result, status=status, q=q or "", before=before,
                    statuses=TASK_STATUSES)

    def task(request: Request) -> Response:
        view = source.task(request.path_params["task_id"])
        executions = [{"trace": e, "drawing": drawing(view.definition_of(e.execution.arn), e.events),
                       "states": state_rows(view.definition_of(e.execution.arn), e.steps, e.events)}
                      for e in view.trace.executions]
        blank = None if executions else drawing(view.definition, None)  # no run yet: the machine, uncoloured
        way = journey(view.trace.task, view.trace.location.where, view.trace.executions)
        return page(request, "task.html", view=view, t=view.trace, executions=executions, blank=blank, journey=way,
                    states=state_rows(view.definition, None) if not (executions or blank) else [])

    def queues(request: Request) -> Response:
        stats, pair, result, messages = source.queues()
        return page(request, "queues.html", stats=stats, pair=pair, peek=result, messages=messages)

    def executions(request: Request) -> Response:
        from tmctl.core.executions import STATUSES

        status = request.query_params.get("status") or None
        return page(request, "executions.html", executions=source.executions(status), status=status,
                    statuses=STATUSES)

    def look(request: Request) -> bool:
        """?look=1: receive to show the DLQ where nothing else shows it (AWS). A receive counts toward
        maxReceiveCount, so a read-only console never makes one."""
        return request.query_params.get("look") == "1" and not source.read_only

    def dlq(request: Request) -> Response:
        return page(request, "dlq.html", view=source.dlq(allow_receive=look(request)), preview=None, notices=[],
                    filter_expr="", selected=set())

    def dlq_export(request: Request) -> Response:
        view = source.dlq(allow_receive=look(request))
        lines = "".join(json.dumps(m["m"].to_dict(), default=str, ensure_ascii=False) + "\n" for m in view.messages)
        return Response(lines, media_type="application/x-ndjson", headers={
            "content-disposition": f'attachment; filename="{view.name}.jsonl"'})

    def config(request: Request) -> Response:
        return _config_page(request, None, None)

    def _config_page(request: Request, message: str | None, error: str | None, status_code: int = 200,
                     drafts: dict | None = None) -> Response:
        settings = source.settings()
        rows = [{"s": s, "choices": choices(s.allowed_pattern), "draft": (drafts or {}).get(s.key, s.value)}
                for s in settings]
        return page(request, "config.html", status_code, rows=rows, message=message, error=error,
                    path=source.config_path(), production=source.production)

    # ------------------------------------------------------------ actions (POST: passed the Guard's checks)

    async def task_redrive(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        report, notices = await _run(source.redrive, task_ids=frozenset({task_id}))
        return page(request, "result.html", title=f"redrive of {task_id}'s message", report=report, notices=notices,
                    back=f"/tasks/{task_id}", retry=None)

    async def task_retry(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        result = await _run(source.retry, task_id)
        return page(request, "result.html", title=f"retry of {task_id}", report=None, notices=[],
                    back=f"/tasks/{task_id}", retry=result)

    async def dlq_preview(request: Request) -> Response:
        data = await form_lists(request)
        filter_expr = (data.get("filter") or [""])[-1].strip()
        selected = set(data.get("task_id") or [])
        report, notices = await _run(source.redrive, filter_expr=filter_expr or None,
                                     task_ids=frozenset(selected) or None, dry_run=True)
        view = await _run(source.dlq)
        return page(request, "dlq.html", view=view, preview=report, notices=notices, filter_expr=filter_expr,
                    selected=selected)

    async def dlq_redrive(request: Request) -> Response:
        data = await form_lists(request)
        filter_expr = (data.get("filter") or [""])[-1].strip()
        selected = frozenset(data.get("task_id") or [])
        report, notices = await _run(source.redrive, filter_expr=filter_expr or None, task_ids=selected or None)
        return page(request, "result.html", title="DLQ redrive", report=report, notices=notices, back="/dlq",
                    retry=None)

    async def dlq_purge(request: Request) -> Response:
        data = await form(request)
        view = await _run(source.dlq)
        if data.get("confirm", "") != view.name:
            raise UsageError(f"purge not confirmed: type the queue's name, {view.name}, to purge it",
                             "nothing was purged")
        result = await _run(source.purge)
        return page(request, "result.html", title="DLQ purge", report=None, retry=None, back="/dlq",
                    notices=[f"purged {result.queue}: {result.messages_before} message(s) were there"])

    async def config_set(request: Request) -> Response:
        data = await form(request)
        key, value = data.get("key", ""), data.get("value", "")
        try:
            before, after = await _run(source.set_setting, key, value)
        except UsageError as err:  # refused before anything was written
            return await _run(_config_page, request, None, str(err), 400, {key: value})
        cache = source.config_cache_seconds()
        message = (f"{key}: {before.value} → {after.value} (version {after.version}); the functions follow "
                   + (f"within {cache} s" if cache else "once their cached value expires")
                   if before.version != after.version else f"{key} is already {after.value}; nothing written")
        return await _run(_config_page, request, message, None)

    async def events(request: Request) -> Response:
        task_id = request.query_params.get("task") or None
        return StreamingResponse(live.stream(hub, request.is_disconnected, task_id=task_id),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    # ------------------------------------------------------------ errors: the core's, as a page

    def tmctl_error(request: Request, err: Exception) -> Response:
        status = 404 if isinstance(err, NotFound) else 400 if isinstance(err, UsageError) else 502
        return page(request, "error.html", status, message=str(err))

    def aws_error(request: Request, err: Exception) -> Response:
        from tmctl.core.errors import from_client_error

        return tmctl_error(request, from_client_error(err, "AWS call failed"))

    from botocore.exceptions import BotoCoreError, ClientError

    routes = [
        Route("/", overview),
        Route("/api/overview", overview_json),
        Route("/tasks", tasks),
        Route("/tasks/{task_id}", task),
        Route("/tasks/{task_id}/redrive", task_redrive, methods=["POST"]),
        Route("/tasks/{task_id}/retry", task_retry, methods=["POST"]),
        Route("/queues", queues),
        Route("/executions", executions),
        Route("/dlq", dlq),
        Route("/dlq/export", dlq_export),
        Route("/dlq/preview", dlq_preview, methods=["POST"]),
        Route("/dlq/redrive", dlq_redrive, methods=["POST"]),
        Route("/dlq/purge", dlq_purge, methods=["POST"]),
        Route("/config", config),
        Route("/config", config_set, methods=["POST"]),
        Route("/events", events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={TmctlError: tmctl_error, ClientError: aws_error,
                                                       BotoCoreError: aws_error})
    app.state.hub = hub
    app.state.source = source
    return Guard(app, token=token, port=port, read_only=source.read_only, stage=source.target.stage)


async def _run(fn, *args, **kwargs):
    """A blocking core call off the event loop (the SSE streams keep flowing)."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)
