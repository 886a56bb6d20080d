"""LocalStack for real: localstack-core 2026.3.0 started on the host (no Docker,
no token; Python 3.13 only), on 127.0.0.1 and a free port, once for the
module, and tmctl pointed at it as at any engine already running
(TMCTL_ENDPOINT_URL). Stopped by pid in `finally`; what it wrote under
/var/lib/localstack (it ignores LOCALSTACK_VOLUME_DIR on a host with
/.dockerenv) is removed.

What it proves, against a second real implementation:
- unasked, `diff` gives the stage the REST front door (no HTTP API in the
  community core), and the v2 CloudFormation engine reads the template's
  Conditions as tmctl does: the REST API's resources, none of the HTTP API's;
- insisting on the HTTP API, the preflight refuses `up` and `diff` in one line
  naming the REST front door, and nothing is created;
- past the preflight, `diff` gets the real template's HTTP front door (its
  default) accepted by the v2 CloudFormation engine: a CREATE change set;
- queue commands on a DLQ pair made with boto3: peek without consuming,
  stats, `dlq redrive --yes` through SQS's own move task (server-side);
- `tmctl config list/get/set` on SSM parameters made as the stack makes them
  (config reads SSM only, not the stack).

Where the venv is: TMCTL_TEST_LOCALSTACK_PYTHON, else .venv-localstack/bin/python
(.ci/run makes it). Neither, or not Python 3.13 with localstack-core: every test
is skipped with that reason."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import dlq_pair, free_port
from tmctl.cli.app import app
from tmctl.core import deploy, frontdoor, preflight, settings
from tmctl.core.target import Clients, resolve_target

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
VERSION = "2026.3.0"
DEFAULT_PYTHON = ROOT / ".venv-localstack" / "bin" / "python"
VOLUME = Path("/var/lib/localstack")
STAGE = "lshost"
START_TIMEOUT = 90.0


def localstack_python() -> tuple[str | None, str]:
    """(python, "") when it can run LocalStack VERSION, else (None, why not)."""
    configured = settings.TEST_LOCALSTACK_PYTHON.get()
    python = Path(configured) if configured else DEFAULT_PYTHON
    where = f"{settings.TEST_LOCALSTACK_PYTHON.name}={configured}" if configured else f"{python} (the default)"
    if not python.exists():
        return None, (f"no LocalStack venv at {where}: make one with Python 3.13, "
                      f"pip install 'localstack-core[runtime]=={VERSION}' 'cbor2<6' 'pyOpenSSL<24.3' (as .ci/run does)")
    probe = subprocess.run(  # noqa: S603 - our own interpreter path, fixed arguments
        [str(python), "-c", "import sys, importlib.metadata as m; "
                            "print('%d.%d' % sys.version_info[:2], m.version('localstack-core'))"],
        capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return None, f"{where} has no localstack-core: {(probe.stderr.strip().splitlines() or ['?'])[-1]}"
    py, version = probe.stdout.split()
    if py != "3.13":
        return None, f"{where} is Python {py}: localstack-core {VERSION} runs on the host under 3.13 only"
    if version != VERSION:
        return None, f"{where} has localstack-core {version}, not {VERSION}"
    return str(python), ""


def health(endpoint: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=1) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except Exception:  # noqa: BLE001 - not up yet
        return None


@dataclasses.dataclass
class LocalStack:
    endpoint: str
    pid: int
    version: str
    start_seconds: float
    clients: Clients
    cli_env: dict[str, str]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM its process group (its pid: it leads a session of its own), SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _clean_volume(before: set[str] | None) -> None:
    """Remove what this LocalStack wrote under /var/lib/localstack: all of it when
    the directory did not exist before, else only the entries it added."""
    if not VOLUME.exists():
        return
    if before is None:
        shutil.rmtree(VOLUME, ignore_errors=True)
        return
    for entry in VOLUME.iterdir():
        if entry.name not in before:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


@contextlib.contextmanager
def running(work: Path, **extra_env: str):
    """One LocalStack on a free port, stopped by pid and its volume entries removed afterwards."""
    python, why = localstack_python()
    if python is None:
        pytest.skip(why)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    before = {e.name for e in VOLUME.iterdir()} if VOLUME.exists() else None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMCTL_", "AWS_", "LOCALSTACK_", "PROVIDER_"))}
    env.update(GATEWAY_LISTEN=f"127.0.0.1:{port}", GATEWAY_SERVER="hypercorn", DISABLE_EVENTS="1",
               LOCALSTACK_VOLUME_DIR=str(work / "volume"), TMPDIR=str(work), **extra_env)
    log = (work / "localstack.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen([python, "-m", "localstack.runtime.main"], env=env, cwd=work,  # noqa: S603
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body = None
        while body is None:
            if proc.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                tail = (work / "localstack.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"LocalStack {VERSION} did not answer on {endpoint} "
                            f"(exit {proc.poll()}) within {START_TIMEOUT:.0f} s:\n{tail}")
            time.sleep(0.1)
            body = health(endpoint)
        seconds = time.monotonic() - started
        print(f"\nLocalStack {body.get('version')} (pid {proc.pid}) answered on {endpoint} in {seconds:.1f} s")
        target = dataclasses.replace(resolve_target(endpoint_url=endpoint, stage=STAGE, env={}),
                                     state_dir=work / "tmctl-state")
        yield LocalStack(endpoint, proc.pid, str(body.get("version", "?")), seconds, Clients(target), {
            "TMCTL_ENDPOINT_URL": endpoint, "TMCTL_STAGE": STAGE, "TMCTL_STATE_DIR": str(target.state_dir),
            "NO_COLOR": "1", "COLUMNS": "200"})
    finally:
        _stop(proc)
        log.close()
        _clean_volume(before)


@pytest.fixture(scope="module")
def localstack(tmp_path_factory):
    with running(tmp_path_factory.mktemp("localstack-host")) as ls:
        yield ls


def tmctl(ls: LocalStack, *args: str):
    return CliRunner().invoke(app, list(args), env=ls.cli_env)


def stack_name(ls: LocalStack) -> str:
    return f"{settings.APP.default}-{STAGE}"


# ------------------------------------------------------------------ the preflight and the template


def test_it_is_the_real_localstack_without_the_http_api(localstack):
    assert localstack.version.startswith(VERSION), localstack.version
    assert preflight.probe_http_api(localstack.clients.client("apigatewayv2"))[0] is False


@pytest.mark.parametrize("command", [["up", "--yes"], ["diff"]])
def test_the_preflight_refuses_the_http_api_in_one_line_and_nothing_is_created(localstack, command):
    """Insisting on the HTTP API (unasked, this engine gets the REST front door) is refused,
    naming the REST front door as the fix."""
    cfn, s3 = localstack.clients.cloudformation, localstack.clients.s3
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}

    result = tmctl(localstack, *command, "--front-door", "http")

    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(f"localstack {VERSION}" in line and "has no API Gateway v2 (HTTP API)" in line
               and "nothing was created" in line for line in lines), result.stderr
    assert any("pass --front-door rest" in line for line in lines), result.stderr
    assert not any("Traceback" in line for line in lines)
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == buckets, "an artifact bucket was created"
    stacks = {s["StackName"] for s in cfn.list_stacks()["StackSummaries"]}
    assert stack_name(localstack) not in stacks, "a stack or change set was created"


def test_past_the_preflight_diff_shows_the_real_template_as_a_create(localstack, monkeypatch):
    """The community core has no HTTP API, so the preflight (which would pick REST) is lifted
    here, in this process only, to show what the v2 engine makes of the template with its
    default front door: CREATE, the HTTP API's resources and none of the REST API's, and
    nothing left behind."""
    monkeypatch.setattr(preflight, "gate", lambda *a, **k: preflight.Gate(None, None))
    _engine_table_as_listed(monkeypatch)

    result = tmctl(localstack, "diff", "-o", "json")

    assert result.exit_code == 0, result.output
    cs = json.loads(result.stdout)
    assert cs["changeType"] == "CREATE" and cs["stack"] == stack_name(localstack)
    changes = {c["logicalId"]: c for c in cs["changes"]}
    r = _resources(_template())
    assert r.always | r.http <= set(changes), "the v2 engine's change set lacks the template's resources"
    assert not set(changes) & (r.rest | r.jwt), "the v2 engine lists resources whose conditions are false"
    assert {c["action"] for c in changes.values()} == {"Add"}
    # `diff` leaves nothing: the change set and its REVIEW_IN_PROGRESS stack are gone.
    live = [s for s in localstack.clients.cloudformation.list_stacks()["StackSummaries"]
            if s["StackName"] == stack_name(localstack) and s["StackStatus"] != "DELETE_COMPLETE"]
    assert live == []


def _template() -> dict:
    return deploy.load_template(ROOT / deploy.TEMPLATE_FILE)


@dataclasses.dataclass(frozen=True)
class _Resources:
    """The template's logical ids by the condition that creates them."""

    always: set[str]
    http: set[str]  # UseHttpApi: the HTTP API front door
    rest: set[str]  # UseRestApi, RestOpen: the REST front door (locally ApiAuth is NONE: its open deployment)
    jwt: set[str]  # UseJwt, RestSigned: what only ApiAuth JWT / AWS_IAM creates (locally ApiAuth is NONE: never)


