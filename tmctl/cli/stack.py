"""Stack lifecycle: up, diff, down, status, verify.

On AWS, `up` shows the change set and asks before executing it, and `down`
asks for the stack name to be typed; `--yes` skips either question, and with
no terminal on stdin and no `--yes` they refuse before changing anything.
On an emulator (`--local`) neither asks: it is the dev loop."""

from typing import Annotated

import typer

from tmctl.cli import options as opt
from tmctl.cli import output as out
from tmctl.cli.context import state


def up(
    ctx: typer.Context,
    param: opt.Params = None,
    front_door: opt.FrontDoorChoice = None,
    no_warm: Annotated[bool, typer.Option("--no-warm", help="Skip warming the functions.")] = False,
    yes: opt.Yes = False,
) -> None:
    """Start (or reuse) the emulator with --local, package the Lambdas, deploy the stack
    by change set, and print its outputs. Re-running with nothing changed changes nothing.

    On AWS the change set is shown as a table and executed only once you say yes
    (--yes skips the question; without a terminal, --yes is required), and the
    stack events stream while it deploys.

    Example: tmctl up --local    (AWS: tmctl up --stage prod --profile work --yes)
    """
    from tmctl.core.local import emulator
    from tmctl.core.lock import deploy_lock
    from tmctl.core.up import apply, discard, prepare, report_changes

    st = state(ctx)
    overrides = opt.parse_params(param)
    target = st.target()
    if not target.local:
        out.require_answerable(f"deploying {target.stack_name} to AWS", yes)
    ctx.with_resource(deploy_lock(target, waiting=out.progress))  # held until the command ends: one `up` at a time
    booting = emulator.launch(target) if target.local else None  # boots while artifacts are packaged

    def ready() -> None:
        if booting is not None:
            engine, proc = booting.wait()
            started = f" (pid {proc.pid}, log {proc.log})" if proc else ""
            out.progress(f"{engine.name} {engine.version} on {target.endpoint_url}{started}")

    clients = st.clients()
    out.progress(f"deploying {target.describe()}")
    with out.Reporter(f"preparing {target.stack_name}") as report:
        plan = prepare(clients, target, overrides=overrides, front_door=_door(front_door), progress=report,
                       ready=ready)
        if target.local:  # on AWS the table below shows them
            report_changes(plan, report)
    cs = plan.change_set
    if not target.local:
        out.confirm_change_set(cs, target.describe(), yes=yes, discard=lambda: discard(clients, plan))
    # On AWS every stack event stays on screen (minutes of them); locally they fold.
    with out.Reporter(f"deploying {target.stack_name}", fold=target.local) as report:
        try:
            result = apply(clients, plan, warm=not no_warm, progress=report)
        except KeyboardInterrupt:
            if not target.local and not cs.empty:
                out.progress(f"stopped following; CloudFormation goes on deploying {target.stack_name}: "
                             "see `tmctl status`")
            raise
    if booting is not None:
        from tmctl.cli.local import after_start

        after_start(ctx, booting)  # an engine just started from saved state: what its stop interrupted
    if result.deploy.changed:
        out.progress(f"{len(result.uploaded)} artifact(s) uploaded, {len(result.deploy.changes)} resource "
                     f"change(s), {result.deploy.status} in {result.deploy.seconds:.1f}s")
    else:
        out.progress("no changes: stack is up to date")
    if result.concurrency_applied:
        out.progress("reserved concurrency set: " + ", ".join(result.concurrency_applied))
    if result.warmed:
        out.progress("warmed " + ", ".join(f"{n} ({s:.2f}s)" for n, s in result.warmed.items()))
    data = {"stack": result.stack.name, "status": result.stack.status, "changed": result.deploy.changed,
            "apiUrl": result.stack.api_url, "uploaded": result.uploaded, "outputs": result.stack.outputs,
            "seconds": {k: round(v, 3) for k, v in result.timings.items()}, "frontDoor": result.stack.front_door}
    out.emit(st, data, lambda: [
        out.table(f"{result.stack.name}: {result.stack.status}", ["output", "value"],
                  sorted(result.stack.outputs.items())),
        f"API ({result.stack.front_door_label}): {result.stack.api_url}",
        _try_it(result.stack, target),
    ])


