"""The pipeline: cloudformation/pipeline.yaml's shape and least privilege, and
tmctl.core.pipeline (deploy inputs, runs and stage states) with botocore Stubber."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.stub import ANY
from typer.testing import CliRunner

from tests.unit.conftest import ROOT, stubbed
from tmctl.core import pipeline as core
from tmctl.core.deploy import load_template
from tmctl.core.errors import NotFound, UsageError
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit

PIPELINE_PATH = ROOT / "cloudformation" / "pipeline.yaml"
CONNECTION = "arn:aws:codeconnections:eu-west-1:123456789012:connection/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pipeline() -> dict:
    return load_template(PIPELINE_PATH)


def statements(pipeline: dict, role: str) -> list[dict]:
    policies = pipeline["Resources"][role]["Properties"]["Policies"]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def allows(pipeline: dict, role: str) -> list[dict]:
    return [s for s in statements(pipeline, role) if s["Effect"] == "Allow"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def sub_text(value) -> str:
    """An ARN as written: the Fn::Sub string, or the intrinsic as JSON."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        return value["Fn::Sub"]
    return value if isinstance(value, str) else json.dumps(value)


# ------------------------------------------------------------------ the template


def test_the_pipeline_is_v2_started_by_a_push_to_the_branch(pipeline):
    props = pipeline["Resources"]["Pipeline"]["Properties"]
    source = props["Stages"][0]["Actions"][0]

    assert props["PipelineType"] == "V2"
    assert props["Triggers"] == [{"ProviderType": "CodeStarSourceConnection", "GitConfiguration": {
        "SourceActionName": source["Name"], "Push": [{"Branches": {"Includes": [{"Ref": "BranchName"}]}}]}}]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert {k: source["Configuration"][k] for k in ("ConnectionArn", "FullRepositoryId", "BranchName")} == {
        "ConnectionArn": {"Ref": "ConnectionArn"}, "FullRepositoryId": {"Ref": "FullRepositoryId"},
        "BranchName": {"Ref": "BranchName"}}
    build = props["Stages"][1]["Actions"][0]
    assert build["ActionTypeId"]["Provider"] == "CodeBuild"
    assert build["Configuration"]["ProjectName"] == {"Ref": "BuildProject"}


