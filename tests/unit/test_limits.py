"""Limits per target: the embedded emulator's come from the machine, AWS's
from the template's defaults (tests/unit/test_deploy.py)."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from tmctl.core.deploy import apply_declared_concurrency, declared_concurrency, local_parameters
from tmctl.core.local import limits
from tmctl.core.local.emulator import emulator_env
from tmctl.core.local.limits import Machine, local_limits
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit
GIB = 1024


@pytest.mark.parametrize(("cpus", "memory_mib", "api", "steps"), [
    (2, 24 * GIB, 32, 4),  # this project's reference machine: 32 plain clients take no 429
    (1, 16 * GIB, 32, 2),  # the front door never goes below 32 where the RAM allows it...
    (8, 32 * GIB, 64, 16),  # ...grows with the cores...
    (64, 512 * GIB, 128, 128),  # ...up to a cap
    (4, 8 * GIB, 18, 8),  # ...and its workers (~55 MB each) never take more than 1/8 of the RAM
    (2, 256, 1, 4),  # a tiny box still gets a working stack
])
def test_local_limits_are_derived_from_the_machine(cpus, memory_mib, api, steps):
    assert local_limits(Machine(cpus, memory_mib)) == {"ApiConcurrency": str(api), "StepsConcurrency": str(steps)}


def test_this_machine_is_measured_not_assumed():
    machine = Machine.this()

    assert machine.cpus >= 1 and machine.memory_mib > 100


def test_local_parameters_keep_the_fast_back_off(template):
    params = local_parameters(Machine(2, 24 * GIB))

    # ApiAuth NONE: a local stage keeps the seed's open front door (AWS stages default to AWS_IAM)
    # ConfigCacheSeconds 5: a `tmctl config set` is followed within 5 s locally (30 on AWS)
    assert params == {"ApiConcurrency": "32", "StepsConcurrency": "4", "RetryBaseSeconds": "1", "ApiAuth": "NONE",
                      "ConfigCacheSeconds": "5"}
    assert set(params) <= set(template["Parameters"])
    # and the template turns them into the limits the emulator gets
    assert declared_concurrency(template, params) == {
        "TaskApiFunction": 32, "EventProcessorFunction": 2, "WorkflowStepsFunction": 4}


def test_the_embedded_emulator_scales_step_functions_waits(tmp_path, monkeypatch):
    monkeypatch.delenv("TMCTL_SFN_WAIT_SCALE", raising=False)
    target = resolve_target(local=True, env={})

    assert emulator_env(target, tmp_path)["SFN_WAIT_SCALE"] == limits.LOCAL_SFN_WAIT_SCALE
    monkeypatch.setenv("TMCTL_SFN_WAIT_SCALE", "1")  # AWS's timing, for whoever needs it
    assert emulator_env(target, tmp_path)["SFN_WAIT_SCALE"] == "1"


def test_declared_concurrency_rejects_an_intrinsic_it_cannot_evaluate():
    template = {"Resources": {"F": {"Type": "AWS::Lambda::Function", "Properties": {
        "ReservedConcurrentExecutions": {"Fn::FindInMap": ["M", "a", "b"]}}}}}

    with pytest.raises(ValueError, match="Fn::FindInMap"):
        declared_concurrency(template, {})


def test_an_unreserved_limit_removes_a_reservation_the_function_still_has(template):
    # GIVEN a stack that had a local front-door limit, now deployed with ApiConcurrency=0
    import boto3

    cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="k",
                       aws_secret_access_key="s")
    lam = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    target = resolve_target(local=True, env={})
    resources = [{"LogicalResourceId": logical, "PhysicalResourceId": f"fn-{logical}", "ResourceType": "x",
                  "LastUpdatedTimestamp": "2026-01-01T00:00:00Z", "ResourceStatus": "CREATE_COMPLETE"}
                 for logical in ("TaskApiFunction", "EventProcessorFunction", "WorkflowStepsFunction")]
    with Stubber(cfn) as c, Stubber(lam) as la:
        c.add_response("list_stack_resources", {"StackResourceSummaries": resources})
        la.add_response("get_function_concurrency", {"ReservedConcurrentExecutions": 32},
                        {"FunctionName": "fn-TaskApiFunction"})
        la.add_response("delete_function_concurrency", {}, {"FunctionName": "fn-TaskApiFunction"})
        la.add_response("get_function_concurrency", {"ReservedConcurrentExecutions": 2},
                        {"FunctionName": "fn-EventProcessorFunction"})
        la.add_response("get_function_concurrency", {"ReservedConcurrentExecutions": 4},
                        {"FunctionName": "fn-WorkflowStepsFunction"})

        # WHEN the limits are applied
        applied = apply_declared_concurrency(cfn, lam, target, template,
                                             {"ApiConcurrency": "0", "StepsConcurrency": "4"})

        # THEN the reservation is removed (not set to 0, which would refuse every request)
        assert applied == ["fn-TaskApiFunction=unreserved"]
        la.assert_no_pending_responses()


def test_the_embedded_engine_records_calls_for_the_iam_report_unless_turned_off(monkeypatch):
    from tmctl.core.local.limits import local_engine_env

    monkeypatch.delenv("TMCTL_RECORD_CALLS", raising=False)
    assert local_engine_env()["CLOUDTRAIL_RECORDING"] == "1"
    monkeypatch.setenv("TMCTL_RECORD_CALLS", "0")
    assert local_engine_env()["CLOUDTRAIL_RECORDING"] == "0"
