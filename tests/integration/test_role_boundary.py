"""The roles' permissions boundary at run time: a stage deployed with
RolePermissionsBoundary set to cloudformation/pipeline.yaml's own boundary
policy (its document rendered for that stage and created in the emulator) runs
a task to COMPLETED with every one of its roles held to the boundary — and, as
the control that makes this mean something, a boundary missing one grant
denies exactly that grant.

MiniStack (AUTH=true) evaluates a role's boundary on every call signed with the
role's session (ministack/core/iam_evaluator.py `_permissions_boundary`), but
its CloudFormation provisioner does not apply AWS::IAM::Role's
PermissionsBoundary (AWS passes it to CreateRole). So the test sets the same
policy on the stage's roles with PutRolePermissionsBoundary after the deploy,
and says so if a later MiniStack applies it itself.

Its own stage on the session emulator, deleted in `finally`: the session stack
of conftest.py is not touched."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.conftest import PROJECT
from tmctl.core import settings
from tmctl.core.api import TaskApi
from tmctl.core.deploy import delete_stack, load_template
from tmctl.core.local.emulator import probe
from tmctl.core.target import Clients
from tmctl.core.up import bring_up

from .conftest import wait_for

pytestmark = pytest.mark.integration

STAGE = "bnd"


def boundary_document(target, account: str, drop: str | None = None) -> str:
    """pipeline.yaml's RoleBoundaryPolicy for this app, stage, region and account
    (optionally without one action)."""
    doc = load_template(PROJECT / "cloudformation" / "pipeline.yaml")["Resources"]["RoleBoundaryPolicy"]
    names = {"AWS::Partition": "aws", "AWS::Region": target.region, "AWS::AccountId": account,
             "AppName": target.app, "Stage": target.stage}

    def render(node):
        if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], node["Fn::Sub"])
        if isinstance(node, dict):
            return {k: render(v) for k, v in node.items()}
        if isinstance(node, list):
            return [render(v) for v in node if v != drop]
        return node

    document = render(doc["Properties"]["PolicyDocument"])
    for s in document["Statement"]:  # a single action as a string
        if s["Action"] == drop:
            s["Action"] = []
    document["Statement"] = [s for s in document["Statement"] if s["Action"]]
    return json.dumps(document)


@dataclasses.dataclass
class Bounded:
    clients: Clients
    api: TaskApi
    stack: object  # StackInfo
    roles: dict[str, str]  # logical id -> role name
    boundary_arn: str
    applied_by_cloudformation: bool


@pytest.fixture(scope="module")
def bounded(env):
    if settings.ENDPOINT_URL.get():
        engine = probe(env.target.endpoint_url)
        if engine is None or engine.name != "ministack":
            pytest.skip("permissions boundaries are evaluated only under IAM enforcement (MiniStack with AUTH=true)")
    target = dataclasses.replace(env.target, stage=STAGE)
    clients = Clients(target)
    account = clients.sts.get_caller_identity()["Account"]
    policy_name = f"{target.app}-{STAGE}-role-boundary-{uuid.uuid4().hex[:8]}"
    boundary_arn = clients.iam.create_policy(PolicyName=policy_name, PolicyDocument=boundary_document(
        target, account))["Policy"]["Arn"]
    try:
        # GIVEN the stage deployed as the pipeline deploys it: with the boundary parameter
        result = bring_up(clients, target, overrides={"LogRetentionDays": "1", "RolePermissionsBoundary": boundary_arn})
        resources = clients.cloudformation.describe_stack_resources(StackName=target.stack_name)["StackResources"]
        roles = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources
                 if r["ResourceType"] == "AWS::IAM::Role"}
        applied = [clients.iam.get_role(RoleName=name)["Role"].get("PermissionsBoundary", {})
                   .get("PermissionsBoundaryArn") for name in roles.values()]
        for name in roles.values():
            clients.iam.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=boundary_arn)
        yield Bounded(clients, TaskApi(result.stack.api_url), result.stack, roles, boundary_arn,
                      applied == [boundary_arn] * len(roles))
    finally:
        delete_stack(clients.cloudformation, target)
        for page in clients.iam.get_paginator("list_policies").paginate(Scope="Local"):
            for p in page["Policies"]:
                if p["PolicyName"].startswith(f"{target.app}-{STAGE}-role-boundary-"):
                    clients.iam.delete_policy(PolicyArn=p["Arn"])


def test_a_task_completes_with_every_role_held_to_the_boundary(bounded):
    # GIVEN each of the four roles bounded by pipeline.yaml's boundary
    assert set(bounded.roles) == {"TaskApiRole", "EventProcessorRole", "WorkflowStepsRole", "StateMachineRole"}
    for name in bounded.roles.values():
        role = bounded.clients.iam.get_role(RoleName=name)["Role"]
        assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == bounded.boundary_arn
    print(f"\nMiniStack applied AWS::IAM::Role PermissionsBoundary itself: {bounded.applied_by_cloudformation}")

    # WHEN a task is created through the API
    task_id = f"bnd-{uuid.uuid4().hex[:12]}"
    created = bounded.api.create({"taskID": task_id, "title": "bounded", "priority": "URGENT"})

    # THEN it goes all the way: API -> table + queue -> processor -> workflow -> steps -> status
    assert created.status == 202, created.body
    final = wait_for(lambda: bounded.api.get(task_id).body, lambda t: t.get("status") in {"COMPLETED", "FAILED"},
                     timeout=45)
    assert final.get("status") == "COMPLETED", final


def test_a_boundary_without_a_grant_denies_it(bounded):
    # GIVEN the Task API's role bounded by the same policy less sqs:SendMessage
    clients, role = bounded.clients, bounded.roles["TaskApiRole"]
    narrow = clients.iam.create_policy(
        PolicyName=f"{clients.target.app}-{STAGE}-role-boundary-narrow-{uuid.uuid4().hex[:8]}",
        PolicyDocument=boundary_document(clients.target, clients.sts.get_caller_identity()["Account"],
                                         drop="sqs:SendMessage"),
    )["Policy"]["Arn"]
    arn = clients.iam.get_role(RoleName=role)["Role"]["Arn"]
    creds = clients.sts.assume_role(RoleArn=arn, RoleSessionName="boundary-probe")["Credentials"]
    sqs = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"], region_name=clients.target.region,
                        ).client("sqs", endpoint_url=clients.target.endpoint_url)

    def send() -> str:
        # an empty body: refused after the IAM check, so nothing reaches the stage's queue
        try:
            sqs.send_message(QueueUrl=bounded.stack.queue_url, MessageBody="")
        except ClientError as err:
            return err.response["Error"]["Code"]
        return "ok"

    try:
        clients.iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=narrow)
        # WHEN the role sends to its own queue THEN the boundary denies what its policy grants
        assert send() in {"AccessDenied", "AccessDeniedException"}
    finally:
        clients.iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=bounded.boundary_arn)
    # AND with the full boundary back, the same call passes IAM (and fails only on the empty body)
    assert send() not in {"AccessDenied", "AccessDeniedException"}