def test_the_artifact_bucket_is_encrypted_private_tls_only_and_expires(pipeline):
    bucket = pipeline["Resources"]["ArtifactBucket"]["Properties"]
    policy = pipeline["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]

    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == {"Ref": "ArtifactRetentionDays"}
    assert [s for s in policy if s["Effect"] == "Deny" and s["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}}]


@pytest.mark.parametrize("role", ["BuildRole", "PipelineRole"])
def test_no_wildcard_actions_and_star_resources_only_where_aws_has_nothing_narrower(pipeline, role):
    allowed_star = {"WhoAmI", "CreateStageEventSourceMapping"}  # each commented "allowlist:" in the template
    grants = allows(pipeline, role)
    assert grants, f"{role} has no Allow statement: the walk is broken"
    for s in grants:
        for action in as_list(s["Action"]):
            assert "*" not in action, f"{role}/{s['Sid']}: {action}"
        if "*" in as_list(s["Resource"]):
            assert s["Sid"] in allowed_star, f"{role}/{s['Sid']} has Resource '*'"


def test_the_build_reaches_only_this_apps_stage_stack():
    # The stage pattern keeps <app>-pipeline (this stack and its roles) out of <app>-<Stage>-*.
    stage = load_template(PIPELINE_PATH)["Parameters"]["Stage"]["AllowedPattern"]
    for name, ok in (("dev", True), ("prod", True), ("pipeline", False), ("pipeline-x", False), ("x-pipeline", True)):
        assert bool(re.fullmatch(stage, name)) is ok, name


def test_every_build_resource_is_the_apps_own(pipeline):
    # Each ARN names the app (and stage), the pipeline's own resources, or is allowlisted.
    own = ("${AppName}-${Stage}", "/${AppName}/${Stage}/", "${ArtifactBucket", "${BuildLogGroup",
           "tmctl-artifacts-${AWS::AccountId}-${AWS::Region}", "${AWS::AccountId}:event-source-mapping:",
           "${AppName}-build-", "::/apis",  # HTTP APIs: held to the stage's by tag conditions (tests below)
           "changeSet/tmctl-")  # tmctl's change sets; CloudFormation also checks the stack they belong to
    checked = 0
    for s in allows(pipeline, "BuildRole"):
        for resource in as_list(s["Resource"]):
            text = sub_text(resource)
            if text == "*" or resource in ({"Ref": "ConnectionArn"}, {"Fn::GetAtt": "ArtifactBucket.Arn"}) or \
                    s["Sid"] == "ListLogGroups":  # read-only, account level: DescribeLogGroups names no group
                continue
            assert any(part in text for part in own), f"{s['Sid']}: {text}"
            checked += 1
    assert checked, "no BuildRole resource was checked: the walk is broken"


# What CloudFormation's resource handlers may call that this template never makes
# them call. A type new to template.yaml fails the next test until the build role
# (or this list, with a reason) covers it.
NOT_NEEDED = {
    # Customer-managed KMS keys: the stack uses AWS-owned/managed keys only.
    "kms:", "dynamodb:CreateTableReplica", "dynamodb:AssociateTableReplica",  # no global tables
    "dynamodb:ImportTable", "dynamodb:DescribeImport", "s3:GetObjectMetadata", "s3:ListBucket",  # no import from S3
    "kinesis:", "dynamodb:EnableKinesisStreamingDestination", "dynamodb:DisableKinesisStreamingDestination",
    "dynamodb:UpdateKinesisStreamingDestination",  # no Kinesis streaming
    "dynamodb:UpdateContributorInsights", "dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy",
    "iam:CreateServiceLinkedRole",  # DynamoDB's, for replicas and auto scaling
    # The handlers' item-level calls serve imports and replicas
    "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
    "dynamodb:Scan", "dynamodb:UpdateItem",
    "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams",  # DynamoDB import logs
    "ec2:", "elasticfilesystem:", "s3files:",  # no VPC, no file systems
    "lambda:GetCodeSigningConfig", "lambda:PutFunctionCodeSigningConfig", "lambda:DeleteFunctionCodeSigningConfig",
    "lambda:AssociateRuntimeAlias", "lambda:PassCapacityProvider", "lambda:PutFunctionScalingConfig",
    "lambda:GetFunctionScalingConfig",  # code signing, managed instances: not used
    "iam:AttachRolePolicy", "iam:DetachRolePolicy",  # inline policies only: no managed policy can be attached
    "iam:DeleteRolePermissionsBoundary",  # denied outright: dropping the boundary is the way out of it
    "logs:AssociateKmsKey", "logs:DisassociateKmsKey",
    "logs:PutDataProtectionPolicy", "logs:DeleteDataProtectionPolicy",
    "logs:PutIndexPolicy", "logs:DeleteIndexPolicy", "logs:PutResourcePolicy", "logs:DeleteResourcePolicy",
    "logs:CreateLogDelivery", "logs:PutBearerTokenAuthentication", "logs:PutLogGroupDeletionProtection",
    "firehose:", "s3:REST.PUT.OBJECT",  # log group features not used
    # Not IAM actions (cfn-lint W3037): API Gateway tags with POST/PUT/DELETE on /tags/…, not granted: the
    # tags go in with the create request; changing them later would need /tags, which no tag condition holds.
    "apigateway:TagResource", "apigateway:UntagResource",
    "s3:getObject",  # ApiGatewayV2::Api's, for an OpenAPI body in S3 (BodyS3Location): not used
    "apigateway:UpdateRestApiPolicy",  # ApiGateway::RestApi's, for its Policy property: the REST API sets none
}


def granted_actions(pipeline: dict) -> set[str]:
    return {a for s in allows(pipeline, "BuildRole") for a in as_list(s["Action"])}


def test_the_build_role_covers_what_cloudformation_does_for_each_resource_type(pipeline, template):
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    granted = granted_actions(pipeline)
    missing, checked = {}, 0
    for rtype in sorted({r["Type"] for r in template["Resources"].values()}):
        handlers = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", rtype).schema.get("handlers", {})
        needed = {p for h in ("create", "read", "update", "delete") for p in handlers.get(h, {}).get("permissions", [])}
        checked += len(needed)
        lacking = sorted(p for p in needed - granted if not any(p == n or (n.endswith(":") and p.startswith(n))
                                                                  for n in NOT_NEEDED))
        if lacking:
            missing[rtype] = lacking
    # no resource, or schemas without handler permissions, would leave nothing to be missing
    assert checked, "no handler permission of any resource type of template.yaml was checked"
    assert not missing, f"grant these in pipeline.yaml's BuildRole (or add them to NOT_NEEDED, why): {missing}"


def test_the_build_role_grants_what_tmctl_up_calls_itself(pipeline):
    # tmctl's own calls (not CloudFormation's): change sets, events, the artifact bucket, warm-up.
    granted = granted_actions(pipeline)

    assert {"sts:GetCallerIdentity", "cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet",
            "cloudformation:ExecuteChangeSet", "cloudformation:DeleteChangeSet", "cloudformation:DescribeStacks",
            "cloudformation:DescribeStackEvents", "cloudformation:GetTemplate", "cloudformation:ListStackResources",
            "cloudformation:DeleteStack", "s3:CreateBucket", "s3:ListBucket", "s3:PutBucketPublicAccessBlock",
            "s3:PutEncryptionConfiguration", "s3:PutBucketPolicy", "s3:PutLifecycleConfiguration",
            "s3:GetObject", "s3:PutObject", "lambda:InvokeFunction"} <= granted


def test_the_build_may_delete_only_tmctls_artifact_bucket(pipeline):
    # ensure_bucket deletes a bucket its set-up left half done; without the grant the delete fails
    # silently in CI and the next run trusts the half-configured bucket.
    deleting = [s for s in allows(pipeline, "BuildRole") if "s3:DeleteBucket" in as_list(s["Action"])]

    assert [[sub_text(r) for r in as_list(s["Resource"])] for s in deleting] == [
        ["arn:${AWS::Partition}:s3:::tmctl-artifacts-${AWS::AccountId}-${AWS::Region}"]]
    # the ARN is the bucket tmctl really uses
    from tmctl.core.deploy import artifact_bucket

    with stubbed("sts") as (sts, stub):
        stub.add_response("get_caller_identity", {"Account": NAMES["AWS::AccountId"]})
        bucket, _ = artifact_bucket(sts, target())
    assert resolve(as_list(deleting[0]["Resource"])[0]) == f"arn:aws:s3:::{bucket}"
    # and it cannot empty a bucket first: only an empty (just created) bucket can go
    assert not [a for a in granted_actions(pipeline) if a.startswith("s3:Delete") and a != "s3:DeleteBucket"]


# ------------------------------------------------------------------ the roles' permissions boundary
#
# The build creates the stage's IAM roles. Without a boundary, a commit that puts
# `Action: "*"` into one of template.yaml's roles would get a role with admin rights
# from the pipeline. So every role-writing action of the build role is allowed only
# for a role whose boundary is RoleBoundaryPolicy, and that policy allows no more
# than the stage's roles are granted.

# The IAM actions that give a role permissions or take its boundary away; all of them
# take the iam:PermissionsBoundary condition key (Service Authorization Reference).
ROLE_WRITES = ("iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy",
               "iam:DetachRolePolicy", "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary")
BOUNDARY_CONDITION = {"StringEquals": {"iam:PermissionsBoundary": {"Ref": "RoleBoundaryPolicy"}}}


def iam_pattern(pattern: str) -> re.Pattern:
    """An IAM action or resource pattern (`*`, `?`) as a regular expression."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                      re.IGNORECASE | re.DOTALL)


def unbounded_role_writes(stmts: list[dict]) -> list[str]:
    """The Allow statements through which a role could be created or written
    without RoleBoundaryPolicy as its boundary."""
    problems = []
    for s in stmts:
        if s["Effect"] != "Allow":
            continue
        if "NotAction" in s:
            problems.append(f"{s.get('Sid')}: NotAction in an Allow")
            continue
        writes = [w for w in ROLE_WRITES for a in as_list(s["Action"]) if iam_pattern(a).fullmatch(w)]
        if writes and s.get("Condition") != BOUNDARY_CONDITION:
            problems.append(f"{s.get('Sid')}: {', '.join(writes)} without the boundary condition")
        if "iam:DeleteRolePermissionsBoundary" in writes:
            problems.append(f"{s.get('Sid')}: iam:DeleteRolePermissionsBoundary allowed")
    return problems


def test_every_role_writing_action_of_the_build_needs_the_boundary(pipeline):
    build = statements(pipeline, "BuildRole")
    writes = {a for s in build if s["Effect"] == "Allow" for a in as_list(s["Action"]) if a in ROLE_WRITES}

    assert unbounded_role_writes(build) == []
    # not vacuous: CloudFormation creates the roles and writes their inline policies with these
    assert {"iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary"} <= writes
    # the condition names the boundary this stack creates, and the build is given that same ARN
    env = pipeline["Resources"]["BuildProject"]["Properties"]["Environment"]["EnvironmentVariables"]
    assert {"Name": "ROLE_BOUNDARY_ARN", "Value": {"Ref": "RoleBoundaryPolicy"}} in env
    assert pipeline["Resources"]["RoleBoundaryPolicy"]["Type"] == "AWS::IAM::ManagedPolicy"


@pytest.mark.parametrize("breach", ["condition dropped", "CreateRole moved", "AttachRolePolicy added",
                                    "wildcard action", "boundary removable"])
def test_a_role_write_without_the_boundary_is_caught(pipeline, breach):
    # GIVEN the build role's statements, widened one way
    build = copy.deepcopy(statements(pipeline, "BuildRole"))
    by_sid = {s["Sid"]: s for s in build}
    if breach == "condition dropped":
        del by_sid["StageRolesOnlyWithTheBoundary"]["Condition"]
    elif breach == "CreateRole moved":
        by_sid["StageRoles"]["Action"].append("iam:CreateRole")
    elif breach == "AttachRolePolicy added":
        build.append({"Sid": "Attach", "Effect": "Allow", "Action": "iam:AttachRolePolicy",
                      "Resource": by_sid["StageRoles"]["Resource"]})
    elif breach == "wildcard action":
        build.append({"Sid": "Wide", "Effect": "Allow", "Action": "iam:Put*", "Resource": "*"})
    else:
        by_sid["StageRolesOnlyWithTheBoundary"]["Action"].append("iam:DeleteRolePermissionsBoundary")

    # THEN the check names it
    assert unbounded_role_writes(build)


def test_the_build_can_neither_drop_a_boundary_nor_edit_the_boundary_policy(pipeline):
    denies = [s for s in statements(pipeline, "BuildRole") if s["Effect"] == "Deny"]

    def denied(action: str, resource) -> bool:
        return any(action in as_list(s["Action"]) and not s.get("Condition") and
                   (s["Resource"] == "*" or s["Resource"] == resource) for s in denies)

    assert denied("iam:DeleteRolePermissionsBoundary", "*")
    for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicyVersion",
                   "iam:DeletePolicy"):
        assert denied(action, {"Ref": "RoleBoundaryPolicy"}), action
    # and nothing allows the build to touch any managed policy
    assert not [a for a in granted_actions(pipeline) if re.search(r"^iam:.*Polic(y|ies)", a)
                and "Role" not in a], granted_actions(pipeline)


# Concrete names for resolving both templates' ARNs the same way.
NAMES = {"AppName": "taskmanager", "Stage": "dev", "AWS::Partition": "aws", "AWS::Region": "eu-west-1",
         "AWS::AccountId": "123456789012"}


def arn_of(template: dict, logical: str, attribute: str | None = None) -> str:
    """What Ref / Fn::GetAtt …Arn of one of template.yaml's resources resolves to on AWS."""
    res = template["Resources"][logical]
    props = res["Properties"]
    part, region, account = NAMES["AWS::Partition"], NAMES["AWS::Region"], NAMES["AWS::AccountId"]
    name_prop, arn, ref_is_arn = {
        "AWS::DynamoDB::Table": ("TableName", "dynamodb:{r}:{a}:table/{n}", False),
        "AWS::SQS::Queue": ("QueueName", "sqs:{r}:{a}:{n}", False),
        "AWS::StepFunctions::StateMachine": ("StateMachineName", "states:{r}:{a}:stateMachine:{n}", True),
        "AWS::Lambda::Function": ("FunctionName", "lambda:{r}:{a}:function:{n}", False),
        "AWS::Logs::LogGroup": ("LogGroupName", "logs:{r}:{a}:log-group:{n}:*", False),
        "AWS::SSM::Parameter": ("Name", None, False),
    }[res["Type"]]
    name = substitute(template, props[name_prop])
    full = f"arn:{part}:" + arn.format(r=region, a=account, n=name) if arn else None
    if attribute == "Arn":
        return full
    return full if ref_is_arn else name


def substitute(template: dict, value) -> str:
    """A string, !Sub, !Ref or !GetAtt of template.yaml, resolved with NAMES."""
    if isinstance(value, str):
        return value
    (fn, arg), = value.items()
    if fn == "Ref":
        return NAMES[arg] if arg in NAMES else arn_of(template, arg)
    if fn == "Fn::GetAtt":
        logical, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
        return arn_of(template, logical, attribute)
    assert fn == "Fn::Sub" and isinstance(arg, str), value

    def one(m: re.Match) -> str:
        ref = m.group(1)
        if ref in NAMES:
            return NAMES[ref]
        logical, _, attribute = ref.partition(".")
        return arn_of(template, logical, attribute or None)

    return re.sub(r"\$\{([^}!]+)\}", one, arg)


def role_grants(template: dict) -> list[tuple[str, str, str]]:
    """(role, action, resource ARN) for every Allow in the inline policies of template.yaml's roles."""
    out = []
    for logical, res in template["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            for s in policy["PolicyDocument"]["Statement"]:
                assert s["Effect"] == "Allow" and "Condition" not in s, f"{logical}/{s.get('Sid')}: judge this by hand"
                out += [(logical, a, substitute(template, r)) for a in as_list(s["Action"])
                        for r in as_list(s["Resource"])]
    return out


def boundary_allows(pipeline: dict) -> list[tuple[re.Pattern, re.Pattern]]:
    doc = pipeline["Resources"]["RoleBoundaryPolicy"]["Properties"]["PolicyDocument"]
    out = []
    for s in doc["Statement"]:
        assert s["Effect"] == "Allow" and "Condition" not in s and "NotAction" not in s
        out += [(iam_pattern(a), iam_pattern(substitute({}, r))) for a in as_list(s["Action"])
                for r in as_list(s["Resource"])]
    return out


def test_the_boundary_allows_every_grant_of_the_stage_roles(pipeline, template):
    # A deploy with the boundary cannot break a function: each (action, resource) a role of
    # template.yaml is granted, resolved to its ARN, is inside the boundary.
    grants = role_grants(template)
    boundary = boundary_allows(pipeline)
    outside = [g for g in grants if not any(a.fullmatch(g[1]) and r.fullmatch(g[2]) for a, r in boundary)]

    assert {role for role, _, _ in grants} == {"TaskApiRole", "EventProcessorRole", "WorkflowStepsRole",
                                                "StateMachineRole"}
    assert len(grants) >= 20  # the walk is not vacuous
    assert outside == [], f"widen RoleBoundaryPolicy in pipeline.yaml for: {outside}"


def test_the_boundary_allows_nothing_the_stage_roles_are_not_granted(pipeline, template):
    granted = {a.lower() for _, a, _ in role_grants(template)}
    doc = pipeline["Resources"]["RoleBoundaryPolicy"]["Properties"]["PolicyDocument"]
    bounded = {a.lower() for s in doc["Statement"] for a in as_list(s["Action"])}

    assert bounded == granted


def test_the_boundary_keeps_a_grant_outside_the_stage_out(pipeline):
    boundary = boundary_allows(pipeline)

    def inside(action: str, arn: str) -> bool:
        return any(a.fullmatch(action) and r.fullmatch(arn) for a, r in boundary)

    table = "arn:aws:dynamodb:eu-west-1:123456789012:table/taskmanager-dev-tasks"
    assert inside("dynamodb:Query", f"{table}/index/byStatus")
    assert not inside("dynamodb:GetItem", table.replace("-dev-", "-prod-"))
    assert not inside("dynamodb:DeleteTable", table)
    assert not inside("iam:CreateRole", "arn:aws:iam::123456789012:role/taskmanager-dev-x")
    assert not inside("ssm:GetParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/other/dev/x")
    assert not inside("s3:GetObject", "*")


# ------------------------------------------------------------------ the stage's HTTP API
#
# HTTP API ids are generated, so no ARN can name the stage's API: its tags do. An
# apigateway grant on /apis/* without them would let a commit delete any HTTP API in
# the region (prod's, another team's).

TAGGED = {"app": {"Ref": "AppName"}, "stage": {"Ref": "Stage"}}
APIGATEWAY_VERBS = ("apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH",
                    "apigateway:DELETE")
APIGATEWAY_WRITES = APIGATEWAY_VERBS[1:]
# What each kind of HTTP API resource needs from an Allow that reaches it, on sample ARNs.
API_ID = "a1b2c3d4e5"
API_RESOURCES = {
    f"arn:aws:apigateway:eu-west-1::/apis/{API_ID}": "ResourceTag",
    f"arn:aws:apigateway:eu-west-1::/apis/{API_ID}/routes/r1": "ResourceTag",
    f"arn:aws:apigateway:eu-west-1::/apis/{API_ID}/stages/dev": "ResourceTag",
    "arn:aws:apigateway:eu-west-1::/apis": "RequestTag",
    # TagResource/UntagResource: no aws:ResourceTag key, so no condition can keep them on our API
    f"arn:aws:apigateway:eu-west-1::/tags/arn%3Aaws%3Aapigateway%3Aeu-west-1%3A%3A%2Fapis%2F{API_ID}": None,
}


def resolve(resource) -> str | None:
    """A resource ARN with NAMES filled in; None when it names one of this stack's resources."""
    text = sub_text(resource)
    for name, value in NAMES.items():
        text = text.replace("${" + name + "}", value)
    return None if "${" in text or text.startswith("{") else text


def has_tag_condition(statement: dict, kind: str) -> bool:
    equals = (statement.get("Condition") or {}).get("StringEquals", {})
    return all(equals.get(f"aws:{kind}/{key}") == value for key, value in TAGGED.items())


def unscoped_http_api_grants(stmts: list[dict]) -> list[str]:
    """The Allow statements through which an HTTP API that is not the stage's could be
    read or written: no tag condition, or a tag write at all."""
    problems = []
    for s in stmts:
        if s["Effect"] != "Allow":
            continue
        if "NotAction" in s or "NotResource" in s:
            problems.append(f"{s.get('Sid')}: NotAction/NotResource in an Allow")
            continue
        verbs = [v for v in APIGATEWAY_VERBS for a in as_list(s["Action"]) if iam_pattern(a).fullmatch(v)]
        for resource in as_list(s["Resource"]):
            arn = resolve(resource)
            if not verbs or arn is None:
                continue
            for sample, kind in API_RESOURCES.items():
                if not iam_pattern(arn).fullmatch(sample):
                    continue
                if kind is None and set(verbs) & set(APIGATEWAY_WRITES):
                    problems.append(f"{s.get('Sid')}: tag writes on {sample}")
                elif kind is not None and not has_tag_condition(s, kind):
                    problems.append(f"{s.get('Sid')}: {', '.join(verbs)} on {sample} without aws:{kind} app/stage")
    return problems


def test_the_build_reaches_only_the_stages_own_http_api(pipeline):
    build = statements(pipeline, "BuildRole")

    assert unscoped_http_api_grants(build) == []
    # not vacuous: what CloudFormation needs to create, change and delete the API and its children
    by_sid = {s["Sid"]: s for s in build}
    assert set(as_list(by_sid["StageHttpApi"]["Action"])) == set(APIGATEWAY_VERBS)
    assert has_tag_condition(by_sid["StageHttpApi"], "ResourceTag")
    assert as_list(by_sid["CreateStageHttpApi"]["Action"]) == ["apigateway:POST"]
    assert has_tag_condition(by_sid["CreateStageHttpApi"], "RequestTag")


@pytest.mark.parametrize("breach", ["condition dropped", "one tag dropped", "another stage's tag",
                                    "create without request tags", "tag writes", "wildcard resource",
                                    "wildcard action"])
def test_an_http_api_grant_beyond_the_stage_is_caught(pipeline, breach):
    # GIVEN the build role's statements, widened one way
    build = copy.deepcopy(statements(pipeline, "BuildRole"))
    by_sid = {s["Sid"]: s for s in build}
    api = by_sid["StageHttpApi"]
    region = "arn:${AWS::Partition}:apigateway:${AWS::Region}::"
    if breach == "condition dropped":
        del api["Condition"]
    elif breach == "one tag dropped":
        del api["Condition"]["StringEquals"]["aws:ResourceTag/stage"]
    elif breach == "another stage's tag":
        api["Condition"]["StringEquals"]["aws:ResourceTag/stage"] = "prod"
    elif breach == "create without request tags":
        del by_sid["CreateStageHttpApi"]["Condition"]
    elif breach == "tag writes":
        build.append({"Sid": "Tags", "Effect": "Allow", "Action": ["apigateway:PUT", "apigateway:DELETE"],
                      "Resource": {"Fn::Sub": region + "/tags/*"}})
    elif breach == "wildcard resource":
        build.append({"Sid": "Wide", "Effect": "Allow", "Action": "apigateway:DELETE",
                      "Resource": {"Fn::Sub": region + "/*"}})
    else:
        build.append({"Sid": "Wide", "Effect": "Allow", "Action": "apigateway:*", "Resource": "*"})

    # THEN the check names it
    assert unscoped_http_api_grants(build)


def test_the_stages_http_api_carries_the_tags_the_conditions_ask_for():
    # The conditions hold because tmctl tags the stack app=<app> stage=<stage> (the build runs
    # `TMCTL_APP=$DEPLOY_APP tmctl --stage $DEPLOY_STAGE up`, DEPLOY_* being AppName and Stage) and
    # CloudFormation copies stack tags into the create request of every type taggable on create.
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    from tmctl.core.deploy import create_change_set

    class Tagged:
        """Matches a Tags list holding app and stage (other tags may come and go)."""

        def __eq__(self, tags):
            return {"app": "taskmanager", "stage": "dev"}.items() <= {t["Key"]: t["Value"] for t in tags}.items()

        def __ne__(self, tags):
            return not self == tags

    with stubbed("cloudformation") as (cfn, stub):
        stub.add_client_error("describe_stacks", "ValidationError", "does not exist")
        stub.add_response("create_change_set", {"Id": "cs-1", "StackId": "s"}, {
            "StackName": "taskmanager-dev", "ChangeSetName": ANY, "ChangeSetType": "CREATE", "TemplateBody": ANY,
            "Capabilities": ANY, "Parameters": ANY, "Tags": Tagged()})
        stub.add_response("describe_change_set", {"ChangeSetId": "cs-1", "StackName": "taskmanager-dev",
                                                  "Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE"})
        create_change_set(cfn, target(), "{}", {})
    for rtype in ("AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage"):
        tagging = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", rtype).schema["tagging"]
        assert tagging["taggable"] and tagging["tagOnCreate"], rtype


# ------------------------------------------------------------------ deploy inputs


def target(**kw):
    return resolve_target(env={"AWS_REGION": "eu-west-1"}, **kw)


def test_options_need_no_call_and_are_checked():
    with stubbed("cloudformation") as (cfn, _):  # nothing queued: any call fails the test
        source = core.resolve_source(cfn, target(), CONNECTION, "acme/task-manager", "main")

    assert source == core.Source(CONNECTION, "acme/task-manager", "main")


@pytest.mark.parametrize(("arn", "repo", "branch", "word"), [
    ("arn:aws:iam::123456789012:role/x", "acme/tm", "main", "--connection-arn"),
    (CONNECTION, "acme", "main", "--repo"),
    (CONNECTION, "acme/tm", " main", "--branch"),
])
def test_bad_options_are_usage_errors(arn, repo, branch, word):
    with stubbed("cloudformation") as (cfn, _), pytest.raises(UsageError, match=word):
        core.resolve_source(cfn, target(), arn, repo, branch)


def stack_response(name: str, params: dict[str, str], status: str = "UPDATE_COMPLETE") -> dict:
    return {"Stacks": [{"StackName": name, "StackStatus": status, "CreationTime": T0,
                        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]}]}


def test_an_update_reuses_the_deployed_source_unless_told_otherwise():
    deployed = {"ConnectionArn": CONNECTION, "FullRepositoryId": "acme/task-manager", "BranchName": "release"}
    with stubbed("cloudformation") as (cfn, stub):
        stub.add_response("describe_stacks", stack_response("taskmanager-pipeline", deployed),
                          {"StackName": "taskmanager-pipeline"})
        source = core.resolve_source(cfn, target(), None, None, None)
        stub.add_response("describe_stacks", stack_response("taskmanager-pipeline", deployed),
                          {"StackName": "taskmanager-pipeline"})
        moved = core.resolve_source(cfn, target(), None, None, "main")

    assert source == core.Source(CONNECTION, "acme/task-manager", "release")
    assert moved.branch == "main" and moved.repository == "acme/task-manager"


def test_the_first_deploy_needs_the_connection_and_the_repository():
    with stubbed("cloudformation") as (cfn, stub):
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id taskmanager-pipeline does not exist")
        with pytest.raises(UsageError, match="--connection-arn and --repo"):
            core.resolve_source(cfn, target(), None, None, None)


def test_the_pipeline_stack_deploys_the_stage_and_is_named_after_the_app():
    t = target(stage="prod")
    params = core.pipeline_parameters(t, core.Source(CONNECTION, "acme/tm", "main"))

    assert core.pipeline_target(t).stack_name == "taskmanager-pipeline"
    assert core.pipeline_name(t) == "taskmanager-pipeline"
    assert params == {"AppName": "taskmanager", "Stage": "prod", "ConnectionArn": CONNECTION,
                      "FullRepositoryId": "acme/tm", "BranchName": "main"}
    # every parameter without a default is given
    required = {k for k, v in load_template(PIPELINE_PATH)["Parameters"].items() if "Default" not in v}
    assert required <= set(params)
    with pytest.raises(UsageError, match="pipeline"):
        core.pipeline_parameters(target(stage="pipeline"), core.Source(CONNECTION, "acme/tm"))


def test_plan_creates_a_change_set_for_the_pipeline_stack_with_its_parameters():
    body = PIPELINE_PATH.read_text()
    source = core.Source(CONNECTION, "acme/tm", "main")
    cs_id = "arn:aws:cloudformation:eu-west-1:123456789012:changeSet/tmctl-x/1"
    with stubbed("cloudformation") as (cfn, stub):
        stub.add_client_error("describe_stacks", "ValidationError", "does not exist",
                              expected_params={"StackName": "taskmanager-pipeline"})
        stub.add_response("create_change_set", {"Id": cs_id, "StackId": "s"}, {
            "StackName": "taskmanager-pipeline", "ChangeSetName": ANY, "ChangeSetType": "CREATE",
            "TemplateBody": body, "Capabilities": ["CAPABILITY_IAM"], "Tags": ANY,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in {
                "AppName": "taskmanager", "Stage": "dev", "ConnectionArn": CONNECTION,
                "FullRepositoryId": "acme/tm", "BranchName": "main"}.items()]})
        stub.add_response("describe_change_set", {
            "ChangeSetId": cs_id, "StackName": "taskmanager-pipeline", "Status": "CREATE_COMPLETE",
            "ExecutionStatus": "AVAILABLE", "Changes": [{"Type": "Resource", "ResourceChange": {
                "Action": "Add", "LogicalResourceId": "Pipeline", "ResourceType": "AWS::CodePipeline::Pipeline"}}]})
        cs = core.plan(cfn, target(), source, body)

    assert cs.id == cs_id and [c.logical_id for c in cs.changes] == ["Pipeline"]


def test_connection_status_and_service_by_arn():
    assert core.connection_service(CONNECTION) == "codeconnections"
    assert core.connection_service(CONNECTION.replace("codeconnections", "codestar-connections")) == \
        "codestar-connections"
    with stubbed("codeconnections") as (client, stub):
        stub.add_response("get_connection", {"Connection": {"ConnectionStatus": "PENDING"}},
                          {"ConnectionArn": CONNECTION})
        assert core.connection_status(client, CONNECTION) == "PENDING"
        stub.add_client_error("get_connection", "ResourceNotFoundException", "no such connection")
        assert core.connection_status(client, CONNECTION) == core.CONNECTION_NOT_FOUND
        stub.add_client_error("get_connection", "AccessDeniedException", "not allowed")
        assert core.connection_status(client, CONNECTION) is None


# ------------------------------------------------------------------ status

COMMIT = "9f2c4e1a7b3d5c6e8f0a1b2c3d4e5f6a7b8c9d0e"  # a commit id  # pragma: allowlist secret


def executions_response() -> dict:
    return {"pipelineExecutionSummaries": [
        {"pipelineExecutionId": "e-2", "status": "InProgress", "startTime": T0 + timedelta(minutes=10),
         "lastUpdateTime": T0 + timedelta(minutes=11),
         "sourceRevisions": [{"actionName": "Source", "revisionId": COMMIT,
                              "revisionSummary": json.dumps({"ProviderType": "GitHub",
                                                             "CommitMessage": "Fix the redrive\n\nbody"})}],
         "trigger": {"triggerType": "WebhookV2", "triggerDetail": "arn:aws:codeconnections:…"}},
        {"pipelineExecutionId": "e-1", "status": "Failed", "startTime": T0,
         "lastUpdateTime": T0 + timedelta(minutes=7, seconds=5),
         "sourceRevisions": [{"actionName": "Source", "revisionId": "1234567abc",  # pragma: allowlist secret
                              "revisionSummary": "plain text"}],
         "trigger": {"triggerType": "CreatePipeline", "triggerDetail": "arn:aws:iam::123456789012:user/dev"}},
    ]}


def state_response(build_status: str = "InProgress") -> dict:
    return {"pipelineName": "taskmanager-pipeline", "stageStates": [
        {"stageName": "Source", "latestExecution": {"pipelineExecutionId": "e-2", "status": "Succeeded"},
         "actionStates": [{"actionName": "Source", "latestExecution": {"status": "Succeeded", "summary": "Fix"}}]},
        {"stageName": "BuildTestDeploy", "latestExecution": {"pipelineExecutionId": "e-2", "status": build_status},
         "actionStates": [{"actionName": "BuildTestDeploy", "latestExecution": {
             "status": build_status, "externalExecutionUrl": "https://console.example/build/1",
             **({"errorDetails": {"code": "JobFailed", "message": "Build terminated with state: FAILED"}}
                if build_status == "Failed" else {})}}]},
    ]}


def stub_status(stub, executions=None, state=None, limit=10):
    stub.add_response("list_pipeline_executions", executions or executions_response(),
                      {"pipelineName": "taskmanager-pipeline", "maxResults": limit})
    stub.add_response("get_pipeline_state", state or state_response(), {"name": "taskmanager-pipeline"})


def test_status_lists_runs_newest_first_with_trigger_commit_and_duration():
    with stubbed("codepipeline") as (cp, stub):
        stub_status(stub)
        s = core.pipeline_status(cp, "taskmanager-pipeline", now=T0 + timedelta(minutes=13))

    running, failed = s.runs
    assert (running.id, running.status, running.trigger, running.revision, running.message) == (
        "e-2", "InProgress", "WebhookV2", COMMIT[:7], "Fix the redrive")
    assert running.seconds == 180  # so far: now - start
    assert (failed.status, failed.seconds, failed.message, failed.revision) == ("Failed", 425, "plain text", "1234567")
    assert [(st.name, st.status) for st in s.stages] == [("Source", "Succeeded"), ("BuildTestDeploy", "InProgress")]
    assert s.stages[1].actions[0].url == "https://console.example/build/1"
    assert s.to_dict()["runs"][1] == {"id": "e-1", "status": "Failed", "trigger": "CreatePipeline",
                                      "triggerDetail": "arn:aws:iam::123456789012:user/dev", "revision": "1234567",
                                      "message": "plain text", "started": T0.isoformat(), "seconds": 425.0}


@pytest.mark.parametrize(("summary", "message"), [
    (json.dumps({"ProviderType": "GitHub", "CommitMessage": None}), ""),  # a commit with no message
    (json.dumps({"ProviderType": "GitHub"}), ""),
    (json.dumps({"ProviderType": "GitHub", "CommitMessage": "  first line\nsecond"}), "first line"),
    (None, ""),
    ("42", "42"),  # valid JSON, not a connection's summary: the text itself
])
def test_a_commit_message_is_read_whatever_the_summary_holds(summary, message):
    assert core._commit_message(summary) == message


def test_status_of_a_pipeline_never_deployed_is_not_found():
    with stubbed("codepipeline") as (cp, stub):
        stub.add_client_error("list_pipeline_executions", "PipelineNotFoundException", "not found")
        with pytest.raises(NotFound, match="tmctl pipeline up"):
            core.pipeline_status(cp, "taskmanager-pipeline")


@pytest.fixture
def cli_codepipeline(monkeypatch):
    """`tmctl pipeline status` on an AWS target with a stubbed CodePipeline client."""
    from tmctl.core.target import Clients

    with stubbed("codepipeline") as (cp, stub):
        monkeypatch.setattr(Clients, "client", lambda self, service: cp if service == "codepipeline" else None)
        yield stub


def run_cli(*args: str):
    from tmctl.cli.app import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160", "NO_COLOR": "1", "AWS_REGION": "eu-west-1"})


def test_status_json_for_scripts(cli_codepipeline):
    executions = executions_response()
    executions["pipelineExecutionSummaries"][0]["status"] = "Succeeded"
    stub_status(cli_codepipeline, executions, state_response("Succeeded"), limit=2)

    result = run_cli("pipeline", "status", "-n", "2", "--output", "json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["id"] for r in data["runs"]] == ["e-2", "e-1"] and data["pipeline"] == "taskmanager-pipeline"
    assert data["stages"][1]["actions"][0]["name"] == "BuildTestDeploy"


def test_status_exits_5_when_the_latest_run_failed(cli_codepipeline):
    executions = executions_response()
    executions["pipelineExecutionSummaries"][0]["status"] = "Failed"
    stub_status(cli_codepipeline, executions, state_response("Failed"))

    result = run_cli("pipeline", "status", "--output", "table")

    assert result.exit_code == 5
    assert "e-2" in result.stdout and "JobFailed" in result.stdout
    assert "failed in stage BuildTestDeploy" in result.stderr


def test_up_on_aws_without_a_terminal_or_yes_refuses_before_any_call(monkeypatch):
    from tmctl.core.target import Clients

    monkeypatch.setattr(Clients, "client", lambda self, service: pytest.fail(f"called {service}"))
    result = run_cli("pipeline", "up", "--connection-arn", CONNECTION, "--repo", "acme/tm")

    assert result.exit_code == 2
    assert "--yes" in result.stderr and result.stdout == ""


def test_up_after_a_deploy_warns_of_a_missing_connection_and_still_prints_the_outputs(monkeypatch):
    # GIVEN a deploy that succeeds, and a connection ARN that names no connection
    from tmctl.core.deploy import ChangeSet, DeployResult
    from tmctl.core.target import Clients

    monkeypatch.setattr(core, "plan", lambda *a, **kw: ChangeSet("taskmanager-pipeline", "NONE"))
    monkeypatch.setattr(core, "apply", lambda *a, **kw: DeployResult("taskmanager-pipeline", False, "UPDATE_COMPLETE"))
    monkeypatch.setattr(core, "outputs", lambda *a, **kw: {"PipelineName": "taskmanager-pipeline"})
    with stubbed("codeconnections") as (connections, stub):
        stub.add_client_error("get_connection", "ResourceNotFoundException", "no such connection",
                              expected_params={"ConnectionArn": CONNECTION})
        monkeypatch.setattr(Clients, "client", lambda self, service: {"codeconnections": connections}.get(service))

        # WHEN it is deployed
        result = run_cli("pipeline", "up", "--connection-arn", CONNECTION, "--repo", "acme/tm", "--branch", "main",
                         "--yes", "--output", "json")

    # THEN the deploy is reported with its outputs, and the missing connection is a warning with its fix
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["connectionStatus"] == core.CONNECTION_NOT_FOUND
    assert data["outputs"] == {"PipelineName": "taskmanager-pipeline"}
    assert "does not exist" in result.stderr and "Developer Tools > Settings > Connections" in result.stderr


def test_pipeline_up_shares_the_stack_commands_options():
    # one parser for --param and one --yes, not copies that drift apart
    import typer.main

    from tmctl.cli.app import app as root

    group = typer.main.get_command(root)
    ctx = group.make_context("tmctl", ["pipeline", "up"], resilient_parsing=True)
    commands = {"up": group.get_command(ctx, "up"),
                "pipeline up": group.get_command(ctx, "pipeline").get_command(ctx, "up")}
    helps = {name: {p.name: p.help for p in cmd.params if p.name in {"yes", "param"}}
             for name, cmd in commands.items()}
    assert helps["up"]["yes"] and helps["up"]["yes"] == helps["pipeline up"]["yes"]
    result = run_cli("pipeline", "up", "--connection-arn", CONNECTION, "--repo", "acme/tm", "--yes", "-p", "novalue")
    assert result.exit_code == 2 and "KEY=VALUE" in result.stderr


def test_the_template_file_is_where_the_core_reads_it():
    assert (ROOT / core.PIPELINE_TEMPLATE) == PIPELINE_PATH and Path(PIPELINE_PATH).is_file()
