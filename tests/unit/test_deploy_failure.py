"""A deploy that still fails, in words (tmctl.core.failure): the first failing
resource and the engine's own message, never LocalStack's bare `exception while
calling …`; an empty message is said to be empty, with the engine's log to read."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.stub import Stubber

from tmctl.core import failure
from tmctl.core.deploy import create_change_set, execute_change_set
from tmctl.core.errors import DeployFailed
from tmctl.core.local import emulator
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit
ENDPOINT = "http://127.0.0.1:45998"


def _cfn():
    import boto3

    return boto3.client("cloudformation", region_name="us-east-1")


def _local():
    return resolve_target(local=True, endpoint_url=ENDPOINT, region="us-east-1", env={})


def _event(logical: str, status: str, reason: str = "", rtype: str = "AWS::Lambda::Function", n: int = 0) -> dict:
    return {"StackName": "taskmanager-dev", "StackId": "s", "EventId": f"e{n}", "LogicalResourceId": logical,
            "ResourceType": rtype, "ResourceStatus": status, "ResourceStatusReason": reason,
            "Timestamp": dt.datetime(2026, 12, 4, 21, 0, n, tzinfo=dt.UTC)}


def test_a_refused_change_set_with_an_empty_message_says_so_and_points_at_the_log(monkeypatch):
    # GIVEN LocalStack 4.9.2's answer to the template (measured: 500, nothing after its wrapper)
    monkeypatch.setattr(emulator, "probe", lambda *_a, **_k: emulator.Engine("localstack", "4.9.2", ENDPOINT, {}))
    cfn = _cfn()
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id taskmanager-dev does not exist")
        stub.add_client_error("create_change_set", "InternalError", "exception while calling "
                              "cloudformation.CreateChangeSet: ", http_status_code=500)
        stub.add_client_error("describe_stack_events", "ValidationError", "does not exist")
        with pytest.raises(DeployFailed) as caught:
            create_change_set(cfn, _local(), "Resources: {}\n", {})
    err = caught.value
    assert "exception while calling" not in str(err)
    assert err.message == ("CloudFormation refused the change set (InternalError, HTTP 500) and the engine gave "
                           "no reason")
    assert "LocalStack log" in err.fix and "DEBUG=1" in err.fix


def test_a_refused_change_set_keeps_the_engines_words_and_names_the_first_failed_resource(monkeypatch):
    monkeypatch.setattr(emulator, "probe", lambda *_a, **_k: None)
    cfn = _cfn()
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "does not exist")
        stub.add_client_error("create_change_set", "InternalError", "exception while calling "
                              "cloudformation.CreateChangeSet: Unsupported DeletionPolicy", http_status_code=500)
        stub.add_response("describe_stack_events", {"StackEvents": [  # newest first
            _event("taskmanager-dev", "ROLLBACK_COMPLETE", rtype="AWS::CloudFormation::Stack", n=3),
            _event("WorkflowFn", "CREATE_FAILED", "", n=2),
            _event("ApiFn", "CREATE_FAILED", "exception while calling lambda.CreateFunction: psutil", n=1)]})
        with pytest.raises(DeployFailed) as caught:
            create_change_set(cfn, _local(), "Resources: {}\n", {})
    assert caught.value.message == ("CloudFormation refused the change set (InternalError, HTTP 500): Unsupported "
                                    "DeletionPolicy; first failing resource: ApiFn (AWS::Lambda::Function) "
                                    "CREATE_FAILED: psutil")


def test_a_failed_deploy_whose_resource_has_no_reason_says_so(monkeypatch):
    monkeypatch.setattr(emulator, "probe", lambda *_a, **_k: None)  # which engine: unknown, both logs named
    events = [_event("ApiFn", "CREATE_FAILED", "", n=1),
              _event("taskmanager-dev", "ROLLBACK_COMPLETE", "", "AWS::CloudFormation::Stack", n=2)]
    assert failure.failed_resource(events, "taskmanager-dev") == \
        "ApiFn (AWS::Lambda::Function) CREATE_FAILED: the engine gave no reason"
    fix = failure.deploy_fix(_local(), failure.failed_resource(events, "taskmanager-dev"))
    assert "`tmctl local logs`" in fix and "LocalStack log" in fix


def test_an_execute_the_engine_refuses_is_named_not_raised_raw(monkeypatch):
    from tmctl.core.deploy import ChangeSet

    monkeypatch.setattr(emulator, "probe", lambda *_a, **_k: emulator.Engine("ministack", "1.5.33", ENDPOINT, {}))
    cfn = _cfn()
    with Stubber(cfn) as stub:
        stub.add_response("describe_stack_events", {"StackEvents": []})
        stub.add_client_error("execute_change_set", "InternalError", "", http_status_code=500)
        stub.add_response("describe_stack_events", {"StackEvents": []})
        with pytest.raises(DeployFailed) as caught:
            execute_change_set(cfn, _local(), ChangeSet("taskmanager-dev", "CREATE", "cs-1", "tmctl-x"))
    assert caught.value.message == ("CloudFormation refused executing the change set (InternalError, HTTP 500) and "
                                    "the engine gave no reason")
    assert "`tmctl local logs`" in caught.value.fix
