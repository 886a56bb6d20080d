"""`tmctl pipeline up|status`: the CI/CD pipeline (cloudformation/pipeline.yaml)."""

from typing import Annotated

import typer

from tmctl.cli import options as opt
from tmctl.cli import output as out
from tmctl.cli.context import state

app = typer.Typer(help="The CI/CD pipeline: CodePipeline + CodeBuild deploying a stage on every push.\n\n"
                       "Example: tmctl pipeline status --output json",
                  no_args_is_help=True)


@app.command("up")
def up(
    ctx: typer.Context,
    connection_arn: Annotated[str | None, typer.Option(
        "--connection-arn", help="CodeConnections connection to GitHub (kept from the last deploy if omitted).")
    ] = None,
    repo: Annotated[str | None, typer.Option(
        "--repo", help="GitHub repository owner/name (kept from the last deploy if omitted).")] = None,
    branch: Annotated[str | None, typer.Option(
        "--branch", help="A push to this branch runs the pipeline (default main, or the last deploy's).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="pipeline.yaml parameter override KEY=VALUE (repeatable).")] = None,
    yes: opt.Yes = False,
) -> None:
    """Deploy the pipeline as stack <app>-pipeline: a push to --branch of --repo runs
    buildspec.yml (lint, secret scan, tests on the embedded emulator) and deploys --stage.

    On AWS the change set is shown and executed once you say yes (--yes skips it).

    Example: tmctl pipeline up --stage dev --connection-arn "$CONNECTION_ARN" --repo acme/task-manager
    """
    from tmctl.core import pipeline as core
    from tmctl.core.bundle import project_dir

    st = state(ctx)
    overrides = opt.parse_params(param)
    target = st.target()
    if target.local:
        from tmctl.core.local import emulator

        emulator.require_engine(target)
    else:  # refuse before any call when nobody could answer the change set's question below
        out.require_answerable(f"deploying {core.pipeline_target(target).stack_name} to AWS", yes)
    clients = st.clients()
    cfn = clients.cloudformation
    source = core.resolve_source(cfn, target, connection_arn, repo, branch)
    template = (project_dir() / core.PIPELINE_TEMPLATE).read_text()
    stack_name = core.pipeline_target(target).stack_name
    out.progress(f"deploying {stack_name}: {source.repository}@{source.branch} → stack {target.stack_name}")
    with out.Reporter(f"preparing {stack_name}") as report:
        cs = core.plan(cfn, target, source, template, overrides=overrides, progress=report)
    if not target.local:
        out.confirm_change_set(cs, stack_name, yes=yes, discard=lambda: core.discard(cfn, cs))
    with out.Reporter(f"deploying {stack_name}", fold=target.local) as report:
        result = core.apply(cfn, target, cs, progress=report)
    out.progress(f"{stack_name}: {result.status} in {result.seconds:.1f}s" if result.changed
                 else f"no changes: {stack_name} is up to date")
    status = _connection_status(clients, source.connection_arn)
    if status == core.CONNECTION_NOT_FOUND:
        out.progress(f"warning: connection {source.connection_arn} does not exist: the Source stage fails until "
                     "it does (fix: create one in the console, Developer Tools > Settings > Connections, then "
                     "`tmctl pipeline up --connection-arn ARN`)")
    elif status not in (None, "AVAILABLE"):
        out.progress(f"warning: connection is {status}: the Source stage fails until it is AVAILABLE (fix: finish "
                     "the GitHub handshake in the console, Developer Tools > Settings > Connections)")
    outputs = core.outputs(cfn, target)
    data = {"stack": stack_name, "status": result.status, "changed": result.changed, "repository": source.repository,
            "branch": source.branch, "deploys": target.stack_name, "connectionStatus": status, "outputs": outputs}
    out.emit(st, data, lambda: out.table(f"{stack_name}: {result.status}", ["output", "value"],
                                         sorted(outputs.items())))


def _connection_status(clients, arn: str) -> str | None:
    """Best effort, after a deploy that succeeded: NOT_FOUND for a connection that does not
    exist; an emulator without the service, or no permission, says nothing (None)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from tmctl.core import pipeline as core

    try:
        return core.connection_status(clients.client(core.connection_service(arn)), arn)
    except (BotoCoreError, ClientError):
        return None


@app.command("status")
def status(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="How many runs to show.")] = 10,
) -> None:
    """The pipeline's last runs (id, status, trigger, commit, start, duration) and each
    stage's latest state. Exit code 5 when the latest run failed.

    Example: tmctl pipeline status -n 5 --output json
    """
    from tmctl.core import pipeline as core
    from tmctl.core.errors import CheckFailed

    st = state(ctx)
    target = st.target()
    s = core.pipeline_status(st.clients().client("codepipeline"), core.pipeline_name(target), limit=limit)
    out.emit(st, s.to_dict(), lambda: _tables(s))
    latest = s.latest
    if latest is not None and latest.status == "Failed":
        stage = s.failed_stage()
        where = f" in stage {stage.name}" if stage else ""
        raise CheckFailed(f"the latest run {latest.id} failed{where}",
                          "see the stage table above, and the build log its link points to")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _tables(s):
    runs = out.table(f"{s.name}: last {len(s.runs)} run(s)", ["id", "status", "trigger", "commit", "started",
                                                              "duration"],
                     [(r.id, _styled(r.status), r.trigger,
                       f"{r.revision} {out.escape(r.message)}".strip(),
                       r.started.astimezone().strftime("%Y-%m-%d %H:%M:%S") if r.started else "",
                       _duration(r.seconds)) for r in s.runs])
    rows = []
    for stage in s.stages:
        for action in stage.actions or [None]:
            rows.append((stage.name, _styled(stage.status), action.name if action else "",
                         out.escape(action.error or action.summary) if action else "",
                         action.url if action else ""))
    return [runs, out.table("stages (latest run of each)", ["stage", "status", "action", "detail", "link"], rows)]


STATUS_STYLE = {"Succeeded": "green", "Failed": "red", "InProgress": "yellow", "Stopping": "yellow",
                "Stopped": "dim", "Superseded": "dim", "Cancelled": "dim"}


def _styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status
