"""`tmctl doctor` over fakes: each check's finding and fix, the whole report,
and the command's output and exit code."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from typer.testing import CliRunner

from tmctl.cli.app import app
from tmctl.core import doctor
from tmctl.core.doctor import ERROR, INFO, OK, WARN, Finding, Probes, Report
from tmctl.core.errors import ExitCode, NotFound
from tmctl.core.local.localstack import DockerStatus

pytestmark = pytest.mark.unit
ENDPOINT = "http://127.0.0.1:4566"
MINISTACK_HEALTH = ("ministack", {"version": "1.5.33", "edition": "light", "auth": "enabled", "services": {}})
LOCALSTACK_HEALTH = ("localstack", {"version": "4.9.2", "edition": "community", "services": {"sqs": "available"}})
NO_DOCKER = DockerStatus(sdk=True, cli="/usr/bin/docker", reachable=False, detail="no Docker engine answers")


def client_error(code: str, status: int = 400, op: str = "Op") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, op)


def raises(err: Exception):
    def call(*_a, **_k):
        raise err
    return call


class Fake:
    """A boto3 client stand-in: each method returns its canned answer or raises it."""

    def __init__(self, **methods):
        for name, answer in methods.items():
            setattr(self, name, raises(answer) if isinstance(answer, Exception) else (lambda *a, _v=answer, **k: _v))


# ------------------------------------------------------------------ single checks


def test_docker_absent_is_information_with_the_fix_not_an_error():
    f = doctor.check_docker(NO_DOCKER)
    assert f.level == INFO and "/usr/bin/docker" in f.message and "start Docker" in f.fix
    assert doctor.check_docker(DockerStatus(False, None, False)).fix.startswith("pip install 'tmctl[localstack]'")
    assert doctor.check_docker(DockerStatus(True, None, True, version="27.1")).level == OK


def test_token_never_shown_and_missing_matters_more_with_docker():
    assert doctor.check_token({"LOCALSTACK_AUTH_TOKEN": "s3cr3t"}, True).message.count("s3cr3t") == 0
    assert doctor.check_token({}, False).level == INFO
    assert doctor.check_token({}, True).level == WARN


def test_engine_and_version_from_health_and_nothing_answering_is_an_error():
    f = doctor.check_engine(ENDPOINT, MINISTACK_HEALTH)
    assert (f.level, f.data["engine"], f.data["version"]) == (OK, "ministack", "1.5.33")
    assert "community edition" in doctor.check_engine(ENDPOINT, LOCALSTACK_HEALTH).message
    down = doctor.check_engine(ENDPOINT, None)
    assert down.level == ERROR and "tmctl local start" in down.fix
    assert doctor.check_engine(ENDPOINT, None, required=False).level == INFO


def test_http_api_missing_is_an_error_naming_localstacks_free_tier():
    missing = doctor.check_http_api(Fake(get_apis=client_error("InternalFailure", 501)), "localstack")
    assert missing.level == ERROR and "free tier" in missing.message and missing.data["available"] is False
    assert doctor.check_http_api(Fake(get_apis={"Items": []}), "ministack").level == OK
    odd = doctor.check_http_api(Fake(get_apis=client_error("ThrottlingException")), "ministack")
    assert odd.level == WARN and odd.data["available"] is None


@pytest.mark.parametrize(("health", "probe", "enforced"), [
    ({"auth": "enabled"}, client_error("InvalidClientTokenId", 403), True),
    ({}, client_error("AccessDenied", 403), True),
    ({}, {"QueueUrls": []}, False),  # a key nobody issued was accepted: no enforcement
    ({"auth": "disabled"}, {"QueueUrls": []}, False),
    ({"auth": "enabled"}, client_error("InternalError", 500), True),  # the probe says nothing: health decides
    ({}, client_error("InternalError", 500), None),
])
def test_iam_enforcement_by_a_refused_unknown_key_or_the_health_info(health, probe, enforced):
    call = raises(probe) if isinstance(probe, Exception) else (lambda: probe)
    f = doctor.check_iam("ministack", health, call)
    assert f.data["enforced"] is enforced
    assert f.level == (OK if enforced else WARN)
    if not enforced:
        assert "AUTH=true" in f.fix


def test_iam_fix_on_localstack_names_enforce_iam():
    assert "ENFORCE_IAM=1" in doctor.check_iam("localstack", {}, lambda: {}).fix


def test_event_source_mapping_disabled_is_an_error_with_the_command_to_enable_it():
    lam = Fake(list_event_source_mappings={"EventSourceMappings": [{"UUID": "u-1", "State": "Disabled"}]})
    f = doctor.check_event_source_mapping(lam, "taskmanager-dev-event-processor")
    assert f.level == ERROR and "--uuid u-1 --enabled" in f.fix
    ok = Fake(list_event_source_mappings={"EventSourceMappings": [{"UUID": "u-1", "State": "Enabled"}]})
    assert doctor.check_event_source_mapping(ok, "fn").level == OK
    none = doctor.check_event_source_mapping(Fake(list_event_source_mappings={"EventSourceMappings": []}), "fn")
    assert none.level == ERROR and "tmctl up" in none.fix


def _execution(task_id: str, created: dt.datetime, delay: float, suffix: str = "") -> dict:
    millis = int(created.timestamp() * 1000)
    digits = ""
    while millis:
        millis, rem = divmod(millis, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rem] + digits
    return {"name": f"{task_id}-{digits}{suffix}", "startDate": created + dt.timedelta(seconds=delay)}


def test_event_latency_is_read_from_recent_execution_names_without_sending_anything():
    t0 = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    executions = [_execution("task-1", t0, 0.2), _execution("task-2", t0, 0.4), _execution("task-3", t0, 0.9),
                  _execution("task-1", t0, 30.0, "-retry1"),  # a retry started by hand: not an event's latency
                  {"name": "made-by-hand", "startDate": t0}]
    sfn = Fake(list_executions={"executions": executions})
    f = doctor.check_event_latency(sfn, "arn:sm")
    assert f.level == OK and f.data == {"samples": 3, "p50Seconds": 0.4, "maxSeconds": 0.9}
    slow = Fake(list_executions={"executions": [_execution("t", t0, 12.0)]})
    assert doctor.check_event_latency(slow, "arn:sm").level == WARN
    empty = doctor.check_event_latency(Fake(list_executions={"executions": []}), "arn:sm")
    assert empty.level == INFO and "tmctl task create --wait" in empty.fix


def test_no_stack_is_information_and_skips_the_event_checks():
    found = doctor.check_stack(raises(NotFound("stack taskmanager-dev does not exist", "run `tmctl up --local`")),
                               None, None)
    assert [(f.check, f.level) for f in found] == [("stack", INFO)]


def test_aws_credentials_and_region_from_the_chain():
    ok = doctor.check_aws(lambda: {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/dev"},
                          "eu-west-1", required=True)
    assert [f.level for f in ok] == [OK, OK] and "123456789012" in ok[1].message
    missing = doctor.check_aws(raises(NoCredentialsError()), None, required=False)
    assert [f.level for f in missing] == [INFO, INFO]
    rejected = doctor.check_aws(raises(client_error("ExpiredToken", 403)), "us-east-1", required=True)
    assert rejected[1].level == ERROR and "ExpiredToken" in rejected[1].message


# ------------------------------------------------------------------ the whole diagnosis


def _probes(health, **overrides) -> Probes:
    base = dict(endpoint=ENDPOINT, env={}, docker_status=lambda: NO_DOCKER, health=lambda _e: health,
                apigw=Fake(get_apis={"Items": []}), iam_probe=raises(client_error("InvalidClientTokenId", 403)),
                load_stack=raises(NotFound("no stack", "run `tmctl up --local`")),
                aws_identity=raises(NoCredentialsError()), aws_region=None)
    return Probes(**{**base, **overrides})


def test_a_healthy_ministack_has_no_error():
    report = doctor.diagnose(_probes(MINISTACK_HEALTH))
    by = {f.check: f for f in report.findings}
    assert report.ok
    assert by["engine"].data["engine"] == "ministack" and by["http-api"].level == OK and by["iam"].level == OK


def test_localstack_community_fails_on_the_http_api_and_warns_on_iam():
    report = doctor.diagnose(_probes(LOCALSTACK_HEALTH, apigw=Fake(get_apis=client_error("InternalFailure", 501)),
                                     iam_probe=lambda: {"QueueUrls": []}))
    assert not report.ok and [f.check for f in report.errors] == ["http-api"]
    assert {f.check: f.level for f in report.findings}["iam"] == WARN


def test_nothing_answering_skips_the_engine_checks():
    report = doctor.diagnose(_probes(None, apigw=None))
    assert [f.check for f in report.errors] == ["engine"]
    assert not {"http-api", "iam", "stack"} & {f.check for f in report.findings}


def test_a_check_that_blows_up_is_a_warning_not_a_crash():
    report = doctor.diagnose(_probes(MINISTACK_HEALTH, apigw=Fake(get_apis=RuntimeError("boom"))))
    assert {f.check: f.level for f in report.findings}["http-api"] == WARN


# ------------------------------------------------------------------ the command


def _cli(monkeypatch, report: Report, *args: str):
    monkeypatch.setattr(doctor, "diagnose", lambda probes: report)
    return CliRunner().invoke(app, ["doctor", "--no-aws", *args],
                              env={"TMCTL_ENDPOINT_URL": ENDPOINT, "NO_COLOR": "1", "COLUMNS": "200"})


def test_json_for_scripts_and_exit_0_when_nothing_is_an_error(monkeypatch):
    report = Report(ENDPOINT, [Finding("engine", OK, "ministack 1.5.33 answers"), Finding("docker", INFO, "none", "x")])
    result = _cli(monkeypatch, report, "-o", "json")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["ok"] is True and [f["check"] for f in body["findings"]] == ["engine", "docker"]


def test_an_error_finding_exits_non_zero_with_one_stderr_line(monkeypatch):
    report = Report(ENDPOINT, [Finding("http-api", ERROR, "no HTTP API", "use the embedded engine")])
    result = _cli(monkeypatch, report, "-o", "table")
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "no HTTP API" in result.stdout and "use the embedded engine" in result.stdout
    assert result.stderr.count("\n") == 1 and "http-api" in result.stderr
