"""The front door (issue 17 part 3, tmctl's side): which one a stage gets
(tmctl.core.frontdoor), that the engine check reads the template's Conditions
with the parameters being sent (tmctl.core.preflight), the refusals `up` and
`diff` make before any bucket or change set, and on AWS the account's API
Gateway CloudWatch Logs role for the REST front door.

Built from the project's own template (cloudformation/template.yaml), so they
cannot drift from it; the backwards-compatible path (a template without the
FrontDoor parameter) runs against that template with the choice taken out
(without_front_door)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from tests.unit.fake_engine import Recorder, run_cli
from tmctl.core import frontdoor, preflight
from tmctl.core.errors import ExitCode, UsageError
from tmctl.core.local import emulator
from tmctl.core.stack import StackInfo
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit
TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "cloudformation" / "template.yaml"
ENDPOINT = "http://127.0.0.1:45997"
_LS_NAMES = ("apigateway cloudformation dynamodb iam lambda logs s3 sqs ssm stepfunctions sts")
# LocalStack community / Hobby: REST API, no apigatewayv2 in its health (and GetApis answers 501).
LOCALSTACK_FREE = {"services": dict.fromkeys(_LS_NAMES.split(), "available"), "edition": "community",
                   "version": "2026.3.0"}
LOCALSTACK_BASE = {**LOCALSTACK_FREE, "services": {**LOCALSTACK_FREE["services"], "apigatewayv2": "available"}}
NO_APIGWV2 = ClientError({"Error": {"Code": "InternalFailure", "Message": "not included in your license"},
                          "ResponseMetadata": {"HTTPStatusCode": 501}}, "GetApis")
# The template's front door conditions, as a template before the choice has them: always the HTTP API.
BEFORE_THE_CHOICE = {"UseHttpApi": True, "UseRestApi": False}


def without_front_door(template: dict) -> dict:
    """The project's template as one without the choice: no FrontDoor parameter, Rule
    or Output, no REST resources, and the HTTP API's unconditional."""
    t = copy.deepcopy(template)
    del t["Parameters"][frontdoor.PARAMETER]
    del t["Outputs"][frontdoor.OUTPUT]
    # conditions that need the REST front door (RestOpen, RestSigned: And[UseRestApi, …]) go with it
    decided = {**BEFORE_THE_CHOICE, **{
        name: False for name, cond in t["Conditions"].items()
        if isinstance(cond, dict) and any(BEFORE_THE_CHOICE.get(term.get("Fn::Condition")) is False
                                          for term in cond.get("Fn::And", []) if isinstance(term, dict))}}
    t["Conditions"] = {k: v for k, v in t["Conditions"].items() if k not in decided}
    t["Rules"] = {k: r for k, r in t["Rules"].items() if frontdoor.PARAMETER not in json.dumps(r["RuleCondition"])}
    for section in ("Resources", "Outputs"):
        kept = {k: v for k, v in t[section].items() if decided.get(v.get("Condition"), True)}
        for v in kept.values():
            if v.get("Condition") in decided:
                del v["Condition"]
        t[section] = kept
    t = _decided(t)
    left = [word for word in (frontdoor.PARAMETER, *decided, "AWS::ApiGateway::", '"Rest')
            if word in json.dumps(t)]
    assert not left, f"the template without the choice still names {left}"
    return t


def _decided(node):
    """`node` with every Fn::If and Fn::And term on BEFORE_THE_CHOICE's conditions decided."""
    if isinstance(node, list):
        return [_decided(x) for x in node]
    if not isinstance(node, dict):
        return node
    if list(node) == ["Fn::If"] and node["Fn::If"][0] in BEFORE_THE_CHOICE:
        name, then, otherwise = node["Fn::If"]
        return _decided(then if BEFORE_THE_CHOICE[name] else otherwise)
    if list(node) == ["Fn::And"]:  # UseJwt: JWT and the HTTP API, which is now always there
        decided = [BEFORE_THE_CHOICE.get(term.get("Fn::Condition")) for term in node["Fn::And"]]
        assert False not in decided, "an Fn::And this helper would have to drop whole"
        terms = [term for term, known in zip(node["Fn::And"], decided, strict=True) if known is None]
        return _decided(terms[0] if len(terms) == 1 else {"Fn::And": terms})
    return {k: _decided(v) for k, v in node.items()}


