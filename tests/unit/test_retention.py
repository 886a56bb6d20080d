"""`down` of a production-like stage on a LocalStack that ignores DeletionPolicy
(its legacy CloudFormation engine) is refused in one line (tmctl.core.retention).
The probe's real answers, from both LocalStack engines, are in
tests/integration/test_localstack_host.py; here fakes play the engine."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.core import retention
from tmctl.core.errors import ExitCode
from tmctl.core.local import emulator

pytestmark = pytest.mark.unit


class FakeEngine:
    """CloudFormation + SSM enough for the probe: one stack at a time, made of one SSM parameter."""

    def __init__(self, honours: bool, create_status: str = "CREATE_COMPLETE"):
        self.honours, self.create_status = honours, create_status
        self.parameters: dict[str, str] = {}
        self.stacks: dict[str, str] = {}
        self.calls: list[str] = []
        self.cfn, self.ssm = self._Cfn(self), self._Ssm(self)

    class _Cfn:
        def __init__(self, engine):
            self.e = engine

        def create_stack(self, StackName, TemplateBody):  # noqa: N803 - boto3's names
            import json

            self.e.calls.append("create_stack")
            props = json.loads(TemplateBody)["Resources"]["Kept"]
            assert props["DeletionPolicy"] == "Retain"
            self.e.parameters[props["Properties"]["Name"]] = "x"
            self.e.stacks[StackName] = self.e.create_status
            self.e.kept = props["Properties"]["Name"]
            return {"StackId": StackName}

        def describe_stacks(self, StackName):  # noqa: N803
            if StackName not in self.e.stacks:
                raise ClientError({"Error": {"Code": "ValidationError"}}, "DescribeStacks")
            return {"Stacks": [{"StackStatus": self.e.stacks[StackName]}]}

        def delete_stack(self, StackName):  # noqa: N803
            self.e.calls.append("delete_stack")
            del self.e.stacks[StackName]
            if not self.e.honours:
                self.e.parameters.pop(self.e.kept, None)

    class _Ssm:
        def __init__(self, engine):
            self.e = engine

        def get_parameter(self, Name):  # noqa: N803
            if Name not in self.e.parameters:
                raise ClientError({"Error": {"Code": "ParameterNotFound"}}, "GetParameter")
            return {"Parameter": {"Name": Name}}

        def delete_parameter(self, Name):  # noqa: N803
            self.e.calls.append("delete_parameter")
            if Name not in self.e.parameters:
                raise ClientError({"Error": {"Code": "ParameterNotFound"}}, "DeleteParameter")
            del self.e.parameters[Name]


@pytest.mark.parametrize("honours", [True, False])
def test_the_probe_tells_the_engines_apart_and_leaves_nothing(honours):
    engine = FakeEngine(honours)
    answer = retention.probe(engine.cfn, engine.ssm)
    assert answer.honoured is honours and answer.detail == ""
    assert engine.stacks == {} and engine.parameters == {}, "the probe left something behind"


def test_a_probe_stack_that_fails_tells_nothing_and_is_removed():
    engine = FakeEngine(True, create_status="CREATE_FAILED")
    answer = retention.probe(engine.cfn, engine.ssm)
    assert answer.honoured is None and "CREATE_FAILED" in answer.detail
    assert engine.stacks == {} and engine.parameters == {}


def test_the_answer_is_kept_per_engine_session(tmp_path):
    runs = []

    def run(_cfn, _ssm):
        runs.append(1)
        return retention.Answer(False, 0.1)

    cache = tmp_path / "retain.json"
    first = retention.honours_retain(None, None, cache, "session-a", run=run)
    again = retention.honours_retain(None, None, cache, "session-a", run=run)
    other = retention.honours_retain(None, None, cache, "session-b", run=run)  # a restarted engine: asked again
    unkept = retention.honours_retain(None, None, cache, None, run=run)
    assert (first.honoured, again.honoured, again.cached) == (False, False, True)
    assert not other.cached and not unkept.cached and len(runs) == 3


def _guard(stage="prod", engine="localstack", exists=True, honoured=False, tmp=None):
    lines: list[str] = []
    runs: list[int] = []

    def run(_cfn, _ssm):
        runs.append(1)
        return retention.Answer(honoured, 0.1, "" if honoured is not None else "Throttling: slow down")

    answer = retention.guard_down(None, None, stage=stage, engine=engine, version="2026.3.0", stack_exists=exists,
                                  cache=tmp / "c.json", session=None, progress=lines.append, run=run)
    return answer, runs, lines


def test_down_of_prod_where_retain_is_ignored_is_refused_with_the_fix(tmp_path):
    with pytest.raises(retention.RetainIgnored) as raised:
        _guard(tmp=tmp_path)
    err = raised.value
    assert err.exit_code == ExitCode.USAGE and "ignores DeletionPolicy" in err.message
    assert "nothing was deleted" in err.message and "PROVIDER_OVERRIDE_CLOUDFORMATION=engine-legacy" in err.fix


@pytest.mark.parametrize("kwargs", [{"stage": "dev"}, {"engine": "ministack"}, {"exists": False}])
def test_only_a_production_stack_on_localstack_is_asked(tmp_path, kwargs):
    answer, runs, _ = _guard(tmp=tmp_path, **kwargs)
    assert answer is None and runs == []


def test_an_engine_that_keeps_them_or_cannot_tell_goes_on(tmp_path):
    assert _guard(tmp=tmp_path, stage="Production", honoured=True)[0].honoured is True
    answer, _, lines = _guard(tmp=tmp_path, honoured=None)
    assert answer.honoured is None and "could not tell" in lines[0] and "Throttling" in lines[0]


def test_tmctl_down_refuses_in_one_line_and_deletes_nothing(monkeypatch, tmp_path):
    engine = emulator.Engine("localstack", "2026.3.0", "http://127.0.0.1:45996", {})
    monkeypatch.setattr(emulator, "probe", lambda *_a, **_k: engine)
    monkeypatch.setattr(emulator, "localstack_session", lambda *_a, **_k: "s-1")
    monkeypatch.setattr(retention, "probe", lambda *_a, **_k: retention.Answer(False, 0.1))
    monkeypatch.setattr("tmctl.core.stack.describe_stack", lambda *_a, **_k: {"StackStatus": "CREATE_COMPLETE"})
    deleted = []
    monkeypatch.setattr("tmctl.core.deploy.delete_stack", lambda *_a, **_k: deleted.append(1))

    result = CliRunner().invoke(app, ["down", "--stage", "prod", "--endpoint-url", engine.endpoint, "--yes"],
                                env={"TMCTL_STATE_DIR": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "300"})

    assert result.exit_code == ExitCode.USAGE, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("tmctl: error:")]
    assert len(errors) == 1 and "ignores DeletionPolicy" in errors[0] and deleted == []
