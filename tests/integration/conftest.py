"""One real stack for the whole session: the embedded emulator on its own
127.0.0.1 port (IAM enforcement on), the real template deployed by tmctl's own
`bring_up`, torn down — emulator and workers stopped by pid — in `finally`.

Point TMCTL_ENDPOINT_URL at any LocalStack-compatible engine to run the same
tests there instead (nothing is started or stopped then)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

from tmctl.core import emulator
from tmctl.core.api import TaskApi
from tmctl.core.stack import StackInfo
from tmctl.core.target import Clients, Target, resolve_target
from tmctl.core.up import bring_up

STAGE = "it"
# Which tasks fail where (taskID globs): the documented failure-injection switch.
FAILURE_RULES = [
    {"at": "processor", "match": "poison-*"},
    {"at": "process", "match": "boom-*"},
]
# Test-speed knobs, passed as the template's own parameters.
STACK_PARAMS = {"LogRetentionDays": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Env:
    target: Target
    clients: Clients
    stack: StackInfo
    api: TaskApi
    cli_env: dict[str, str]
    proc: emulator.EmulatorProcess | None

    def set_failure_rules(self, rules: list[dict]) -> None:
        self.clients.ssm.put_parameter(Name=self.stack.out("FailureInjectionParameterName"),
                                       Value=json.dumps(rules), Type="String", Overwrite=True)


@pytest.fixture(scope="session")
def engine_target(tmp_path_factory) -> Iterator[tuple[Target, emulator.EmulatorProcess | None]]:
    state_dir = tmp_path_factory.mktemp("tmctl-state")
    external = os.environ.get("TMCTL_ENDPOINT_URL")
    endpoint = external or f"http://127.0.0.1:{free_port()}"
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, stage=STAGE, env={}), state_dir=state_dir)
    proc = None
    try:
        if not external:
            _, proc = emulator.start(target)
            assert proc is not None, f"something already answers on {endpoint}"
        yield target, proc
    finally:
        if proc is not None:
            emulator.stop(target)
            # Every worker went with it: nothing left in the emulator's process group.
            deadline = time.monotonic() + 5
            while emulator.group_rss_bytes(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert emulator.group_rss_bytes(proc.pid) == 0, "emulator processes left behind"


@pytest.fixture(scope="session")
def env(engine_target) -> Env:
    target, proc = engine_target
    clients = Clients(target)
    result = bring_up(clients, target, overrides=STACK_PARAMS)
    e = Env(target, clients, result.stack, TaskApi(result.stack.api_url), {
        "TMCTL_ENDPOINT_URL": target.endpoint_url, "TMCTL_STAGE": STAGE,
        "TMCTL_STATE_DIR": str(target.state_dir), "NO_COLOR": "1", "COLUMNS": "200"}, proc)
    e.set_failure_rules(FAILURE_RULES)
    return e


def wait_for(fetch, done, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)
