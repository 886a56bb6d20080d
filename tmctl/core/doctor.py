"""`tmctl doctor`: what is wrong with the local setup, one finding per check,
each with the fix. Every check is a plain function over the clients and
probes it is given (the CLI builds them), so tests pass fakes and nothing here
opens a connection on its own.

Nothing a check does changes anything: no message is sent (the event
processor treats anything but a TaskCreated event as poison, so a probe
message would end in the DLQ), no resource is created. The event latency is
read from the workflow executions recent tasks already started.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from tmctl.core import frontdoor, preflight
from tmctl.core.errors import error_code
from tmctl.core.executions import created_at_of_name

OK, INFO, WARN, ERROR = "ok", "info", "warn", "error"
LEVELS = (OK, INFO, WARN, ERROR)
TOKEN_ENV = "LOCALSTACK_AUTH_TOKEN"
# A key no engine knows: an engine that enforces IAM refuses it, one that does not acts as root.
PROBE_ACCESS_KEY = "AKIATMCTLDOCTORPROBE"
LATENCY_SAMPLE = 20  # newest executions read for the event latency
SLOW_EVENT_SECONDS = 5.0  # p50 above this: something is holding events back


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # ok | info | warn | error
    message: str
    fix: str | None = None
    data: dict = field(default_factory=dict)


@dataclass
class Report:
    endpoint: str | None
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"ok": self.ok, "endpoint": self.endpoint, "findings": [asdict(f) for f in self.findings]}


# ------------------------------------------------------------------ probes the CLI hands in


def health_info(endpoint: str, timeout: float = 1.0) -> tuple[str, dict] | None:
    """(engine name, health body) of whatever answers (tmctl.core.local.emulator.probe), or None."""
    from tmctl.core.local.emulator import probe

    engine = probe(endpoint, timeout)
    return (engine.name, engine.health) if engine else None


# ------------------------------------------------------------------ checks


def check_docker(status) -> Finding:
    """`status`: a localstack.DockerStatus. Docker matters only for LocalStack."""
    if status.reachable:
        return Finding("docker", OK, f"Docker engine {status.version or '?'} answers",
                       data={"sdk": status.sdk, "cli": status.cli, "version": status.version})
    if not status.sdk:
        return Finding("docker", INFO, "Docker SDK not installed: `tmctl local start --engine localstack` cannot "
                       "run (the embedded MiniStack needs neither)",
                       "pip install 'tmctl[localstack]' (only for LocalStack)",
                       data={"sdk": False, "cli": status.cli})
    where = f"the docker CLI is at {status.cli} but " if status.cli else ""
    return Finding("docker", INFO, f"no Docker engine: {where}{status.detail or 'nothing answers'} "
                   "(only LocalStack needs one)",
                   "start Docker for --engine localstack; the embedded engine needs none",
                   data={"sdk": True, "cli": status.cli, "detail": status.detail})


def check_token(env: dict[str, str], docker_reachable: bool) -> Finding:
    if env.get(TOKEN_ENV):
        return Finding("localstack-token", OK, f"{TOKEN_ENV} is set (not shown)")
    level = WARN if docker_reachable else INFO  # with Docker, LocalStack is a real option: say it cannot start
    return Finding("localstack-token", level, f"{TOKEN_ENV} is not set: the LocalStack image will not start "
                   "without it (MiniStack needs none)",
                   f"export {TOKEN_ENV}=<token from app.localstack.cloud> (only for LocalStack)")


def check_engine(endpoint: str, health: tuple[str, dict] | None, *, required: bool = True) -> Finding:
    if health is None:
        return Finding("engine", ERROR if required else INFO, f"nothing answers on {endpoint}",
                       "run `tmctl local start` (or `tmctl up --local`), or check --endpoint-url/TMCTL_ENDPOINT_URL")
    name, body = health
    version = str(body.get("version", "?"))
    edition = body.get("edition")
    extra = f" ({edition} edition)" if edition and edition not in {"unknown", "light"} else ""
    return Finding("engine", OK, f"{name} {version}{extra} answers on {endpoint}",
                   data={"engine": name, "version": version, "edition": edition})


def check_http_api(apigw, engine: str | None, result: preflight.Result | None = None) -> Finding:
    """API Gateway v2 (the stack's front door): `up`'s own preflight check (one
    read-only GetApis), or its result when the caller already ran it."""
    if result is None:
        result = preflight.check(engine or "unknown", "", {}, ("apigatewayv2",), lambda _name: apigw)
    if "apigatewayv2" in result.missing:
        hint = " (not in LocalStack's free tier)" if engine == "localstack" else ""
        return Finding("http-api", ERROR, f"no HTTP API (API Gateway v2) on this engine{hint}: the stack "
                       "cannot deploy here, and `tmctl up` refuses before creating anything", result.fix(),
                       data={"available": False})
    if "apigatewayv2" in result.unknown:
        return Finding("http-api", WARN, f"HTTP API check failed: {result.detail}",
                       "check the engine's log", data={"available": None})
    return Finding("http-api", OK, "HTTP API (API Gateway v2) available", data={"available": True})


def check_services(engine: str, body: dict, needed: tuple[str, ...], apigw=None,
                   result: preflight.Result | None = None, door: frontdoor.Choice | None = None) -> list[Finding]:
    """What the stack needs against what the engine offers: the same check `tmctl up`
    runs before creating anything (tmctl.core.preflight), as findings. `result`: that
    check already run (preflight.evaluate, with the front door `door`)."""
    if result is None:
        result = preflight.check(engine, str(body.get("version", "")), body, needed,
                                 (lambda _name: apigw) if apigw is not None else None)
    found = []
    if door is not None and door.door == frontdoor.REST and "apigatewayv2" not in result.needed:
        found.append(Finding("http-api", INFO, "the REST front door needs no HTTP API (API Gateway v2)",
                             data={"available": None}))
    elif apigw is not None and "apigatewayv2" in needed:
        found.append(check_http_api(apigw, engine, result))
    others = tuple(s for s in result.missing if s != "apigatewayv2")
    listed = bool(body.get("services"))
    if others:
        names = ", ".join(preflight.LABELS.get(s, s) for s in others)
        found.append(Finding("services", ERROR, f"the engine lacks {names}: the stack cannot deploy here, and "
                             "`tmctl up` refuses before creating anything",
                             preflight.Result(engine, "", needed, others).fix(), data={"missing": list(others)}))
    elif listed:
        found.append(Finding("services", OK, f"the engine lists every service the stack needs ({len(needed)})",
                             data={"missing": []}))
    else:
        found.append(Finding("services", INFO, "the engine's health lists no services: only probed ones checked",
                             data={"missing": None}))
    return found


def check_front_door(door: frontdoor.Choice) -> Finding:
    """Which front door the stage has, or would get from `tmctl up` (the same choice)."""
    data = {"frontDoor": door.door, "source": door.source}
    if door.source == "stack":
        return Finding("front-door", OK, f"the stage's front door is the {door.label} (deployed)", data=data)
    why = {"engine": ": this engine has no API Gateway v2 (HTTP API)", "default": " (the default)"}.get(
        door.source, "")
    return Finding("front-door", INFO, f"`tmctl up` would give the stage the {door.label}{why}",
                   "--front-door http|rest chooses" if door.source == "engine" else None, data=data)


def check_iam(engine: str | None, health_body: dict, probe_call: Callable[[], Any]) -> Finding:
    """IAM enforcement: MiniStack says so in its health (`auth`); otherwise (and to
    confirm) a read-only call signed with a key nobody issued: refused when enforced."""
    said = health_body.get("auth")
    denied: bool | None
    try:
        probe_call()
        denied = False
    except Exception as err:  # noqa: BLE001
        code = _code(err)
        denied = True if code in {"InvalidClientTokenId", "UnrecognizedClientException", "AccessDenied",
                                  "AccessDeniedException", "InvalidAccessKeyId", "SignatureDoesNotMatch"} else None
    on = denied if denied is not None else (said == "enabled" if said else None)
    data = {"enforced": on, "health": said}
    if on:
        return Finding("iam", OK, "IAM enforcement on: every call a handler makes is checked against its role",
                       data=data)
    fix = {"ministack": "let tmctl start the engine (it sets AUTH=true), or start MiniStack with AUTH=true",
           "localstack": "ENFORCE_IAM=1 (LocalStack Pro; docker-compose.yml sets it)"}.get(
        engine or "", "turn on the engine's IAM enforcement")
    if on is None:
        return Finding("iam", WARN, "IAM enforcement unknown: the probe call failed", fix, data=data)
    return Finding("iam", WARN, "IAM enforcement off: a role missing a permission would pass locally "
                   "(a key nobody issued was accepted)", fix, data=data)


def check_event_source_mapping(lambda_, function_name: str) -> Finding:
    mappings = lambda_.list_event_source_mappings(FunctionName=function_name).get("EventSourceMappings", [])
    if not mappings:
        return Finding("event-source-mapping", ERROR, f"no event source mapping feeds {function_name}: "
                       "queued events are never processed", "run `tmctl up` to restore the stack")
    bad = [m for m in mappings if m.get("State") not in {"Enabled", "Enabling", "Creating", "Updating"}]
    data = {"mappings": [{"uuid": m.get("UUID"), "state": m.get("State"), "batchSize": m.get("BatchSize")}
                         for m in mappings]}
    if bad:
        m = bad[0]
        return Finding("event-source-mapping", ERROR, f"event source mapping {m.get('UUID')} of {function_name} is "
                       f"{m.get('State')}: events wait in the queue", "aws lambda update-event-source-mapping "
                       f"--uuid {m.get('UUID')} --enabled (add --endpoint-url for an emulator)", data=data)
    return Finding("event-source-mapping", OK, f"event source mapping of {function_name} is "
                   f"{mappings[0].get('State')}", data=data)


def event_latencies(executions: Iterable[dict]) -> list[float]:
    """Seconds from a task's creation to the start of its workflow (API write + publish,
    the queue, the mapping's poll, the processor), for each recent first execution."""
    out = []
    for ex in executions:
        created, started = created_at_of_name(ex.get("name", "")), ex.get("startDate")
        if created is None or not isinstance(started, dt.datetime):
            continue
        seconds = (started.astimezone(dt.UTC) - created).total_seconds()
        if -1.0 <= seconds < 3600:  # a name that only looks like ours gives nonsense: leave it out
            out.append(max(0.0, seconds))
    return out


def check_event_latency(sfn, state_machine_arn: str, *, sample: int = LATENCY_SAMPLE) -> Finding:
    executions = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=sample).get("executions", [])
    seconds = event_latencies(executions)
    if not seconds:
        return Finding("event-latency", INFO, "no recent task to measure how long an event takes to reach the "
                       "processor", "create one (`tmctl task create --wait`) and run doctor again",
                       data={"samples": 0})
    p50, worst = statistics.median(seconds), max(seconds)
    data = {"samples": len(seconds), "p50Seconds": round(p50, 3), "maxSeconds": round(worst, 3)}
    text = (f"task created → workflow started: p50 {p50:.2f} s, max {worst:.2f} s over the last {len(seconds)} "
            "task(s)")
    if p50 > SLOW_EVENT_SECONDS:
        return Finding("event-latency", WARN, text + ": events wait before the processor takes them",
                       "check the processor's errors: `tmctl logs event-processor --since 1h`",
                       data=data)
    return Finding("event-latency", OK, text, data=data)


