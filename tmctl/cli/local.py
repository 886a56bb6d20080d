"""The local engine: start, stop, status, logs."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

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
) -> None:
    """Start the local engine on the endpoint's port (or reuse one that answers).

    Example: tmctl local start   (or: tmctl local start --engine localstack)
    """
    target = state(ctx).target(local=True)
    if engine_choice is EngineChoice.localstack:
        _start_localstack(ctx, target, compose_file)
        return
    from tmctl.core.local import emulator

    engine, proc = emulator.start(target)
    data = {"engine": engine.name, "version": engine.version, "endpoint": target.endpoint_url,
            "pid": proc.pid if proc else None, "log": str(proc.log) if proc else None}
    out.emit(state(ctx), data, lambda: out.table(None, ["", ""], [(k, v) for k, v in data.items()]))


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
    from tmctl.core.local import emulator, localstack

    target = state(ctx).target(local=True)
    pid = emulator.stop(target)
    if pid:
        out.progress(f"stopped emulator pid {pid}")
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
    data = {"endpoint": target.endpoint_url, "engine": engine.name if engine else None,
            "version": engine.version if engine else None, "pid": proc.pid if proc else None,
            "rssMiB": round(emulator.group_rss_bytes(proc.pid) / 2**20, 1) if proc else None,
            "log": str(proc.log) if proc else None,
            "container": container.to_dict() if container else None}
    rows = [(k, v) for k, v in data.items() if k != "container"]
    if container:
        rows.append(("container", f"{container.name} ({container.status}, {container.image})"))
    out.emit(state(ctx), data, lambda: out.table(None, ["", ""], rows))
    if engine is None:
        raise BackendUnreachable(f"nothing answers on {target.endpoint_url}", "run `tmctl local start`")


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
