"""Least privilege, measured: each role's grants beside the calls it made."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tmctl.cli import output as out
from tmctl.cli.context import state

if TYPE_CHECKING:
    from tmctl.core.iam_report import IamReport

app = typer.Typer(help="IAM of the deployed stack: what each role may do, and what it did.\n\n"
                       "Example: tmctl --local iam report", no_args_is_help=True)

FLAG_TEXT = {"used": "", "unused": "[bold yellow]UNUSED[/bold yellow]", "unobservable": "[dim]not observable[/dim]",
             "not-granted": "[bold red]NOT GRANTED[/bold red]"}


def _render(report: IamReport):
    parts = [f"{report.stack} on {report.backend}: calls {report.since} .. {report.until}, from {report.source}"]
    for role in report.roles:
        title = f"{role.role} ({role.name})"
        rows = [(a.action, "yes" if a.granted else "no", a.used,
                 " ".join(x for x in (FLAG_TEXT.get(a.flag, a.flag), out.escape(a.note) if a.flag != "used" else "")
                          if x))
                for a in role.actions]
        parts.append(out.table(title, ["action", "granted", "used", "flag"], rows))
        unused = role.unused
        parts.append(f"{len(unused)} unused grant(s): {', '.join(unused)}" if unused else "no unused grants seen")
    parts += [f"note: {out.escape(n)}" for n in report.notes]
    return parts


@app.command("report")
def report(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(
        "--since", help="Start of the window: a duration back from now (30m, 6h, 2d) or an ISO time.")] = "24h",
) -> None:
    """Per role of the deployed stack: the actions its policies grant (IAM), the
    actions it was seen calling (CloudTrail: LookupEvents on AWS, the emulator's
    recording locally) and each unused grant flagged. A grant this backend's
    event history cannot see (data events on AWS; calls an emulator makes
    in-process) is marked not observable, never unused.

    Example: tmctl --local iam report --since 1h -o json
    """
    from tmctl.core.iam_report import build_report, parse_since

    st = state(ctx)
    start = parse_since(since)
    clients = st.clients()
    backend = st.backend()
    target = st.target()
    st.stack()  # a missing stack is a NotFound with its fix, before any IAM call
    with out.Reporter("iam report") as say:
        result = build_report(cfn=clients.cloudformation, lambda_=clients.lambda_,
                              stepfunctions=clients.stepfunctions, iam=clients.iam,
                              cloudtrail=clients.client("cloudtrail"), stack_name=target.stack_name,
                              backend=backend.name, since=start, progress=lambda m: say(m, detail=True))
    out.emit(st, result, lambda: _render(result))
