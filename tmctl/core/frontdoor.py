"""Which front door a stage gets: the HTTP API (API Gateway v2, the default) or
a REST API (API Gateway v1) with the same routes, for engines without v2
(LocalStack's Hobby plan and community core). Decided here, once, for `up`,
`diff` and `doctor`:

1. `--front-door` (a `--param FrontDoor=…` that disagrees with it is a usage error);
2. else `--param FrontDoor=…`;
3. else the deployed stack's own `FrontDoor` (none recorded: it was deployed
   before there was a choice, so it has the HTTP API): a stage keeps its front
   door across `up`s, and an API is never replaced unless asked;
4. else, on an engine that has no API Gateway v2 but has API Gateway (REST),
   `rest`, said in one line;
5. else the template's default (`http`).

The choice reaches CloudFormation as the `FrontDoor` parameter, and only when
the template declares one (a template without it has the HTTP API only).
Plain functions over what they are given: no client is made here."""

from __future__ import annotations

from dataclasses import dataclass

from tmctl.core.errors import UsageError

HTTP, REST = "http", "rest"
DOORS = (HTTP, REST)
PARAMETER = OUTPUT = "FrontDoor"
LABELS = {HTTP: "HTTP API", REST: "REST API"}
AUTH_PARAMETER = "ApiAuth"
# Stack statuses that hold no API to keep: the next deploy creates the stack afresh.
NOTHING_DEPLOYED = frozenset({"REVIEW_IN_PROGRESS", "DELETE_COMPLETE", "ROLLBACK_COMPLETE", "CREATE_FAILED"})
AUTO_NOTE = ("this engine has no API Gateway v2 (HTTP API): using the REST front door; "
             "--front-door http to insist")
PUSH_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"


@dataclass(frozen=True)
class Choice:
    door: str  # http | rest
    source: str  # flag | param | stack | engine | default
    note: str = ""  # the line to say, if any (an automatic pick, an API about to be replaced)

    @property
    def label(self) -> str:
        return LABELS[self.door]


def deployed_door(stack: dict | None) -> str | None:
    """The front door a described stack has (None: no stack, or one holding nothing).
    A stack with no `FrontDoor` parameter was deployed before the choice: HTTP API."""
    if stack is None or stack.get("StackStatus") in NOTHING_DEPLOYED:
        return None
    return (deployed_parameter(stack, PARAMETER) or HTTP).lower()


def deployed_parameter(stack: dict | None, key: str) -> str | None:
    if stack is None or stack.get("StackStatus") in NOTHING_DEPLOYED:
        return None
    from tmctl.core.stack import deployed_parameters

    return deployed_parameters(stack).get(key)


def _door(value: str, where: str) -> str:
    door = value.strip().lower()
    if door not in DOORS:
        raise UsageError(f"{where} {value!r} is not a front door", "use http or rest")
    return door


def explicit(flag: str | None, overrides: dict[str, str]) -> tuple[str, str] | None:
    """(door, source) the command line asks for, or None. `--front-door` and
    `--param FrontDoor=` disagreeing is a usage error."""
    door = _door(flag, "--front-door") if flag else None
    if PARAMETER in overrides:
        given = _door(overrides[PARAMETER], f"--param {PARAMETER}=")
        if door is not None and given != door:
            raise UsageError(f"--front-door {door} and --param {PARAMETER}={overrides[PARAMETER]} disagree",
                             "pass one of them")
        return given, ("flag" if door else "param")
    return (door, "flag") if door else None


def choose(*, flag: str | None, overrides: dict[str, str], declared: bool, deployed: str | None,
           engine_has_http: bool | None = None, engine_has_rest: bool | None = None,
           default: str = HTTP) -> Choice | None:
    """The front door to send (None: the template has no choice to make, and none
    was asked for). `deployed`: deployed_door() of the stack; `engine_has_*`:
    None when unknown (AWS, or nothing answered), which never picks REST."""
    asked = explicit(flag, overrides)
    if not declared:
        if asked is not None and asked[0] != HTTP:
            raise UsageError(f"this template has no {PARAMETER} parameter: its only front door is the HTTP API",
                             "update cloudformation/template.yaml (or tmctl), or leave --front-door out")
        return None
    if asked is not None:
        door, source = asked
        note = ""
        if deployed is not None and deployed != door:
            note = (f"front door {deployed} → {door}: the stack's {LABELS[deployed]} is replaced by a "
                    f"{LABELS[door]} (a new URL)")
        return Choice(door, source, note)
    if deployed is not None:
        return Choice(deployed, "stack")
    if engine_has_http is False and engine_has_rest is not False:
        return Choice(REST, "engine", AUTO_NOTE)
    return Choice(_door(default, "the template's default"), "default")


def check_auth(door: str, overrides: dict[str, str], deployed_auth: str | None) -> None:
    """ApiAuth=JWT (a JWT authorizer) exists on the HTTP API only: refused with the
    REST front door before anything is created (the template's Rule would refuse it later)."""
    auth = overrides.get(AUTH_PARAMETER, deployed_auth)
    if door == REST and (auth or "").upper() == "JWT":
        where = "--param ApiAuth=JWT" if AUTH_PARAMETER in overrides else "the stack's ApiAuth=JWT"
        raise UsageError(f"{where} needs the HTTP API front door; the REST front door has no JWT authorizer: "
                         "nothing was created",
                         "pass -p ApiAuth=AWS_IAM or -p ApiAuth=NONE, or --front-door http")


class NoCloudWatchRole(UsageError):
    """On AWS, a REST API stage writes access logs only through the account's API
    Gateway CloudWatch Logs role (one per account and region)."""


def require_cloudwatch_role(apigateway, region: str | None) -> str | None:
    """The account's API Gateway CloudWatch Logs role (one GetAccount): refused in one
    line without it. A read that fails (e.g. AccessDenied) decides nothing: None."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        arn = apigateway.get_account().get("cloudwatchRoleArn")
    except (ClientError, BotoCoreError):  # only a definite "no role" refuses
        return None
    if arn:
        return arn
    where = f" in {region}" if region else ""
    raise NoCloudWatchRole(
        f"API Gateway{where} has no CloudWatch Logs role for this account, which the REST front door's access "
        "logs need: nothing was created",
        "aws apigateway update-account --patch-operations op=replace,path=/cloudwatchRoleArn,value=<role arn>"
        f"{f' --region {region}' if region else ''} (a role apigateway.amazonaws.com may assume, with the managed "
        f"policy AmazonAPIGatewayPushToCloudWatchLogs, {PUSH_POLICY}), or --front-door http")