def _try_it(stack, target) -> str:
    """A first request that works against this stage's front door."""
    body = "-H 'content-type: application/json' -d '{\"taskID\":\"task-173\"}'"
    auth = stack.outputs.get("ApiAuth", "NONE")
    if auth == "AWS_IAM":  # unsigned, it gets 403
        return (f"try: tmctl --stage {target.stage} task create --wait   (signed for you), or curl ≥ 7.75: "
                f"curl -s -X POST {stack.api_url}/tasks {body} --aws-sigv4 'aws:amz:{target.region}:execute-api' "
                "--user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\" -H \"x-amz-security-token: $AWS_SESSION_TOKEN\"")
    if auth == "JWT":
        return f"try: curl -s -X POST {stack.api_url}/tasks {body} -H \"Authorization: Bearer $TOKEN\""
    return f"try: curl -s -X POST {stack.api_url}/tasks {body}"


def _door(choice) -> str | None:
    return choice.value if choice is not None else None


def diff(
    ctx: typer.Context,
    param: opt.Params = None,
    front_door: opt.FrontDoorChoice = None,
) -> None:
    """Show what `tmctl up` would change, as a change set, without executing it:
    nothing is uploaded or created, and the change set is deleted afterwards.

    Example: tmctl diff --stage prod -p LogRetentionDays=30 --output json
    """
    from tmctl.core.local import emulator
    from tmctl.core.up import discard, prepare

    st = state(ctx)
    overrides = opt.parse_params(param)
    target = st.target()
    if target.local:
        emulator.require_engine(target)
    clients = st.clients()
    with out.Reporter(f"comparing with {target.stack_name}") as report:
        plan = prepare(clients, target, overrides=overrides, front_door=_door(front_door), dry_run=True,
                       progress=report)
    discard(clients, plan)
    cs = plan.change_set
    # frontDoor: what `up` would send (a template without the choice has the HTTP API only).
    data = {**cs.to_dict(), "frontDoor": plan.front_door or "http"}
    out.emit(st, data, lambda: out.change_table(cs) if cs.changes else
             f"no changes: {target.describe()} is up to date")


def down(
    ctx: typer.Context,
    stop_emulator: Annotated[bool, typer.Option("--stop-emulator", help="Also stop the embedded emulator.")] = False,
    yes: opt.Yes = False,
) -> None:
    """Delete the stack (the artifact bucket stays). On AWS you type the stack name
    to confirm (--yes skips it; without a terminal, --yes is required). On LocalStack,
    `down` of prod/production is refused where its CloudFormation deletes what
    DeletionPolicy: Retain keeps (the legacy engine): its tasks table would go.

    Example: tmctl down --local --stop-emulator
    """
    from tmctl.core.deploy import delete_stack
    from tmctl.core.local import emulator
    from tmctl.core.stack import describe_stack

    st = state(ctx)
    target = st.target()
    if target.local:
        engine = emulator.require_engine(target)
        _refuse_if_retain_is_ignored(st, target, engine)
    else:
        out.require_answerable(f"deleting {target.stack_name} on AWS", yes)
        if not yes and describe_stack(st.clients().cloudformation, target) is not None:
            _ask_for_the_name(target)
    with out.Reporter(f"deleting {target.stack_name}", fold=target.local) as report:
        deleted = delete_stack(st.clients().cloudformation, target, progress=report)
    out.progress(f"deleted {target.stack_name}" if deleted else f"{target.stack_name} did not exist")
    if stop_emulator and target.local:
        pid = emulator.stop(target)
        out.progress(f"stopped emulator pid {pid}" if pid else "no emulator started by tmctl on this port")


def _refuse_if_retain_is_ignored(st, target, engine) -> None:
    """A production-like stage on LocalStack: refused where DeletionPolicy is ignored (tmctl.core.retention)."""
    from tmctl.core import retention
    from tmctl.core.local import emulator
    from tmctl.core.stack import describe_stack

    if target.stage.lower() not in retention.PRODUCTION_STAGES or getattr(engine, "name", "") != "localstack":
        return
    c = st.clients()
    retention.guard_down(c.cloudformation, c.ssm, stage=target.stage, engine=engine.name, version=engine.version,
                         stack_exists=describe_stack(c.cloudformation, target) is not None,
                         cache=target.state_dir / retention.CACHE_FILE,
                         session=emulator.localstack_session(target.endpoint_url), progress=out.progress)


def _ask_for_the_name(target) -> None:
    from tmctl.core.errors import Cancelled

    out.stderr_console().print(
        f"[bold red]This deletes {out.escape(target.describe())}[/bold red]: its queues, functions, workflow and "
        "API, and its tasks table unless the stage retains it.")
    typed = typer.prompt(f"Type the stack name ({target.stack_name}) to delete it", default="",
                         show_default=False, err=True)
    if typed.strip() != target.stack_name:
        raise Cancelled(f"{typed.strip()!r} is not {target.stack_name!r}; nothing was deleted")


