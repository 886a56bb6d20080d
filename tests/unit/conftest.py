"""Shared fixtures for the unit tests.

- Every test runs with dummy credentials, no AWS profile/config and sockets
  refused, so nothing can reach a real account or the network.
- AWS resources are moto ones built from cloudformation/template.yaml (the
  same properties, names and environment variables the stack gives the
  Lambdas), so the tests cannot drift from the template.
- The three handlers are all called app.py; each is loaded by file path under
  its own module name, after its environment is set (they read it at import).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from botocore.stub import Stubber
from moto import mock_aws

from tmctl.core.deploy import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "cloudformation" / "template.yaml"
ASL_PATH = ROOT / "cloudformation" / "statemachine.asl.json"
EVENTS_DIR = ROOT / "tests" / "events"
LAMBDAS_DIR = ROOT / "lambdas"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account

# Each Lambda zip carries taskcore/ at its top level; lambdas/common is that root here.
if str(LAMBDAS_DIR / "common") not in sys.path:
    sys.path.insert(0, str(LAMBDAS_DIR / "common"))

# Variables that would point a test at something real, or leak state between tests.
_SCRUBBED_ENV = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN", "TMCTL_ENDPOINT_URL", "TMCTL_LOCAL", "TMCTL_STAGE", "TMCTL_APP",
    "TMCTL_PROJECT_DIR", "STAGE", "TABLE_NAME", "QUEUE_URL", "STATE_MACHINE_ARN", "STATUS_INDEX",
    "FAILURE_INJECTION_PARAM", "INTAKE_PARAM", "LOG_LEVEL_PARAM", "RETRY_BASE_PARAM", "RETRY_MAX_SECONDS",
    "CONFIG_CACHE_SECONDS",
)


def _refuse_network(*_args, **_kwargs):
    raise RuntimeError("unit tests must not open network connections (use moto or Stubber)")


@pytest.fixture(autouse=True)
def offline_aws(monkeypatch):
    """Dummy credentials, a fixed region, no shared config, no sockets, and an
    empty Powertools Parameters cache (it outlives a moto context otherwise)."""
    for name in _SCRUBBED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setattr(socket.socket, "connect", _refuse_network)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse_network)
    from taskcore import config as runtime_config

    runtime_config.forget()
    yield
    runtime_config.forget()


# ------------------------------------------------------------------ the template


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def asl() -> dict:
    return json.loads(ASL_PATH.read_text())


class CfnResolver:
    """Just enough of CloudFormation's intrinsics (Ref, Fn::GetAtt, Fn::Sub) to
    turn the template's properties into API arguments, with parameter defaults."""

    def __init__(self, template: dict, overrides: dict[str, Any] | None = None):
        self.template = template
        self.refs: dict[str, Any] = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}
        self.refs.update(overrides or {})
        self.refs.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                          "AWS::URLSuffix": "amazonaws.com"})
        self.attrs: dict[str, Any] = {}

    def resource(self, logical: str) -> dict:
        return self.template["Resources"][logical]

    def props(self, logical: str) -> dict:
        return self.resolve(self.resource(logical)["Properties"])

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self._lookup(self.refs, arg)
            if fn == "Fn::GetAtt":
                return self._lookup(self.attrs, arg if isinstance(arg, str) else ".".join(arg))
            if fn == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub(m.group(1), extra)), text)
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, name: str, extra: dict) -> Any:
        if name in extra:
            return extra[name]
        return self._lookup(self.attrs if "." in name else self.refs, name)

    @staticmethod
    def _lookup(table: dict, name: str) -> Any:
        if name not in table:
            raise KeyError(f"the test stack has not created {name!r} yet (resolve order in deploy_stack)")
        return table[name]


def _queue_attributes(props: dict) -> dict[str, str]:
    out = {}
    for key, value in props.items():
        if key in {"QueueName", "Tags"}:
            continue
        if isinstance(value, dict):
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = str(value).lower()
        else:
            out[key] = str(value)
    return out


