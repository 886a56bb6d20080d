"""The stage's runtime configuration (SSM Parameter Store): list, get, set."""

from typing import Annotated

import typer

from tmctl.cli import output as out
from tmctl.cli.context import state

app = typer.Typer(help="Read and change the stage's runtime configuration (SSM parameters under "
                       "/<app>/<stage>/), which the functions follow without a redeploy.\n\n"
                       "Example: tmctl config set intake paused", no_args_is_help=True)


def _ssm_and_path(ctx: typer.Context):
    from tmctl.core.config import config_path

    st = state(ctx)
    return st.clients().ssm, config_path(st.target())


def _cache_seconds(st) -> str | None:
    """How soon the functions follow, as the stack says (None: a stack without the output, or none found)."""
    from tmctl.core.errors import TmctlError

    try:
        return st.stack().outputs.get("ConfigCacheSeconds")
    except TmctlError:
        return None


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every key of the stage's configuration, its value and what it may hold.

    Example: tmctl config list --output json
    """
    from tmctl.core.config import list_settings

    ssm, path = _ssm_and_path(ctx)
    settings = list_settings(ssm, path)
    if not settings:
        from tmctl.core.errors import NotFound

        raise NotFound(f"no configuration under {path}", "deploy the stage first: tmctl up")
    out.emit(state(ctx), settings, lambda: out.table(
        path, ["KEY", "VALUE", "ALLOWED", "VERSION", "DESCRIPTION"],
        [(s.key, s.value, s.allowed_pattern or "-", s.version, s.description) for s in settings]))


@app.command("get")
def get(ctx: typer.Context, key: Annotated[str, typer.Argument(help="e.g. intake, log-level")]) -> None:
    """One value: the bare value on a terminal, the whole setting with --output json.

    Example: tmctl config get log-level
    """
    from tmctl.core.config import get_setting

    ssm, path = _ssm_and_path(ctx)
    setting = get_setting(ssm, path, key)
    if out.wants_json(state(ctx)):
        out.print_json(setting)
    else:
        typer.echo(setting.value)


@app.command("set")
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="an existing key (tmctl config list)")],
    value: Annotated[str, typer.Argument(help="checked against the key's allowed values before it is written")],
) -> None:
    """Change one value; the functions follow within their cache time (5 s locally, 30 s on AWS).

    Example: tmctl config set failure-injection '[{"at": "process", "match": "boom-*"}]'
    """
    from tmctl.core.config import set_setting

    st = state(ctx)
    ssm, path = _ssm_and_path(ctx)
    before, after = set_setting(ssm, path, key, value, stage=st.target().stage)
    changed = before.version != after.version
    cache = _cache_seconds(st)
    data = {"key": key, "name": after.name, "before": before.value, "value": after.value,
            "version": after.version, "changed": changed, "followedWithinSeconds": int(cache) if cache else None}
    if out.wants_json(st):
        out.print_json(data)
    elif changed:
        out.progress(f"{key}: {before.value} → {after.value} (version {after.version}); the functions follow "
                     + (f"within {cache} s" if cache else "once their cached value expires"))
    else:
        out.progress(f"{key} is already {after.value}; nothing written")
