"""One real stack for the whole session: the embedded emulator on its own
127.0.0.1 port (IAM enforcement on), the real template deployed by tmctl's own
`bring_up`, torn down — emulator and workers stopped by pid — in `finally`.

Point TMCTL_ENDPOINT_URL at any LocalStack-compatible engine to run the same
tests there instead (nothing is started or stopped then). What the engine
lacks is probed once per session; a test that needs it is skipped with the
reason in the summary (`-ra`), never silently: `env` needs everything the
stack uses, and `@pytest.mark.needs("sqs", …)` declares a test's own needs.
A test that makes its own resources takes `engine_env` (clients, no stack)
and runs on an engine that could not host the stack.
Features no read-only call can reveal (LocalStack on the host runs no Lambda
and downloads Java for DynamoDB) are declared in TMCTL_TEST_ENGINE_LACKS,
e.g. `lambda,dynamodb`."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from tmctl.core import settings
from tmctl.core.api import TaskApi
from tmctl.core.local import emulator, persist
from tmctl.core.stack import StackInfo
from tmctl.core.target import Clients, Target, resolve_target
from tmctl.core.up import bring_up

# One stage per pytest-xdist worker: workers never share a stage, even on one external engine.
STAGE = "it" + (f"-{os.environ['PYTEST_XDIST_WORKER']}" if os.environ.get("PYTEST_XDIST_WORKER") else "")
# Which tasks fail where (taskID globs): the documented failure-injection switch.
FAILURE_RULES = [
    {"at": "processor", "match": "poison-*"},
    {"at": "process", "match": "boom-*"},
]
# Test-speed knobs, passed as the template's own parameters.
STACK_PARAMS = {"LogRetentionDays": "1"}
# What the deployed stack needs of an engine (`env` is skipped without one of them).
STACK_NEEDS = ("cloudformation", "apigatewayv2", "lambda", "dynamodb", "sqs", "stepfunctions", "ssm", "iam", "logs")
# The same stack behind the REST front door (FrontDoor=rest): API Gateway v1 instead of v2.
REST_STACK_NEEDS = tuple("apigateway" if need == "apigatewayv2" else need for need in STACK_NEEDS)
# Its stage, beside the session's (one per worker too); config cached 1 s so a switch flipped by a test
# is seen at once (the session's stage keeps tmctl up --local's 5 s).
REST_STAGE = "itrest" + (f"-{os.environ['PYTEST_XDIST_WORKER']}" if os.environ.get("PYTEST_XDIST_WORKER") else "")
REST_PARAMS = {**STACK_PARAMS, "FrontDoor": "rest", "ConfigCacheSeconds": "1"}
ENV_LACKS = settings.TEST_ENGINE_LACKS.name


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(*features): engine features the test needs (sqs, apigatewayv2, "
                                       "lambda, …); skipped with the reason when the engine lacks one")


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What the engine under test is and what it lacks (feature → why)."""

    engine: str
    version: str
    endpoint: str
    lacks: dict[str, str]

    def skip_unless(self, features, what: str) -> None:
        missing = [f"{f} ({self.lacks[f]})" for f in features if f in self.lacks]
        if missing:
            pytest.skip(f"{self.engine} {self.version} at {self.endpoint} lacks {', '.join(missing)}: needed by {what}")


