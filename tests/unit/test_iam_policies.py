"""Least privilege, statically: every IAM policy in every template under
cloudformation/ (role inline and trust policies, standalone and managed
policies, resource policies) is read, and every Allow is held to exact
actions on named resources.

- An action is never `*`, `service:*` or any other wildcard: each grant names
  the API calls it allows.
- A resource is `*`, or an ARN pattern that names nothing before its wildcard
  (`…:log-group:*`, `…::/apis/*`: every resource of a type in the account),
  only where ALLOWLIST below says why AWS offers nothing narrower. Patterns
  anchored on a name (`…:table/${AppName}-${Stage}-*`, `${Bucket.Arn}/*`)
  are scoped and pass.
- Deny statements may be broad (a TLS-only bucket policy denies `s3:*`).

The emulator does not enforce every grant (see ../shared/EMULATOR-NOTES.md:
state machine roles, the event source mapping, logs), so this is where a
too-wide grant is caught.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tmctl.core.deploy import load_template

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "cloudformation"

# (template file, logical id of the role/policy, action) -> why a wildcard resource is the narrowest AWS offers.
ALLOWLIST: dict[tuple[str, str, str], str] = {
    # --- pipeline.yaml: the build deploys the stage with tmctl
    ("pipeline.yaml", "BuildRole", "sts:GetCallerIdentity"):
        "GetCallerIdentity has no resource type; tmctl reads the account id for the artifact bucket name.",
    ("pipeline.yaml", "BuildRole", "lambda:CreateEventSourceMapping"):
        "A mapping has no ARN before it exists; the statement's lambda:FunctionArn condition pins the stage's "
        "functions.",
    ("pipeline.yaml", "BuildRole", "lambda:GetEventSourceMapping"):
        "Mapping ARNs are generated UUIDs; the lambda:FunctionArn condition pins the stage's functions.",
    ("pipeline.yaml", "BuildRole", "lambda:UpdateEventSourceMapping"):
        "Mapping ARNs are generated UUIDs; the lambda:FunctionArn condition pins the stage's functions.",
    ("pipeline.yaml", "BuildRole", "lambda:DeleteEventSourceMapping"):
        "Mapping ARNs are generated UUIDs; the lambda:FunctionArn condition pins the stage's functions.",
    ("pipeline.yaml", "BuildRole", "lambda:TagResource"):
        "Mapping ARNs are generated UUIDs (CloudFormation tags the stage's mapping at create).",
    ("pipeline.yaml", "BuildRole", "lambda:UntagResource"):
        "Mapping ARNs are generated UUIDs (CloudFormation untags the stage's mapping on update).",
    ("pipeline.yaml", "BuildRole", "lambda:ListTags"):
        "Mapping ARNs are generated UUIDs (CloudFormation reads the stage's mapping's tags).",
    ("pipeline.yaml", "BuildRole", "logs:DescribeLogGroups"):
        "DescribeLogGroups lists by prefix and authorizes on log-group:* only.",
    ("pipeline.yaml", "BuildRole", "logs:DescribeResourcePolicies"):
        "Resource policies of CloudWatch Logs are account-level (the access-log delivery checks them).",
    **{("pipeline.yaml", "BuildRole", f"apigateway:{verb}"):
       "HTTP API ids are generated: no name to put in an ARN; the aws:ResourceTag/app and /stage conditions "
       "limit it to the stage's own HTTP API (tests/unit/test_pipeline.py checks them)."
       for verb in ("GET", "POST", "PUT", "PATCH", "DELETE")},
}

# Where policy documents live, per resource type: property paths (a list step is "[]").
POLICY_PATHS: dict[str, list[tuple[str, ...]]] = {
    "AWS::IAM::Role": [("AssumeRolePolicyDocument",), ("Policies", "[]", "PolicyDocument")],
    "AWS::IAM::User": [("Policies", "[]", "PolicyDocument")],
    "AWS::IAM::Group": [("Policies", "[]", "PolicyDocument")],
    "AWS::IAM::Policy": [("PolicyDocument",)],
    "AWS::IAM::ManagedPolicy": [("PolicyDocument",)],
    "AWS::IAM::RolePolicy": [("PolicyDocument",)],
    "AWS::S3::BucketPolicy": [("PolicyDocument",)],
    "AWS::SQS::QueuePolicy": [("PolicyDocument",)],
    "AWS::SNS::TopicPolicy": [("PolicyDocument",)],
    "AWS::KMS::Key": [("KeyPolicy",)],
}


def templates() -> list[Path]:
    """Every template under cloudformation/: the YAML files with Resources."""
    found = []
    for path in sorted([*TEMPLATE_DIR.glob("*.yaml"), *TEMPLATE_DIR.glob("*.yml")]):
        doc = load_template(path)
        if isinstance(doc, dict) and isinstance(doc.get("Resources"), dict):
            found.append(path)
    return found


def branches(node) -> list:
    """The values a node can take: both arms of an Fn::If, AWS::NoValue dropped."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        _cond, yes, no = node["Fn::If"]
        return branches(yes) + branches(no)
    if node == {"Ref": "AWS::NoValue"}:
        return []
    return [node]


def items(node) -> list:
    """A one-or-many field (Action, Resource, a list of policies) as a flat list of values."""
    out = []
    for value in branches(node):
        if isinstance(value, list):
            for member in value:
                out += branches(member)
        else:
            out.append(value)
    return out


