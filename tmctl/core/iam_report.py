"""Least privilege, measured: per role of the deployed stack, the actions its
policies grant beside the actions its principal actually called (CloudTrail
LookupEvents), unused grants flagged.

Where the numbers come from, and what they cannot see:

- **Grants**: IAM ListRolePolicies/GetRolePolicy (inline) and
  ListAttachedRolePolicies/GetPolicyVersion (managed) of every
  `AWS::IAM::Role` in the stack — the same calls on AWS and on an emulator.
- **Use on AWS**: LookupEvents filtered by Username, which for a Lambda
  execution role is the role session name, i.e. the function name; each event
  is also checked against the role ARN in its session context. LookupEvents
  returns management events only: DynamoDB item calls, SQS message calls and
  Lambda Invoke are *data events* and never appear there, so those grants are
  reported as not observable rather than unused.
- **Use on MiniStack** (`CLOUDTRAIL_RECORDING=1`): every allowed HTTP call is
  recorded with the caller's access key as Username (denied calls are not
  recorded). A Lambda worker's key is derived from its function and role ARNs
  (`ministack_session_key`), which is how events map back to roles. Calls the
  emulator makes in-process — the event source mapping's SQS polling, a state
  machine's Lambda and DynamoDB tasks, function logs — never pass through
  HTTP and so are never recorded. At most 50 events per call and no paging:
  older events are reached by narrowing the time window.

Pure functions (policy parsing, event → action, attribution, the diff) carry
the logic and are unit-tested with fixture data; the functions taking clients
only fetch."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tmctl.core.backend import AWS, LOCALSTACK, MINISTACK
from tmctl.core.errors import UsageError

# JSON flag values (the table shows them in words).
USED, UNUSED, UNOBSERVABLE, NOT_GRANTED = "used", "unused", "unobservable", "not-granted"

# The Lambda service, not the handler, exercises these with a function's role.
LOGS_ACTIONS = frozenset({"logs:createloggroup", "logs:createlogstream", "logs:putlogevents"})
EVENT_SOURCE_ACTIONS = frozenset({"sqs:receivemessage", "sqs:deletemessage", "sqs:getqueueattributes"})

# CloudTrail data events: LookupEvents (event history) never returns them.
DATA_EVENT_ACTIONS = frozenset({
    "dynamodb:getitem", "dynamodb:putitem", "dynamodb:updateitem", "dynamodb:deleteitem", "dynamodb:query",
    "dynamodb:scan", "dynamodb:batchgetitem", "dynamodb:batchwriteitem", "dynamodb:transactgetitems",
    "dynamodb:transactwriteitems", "dynamodb:conditioncheckitem", "dynamodb:partiqlselect",
    "dynamodb:partiqlinsert", "dynamodb:partiqlupdate", "dynamodb:partiqldelete",
    "sqs:sendmessage", "sqs:sendmessagebatch", "sqs:receivemessage", "sqs:deletemessage",
    "sqs:deletemessagebatch", "sqs:changemessagevisibility", "sqs:changemessagevisibilitybatch",
    "lambda:invokefunction", "lambda:invokefunctionurl",
    "s3:getobject", "s3:putobject", "s3:deleteobject", "s3:headobject",
    "logs:putlogevents",
})

# CloudTrail eventSource prefix → IAM service prefix, where they differ.
EVENT_SOURCE_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "apigateway"}
# CloudTrail eventName → IAM action name, where they differ.
EVENT_NAME_ACTION = {("lambda", "Invoke"): "InvokeFunction", ("s3", "HeadObject"): "GetObject",
                     ("s3", "HeadBucket"): "ListBucket"}
# Lambda's event names carry the API version: GetFunction20150331v2.
_API_VERSION_SUFFIX = re.compile(r"20\d{6}(v\d+)?$")
_SINCE = re.compile(r"^(\d+)\s*([smhd])$")
# LookupEvents answers at most 50 events; MiniStack keeps 10,000 per region by default.
PAGE_SIZE = 50
MAX_PAGES = 200


@dataclass(frozen=True)
class Grant:
    """One action an Allow statement grants, with the resources it names."""

    action: str
    resources: tuple[str, ...]
    policy: str
    sid: str = ""


@dataclass(frozen=True)
class StackRole:
    logical_id: str
    name: str
    arn: str
    kind: str  # lambda | states | other
    functions: tuple[tuple[str, str], ...] = ()  # (function name, function ARN) of functions using it
    event_source: bool = False  # a function of this role is fed by an event source mapping


@dataclass
class ActionRow:
    action: str
    granted: bool
    used: int
    flag: str  # used | unused | unobservable | not-granted
    note: str = ""
    resources: list[str] = field(default_factory=list)


@dataclass
class RoleReport:
    role: str  # the template's logical id
    name: str
    arn: str
    principals: list[str]  # the CloudTrail Usernames read for this role
    actions: list[ActionRow]
    events: int = 0

    @property
    def unused(self) -> list[str]:
        return [a.action for a in self.actions if a.flag == UNUSED]


@dataclass
class IamReport:
    stack: str
    backend: str
    since: str
    until: str
    source: str
    roles: list[RoleReport]
    unattributed: int = 0  # events from role sessions no role of the stack accounts for
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ pure: grants


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def load_policy_document(document: str | dict) -> dict:
    """A policy document as IAM returns it: a dict (boto3 decodes it) or the
    raw URL-encoded JSON string some engines pass through."""
    if isinstance(document, dict):
        return document
    text = document.strip()
    if not text.startswith("{"):
        text = urllib.parse.unquote(text)
    return json.loads(text)


def policy_grants(document: str | dict, policy: str) -> tuple[list[Grant], list[str]]:
    """The actions a policy allows, one Grant per action, plus notes for what
    cannot be listed as actions (NotAction allows, Deny statements)."""
    doc = load_policy_document(document)
    grants: list[Grant] = []
    notes: list[str] = []
    for i, stmt in enumerate(_as_list(doc.get("Statement"))):
        if not isinstance(stmt, dict):
            continue
        sid = str(stmt.get("Sid") or f"#{i}")
        if stmt.get("Effect") != "Allow":
            notes.append(f"{policy}/{sid}: a {stmt.get('Effect')} statement (it narrows the grants listed)")
            continue
        if "NotAction" in stmt:
            notes.append(f"{policy}/{sid}: allows everything but {', '.join(_as_list(stmt['NotAction']))}")
            continue
        resources = tuple(str(r) for r in _as_list(stmt.get("Resource")) or _as_list(stmt.get("NotResource")))
        for action in _as_list(stmt.get("Action")):
            grants.append(Grant(_normalise_action(str(action)), resources, policy, sid))
    return grants, notes


def _normalise_action(action: str) -> str:
    """IAM actions are case-insensitive; the service prefix is shown lower-case."""
    service, _, name = action.partition(":")
    return f"{service.lower()}:{name}" if name else action


def grants_cover(granted: str, action: str) -> bool:
    """A granted action (wildcards allowed) covers a called one, case-insensitively."""
    return fnmatch.fnmatchcase(action.lower(), granted.lower())


# ------------------------------------------------------------------ pure: events


def event_action(event: dict) -> str:
    """The IAM action of a LookupEvents event: 'dynamodb.amazonaws.com' +
    'PutItem' → 'dynamodb:PutItem'."""
    source = str(event.get("EventSource", "")).removesuffix(".amazonaws.com")
    service = EVENT_SOURCE_PREFIX.get(source, source)
    name = _API_VERSION_SUFFIX.sub("", str(event.get("EventName", "")))
    return f"{service}:{EVENT_NAME_ACTION.get((service, name), name)}"


def _session_issuer(event: dict) -> str | None:
    """The role ARN an AWS event's session was issued by, if the event says."""
    try:
        detail = json.loads(event.get("CloudTrailEvent") or "{}")
    except (TypeError, ValueError):
        return None
    identity = detail.get("userIdentity") or {}
    issuer = ((identity.get("sessionContext") or {}).get("sessionIssuer") or {}).get("arn")
    if issuer:
        return issuer
    arn = str(identity.get("arn", ""))
    if ":assumed-role/" in arn:  # arn:aws:sts::ACCT:assumed-role/ROLE/SESSION
        account = arn.split(":")[4]
        return f"arn:aws:iam::{account}:role/{arn.split(':assumed-role/', 1)[1].split('/', 1)[0]}"
    return None