def check_stack(load_stack: Callable[[], Any], lambda_, sfn) -> list[Finding]:
    """The deployed stack's event path; an absent stack is information, not an error."""
    from tmctl.core.errors import NotFound

    try:
        stack = load_stack()
    except NotFound as err:
        return [Finding("stack", INFO, f"{err.message}: no event path to check", err.fix)]
    found = [Finding("stack", OK, f"stack {stack.name} is {stack.status}", data={"status": stack.status})]
    function = stack.functions.get("EventProcessor")
    if function:
        found.append(_guard("event-source-mapping", lambda: check_event_source_mapping(lambda_, function)))
    found.append(_guard("event-latency", lambda: check_event_latency(sfn, stack.state_machine_arn)))
    return found


def check_aws(identity: Callable[[], dict], region: str | None, *, required: bool) -> list[Finding]:
    """Credentials and region for AWS targets, from boto3's own chain. Only an
    error when the command targets AWS (`required`)."""
    found = []
    problem = ERROR if required else INFO
    if region:
        found.append(Finding("aws-region", OK, f"AWS region {region}", data={"region": region}))
    else:
        found.append(Finding("aws-region", problem, "no AWS region configured (needed for AWS targets only)",
                             "pass --region, set AWS_REGION, or add region to your profile in ~/.aws/config"))
    try:
        who = identity()
    except Exception as err:  # noqa: BLE001 - classified below by type and code
        name = type(err).__name__
        if name in {"NoCredentialsError", "PartialCredentialsError"}:
            message, fix = "no AWS credentials found (needed for AWS targets only)", \
                "`aws configure`, `aws sso login --profile P` then --profile P, or AWS_ACCESS_KEY_ID/…"
        elif name == "ProfileNotFound":
            message, fix = f"AWS profile not found: {err}", "check --profile/AWS_PROFILE against ~/.aws/config"
        elif name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"}:
            message, fix = "AWS STS did not answer (no network?)", "check your network or proxy"
        else:
            message, fix = f"AWS credentials rejected: {_code(err)}", \
                "refresh them (`aws sso login`, new keys) or pick another --profile"
        found.append(Finding("aws-credentials", problem, message, fix))
        return found
    found.append(Finding("aws-credentials", OK, f"AWS account {who.get('Account')} as {who.get('Arn')}",
                         data={"account": who.get("Account"), "arn": who.get("Arn")}))
    return found