def test_the_template_without_the_choice_is_the_http_api_alone(template):
    t = without_front_door(template)
    assert frontdoor.PARAMETER not in t["Parameters"] and "UseJwt" in t["Conditions"]
    assert t["Conditions"]["UseJwt"] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "JWT"]}
    assert {r["Type"] for r in t["Resources"].values() if r["Type"].startswith("AWS::ApiGateway")} == {
        r["Type"] for r in template["Resources"].values() if r["Type"].startswith("AWS::ApiGatewayV2::")}
    assert preflight.needs(t, values={}) == preflight.needs(template, values={"FrontDoor": "http"})


# ------------------------------------------------------------------ the choice, in order


@pytest.mark.parametrize(("kwargs", "door", "source"), [
    ({"flag": "rest", "deployed": "http", "engine_has_http": True}, "rest", "flag"),  # the flag wins
    ({"flag": "REST"}, "rest", "flag"),  # any case
    ({"overrides": {"FrontDoor": "rest"}}, "rest", "param"),
    ({"flag": "rest", "overrides": {"FrontDoor": "REST"}}, "rest", "flag"),  # agreeing: fine
    ({"deployed": "rest", "engine_has_http": True}, "rest", "stack"),  # a stage keeps its front door …
    ({"deployed": "http", "engine_has_http": False, "engine_has_rest": True}, "http", "stack"),  # … even here
    ({"engine_has_http": False, "engine_has_rest": True}, "rest", "engine"),  # LocalStack's free plans
    ({"engine_has_http": False, "engine_has_rest": None}, "rest", "engine"),  # REST not ruled out
    ({"engine_has_http": False, "engine_has_rest": False}, "http", "default"),  # neither: the check says so
    ({"engine_has_http": None}, "http", "default"),  # AWS, or unknown: never REST by guess
    ({}, "http", "default"),
])
def test_the_front_door_is_chosen_flag_then_param_then_stack_then_engine_then_default(kwargs, door, source):
    args = {"flag": None, "overrides": {}, "declared": True, "deployed": None, **kwargs}
    choice = frontdoor.choose(**args)
    assert (choice.door, choice.source) == (door, source)
    assert (choice.note == frontdoor.AUTO_NOTE) is (source == "engine")


def test_a_stack_deployed_before_the_choice_has_the_http_api():
    stack = {"StackStatus": "UPDATE_COMPLETE", "Parameters": [{"ParameterKey": "Stage", "ParameterValue": "dev"}]}
    assert frontdoor.deployed_door(stack) == "http"
    stack["Parameters"].append({"ParameterKey": "FrontDoor", "ParameterValue": "rest"})
    assert frontdoor.deployed_door(stack) == "rest"
    assert frontdoor.deployed_door({**stack, "StackStatus": "ROLLBACK_COMPLETE"}) is None  # holds no API
    assert frontdoor.deployed_door(None) is None


def test_asking_for_another_front_door_than_deployed_says_the_api_is_replaced():
    choice = frontdoor.choose(flag="rest", overrides={}, declared=True, deployed="http")
    assert "HTTP API is replaced by a REST API" in choice.note


@pytest.mark.parametrize(("flag", "overrides", "text"), [
    ("rest", {"FrontDoor": "http"}, "--front-door rest and --param FrontDoor=http disagree"),
    (None, {"FrontDoor": "soap"}, "'soap' is not a front door"),
])
def test_a_contradictory_or_unknown_front_door_is_a_usage_error(flag, overrides, text):
    with pytest.raises(UsageError, match=text) as raised:
        frontdoor.choose(flag=flag, overrides=overrides, declared=True, deployed=None)
    assert raised.value.exit_code == ExitCode.USAGE