def attribute_events(events: Iterable[dict], principals: dict[str, str],
                     role_arns: dict[str, str] | None = None) -> tuple[dict[str, Counter], int]:
    """Count each role's actions. `principals` maps a CloudTrail Username to a
    role (logical id). Where an event names its session's role (AWS) and
    `role_arns` knows the role's ARN, the two must agree — a function name
    reused by another stack's role is not ours. The second value counts events
    of role sessions (ASIA… keys, assumed-role users) matching no role here."""
    used: dict[str, Counter] = {role: Counter() for role in set(principals.values())}
    unattributed = 0
    seen: set[str] = set()
    for event in events:
        event_id = event.get("EventId")
        if event_id:  # the same event twice (overlapping lookup windows); one without an id is counted as is
            if event_id in seen:
                continue
            seen.add(event_id)
        role = principals.get(str(event.get("Username", "")))
        issuer = _session_issuer(event) if role and role_arns else None
        if role and issuer and role_arns and role_arns.get(role) and issuer != role_arns[role]:
            role = None
        if role is None:
            if str(event.get("Username", "")).startswith("ASIA") or issuer:
                unattributed += 1
            continue
        used[role][event_action(event)] += 1
    return used, unattributed


def ministack_session_key(function_arn: str, role_arn: str) -> str:
    """The access key MiniStack (1.5.x, AUTH=true) gives a function's workers
    for its execution-role session, and records as the CloudTrail Username:
    `ASIA` + the first 16 hex digits of sha256("<function ARN>:<role ARN>"),
    upper-cased (ministack/core/lambda_runtime.py `execution_credentials`).
    Should an engine change it, the report counts the strays as unattributed."""
    digest = hashlib.sha256(f"{function_arn}:{role_arn}".encode()).hexdigest()
    return f"ASIA{digest[:16].upper()}"


