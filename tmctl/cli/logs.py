"""`tmctl logs`: the stack's function logs, interleaved by time, optionally followed."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from tmctl.cli import output as out
from tmctl.cli.context import state

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue")


def logs(
    ctx: typer.Context,
    function: Annotated[str | None, typer.Argument(
        help="task-api, event-processor or workflow-steps (or a full function name); default: all three.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    since: Annotated[str, typer.Option(
        help="From this long ago (10m, 2h, 1d) or an ISO time (UTC unless it has an offset).")] = "10m",
    filter_: Annotated[str | None, typer.Option(
        "--filter", help="CloudWatch Logs filter pattern, or a plain term such as a taskID.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many lines (the newest) before following.")] = 100,
) -> None:
    """CloudWatch Logs of the stack's functions, interleaved by time, each line
    prefixed by its function. JSON with --output json (or when piped); with
    --follow, one JSON object per line.

    Example: tmctl --local logs --filter task-173 --since 1h
    """
    from tmctl.core.executions import parse_since
    from tmctl.core.logs import find_log_events, log_group, resolve_functions

    st = state(ctx)
    cutoff = parse_since(since)
    chosen = resolve_functions(st.stack().functions, function)
    labels = {log_group(name): label for label, name in chosen.items()}
    client = st.clients().client("logs")
    width = max(len(label) for label in labels.values())
    colours = {group: _COLOURS[i % len(_COLOURS)] for i, group in enumerate(labels)}
    as_json = out.wants_json(st)

    def line(event) -> str:
        label = labels.get(event.group, event.function)
        stamp = event.time.astimezone().strftime("%H:%M:%S.%f")[:-3]
        return (f"[dim]{stamp}[/dim] [{colours.get(event.group, 'white')}]{label:<{width}}[/] "
                f"{out.escape(event.message.rstrip())}")

    def record(event) -> dict:
        return {**event.to_dict(), "function": labels.get(event.group, event.function)}

    if not follow:
        events = find_log_events(client, list(labels), filter_, cutoff, limit)
        if as_json:
            out.print_json([record(e) for e in events])
        else:
            console = out.stdout_console()
            for e in events:
                console.print(line(e))
            if not events:
                out.progress(f"no log lines since {since}" + (f" matching {filter_!r}" if filter_ else ""))
        return

    from tmctl.core.logs import follow as follow_events

    console = None if as_json else out.stdout_console()
    out.progress(f"following {', '.join(labels.values())} (Ctrl-C to stop)")
    try:
        for event in follow_events(client, list(labels), filter_, cutoff, limit):
            if console is None:
                sys.stdout.write(json.dumps(record(event)) + "\n")
                sys.stdout.flush()
            else:
                console.print(line(event))
    except KeyboardInterrupt:
        return  # the way to leave a follow: not an error
