"""The local engine: start, stop, status, logs."""

from typing import Annotated

import typer

from tmctl.cli import output as out
from tmctl.cli.context import state

app = typer.Typer(help="Manage the local emulator (the embedded MiniStack by default).\n\n"
                       "Example: tmctl local status", no_args_is_help=True)


@app.command("start")
def start(ctx: typer.Context) -> None:
    """Start the embedded emulator on the endpoint's port (or reuse one that answers).

    Example: tmctl local start
    """
    from tmctl.core import emulator

    target = state(ctx).target(local=True)
    engine, proc = emulator.start(target)
    data = {"engine": engine.name, "version": engine.version, "endpoint": target.endpoint_url,
            "pid": proc.pid if proc else None, "log": str(proc.log) if proc else None}
    out.emit(state(ctx), data, lambda: out.table(None, ["", ""], [(k, v) for k, v in data.items()]))


@app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Stop the emulator tmctl started on this port, by its pid, with its Lambda workers.

    Example: tmctl local stop
    """
    from tmctl.core import emulator

    target = state(ctx).target(local=True)
    pid = emulator.stop(target)
    out.progress(f"stopped emulator pid {pid}" if pid else f"no emulator started by tmctl on port {target.port}")


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Which engine answers on the endpoint, and the process tmctl started, if any.

    Exit code 4 when nothing answers. Example: tmctl local status
    """
    from tmctl.core import emulator
    from tmctl.core.errors import BackendUnreachable

    target = state(ctx).target(local=True)
    engine = emulator.probe(target.endpoint_url)
    proc = emulator.read_process(target)
    data = {"endpoint": target.endpoint_url, "engine": engine.name if engine else None,
            "version": engine.version if engine else None, "pid": proc.pid if proc else None,
            "rssMiB": round(emulator.group_rss_bytes(proc.pid) / 2**20, 1) if proc else None,
            "log": str(proc.log) if proc else None}
    out.emit(state(ctx), data, lambda: out.table(None, ["", ""], [(k, v) for k, v in data.items()]))
    if engine is None:
        raise BackendUnreachable(f"nothing answers on {target.endpoint_url}", "run `tmctl local start`")


@app.command("logs")
def logs(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines from the end.")] = 50,
) -> None:
    """The embedded emulator's own log (not the functions'; those are in CloudWatch Logs).

    Example: tmctl local logs -n 100
    """
    from tmctl.core import emulator
    from tmctl.core.errors import NotFound

    log = emulator.workdir(state(ctx).target(local=True)) / "ministack.log"
    if not log.exists():
        raise NotFound(f"no emulator log at {log}", "tmctl writes one when it starts the emulator")
    for line in log.read_text(errors="replace").splitlines()[-lines:]:
        typer.echo(line)
