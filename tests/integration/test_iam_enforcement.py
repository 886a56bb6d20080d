"""Least privilege at run time: each role of the stack, assumed for real, is
refused a call its code must never make — and, as the control that makes the
refusal mean something, allowed a call its code does make. With IAM
enforcement off every "denied" case below fails.

How a role's identity is had: MiniStack (AUTH=true) lets the account root
assume any role whose trust policy names a service principal (its own service
calls run as root), and evaluates every later call signed with the returned
session key against that role's policies (ministack/core/iam_evaluator.py
`resolve_principal`), exactly as a Lambda worker's calls are.

Every call is harmless if it were wrongly allowed: writes carry a condition
that fails on the probe's own never-written key, SQS sends an empty body
(refused after the IAM check), Lambda invokes are DryRun, StartExecution gets
invalid JSON — so a broken enforcement fails these tests without damaging the
shared stack for the rest of the suite."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tmctl.core import settings
from tmctl.core.local.emulator import probe

pytestmark = pytest.mark.integration

DENIED = frozenset({"AccessDenied", "AccessDeniedException"})


@dataclass(frozen=True)
class Probe:
    role: str  # the template's logical id
    expect: str  # allowed | denied
    action: str
    call: Callable[[RoleSession], object]

    @property
    def id(self) -> str:
        return f"{self.role}-{self.expect}-{self.action}"


@dataclass
class RoleSession:
    role_arn: str
    session: boto3.Session
    endpoint: str
    stack: object  # StackInfo
    key: dict  # a task key no test ever writes

    def client(self, service: str):
        return self.session.client(service, endpoint_url=self.endpoint,
                                   config=Config(retries={"mode": "standard", "max_attempts": 1}))

    @property
    def table(self) -> str:
        return self.stack.table

    def fn(self, key: str) -> str:
        return self.stack.functions[key]


# A write that changes nothing even if allowed: the probe's key is never written.
GUARD = {"ConditionExpression": "attribute_exists(taskID)"}


def _put(s: RoleSession):
    return s.client("dynamodb").put_item(TableName=s.table, Item={**s.key, "title": {"S": "iam probe"}},
                                         **GUARD)


def _update(s: RoleSession):
    return s.client("dynamodb").update_item(TableName=s.table, Key=s.key, UpdateExpression="SET probe = :p",
                                            ExpressionAttributeValues={":p": {"S": "x"}}, **GUARD)


def _delete(s: RoleSession):
    return s.client("dynamodb").delete_item(TableName=s.table, Key=s.key, **GUARD)


def _get(s: RoleSession):
    return s.client("dynamodb").get_item(TableName=s.table, Key=s.key)


def _send(queue: str) -> Callable[[RoleSession], object]:
    def call(s: RoleSession):
        url = s.stack.queue_url if queue == "main" else s.stack.dlq_url
        return s.client("sqs").send_message(QueueUrl=url, MessageBody="")

    return call


def _start_execution(s: RoleSession):
    return s.client("stepfunctions").start_execution(stateMachineArn=s.stack.state_machine_arn,
                                                     name=f"iam-probe-{uuid.uuid4().hex[:8]}", input="{not json")


def _invoke(key: str) -> Callable[[RoleSession], object]:
    def call(s: RoleSession):
        return s.client("lambda").invoke(FunctionName=s.fn(key), InvocationType="DryRun", Payload=b"{}")

    return call


def _read_config(s: RoleSession):
    """The SSM read the role's policy grants (GetParameter or GetParameters, as the template has it)."""
    name = s.stack.out("FailureInjectionParameterName")
    ssm = s.client("ssm")
    granted = _ssm_actions(s)
    if "ssm:getparameters" in granted:
        return ssm.get_parameters(Names=[name])
    return ssm.get_parameter(Name=name)


def _ssm_actions(s: RoleSession) -> set[str]:
    from tmctl.core.iam_report import role_grants

    iam = boto3.client("iam", endpoint_url=s.endpoint, region_name=s.session.region_name,
                       aws_access_key_id="test", aws_secret_access_key="test")
    grants, _ = role_grants(iam, s.role_arn.rsplit("/", 1)[-1])
    return {g.action.lower() for g in grants if g.action.lower().startswith("ssm:")}