def probe_capabilities(target: Target) -> Capabilities:
    from tmctl.core.doctor import health_info
    from tmctl.core.preflight import probe_http_api

    health = health_info(target.endpoint_url)
    name, body = health or ("nothing", {})
    lacks = {svc: f"health says {state}" for svc, state in (body.get("services") or {}).items()
             if state not in {"available", "running"}}
    # The one feature a licence decides, asked read-only, as `tmctl up` asks it (only "unsupported" is a lack).
    if probe_http_api(Clients(target).client("apigatewayv2"))[0] is False:
        lacks["apigatewayv2"] = "GetApis answers 501: not in this engine or its tier"
    for feature in filter(None, (f.strip() for f in (settings.TEST_ENGINE_LACKS.get() or "").split(","))):
        lacks.setdefault(feature, f"declared in {ENV_LACKS}")
    return Capabilities(name, str(body.get("version", "?")), target.endpoint_url, lacks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class EngineEnv:
    """The engine without the stack: for tests that make their own resources."""

    target: Target
    clients: Clients
    cli_env: dict[str, str]
    proc: emulator.EmulatorProcess | None


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

    def restore_failure_rules(self) -> None:
        """The session's rules back, and the functions' cached copy expired: the next test's poison-* fails again."""
        self.set_failure_rules(FAILURE_RULES)
        time.sleep(int(self.stack.out("ConfigCacheSeconds")) + 0.5)


@pytest.fixture(scope="session")
def engine_target(tmp_path_factory) -> Iterator[tuple[Target, emulator.EmulatorProcess | None]]:
    state_dir = tmp_path_factory.mktemp("tmctl-state")
    external = settings.ENDPOINT_URL.get()
    endpoint = external or f"http://127.0.0.1:{free_port()}"
    target = dataclasses.replace(resolve_target(endpoint_url=endpoint, stage=STAGE, env={}), state_dir=state_dir)
    proc = None
    try:
        if not external:
            # The session's engine forgets at its stop (saving takes seconds and nothing restarts it);
            # test_restart.py runs its own engine with the default, persistence on.
            _, proc = emulator.start(target, extra_env=persist.engine_env(emulator.workdir(target),
                                                                          {settings.PERSIST.name: "0"}))
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
def engine_caps(engine_target) -> Capabilities:
    return probe_capabilities(engine_target[0])


@pytest.fixture(autouse=True)
def _engine_needs(request):
    """Skip, with the reason, a test marked `needs(...)` that the engine cannot serve."""
    marker = request.node.get_closest_marker("needs")
    if marker is not None:
        request.getfixturevalue("engine_caps").skip_unless(marker.args, request.node.name)


@pytest.fixture(scope="session")
def engine_env(engine_target) -> EngineEnv:
    """Clients and CLI environment for the engine, nothing deployed: needs no
    more of the engine than what the test itself uses (mark it `needs(...)`)."""
    target, proc = engine_target
    return EngineEnv(target, Clients(target), {
        "TMCTL_ENDPOINT_URL": target.endpoint_url, "TMCTL_STAGE": STAGE,
        "TMCTL_STATE_DIR": str(target.state_dir), "NO_COLOR": "1", "COLUMNS": "200"}, proc)


@pytest.fixture(scope="session")
def env(engine_env, engine_caps) -> Env:
    engine_caps.skip_unless(STACK_NEEDS, "the deployed stack")
    result = bring_up(engine_env.clients, engine_env.target, overrides=STACK_PARAMS)
    e = Env(engine_env.target, engine_env.clients, result.stack, TaskApi(result.stack.api_url), engine_env.cli_env,
            engine_env.proc)
    e.set_failure_rules(FAILURE_RULES)
    return e


@contextlib.contextmanager
def another_stage(target: Target, stage: str, overrides: dict[str, str], **up) -> Iterator[tuple[Clients, StackInfo]]:
    """A stage of the same template beside the session's, on the same engine, deleted on the way out."""
    from tmctl.core.deploy import delete_stack

    target = dataclasses.replace(target, stage=stage)
    clients = Clients(target)
    try:
        yield clients, bring_up(clients, target, overrides=overrides, **up).stack
    finally:
        delete_stack(clients.cloudformation, target)


@pytest.fixture(scope="session")
def rest_env(engine_env, engine_caps) -> Iterator[Env]:
    """A second stage of the same template with the REST front door, deployed on first use and
    deleted at the session's end. Needs no API Gateway v2: it runs where `env` cannot (LocalStack's
    free plan)."""
    engine_caps.skip_unless(REST_STACK_NEEDS, "the REST front door's stack")
    with another_stage(engine_env.target, REST_STAGE, REST_PARAMS) as (clients, stack):
        e = Env(dataclasses.replace(engine_env.target, stage=REST_STAGE), clients, stack, TaskApi(stack.api_url),
                {**engine_env.cli_env, "TMCTL_STAGE": REST_STAGE}, engine_env.proc)
        e.set_failure_rules(FAILURE_RULES)
        yield e


def uid(prefix: str = "task") -> str:
    """A taskID no other test (or earlier run on a kept engine) has used."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def console(env):
    """`tmctl console` for the session's stage, served on a free 127.0.0.1 port in a thread (as the command
    serves it), stopped after the module."""
    from tmctl.console.server import ConsoleServer
    from tmctl.console.source import ConsoleSource
    from tmctl.core.backend import detect

    c = env.clients
    source = ConsoleSource(env.target, env.stack, detect(env.target), sqs=c.sqs, ddb=c.dynamodb, sfn=c.stepfunctions,
                           ssm=c.ssm, logs=c.client("logs"), session=c.session)
    server = ConsoleServer(source, port=0).start()
    try:
        yield server
    finally:
        server.stop()
        assert not server._thread.is_alive(), "the console's server thread did not stop"


def wait_for(fetch, done, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def load_snapshot(env):
    """Load a snapshot file (`tmctl snapshot save`) into the suite's stage, so a
    test starts from a known state: `load_snapshot(path)` → the LoadReport,
    asserted ok. Merge by default: what other tests of the session left stays;
    `merge=False` empties the table and purges both queues first."""
    from tmctl.core.backend import detect
    from tmctl.core.config import config_path
    from tmctl.core.snapshot import StageRefs, load, plan_load

    refs = StageRefs(env.target.app, env.target.stage, env.stack.table, env.stack.queue_url, env.stack.dlq_url,
                     config_path(env.target))

    def _load(path, *, merge: bool = True):
        c = env.clients
        plan = plan_load(c.dynamodb, c.sqs, c.ssm, detect(env.target), refs, path, merge=merge)
        report = load(c.dynamodb, c.sqs, c.ssm, plan)
        assert report.ok, report.to_dict()
        return report

    return _load


@contextlib.contextmanager
def dlq_pair(sqs, prefix: str):
    """A fresh main queue and its DLQ (maxReceiveCount 3) on any engine: (name, main URL, DLQ URL); deleted after."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    main = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
    try:
        yield name, main, dlq
    finally:
        for url in (main, dlq):
            sqs.delete_queue(QueueUrl=url)
