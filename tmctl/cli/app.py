"""The root command: global options, the sub-apps, and the one place that turns
errors into an stderr line and an exit code."""

import sys
from typing import Annotated

import typer
from typer._click.exceptions import ClickException
from typer.core import TyperGroup
from typer.exceptions import Abort

from tmctl.cli import dev, doctor, logs, stack
from tmctl.cli.context import State
from tmctl.cli.options import OutputFormat


def _usage_line(message: str, code: int) -> int:
    """Say an error on stderr, always as one line, and give back its exit code."""
    sys.stderr.write(f"tmctl: error: {' '.join(message.split())}\n")
    sys.stderr.flush()
    return code


def _fail(message: str, code: int) -> typer.Exit:
    return typer.Exit(_usage_line(message, code))


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


# Command groups, imported only when one runs (or its own help or completion is asked for):
# name → (module:attribute, the group's one-line help for `tmctl --help`; a unit test keeps
# it equal to the group's own help). The attribute is a Typer app (a group), or a function
# (a single command, such as `console`).
LAZY_GROUPS: dict[str, tuple[str, str]] = {
    "task": ("tmctl.cli.tasks:app", "Create and read tasks through the HTTP API."),
    "local": ("tmctl.cli.local:app", "Manage the local emulator (the embedded MiniStack by default)."),
    "queue": ("tmctl.cli.queues:queue_app",
              "The stack's main queue and its DLQ side by side (or any pair with --queue)."),
    "dlq": ("tmctl.cli.queues:dlq_app", "The dead-letter queue: look at it, move its messages back, or empty it."),
    "executions": ("tmctl.cli.executions:app", "Step Functions executions of the task workflow, with a step timeline."),
    "iam": ("tmctl.cli.iam:app", "IAM of the deployed stack: what each role may do, and what it did."),
    "config": ("tmctl.cli.config:app", "Read and change the stage's runtime configuration (SSM parameters under "
                                       "/<app>/<stage>/), which the functions follow without a redeploy."),
    "pipeline": ("tmctl.cli.pipeline:app",
                 "The CI/CD pipeline: CodePipeline + CodeBuild deploying a stage on every push."),
    "snapshot": ("tmctl.cli.snapshot:app", "A stage's data as one portable file: tasks (every attribute), the "
                                           "queue's and the DLQ's messages (byte-exact), config. Between engines, "
                                           "ports and non-production stages."),
    "console": ("tmctl.cli.console:console", "A local web console for the stage: the pipeline with live figures, "
                                             "tasks, one task's path through the state machine, the DLQ with peek "
                                             "and redrive, the config switches."),
}


def load_group(name: str):
    """The Click group of a lazy command group, built from its Typer app."""
    import importlib

    module, _, attribute = LAZY_GROUPS[name][0].partition(":")
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
    else:  # a single command
        single = typer.Typer()
        single.command(name)(target)
        group = typer.main.get_command(single)
    group.name = name
    # Completion is installed from the root (`tmctl --install-completion`), not per group.
    group.params = [p for p in group.params if p.name not in {"install_completion", "show_completion"}]
    _plain_help(group)
    return group


def _plain_help(command) -> None:
    """Plain help in every group, as the root's: Rich's import alone costs more than the help."""
    command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


class TmctlGroup(TyperGroup):
    """The root command. Accepts its options anywhere on the line, imports a
    command group only when it runs, and is the one place errors become exit
    codes: domain errors carry their own, botocore errors are mapped by their
    code, anything else is a one-line bug report."""

    def list_commands(self, ctx):
        return [*super().list_commands(ctx), *(n for n in LAZY_GROUPS if n not in self.commands)]

    def get_command(self, ctx, name):
        if name in LAZY_GROUPS and name not in self.commands:
            self.add_command(load_group(name), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        """`tmctl --help` lists the lazy groups from their one-line help, importing none."""
        rows = [(name, LAZY_GROUPS[name][1] if name in LAZY_GROUPS and name not in self.commands
                 else self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        rows = [(name, c) for name, c in rows if isinstance(c, str) or (c is not None and not c.hidden)]
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, _short(c, limit)) for name, c in rows])

    def shell_complete(self, ctx, incomplete):
        """Completing a command name imports nothing: lazy groups answer from the registry."""
        from typer._click.shell_completion import CompletionItem

        lazy = [CompletionItem(name, help=_short(LAZY_GROUPS[name][1], 45)) for name in LAZY_GROUPS
                if name.startswith(incomplete) and name not in self.commands]
        return [*super().shell_complete(ctx, incomplete), *lazy]

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


def _short(command, limit: int) -> str:
    """A command's one-line help (Click's own shortening), or a registry line cut the same way."""
    if not isinstance(command, str):
        return command.get_short_help_str(limit)
    from typer._click.utils import make_default_short_help

    return make_default_short_help(command, limit)


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
app.command("logs")(logs.logs)
app.command("doctor")(doctor.doctor)
app.command("dev")(dev.dev)


def main() -> None:
    app()