def _resources(template: dict) -> _Resources:
    by: dict[str | None, set[str]] = {}
    for logical, resource in template["Resources"].items():
        by.setdefault(resource.get("Condition"), set()).add(logical)
    assert set(by) == {None, "UseHttpApi", "UseRestApi", "RestOpen", "RestSigned", "UseJwt"}, \
        f"conditions this test does not know: {set(by)}"
    return _Resources(by[None], by["UseHttpApi"], by["UseRestApi"] | by["RestOpen"], by["UseJwt"] | by["RestSigned"])


def _engine_table_as_listed(monkeypatch) -> None:
    """On an emulator tmctl's change table leaves out the resources whose conditions are false
    (MiniStack lists them as Add); off here, in this process, so the table is the engine's own."""
    monkeypatch.setattr(deploy, "inactive", lambda *_a, **_k: frozenset())


# ------------------------------------------------------------------ queues


@pytest.fixture
def pair(localstack):
    with dlq_pair(localstack.clients.sqs, "ls-q") as made:
        yield made


def test_dlq_peek_and_stats_consume_nothing(localstack, pair):
    name, main, dlq = pair
    sqs = localstack.clients.sqs
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"taskID": "ls-peek"}))

    for _ in range(2):  # a second peek sees the same, unreceived message
        result = tmctl(localstack, "dlq", "peek", "--queue", name, "-o", "json")
        assert result.exit_code == 0, result.output
        (msg,) = json.loads(result.stdout)["messages"]
        assert (msg["task_id"], msg["receive_count"]) == ("ls-peek", 0)
    stats = tmctl(localstack, "queue", "stats", "--queue", name, "-o", "json")
    assert stats.exit_code == 0, stats.output
    report = json.loads(stats.stdout)
    assert (report["dlq"]["visible"], report["main"]["max_receive_count"]) == (1, 3)

    got = sqs.receive_message(QueueUrl=dlq, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert got[0]["Attributes"]["ApproximateReceiveCount"] == "1", "peek or stats received the message"


def test_dlq_redrive_goes_through_the_move_task(localstack, pair):
    name, main, dlq = pair
    sqs = localstack.clients.sqs
    n = 25
    for start in range(0, n, 10):
        sqs.send_message_batch(QueueUrl=dlq, Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"taskID": f"ls-{i}"})} for i in range(start, min(n, start + 10))])

    result = tmctl(localstack, "dlq", "redrive", "--queue", f"{name}-dlq", "--yes", "-o", "json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["mode"], report["moved"], report["ok"]) == ("server-side", n, True), report
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [main]
    moved = []
    while batch := sqs.receive_message(QueueUrl=main, MaxNumberOfMessages=10).get("Messages"):
        moved += [json.loads(m["Body"])["taskID"] for m in batch]
    assert sorted(moved) == sorted(f"ls-{i}" for i in range(n)), "a message was lost or duplicated"
    assert sqs.receive_message(QueueUrl=dlq).get("Messages") is None


# ------------------------------------------------------------------ config (SSM only: no stack needed)


def test_config_list_get_set_on_ssm(localstack):
    ssm = localstack.clients.ssm
    path = f"/{settings.APP.default}/{STAGE}/"
    # As the stack creates them (cloudformation/template.yaml: IntakeParameter, LogLevelParameter).
    ssm.put_parameter(Name=f"{path}intake", Value="open", Type="String", AllowedPattern="^(open|paused)$",
                      Description="open | paused", Overwrite=True)
    ssm.put_parameter(Name=f"{path}log-level", Value="INFO", Type="String",
                      AllowedPattern="^(DEBUG|INFO|WARNING|ERROR)$", Description="log level", Overwrite=True)
    try:
        listed = tmctl(localstack, "config", "list", "-o", "json")
        assert listed.exit_code == 0, listed.output
        keys = {s["key"]: s for s in json.loads(listed.stdout)}
        assert set(keys) == {"intake", "log-level"} and keys["intake"]["allowed_pattern"] == "^(open|paused)$"

        changed = tmctl(localstack, "config", "set", "intake", "paused", "-o", "json")
        assert changed.exit_code == 0, changed.output
        assert json.loads(changed.stdout)["changed"] is True
        assert ssm.get_parameter(Name=f"{path}intake")["Parameter"]["Value"] == "paused"
        got = tmctl(localstack, "config", "get", "intake", "-o", "json")
        assert (got.exit_code, json.loads(got.stdout)["value"]) == (0, "paused")

        refused = tmctl(localstack, "config", "set", "log-level", "LOUD")
        assert refused.exit_code == 2 and "invalid value 'LOUD'" in refused.stderr
        assert ssm.get_parameter(Name=f"{path}log-level")["Parameter"]["Value"] == "INFO"
        # The pattern survives the overwrite (tmctl writes it back), so the next set is still checked.
        described = ssm.describe_parameters(ParameterFilters=[
            {"Key": "Name", "Values": [f"{path}intake"]}])["Parameters"]
        assert described[0].get("AllowedPattern") == "^(open|paused)$"
    finally:
        ssm.delete_parameters(Names=[f"{path}intake", f"{path}log-level"])


# ------------------------------------------------------------------ `down` of a production stage: DeletionPolicy kept?


def _prod_stack(ls: LocalStack) -> str:
    """A stand-in for the stage's stack (the real one needs Lambda and DynamoDB, which the host lacks)."""
    name = f"{settings.APP.default}-prod"
    cfn = ls.clients.cloudformation
    cfn.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": {"P": {
        "Type": "AWS::SSM::Parameter", "Properties": {"Name": f"/lshost/{name}", "Type": "String", "Value": "v"}}}}))
    for _ in range(200):
        if cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE":
            return name
        time.sleep(0.05)
    pytest.fail(f"{name} was not created")


