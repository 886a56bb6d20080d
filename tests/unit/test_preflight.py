"""What the stack needs against what the engine offers (tmctl.core.preflight):
`up` and `diff` refuse in one line before anything is created, `doctor` says the
same, and the read-only calls made first are the probe and, to keep a stage's
front door, the stack's description."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.unit.fake_engine import Recorder, run_cli
from tmctl.core import doctor, frontdoor, preflight
from tmctl.core.errors import ExitCode
from tmctl.core.local import emulator
from tmctl.core.target import resolve_target

pytestmark = pytest.mark.unit
ENDPOINT = "http://127.0.0.1:45998"
# LocalStack 4.9.2 community on the host, as it answered (2026-12-04): no apigatewayv2 in the map.
_NAMES = (
    "acm apigateway cloudformation cloudwatch config dynamodb dynamodbstreams ec2 es events firehose iam kinesis kms "
    "lambda logs opensearch redshift resource-groups resourcegroupstaggingapi route53 route53resolver s3 s3control "
    "scheduler secretsmanager ses sns sqs ssm stepfunctions sts support swf transcribe")
LOCALSTACK_SERVICES = dict.fromkeys(_NAMES.split(), "available")
LOCALSTACK = {"services": LOCALSTACK_SERVICES, "edition": "unknown", "version": "4.9.2"}
# MiniStack 1.5.33 (abridged): both API Gateway versions under `apigateway`, Step Functions as `states`.
_MINI_NAMES = "apigateway cloudformation dynamodb iam lambda logs s3 sqs ssm states sts"
MINISTACK = {"services": dict.fromkeys(_MINI_NAMES.split(), "available"), "auth": "enabled", "edition": "light",
             "version": "1.5.33"}
# What LocalStack answers GetApis with (its message, abridged).
NO_APIGWV2 = ClientError({"Error": {"Code": "InternalFailure", "Message": "The API for service 'apigatewayv2' is "
                                    "either not included in your current license plan or has not yet been emulated"},
                          "ResponseMetadata": {"HTTPStatusCode": 501}}, "GetApis")


# ------------------------------------------------------------------ needs and offers


def test_the_needs_come_from_the_templates_resource_types(template):
    needed = preflight.needs(template)
    assert set(needed) >= {"apigatewayv2", "lambda", "dynamodb", "sqs", "stepfunctions", "ssm", "iam",
                           "cloudformation", "s3", "sts"}
    assert preflight.needs({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}, tmctl=False) == ("sqs",)


def test_the_text_scan_finds_what_the_parsed_template_does(template):
    from tmctl.core.bundle import project_dir
    from tmctl.core.deploy import TEMPLATE_FILE

    assert preflight.template_needs(project_dir() / TEMPLATE_FILE) == preflight.needs(template)
    text = ('# Type: AWS::SNS::Topic\nResources:\n  F:\n    Type: AWS::Lambda::Function\n'
            '{"T": {\n  "Type": "AWS::DynamoDB::Table"}}\n')  # YAML, and JSON one key a line
    assert preflight.needs_in_text(text, tmctl=False) == ("lambda", "dynamodb")


def test_localstack_free_lacks_the_http_api_with_the_plan_or_engine_to_use(template):
    result = preflight.check("localstack", "4.9.2", LOCALSTACK, preflight.needs(template),
                             lambda _name: Recorder(NO_APIGWV2).client("apigatewayv2"))
    assert not result.ok and result.missing == ("apigatewayv2",)
    assert "API Gateway v2 (HTTP API)" in result.message() and "nothing was created" in result.message()
    assert "tmctl up --local" in result.fix() and "LocalStack plan with the HTTP API" in result.fix()
    assert result.error().exit_code == ExitCode.USAGE


def test_an_engine_with_everything_passes(template):
    result = preflight.check("ministack", "1.5.33", MINISTACK, preflight.needs(template),
                             lambda _name: Recorder({"Items": []}).client("apigatewayv2"))
    assert result.ok and not result.unknown


@pytest.mark.parametrize(("engine", "listed", "probed"), [
    ("ministack", True, False),  # its health is its handler table: trusted
    ("ministack", False, True),  # not listed: asked
    ("localstack", True, True),  # a plan may gate a listed service at call time: always asked
])
def test_the_probe_runs_where_health_is_not_enough(engine, listed, probed):
    listing = {"apigateway": "available"} if engine == "ministack" else {"apigatewayv2": "available"}
    services = listing if listed else {"sqs": "available"}
    recorder = Recorder(NO_APIGWV2)
    result = preflight.check(engine, "v", {"services": services}, ("apigatewayv2",), recorder.client)
    assert (recorder.names() == ["apigatewayv2.get_apis"]) is probed
    assert result.ok is not probed  # the probe answers 501: missing wherever it was asked


@pytest.mark.parametrize("state", [None, "disabled", "error"])
def test_a_service_the_health_omits_or_turns_off_is_missing(state):
    services = {k: v for k, v in LOCALSTACK_SERVICES.items() if k != "dynamodb"}
    if state:
        services["dynamodb"] = state
    result = preflight.check("ministack", "1.5.33", {"services": services}, ("sqs", "dynamodb"), None)
    assert result.missing == ("dynamodb",) and "DynamoDB" in result.message()


def test_only_definite_evidence_refuses():
    # no services map, and a probe that fails some other way: unknown, not missing
    throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "GetApis")
    result = preflight.check("ministack", "?", {}, ("apigatewayv2", "lambda"),
                             lambda _name: Recorder(throttled).client("apigatewayv2"))
    assert result.ok and result.unknown == ("apigatewayv2",) and "ThrottlingException" in result.detail


def test_aws_offers_everything_no_engine_check():
    from tmctl.core.bundle import project_dir
    from tmctl.core.deploy import TEMPLATE_FILE

    recorder = Recorder(None)

    class FakeClients:
        cloudformation = recorder.client("cloudformation")

        def client(self, service):
            return recorder.client(service)

    target = resolve_target(region="us-east-1", env={})
    # The HTTP front door asked for: no probe, no account setting; only the stack (an API it would replace?)
    assert preflight.require(FakeClients(), target, project_dir() / TEMPLATE_FILE, front_door="http") is None
    assert recorder.names() == ["cloudformation.describe_stacks"]


# ------------------------------------------------------------------ `up` and `diff` refuse before creating anything


def _cli(monkeypatch, tmp_path, health: dict, get_apis, *args: str):
    engine = emulator.Engine("localstack" if health is LOCALSTACK else "ministack",
                             health["version"], ENDPOINT, health)
    recorder = Recorder(get_apis)
    result = run_cli(monkeypatch, tmp_path, engine, recorder, *args, "--endpoint-url", ENDPOINT)
    return result, recorder.names()


@pytest.mark.parametrize("command", ["up", "diff"])
def test_an_engine_without_the_http_api_is_refused_in_one_line_before_anything_is_created(
        monkeypatch, tmp_path, command):
    # GIVEN LocalStack's free plan, and the HTTP API insisted on (unasked, the stage would get REST)
    result, calls = _cli(monkeypatch, tmp_path, LOCALSTACK, NO_APIGWV2, command, "--front-door", "http")

    # THEN a usage exit code (the engine is up; the choice of engine or front door is what must change) …
    assert result.exit_code == ExitCode.USAGE, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("tmctl: error:")]
    # … one error line naming the missing HTTP API and both fixes …
    assert len(errors) == 1 and "API Gateway v2 (HTTP API)" in errors[0]
    assert "(fix: pass --front-door rest (this engine has the REST API)" in errors[0]
    assert "the embedded emulator (`tmctl up --local`" in errors[0]
    # … and the only calls made were reads (the probe; the stack, for an API the door would replace),
    # so no bucket, no upload, no change set
    assert calls == ["apigatewayv2.get_apis", "cloudformation.describe_stacks"]
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["up", "diff"])
def test_unasked_an_engine_without_the_http_api_gets_the_rest_front_door(monkeypatch, tmp_path, command):
    result, calls = _cli(monkeypatch, tmp_path, LOCALSTACK, NO_APIGWV2, command)

    # THEN no refusal: one progress line says why REST …
    assert frontdoor.AUTO_NOTE in result.stderr, result.stderr
    assert "has no API Gateway v2 (HTTP API), which" not in result.stderr
    # … and the deploy went on (its first call: the account, for the bucket's name) after only the two
    # reads that chose the front door: the probe, and the stack (none deployed yet, so no door to keep)
    assert calls[:3] == ["apigatewayv2.get_apis", "cloudformation.describe_stacks", "sts.get_caller_identity"]
    assert "cloudformation.create_change_set" in calls


def test_an_engine_with_everything_goes_on_to_the_deploy(monkeypatch, tmp_path):
    result, calls = _cli(monkeypatch, tmp_path, MINISTACK, {"Items": []}, "up")
    # MiniStack's health lists what it implements: no probe; the one read before the deploy's own calls is
    # the stack's front door to keep.
    assert calls[:2] == ["cloudformation.describe_stacks", "sts.get_caller_identity"]
    assert "apigatewayv2.get_apis" not in calls
    assert "API Gateway v2" not in result.stderr and frontdoor.AUTO_NOTE not in result.stderr


def test_doctor_reports_the_same_finding_and_fix_as_up(template):
    needed = preflight.needs(template)
    apigw = Recorder(NO_APIGWV2).client("apigatewayv2")
    up_says = preflight.check("localstack", "4.9.2", LOCALSTACK, needed, lambda _n: apigw)
    findings = {f.check: f for f in doctor.check_services("localstack", LOCALSTACK, needed, apigw)}
    assert findings["http-api"].level == doctor.ERROR and findings["http-api"].fix == up_says.fix()
    assert findings["services"].level == doctor.OK

    lacking = {"services": {k: v for k, v in LOCALSTACK_SERVICES.items() if k != "stepfunctions"}, "version": "x"}
    findings = {f.check: f for f in doctor.check_services("localstack", lacking, needed, None)}
    assert findings["services"].level == doctor.ERROR and "Step Functions" in findings["services"].message
    assert findings["services"].data["missing"] == ["stepfunctions"]
