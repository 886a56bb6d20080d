"""Installable anywhere: from a built wheel, outside any checkout,
`tmctl up --local && tmctl task create --wait` ends COMPLETED.

The wheel is built from a copy of the sources (the working tree stays untouched)
and installed with --no-deps into a fresh venv. Its dependencies come from the
project's venv through a .pth path line: they are not what is under test, and
installing them would need the network. A path line adds no site dir, so the
project's editable tmctl is not activated there: `tmctl` itself, its template,
state machine and Lambda sources must all come from the wheel."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.integration.conftest import free_port
from tmctl.core.local import emulator
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.integration

SOURCE_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                       "*.pyc", ".tmctl", ".pytest_cache", ".ruff_cache", "benchmarks", "tests")


def run(*argv, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    shutil.copytree(PROJECT, work / "src", ignore=SOURCE_IGNORE)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", work / "src", timeout=300)
    (built,) = (work / "dist").glob("tmctl-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel) -> Path:
    """A venv whose tmctl is the wheel's. Returns the venv's directory."""
    venv = wheel.parent.parent / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_project_deps.pth").write_text("".join(f"{p}\n" for p in sorted(deps)))
    return venv


@pytest.fixture
def elsewhere(tmp_path, installed) -> tuple[Path, dict[str, str]]:
    """A working directory outside any checkout, and an environment that names none."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    assert PROJECT not in (cwd, *cwd.parents)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TMCTL_", "AWS_", "PYTHON")) and k != "VIRTUAL_ENV"}
    env.update(PATH=f"{installed / 'bin'}{os.pathsep}{env.get('PATH', '')}", TMCTL_STATE_DIR=str(tmp_path / "state"),
               NO_COLOR="1")
    return cwd, env


def test_the_wheel_carries_the_project_without_build_litter(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    bundled = {n.removeprefix("tmctl/_bundle/") for n in names if n.startswith("tmctl/_bundle/")}
    assert {"cloudformation/template.yaml", "cloudformation/statemachine.asl.json", "cloudformation/openapi.yaml",
            "docker-compose.yml", "lambdas/task_api/app.py", "lambdas/event_processor/app.py",
            "lambdas/workflow_steps/app.py", "lambdas/common/taskcore/model.py"} <= bundled
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo")) or "/tests/" in n]
    # the console's pages and assets: served from the wheel, never from a CDN
    assert {"tmctl/console/app.py", "tmctl/console/templates/base.html", "tmctl/console/templates/overview.html",
            "tmctl/console/templates/task.html", "tmctl/console/static/console.js",
            "tmctl/console/static/console.css"} <= set(names)


def test_the_installed_package_is_the_wheels_and_finds_its_bundle(installed, elsewhere):
    cwd, env = elsewhere
    probe = ("import json, tmctl; from tmctl.core.bundle import project_dir; "
             "print(json.dumps([tmctl.__file__, str(project_dir())]))")
    module, project = json.loads(run(installed / "bin" / "python", "-c", probe, cwd=cwd, env=env).stdout)
    assert Path(module).is_relative_to(installed), f"tmctl imported from {module}, not the wheel"
    assert Path(project) == Path(module).parent / "_bundle"


def test_the_installed_console_renders_its_pages_from_the_wheel(installed, elsewhere):
    cwd, env = elsewhere
    probe = ("import json, tmctl; from tmctl.console.app import STATIC, TEMPLATES, _environment; "
             "html = _environment().get_template('error.html').render(message='m', csrf='c', stack='s', engine='e', "
             "writable=True); print(json.dumps([tmctl.__file__, str(TEMPLATES), str(STATIC / 'console.js'), "
             "(STATIC / 'console.js').is_file(), '/static/console.js' in html]))")
    module, templates, script, script_there, linked = json.loads(
        run(installed / "bin" / "python", "-c", probe, cwd=cwd, env=env).stdout)
    assert Path(templates) == Path(module).parent / "console" / "templates"
    assert Path(script).is_relative_to(installed) and script_there and linked


def test_the_installed_tmctl_loads_the_task_contract_from_its_bundle(installed, elsewhere):
    # tmctl keeps no copy of the contract: outside a checkout it must run the bundled Lambdas' file
    cwd, env = elsewhere
    probe = ("import json, tmctl; from tmctl.core import contract; "
             "print(json.dumps([tmctl.__file__, str(contract.SOURCE_FILE), "
             "contract.task_created_message('t-1')['MessageBody']]))")
    module, source, body = json.loads(run(installed / "bin" / "python", "-c", probe, cwd=cwd, env=env).stdout)
    assert Path(source) == Path(module).parent / "_bundle" / "lambdas" / "common" / "taskcore" / "contract.py"
    assert json.loads(body) == {"type": "TaskCreated", "version": 1, "taskID": "t-1"}


def test_up_and_a_task_from_outside_any_checkout(installed, elsewhere):
    cwd, env = elsewhere
    endpoint = f"http://127.0.0.1:{free_port()}"
    tmctl = [installed / "bin" / "tmctl", "--endpoint-url", endpoint]
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, env={}), state_dir=Path(env["TMCTL_STATE_DIR"]))
    pid = None
    try:
        t = time.perf_counter()
        run(*tmctl, "up", cwd=cwd, env=env, timeout=180)  # starts its own emulator on the free port
        up_s = time.perf_counter() - t
        proc = emulator.read_process(target)
        assert proc is not None, "tmctl up did not start (and record) the embedded emulator"
        pid = proc.pid

        t = time.perf_counter()
        out = run(*tmctl, "-o", "json", "task", "create", "--title", "from a wheel", "--wait", cwd=cwd, env=env)
        task_s = time.perf_counter() - t
        assert json.loads(out.stdout)["status"] == "COMPLETED", out.stdout
        print(f"wheel-installed tmctl: up {up_s:.1f}s, task create --wait {task_s:.1f}s")
    finally:
        stopped = subprocess.run([*map(str, tmctl), "local", "stop"], cwd=cwd, env=env, capture_output=True,
                                 text=True, timeout=30)
        if pid is not None:
            deadline = time.monotonic() + 5
            while emulator.group_rss_bytes(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert emulator.group_rss_bytes(pid) == 0, f"emulator processes left behind: {stopped.stderr}"