def _no_probe_left(ls: LocalStack) -> None:
    from tmctl.core import retention

    stacks = [s for s in ls.clients.cloudformation.list_stacks()["StackSummaries"]
              if s["StackName"].startswith(retention.PROBE_PREFIX) and s["StackStatus"] != "DELETE_COMPLETE"]
    params = ls.clients.ssm.describe_parameters(ParameterFilters=[
        {"Key": "Name", "Option": "BeginsWith", "Values": [retention.PARAMETER_PATH]}])["Parameters"]
    assert (stacks, params) == ([], []), "the retention probe left something behind"


def test_the_default_engine_keeps_retain_resources_and_down_of_prod_goes_on(localstack):
    from tmctl.core import retention

    answer = retention.probe(localstack.clients.cloudformation, localstack.clients.ssm)
    print(f"\nretention probe, v2 engine: kept={answer.honoured} in {answer.seconds:.2f} s")
    assert answer.honoured is True, answer.detail
    name = _prod_stack(localstack)

    result = tmctl(localstack, "down", "--stage", "prod", "--yes")

    assert result.exit_code == 0, result.output
    assert f"deleted {name}" in result.stderr
    _no_probe_left(localstack)


def test_the_legacy_engine_ignores_retain_and_down_of_prod_is_refused(tmp_path):
    """PROVIDER_OVERRIDE_CLOUDFORMATION=engine-legacy: a LocalStack of its own for this test."""
    from tmctl.core import retention

    with running(tmp_path, PROVIDER_OVERRIDE_CLOUDFORMATION="engine-legacy") as legacy:
        name = _prod_stack(legacy)
        started = time.monotonic()

        result = tmctl(legacy, "down", "--stage", "prod", "--yes")

        first = time.monotonic() - started
        assert result.exit_code == 2, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("tmctl: error:")]
        assert len(errors) == 1 and "ignores DeletionPolicy" in errors[0] and "engine-legacy" in errors[0]
        status = legacy.clients.cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        assert status == "CREATE_COMPLETE", "the stack was deleted"
        _no_probe_left(legacy)
        # Asked once per engine session: the second refusal costs no probe.
        started = time.monotonic()
        again = tmctl(legacy, "down", "--stage", "prod", "--yes")
        print(f"\ndown refused on the legacy engine: {first:.2f} s with the probe, "
              f"{time.monotonic() - started:.2f} s from the cache")
        assert again.exit_code == 2 and "ignores DeletionPolicy" in again.stderr
        assert retention.probe(legacy.clients.cloudformation, legacy.clients.ssm).honoured is False