def documents(props: dict, path: tuple[str, ...]) -> list[dict]:
    nodes = [props]
    for step in path:
        nodes = [m for n in nodes for m in (items(n) if step == "[]" else branches(n.get(step)) if
                                            isinstance(n, dict) else [])]
    return [n for n in nodes if isinstance(n, dict)]


def statements(template: dict) -> list[tuple[str, dict]]:
    """(logical id, statement) for every policy statement in the template."""
    out = []
    for logical, res in template["Resources"].items():
        for path in POLICY_PATHS.get(res.get("Type", ""), []):
            for doc in documents(res.get("Properties", {}), path):
                out += [(logical, s) for s in items(doc.get("Statement", [])) if isinstance(s, dict)]
    return out


def resource_text(node) -> str:
    """A resource as text; a Ref/GetAtt/ImportValue names one resource, so it reads as a ${…} name."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
        if fn == "Fn::Join":
            sep, parts = arg
            return sep.join(p if isinstance(p, str) else resource_text(p) for p in parts)
        if fn in ("Ref", "Fn::GetAtt", "Fn::ImportValue"):
            return "${" + (arg if isinstance(arg, str) else ".".join(map(str, arg))) + "}"
    return "${?}"


def is_wildcard_resource(text: str) -> bool:
    """`*`, or an ARN whose resource part names nothing before its first wildcard
    (after the resource type: `log-group:*`, `event-source-mapping:*`, `/apis/*`)."""
    if "*" not in text:
        return False
    if text.strip() == "*":
        return True
    if not text.startswith("arn:"):
        return text.startswith("*")
    parts = re.sub(r"\$\{[^}]*\}", "{ref}", text).split(":", 5)
    if len(parts) < 6:
        return True
    service, resource = parts[2], parts[5]
    if service != "s3":  # S3 ARNs have no type prefix: arn:aws:s3:::bucket/key
        resource = re.sub(r"^/?[A-Za-z][A-Za-z-]*[:/]", "", resource)
    return resource.startswith("*")


def findings(path: Path) -> tuple[list[str], set[tuple[str, str, str]]]:
    """(problems, allowlist keys used) for one template."""
    problems, used = [], set()
    for logical, stmt in statements(load_template(path)):
        if stmt.get("Effect") != "Allow":
            continue
        where = f"{path.name} {logical} {stmt.get('Sid', '')}".rstrip()
        if "NotAction" in stmt or "NotResource" in stmt:
            problems.append(f"{where}: NotAction/NotResource in an Allow")
        actions = [a for a in items(stmt.get("Action", [])) if isinstance(a, str)]
        problems += [f"{where}: wildcard action {a}" for a in actions if "*" in a]
        wild = [resource_text(r) for r in items(stmt.get("Resource", [])) if is_wildcard_resource(resource_text(r))]
        if not wild:
            continue
        for action in actions:
            key = (path.name, logical, action)
            if key in ALLOWLIST:
                used.add(key)
            else:
                problems.append(f"{where}: {action} on {', '.join(wild)} (not in ALLOWLIST)")
    return problems, used


def test_every_template_is_found_and_its_policies_are_read():
    found = {p.name for p in templates()}

    # the walk is not vacuous: the stack's template and its four roles' statements are read
    assert "template.yaml" in found
    assert "openapi.yaml" not in found  # no Resources: not a CloudFormation template
    app = statements(load_template(TEMPLATE_DIR / "template.yaml"))
    assert {logical for logical, _ in app} >= {"TaskApiRole", "EventProcessorRole", "WorkflowStepsRole",
                                               "StateMachineRole"}
    assert len(app) >= 10


@pytest.mark.parametrize("path", templates(), ids=lambda p: p.name)
def test_no_wildcard_action_and_no_wildcard_resource_outside_the_allowlist(path):
    problems, _used = findings(path)

    assert problems == []


def test_every_allowlist_entry_is_still_needed():
    # an entry whose grant was narrowed or removed must go, or the list stops meaning anything
    used = set()
    for path in templates():
        used |= findings(path)[1]

    assert sorted(set(ALLOWLIST) - used) == []


@pytest.mark.parametrize("text, wild", [
    ("*", True),
    ("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*", True),
    ("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:*", True),
    ("arn:${AWS::Partition}:apigateway:${AWS::Region}::/apis/*", True),
    ("arn:aws:dynamodb:*:*:table/*", True),
    ("arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${AppName}-${Stage}-*", False),
    ("arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AppName}-${Stage}/*", False),
    ("arn:${AWS::Partition}:s3:::tmctl-artifacts-${AWS::AccountId}-${AWS::Region}/*", False),
    ("arn:aws:s3:::*", True),
    ("${ArtifactBucket.Arn}/*", False),
    ("${TasksTable.Arn}/index/byStatus", False),
])
def test_wildcard_resources_are_told_from_name_anchored_patterns(text, wild):
    assert is_wildcard_resource(text) is wild


def test_a_wildcard_grant_is_caught_in_either_arm_of_an_fn_if(tmp_path):
    # GIVEN a role whose statement widens only under a condition
    template = tmp_path / "wide.yaml"
    template.write_text("""
Conditions:
  Wide: !Equals [a, b]
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: !If [Wide, "sqs:*", sqs:SendMessage]
                Resource: !If [Wide, "*", !GetAtt Queue.Arn]
              - Effect: Deny
                Action: "s3:*"
                Resource: "*"
""")

    problems, _ = findings(template)

    # THEN both arms are judged; the Deny is not
    assert "wide.yaml Role: wildcard action sqs:*" in problems
    assert any("sqs:SendMessage on *" in p for p in problems)
    assert not any("s3:*" in p for p in problems)
