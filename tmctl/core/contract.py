"""The task contract — statuses, client and workflow fields, execution names,
the TaskCreated event — as the Lambdas define it: this module loads their
lambdas/common/taskcore/contract.py and re-exports its names. tmctl keeps no
copy of its own, so there is nothing to drift.

Which file: the one in the project tmctl deploys from, `project_dir()`
(TMCTL_PROJECT_DIR, else the checkout around the working directory, else
tmctl's own source tree or wheel bundle). Its Lambdas are what `tmctl up`
puts in the stack, so the event `tmctl task reconcile` sends again and the
execution name it looks for must be the ones *they* parse and make. tmctl's
own copy is the same file in the usual cases (an editable install used in its
checkout, a wheel used outside any), and a different one exactly when it
matters: a tmctl used in another checkout or worktree deploys that checkout's
Lambdas, and must speak that checkout's contract to them. A checkout from
before the contract had a file of its own has none: then tmctl's own copy
stands in (the contract as tmctl copied it by hand until then), as it does
when TMCTL_PROJECT_DIR names no project (`tmctl up` reports that; the many
commands that only read a task's status need not fail on it).

Loaded once per process, when this module is first imported: only the core
modules that need the contract import it, so `import tmctl` and `tmctl --help`
do not. It runs under the private name `tmctl._taskcore_contract`;
lambdas/common is never put on sys.path, so no other Lambda module becomes
importable by accident. The file is Python, run here: the same code `tmctl up`
deploys (and the embedded emulator runs on this machine). It is standard
library only and reads nothing at import.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from tmctl.core.bundle import BUNDLE_DIR, SOURCE_TREE, is_project, project_dir
from tmctl.core.errors import TmctlError, UsageError
from tmctl.core.target import ENV_PROJECT_DIR

MODULE_NAME = "tmctl._taskcore_contract"
CONTRACT_PATH = Path("lambdas", "common", "taskcore", "contract.py")  # within a project
# What tmctl uses of it: a file lacking one is from another version of tmctl.
NAMES = (
    "TASK_ID_PATTERN", "CLIENT_FIELDS", "WORKFLOW_FIELDS", "Status", "FINAL_STATUSES", "Priority",
    "workflow_view", "execution_name", "EVENT_TYPE", "EVENT_VERSION", "TASK_ID_ATTRIBUTE", "EVENT_TYPE_ATTRIBUTE",
    "InvalidEvent", "TaskCreated", "task_created_message", "parse_task_created", "PRODUCTION_STAGES",
)


def own_contract_file() -> Path:
    """The contract that came with this tmctl: its checkout's (editable install), else its wheel's bundle."""
    return (SOURCE_TREE if is_project(SOURCE_TREE) else BUNDLE_DIR) / CONTRACT_PATH


def contract_file(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The contract of the project tmctl deploys from (see the module's docstring);
    tmctl's own when that project predates contract.py or there is none."""
    try:
        deployed = project_dir(env, cwd) / CONTRACT_PATH
    except UsageError:
        return own_contract_file()
    return deployed if deployed.is_file() else own_contract_file()


def load(path: Path, name: str = MODULE_NAME) -> ModuleType:
    """Run the contract file as module `name` and register it in sys.modules."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TmctlError(f"cannot load the task contract from {path}", "reinstall tmctl")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
        missing = [n for n in NAMES if not hasattr(module, n)]
        if missing:
            raise TmctlError(f"the task contract {path} lacks {', '.join(missing)}: it is from another "
                             "version of tmctl", "use the tmctl of that checkout (pip install -e .), or "
                             f"point {ENV_PROJECT_DIR} at a checkout of this tmctl's version")
    except TmctlError:
        del sys.modules[name]
        raise
    except Exception as err:
        del sys.modules[name]
        raise TmctlError(f"cannot load the task contract from {path}: {type(err).__name__}: {err}",
                         f"fix that file, or set {ENV_PROJECT_DIR} to a checkout whose contract loads") from err
    return module


_contract = sys.modules.get(MODULE_NAME) or load(contract_file())
SOURCE_FILE = Path(_contract.__file__)  # the file the names below come from

TASK_ID_PATTERN = _contract.TASK_ID_PATTERN
CLIENT_FIELDS: tuple[str, ...] = _contract.CLIENT_FIELDS
WORKFLOW_FIELDS: tuple[str, ...] = _contract.WORKFLOW_FIELDS
Status = _contract.Status
FINAL_STATUSES = _contract.FINAL_STATUSES
Priority = _contract.Priority
PRODUCTION_STAGES: frozenset[str] = _contract.PRODUCTION_STAGES
workflow_view = _contract.workflow_view
execution_name = _contract.execution_name
EVENT_TYPE: str = _contract.EVENT_TYPE
EVENT_VERSION: int = _contract.EVENT_VERSION
TASK_ID_ATTRIBUTE: str = _contract.TASK_ID_ATTRIBUTE
EVENT_TYPE_ATTRIBUTE: str = _contract.EVENT_TYPE_ATTRIBUTE
InvalidEvent = _contract.InvalidEvent
TaskCreated = _contract.TaskCreated
task_created_message = _contract.task_created_message
parse_task_created = _contract.parse_task_created