PROBES = [
    # Task API: stores tasks and publishes their event — never deletes, never consumes, never runs workflows.
    Probe("TaskApiRole", "allowed", "dynamodb:GetItem", _get),
    Probe("TaskApiRole", "allowed", "sqs:SendMessage(main)", _send("main")),
    Probe("TaskApiRole", "denied", "dynamodb:DeleteItem", _delete),
    Probe("TaskApiRole", "denied", "sqs:SendMessage(dlq)", _send("dlq")),
    Probe("TaskApiRole", "denied", "states:StartExecution", _start_execution),
    # Event processor: reads the task, starts its workflow — never creates tasks nor publishes events.
    Probe("EventProcessorRole", "allowed", "dynamodb:GetItem", _get),
    Probe("EventProcessorRole", "denied", "dynamodb:PutItem", _put),
    Probe("EventProcessorRole", "denied", "dynamodb:DeleteItem", _delete),
    Probe("EventProcessorRole", "denied", "sqs:SendMessage(main)", _send("main")),
    # Workflow steps: pure business logic plus its config — no table, no queues.
    Probe("WorkflowStepsRole", "allowed", "ssm:GetParameter(s)", _read_config),
    Probe("WorkflowStepsRole", "denied", "dynamodb:GetItem", _get),
    Probe("WorkflowStepsRole", "denied", "dynamodb:UpdateItem", _update),
    Probe("WorkflowStepsRole", "denied", "sqs:SendMessage(main)", _send("main")),
    # State machine: invokes the steps function and records status — nothing else.
    Probe("StateMachineRole", "allowed", "dynamodb:UpdateItem", _update),
    Probe("StateMachineRole", "allowed", "lambda:InvokeFunction(steps)", _invoke("WorkflowSteps")),
    Probe("StateMachineRole", "denied", "lambda:InvokeFunction(task-api)", _invoke("TaskApi")),
    Probe("StateMachineRole", "denied", "dynamodb:DeleteItem", _delete),
    Probe("StateMachineRole", "denied", "states:StartExecution", _start_execution),
]


@pytest.fixture(scope="module")
def enforcing_engine(env):
    """Only MiniStack enforces IAM for free; on another engine say so and skip."""
    if settings.ENDPOINT_URL.get():
        engine = probe(env.target.endpoint_url)
        if engine is None or engine.name != "ministack":
            pytest.skip(f"IAM enforcement needs MiniStack with AUTH=true; {engine.name if engine else '?'} "
                        "answers (LocalStack enforces IAM only in its paid tier)")
    return env


@pytest.fixture(scope="module")
def sessions(enforcing_engine) -> dict[str, RoleSession]:
    env = enforcing_engine
    cfn, iam, sts = env.clients.cloudformation, env.clients.iam, env.clients.sts
    key = {"taskID": {"S": f"iam-probe-{uuid.uuid4().hex}"}}
    out = {}
    for logical in sorted({p.role for p in PROBES}):
        name = cfn.describe_stack_resource(StackName=env.stack.name,
                                           LogicalResourceId=logical)["StackResourceDetail"]["PhysicalResourceId"]
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        creds = sts.assume_role(RoleArn=arn, RoleSessionName="iam-probe")["Credentials"]
        session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                aws_session_token=creds["SessionToken"], region_name=env.target.region)
        out[logical] = RoleSession(arn, session, env.target.endpoint_url, env.stack, key)
    return out


def outcome(call: Callable[[], object]) -> tuple[str, str]:
    """allowed (success, or refused for something other than IAM) | denied."""
    try:
        call()
    except ClientError as err:
        code = err.response["Error"]["Code"]
        return ("denied" if code in DENIED else "allowed"), f"{code}: {err.response['Error'].get('Message', '')}"
    return "allowed", "ok"


def test_each_session_is_its_role(sessions):
    # GIVEN the assumed sessions WHEN each asks who it is THEN it is that role, not the root
    assert sessions, "no role session was assumed: nothing to check"
    for logical, s in sessions.items():
        arn = s.client("sts").get_caller_identity()["Arn"]
        assert f":assumed-role/{s.role_arn.rsplit('/', 1)[-1]}/iam-probe" in arn, (logical, arn)


@pytest.mark.parametrize("p", PROBES, ids=lambda p: p.id)
def test_role_is_allowed_only_what_its_code_does(sessions, p: Probe):
    # GIVEN the role's own session WHEN it makes the call THEN IAM allows or refuses it as its policy says
    got, detail = outcome(lambda: p.call(sessions[p.role]))
    if got == "denied" and p.expect == "allowed" and "ssm:GetParameters on resource: *" in detail:
        # MiniStack 1.5.33 names no resource for GetParameters (it does for GetParameter's Name), so a policy
        # scoped to parameter ARNs can never allow it there; AWS checks each named parameter's ARN.
        pytest.xfail(f"emulator gap, not the policy: {detail}")
    assert got == p.expect, f"{p.role} {p.action}: expected {p.expect}, got {got} ({detail})"
    if p.expect == "denied":
        # The refusal names this role's session: it is IAM saying no, not something else.
        assert sessions[p.role].role_arn.rsplit("/", 1)[-1] in detail, detail


def test_every_role_of_the_stack_is_probed(enforcing_engine):
    # GIVEN the deployed stack WHEN its roles are listed THEN each has a denied probe and an allowed control
    env = enforcing_engine
    roles = {r["LogicalResourceId"] for r in env.clients.cloudformation.list_stack_resources(
        StackName=env.stack.name)["StackResourceSummaries"] if r["ResourceType"] == "AWS::IAM::Role"}
    assert roles, f"no AWS::IAM::Role in stack {env.stack.name}: nothing to check"
    for role in roles:
        assert {p.expect for p in PROBES if p.role == role} == {"allowed", "denied"}, role
