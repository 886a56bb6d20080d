"""The task contract, lambdas/common/taskcore/contract.py: one file the Lambdas
import and tmctl loads (tmctl.core.contract), so neither side holds a copy.

What is checked: tmctl's names are that file's (not equal copies), which file
tmctl picks, that loading it stays cheap and pure, that every Lambda zip
carries it, and the TaskCreated wire format itself."""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tokenize
import zipfile
from pathlib import Path

import pytest
from taskcore import contract as lambdas_contract

from tmctl.core import contract, package
from tmctl.core.errors import TmctlError
from tmctl.core.target import ENV_PROJECT_DIR

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_FILE = ROOT / "lambdas" / "common" / "taskcore" / "contract.py"
CREATED = "2025-03-10T15:42:24.301Z"


def run_python(code: str, cwd: Path) -> str:
    """`code` in a fresh interpreter, with no TMCTL_ variable pointing it anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMCTL_")}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def checkout(base: Path, contract_text: str | None) -> Path:
    """A project tree (what tmctl.core.bundle recognises), with this contract.py or none."""
    for marker in ("cloudformation/template.yaml", "cloudformation/statemachine.asl.json"):
        (base / marker).parent.mkdir(parents=True, exist_ok=True)
        (base / marker).write_text("{}")
    taskcore = base / "lambdas" / "common" / "taskcore"
    taskcore.mkdir(parents=True)
    if contract_text is not None:
        (taskcore / "contract.py").write_text(contract_text)
    return base


# ------------------------------------------------------------------ one file, not two copies


def test_tmctl_runs_the_lambdas_own_file():
    # GIVEN a fresh tmctl in this checkout WHEN reconcile (a user of the contract) is imported
    code = ("import json, sys; import tmctl.core.reconcile as r; import tmctl.core.contract as c; "
            "print(json.dumps([sys.modules[c.MODULE_NAME].__file__, r.execution_name.__code__.co_filename, "
            "r.task_created_message.__code__.co_filename, 'taskcore' in sys.modules, "
            "any(p.endswith('common') for p in sys.path)]))")
    module_file, name_code, event_code, taskcore_imported, common_on_path = json.loads(run_python(code, ROOT))

    # THEN the code it runs is the very file the Lambdas import, under tmctl's private
    # name: the Lambdas' package did not become importable, nor lambdas/common a path
    assert Path(module_file).samefile(CONTRACT_FILE)
    assert Path(name_code).samefile(CONTRACT_FILE) and Path(event_code).samefile(CONTRACT_FILE)
    assert not taskcore_imported and not common_on_path


def test_the_lambdas_import_the_same_file():
    assert Path(lambdas_contract.__file__).samefile(CONTRACT_FILE)


def test_every_name_tmctl_uses_is_re_exported_from_the_loaded_module():
    loaded = sys.modules[contract.MODULE_NAME]
    assert [n for n in contract.NAMES if getattr(contract, n) is not getattr(loaded, n)] == []


def test_tmctl_holds_no_copy_of_the_event():
    # The event's literals belong to the contract; a tmctl module spelling them out
    # would be a second definition (docstrings and comments may still name it, and
    # the loader names the class TaskCreated among what it re-exports).
    literals = {contract.EVENT_TYPE, contract.EVENT_TYPE_ATTRIBUTE}
    found = []
    for path in set((ROOT / "tmctl").rglob("*.py")) - {ROOT / "tmctl" / "core" / "contract.py"}:
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
            if tok.type == tokenize.STRING and tok.string.strip("\"'") in literals:
                found.append(f"{path.relative_to(ROOT)}:{tok.start[0]} {tok.string}")
    assert found == []


def test_importing_tmctl_or_asking_for_help_does_not_load_the_contract():
    code = ("import sys; import tmctl; from tmctl.cli.app import app\n"
            "try:\n    app(['task', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('tmctl._taskcore_contract' in sys.modules)")
    assert run_python(code, ROOT) == "False"


# ------------------------------------------------------------------ which file


def test_the_contract_is_the_deployed_projects(tmp_path):
    other = checkout(tmp_path / "other", CONTRACT_FILE.read_text())
    assert contract.contract_file(env={}, cwd=ROOT / "tmctl") == CONTRACT_FILE
    assert contract.contract_file(env={}, cwd=other / "lambdas") == other / contract.CONTRACT_PATH
    assert contract.contract_file(env={ENV_PROJECT_DIR: str(other)}, cwd=ROOT) == other / contract.CONTRACT_PATH


def test_a_checkout_from_before_the_contract_file_gets_tmctls_own(tmp_path):
    old = checkout(tmp_path / "old", None)
    assert contract.contract_file(env={}, cwd=old) == contract.own_contract_file() == CONTRACT_FILE


def test_a_project_dir_naming_no_project_gets_tmctls_own(tmp_path):
    # `tmctl up` refuses it; `tmctl logs` or `task trace`, which only read statuses, need not
    env = {ENV_PROJECT_DIR: str(tmp_path / "typo")}
    assert contract.contract_file(env=env, cwd=ROOT) == contract.own_contract_file()


def test_tmctl_speaks_the_contract_of_the_checkout_it_runs_in(tmp_path):
    # GIVEN another checkout whose Lambdas moved to version 2 of the event
    text = CONTRACT_FILE.read_text()
    assert "EVENT_VERSION = 1\n" in text
    other = checkout(tmp_path / "other", text.replace("EVENT_VERSION = 1\n", "EVENT_VERSION = 2\n"))

    # WHEN tmctl builds the event there
    code = ("import json; from tmctl.core.contract import task_created_message; "
            "print(json.loads(task_created_message('t-1')['MessageBody'])['version'])")

    # THEN it is the version those Lambdas (the ones `tmctl up` deploys from there) parse
    assert run_python(code, other) == "2"
    assert run_python(code, tmp_path) == "1"  # outside any checkout: tmctl's own


def test_a_contract_from_another_version_is_refused_by_name(tmp_path):
    stale = tmp_path / "contract.py"
    stale.write_text(CONTRACT_FILE.read_text().replace("def parse_task_created(", "def parse_event("))
    with pytest.raises(TmctlError, match="lacks parse_task_created") as err:
        contract.load(stale, name="tmctl._test_contract")
    assert err.value.fix and ENV_PROJECT_DIR in err.value.fix
    assert "tmctl._test_contract" not in sys.modules


def test_a_contract_that_fails_to_load_is_one_error(tmp_path):
    broken = tmp_path / "contract.py"
    broken.write_text("import json\nraise RuntimeError('half-edited')\n")
    with pytest.raises(TmctlError, match="RuntimeError: half-edited"):
        contract.load(broken, name="tmctl._test_contract")
    assert "tmctl._test_contract" not in sys.modules


def test_the_contract_imports_the_standard_library_only():
    # tmctl runs this file: boto3, Powertools or another taskcore module would not be there
    tree = ast.parse(CONTRACT_FILE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# ------------------------------------------------------------------ it ships with every function


def test_every_lambda_zip_carries_the_contract(tmp_path):
    assert len(package.FUNCTIONS) == 3, package.FUNCTIONS  # task API, processor, workflow steps
    for parameter, source in package.FUNCTIONS.items():
        artifact = package.function_artifact(ROOT, tmp_path, parameter, source)
        with zipfile.ZipFile(artifact.path) as zf:
            assert zf.read("taskcore/contract.py") == CONTRACT_FILE.read_bytes(), source


def test_the_bundle_copy_keeps_the_contract(tmp_path):
    # setup.py bundles lambdas/ for the wheel with these ignore patterns
    setup = ast.parse((ROOT / "setup.py").read_text())
    skip = next(node.value for node in setup.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "SKIP" for t in node.targets))
    patterns = [ast.literal_eval(arg) for arg in skip.args]
    shutil.copytree(ROOT / "lambdas", tmp_path / "lambdas", ignore=shutil.ignore_patterns(*patterns))
    assert (tmp_path / contract.CONTRACT_PATH).read_bytes() == CONTRACT_FILE.read_bytes()


# ------------------------------------------------------------------ the contract itself


def test_execution_name_is_the_task_id_and_its_creation_in_base36_ms():
    assert int("m838dpv1", 36) == 1741621344301  # CREATED, in ms since 1970
    assert contract.execution_name("task-173", CREATED) == "task-173-m838dpv1"
    assert contract.execution_name("task-173", "2025-03-10T15:42:24.301+00:00") == "task-173-m838dpv1"
    assert contract.execution_name("task-173", "1970-01-01T00:00:00.000Z") == "task-173-0"


def test_the_task_created_wire_format():
    # The bytes on the queue: a change here is a change to what deployed processors parse.
    item = {"taskID": "task-173", "title": "Write report", "priority": "HIGH", "createdAt": CREATED,
            "status": "PENDING", "requestHash": "abc", "history": []}
    message = contract.task_created_message("task-173", item)
    assert json.loads(message["MessageBody"]) == {
        "type": "TaskCreated", "version": 1, "taskID": "task-173",
        "task": {"taskID": "task-173", "title": "Write report", "priority": "HIGH", "createdAt": CREATED}}
    assert message["MessageAttributes"] == {"taskID": {"DataType": "String", "StringValue": "task-173"},
                                            "eventType": {"DataType": "String", "StringValue": "TaskCreated"}}
    assert json.loads(contract.task_created_message("task-173")["MessageBody"]) == {
        "type": "TaskCreated", "version": 1, "taskID": "task-173"}


def test_what_is_built_parses_back():
    task = {"taskID": "task-173", "title": "t", "createdAt": CREATED}
    assert contract.parse_task_created(contract.task_created_message("task-173", task)["MessageBody"]) == \
        contract.TaskCreated("task-173", task)
    assert contract.parse_task_created(contract.task_created_message("task-173")["MessageBody"]) == \
        contract.TaskCreated("task-173", None)


@pytest.mark.parametrize("body", [
    "not json", "null", '["task-173"]', "{}",
    '{"type": "TaskCreated", "version": 1}',
    '{"type": "TaskCreated", "version": 1, "taskID": "has space"}',
    '{"type": "TaskCreated", "version": 1, "taskID": 173}',
    '{"type": "TaskCreated", "version": 2, "taskID": "task-173"}',
    '{"type": "TaskCreated", "version": "1", "taskID": "task-173"}',
    # Equal to 1 in Python, but not the version a sender wrote
    '{"type": "TaskCreated", "version": true, "taskID": "task-173"}',
    '{"type": "TaskCreated", "version": 1.0, "taskID": "task-173"}',
    '{"type": "TaskCancelled", "version": 1, "taskID": "task-173"}',
    '{"version": 1, "taskID": "task-173"}',
])
def test_anything_else_is_not_a_task_created_event(body):
    with pytest.raises(contract.InvalidEvent):
        contract.parse_task_created(body)


@pytest.mark.parametrize("task", [
    {"taskID": "task-999", "createdAt": CREATED},  # another task's
    {"taskID": "task-173"},  # no creation time: no execution name
    {"taskID": "task-173", "createdAt": 1741621344301},
    "task-173",
])
def test_an_embedded_task_that_cannot_be_trusted_is_dropped(task):
    body = json.dumps({"type": "TaskCreated", "version": 1, "taskID": "task-173", "task": task})
    assert contract.parse_task_created(body) == contract.TaskCreated("task-173", None)


def test_an_embedded_task_is_cut_to_what_the_workflow_needs():
    task = {"taskID": "task-173", "createdAt": CREATED, "title": "t", "requestHash": "abc", "history": []}
    body = json.dumps({"type": "TaskCreated", "version": 1, "taskID": "task-173", "task": task})
    assert contract.parse_task_created(body).task == {"taskID": "task-173", "createdAt": CREATED, "title": "t"}


def test_final_statuses_are_the_ends_of_the_status_machine():
    assert [s.value for s in contract.Status] == [
        "PENDING", "QUEUED", "DEAD_LETTERED", "PROCESSING", "COMPLETED", "FAILED"]
    assert {"COMPLETED", "FAILED"} == contract.FINAL_STATUSES
