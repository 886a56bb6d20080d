"""`tmctl dev`: the inner loop. The stack up (as `up`), lambdas/ and
cloudformation/ watched, a saved handler live in its functions, a template
change through the change set, every function's log lines interleaved."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from tmctl.cli import options as opt
from tmctl.cli import output as out
from tmctl.cli.context import state

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue")
_LEVEL_STYLE = {"ERROR": "red", "WARNING": "yellow", "DEBUG": "dim", "REPORT": "dim"}
STEP_MS = 50  # watchfiles yields a batch once nothing changed for this long (a save of several files is one batch)
DEBOUNCE_MS = 1600  # … or after this long, however busy the files are
READY_MS = 100  # the watcher's idle wake-up: the first one says it is watching


def dev(
    ctx: typer.Context,
    param: opt.Params = None,
    function: Annotated[str | None, typer.Option(
        "--function", help="Show only this function's log lines (task-api, event-processor, "
                                 "workflow-steps).")] = None,
    filter_: Annotated[str | None, typer.Option(
        "--filter", help="Show only log lines matching this CloudWatch Logs pattern or plain term (a taskID).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No log lines: only what goes live.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Take the stack down when you stop (Ctrl-C).")] = False,
    yes: opt.Yes = False,
) -> None:
    """Bring the stack up if needed, then watch lambdas/ and cloudformation/: a saved
    handler goes live in the functions that package it (lambdas/common/ → all of
    them) once it compiles and imports, a template, state machine or OpenAPI change
    goes through the change set, and the functions' log lines stream, interleaved.
    Code that does not compile or import is reported with file:line and the old
    code keeps serving. Ctrl-C stops watching and leaves the stack up (--down takes
    it down). On AWS: non-production stages only; change sets are asked unless --yes.

    Example: tmctl dev --local --function workflow-steps
    """
    from tmctl.core import dev as core
    from tmctl.core.bundle import project_dir

    st = state(ctx)
    target = st.target()
    core.check_stage(target.stage, target.local)
    overrides = opt.parse_params(param)
    if not target.local:
        out.require_answerable(f"deploying {target.stack_name} to AWS", yes)
    project = project_dir()
    session = _Session(st, target, project, overrides, yes)
    _stop_on_sigterm()
    try:
        session.deploy(first=True)
        if not target.local:
            out.stderr_console().print(f"[yellow]warning:[/yellow] {out.escape(core.DRIFT_WARNING)}")
        session.load()
        if not quiet:
            session.stream_logs(function, filter_)
        session.watch()
    except KeyboardInterrupt:
        pass
    finally:
        session.close()
    if down:
        _take_down(st, target)
    else:
        out.progress(f"stopped watching; {target.stack_name} stays up (`tmctl down` takes it down)")


class _Session:
    """One `tmctl dev` run: what is deployed, what is still to go live."""

    def __init__(self, st, target, project: Path, overrides: dict[str, str], yes: bool):
        from tmctl.core import dev as core

        self.st, self.target, self.project, self.overrides, self.yes = st, target, project, overrides, yes
        self.clients = st.clients()
        self.checker = core.ImportChecker()
        self.loop: core.DevLoop | None = None
        self.console = out.stderr_console()
        self.print_lock = threading.Lock()
        self._stop = threading.Event()
        self._logs: threading.Thread | None = None

    def say(self, text: str) -> None:
        with self.print_lock:
            self.console.print(text, highlight=False)

    # -- the change set path, as `up`
    def deploy(self, *, first: bool = False) -> bool:
        """`up`'s path: package, change set (shown; on AWS asked unless --yes), execute, warm."""
        from tmctl.core.errors import Cancelled
        from tmctl.core.local import emulator
        from tmctl.core.lock import deploy_lock
        from tmctl.core.up import apply, discard, prepare, report_changes

        target, clients = self.target, self.clients
        booting = emulator.launch(target) if target.local and first else None

        def ready() -> None:
            if booting is not None:
                engine, proc = booting.wait()
                started = f" (pid {proc.pid}, log {proc.log})" if proc else ""
                out.progress(f"{engine.name} {engine.version} on {target.endpoint_url}{started}")

        with deploy_lock(target, waiting=out.progress):
            with out.Reporter(f"preparing {target.stack_name}") as report:
                plan = prepare(clients, target, overrides=self.overrides, progress=report, ready=ready)
            cs = plan.change_set
            if not cs.empty and target.local and not first:  # on AWS the question shows it
                with self.print_lock:
                    self.console.print(out.change_table(cs))
            if not target.local:
                try:
                    out.confirm_change_set(cs, target.describe(), yes=self.yes, discard=lambda: discard(clients, plan))
                except Cancelled:
                    if first:
                        raise
                    self.say("[yellow]change set not executed[/yellow]; the stack stays as it was")
                    return False
            with out.Reporter(f"deploying {target.stack_name}", fold=target.local) as report:
                report_changes(plan, report)
                result = apply(clients, plan, progress=report)
        if result.deploy.changed:
            out.progress(f"{len(result.deploy.changes)} resource change(s), {result.deploy.status} "
                         f"in {result.deploy.seconds:.1f}s")
        elif first:
            out.progress(f"{target.stack_name} is up to date")
        if first:
            out.progress(f"API ({result.stack.front_door_label}): {result.stack.api_url}")
        return True

    def load(self) -> None:
        """The deployed functions (names, handlers, environments, the code each runs); their imports preloaded."""
        from tmctl.core import deploy as dep
        from tmctl.core import dev as core
        from tmctl.core.lock import deploy_lock

        c = self.clients
        template = dep.load_template(self.project / dep.TEMPLATE_FILE)
        functions = core.load_functions(c.cloudformation, c.lambda_, self.target.stack_name, template,
                                        region=self.target.region,
                                        endpoint_url=self.target.endpoint_url if self.target.local else None)
        if self.loop is None:
            self.loop = core.DevLoop(self.project, c.lambda_, functions, self.checker,
                                     wait_updated=not self.target.local,
                                     lock=lambda: deploy_lock(self.target, waiting=out.progress))
        else:
            self.loop.stack_applied(functions)
        self.checker.preload([(s, core.function_zip(self.project, s), fn.handler, fn.env)
                              for s, fn in functions.items()])

    # -- watching
    def watch(self) -> None:
        import watchfiles

        from tmctl.core.dev import WATCHED

        roots = [self.project / d for d in WATCHED if (self.project / d).is_dir()]
        labels = ", ".join(fn.label for fn in self.loop.functions.values())
        ready = False
        # The watcher exists once the generator first yields (an empty batch on its first timeout): the
        # ready line comes only then, or a save made the moment it is printed would be missed.
        for changes in watchfiles.watch(*roots, debounce=DEBOUNCE_MS, step=STEP_MS, raise_interrupt=True,
                                        stop_event=self._stop, rust_timeout=READY_MS, yield_on_timeout=True):
            if not ready:
                ready = True
                self.say(f"[bold]watching[/bold] {', '.join(f'{r.name}/' for r in roots)} in "
                         f"{out.escape(str(self.project))} (functions: {labels}; Ctrl-C to stop)")
            if changes:
                self.on_change([path for _, path in changes])

    def on_change(self, paths: list[str]) -> None:
        step = self.loop.handle(paths)
        if step.errors:
            for err in step.errors:
                self.say(f"[bold red]error[/bold red] {out.escape(str(err))}")
            self.say("[yellow]not live[/yellow]: the old code keeps serving; the next good save goes live")
            return
        if step.stack:
            self.say("[bold]stack change[/bold]: through the change set")
            if self.deploy():
                self.load()
                self.say(f"[green]live:[/green] stack {time.perf_counter() - step.started:.2f} s")
            return
        outcome = step.outcome
        if outcome is None:
            return
        for err in outcome.errors:
            self.say(f"[bold red]error[/bold red] {out.escape(str(err))}; the previous code is back")
        if outcome.live:
            self.say("[green]live:[/green] " + ", ".join(f"{label} {s:.2f} s" for label, s in outcome.live.items()))
        elif not outcome.errors:
            self.say("[dim]no change in the deployed code[/dim]")

    # -- logs
    def stream_logs(self, function: str | None, filter_: str | None) -> None:
        from tmctl.core.logs import log_group, resolve_functions

        chosen = resolve_functions(self.st.stack().functions, function)
        labels = {log_group(name): label for label, name in chosen.items()}
        colours = {g: _COLOURS[i % len(_COLOURS)] for i, g in enumerate(labels)}
        width = max(len(label) for label in labels.values())
        since = int(time.time() * 1000)
        logs = self.clients.client("logs")
        self._logs = threading.Thread(target=self._follow, args=(logs, labels, colours, width, filter_, since),
                                      name="tmctl-dev-logs", daemon=True)
        self._logs.start()

    def _follow(self, logs, labels, colours, width, filter_, since) -> None:
        from tmctl.core.dev import log_level
        from tmctl.core.logs import LogFollower, filter_pattern

        console = out.stdout_console()
        follower = LogFollower(logs, list(labels), filter_pattern(filter_), since)
        while not self._stop.wait(0.3):
            try:
                events = follower.poll()
            except Exception:  # noqa: BLE001 - a missed poll is retried; the loop must outlive a hiccup
                continue
            for e in events:
                label = labels.get(e.group, e.function)
                style = _LEVEL_STYLE.get(log_level(e.message))
                text = out.escape(e.message.rstrip())
                with self.print_lock:
                    console.print(f"[{colours.get(e.group, 'white')}]{label:<{width}} |[/] "
                                  + (f"[{style}]{text}[/{style}]" if style else text), highlight=False)

    def close(self) -> None:
        self._stop.set()
        self.checker.close()


def _stop_on_sigterm() -> None:
    """SIGTERM (a supervisor, `kill`) stops watching as Ctrl-C does: temp files removed, exit 0."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _take_down(st, target) -> None:
    from tmctl.core.deploy import delete_stack

    with out.Reporter(f"deleting {target.stack_name}", fold=target.local) as report:
        deleted = delete_stack(st.clients().cloudformation, target, progress=report)
    out.progress(f"deleted {target.stack_name}" if deleted else f"{target.stack_name} did not exist")
