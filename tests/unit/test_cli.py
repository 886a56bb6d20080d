"""The CLI offline: every command has help with an example, `--help` loads
neither boto3 nor rich, and errors become one stderr line and the right exit code."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.core.errors import ExitCode

pytestmark = pytest.mark.unit
OFFLINE_ENV = {"TMCTL_ENDPOINT_URL": "http://127.0.0.1:9", "TMCTL_LOCAL": "", "NO_COLOR": "1", "COLUMNS": "120"}


def walk(command, path=()):
    """Every command, the lazily imported groups included (asked by name, as Click does)."""
    yield path, command
    if hasattr(command, "list_commands"):
        ctx = command.make_context("tmctl", [], resilient_parsing=True)
        for name in sorted(command.list_commands(ctx)):
            yield from walk(command.get_command(ctx, name), (*path, name))


def all_commands():
    commands = [(" ".join(p), c) for p, c in walk(typer.main.get_command(app)) if p]
    assert len(commands) > 30, "the walk lost commands"  # 38 on 2026-12-04
    return commands


@pytest.mark.parametrize(("path", "command"), all_commands(), ids=[p for p, _ in all_commands()])
def test_every_command_has_help_with_an_example(path, command):
    assert command.help, f"`tmctl {path}` has no help"
    assert "Example:" in command.help and "tmctl" in command.help.split("Example:", 1)[1], path
    result = CliRunner().invoke(app, [*path.split(), "--help"], env=OFFLINE_ENV)
    assert result.exit_code == 0 and "Usage:" in result.stdout


def test_help_imports_neither_boto3_nor_rich():
    # Shell completion runs the program on every Tab: the help path must stay light.
    code = ("import sys; from tmctl.cli.app import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('boto3', 'botocore', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(("args", "code"), [
    (["--output", "yaml", "status"], ExitCode.USAGE),
    (["no-such-command"], ExitCode.USAGE),
    (["--stage", "Bad_Stage", "status"], ExitCode.USAGE),
    (["up", "--param", "NoEquals"], ExitCode.USAGE),
    (["local", "logs"], ExitCode.NOT_FOUND),
])
def test_errors_are_one_stderr_line_and_a_distinct_exit_code(tmp_path, args, code):
    # (an unreachable backend, exit 4, needs a socket: see tests/integration/test_flow.py)
    env = {**OFFLINE_ENV, "TMCTL_STATE_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.strip(), "an error with nothing on stderr"
    if code != ExitCode.USAGE:  # our own errors: exactly one line, with the fix
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("tmctl: error:")


# ------------------------------------------------------------------ AWS: questions before changes

AWS_ENV = {"TMCTL_ENDPOINT_URL": None, "TMCTL_LOCAL": None, "TMCTL_AWS_ENDPOINT_URL": None, "NO_COLOR": "1",
           "COLUMNS": "120"}


@pytest.mark.parametrize("args", [["up"], ["up", "-p", "LogRetentionDays=3"], ["down"]])
def test_aws_changes_without_a_terminal_or_yes_refuse_before_any_call(tmp_path, args):
    # GIVEN an AWS target and no terminal on stdin (CliRunner's stdin is not one; sockets are refused,
    # so reaching AWS at all would fail differently)
    result = CliRunner().invoke(app, args, env={**AWS_ENV, "TMCTL_STATE_DIR": str(tmp_path)})

    # THEN one stderr line with the fix, a usage exit code, nothing on stdout
    assert result.exit_code == ExitCode.USAGE, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tmctl: error:")
    assert "stdin is not a terminal" in result.stderr and "--yes" in result.stderr
    assert not (tmp_path / "build").exists()  # not even packaged


def test_aws_with_no_region_anywhere_says_how_to_set_one(monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    result = CliRunner().invoke(app, ["status"], env={**AWS_ENV, "TMCTL_STATE_DIR": str(tmp_path)})

    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert result.stderr.count("\n") == 1 and "no AWS region" in result.stderr
    assert "--region" in result.stderr and "AWS_REGION" in result.stderr


def test_diff_is_a_command():
    assert "diff" in typer.main.get_command(app).commands


GROUP_MODULES = ("tmctl.cli.tasks", "tmctl.cli.local", "tmctl.cli.queues", "tmctl.cli.executions",
                 "tmctl.cli.iam", "tmctl.cli.config", "tmctl.cli.pipeline", "tmctl.cli.console")


def imported_after(*argv: str, env: dict | None = None) -> list[str]:
    """The command groups a run of `tmctl ARGV` imported, in a fresh interpreter."""
    import os

    code = ("import sys; from tmctl.cli.app import app\n"
            "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {GROUP_MODULES!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout
    return eval(out.strip().splitlines()[-1])  # noqa: S307 - our own print of a list of names


def test_root_help_and_command_name_completion_import_no_command_group():
    assert imported_after("--help") == []
    assert imported_after(env={"_TMCTL_COMPLETE": "complete_bash", "COMP_WORDS": "tmctl ta",
                               "COMP_CWORD": "1"}) == []


def test_a_group_is_imported_when_it_runs_and_only_it():
    assert imported_after("task", "--help") == ["tmctl.cli.tasks"]
    assert imported_after("dlq", "redrive", "--help") == ["tmctl.cli.queues"]


def test_the_root_help_lists_each_lazy_group_with_its_own_first_line():
    from tmctl.cli.app import LAZY_GROUPS, load_group

    assert set(LAZY_GROUPS) >= {"task", "local", "queue", "dlq", "executions", "iam", "config", "pipeline"}
    for name, (_, line) in LAZY_GROUPS.items():
        assert " ".join(load_group(name).help.split("\n\n")[0].split()) == line, name
    listed = CliRunner().invoke(app, ["--help"], env={**OFFLINE_ENV, "COLUMNS": "300"}).stdout
    assert all(f"  {name} " in listed for name in LAZY_GROUPS)