def test_a_template_without_the_parameter_gets_nothing_sent_and_refuses_rest():
    assert frontdoor.choose(flag=None, overrides={}, declared=False, deployed=None) is None
    assert frontdoor.choose(flag="http", overrides={}, declared=False, deployed=None) is None
    with pytest.raises(UsageError, match="no FrontDoor parameter"):
        frontdoor.choose(flag="rest", overrides={}, declared=False, deployed=None)


@pytest.mark.parametrize(("overrides", "deployed_auth", "refused"), [
    ({"ApiAuth": "JWT"}, None, True),
    ({}, "JWT", True),  # the stack's current value
    ({"ApiAuth": "AWS_IAM"}, "JWT", False),  # the command line changes it
    ({}, "AWS_IAM", False),
])
def test_jwt_with_the_rest_front_door_is_refused_with_the_fix(overrides, deployed_auth, refused):
    frontdoor.check_auth("http", overrides, deployed_auth)  # the HTTP API has the JWT authorizer
    if not refused:
        frontdoor.check_auth("rest", overrides, deployed_auth)
        return
    with pytest.raises(UsageError) as raised:
        frontdoor.check_auth("rest", overrides, deployed_auth)
    assert raised.value.exit_code == ExitCode.USAGE
    assert "AWS_IAM" in raised.value.fix and "NONE" in raised.value.fix and "--front-door http" in raised.value.fix


# ------------------------------------------------------------------ needs read the Conditions


def test_the_needs_follow_the_front_door_being_sent(template):
    rest = preflight.needs(template, values={"FrontDoor": "rest"})
    http = preflight.needs(template, values={"FrontDoor": "http"})
    assert "apigatewayv2" not in rest and "apigateway" in rest
    assert "apigatewayv2" in http and "apigateway" not in http
    assert preflight.needs(template, values={}) == http  # the template's default
    assert {"apigatewayv2", "apigateway"} <= set(preflight.needs(template))  # no values: every resource


def test_a_condition_that_cannot_be_decided_counts_as_needed():
    t = {"Conditions": {"InUsEast1": {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}},
         "Resources": {"Q": {"Type": "AWS::SQS::Queue", "Condition": "InUsEast1"}}}
    assert preflight.needs(t, tmctl=False, values={}) == ("sqs",)


# ------------------------------------------------------------------ `up` and `diff`, through the CLI


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project holding the project's own template, as written."""
    root = tmp_path / "project"
    (root / "cloudformation").mkdir(parents=True)
    shutil.copy(TEMPLATE_PATH, root / "cloudformation" / "template.yaml")
    monkeypatch.setattr("tmctl.core.up.project_dir", lambda: root)
    return root


@pytest.fixture
def project_without_the_choice(project, template):
    (project / "cloudformation" / "template.yaml").write_text(json.dumps(without_front_door(template)))
    return project


def run(monkeypatch, tmp_path, health: dict, get_apis, *args: str, stack: dict | None = None,
        aws: bool = False):
    engine = emulator.Engine("localstack", health["version"], ENDPOINT, health)
    recorder = Recorder(get_apis, stack)
    where = ["--region", "us-east-1"] if aws else ["--endpoint-url", ENDPOINT]
    return run_cli(monkeypatch, tmp_path, engine, recorder, *args, *where), recorder


def _sent(recorder: Recorder) -> dict[str, str] | None:
    return recorder.sent()


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("tmctl: error:")]


@pytest.mark.parametrize("command", ["up", "diff"])
def test_an_engine_without_the_http_api_gets_the_rest_front_door_and_says_so(monkeypatch, tmp_path, project,
                                                                              command):
    result, recorder = run(monkeypatch, tmp_path, LOCALSTACK_FREE, NO_APIGWV2, command)

    # THEN one line says why REST, and the engine check passed: the deploy went on with FrontDoor=rest
    assert frontdoor.AUTO_NOTE in result.stderr, result.stderr
    assert "API Gateway v2 (HTTP API), which" not in result.stderr
    assert _sent(recorder)["FrontDoor"] == "rest"