# ------------------------------------------------------------------ the whole diagnosis


@dataclass
class Probes:
    """Everything doctor reads, built by the CLI. `None` skips a group of checks."""

    endpoint: str
    env: dict[str, str]
    docker_status: Callable[[], Any]
    local_required: bool = True  # False when diagnosing an AWS target: no local engine is fine
    health: Callable[[str], tuple[str, dict] | None] = health_info
    apigw: Any = None  # apigatewayv2 client on the endpoint
    needed: tuple[str, ...] = ("apigatewayv2",)  # what the stack needs (preflight.template_needs)
    template: dict | None = None  # the parsed template: the needs follow its Conditions and the front door
    stack: Callable[[], dict | None] | None = None  # the stage's stack, described (its FrontDoor)
    base: dict[str, str] = field(default_factory=dict)  # parameter values `up` would send (AppName, Stage, …)
    iam_probe: Callable[[], Any] | None = None  # a read-only call signed with PROBE_ACCESS_KEY
    load_stack: Callable[[], Any] | None = None
    lambda_: Any = None
    sfn: Any = None
    aws_identity: Callable[[], dict] | None = None
    aws_region: str | None = None
    aws_required: bool = False


def diagnose(p: Probes) -> Report:
    findings: list[Finding] = []
    docker = p.docker_status()
    findings.append(check_docker(docker))
    findings.append(check_token(p.env, docker.reachable))
    health = p.health(p.endpoint)
    findings.append(check_engine(p.endpoint, health, required=p.local_required))
    if health is not None:
        engine, body = health
        if p.template is not None:
            try:
                findings.extend(_front_door_and_services(p, engine, body))
            except Exception as err:  # noqa: BLE001 - a check that cannot run is a finding, not a crash
                findings.append(Finding("services", WARN, f"check could not run: {_describe(err)}",
                                        "check the engine's log"))
        elif p.apigw is not None or p.needed != ("apigatewayv2",):
            try:
                findings.extend(check_services(engine, body, p.needed, p.apigw))
            except Exception as err:  # noqa: BLE001 - a check that cannot run is a finding, not a crash
                findings.append(Finding("http-api", WARN, f"check could not run: {_describe(err)}",
                                        "check the engine's log"))
        if p.iam_probe is not None:
            findings.append(_guard("iam", lambda: check_iam(engine, body, p.iam_probe)))
        if p.load_stack is not None:
            try:
                findings.extend(check_stack(p.load_stack, p.lambda_, p.sfn))
            except Exception as err:  # noqa: BLE001 - one failed check must not hide the others
                findings.append(Finding("stack", WARN, f"could not read the stack: {_describe(err)}",
                                        "check the engine's log"))
    if p.aws_identity is not None:
        findings.extend(check_aws(p.aws_identity, p.aws_region, required=p.aws_required))
    return Report(p.endpoint, findings)


def _front_door_and_services(p: Probes, engine: str, body: dict) -> list[Finding]:
    """`up`'s own choice and check (preflight.evaluate), without refusing: findings."""
    def stack():
        try:
            return p.stack() if p.stack is not None else None
        except Exception:  # noqa: BLE001 - no stack to read: the choice `up` would make for a new one
            return None

    checked = preflight.evaluate(p.template, (engine, str(body.get("version", "")), body),
                                 (lambda _name: p.apigw) if p.apigw is not None else None, stack, base=p.base)
    found = [check_front_door(checked.front_door)] if checked.front_door is not None else []
    result = checked.result
    return found + check_services(engine, body, result.needed, p.apigw, result, checked.front_door)


def _guard(check: str, run: Callable[[], Finding]) -> Finding:
    try:
        return run()
    except Exception as err:  # noqa: BLE001 - a check that cannot run is a finding, not a crash
        return Finding(check, WARN, f"check could not run: {_describe(err)}", "check the engine's log")


def _code(err: Exception) -> str:
    return error_code(err) or type(err).__name__


def _describe(err: Exception) -> str:
    return f"{_code(err)}: {' '.join(str(err).split())[:200]}"