def status(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.", min=0.2)] = 2.0,
) -> None:
    """Every component at a glance: stack, API, queue and DLQ depth, tasks and executions by status.

    Exit code 5 when something is unhealthy (API down, DLQ not empty, stack failed).
    With --watch the view refreshes (a JSON line per refresh when piped) until Ctrl-C.
    Example: tmctl status --watch --local
    """
    from tmctl.core.status import stack_status

    st = state(ctx)
    target = st.target()
    backend = st.backend()  # one health probe
    if target.local and backend.name == "unknown":
        from tmctl.core.local import emulator

        emulator.require_engine(target)  # nothing answers: its one clear error
    engine = backend.describe() if backend.is_emulator else f"AWS {target.region}"
    c = st.clients()
    info = st.stack()

    def fetch():
        return stack_status(c.sqs, c.stepfunctions, c.lambda_, c.dynamodb, info, engine, session=c.session)

    if watch:
        _watch(st, fetch, interval)
        return
    s = fetch()
    out.emit(st, s.to_dict(), lambda: _status_table(s))
    if not s.healthy:
        from tmctl.core.errors import CheckFailed

        problems = [p for p, bad in (("API down", not s.api_ok), (f"{s.dlq.total} message(s) in the DLQ", s.dlq.total),
                                     (f"stack {s.stack_status}", "ROLLBACK" in s.stack_status
                                      or not s.stack_status.endswith("_COMPLETE"))) if bad]
        raise CheckFailed("unhealthy: " + ", ".join(problems), "see the table above")


def _status_table(s):
    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{out.styled(k)} {v}" for k, v in values.items() if v) or "none"

    dlq_style = "red" if s.dlq.total else "green"
    rows = [
        ("engine", s.engine),
        ("stack", f"{s.stack} {s.stack_status}"),
        ("api", f"{'[green]up[/green]' if s.api_ok else '[red]down[/red]'} {s.api_detail} {s.api_url} "
                f"({s.front_door_label})"),
        ("queue", f"{s.queue.name}: {s.queue.visible} visible, {s.queue.in_flight} in flight, "
                  f"{s.queue.delayed} delayed"),
        ("dlq", f"[{dlq_style}]{s.dlq.name}: {s.dlq.total} message(s)[/{dlq_style}]"),
        ("tasks", counts(s.tasks)),
        ("executions", counts(s.executions)),
    ]
    rows += [(f"λ {name}", state_) for name, state_ in s.functions.items()]
    return out.table(None, ["component", "state"], rows)


def _watch(st, fetch, interval: float) -> None:
    """Refresh until Ctrl-C: a live table on a terminal, a JSON line per refresh when piped."""
    import json
    import sys
    import time

    try:
        if out.wants_json(st):
            while True:
                sys.stdout.write(json.dumps(fetch().to_dict(), default=str) + "\n")
                sys.stdout.flush()
                time.sleep(interval)
        from rich.console import Group
        from rich.live import Live

        def view():
            s = fetch()
            return Group(_status_table(s), f"[dim]{time.strftime('%H:%M:%S')} · every {interval:g}s · "
                                           "Ctrl-C to stop[/dim]")

        with Live(view(), console=out.stdout_console(), auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(view(), refresh=True)
    except KeyboardInterrupt:
        return  # the way to leave a watch: not an error


def verify(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the workflow.")] = 60.0,
) -> None:
    """The seed's acceptance in one command: POST a task, then check its DynamoDB item,
    its SQS message, its workflow execution (started and finished) and an empty DLQ.

    Exit code 5 when any check fails. Example: tmctl --local verify
    """
    from tmctl.core.api import task_api
    from tmctl.core.errors import CheckFailed
    from tmctl.core.verify import verify as run_verify

    st = state(ctx)
    c = st.clients()
    info = st.stack()
    result = run_verify(c.dynamodb, c.sqs, c.stepfunctions, info, timeout=timeout, api=task_api(info, c.session),
                        on_check=lambda ch: out.progress(f"{'pass' if ch.passed else 'FAIL'}  {ch.name}"))
    data = {"taskID": result.task_id, "passed": result.passed, "checks": result.checks}
    out.emit(st, data, lambda: out.table(
        f"verify {result.task_id}: {'[green]PASS[/green]' if result.passed else '[red]FAIL[/red]'}",
        ["check", "result", "detail", "t+s"],
        [(ch.name, "[green]pass[/green]" if ch.passed else "[red]FAIL[/red]", ch.detail, f"{ch.seconds:.2f}")
         for ch in result.checks]))
    if not result.passed:
        failed = [ch.name for ch in result.checks if not ch.passed]
        raise CheckFailed(f"verify failed: {', '.join(failed)}", f"see `tmctl --local task get {result.task_id}`")
