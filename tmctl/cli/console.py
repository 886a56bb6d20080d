"""`tmctl console`: the same core behind a local web page (tmctl/console/)."""

from __future__ import annotations

from typing import Annotated

import typer

from tmctl.cli import output as out
from tmctl.cli.context import state


def console(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(
        "--port", min=0, max=65535, help="Port on 127.0.0.1 (default 8765, else the next free one; 0: any).")] = None,
    no_open: Annotated[bool, typer.Option("--no-open", help="Print the URL; do not open a browser.")] = False,
    allow_writes: Annotated[bool, typer.Option(
        "--allow-writes", help="On an AWS production stage, allow redrive, purge, retry and config changes "
                               "(read-only there otherwise).")] = False,
) -> None:
    """A local web console for the stage: the pipeline with live figures, tasks, one task's path through the
    state machine, the DLQ with peek and redrive, the config switches.

    Served on 127.0.0.1 only; the printed URL carries a one-run token (traded for a cookie). Every request is
    checked (Host, token; writes: Origin and CSRF); read-only on an AWS production stage unless
    --allow-writes. Needs the extra: pip install 'tmctl[console]'. Ctrl-C stops it.

    Example: tmctl --local console
    """
    from tmctl.console import MISSING_EXTRA, missing_modules
    from tmctl.core.errors import TmctlError

    if missing_modules():
        raise TmctlError(MISSING_EXTRA)
    from tmctl.console.server import ConsoleServer, can_open_browser
    from tmctl.console.source import ConsoleSource

    st = state(ctx)
    target = st.target()
    backend = st.backend()
    if target.local and backend.name == "unknown":
        from tmctl.core.local import emulator

        emulator.require_engine(target)  # nothing answers: its one clear error
    c = st.clients()
    source = ConsoleSource(target, st.stack(), backend, sqs=c.sqs, ddb=c.dynamodb, sfn=c.stepfunctions, ssm=c.ssm,
                           logs=c.client("logs"), session=c.session, allow_writes=allow_writes)
    server = ConsoleServer(source, port=port)
    mode = "read-only (AWS production stage; --allow-writes to act)" if source.read_only else "read-write"
    out.progress(f"tmctl console for {target.describe()}, {mode}: Ctrl-C to stop")
    typer.echo(server.url)  # the one line on stdout: what to open
    if not no_open and can_open_browser():
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve()
    except KeyboardInterrupt:
        out.progress("console stopped")
