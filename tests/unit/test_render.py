"""tmctl.core.render: the template an emulator is sent (Fn::If policies made
literal), and that AWS is sent the file's own bytes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from botocore.stub import ANY, Stubber

from tmctl.core import render
from tmctl.core.contract import PRODUCTION_STAGES
from tmctl.core.deploy import CAPABILITIES, create_change_set, load_template, stack_parameters
from tmctl.core.render import for_emulator, inactive
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "cloudformation" / "template.yaml"
TEXT = TEMPLATE_PATH.read_text()


def _load(text: str) -> dict:
    import yaml

    from tmctl.core.deploy import _cfn_yaml_loader

    return yaml.load(text, Loader=_cfn_yaml_loader())  # noqa: S506 - SafeLoader subclass


def _policies(template: dict) -> dict[tuple[str, str], object]:
    return {(logical, p): res[p] for logical, res in template["Resources"].items()
            for p in render.POLICIES if p in res}


def _without_policies(template: dict) -> dict:
    out = copy.deepcopy(template)
    for res in out["Resources"].values():
        for p in render.POLICIES:
            res.pop(p, None)
    return out


@pytest.mark.parametrize("stage", sorted(PRODUCTION_STAGES) + ["dev", "staging", "prodx", "pr-17"])
def test_an_emulator_gets_the_policies_the_stage_chooses_as_literals_and_nothing_else_changed(stage):
    original = load_template(TEMPLATE_PATH)
    assert _policies(original), "the template has no conditional policy: this test tests nothing"
    assert all(isinstance(v, dict) and "Fn::If" in v for v in _policies(original).values())

    rendered = _load(for_emulator(TEXT, {"Stage": stage}))

    wanted = "Retain" if stage in PRODUCTION_STAGES else "Delete"
    assert _policies(rendered) == {k: wanted for k in _policies(original)}
    assert _without_policies(rendered) == _without_policies(original)
    assert rendered["Transform"] == "AWS::LanguageExtensions"


def test_only_the_policy_lines_differ_from_the_file():
    rendered = for_emulator(TEXT, {"Stage": "dev"})

    changed = [(a, b) for a, b in zip(TEXT.splitlines(), rendered.splitlines(), strict=True) if a != b]
    assert changed == [("    DeletionPolicy: !If [IsProduction, Retain, Delete]", "    DeletionPolicy: Delete"),
                       ("    UpdateReplacePolicy: !If [IsProduction, Retain, Delete]",
                        "    UpdateReplacePolicy: Delete")]


def test_a_stage_not_sent_takes_the_templates_default():
    default = load_template(TEMPLATE_PATH)["Parameters"]["Stage"]["Default"]
    assert default not in PRODUCTION_STAGES

    assert set(_policies(_load(for_emulator(TEXT, {}))).values()) == {"Delete"}


def test_rendering_is_deterministic_so_a_rerun_is_still_a_no_change():
    params = {"Stage": "prod", "AppName": "taskmanager"}

    assert for_emulator(TEXT, dict(params)) == for_emulator(TEXT, dict(reversed(params.items())))
    # rendering the rendered copy changes nothing either
    assert for_emulator(for_emulator(TEXT, params), params) == for_emulator(TEXT, params)


SMALL = """\
Parameters:
  Stage: {Type: String, Default: dev}
  Keep: {Type: String, Default: "false"}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  KeepAnyway: !Equals [!Ref Keep, true]
  Retained: !Or [!Condition IsProd, !And [!Condition KeepAnyway, !Not [!Equals [!Ref Stage, scratch]]]]
  InHome: !Equals [!Ref "AWS::Region", eu-west-1]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    DeletionPolicy:
      Fn::If: [Retained, Snapshot, Delete]
    UpdateReplacePolicy: {"Fn::If": [Retained, Retain, Delete]}
  Bucket:
    Type: AWS::S3::Bucket
    DeletionPolicy: !If [InHome, Retain, Delete]
    UpdateReplacePolicy: Retain
"""


@pytest.mark.parametrize(("params", "table"), [
    ({"Stage": "prod"}, ("Snapshot", "Retain")),
    ({"Stage": "dev"}, ("Delete", "Delete")),
    ({"Stage": "dev", "Keep": "true"}, ("Snapshot", "Retain")),
    ({"Stage": "scratch", "Keep": "true"}, ("Delete", "Delete")),
])
def test_and_or_not_and_named_conditions_in_any_yaml_form(params, table):
    rendered = _load(for_emulator(SMALL, params))

    assert (rendered["Resources"]["Table"]["DeletionPolicy"],
            rendered["Resources"]["Table"]["UpdateReplacePolicy"]) == table


def test_a_condition_it_cannot_evaluate_leaves_that_policy_as_written():
    # InHome needs the region, which only CloudFormation knows for sure
    rendered = for_emulator(SMALL, {"Stage": "prod"})

    assert "DeletionPolicy: !If [InHome, Retain, Delete]" in rendered
    assert _load(rendered)["Resources"]["Bucket"] == _load(SMALL)["Resources"]["Bucket"]


def test_a_template_without_conditional_policies_is_sent_as_it_is():
    text = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    DeletionPolicy: Retain  # kept\n"

    assert for_emulator(text, {"Stage": "prod"}) is text


# ------------------------------------------------------------------ what goes over the wire


def _sent_body(target, params: dict[str, str]) -> str:
    """The TemplateBody create_change_set sends for the project's template (a CREATE)."""
    return _create(target, params)[0]


