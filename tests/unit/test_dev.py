"""tmctl.core.dev: which functions a save reaches, and that nothing broken is pushed.

The project is a copy of the real lambdas/ and cloudformation/ (so the plan
cannot drift from what `up` packages); Lambda is a fake that records calls."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from tmctl.core import dev, package
from tmctl.core.deploy import load_template
from tmctl.core.errors import UsageError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ALL = ("task_api", "event_processor", "workflow_steps")


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lambdas", root / "lambdas", ignore=ignore)
    shutil.copytree(ROOT / "cloudformation", root / "cloudformation", ignore=ignore)
    return root


class FakeLambda:
    """Records UpdateFunctionCode and answers warm-ups; `broken` names fail theirs."""

    def __init__(self, broken: set[str] = frozenset()):
        self.updates: list[tuple[str, bytes]] = []
        self.invokes: list[str] = []
        self.broken = set(broken)

    def update_function_code(self, FunctionName, ZipFile):  # noqa: N803 - boto3's names
        self.updates.append((FunctionName, ZipFile))
        return {"CodeSha256": dev.code_sha256(ZipFile)}

    def get_waiter(self, name):
        self.waited = name
        return type("Waiter", (), {"wait": lambda _self, **kw: None})()

    def invoke(self, FunctionName, Payload):  # noqa: N803
        self.invokes.append(FunctionName)
        if FunctionName in self.broken:
            err = {"errorType": "ImportError", "errorMessage": "engine says no"}
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(err).encode())}
        return {"StatusCode": 200, "Payload": io.BytesIO(b"{}")}


def functions_for(project: Path) -> dict[str, dev.Function]:
    """As deployed by `up` from this tree: each runs exactly the zip of its source."""
    return {s: dev.Function(s, f"taskmanager-dev-{s.replace('_', '-')}", dev.label_of(s),
                            sha256=dev.code_sha256(dev.function_zip(project, s))) for s in ALL}


def loop_for(project: Path, lam: FakeLambda, checker=None) -> dev.DevLoop:
    return dev.DevLoop(project, lam, functions_for(project), checker)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# ---------------------------------------------------------------- the plan

def test_a_handler_file_maps_to_its_own_function_only(project):
    plan = dev.plan_changes(project, [project / "lambdas/workflow_steps/app.py"])
    assert plan.sources == ("workflow_steps",)
    assert not plan.stack


def test_a_change_under_common_reaches_every_function_that_packages_it(project):
    plan = dev.plan_changes(project, [project / "lambdas/common/taskcore/model.py"])
    assert plan.sources == ALL
    assert set(plan.sources) == set(package.FUNCTIONS.values())


@pytest.mark.parametrize("path", ["cloudformation/template.yaml", "cloudformation/statemachine.asl.json",
                                  "cloudformation/openapi.yaml"])
def test_template_state_machine_and_openapi_go_through_the_change_set(project, path):
    plan = dev.plan_changes(project, [project / path])
    assert plan.stack and plan.sources == ()


def test_what_no_function_packages_and_no_change_set_reads_is_ignored(project):
    plan = dev.plan_changes(project, [project / "cloudformation/pipeline.yaml",
                                      project / "lambdas/workflow_steps/__pycache__/app.cpython-311.pyc",
                                      project / "lambdas/README.md", "/elsewhere/app.py"])
    assert plan.empty
    assert plan.ignored == ("cloudformation/pipeline.yaml", "lambdas/README.md")


def test_several_files_in_one_batch_are_one_entry_per_function(project):
    plan = dev.plan_changes(project, [project / "lambdas/workflow_steps/app.py",
                                      project / "lambdas/workflow_steps/extra.py",
                                      "lambdas/task_api/app.py", project / "lambdas/workflow_steps/app.py"])
    assert plan.sources == ("task_api", "workflow_steps")


def test_the_template_maps_each_function_to_its_source_dir():
    template = load_template(ROOT / "cloudformation/template.yaml")
    assert dev.function_sources(template) == {"TaskApiFunction": "task_api",
                                              "EventProcessorFunction": "event_processor",
                                              "WorkflowStepsFunction": "workflow_steps"}


def test_the_zip_pushed_is_byte_for_byte_the_one_up_uploads(project, tmp_path):
    (tmp_path / "build").mkdir()
    art = package.function_artifact(project, tmp_path / "build", "WorkflowStepsCodeKey", "workflow_steps")
    assert dev.function_zip(project, "workflow_steps") == art.path.read_bytes()


# ---------------------------------------------------------------- the loop

def test_a_save_of_several_files_is_one_update_per_function_then_warmed(project):
    lam = FakeLambda()
    loop = loop_for(project, lam)
    edit(project / "lambdas/workflow_steps/app.py", '"valid"', '"valid v2"')
    edit(project / "lambdas/common/taskcore/model.py", '"""', '"""changed. ')
    step = loop.handle([project / "lambdas/workflow_steps/app.py", project / "lambdas/common/taskcore/model.py"])
    assert not step.errors
    pushed_to = {name for name, _ in lam.updates}
    assert pushed_to == {f"taskmanager-dev-{s.replace('_', '-')}" for s in ALL}
    assert len(lam.updates) == 3  # one update per function
    assert sorted(lam.invokes) == sorted(pushed_to)
    assert set(step.outcome.live) == {"task-api", "event-processor", "workflow-steps"}
    pushed = dict(lam.updates)["taskmanager-dev-workflow-steps"]
    assert b"valid v2" in zipfile.ZipFile(io.BytesIO(pushed)).read("app.py")


def test_a_syntax_error_is_reported_with_file_and_line_and_nothing_is_pushed(project):
    lam = FakeLambda()
    loop = loop_for(project, lam)
    app = project / "lambdas/workflow_steps/app.py"
    lines = app.read_text().splitlines()
    lines.insert(40, "def broken(:")
    app.write_text("\n".join(lines) + "\n")
    step = loop.handle([app])
    assert lam.updates == [] and lam.invokes == []
    assert [str(e) for e in step.errors] == ["lambdas/workflow_steps/app.py:41: SyntaxError: invalid syntax"]
    assert loop.pending.sources == ("workflow_steps",)  # still to go live


def test_a_broken_common_file_keeps_every_function_on_its_old_code(project):
    lam = FakeLambda()
    loop = loop_for(project, lam)
    model = project / "lambdas/common/taskcore/model.py"
    model.write_text(model.read_text() + "\nif True\n")
    step = loop.handle([model])
    assert lam.updates == []
    assert {e.file for e in step.errors} == {"lambdas/common/taskcore/model.py"}
    assert {e.source for e in step.errors} == set(ALL)


def test_the_next_good_save_goes_live_with_what_was_pending(project):
    lam = FakeLambda()
    loop = loop_for(project, lam)
    model = project / "lambdas/common/taskcore/model.py"
    good = model.read_text()
    model.write_text(good + "\nif True\n")
    assert loop.handle([model]).errors
    model.write_text(good + "\n# fixed\n")
    edit(project / "lambdas/workflow_steps/app.py", '"valid"', '"valid v2"')
    step = loop.handle([project / "lambdas/workflow_steps/app.py"])  # only this file in the batch
    assert not step.errors
    assert len(lam.updates) == 3  # the pending common/ change reaches all three, once each
    assert loop.pending.empty


def test_an_unchanged_zip_is_not_pushed_again(project):
    lam = FakeLambda()
    loop = loop_for(project, lam)
    app = project / "lambdas/task_api/app.py"
    app.write_text(app.read_text())  # saved, same bytes
    step = loop.handle([app])
    assert lam.updates == [] and step.outcome.unchanged == ["task-api"]


def test_a_template_change_asks_for_the_change_set_and_pushes_nothing(project):
    lam = FakeLambda()
    loop = loop_for(project, lam)
    step = loop.handle([project / "cloudformation/statemachine.asl.json"])
    assert step.stack and lam.updates == []


def test_a_template_change_with_broken_code_waits_for_the_code(project):
    lam = FakeLambda()
    loop = loop_for(project, lam)
    app = project / "lambdas/event_processor/app.py"
    app.write_text(app.read_text() + "\n)\n")
    step = loop.handle([project / "cloudformation/template.yaml"])
    assert not step.stack and step.errors and step.errors[0].file == "lambdas/event_processor/app.py"


def test_code_the_engine_cannot_run_is_replaced_by_the_previous_code(project):
    lam = FakeLambda(broken={"taskmanager-dev-workflow-steps"})
    loop = loop_for(project, lam)
    before = dev.function_zip(project, "workflow_steps")
    edit(project / "lambdas/workflow_steps/app.py", '"valid"', '"valid v2"')
    step = loop.handle([project / "lambdas/workflow_steps/app.py"])
    assert [e.source for e in step.outcome.errors] == ["workflow_steps"]
    assert lam.updates[-1] == ("taskmanager-dev-workflow-steps", before)
    assert not step.outcome.live and loop.pending.sources == ("workflow_steps",)


# ---------------------------------------------------------------- the import check (a real subprocess)

@pytest.fixture
def checker():
    c = dev.ImportChecker()
    yield c
    c.close()


def test_an_import_error_is_caught_in_another_process_with_file_and_line(project, checker):
    lam = FakeLambda()
    loop = loop_for(project, lam, checker)
    app = project / "lambdas/workflow_steps/app.py"
    lines = app.read_text().splitlines()
    lines.insert(30, "import no_such_module_for_tmctl_dev")
    app.write_text("\n".join(lines) + "\n")
    step = loop.handle([app])
    assert lam.updates == []
    assert [str(e) for e in step.errors] == [
        "lambdas/workflow_steps/app.py:31: ModuleNotFoundError: No module named 'no_such_module_for_tmctl_dev'"]


def test_an_error_raised_in_common_at_import_names_the_common_file(project, checker):
    data_file = project / "lambdas/common/taskcore/config.py"
    data_file.write_text(data_file.read_text() + "\nraise RuntimeError('config is broken')\n")
    err = checker.check("task_api", dev.function_zip(project, "task_api"), "app.handler", {})
    assert err is not None and err.file == "lambdas/common/taskcore/config.py"
    assert err.message == "RuntimeError: config is broken"


def test_a_missing_handler_function_is_an_error(project, checker):
    err = checker.check("workflow_steps", dev.function_zip(project, "workflow_steps"), "app.no_such_handler", {})
    assert err is not None and "no_such_handler" in err.message


def test_good_code_imports_after_a_preload(project, checker):
    data = dev.function_zip(project, "workflow_steps")
    checker.preload([("workflow_steps", data, "app.handler", {})])
    assert checker.check("workflow_steps", data, "app.handler", {}) is None


# ---------------------------------------------------------------- the rest

@pytest.mark.parametrize("stage", ["prod", "production", "PROD"])
def test_production_stages_are_refused_on_aws(stage):
    with pytest.raises(UsageError):
        dev.check_stage(stage, local=False)


def test_any_stage_is_fine_locally_and_dev_stages_on_aws():
    dev.check_stage("prod", local=True)
    dev.check_stage("alice", local=False)


@pytest.mark.parametrize("line,level", [
    ('{"level":"INFO","message":"warm"}', "INFO"),
    ('{"level":"ERROR","message":"boom"}', "ERROR"),
    ('{"level":"WARNING","message":"slow"}', "WARNING"),
    ("START RequestId: 1 Version: $LATEST", "REPORT"),
    ("REPORT RequestId: 1 Duration: 3 ms", "REPORT"),
    ("Traceback (most recent call last):", "ERROR"),
    ("[ERROR] ValueError: bad", "ERROR"),
    ("plain text", "INFO"),
])
def test_log_lines_get_their_level(line, level):
    assert dev.log_level(line) == level


@pytest.mark.parametrize("stage", ["prod", "production"])
def test_the_command_refuses_production_on_aws_before_touching_anything(tmp_path, stage):
    from typer.testing import CliRunner

    from tmctl.cli.app import app
    from tmctl.core.errors import ExitCode

    env = {"TMCTL_ENDPOINT_URL": "", "AWS_ENDPOINT_URL": "", "TMCTL_LOCAL": "", "AWS_REGION": "eu-west-1",
           "TMCTL_STATE_DIR": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["--stage", stage, "dev", "--yes"], env=env)
    assert result.exit_code == ExitCode.USAGE, (result.stdout, result.stderr)
    assert "does not push code to the" in result.stderr and result.stdout == ""


def test_upgraded_dependencies_send_the_batch_through_the_change_set(project, monkeypatch):
    # The layer is built from the installed distributions: only `up`'s path republishes it.
    lam = FakeLambda()
    loop = loop_for(project, lam)
    monkeypatch.setattr(dev, "layer_stamp", lambda: "aws-lambda-powertools==99.0")
    step = loop.handle([project / "lambdas/task_api/app.py"])
    assert step.stack and lam.updates == []


def test_code_is_pushed_under_the_deploy_lock(project):
    import contextlib

    held = []

    @contextlib.contextmanager
    def lock():
        held.append(True)
        yield
        held.append(False)

    class Checked(FakeLambda):
        def update_function_code(self, **kwargs):
            assert held == [True], "UpdateFunctionCode outside the deploy lock"
            return super().update_function_code(**kwargs)

    lam = Checked()
    loop = dev.DevLoop(project, lam, functions_for(project), None, lock=lock)
    edit(project / "lambdas/workflow_steps/app.py", '"valid"', '"valid v2"')
    loop.handle([project / "lambdas/workflow_steps/app.py"])
    assert len(lam.updates) == 1 and held == [True, False]


def test_on_aws_the_code_is_set_once_and_waited_for(project):
    lam = FakeLambda()
    loop = dev.DevLoop(project, lam, functions_for(project), None, wait_updated=True)
    edit(project / "lambdas/workflow_steps/app.py", '"valid"', '"valid v2"')
    loop.handle([project / "lambdas/workflow_steps/app.py"])
    assert len(lam.updates) == 1 and lam.waited == "function_updated_v2"
