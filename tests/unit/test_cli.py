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
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


def all_commands():
    return [(" ".join(p), c) for p, c in walk(typer.main.get_command(app)) if p]


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