@dataclass
class Stack:
    """The template's resources, created in moto, and clients for them."""

    cfn: CfnResolver
    ddb: Any
    sqs: Any
    ssm: Any
    sfn: Any
    table: str = ""
    queue_url: str = ""
    queue_arn: str = ""
    dlq_url: str = ""
    failure_param: str = ""
    state_machine_arn: str = ""

    def create_table(self) -> str:
        props = self.cfn.props("TasksTable")
        self.ddb.create_table(**{k: props[k] for k in (
            "TableName", "BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")})
        self.cfn.refs["TasksTable"] = props["TableName"]
        self.cfn.attrs["TasksTable.Arn"] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{props['TableName']}"
        return props["TableName"]

    def create_queue(self, logical: str) -> str:
        props = self.cfn.props(logical)
        url = self.sqs.create_queue(QueueName=props["QueueName"], Attributes=_queue_attributes(props))["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.cfn.refs[logical] = url
        self.cfn.attrs[f"{logical}.Arn"] = arn
        return url

    def create_parameters(self) -> dict[str, str]:
        """Every SSM parameter the template declares: logical id → name."""
        names = {}
        for logical, res in self.cfn.template["Resources"].items():
            if res["Type"] != "AWS::SSM::Parameter":
                continue
            props = self.cfn.props(logical)
            self.ssm.put_parameter(Name=props["Name"], Type=props["Type"], Value=str(props["Value"]),
                                   Description=props["Description"],
                                   **({"AllowedPattern": props["AllowedPattern"]} if "AllowedPattern" in props else {}))
            self.cfn.refs[logical] = names[logical] = props["Name"]
        return names

    def set_parameter(self, logical: str, value: str) -> None:
        self.ssm.put_parameter(Name=self.cfn.refs[logical], Type="String", Value=value, Overwrite=True)

    def set_failure_rules(self, rules: list[dict]) -> None:
        self.ssm.put_parameter(Name=self.failure_param, Type="String", Value=json.dumps(rules), Overwrite=True)

    def declare_functions_and_roles(self) -> None:
        """Lambda functions and roles are not created in moto (nothing invokes
        them); their names and ARNs are what other resources reference."""
        for logical, res in self.cfn.template["Resources"].items():
            if res["Type"] == "AWS::Lambda::Function":
                name = self.cfn.resolve(res["Properties"]["FunctionName"])
                self.cfn.refs[logical] = name
                self.cfn.attrs[f"{logical}.Arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            elif res["Type"] == "AWS::IAM::Role":
                self.cfn.attrs[f"{logical}.Arn"] = f"arn:aws:iam::{ACCOUNT}:role/{logical}"

    def create_state_machine(self) -> str:
        props = self.cfn.props("TaskWorkflow")
        definition = ASL_PATH.read_text()
        for key, value in props["DefinitionSubstitutions"].items():
            definition = definition.replace("${" + key + "}", str(value))
        assert "${" not in definition, "an ASL placeholder has no DefinitionSubstitutions entry"
        arn = self.sfn.create_state_machine(name=props["StateMachineName"], definition=definition,
                                            roleArn=props["RoleArn"], type=props["StateMachineType"])["stateMachineArn"]
        self.cfn.refs["TaskWorkflow"] = arn
        return arn

    def function_env(self, logical: str) -> dict[str, str]:
        """The environment the template gives a function, resolved."""
        variables = self.cfn.resolve(self.cfn.resource(logical)["Properties"]["Environment"]["Variables"])
        return {k: str(v) for k, v in variables.items()}

    def get_item(self, task_id: str) -> dict | None:
        from taskcore.dynamo import from_item

        got = self.ddb.get_item(TableName=self.table, Key={"taskID": {"S": task_id}}, ConsistentRead=True)
        return from_item(got["Item"]) if "Item" in got else None

    def put_item(self, item: dict) -> None:
        from taskcore.dynamo import to_item

        self.ddb.put_item(TableName=self.table, Item=to_item(item))

    def queue_depth(self) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])

    def executions(self) -> list[dict]:
        return self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]


def deploy_stack(template: dict, clients: dict[str, Any]) -> Stack:
    """Create the template's data-plane resources in moto, in dependency order."""
    stack = Stack(CfnResolver(template), *(clients[s] for s in ("dynamodb", "sqs", "ssm", "stepfunctions")))
    stack.table = stack.create_table()
    stack.dlq_url = stack.create_queue("DeadLetterQueue")
    stack.queue_url = stack.create_queue("TaskQueue")
    stack.queue_arn = stack.cfn.attrs["TaskQueue.Arn"]
    stack.failure_param = stack.create_parameters()["FailureInjectionParameter"]
    stack.declare_functions_and_roles()
    stack.state_machine_arn = stack.create_state_machine()
    return stack