def _create(target, params: dict[str, str], listed: tuple[str, ...] = ()):
    """(TemplateBody sent, the ChangeSet returned) for a CREATE whose described change set lists `listed` as Adds."""
    import boto3

    cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent = {}

    def capture(params, **_):
        if "TemplateBody" in params:
            sent["body"] = params["TemplateBody"]

    cfn.meta.events.register("provide-client-params.cloudformation.CreateChangeSet", capture)
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id s does not exist")
        stub.add_response("create_change_set", {"Id": "arn:cs", "StackId": "arn:s"}, {
            "StackName": target.stack_name, "ChangeSetName": ANY, "ChangeSetType": "CREATE", "TemplateBody": ANY,
            "Capabilities": CAPABILITIES, "Parameters": ANY, "Tags": ANY})
        stub.add_response("describe_change_set", {
            "ChangeSetId": "arn:cs", "Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE",
            "Changes": [{"Type": "Resource", "ResourceChange": {"Action": "Add", "LogicalResourceId": name,
                                                                "ResourceType": "AWS::X::Y"}} for name in listed]})
        cs = create_change_set(cfn, target, TEMPLATE_PATH.read_text(), params, dry_run=True)
    return sent["body"], cs


@pytest.mark.parametrize("env", [{"AWS_REGION": "us-east-1"},
                                 {"AWS_REGION": "us-east-1", "TMCTL_AWS_ENDPOINT_URL": "http://127.0.0.1:4599"}],
                         ids=["aws", "aws-mode-endpoint"])
@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_aws_is_sent_the_files_bytes_exactly(env, stage, tmp_path):
    target = resolve_target(stage=stage, env=env)
    assert not target.local

    body = _sent_body(target, stack_parameters(target, "bucket", []))

    assert body.encode() == TEMPLATE_PATH.read_bytes()


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_an_emulator_is_sent_the_rendered_copy(stage, tmp_path):
    target = resolve_target(local=True, stage=stage, env={"TMCTL_STATE_DIR": str(tmp_path)})
    params = stack_parameters(target, "bucket", [])

    body = _sent_body(target, params)

    assert body == for_emulator(TEXT, params) != TEXT
    assert set(_policies(_load(body)).values()) == {"Retain" if stage in PRODUCTION_STAGES else "Delete"}


def test_an_emulator_stack_deployed_from_the_rendered_copy_is_a_no_change():
    import boto3

    target = resolve_target(local=True, stage="dev", env={})
    params = {"Stage": "dev", "AppName": "taskmanager"}
    cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(cfn) as stub:  # a create_change_set call would fail the stub
        stub.add_response("describe_stacks", {"Stacks": [{
            "StackName": target.stack_name, "StackStatus": "CREATE_COMPLETE", "CreationTime": "2026-01-01T00:00:00Z",
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]}]})
        stub.add_response("get_template", {"TemplateBody": for_emulator(TEXT, params)})

        cs = create_change_set(cfn, target, TEXT, params)

    assert cs.empty and cs.change_type == "NONE"


def test_inactive_names_the_resources_whose_condition_is_false_with_the_parameters_sent():
    text = TEMPLATE_PATH.read_text()

    http = inactive(text, {})
    rest = inactive(text, {"FrontDoor": "rest"})

    assert {"RestApi", "RestApiStage", "JwtAuthorizer"} <= http and "HttpApi" not in http
    assert {"HttpApi", "ApiStage", "JwtAuthorizer"} <= rest and "RestApi" not in rest
    assert "TasksTable" not in http | rest  # no condition: always created
    assert "JwtAuthorizer" not in inactive(text, {"ApiAuth": "JWT"})


@pytest.mark.parametrize(("local", "shown"), [(True, ["TasksTable", "HttpApi"]),
                                               (False, ["TasksTable", "HttpApi", "RestApi"])],
                         ids=["emulator", "aws"])
def test_an_emulators_change_table_leaves_out_what_the_conditions_skip(local, shown, tmp_path):
    env = {"TMCTL_STATE_DIR": str(tmp_path), "AWS_REGION": "us-east-1"}
    target = resolve_target(local=local, stage="dev", env=env)

    _, cs = _create(target, stack_parameters(target, "bucket", []), ("TasksTable", "HttpApi", "RestApi"))

    assert [c.logical_id for c in cs.changes] == shown
