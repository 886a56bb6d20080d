"""The root command: global options, the sub-apps, and the one place that turns
errors into an stderr line and an exit code."""

import sys
from typing import Annotated

import typer
from typer._click.exceptions import ClickException
from typer.core import TyperGroup
from typer.exceptions import Abort

from tmctl.cli import config, dev, doctor, executions, iam, local, logs, pipeline, queues, stack, tasks
from tmctl.cli.context import State
from tmctl.cli.options import OutputFormat


def _usage_line(message: str, code: int) -> int:
    sys.stderr.write(f"tmctl: error: {' '.join(message.split())}\n")
    sys.stderr.flush()
    return code


def _fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"tmctl: error: {' '.join(message.split())}\n")  # always one line
    sys.stderr.flush()
    return typer.Exit(code)


def hoist_global_options(args: list[str], options: dict[str, bool]) -> list[str]:
    """Global options may follow the subcommand, as aws CLI and kubectl users type
    them (`tmctl task list --output json`): move each one (with its value) to the
    front, where the root command parses it. `options` maps each name to whether
    it takes a value; nothing after a bare `--` is touched."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            rest += args[i:]
            break
        name = token.split("=", 1)[0]
        if name in options:
            front.append(token)
            if options[name] and "=" not in token and i + 1 < len(args):
                front.append(args[i + 1])
                i += 1
        else:
            rest.append(token)
        i += 1
    return front + rest


class TmctlGroup(TyperGroup):
    """The root command. Accepts its options anywhere on the line, and is the one
    place errors become exit codes: domain errors carry their own, botocore
    errors are mapped by their code, anything else is a one-line bug report."""

    def parse_args(self, ctx, args):
        if ctx.parent is None:
            options = {name: not p.is_flag for p in self.params if p.param_type_name == "option"
                       for name in p.opts + p.secondary_opts if name not in ctx.help_option_names}
            args = hoist_global_options(list(args), options)
        return super().parse_args(ctx, args)

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """Click's own usage errors (a bad choice, a value out of range, an unknown
        option) as one stderr line with the fix, like every other error."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        from tmctl.core.errors import ExitCode

        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as err:
            if type(err).__name__ == "NoArgsIsHelpError":  # `tmctl task`: the group's help, as Click shows it
                err.show()
                raise SystemExit(err.exit_code) from None
            where = getattr(getattr(err, "ctx", None), "command_path", None) or "tmctl"
            raise SystemExit(_usage_line(f"{err.format_message()} (fix: see `{where} -h`)", err.exit_code)) from None
        except Abort:  # Ctrl-C or end of input at a question
            raise SystemExit(_usage_line("interrupted; nothing more was done", ExitCode.INTERRUPTED)) from None
        raise SystemExit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        from tmctl.core.errors import ExitCode, TmctlError, from_client_error

        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, ClickException, KeyboardInterrupt):
            raise
        except Exception as err:
            if _debug(ctx):
                raise
            if isinstance(err, TmctlError):
                raise _fail(str(err), err.exit_code) from None
            if type(err).__name__ in CREDENTIAL_ERRORS:
                raise _fail(f"{err} (fix: configure AWS credentials and a region, pass --profile/--region, "
                            "or use --local for the emulator)", ExitCode.ERROR) from None
            if type(err).__module__.startswith("botocore"):
                mapped = from_client_error(err, "AWS call failed")
                raise _fail(str(mapped), mapped.exit_code) from None
            raise _fail(f"unexpected {type(err).__name__}: {err} (run with --debug for the traceback)",
                        ExitCode.ERROR) from None


CREDENTIAL_ERRORS = frozenset({"NoCredentialsError", "PartialCredentialsError", "ProfileNotFound",
                               "NoRegionError", "TokenRetrievalError", "SSOTokenLoadError"})


def _debug(ctx) -> bool:
    from tmctl.core import settings

    return settings.DEBUG.get() == "1" or bool(getattr(ctx.obj, "debug", False))


app = typer.Typer(
    name="tmctl",
    cls=TmctlGroup,
    help="Bring the Task Manager stack up on a local emulator or AWS, and drive it: tasks, queues, workflows.\n\n"
         "Global options may come before or after the subcommand.\n\n"
         "Example: tmctl up --local && tmctl task create --title 'write docs' --wait --local",
    no_args_is_help=True,
    # Plain help: Rich's import alone costs more than the whole help should take.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="Target the local emulator (also TMCTL_LOCAL=1).")] = False,
    endpoint_url: Annotated[str | None, typer.Option(
        "--endpoint-url", help="Emulator endpoint (else TMCTL_ENDPOINT_URL, AWS_ENDPOINT_URL, "
                               "http://localhost:4566); implies --local.")] = None,
    stage: Annotated[str | None, typer.Option("--stage", help="Stage name (else TMCTL_STAGE, 'dev').")] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region (else AWS_REGION).")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile (AWS targets only).")] = None,
    output: Annotated[OutputFormat | None, typer.Option(
        "--output", "-o", case_sensitive=False,
        help="table or json (default: table on a terminal, json when piped).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Global options; every command reads them from the typed State on ctx.obj."""
    ctx.obj = State(local=local, endpoint_url=endpoint_url, stage=stage, region=region, profile=profile,
                    output=output.value if output else None, debug=debug)


app.command("up")(stack.up)
app.command("diff")(stack.diff)
app.command("down")(stack.down)
app.command("status")(stack.status)
app.command("verify")(stack.verify)
app.add_typer(tasks.app, name="task")
app.add_typer(local.app, name="local")
app.add_typer(queues.queue_app, name="queue")
app.add_typer(queues.dlq_app, name="dlq")
app.add_typer(executions.app, name="executions")
app.add_typer(iam.app, name="iam")
app.add_typer(config.app, name="config")
app.add_typer(pipeline.app, name="pipeline")
app.command("logs")(logs.logs)
app.command("doctor")(doctor.doctor)
app.command("dev")(dev.dev)


def main() -> None:
    app()