@pytest.fixture(scope="session")
def aws_clients() -> dict[str, Any]:
    """Built once: creating botocore clients costs more than a moto test. moto
    intercepts every client created after it is imported, whenever a mock is
    active, and keeps no state in them."""
    return {name: boto3.client(name, region_name=REGION, aws_access_key_id="testing",
                               aws_secret_access_key="testing")
            for name in ("dynamodb", "sqs", "ssm", "stepfunctions")}


@pytest.fixture
def stack(template, aws_clients, monkeypatch) -> Stack:
    with mock_aws():
        # get_parameter() builds its provider on a brand-new boto3 Session
        # (~0.4 s of model loading per test); seed the registry it reads with a
        # fresh provider (so an empty cache) on the shared client instead.
        monkeypatch.setitem(DEFAULT_PROVIDERS, "ssm", parameters.SSMProvider(boto3_client=aws_clients["ssm"]))
        yield deploy_stack(template, aws_clients)


# ------------------------------------------------------------------ handlers


@dataclass
class FakeLambdaContext:
    """The LambdaContext attributes Powertools' Logger reads."""

    function_name: str = "taskmanager-dev-under-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:taskmanager-dev-under-test"
    aws_request_id: str = "6f3c1a2b-0d4e-4f5a-8b9c-0123456789ab"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def load_handler(source_dir: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import lambdas/<source_dir>/app.py afresh under a unique module name."""
    module_name = f"lambda_{source_dir}_app"
    spec = importlib.util.spec_from_file_location(module_name, LAMBDAS_DIR / source_dir / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module_name, module)  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def _set_function_env(stack: Stack, logical: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = stack.function_env(logical)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def task_api(stack, monkeypatch) -> ModuleType:
    _set_function_env(stack, "TaskApiFunction", monkeypatch)
    module = load_handler("task_api", monkeypatch)
    module._service = module.TaskService(stack.ddb, stack.sqs, module.TABLE, module.QUEUE_URL, module.STATUS_INDEX)
    return module


@pytest.fixture
def event_processor(stack, monkeypatch) -> ModuleType:
    _set_function_env(stack, "EventProcessorFunction", monkeypatch)
    module = load_handler("event_processor", monkeypatch)
    module.Clients.sfn, module.Clients.sqs, module.Clients.ddb = stack.sfn, stack.sqs, stack.ddb
    return module


@pytest.fixture
def workflow_steps(stack, monkeypatch) -> ModuleType:
    _set_function_env(stack, "WorkflowStepsFunction", monkeypatch)
    # Pure steps: no clients to replace; the SSM switch is the only AWS call.
    return load_handler("workflow_steps", monkeypatch)


# ------------------------------------------------------------------ events


@pytest.fixture
def load_event():
    """Returns a loader: a fresh copy of tests/events/<name>.json each call (tests mutate them)."""

    def load(name: str) -> dict:
        return json.loads((EVENTS_DIR / f"{name}.json").read_text())

    return load


@contextlib.contextmanager
def stubbed(service: str):
    """A (client, Stubber) pair for one service: any call not queued on the stub
    fails the test, and every queued response must have been used by the end."""
    client = boto3.client(service, region_name=REGION)
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


# ------------------------------------------------------------------ the console


@pytest.fixture
def console_source(stack, aws_clients):
    """A factory of tmctl.console.source.ConsoleSource over the moto stack:
    `console_source(stage="prod", local=False, allow_writes=False)`. AWS as
    the backend (no inspection endpoint in moto: the DLQ is not peeked)."""
    from tmctl.console.source import ConsoleSource
    from tmctl.core.backend import AWS, Backend
    from tmctl.core.stack import StackInfo
    from tmctl.core.target import resolve_target

    logs = boto3.client("logs", region_name=REGION)

    def make(stage: str = "dev", *, local: bool = False, allow_writes: bool = False) -> ConsoleSource:
        target = resolve_target(local=local, stage=stage, region=REGION, env={})
        outputs = {"TasksTableName": stack.table, "TaskQueueUrl": stack.queue_url, "DeadLetterQueueUrl": stack.dlq_url,
                   "StateMachineArn": stack.state_machine_arn,
                   "FailureInjectionParameterName": stack.failure_param}
        info = StackInfo(f"taskmanager-{stage}", "CREATE_COMPLETE", outputs, {}, "http://api.invalid/dev")
        return ConsoleSource(target, info, Backend(AWS), sqs=stack.sqs, ddb=stack.ddb, sfn=stack.sfn,
                             ssm=stack.ssm, logs=logs, allow_writes=allow_writes)

    return make
