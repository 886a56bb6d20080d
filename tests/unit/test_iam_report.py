"""`tmctl iam report`'s core offline: policy parsing, event → action, the
attribution of events to roles, the grant/use diff, the window paging, and
the command's two renderings. The events are the shapes each backend returns:
MiniStack's as its CloudTrail records them (Username = the worker's session
key; the key below was read from a live run), AWS's as a Lambda execution
role's session appears in LookupEvents."""

from __future__ import annotations

import json
import urllib.parse
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import ANY
from typer.testing import CliRunner

from tests.unit.conftest import stubbed
from tmctl.core import iam_report as ir
from tmctl.core.backend import AWS, LOCALSTACK, MINISTACK
from tmctl.core.errors import UsageError

pytestmark = pytest.mark.unit

ACCOUNT = "000000000000"
API_FN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:taskmanager-ix-task-api"
API_ROLE = f"arn:aws:iam::{ACCOUNT}:role/taskmanager-ix-TaskApiRole-8C8E9EC463983"
API_KEY = "ASIAB01534E56587C243"  # what MiniStack 1.5.33 recorded for API_FN's workers under API_ROLE
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/taskmanager-ix-tasks"
T0 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)

TASK_API = ir.StackRole("TaskApiRole", API_ROLE.rsplit("/", 1)[-1], API_ROLE, "lambda",
                        (("taskmanager-ix-task-api", API_FN),))
PROCESSOR = ir.StackRole("EventProcessorRole", "proc-role", f"arn:aws:iam::{ACCOUNT}:role/proc-role", "lambda",
                         (("taskmanager-ix-event-processor", "arn:fn:proc"),), event_source=True)
MACHINE = ir.StackRole("StateMachineRole", "sm-role", f"arn:aws:iam::{ACCOUNT}:role/sm-role", "states")

TASK_API_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Tasks", "Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Scan"],
     "Resource": TABLE},
    {"Sid": "Publish", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:q"},
    {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "arn:aws:logs:lg"},
]}


def ministack_event(name: str, source: str, key: str, n: int = 0, when: datetime = T0) -> dict:
    """One event as MiniStack's LookupEvents returns it (after botocore parsing)."""
    event_id = f"{key}-{name}-{n}"
    return {"EventId": event_id, "EventName": name, "EventSource": f"{source}.amazonaws.com",
            "EventTime": when, "Username": key, "AccessKeyId": key, "ReadOnly": "false", "Resources": [],
            "CloudTrailEvent": json.dumps({"userIdentity": {
                "type": "IAMUser", "principalId": key, "arn": f"arn:aws:iam::{ACCOUNT}:user/{key}",
                "accountId": ACCOUNT, "accessKeyId": key, "userName": key}, "eventID": event_id})}


def aws_event(name: str, source: str, session: str, role_arn: str, n: int = 0) -> dict:
    """A Lambda execution role's call as AWS's LookupEvents returns it."""
    role_name = role_arn.rsplit("/", 1)[-1]
    return {"EventId": f"aws-{name}-{n}", "EventName": name, "EventSource": f"{source}.amazonaws.com",
            "EventTime": T0, "Username": session, "ReadOnly": "true", "Resources": [],
            "CloudTrailEvent": json.dumps({"userIdentity": {
                "type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{session}",
                "accountId": ACCOUNT, "accessKeyId": "ASIAEXAMPLE",
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                                                     "arn": role_arn, "accountId": ACCOUNT, "userName": role_name},
                                   "attributes": {"creationDate": "2026-11-26T13:55:00Z",
                                                  "mfaAuthenticated": "false"}}}})}


# ------------------------------------------------------------------ grants


def test_policy_grants_one_per_action_with_resources():
    grants, notes = ir.policy_grants(TASK_API_POLICY, "task-api")
    assert [g.action for g in grants] == ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Scan",
                                          "sqs:SendMessage", "logs:CreateLogStream", "logs:PutLogEvents"]
    assert grants[0].resources == (TABLE,) and grants[0].sid == "Tasks" and grants[0].policy == "task-api"
    assert notes == []