def role_principals(role: StackRole, backend: str) -> list[str]:
    """The CloudTrail Usernames a role's calls are recorded under on a backend."""
    if role.kind != "lambda":
        return []
    if backend == MINISTACK:
        return [ministack_session_key(arn, role.arn) for _name, arn in role.functions]
    if backend == AWS:
        return [name for name, _arn in role.functions]  # Lambda's role session name is the function name
    return []


def unobservable_reason(role: StackRole, action: str, backend: str) -> str | None:
    """Why this backend's CloudTrail event history cannot show this role using
    this action — so a zero is "not seen", not "unused". None if it could."""
    a = action.lower()
    if role.kind == "states":
        if backend == MINISTACK:
            return "the emulator runs state machine tasks in-process, under no role"
        return "a state machine's calls have no session name to look up" if a not in DATA_EVENT_ACTIONS \
            else "a CloudTrail data event: not in LookupEvents"
    if role.kind != "lambda":
        return "not the role of a function or state machine of this stack"
    if any(fnmatch.fnmatchcase(x, a) for x in LOGS_ACTIONS):
        return "the Lambda service writes the function's logs"
    if role.event_source and any(fnmatch.fnmatchcase(x, a) for x in EVENT_SOURCE_ACTIONS):
        return "called by the event source mapping, not the handler"
    if backend == AWS and a in DATA_EVENT_ACTIONS:
        return "a CloudTrail data event: not in LookupEvents"
    if backend not in (AWS, MINISTACK):
        return f"{backend}: no per-role CloudTrail"
    return None


