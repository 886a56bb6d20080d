"""`tmctl doctor`: diagnose the local setup (and AWS credentials), one finding per line."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tmctl.cli import output as out
from tmctl.cli.context import state

# Doctor asks and moves on: a check that hangs is worse than one that says "unknown".
_TIMEOUTS = {"connect_timeout": 2, "read_timeout": 10, "retries": {"mode": "standard", "max_attempts": 2}}
_MARKS = {"ok": "[green]✓[/green]", "info": "[dim]·[/dim]", "warn": "[yellow]![/yellow]", "error": "[red]✗[/red]"}


def doctor(
    ctx: typer.Context,
    aws: Annotated[bool | None, typer.Option(
        "--aws/--no-aws", help="--aws: diagnose the AWS target (its credentials failing is an error, the local "
                               "engine not answering is not). --no-aws: skip the AWS checks. Default: both, "
                               "with AWS findings as information.")] = None,
) -> None:
    """Diagnose the local setup: Docker, LocalStack token, which engine answers and
    its version, HTTP API, IAM enforcement, the stack's event source mapping and
    event latency, AWS credentials and region. Reads only; changes nothing.

    Exit code 5 when a finding is an error. Example: tmctl doctor --local -o json
    """
    from tmctl.core import doctor as core
    from tmctl.core import preflight
    from tmctl.core.deploy import LOCAL_PARAMETERS
    from tmctl.core.errors import CheckFailed
    from tmctl.core.local import localstack

    st = state(ctx)
    target = st.target(local=True)
    local, remote = _sessions(st, target)
    probes = core.Probes(
        endpoint=target.endpoint_url,
        env=dict(os.environ),
        docker_status=localstack.docker_status,
        local_required=aws is not True,
        apigw=local("apigatewayv2"),
        needed=preflight.stack_needs(),
        template=_template(),
        stack=lambda: _describe_stack(local("cloudformation"), target),
        base={"AppName": target.app, "Stage": target.stage, **LOCAL_PARAMETERS},
        iam_probe=lambda: _probe_client(target)("sqs").list_queues(MaxResults=1),
        load_stack=lambda: _load_stack(local("cloudformation"), target),
        lambda_=local("lambda"),
        sfn=local("stepfunctions"),
        aws_identity=(lambda: remote()[0].client("sts", config=_config(aws=True)).get_caller_identity())
        if aws is not False else None,
        aws_region=_region(remote) if aws is not False else None,
        aws_required=aws is True,
    )
    report = core.diagnose(probes)
    out.emit(st, report.to_dict(), lambda: _render(report))
    if not report.ok:
        names = ", ".join(dict.fromkeys(f.check for f in report.errors))
        raise CheckFailed(f"doctor found {len(report.errors)} error(s): {names}", "apply the fix shown for each")


def _config(aws: bool = False):
    from botocore.config import Config

    # On AWS, an AWS_ENDPOINT_URL left in the environment must not make an emulator look like AWS.
    return Config(**_TIMEOUTS, ignore_configured_endpoint_urls=aws)


def _sessions(st, target):
    """The emulator's session (dummy credentials) and, lazily, boto3's own chain for
    AWS: region and credentials decided by the chain unless --region/--profile say."""
    import boto3

    from tmctl.core.target import EMULATOR_CREDENTIALS

    emulator = boto3.Session(region_name=target.region, **EMULATOR_CREDENTIALS)
    cache: dict = {}

    def local(service: str):
        return emulator.client(service, endpoint_url=target.endpoint_url, config=_config())

    def remote():
        if "aws" not in cache:
            cache["aws"] = (boto3.Session(profile_name=st.profile or None, region_name=st.region or None),)
        return cache["aws"]

    return local, remote


def _region(remote) -> str | None:
    try:
        return remote()[0].region_name
    except Exception:  # noqa: BLE001 - ProfileNotFound and friends: the credentials check says why
        return None


def _probe_client(target):
    """Clients signed with a key nobody issued: refused where IAM is enforced."""
    import boto3

    from tmctl.core.doctor import PROBE_ACCESS_KEY

    session = boto3.Session(region_name=target.region, aws_access_key_id=PROBE_ACCESS_KEY,
                            aws_secret_access_key="tmctl-doctor-probe")
    return lambda service: session.client(service, endpoint_url=target.endpoint_url, config=_config())


def _template() -> dict | None:
    """The project's template, parsed (None: none here; doctor then checks the HTTP API alone)."""
    from tmctl.core.bundle import project_dir
    from tmctl.core.deploy import TEMPLATE_FILE, load_template

    try:
        return load_template(project_dir() / TEMPLATE_FILE)
    except Exception:  # noqa: BLE001 - no project, or unreadable: the checks that need none still run
        return None


def _describe_stack(cfn, target):
    from tmctl.core.stack import describe_stack

    return describe_stack(cfn, target)


def _load_stack(cfn, target):
    from tmctl.core.stack import load_stack

    return load_stack(cfn, target)


def _render(report):
    rows = [(_MARKS.get(f.level, f.level), f.check, out.escape(f.message), out.escape(f.fix or ""))
            for f in report.findings]
    from rich.table import Table

    table = Table(title=f"tmctl doctor · {report.endpoint}", title_justify="left", header_style="bold")
    for name in ("", "check", "finding", "fix"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table