def test_policy_grants_reads_the_url_encoded_form_and_notes_what_it_cannot_list():
    doc = {"Statement": [{"Effect": "Allow", "Action": "DynamoDB:GetItem", "Resource": "*"},
                         {"Effect": "Deny", "Action": "dynamodb:*", "Resource": "*"},
                         {"Sid": "All", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    grants, notes = ir.policy_grants(urllib.parse.quote(json.dumps(doc)), "p")
    assert [g.action for g in grants] == ["dynamodb:GetItem"]  # the service prefix is case-insensitive
    assert len(notes) == 2 and "Deny" in notes[0] and "iam:*" in notes[1]


def test_every_role_in_the_template_parses(template):
    roles = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert roles
    for logical, role in roles.items():
        for policy in role["Properties"].get("Policies", []):
            grants, notes = ir.policy_grants(policy["PolicyDocument"], policy["PolicyName"])
            assert grants and not notes, logical
            assert all(":" in g.action and "*" not in g.action for g in grants), logical


# ------------------------------------------------------------------ events


@pytest.mark.parametrize(("source", "name", "action"), [
    ("dynamodb", "PutItem", "dynamodb:PutItem"),
    ("states", "StartExecution", "states:StartExecution"),
    ("lambda", "Invoke", "lambda:InvokeFunction"),
    ("lambda", "GetFunction20150331v2", "lambda:GetFunction"),
    ("monitoring", "PutMetricData", "cloudwatch:PutMetricData"),
])
def test_event_action(source, name, action):
    assert ir.event_action({"EventSource": f"{source}.amazonaws.com", "EventName": name}) == action


def test_ministack_session_key_matches_a_live_recording():
    assert ir.ministack_session_key(API_FN, API_ROLE) == API_KEY
    assert ir.role_principals(TASK_API, MINISTACK) == [API_KEY]
    assert ir.role_principals(TASK_API, AWS) == ["taskmanager-ix-task-api"]
    assert ir.role_principals(MACHINE, AWS) == [] and ir.role_principals(TASK_API, LOCALSTACK) == []


def test_attribute_ministack_events_by_session_key():
    events = [ministack_event("PutItem", "dynamodb", API_KEY), ministack_event("PutItem", "dynamodb", API_KEY, 1),
              ministack_event("PutItem", "dynamodb", API_KEY, 1),  # the same event twice (window paging)
              ministack_event("SendMessage", "sqs", API_KEY),
              ministack_event("DescribeStacks", "cloudformation", "test"),  # tmctl itself, as root
              ministack_event("GetItem", "dynamodb", "ASIA0000000000000000")]  # a session of no role here
    used, unattributed = ir.attribute_events(events, {API_KEY: "TaskApiRole"})
    assert used == {"TaskApiRole": Counter({"dynamodb:PutItem": 2, "sqs:SendMessage": 1})}
    assert unattributed == 1


def test_attribute_aws_events_checks_the_session_issuer():
    # Another stack's role whose function has the same name is not ours.
    events = [aws_event("GetParameters", "ssm", "taskmanager-ix-task-api", API_ROLE),
              aws_event("GetParameters", "ssm", "taskmanager-ix-task-api", f"arn:aws:iam::{ACCOUNT}:role/other", 1)]
    used, unattributed = ir.attribute_events(events, {"taskmanager-ix-task-api": "TaskApiRole"},
                                             {"TaskApiRole": API_ROLE})
    assert used["TaskApiRole"] == Counter({"ssm:GetParameters": 1}) and unattributed == 1


def test_attribute_events_without_an_id_counts_each_of_them():
    # GIVEN events that carry no EventId (an engine may leave it out): nothing to deduplicate them by
    events = [{k: v for k, v in ministack_event("PutItem", "dynamodb", API_KEY, n).items() if k != "EventId"}
              for n in range(3)]
    # WHEN attributed, alongside one event seen twice that does have an id
    twice = ministack_event("SendMessage", "sqs", API_KEY)
    used, _ = ir.attribute_events([*events, twice, twice], {API_KEY: "TaskApiRole"})
    # THEN every id-less event counts; only the repeated id is dropped
    assert used["TaskApiRole"] == Counter({"dynamodb:PutItem": 3, "sqs:SendMessage": 1})


# ------------------------------------------------------------------ the diff


def test_diff_flags_unused_and_keeps_unobservable_apart():
    grants, _ = ir.policy_grants(TASK_API_POLICY, "task-api")
    used = Counter({"dynamodb:PutItem": 3, "sqs:SendMessage": 3})
    report = ir.diff_role(TASK_API, grants, used, MINISTACK, [API_KEY], 6)
    flags = {a.action: (a.used, a.flag) for a in report.actions}
    assert flags == {"dynamodb:GetItem": (0, ir.UNUSED), "dynamodb:PutItem": (3, ir.USED),
                     "dynamodb:Scan": (0, ir.UNUSED), "sqs:SendMessage": (3, ir.USED),
                     "logs:CreateLogStream": (0, ir.UNOBSERVABLE), "logs:PutLogEvents": (0, ir.UNOBSERVABLE)}
    assert report.unused == ["dynamodb:GetItem", "dynamodb:Scan"]


def test_diff_on_aws_data_events_are_not_observable_not_unused():
    grants, _ = ir.policy_grants(TASK_API_POLICY, "task-api")
    report = ir.diff_role(TASK_API, grants, Counter(), AWS, ["taskmanager-ix-task-api"])
    assert {a.flag for a in report.actions} == {ir.UNOBSERVABLE}
    assert "data event" in next(a.note for a in report.actions if a.action == "dynamodb:PutItem")


def test_diff_wildcard_grant_counts_what_it_covers_and_lists_ungranted_calls():
    grants, _ = ir.policy_grants({"Statement": [{"Effect": "Allow", "Action": "dynamodb:*Item", "Resource": "*"}]},
                                 "p")
    used = Counter({"dynamodb:GetItem": 2, "dynamodb:PutItem": 1, "sqs:SendMessage": 4})
    rows = {a.action: a for a in ir.diff_role(TASK_API, grants, used, MINISTACK, []).actions}
    assert rows["dynamodb:*Item"].used == 3 and rows["dynamodb:*Item"].flag == ir.USED
    assert rows["sqs:SendMessage"].flag == ir.NOT_GRANTED and not rows["sqs:SendMessage"].granted


@pytest.mark.parametrize(("role", "action", "backend", "observable"), [
    (TASK_API, "dynamodb:Scan", MINISTACK, True),
    (TASK_API, "dynamodb:Scan", AWS, False),  # data event
    (TASK_API, "ssm:GetParameter", AWS, True),  # management event
    (TASK_API, "ssm:GetParameter", MINISTACK, True),
    (TASK_API, "sqs:ReceiveMessage", MINISTACK, True),  # no event source: the handler would call it
    (PROCESSOR, "sqs:ReceiveMessage", MINISTACK, False),  # the mapping polls in-process
    (PROCESSOR, "sqs:ChangeMessageVisibility", MINISTACK, True),  # the handler's own call
    (PROCESSOR, "logs:PutLogEvents", MINISTACK, False),
    (MACHINE, "dynamodb:UpdateItem", MINISTACK, False),
    (MACHINE, "states:DescribeExecution", AWS, False),
    (TASK_API, "dynamodb:Scan", LOCALSTACK, False),
])
def test_unobservable_reason(role, action, backend, observable):
    assert (ir.unobservable_reason(role, action, backend) is None) is observable


# ------------------------------------------------------------------ the window


@pytest.mark.parametrize(("text", "back"), [("30m", timedelta(minutes=30)), ("6h", timedelta(hours=6)),
                                            ("2d", timedelta(days=2)), ("90s", timedelta(seconds=90))])
def test_parse_since_durations(text, back):
    assert ir.parse_since(text, now=T0) == T0 - back


def test_parse_since_times_and_nonsense():
    assert ir.parse_since("2026-11-26T09:00:00Z") == datetime(2026, 11, 26, 9, tzinfo=UTC)
    assert ir.parse_since("2026-11-26T09:00:00") == datetime(2026, 11, 26, 9, tzinfo=UTC)
    with pytest.raises(UsageError):
        ir.parse_since("yesterday")


def _page(events, token=None):
    return {"Events": events, **({"NextToken": token} if token else {})}


def test_lookup_events_follows_next_token():
    a = [ministack_event("PutItem", "dynamodb", API_KEY, i) for i in range(50)]
    b = [ministack_event("GetItem", "dynamodb", API_KEY, i) for i in range(3)]
    with stubbed("cloudtrail") as (ct, stub):
        stub.add_response("lookup_events", _page(a, "t1"), {"StartTime": ANY, "EndTime": ANY, "MaxResults": 50,
                          "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": API_KEY}]})
        stub.add_response("lookup_events", _page(b), {"StartTime": ANY, "EndTime": ANY, "MaxResults": 50,
                          "LookupAttributes": ANY, "NextToken": "t1"})
        events, cut = ir.lookup_events(ct, start=T0 - timedelta(hours=1), end=T0, username=API_KEY)
    assert len(events) == 53 and not cut


def test_lookup_events_steps_the_window_back_without_a_token():
    # MiniStack: the 50 newest, no token; the next call ends at the oldest one seen.
    newest = [ministack_event("PutItem", "dynamodb", API_KEY, i, T0 - timedelta(seconds=i)) for i in range(50)]
    older = [newest[-1], *[ministack_event("GetItem", "dynamodb", API_KEY, i, T0 - timedelta(seconds=60 + i))
                           for i in range(10)]]
    with stubbed("cloudtrail") as (ct, stub):
        stub.add_response("lookup_events", _page(newest), {"StartTime": ANY, "EndTime": T0, "MaxResults": 50})
        stub.add_response("lookup_events", _page(older),
                          {"StartTime": ANY, "EndTime": T0 - timedelta(seconds=49), "MaxResults": 50})
        events, cut = ir.lookup_events(ct, start=T0 - timedelta(hours=1), end=T0)
    assert len(events) == 60 and not cut


def test_lookup_events_says_when_it_stopped_short():
    with stubbed("cloudtrail") as (ct, stub):
        for i in range(2):
            stub.add_response("lookup_events", _page([ministack_event("GetItem", "dynamodb", API_KEY, i)], f"t{i}"))
        events, cut = ir.lookup_events(ct, start=T0 - timedelta(hours=1), end=T0, max_pages=2)
    assert len(events) == 2 and cut


# ------------------------------------------------------------------ the whole report, fetched


class Fake:
    """Just enough of a boto3 client: named calls answer from a table, paginators yield one page."""

    def __init__(self, **answers):
        self.answers, self.calls = answers, []

    def __getattr__(self, name):
        if name not in self.answers:
            raise AttributeError(name)

        def call(**kwargs):
            self.calls.append((name, kwargs))
            answer = self.answers[name]
            return answer(**kwargs) if callable(answer) else answer

        return call

    def get_paginator(self, name):
        fake = self

        class Paginator:
            def paginate(self, **kwargs):
                yield getattr(fake, name)(**kwargs)

        return Paginator()


def test_build_report_on_ministack():
    resources = [("TaskApiRole", "AWS::IAM::Role", TASK_API.name),
                 ("TaskApiFunction", "AWS::Lambda::Function", "taskmanager-ix-task-api"),
                 ("TasksTable", "AWS::DynamoDB::Table", "taskmanager-ix-tasks")]
    cfn = Fake(list_stack_resources={"StackResourceSummaries": [
        {"LogicalResourceId": lo, "ResourceType": ty, "PhysicalResourceId": ph} for lo, ty, ph in resources]})
    iam = Fake(get_role={"Role": {"Arn": API_ROLE}}, list_role_policies={"PolicyNames": ["task-api"]},
               get_role_policy={"PolicyDocument": TASK_API_POLICY},
               list_attached_role_policies={"AttachedPolicies": []})
    lambda_ = Fake(get_function_configuration={"FunctionName": "taskmanager-ix-task-api", "FunctionArn": API_FN,
                                               "Role": API_ROLE},
                   list_event_source_mappings={"EventSourceMappings": []})
    events = [ministack_event("PutItem", "dynamodb", API_KEY), ministack_event("SendMessage", "sqs", API_KEY)]
    cloudtrail = Fake(lookup_events=lambda **kw: _page(events if kw.get("LookupAttributes") else []))
    report = ir.build_report(cfn=cfn, lambda_=lambda_, stepfunctions=Fake(), iam=iam, cloudtrail=cloudtrail,
                             stack_name="taskmanager-ix", backend=MINISTACK, since=T0 - timedelta(hours=1), until=T0)
    (role,) = report.roles
    assert role.role == "TaskApiRole" and role.principals == [API_KEY] and role.events == 2
    assert {a.action: a.flag for a in role.actions}["dynamodb:Scan"] == ir.UNUSED
    assert report.unattributed == 0 and report.notes == []


def test_build_report_says_when_the_emulator_records_nothing():
    cfn = Fake(list_stack_resources={"StackResourceSummaries": [
        {"LogicalResourceId": "TaskApiRole", "ResourceType": "AWS::IAM::Role", "PhysicalResourceId": TASK_API.name},
        {"LogicalResourceId": "Fn", "ResourceType": "AWS::Lambda::Function", "PhysicalResourceId": "fn"}]})
    iam = Fake(get_role={"Role": {"Arn": API_ROLE}}, list_role_policies={"PolicyNames": []},
               list_attached_role_policies={"AttachedPolicies": []})
    lambda_ = Fake(get_function_configuration={"FunctionName": "fn", "FunctionArn": API_FN, "Role": API_ROLE},
                   list_event_source_mappings={"EventSourceMappings": []})
    report = ir.build_report(cfn=cfn, lambda_=lambda_, stepfunctions=Fake(), iam=iam,
                             cloudtrail=Fake(lookup_events=_page([])), stack_name="s", backend=MINISTACK,
                             since=T0 - timedelta(hours=1), until=T0)
    assert any("CLOUDTRAIL_RECORDING=1" in n for n in report.notes)


# ------------------------------------------------------------------ the command


@pytest.fixture
def canned(monkeypatch):
    from tmctl.cli.context import State
    from tmctl.core.backend import Backend

    grants, _ = ir.policy_grants(TASK_API_POLICY, "task-api")
    role = ir.diff_role(TASK_API, grants, Counter({"dynamodb:PutItem": 2}), MINISTACK, [API_KEY], 2)
    report = ir.IamReport("taskmanager-dev", MINISTACK, "a", "b", "recording", [role])
    seen = {}

    def fake_build(**kwargs):
        seen.update(kwargs)
        return report

    monkeypatch.setattr(ir, "build_report", fake_build)
    monkeypatch.setattr(State, "backend", lambda self: Backend(MINISTACK, "1.5.33", "http://127.0.0.1:9"))
    monkeypatch.setattr(State, "stack", lambda self: None)
    return seen


ENV = {"TMCTL_ENDPOINT_URL": "http://127.0.0.1:9", "NO_COLOR": "1", "COLUMNS": "200"}


def test_command_json(canned):
    result = CliRunner().invoke(app_(), ["iam", "report", "--since", "2h", "-o", "json"], env=ENV)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {a["action"]: a for a in data["roles"][0]["actions"]}
    assert rows["dynamodb:PutItem"]["used"] == 2 and rows["dynamodb:Scan"]["flag"] == "unused"
    assert canned["backend"] == MINISTACK and canned["stack_name"] == "taskmanager-dev"


def test_command_table(canned):
    result = CliRunner().invoke(app_(), ["iam", "report", "-o", "table"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "TaskApiRole" in result.stdout and "UNUSED" in result.stdout and "not observable" in result.stdout
    assert "3 unused grant(s): dynamodb:GetItem, dynamodb:Scan, sqs:SendMessage" in result.stdout


def test_command_refuses_a_bad_window(canned):
    result = CliRunner().invoke(app_(), ["iam", "report", "--since", "soon"], env=ENV)
    assert result.exit_code == 2 and "--since" in result.stderr


def app_():
    from tmctl.cli.app import app

    return app