def test_insisting_on_the_http_api_there_is_refused_naming_the_rest_front_door(monkeypatch, tmp_path, project):
    result, recorder = run(monkeypatch, tmp_path, LOCALSTACK_FREE, NO_APIGWV2, "up", "--front-door", "HTTP")

    assert result.exit_code == ExitCode.USAGE, result.stderr
    (line,) = _errors(result)
    assert "has no API Gateway v2 (HTTP API)" in line and "pass --front-door rest" in line
    assert _sent(recorder) is None and "sts.get_caller_identity" not in recorder.names()


def test_a_stage_keeps_its_front_door(monkeypatch, tmp_path, project):
    stack = {"StackName": "taskmanager-dev", "StackStatus": "UPDATE_COMPLETE",
             "Parameters": [{"ParameterKey": "FrontDoor", "ParameterValue": "rest"}]}
    result, recorder = run(monkeypatch, tmp_path, LOCALSTACK_BASE, {"Items": []}, "diff", stack=stack)
    assert _sent(recorder)["FrontDoor"] == "rest", result.stderr
    assert frontdoor.AUTO_NOTE not in result.stderr


def test_an_engine_with_the_http_api_gets_it(monkeypatch, tmp_path, project):
    result, recorder = run(monkeypatch, tmp_path, LOCALSTACK_BASE, {"Items": []}, "up")
    assert _sent(recorder)["FrontDoor"] == "http", result.stderr


@pytest.mark.parametrize("args", [
    ("--front-door", "rest", "-p", "FrontDoor=http"),
    ("--front-door", "rest", "-p", "ApiAuth=JWT"),
    ("-p", "ApiAuth=JWT"),  # REST picked for this engine, then JWT refused
])
def test_refusals_come_in_one_line_before_any_bucket_or_change_set(monkeypatch, tmp_path, project, args):
    result, recorder = run(monkeypatch, tmp_path, LOCALSTACK_FREE, NO_APIGWV2, "up", *args)

    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert len(_errors(result)) == 1
    assert not [n for n in recorder.names() if n.split(".")[0] in {"s3", "sts"} or "change_set" in n]


def test_a_template_without_the_parameter_is_sent_as_before(monkeypatch, tmp_path, project_without_the_choice):
    """A template without FrontDoor (an older checkout, a fork) gets nothing sent for it, no
    stack read to keep a front door, and REST cannot be asked for."""
    result, recorder = run(monkeypatch, tmp_path, LOCALSTACK_BASE, {"Items": []}, "up")
    assert _sent(recorder) is not None and "FrontDoor" not in _sent(recorder), result.stderr
    # the engine check's probe, then the deploy's own calls: no stack read for a front door to keep
    assert recorder.names()[:2] == ["apigatewayv2.get_apis", "sts.get_caller_identity"]

    refused, recorder = run(monkeypatch, tmp_path, LOCALSTACK_BASE, {"Items": []}, "up", "--front-door", "rest")
    assert refused.exit_code == ExitCode.USAGE
    (line,) = _errors(refused)
    assert "no FrontDoor parameter" in line
    assert not [n for n in recorder.names() if n.split(".")[0] in {"s3", "sts"} or "change_set" in n]


# ------------------------------------------------------------------ AWS: the REST stage's access logs


