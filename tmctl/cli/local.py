"""The local engine: start, stop, status, logs."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tmctl.cli import options as opt
from tmctl.cli import output as out
from tmctl.cli.context import state

app = typer.Typer(help="Manage the local emulator (the embedded MiniStack by default).\n\n"
                       "Example: tmctl local status", no_args_is_help=True)


class EngineChoice(StrEnum):
    ministack = "ministack"
    localstack = "localstack"


@app.command("start")
def start(
    ctx: typer.Context,
    engine_choice: Annotated[EngineChoice, typer.Option(
        "--engine", help="ministack: the embedded emulator (no Docker). localstack: docker-compose.yml's "
                         "service through the Docker SDK (needs Docker and LOCALSTACK_AUTH_TOKEN).")
    ] = EngineChoice.ministack,
    compose_file: Annotated[Path | None, typer.Option(
        "--compose-file", help="For --engine localstack (default: the project's docker-compose.yml).")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start from nothing: the saved state (stack, tasks, messages, config) is removed first.")
    ] = False,
) -> None:
    """Start the local engine on the endpoint's port (or reuse one that answers).

    The embedded emulator comes back with the state saved at its last `local stop`
    (TMCTL_PERSIST=0 turns that off); workflows the stop interrupted run again and
    messages that were in flight go back on their queue.

    Example: tmctl local start   (or: tmctl local start --fresh, tmctl local start --engine localstack)
    """
    target = state(ctx).target(local=True)
    if engine_choice is EngineChoice.localstack:
        _start_localstack(ctx, target, compose_file)
        return
    from tmctl.core.local import emulator

    booting = emulator.launch(target, fresh=fresh)
    engine, proc = booting.wait()
    data = {"engine": engine.name, "version": engine.version, "endpoint": target.endpoint_url,
            "pid": proc.pid if proc else None, "log": str(proc.log) if proc else None}
    data.update(after_start(ctx, booting))
    out.emit(state(ctx), data, lambda: out.table(None, ["", ""], [(k, v) for k, v in data.items()]))


def after_start(ctx: typer.Context, booting) -> dict:
    """What a newly started engine brought back, said on stderr; then the
    workflows its stop interrupted are run again and in-flight messages given
    back. Used by `local start` and `up`. Nothing when an engine was reused."""
    restored = booting.restored
    if restored is None:
        return {}
    import datetime as dt

    from tmctl.core.errors import NotFound
    from tmctl.core.local import persist
    from tmctl.core.stack import load_stack

    saved = restored.saved_at.isoformat(timespec="seconds") if restored.saved_at else None
    if restored.crashed:
        out.progress("warning: the last emulator on this port ended without `tmctl local stop` (a crash or a "
                     f"reboot?): the state is the one saved {'at ' + saved if saved else 'never (it starts empty)'}; "
                     "anything after that is lost")
    elif saved:
        out.progress(f"state restored from {restored.state_dir} (saved {saved})")
    data = {"persist": persist.enabled(), "stateDir": str(restored.state_dir), "stateSavedAt": saved,
            "crashed": restored.crashed}
    if not saved:
        return data
    st = state(ctx)
    clients = st.clients(local=True)
    try:
        stack = load_stack(clients.cloudformation, clients.target)
    except NotFound:
        stack = None
    # A restart's failures carry a stop time after the spawn (a second of slack for coarse clocks).
    since = restored.spawned_at - dt.timedelta(seconds=1)
    done = persist.recover(clients.sqs, clients.stepfunctions, clients.dynamodb, stack, restored.in_flight, since)
    if done.rerun:
        out.progress(f"{len(done.rerun)} workflow(s) interrupted by the stop run again: "
                     + ", ".join(f"{t.taskID} ({t.result})" for t in done.rerun[:5])
                     + (" …" if len(done.rerun) > 5 else ""))
    if done.released:
        out.progress(f"{done.released} message(s) in flight at the stop back on their queue")
    data.update({"rerun": len(done.rerun), "released": done.released})
    return data


def _start_localstack(ctx: typer.Context, target, compose_file: Path | None) -> None:
    from tmctl.core.bundle import project_dir
    from tmctl.core.local import localstack

    path = compose_file or project_dir() / localstack.COMPOSE_FILE
    started = localstack.start(target, path, progress=out.progress)
    c = started.container
    data = {"engine": started.engine.name, "version": started.engine.version, "endpoint": target.endpoint_url,
            "container": c.name if c else None, "containerId": c.id[:12] if c else None,
            "image": c.image if c else None, "reused": started.reused}
    out.emit(state(ctx), data, lambda: out.table(None, ["", ""], [(k, v) for k, v in data.items()]))


@app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Stop what tmctl started on this port: the embedded emulator (by its pid, with
    its Lambda workers) or the LocalStack container (stopped and removed; its
    state stays in its volume).

    Example: tmctl local stop
    """
    from tmctl.core.local import emulator, localstack, persist

    target = state(ctx).target(local=True)
    pid = emulator.stop(target)
    if pid:
        wd = emulator.workdir(target)
        clean = persist.clean_stop(wd)
        if not persist.enabled():
            out.progress(f"stopped emulator pid {pid} (TMCTL_PERSIST=0: its state is gone)")
        elif clean:
            out.progress(f"stopped emulator pid {pid} in {clean.get('seconds', 0):.1f}s; state saved in "
                         f"{wd / persist.STATE}")
        else:
            out.progress(f"warning: emulator pid {pid} did not stop within {emulator.STOP_TIMEOUT:.0f}s and was "
                         "killed: it may not have saved its state")
        return
    client = localstack.client_if_available()  # no SDK or no Docker: no container of ours can run
    container = localstack.stop(client, target.port) if client is not None else None
    out.progress(f"stopped and removed container {container.name}" if container
                 else f"no emulator or container started by tmctl on port {target.port}")


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Which engine answers on the endpoint, and the process or container tmctl started, if any.

    Exit code 4 when nothing answers. Example: tmctl local status
    """
    from tmctl.core.errors import BackendUnreachable
    from tmctl.core.local import emulator, localstack

    target = state(ctx).target(local=True)
    engine = emulator.probe(target.endpoint_url)
    proc = emulator.read_process(target)
    client = None if proc else localstack.client_if_available()
    container = localstack.find_container(client, target.port) if client is not None else None
    from tmctl.core.local import persist

    wd = emulator.workdir(target)
    saved = persist.last_saved(wd)
    data = {"endpoint": target.endpoint_url, "engine": engine.name if engine else None,
            "version": engine.version if engine else None, "pid": proc.pid if proc else None,
            "rssMiB": round(emulator.group_rss_bytes(proc.pid) / 2**20, 1) if proc else None,
            "log": str(proc.log) if proc else None,
            "persist": persist.enabled(), "stateDir": str(wd / persist.STATE),
            "stateSavedAt": saved.isoformat(timespec="seconds") if saved else None,
            "container": container.to_dict() if container else None}
    if persist.enabled() and proc:
        out.progress("the state is saved when the emulator stops (`tmctl local stop`): a crash loses what "
                     f"changed since {data['stateSavedAt'] or 'it started'}")
    rows = [(k, v) for k, v in data.items() if k != "container"]
    if container:
        rows.append(("container", f"{container.name} ({container.status}, {container.image})"))
    out.emit(state(ctx), data, lambda: out.table(None, ["", ""], rows))
    if engine is None:
        raise BackendUnreachable(f"nothing answers on {target.endpoint_url}", "run `tmctl local start`")


@app.command("reset")
def reset(ctx: typer.Context, yes: opt.Yes = False) -> None:
    """Empty the embedded emulator: every stack, task, message, parameter and
    execution, running or saved. Nothing is kept. Asks first (--yes skips).

    Example: tmctl local reset --yes
    """
    from tmctl.core.local import emulator

    target = state(ctx).target(local=True)
    out.confirm(f"Remove everything the emulator on {target.endpoint_url} holds, running and saved?", yes=yes)
    result = emulator.reset(target)
    out.progress(f"emptied the emulator on {target.endpoint_url}" if result.running
                 else f"removed the saved state in {result.state_dir}")


@app.command("logs")
def logs(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many lines from the end (0: none).")] = 50,
) -> None:
    """The embedded emulator's own log (not the functions'; those are in CloudWatch Logs).

    Example: tmctl local logs -n 100
    """
    from tmctl.core.errors import NotFound
    from tmctl.core.local import emulator

    log = emulator.workdir(state(ctx).target(local=True)) / "ministack.log"
    if not log.exists():
        raise NotFound(f"no emulator log at {log}", "tmctl writes one when it starts the emulator")
    for line in _tail(log, lines):
        typer.echo(line)


def _tail(path, n: int) -> list[str]:
    """The last `n` lines of a file (none for 0), without holding all of it."""
    from collections import deque

    if n <= 0:
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n") for line in deque(f, maxlen=n)]
