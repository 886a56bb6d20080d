"""What the stack needs against what the engine offers, checked before `up`
(and `diff`) create anything, and by `doctor`.

The needs come from the template's resource types (AWS::ApiGatewayV2::* →
apigatewayv2, …) plus what tmctl itself calls (CloudFormation change sets, the
S3 artifact bucket, STS for its name). The offer comes from the engine's health
body (MiniStack and LocalStack both list `services` with a state) and, where
health says nothing reliable, one cheap read-only call (API Gateway v2:
GetApis; LocalStack's free plan has no such service, and its fallbacks would
"deploy" an HTTP API as a stub with physical id `unknown`).

Only definite evidence refuses: a service the health map omits or marks
disabled/error, or a probe answered "not implemented". Anything unclear (no
services map, a probe that fails some other way) lets the deploy go on. AWS
offers everything: no check, no call. Plain functions over what they are given:
the caller hands in the health body and a client factory, so tests pass fakes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tmctl.core import frontdoor
from tmctl.core.backend import unsupported
from tmctl.core.errors import UsageError, error_code

# Resource type prefix → the service that deploys it (as engines name it in their health).
SERVICE_OF_TYPE = (
    ("AWS::ApiGatewayV2::", "apigatewayv2"),
    ("AWS::ApiGateway::", "apigateway"),
    ("AWS::Lambda::", "lambda"),
    ("AWS::DynamoDB::", "dynamodb"),
    ("AWS::SQS::", "sqs"),
    ("AWS::StepFunctions::", "stepfunctions"),
    ("AWS::SSM::", "ssm"),
    ("AWS::IAM::", "iam"),
    ("AWS::Logs::", "logs"),
    ("AWS::S3::", "s3"),
)
OWN_CALLS = ("cloudformation", "s3", "sts")  # change sets, the artifact bucket, its account-derived name
LABELS = {
    "apigatewayv2": "API Gateway v2 (HTTP API)", "apigateway": "API Gateway (REST API)", "lambda": "Lambda",
    "dynamodb": "DynamoDB", "sqs": "SQS", "stepfunctions": "Step Functions", "ssm": "SSM Parameter Store",
    "iam": "IAM", "logs": "CloudWatch Logs", "s3": "S3", "cloudformation": "CloudFormation", "sts": "STS",
}
ALIASES = {"stepfunctions": ("stepfunctions", "states"), "logs": ("logs", "cloudwatchlogs")}
# MiniStack 1.5.x serves both API Gateway versions from its one `apigateway` handler (LocalStack's
# `apigateway` is REST only).
ENGINE_ALIASES = {"ministack": {"apigatewayv2": ("apigatewayv2", "apigateway")}}
GOOD_STATES = frozenset({"available", "running"})
# Engines whose health lists exactly the services they implement (MiniStack: its handler table). LocalStack's
# plans gate some services at call time, so there a listed service is still probed.
HEALTH_TELLS_ALL = frozenset({"ministack"})
BAD_STATES = frozenset({"disabled", "error"})  # LocalStack: excluded by SERVICES=…, or failed to load
EMBEDDED = "the embedded emulator (`tmctl up --local` on a free port), which has every service this stack needs"


def probe_http_api(apigw) -> tuple[bool | None, Exception | None]:
    """API Gateway v2, by one read-only GetApis: (True, None) there, (False, err)
    not implemented, (None, err) the call failed some other way."""
    try:
        apigw.get_apis(MaxResults="1")
    except Exception as err:  # noqa: BLE001 - classified by code, never text
        return (False if unsupported(err) else None), err
    return True, None


# Where health is not enough: service → (client name, probe).
PROBES: dict[str, tuple[str, Callable[[Any], tuple[bool | None, Exception | None]]]] = {
    "apigatewayv2": ("apigatewayv2", probe_http_api),
}


def needs(template: dict, *, tmctl: bool = True, values: dict[str, str] | None = None) -> tuple[str, ...]:
    """The services the template's resources (and tmctl's own calls) need, in a stable order.
    With `values` (the parameters being sent; the template's defaults fill the rest), a
    resource whose `Condition` is false needs nothing: a REST front door needs no
    apigatewayv2. A condition that cannot be decided here counts as true."""
    from tmctl.core.render import inactive_in

    resources = template.get("Resources") or {}
    skipped = inactive_in(template, values) if values is not None else frozenset()
    types = (str((r or {}).get("Type", "")) for logical, r in resources.items() if logical not in skipped)
    return _services(types, tmctl)


# A `Type: AWS::…` line of a YAML or JSON template (a comment's `# Type:` is not one).
_TYPE_LINE = re.compile(r"""^\s*["']?Type["']?\s*:\s*["']?(AWS::[A-Za-z0-9]+::)""", re.MULTILINE)


def needs_in_text(body: str, *, tmctl: bool = True) -> tuple[str, ...]:
    """needs() read off the template's text: no YAML parse (12-20 ms on every `up`).
    Parameter types such as AWS::SSM::Parameter::Value<…> count, as CloudFormation resolves them."""
    return _services((m.group(1) for m in _TYPE_LINE.finditer(body)), tmctl)


def _services(types: Iterable[str], tmctl: bool) -> tuple[str, ...]:
    found: list[str] = list(OWN_CALLS) if tmctl else []
    for rtype in types:
        for prefix, service in SERVICE_OF_TYPE:
            if rtype.startswith(prefix) and service not in found:
                found.append(service)
    return tuple(found)


def health_state(body: dict, service: str, engine: str = "") -> str | None:
    """The service's state in a health body ("" when the body has no services map: says nothing)."""
    services = body.get("services")
    if not isinstance(services, dict) or not services:
        return ""
    for name in ENGINE_ALIASES.get(engine, {}).get(service) or ALIASES.get(service, (service,)):
        if name in services:
            return str(services[name]).lower()
    return None


@dataclass(frozen=True)
class Result:
    engine: str  # ministack | localstack | unknown
    version: str
    needed: tuple[str, ...]
    missing: tuple[str, ...]  # definitely absent
    unknown: tuple[str, ...] = ()  # a probe that could not tell
    detail: str = ""  # why a probe could not tell
    rest_door: bool = False  # the template can use a REST front door, and this engine has API Gateway (REST)
    http_door: bool = False  # the template can use the HTTP API front door, and this engine has API Gateway v2

    @property
    def ok(self) -> bool:
        return not self.missing

    def message(self) -> str:
        names = ", ".join(LABELS.get(s, s) for s in self.missing)
        where = f"{self.engine} {self.version}".strip()
        if self.engine == "localstack" and self.missing == ("apigatewayv2",):
            return f"{where} has no {names}, which this stack's front door needs: nothing was created"
        return f"{where} lacks {names}, which this stack needs: nothing was created"

    def fix(self) -> str:
        if self.rest_door and self.missing == ("apigatewayv2",):
            plan = " or a LocalStack plan with the HTTP API (Base or above)" if self.engine == "localstack" else ""
            return f"pass --front-door rest (this engine has the REST API), or use {EMBEDDED}{plan}"
        if self.http_door and self.missing == ("apigateway",):
            return f"pass --front-door http (this engine has the HTTP API), or use {EMBEDDED}"
        if self.engine == "localstack":
            plan = ("a LocalStack plan with the HTTP API (Base or above; the free plans have none)"
                    if "apigatewayv2" in self.missing else "a LocalStack build that runs these services")
            return f"use {EMBEDDED}, or {plan}"
        return f"use {EMBEDDED}"

    def error(self) -> EngineLacks:
        return EngineLacks(self.message(), self.fix())


class EngineLacks(UsageError):
    """The engine answers but lacks a service the stack needs. A usage error
    (exit 2), not an unreachable one (4): nothing is down, and retrying or
    starting the same engine cannot help; the fix is a different engine or plan."""


def check(engine: str, version: str, health: dict, needed: Iterable[str],
          client: Callable[[str], Any] | None) -> Result:
    """Compare `needed` with what the health body lists; ask the PROBES (through
    `client(name)`; None: no probe) where health is not enough."""
    needed = tuple(needed)
    missing: list[str] = []
    unknown: list[str] = []
    detail = ""
    for service in needed:
        state = health_state(health, service, engine)
        trusted = engine in HEALTH_TELLS_ALL and state in GOOD_STATES
        if service in PROBES and client is not None and not trusted:
            name, run = PROBES[service]
            there, err = run(client(name))
            if there is True:
                continue
            if there is False:
                missing.append(service)
                continue
            unknown.append(service)
            detail = f"{error_code(err) or type(err).__name__}: {' '.join(str(err).split())[:200]}"
        if state is None or state in BAD_STATES:  # listed services, and this one absent or off
            if service not in missing:
                missing.append(service)
            if service in unknown:
                unknown.remove(service)
    return Result(engine, version, needed, tuple(missing), tuple(unknown), detail)


def template_needs(template_path) -> tuple[str, ...]:
    from pathlib import Path

    return needs_in_text(Path(template_path).read_text())


def stack_needs() -> tuple[str, ...]:
    """What the project's template needs (doctor: the API's front door alone if it cannot be read)."""
    from tmctl.core.bundle import project_dir
    from tmctl.core.deploy import TEMPLATE_FILE

    try:
        return template_needs(project_dir() / TEMPLATE_FILE)
    except Exception:  # noqa: BLE001 - no project here: the HTTP API is still worth checking
        return ("apigatewayv2",)


@dataclass(frozen=True)
class Gate:
    """What `up`/`diff` learnt before creating anything: the engine check (None on
    AWS, or when nothing answered) and the front door to send (None: the template
    has no FrontDoor parameter)."""

    result: Result | None
    front_door: frontdoor.Choice | None

    def parameters(self) -> dict[str, str]:
        """The overrides this adds: FrontDoor, when the template has the choice."""
        return {frontdoor.PARAMETER: self.front_door.door} if self.front_door else {}


def evaluate(template: dict, engine: tuple[str, str, dict] | None, client: Callable[[str], Any] | None,
             stack: Callable[[], dict | None], *, front_door: str | None = None,
             overrides: dict[str, str] | None = None, base: dict[str, str] | None = None) -> Gate:
    """The front door and the engine check for `template`, refusing nothing (gate()
    and doctor decide what to do with them). `engine`: (name, version, health body),
    None on AWS or when nothing answered; `client(name)` makes the probes' clients;
    `stack()` describes the deployed stack (the door to keep, or the API a given door replaces);
    `base`: parameter values known before the command line's (AppName, Stage, …)."""
    overrides = dict(overrides or {})
    declared = frontdoor.PARAMETER in (template.get("Parameters") or {})
    asked = frontdoor.explicit(front_door, overrides)
    every = needs(template)  # regardless of conditions: what any front door could need
    offer = None
    if engine is not None:
        wanted = every + tuple(s for s in ("apigatewayv2", "apigateway") if declared and s not in every)
        offer = check(*engine, wanted, client)

    def has(service: str) -> bool | None:  # None: not known (AWS, nothing answered, a probe that failed)
        return None if offer is None or service in offer.unknown else service not in offer.missing

    choice = None
    if declared or asked is not None:
        deployed = frontdoor.deployed_door(stack()) if declared else None  # asked for too: a replaced API is said
        default = str((template.get("Parameters") or {}).get(frontdoor.PARAMETER, {}).get("Default", "http"))
        choice = frontdoor.choose(flag=front_door, overrides=overrides, declared=declared, deployed=deployed,
                                  engine_has_http=has("apigatewayv2"), engine_has_rest=has("apigateway"),
                                  default=default)
    result = None
    if offer is not None:
        values = {**(base or {}), **overrides}
        if choice is not None:
            values[frontdoor.PARAMETER] = choice.door
        needed = needs(template, values=values)
        result = Result(offer.engine, offer.version, needed, tuple(s for s in offer.missing if s in needed),
                        tuple(s for s in offer.unknown if s in needed),
                        offer.detail if any(s in needed for s in offer.unknown) else "",
                        rest_door=declared and has("apigateway") is not False,
                        http_door=declared and has("apigatewayv2") is not False)
    return Gate(result, choice)


def gate(clients, target, template_path, *, overrides: dict[str, str] | None = None,
         front_door: str | None = None, progress: Callable[..., None] | None = None) -> Gate:
    """Before any bucket or change set: choose the front door (tmctl.core.frontdoor),
    refuse ApiAuth=JWT with the REST one, check what the template needs with the
    parameters being sent against what the engine offers (EngineLacks), and on AWS
    with the REST front door, the account's API Gateway CloudWatch Logs role.
    Calls: on an emulator, its health and the API Gateway v2 probe; the stack's
    description (once) when the template has the choice; on AWS with the REST
    front door, one GetAccount."""
    from pathlib import Path

    from tmctl.core.deploy import LOCAL_PARAMETERS, load_template
    from tmctl.core.stack import describe_stack

    overrides = dict(overrides or {})
    template = load_template(Path(template_path))
    stack_cache: list = []

    def stack() -> dict | None:
        if not stack_cache:
            stack_cache.append(describe_stack(clients.cloudformation, target))
        return stack_cache[0]

    engine = None
    if target.local:
        from tmctl.core.local.emulator import probe

        found = probe(target.endpoint_url, timeout=2.0)
        engine = (found.name, found.version, found.health) if found is not None else None
    base = {"AppName": target.app, "Stage": target.stage, **(LOCAL_PARAMETERS if target.local else {})}
    checked = evaluate(template, engine, lambda name: clients.client(name), stack, front_door=front_door,
                       overrides=overrides, base=base)
    choice = checked.front_door
    if choice is not None:
        # ApiAuth as it will be: the command line's; else locally always NONE (LOCAL_PARAMETERS); else on AWS
        # the stack's current value (a JWT stage is not switched to REST by leaving -p ApiAuth out).
        deployed_auth = None
        if frontdoor.AUTH_PARAMETER not in overrides and choice.door == frontdoor.REST:
            deployed_auth = base.get(frontdoor.AUTH_PARAMETER) if target.local else \
                frontdoor.deployed_parameter(stack(), frontdoor.AUTH_PARAMETER)
        frontdoor.check_auth(choice.door, overrides, deployed_auth)
        if choice.note and progress is not None:
            progress(choice.note)
    if checked.result is not None and not checked.result.ok:
        raise checked.result.error()
    if not target.local and choice is not None and choice.door == frontdoor.REST:
        frontdoor.require_cloudwatch_role(clients.client("apigateway"), getattr(clients.target, "region", None))
    return checked


def require(clients, target, template_path, **kwargs) -> Result | None:
    """gate()'s engine check alone: refuse (EngineLacks) before anything is created
    when the engine lacks what the stack needs. AWS: None. Nothing answering: None
    (the deploy's own error says so)."""
    return gate(clients, target, template_path, **kwargs).result
