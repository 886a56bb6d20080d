"""tmctl.core.deploy: the template as tmctl reads it."""

from __future__ import annotations

import pytest

from tmctl.core.deploy import declared_concurrency, stack_parameters
from tmctl.core.package import Artifact
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit


def test_load_template_keeps_intrinsics_as_cloudformation_json(template):
    # !GetAtt / !Ref / !Sub in YAML become their JSON forms
    props = template["Resources"]["TaskQueue"]["Properties"]

    assert props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": "DeadLetterQueue.Arn"}
    assert props["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert props["QueueName"] == {"Fn::Sub": "${AppName}-${Stage}-tasks"}


def test_the_template_defaults_are_aws_limits_with_no_reservation_on_the_front_door(template):
    # AWS: the Task API takes the account's pool (ApiConcurrency 0 resolves to no
    # ReservedConcurrentExecutions at all, not to 0, which would throttle every call),
    # the processing side is bounded.
    assert declared_concurrency(template, {}) == {
        "TaskApiFunction": None, "EventProcessorFunction": 2, "WorkflowStepsFunction": 20}
    route = template["Resources"]["ApiStage"]["Properties"]["DefaultRouteSettings"]
    params = template["Parameters"]
    assert route == {"ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
                     "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"}}
    assert (params["ApiThrottleRate"]["Default"], params["ApiThrottleBurst"]["Default"]) == (500, 1000)


def test_declared_concurrency_follows_parameter_overrides(template):
    got = declared_concurrency(template, {"ApiConcurrency": "3", "StepsConcurrency": "5"})

    assert got == {"TaskApiFunction": 3, "EventProcessorFunction": 2, "WorkflowStepsFunction": 5}


def test_declared_concurrency_ignores_functions_without_a_limit():
    template = {"Resources": {"F": {"Type": "AWS::Lambda::Function", "Properties": {}},
                              "Q": {"Type": "AWS::SQS::Queue", "Properties": {"ReservedConcurrentExecutions": 1}}}}

    assert declared_concurrency(template, {}) == {}


def test_stack_parameters_fill_every_template_parameter_without_a_default(template, tmp_path):
    # Every parameter CloudFormation cannot default must come from tmctl.
    target = resolve_target(env={})
    artifacts = [Artifact(p, f"key/{p}", tmp_path / p, "0" * 64) for p in template["Parameters"] if p.endswith("Key")]

    params = stack_parameters(target, "bucket", artifacts)

    required = {name for name, spec in template["Parameters"].items() if "Default" not in spec}
    assert required <= set(params)
    assert params["ArtifactBucket"] == "bucket" and params["Stage"] == "dev"


def test_local_stacks_get_local_values_that_overrides_still_beat(template, tmp_path):
    # An emulator gets the fast back-off (a poison event in the DLQ within seconds); AWS keeps the
    # template's default; an explicit --param wins over both.
    local, aws = resolve_target(local=True, env={}), resolve_target(env={})

    assert stack_parameters(local, "b", [])["RetryBaseSeconds"] == "1"
    assert {"ApiConcurrency", "StepsConcurrency"} <= set(stack_parameters(local, "b", []))
    assert not {"ApiConcurrency", "StepsConcurrency"} & set(stack_parameters(aws, "b", []))
    assert "RetryBaseSeconds" not in stack_parameters(aws, "b", [])
    assert stack_parameters(local, "b", [], {"RetryBaseSeconds": "5"})["RetryBaseSeconds"] == "5"
    assert set(stack_parameters(local, "b", [])) <= set(template["Parameters"])