def _apigateway():
    client = boto3.client("apigateway", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")  # pragma: allowlist secret
    return client, Stubber(client)


def test_the_account_without_an_api_gateway_logs_role_is_refused_with_the_command_to_set_it():
    client, stub = _apigateway()
    stub.add_response("get_account", {"throttleSettings": {"burstLimit": 5000, "rateLimit": 10000.0}}, {})
    with stub, pytest.raises(frontdoor.NoCloudWatchRole) as raised:
        frontdoor.require_cloudwatch_role(client, "eu-west-1")
    stub.assert_no_pending_responses()
    err = raised.value
    assert err.exit_code == ExitCode.USAGE and "nothing was created" in err.message
    assert "aws apigateway update-account --patch-operations op=replace,path=/cloudwatchRoleArn,value=" in err.fix
    assert "--region eu-west-1" in err.fix and "AmazonAPIGatewayPushToCloudWatchLogs" in err.fix


def test_the_account_with_the_role_passes_and_an_unreadable_one_decides_nothing():
    client, stub = _apigateway()
    role = "arn:aws:iam::123456789012:role/apigw-logs"
    stub.add_response("get_account", {"cloudwatchRoleArn": role}, {})
    stub.add_client_error("get_account", "AccessDeniedException", http_status_code=403)
    with stub:
        assert frontdoor.require_cloudwatch_role(client, "us-east-1") == role
        assert frontdoor.require_cloudwatch_role(client, "us-east-1") is None


@pytest.mark.parametrize(("door", "calls"), [
    ("rest", ["cloudformation.describe_stacks", "apigateway.get_account"]),  # the stack (door, ApiAuth), the role
    ("http", ["cloudformation.describe_stacks"]),  # the stack: is its API about to be replaced?
])
def test_on_aws_the_front_door_costs_the_stacks_description_and_rest_one_call_more(door, calls):
    recorder = Recorder(None, answers={"get_account": {"cloudwatchRoleArn": "arn:aws:iam::1:role/logs"}})

    class FakeClients:
        target = resolve_target(region="us-east-1", env={})
        cloudformation = recorder.client("cloudformation")

        def client(self, service):
            return recorder.client(service)

    gate = preflight.gate(FakeClients(), FakeClients.target, TEMPLATE_PATH, front_door=door)
    assert gate.front_door.door == door and gate.result is None
    assert recorder.names() == calls


def test_on_aws_without_the_role_the_rest_front_door_is_refused():
    client, stub = _apigateway()
    stub.add_response("get_account", {}, {})

    class FakeClients:
        target = resolve_target(region="us-east-1", env={})
        cloudformation = Recorder(None).client("cloudformation")

        def client(self, service):
            assert service == "apigateway"
            return client

    with stub, pytest.raises(frontdoor.NoCloudWatchRole):
        preflight.gate(FakeClients(), FakeClients.target, TEMPLATE_PATH, front_door="rest")


# ------------------------------------------------------------------ what shows the API shows its front door


def test_the_stack_says_its_front_door_and_an_old_stack_has_the_http_api():
    old = StackInfo("s", "UPDATE_COMPLETE", {"ApiId": "a"}, {}, "u")
    new = StackInfo("s", "UPDATE_COMPLETE", {"ApiId": "a", "FrontDoor": "rest"}, {}, "u")
    assert (old.front_door, old.front_door_label) == ("http", "HTTP API")
    assert (new.front_door, new.front_door_label) == ("rest", "REST API")


def test_the_cli_choices_are_the_front_doors():
    from tmctl.cli import options as opt

    assert tuple(opt.FrontDoor) == frontdoor.DOORS


# ------------------------------------------------------------------ doctor: the same choice and check


def _doctor(template: dict, health: dict, get_apis, stack: dict | None):
    from tmctl.core import doctor

    class Docker:
        reachable, sdk, cli, version, detail = False, False, None, None, "no docker"

    apigw = Recorder(get_apis).client("apigatewayv2")
    engine = ("localstack", health)
    report = doctor.diagnose(doctor.Probes(
        endpoint=ENDPOINT, env={}, docker_status=Docker, health=lambda _e: engine, apigw=apigw,
        template=template, stack=lambda: stack, base={"Stage": "dev", "ApiAuth": "NONE"}))
    return {f.check: f for f in report.findings}, report


def test_doctor_says_which_front_door_the_stage_would_get_and_that_it_can_deploy(template):
    from tmctl.core import doctor

    findings, report = _doctor(template, LOCALSTACK_FREE, NO_APIGWV2, None)
    assert findings["front-door"].data == {"frontDoor": "rest", "source": "engine"}
    assert "would give the stage the REST API" in findings["front-door"].message
    assert findings["http-api"].level == doctor.INFO and findings["services"].level == doctor.OK
    assert report.ok


def test_doctor_on_a_stage_with_the_http_api_where_there_is_none_names_the_rest_front_door(template):
    from tmctl.core import doctor

    stack = {"StackStatus": "UPDATE_COMPLETE", "Parameters": [{"ParameterKey": "FrontDoor", "ParameterValue": "http"}]}
    findings, report = _doctor(template, LOCALSTACK_FREE, NO_APIGWV2, stack)
    assert findings["front-door"].level == doctor.OK and "HTTP API (deployed)" in findings["front-door"].message
    assert findings["http-api"].level == doctor.ERROR and "--front-door rest" in findings["http-api"].fix
    assert not report.ok


def test_doctor_with_a_template_without_the_choice_says_as_before(template):
    from tmctl.core import doctor

    findings, _ = _doctor(without_front_door(template), LOCALSTACK_FREE, NO_APIGWV2, None)
    assert "front-door" not in findings
    assert findings["http-api"].level == doctor.ERROR and "--front-door" not in findings["http-api"].fix


def test_status_json_gains_the_front_door_and_keeps_its_fields():
    from tmctl.core.status import QueueDepth, StackStatus

    q = QueueDepth("q", 0, 0, 0)
    s = StackStatus("s", "UPDATE_COMPLETE", "u", True, "HTTP 200", q, q, front_door="rest")
    data = s.to_dict()
    assert data["front_door"] == "rest" and s.front_door_label == "REST API"
    assert {"stack", "stack_status", "api_url", "api_ok", "api_detail", "queue", "dlq", "healthy"} <= set(data)


def test_locally_the_stacks_jwt_does_not_count_tmctl_sends_none_there(monkeypatch, tmp_path, project):
    """`up --local` sends ApiAuth=NONE unless -p says otherwise: the stack's JWT is not what goes."""
    stack = {"StackName": "taskmanager-dev", "StackStatus": "UPDATE_COMPLETE",
             "Parameters": [{"ParameterKey": "ApiAuth", "ParameterValue": "JWT"}]}
    result, recorder = run(monkeypatch, tmp_path, LOCALSTACK_BASE, {"Items": []}, "diff", "--front-door", "rest",
                           stack=stack)
    assert _sent(recorder)["FrontDoor"] == "rest", result.stderr
    assert _sent(recorder)["ApiAuth"] == "NONE"


def test_on_aws_the_stacks_jwt_refuses_a_switch_to_rest():
    stack = {"StackName": "taskmanager-dev", "StackStatus": "UPDATE_COMPLETE",
             "Parameters": [{"ParameterKey": "ApiAuth", "ParameterValue": "JWT"}]}
    recorder = Recorder(None, stack=stack)

    class FakeClients:
        target = resolve_target(region="us-east-1", env={})
        cloudformation = recorder.client("cloudformation")

        def client(self, service):
            return recorder.client(service)

    with pytest.raises(UsageError, match="the stack's ApiAuth=JWT"):
        preflight.gate(FakeClients(), FakeClients.target, TEMPLATE_PATH, front_door="rest")
    assert "apigateway.get_account" not in recorder.names()


def test_asking_for_rest_where_only_the_http_api_is_names_the_http_front_door(monkeypatch, tmp_path, project):
    only_v2 = {**LOCALSTACK_BASE, "services": {k: v for k, v in LOCALSTACK_BASE["services"].items()
                                                if k != "apigateway"}}
    result, recorder = run(monkeypatch, tmp_path, only_v2, {"Items": []}, "diff", "--front-door", "rest")
    assert result.exit_code == ExitCode.USAGE, result.stderr
    (line,) = _errors(result)
    assert "API Gateway (REST API)" in line and "pass --front-door http" in line
    assert _sent(recorder) is None


def test_asking_for_the_other_front_door_says_the_stacks_api_is_replaced(monkeypatch, tmp_path, project):
    stack = {"StackName": "taskmanager-dev", "StackStatus": "UPDATE_COMPLETE",
             "Parameters": [{"ParameterKey": "FrontDoor", "ParameterValue": "http"}]}
    result, recorder = run(monkeypatch, tmp_path, LOCALSTACK_BASE, {"Items": []}, "diff", "--front-door", "rest",
                           stack=stack)
    assert "the stack's HTTP API is replaced by a REST API (a new URL)" in result.stderr, result.stderr
    assert recorder.sent()["FrontDoor"] == "rest"
