"""Shared options (tmctl/cli/options.py) and the one-line usage errors: the same
choices, bounds and help everywhere, and bad input refused in one stderr line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tmctl.cli import options as opt
from tmctl.cli.app import app
from tmctl.core.errors import ExitCode

pytestmark = pytest.mark.unit
ENV = {"NO_COLOR": "1", "COLUMNS": "200", "TMCTL_LOCAL": "1", "TMCTL_ENDPOINT_URL": "http://127.0.0.1:9"}


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})


def test_the_cli_choices_are_the_contracts_values():
    from tmctl.core.executions import STATUSES as EXECUTION_STATUSES
    from tmctl.core.status import TASK_STATUSES

    assert list(opt.TaskStatus) == list(TASK_STATUSES)
    assert list(opt.ExecutionStatus) == list(EXECUTION_STATUSES)
    from tmctl.core.contract import Priority

    assert list(opt.Priority) == list(Priority)


@pytest.mark.parametrize(("args", "says"), [
    (["task", "list", "--limit", "0"], "'--limit': 0 is not in the range 1<=x<=100"),
    (["task", "list", "--limit", "101"], "'--limit': 101 is not in the range"),
    (["task", "list", "--status", "DONE"], "'--status': 'DONE' is not one of"),
    (["task", "create", "--priority", "asap"], "'--priority': 'asap' is not one of"),
    (["executions", "list", "--status", "nope"], "'--status': 'nope' is not one of"),
    (["status", "-o", "yaml"], "'yaml' is not one of 'table', 'json'"),
    (["local", "logs", "-n", "-5"], "'-n': -5 is not in the range x>=0"),
    (["task", "list", "--bogus"], "No such option: --bogus"),
    (["bogus"], "No such command 'bogus'"),
])
def test_bad_input_is_one_stderr_line_with_the_fix_and_exit_2(args, says):
    result = run(*args)

    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tmctl: error: ")
    assert says in result.stderr and "-h`)" in result.stderr


def test_choices_are_case_insensitive_and_listed_as_the_api_spells_them(monkeypatch):
    seen = []

    class FakeApi:
        def list(self, status, limit, next_token):
            seen.append((status, limit))
            from tmctl.core.api import Response

            return Response(200, {"items": []}, 1)

    monkeypatch.setattr("tmctl.cli.tasks._api", lambda ctx: FakeApi())
    result = run("task", "list", "--status", "dead_lettered", "--limit", "100", "-o", "json")

    assert result.exit_code == 0, result.stderr
    assert seen == [("DEAD_LETTERED", 100)]
    assert "[PENDING|QUEUED|DEAD_LETTERED|PROCESSING|COMPLETED|FAILED]" in run("task", "list", "-h").stdout


def test_group_without_a_command_still_shows_its_help():
    result = run("task")
    assert result.exit_code == ExitCode.USAGE and "Usage: tmctl task" in result.output


@pytest.fixture
def emulator_log(tmp_path):
    log = tmp_path / "emulator-9" / "ministack.log"
    log.parent.mkdir()
    log.write_text("".join(f"line {i}\n" for i in range(1, 8)))
    return {"TMCTL_STATE_DIR": str(tmp_path)}


@pytest.mark.parametrize(("n", "expected"), [("0", ""), ("2", "line 6\nline 7\n"), ("100", None)])
def test_local_logs_shows_the_last_n_lines_and_none_for_zero(emulator_log, n, expected):
    result = run("local", "logs", "-n", n, env=emulator_log)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == (expected if expected is not None else "".join(f"line {i}\n" for i in range(1, 8)))


def test_reporter_folds_routine_lines_only_when_asked(monkeypatch):
    from tmctl.cli import output as out

    printed: list[str] = []
    monkeypatch.setattr(out, "progress", lambda message, detail=False: printed.append(message))

    class Terminal:
        is_terminal = True

        def status(self, title):
            import contextlib

            class Status(contextlib.AbstractContextManager):
                def update(self, text):
                    pass

                def __exit__(self, *exc):
                    return None

            return Status()

    monkeypatch.setattr(out, "stderr_console", lambda: Terminal())
    with out.Reporter("deploying", fold=True) as folded:
        folded("an event", detail=True)
        folded("a failure")
    with out.Reporter("deploying", fold=False) as kept:
        kept("an event", detail=True)

    assert printed == ["a failure", "an event"]


def test_a_declined_change_set_is_discarded(monkeypatch):
    from tmctl.cli import output as out
    from tmctl.core.deploy import ChangeSet, ResourceChange
    from tmctl.core.errors import Cancelled

    cs = ChangeSet("stack", "UPDATE", "arn:cs", "cs-1", [ResourceChange("Modify", "Fn", "AWS::Lambda::Function")])
    discarded = []
    monkeypatch.setattr(out, "confirm", lambda q, yes: (_ for _ in ()).throw(Cancelled("no")))

    with pytest.raises(Cancelled):
        out.confirm_change_set(cs, "there", yes=False, discard=lambda: discarded.append(cs.name))

    assert discarded == ["cs-1"]
