"""`tmctl config`: the stage's SSM parameters as the template creates them (in
moto), listed, read and written only within what each one may hold."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.core import config
from tmctl.core.errors import ExitCode, NotFound, UsageError

pytestmark = pytest.mark.unit
PATH = "/taskmanager/dev/"


def test_list_shows_every_key_the_stack_created_with_its_allowed_values(stack):
    settings = {s.key: s for s in config.list_settings(stack.ssm, PATH)}

    assert set(settings) == {"failure-injection", "intake", "log-level", "retry-base-seconds"}
    assert settings["intake"].value == "open"
    assert settings["intake"].allowed_pattern == "^(open|paused)$"
    assert settings["log-level"].description


def test_set_writes_a_valid_value_and_keeps_description_and_pattern(stack):
    before, after = config.set_setting(stack.ssm, PATH, "log-level", "DEBUG", stage="dev")

    assert (before.value, after.value, after.version) == ("INFO", "DEBUG", before.version + 1)
    again = config.get_setting(stack.ssm, PATH, "log-level")
    assert again.value == "DEBUG"
    assert (again.description, again.allowed_pattern) == (before.description, before.allowed_pattern)


def test_the_same_value_writes_nothing(stack):
    before, after = config.set_setting(stack.ssm, PATH, "intake", "open", stage="dev")

    assert before == after
    assert config.get_setting(stack.ssm, PATH, "intake").version == before.version


@pytest.mark.parametrize(("key", "value"), [
    ("intake", "closed"), ("intake", "open "), ("log-level", "TRACE"), ("retry-base-seconds", "61"),
    ("retry-base-seconds", "-1"), ("failure-injection", "not json"), ("failure-injection", '{"at": "process"}'),
    ("failure-injection", '[{"at": "everywhere"}]'), ("failure-injection", '[{"at": "process", "extra": 1}]'),
])
def test_an_invalid_value_is_refused_and_nothing_is_written(stack, key, value):
    before = config.get_setting(stack.ssm, PATH, key)

    with pytest.raises(UsageError):
        config.set_setting(stack.ssm, PATH, key, value, stage="dev")

    assert config.get_setting(stack.ssm, PATH, key) == before


def test_an_unknown_key_is_refused_with_the_known_ones(stack):
    with pytest.raises(UsageError) as err:
        config.set_setting(stack.ssm, PATH, "intkae", "paused", stage="dev")

    assert "intake" in err.value.fix and "log-level" in err.value.fix
    assert stack.ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [PATH + "intkae"]}])["Parameters"] == []


def test_failure_injection_on_production_is_refused_but_clearing_it_is_not(stack):
    rules = json.dumps([{"at": "process", "match": "boom-*"}])
    with pytest.raises(UsageError, match="production"):
        config.set_setting(stack.ssm, PATH, "failure-injection", rules, stage="prod")

    config.set_setting(stack.ssm, PATH, "failure-injection", rules, stage="dev")
    _, after = config.set_setting(stack.ssm, PATH, "failure-injection", "[]", stage="prod")
    assert after.value == "[]"


def test_a_stage_without_a_stack_says_so(stack):
    with pytest.raises(NotFound):
        config.get_setting(stack.ssm, "/taskmanager/nowhere/", "intake")


def test_injection_points_match_the_functions():
    from taskcore.config import INJECTION_POINTS

    assert config.INJECTION_POINTS == INJECTION_POINTS


# ------------------------------------------------------------------ the commands

AWS_ENV = {"AWS_REGION": "us-east-1", "TMCTL_ENDPOINT_URL": "", "TMCTL_LOCAL": "", "NO_COLOR": "1", "COLUMNS": "160"}


def tmctl(*args: str):
    return CliRunner().invoke(app, ["--stage", "dev", *args], env=AWS_ENV)


@pytest.fixture
def no_stack_outputs(monkeypatch):
    """moto holds the parameters but no CloudFormation stack to read the cache time from."""
    from tmctl.cli.context import State

    def missing(_self):
        raise NotFound("stack taskmanager-dev not found", "tmctl up")

    monkeypatch.setattr(State, "stack", missing)


def test_cli_set_then_get(stack, no_stack_outputs):
    result = tmctl("config", "set", "intake", "paused", "--output", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"version": 0} == {
        "key": "intake", "name": PATH + "intake", "before": "open", "value": "paused", "version": 0, "changed": True,
        "followedWithinSeconds": None}  # no stack to say
    human = tmctl("config", "set", "intake", "open", "--output", "table")
    assert "paused → open" in human.stderr
    tmctl("config", "set", "intake", "paused")

    assert tmctl("config", "get", "intake", "--output", "table").stdout.strip() == "paused"
    listed = json.loads(tmctl("config", "list", "--output", "json").stdout)
    assert {s["key"]: s["value"] for s in listed}["intake"] == "paused"


def test_cli_refuses_an_invalid_value_with_one_line_and_the_usage_code(stack, no_stack_outputs):
    result = tmctl("config", "set", "intake", "shut")

    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == ""
    assert "invalid value 'shut' for intake" in result.stderr
    assert config.get_setting(stack.ssm, PATH, "intake").value == "open"