# ------------------------------------------------------------------ the REST front door, chosen for this engine


def test_diff_picks_the_rest_front_door_here_and_the_engine_leaves_the_http_api_out(localstack, monkeypatch):
    """The project's template, unasked: `diff` says it uses the REST front door, the preflight
    passes without API Gateway v2, and the v2 engine evaluates the Conditions the same way
    (its own change table: the REST API's resources, none of the HTTP API's)."""
    _engine_table_as_listed(monkeypatch)

    result = tmctl(localstack, "diff", "-o", "json")

    assert result.exit_code == 0, result.output
    assert frontdoor.AUTO_NOTE in result.stderr
    cs = json.loads(result.stdout)
    assert cs["frontDoor"] == "rest" and cs["changeType"] == "CREATE"
    changes = {c["logicalId"]: c["type"] for c in cs["changes"]}
    r = _resources(_template())
    assert r.always | r.rest <= set(changes), "the v2 engine's change set lacks the REST front door"
    assert not set(changes) & (r.http | r.jwt), "the v2 engine lists the HTTP API's resources"
    assert not [t for t in changes.values() if t.startswith("AWS::ApiGatewayV2::")]
    assert "AWS::ApiGateway::RestApi" in changes.values()

    # doctor makes the same choice, and the missing HTTP API is no error for it
    doctor = tmctl(localstack, "doctor", "--no-aws", "-o", "json")
    findings = {f["check"]: f for f in json.loads(doctor.stdout)["findings"]}
    assert findings["front-door"]["data"] == {"frontDoor": "rest", "source": "engine"}, findings
    assert findings["http-api"]["level"] == "info" and findings["services"]["level"] == "ok"