def diff_role(role: StackRole, grants: list[Grant], used: Counter, backend: str,
              principals: list[str], events: int = 0) -> RoleReport:
    """Granted beside used: one row per granted action (wildcards count every
    call they cover), then any called action no grant covers."""
    rows: list[ActionRow] = []
    by_action: dict[str, list[Grant]] = {}
    for g in grants:
        by_action.setdefault(g.action.lower(), []).append(g)
    covered: set[str] = set()
    for _key, gs in sorted(by_action.items()):
        action = gs[0].action
        calls = {name: n for name, n in used.items() if grants_cover(action, name)}
        covered.update(calls)
        count = sum(calls.values())
        resources = sorted({r for g in gs for r in g.resources})
        if count:
            rows.append(ActionRow(action, True, count, USED, resources=resources))
            continue
        reason = unobservable_reason(role, action, backend)
        if reason:
            rows.append(ActionRow(action, True, 0, UNOBSERVABLE, reason, resources))
        else:
            rows.append(ActionRow(action, True, 0, UNUSED, "granted, never called in the window", resources))
    for name, n in sorted(used.items()):
        if name not in covered:
            rows.append(ActionRow(name, False, n, NOT_GRANTED,
                                  "called and allowed, but no policy read here grants it"))
    return RoleReport(role.logical_id, role.name, role.arn, principals, rows, events)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """'30m', '6h', '2d', or an ISO-8601 time (UTC if it names no zone)."""
    now = now or datetime.now(UTC)
    text = value.strip().lower()
    m = _SINCE.match(text)
    if m:
        amount, unit = int(m.group(1)), m.group(2)
        return now - timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(f"--since {value!r} is neither a duration nor a time",
                         "use a form like 30m, 6h, 2d or 2026-11-26T09:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ------------------------------------------------------------------ fetching


def stack_roles(cfn, lambda_, stepfunctions, iam, stack_name: str) -> list[StackRole]:
    """Every IAM role of the stack, with the functions and state machines using it."""
    resources: list[dict] = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        resources += page["StackResourceSummaries"]
    roles = {r["PhysicalResourceId"]: r["LogicalResourceId"] for r in resources
             if r["ResourceType"] == "AWS::IAM::Role" and r.get("PhysicalResourceId")}
    arns = {name: iam.get_role(RoleName=name)["Role"]["Arn"] for name in roles}
    by_arn = {arn: name for name, arn in arns.items()}
    functions: dict[str, list[tuple[str, str]]] = {}
    fed: set[str] = set()
    machines: set[str] = set()
    for r in resources:
        if r["ResourceType"] == "AWS::Lambda::Function" and r.get("PhysicalResourceId"):
            cfg = lambda_.get_function_configuration(FunctionName=r["PhysicalResourceId"])
            name = by_arn.get(cfg["Role"])
            if name:
                functions.setdefault(name, []).append((cfg["FunctionName"], cfg["FunctionArn"]))
                if lambda_.list_event_source_mappings(FunctionName=cfg["FunctionName"]).get("EventSourceMappings"):
                    fed.add(name)
        elif r["ResourceType"] == "AWS::StepFunctions::StateMachine" and r.get("PhysicalResourceId"):
            name = by_arn.get(stepfunctions.describe_state_machine(stateMachineArn=r["PhysicalResourceId"])["roleArn"])
            if name:
                machines.add(name)
    return [StackRole(logical, name, arns[name],
                      "lambda" if name in functions else "states" if name in machines else "other",
                      tuple(sorted(functions.get(name, []))), name in fed)
            for name, logical in sorted(roles.items(), key=lambda kv: kv[1])]


def role_grants(iam, role_name: str) -> tuple[list[Grant], list[str]]:
    """Inline and attached managed policies of a role, as Grants."""
    grants: list[Grant] = []
    notes: list[str] = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for policy in page["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=role_name, PolicyName=policy)["PolicyDocument"]
            g, n = policy_grants(doc, policy)
            grants += g
            notes += n
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        for attached in page["AttachedPolicies"]:
            arn = attached["PolicyArn"]
            version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
            g, n = policy_grants(doc, attached["PolicyName"])
            grants += g
            notes += n
    return grants, notes


def lookup_events(cloudtrail, *, start: datetime, end: datetime, username: str | None = None,
                  max_pages: int = MAX_PAGES) -> tuple[list[dict], bool]:
    """Every event in [start, end] (for one Username, if given), newest first.
    Pages by NextToken where the backend gives one; where it does not (MiniStack
    answers at most 50 newest events), by moving the window's end back to the
    oldest event seen. Returns the events and whether `max_pages` cut it short."""
    attrs = [{"AttributeKey": "Username", "AttributeValue": username}] if username else []
    events: list[dict] = []
    seen: set[str] = set()
    token: str | None = None
    for _ in range(max_pages):
        kwargs: dict[str, Any] = {"StartTime": start, "EndTime": end, "MaxResults": PAGE_SIZE}
        if attrs:
            kwargs["LookupAttributes"] = attrs
        if token:
            kwargs["NextToken"] = token
        page = cloudtrail.lookup_events(**kwargs)
        batch = page.get("Events", [])
        fresh = [e for e in batch if e.get("EventId") not in seen]
        seen.update(e.get("EventId") for e in fresh)
        events += fresh
        token = page.get("NextToken")
        if token:
            continue
        if len(batch) < PAGE_SIZE or not fresh:
            return events, False
        # No token but a full page: step the window back (inclusive: ties are deduplicated).
        oldest = min(_event_time(e) for e in batch)
        if oldest <= start:
            return events, False
        end = oldest
    return events, True


def _event_time(event: dict) -> datetime:
    t = event.get("EventTime")
    if isinstance(t, datetime):
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(t), UTC)


def recording(cloudtrail, start: datetime, end: datetime) -> bool:
    """Whether the backend records anything: the calls this report just made
    are in the window if it does (only meaningful on an emulator; AWS delivers
    events minutes late)."""
    return bool(cloudtrail.lookup_events(StartTime=start, EndTime=end, MaxResults=1).get("Events"))


def build_report(*, cfn, lambda_, stepfunctions, iam, cloudtrail, stack_name: str, backend: str,
                 since: datetime, until: datetime | None = None,
                 progress: Callable[[str], None] | None = None) -> IamReport:
    """The report for one deployed stack over [since, until]."""
    say = progress or (lambda _m: None)
    until = until or datetime.now(UTC)
    say(f"reading the roles of {stack_name}")
    roles = stack_roles(cfn, lambda_, stepfunctions, iam, stack_name)
    notes: list[str] = []
    principals: dict[str, str] = {}
    per_role_principals: dict[str, list[str]] = {}
    for role in roles:
        per_role_principals[role.logical_id] = role_principals(role, backend)
        principals.update({p: role.logical_id for p in per_role_principals[role.logical_id]})
    events: list[dict] = []
    for role in roles:
        for principal in per_role_principals[role.logical_id]:
            say(f"looking up {role.logical_id}'s calls ({principal})")
            got, cut = lookup_events(cloudtrail, start=since, end=until, username=principal)
            events += got
            if cut:
                notes.append(f"{role.logical_id}: more than {PAGE_SIZE * MAX_PAGES} events; counts are a lower bound")
    role_arns = {r.logical_id: r.arn for r in roles}
    used, unattributed = attribute_events(events, principals, role_arns if backend == AWS else None)
    if backend == MINISTACK and any(r.kind == "lambda" and not used.get(r.logical_id) for r in roles):
        # A role with no calls at all: were its calls recorded under a key this report cannot map?
        recent, _ = lookup_events(cloudtrail, start=since, end=until, max_pages=4)
        _, unattributed = attribute_events(recent, principals)
        if unattributed:
            notes.append(f"{unattributed} recent events came from role sessions no role of this stack maps to "
                         "(another stack's functions, or an engine whose session keys differ)")
    reports = []
    for role in roles:
        grants, policy_notes = role_grants(iam, role.name)
        notes += [f"{role.logical_id}: {n}" for n in policy_notes]
        count = sum(used.get(role.logical_id, Counter()).values())
        reports.append(diff_role(role, grants, used.get(role.logical_id, Counter()), backend,
                                 per_role_principals[role.logical_id], count))
    if backend == MINISTACK and not events and not recording(cloudtrail, since, datetime.now(UTC)):
        notes.append("the emulator is not recording CloudTrail events: start it with CLOUDTRAIL_RECORDING=1 "
                     "(or POST {\"cloudtrail._recording_enabled\": \"true\"} to /_ministack/config), run tasks, "
                     "then report again")
    if backend == AWS:
        notes.append("AWS: LookupEvents holds management events only, delivered ~5-15 min late; data events "
                     "(DynamoDB items, SQS messages, Lambda Invoke) need a trail with data event selectors")
    if backend == LOCALSTACK:
        notes.append("LocalStack: no per-role CloudTrail in the free tier; grants listed, use unknown")
    source = {AWS: "CloudTrail LookupEvents (management events)",
              MINISTACK: "MiniStack CloudTrail recording (allowed HTTP calls)"}.get(backend, "none")
    return IamReport(stack_name, backend, since.isoformat(timespec="seconds"), until.isoformat(timespec="seconds"),
                     source, reports, unattributed, notes)


def enable_ministack_recording(endpoint_url: str, timeout: float = 5.0) -> bool:
    """Turn MiniStack's CloudTrail recording on at run time (its admin
    endpoint); calls are recorded from then on. True if the engine applied it."""
    import urllib.request

    req = urllib.request.Request(f"{endpoint_url}/_ministack/config", method="POST",
                                 data=json.dumps({"cloudtrail._recording_enabled": "true"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the emulator's own endpoint
        return bool(json.loads(resp.read() or b"{}").get("applied"))
