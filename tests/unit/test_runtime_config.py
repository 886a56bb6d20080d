"""The functions' runtime configuration (taskcore.config): the stage's SSM
parameters, created from the template in moto, read through Powertools
Parameters, with the documented default whenever a value is missing or bad."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from aws_lambda_powertools.utilities import parameters

pytestmark = pytest.mark.unit


@pytest.fixture
def post(task_api, lambda_context, load_event):
    def send(task_id: str) -> dict:
        event = load_event("http_api_v2_post_task")
        data = json.dumps({"taskID": task_id}).encode()
        event["body"] = base64.b64encode(data).decode()
        event["headers"]["content-length"] = str(len(data))
        return task_api.handler(event, lambda_context)

    return send


def fresh(stack, logical: str, value: str) -> None:
    """Set a parameter and drop the cache, as if CONFIG_CACHE_SECONDS had passed."""
    stack.set_parameter(logical, value)
    parameters.clear_caches()


def test_every_parameter_lives_under_the_stage_path_and_states_its_values(template, stack):
    params = {logical: stack.cfn.props(logical) for logical, res in template["Resources"].items()
              if res["Type"] == "AWS::SSM::Parameter"}

    assert set(params) >= {"FailureInjectionParameter", "IntakeParameter", "LogLevelParameter", "RetryBaseParameter"}
    for props in params.values():
        assert props["Name"].startswith("/taskmanager/dev/")
        assert props["Description"]
    assert stack.function_env("TaskApiFunction")["INTAKE_PARAM"] == "/taskmanager/dev/intake"


def test_intake_paused_refuses_new_tasks_and_stores_nothing(task_api, stack, post):
    fresh(stack, "IntakeParameter", "paused")

    resp = post("paused-1")

    assert resp["statusCode"] == 503
    assert json.loads(resp["body"])["error"] == "INTAKE_PAUSED"
    assert resp["headers"]["Retry-After"] == "30"
    assert stack.get_item("paused-1") is None
    assert stack.queue_depth() == 0


def test_intake_open_again_takes_the_same_task(task_api, stack, post):
    fresh(stack, "IntakeParameter", "paused")
    assert post("paused-2")["statusCode"] == 503
    fresh(stack, "IntakeParameter", "open")

    assert post("paused-2")["statusCode"] == 202
    assert stack.get_item("paused-2")["status"] == "QUEUED"


@pytest.mark.parametrize("value", ["PAUSED ", "closed", ""])
def test_an_invalid_intake_value_keeps_the_front_door_open(task_api, stack, post, value):
    fresh(stack, "IntakeParameter", value or " ")

    assert post("odd-intake")["statusCode"] == 202


def test_a_missing_parameter_means_the_default(task_api, stack, post):
    stack.ssm.delete_parameter(Name=stack.cfn.refs["IntakeParameter"])
    parameters.clear_caches()

    assert post("no-intake-param")["statusCode"] == 202


def test_log_level_follows_the_parameter(workflow_steps, stack, lambda_context):
    fresh(stack, "LogLevelParameter", "debug")
    workflow_steps.handler({"warmup": True}, lambda_context)
    assert workflow_steps.logger.log_level == logging.DEBUG

    fresh(stack, "LogLevelParameter", "LOUD")  # invalid: back to the function's own default
    workflow_steps.handler({"warmup": True}, lambda_context)
    assert workflow_steps.logger.log_level == logging.INFO


def test_retry_base_comes_from_the_stage_parameter(event_processor, stack):
    assert event_processor.retry_delay(1) == int(stack.cfn.refs["RetryBaseSeconds"])

    fresh(stack, "RetryBaseParameter", "5")
    assert event_processor.retry_delay(1) == 5
    assert event_processor.retry_delay(2) == 10

    fresh(stack, "RetryBaseParameter", "-3")  # invalid: the code's default
    assert event_processor.retry_delay(1) == event_processor.RETRY_BASE_SECONDS


def test_unreadable_configuration_falls_back_to_defaults(task_api, monkeypatch, post):
    def denied(*_args, **_kwargs):
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter")

    monkeypatch.setattr(parameters, "get_parameter", denied)

    assert post("denied-config")["statusCode"] == 202


def test_warming_a_function_caches_no_switch_it_did_not_read(event_processor, stack, lambda_context):
    # A warm-up reads the log level only; a failure rule set right after a deploy
    # must take effect at once, not after the cache time of a read nobody needed.
    from taskcore import config

    event_processor.handler({"warmup": True}, lambda_context)
    stack.set_failure_rules([{"at": "processor", "match": "fresh-*"}])

    assert config.injected_failure("processor", "fresh-1")


def test_a_paused_intake_stays_paused_while_ssm_cannot_be_read(task_api, stack, post, monkeypatch):
    # A burst on AWS can exhaust SSM's shared GetParameter quota: the switch the
    # operator set must hold, not fall back to 'open' exactly when load is high.
    fresh(stack, "IntakeParameter", "paused")
    assert post("quota-1")["statusCode"] == 503

    def throttled(*_args, **_kwargs):
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetParameter")

    monkeypatch.setattr(parameters, "get_parameter", throttled)

    assert post("quota-2")["statusCode"] == 503
    assert stack.get_item("quota-2") is None


def test_the_cache_time_comes_from_the_template(stack):
    env = stack.function_env("TaskApiFunction")
    assert env["CONFIG_CACHE_SECONDS"] == "30"  # the AWS default; tmctl up --local passes 5
    assert stack.function_env("EventProcessorFunction")["CONFIG_CACHE_SECONDS"] == "30"
    assert stack.function_env("WorkflowStepsFunction")["CONFIG_CACHE_SECONDS"] == "30"
