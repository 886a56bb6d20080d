"""`tmctl dev` as a user runs it, against a copy of the project: a saved
workflow step goes live and the very next task runs it; a save that does not
compile is reported with file:line while the previous code keeps completing
tasks; Ctrl-C exits 0 and leaves the stack up.

The session's engine, but a stage of its own (its own stack, functions and
table), so the session's `it` stack is never touched; that stack is deleted
in `finally`."""

from __future__ import annotations

import dataclasses
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tmctl.core.api import TaskApi, new_task_id, ok, wait_final
from tmctl.core.deploy import delete_stack
from tmctl.core.stack import describe_stack, load_stack

pytestmark = [pytest.mark.integration, pytest.mark.needs("cloudformation", "lambda", "apigatewayv2", "dynamodb",
                                                         "sqs", "stepfunctions", "ssm", "logs")]

ROOT = Path(__file__).resolve().parents[2]
STAGE = "itdev"


class Lines:
    """Every line the process writes (stdout and stderr), readable as they come."""

    def __init__(self, proc: subprocess.Popen):
        self.all: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        for stream in (proc.stdout, proc.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._q.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            self.all.append(line)
            if m := rx.search(line):
                return m
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s; got:\n" + "\n".join(self.all[-40:]))


def step_detail(task: dict, step: str) -> str | None:
    return next((h.get("detail") for h in task.get("history", []) if h.get("step") == step), None)


def test_dev_puts_a_save_live_keeps_old_code_on_a_broken_save_and_leaves_the_stack_up(engine_env, tmp_path):
    # GIVEN a copy of the project and `tmctl dev` running on it
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lambdas", project / "lambdas", ignore=ignore)
    shutil.copytree(ROOT / "cloudformation", project / "cloudformation", ignore=ignore)
    steps = project / "lambdas/workflow_steps/app.py"
    source = steps.read_text()
    assert 'return "ok", {}, "valid"' in source
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMCTL_") and k != "AWS_ENDPOINT_URL"}
    env.update(engine_env.cli_env)
    env.update({"TMCTL_STAGE": STAGE, "TMCTL_PROJECT_DIR": str(project), "PYTHONUNBUFFERED": "1"})
    target = dataclasses.replace(engine_env.target, stage=STAGE)
    cfn = engine_env.clients.cloudformation
    proc = subprocess.Popen([sys.executable, "-m", "tmctl", "dev"], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = Lines(proc)
        lines.wait_for(r"^watching lambdas/, cloudformation/", timeout=120)
        api = TaskApi(load_stack(cfn, target).api_url)

        # WHEN the workflow step's reply is edited and saved
        steps.write_text(source.replace('return "ok", {}, "valid"', 'return "ok", {}, "valid, live from dev"'))
        m = lines.wait_for(r"live: workflow-steps (\d+\.\d+) s", timeout=30)
        assert float(m.group(1)) < 5

        # THEN the very next task runs the new code
        task = wait_final(api, ok(api.create({"taskID": new_task_id(), "title": "check the dev loop"}))["taskID"])
        assert task["status"] == "COMPLETED", task
        assert step_detail(task, "validate") == "valid, live from dev"
        # … and its log lines stream, prefixed by the function
        lines.wait_for(r"^workflow-steps\s+\| .*" + re.escape(task["taskID"]), timeout=60)

        # WHEN a save does not compile
        broken = steps.read_text().replace("def validate(", "def validate(:\ndef _unused(", 1)
        line = broken.splitlines().index("def validate(:") + 1
        steps.write_text(broken)

        # THEN it is reported with file:line, and the previous code still completes tasks
        lines.wait_for(re.escape(f"lambdas/workflow_steps/app.py:{line}: SyntaxError"), timeout=30)
        task = wait_final(api, ok(api.create({"taskID": new_task_id(), "title": "still served"}))["taskID"])
        assert task["status"] == "COMPLETED", task
        assert step_detail(task, "validate") == "valid, live from dev"
        assert not any(line.startswith("live:") for line in lines.all[-5:])

        # WHEN the template changes (with the broken step fixed in the same go)
        steps.write_text(source.replace('return "ok", {}, "valid"', 'return "ok", {}, "valid again"'))
        template = project / "cloudformation/template.yaml"
        template.write_text(template.read_text().replace("Description: Task Manager API (see",
                                                         "Description: Task Manager API, dev loop (see"))

        # THEN it goes through the change set, code included
        lines.wait_for(r"stack change: through the change set", timeout=30)
        lines.wait_for(r"live: stack \d+\.\d+ s", timeout=60)
        task = wait_final(api, ok(api.create({"taskID": new_task_id(), "title": "after the change set"}))["taskID"])
        assert step_detail(task, "validate") == "valid again"

        # WHEN Ctrl-C
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)

        # THEN it exits 0 and the stack is still up
        assert code == 0, "\n".join(lines.all[-20:])
        assert describe_stack(cfn, target)["StackStatus"].endswith("_COMPLETE")
        assert ok(api.get(task["taskID"]))["status"] == "COMPLETED"
    finally:
        if proc.poll() is None:  # a failed step: Ctrl-C first, so it removes its temp files
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        delete_stack(cfn, target)
