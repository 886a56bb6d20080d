"""Static checks of cloudformation/: what AWS would accept, and the rules this
project depends on (least privilege, SQS/Lambda timing, partial batch
failures, bounded concurrency and logs, a well-formed state machine)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.api import lint_file

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "cloudformation" / "template.yaml"
ASL_PATH = ROOT / "cloudformation" / "statemachine.asl.json"


def resources(template: dict, rtype: str) -> dict[str, dict]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == rtype}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict) -> list[tuple[str, dict]]:
    """(where, statement) for every IAM statement: inline role policies, trust
    policies and standalone policies."""
    out = []
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        docs = []
        if res["Type"] == "AWS::IAM::Role":
            docs.append(("trust", props["AssumeRolePolicyDocument"]))
            docs += [(p["PolicyName"], p["PolicyDocument"]) for p in props.get("Policies", [])]
        elif res["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            docs.append(("policy", props["PolicyDocument"]))
        for label, doc in docs:
            out += [(f"{name}/{label}/{s.get('Sid', i)}", s) for i, s in enumerate(doc["Statement"])]
    return out


def sub_text(value) -> str:
    """The literal text of a !Sub (or a plain string)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    assert isinstance(value, str), f"expected a string or !Sub, got {value!r}"
    return value


# ------------------------------------------------------------------ the template


def test_cfn_lint_reports_no_errors_or_warnings():
    matches = lint_file(TEMPLATE_PATH)

    assert [str(m) for m in matches] == []


def test_iam_statements_grant_no_wildcard_actions_or_resources(template):
    statements = policy_statements(template)
    assert len(statements) >= 10  # the walk found the policies (a typo would make this vacuous)

    problems = []
    for where, stmt in statements:
        if "NotAction" in stmt or "NotResource" in stmt:
            problems.append(f"{where}: NotAction/NotResource")
        for action in as_list(stmt.get("Action", [])):
            if action == "*" or action.endswith(":*"):
                problems.append(f"{where}: action {action}")
        for resource in as_list(stmt.get("Resource", [])):
            # Ref/GetAtt name one exact resource; a string or a Sub pattern must not widen with '*'.
            text = resource if isinstance(resource, str) else None
            if isinstance(resource, dict) and "Fn::Sub" in resource:
                sub = resource["Fn::Sub"]
                text = sub if isinstance(sub, str) else sub[0]
            if text is not None and "*" in text:
                problems.append(f"{where}: resource {text}")
    assert problems == []


# What each role's code calls (handlers and the ASL's SDK integrations):
# a missing grant only shows up as AccessDenied on AWS, never on an emulator.
LAMBDA_LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}  # the Lambda runtime's own calls
CALLS = {
    "TaskApiRole": {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Scan",
                    "dynamodb:Query", "sqs:SendMessage", "ssm:GetParameter"} | LAMBDA_LOGS,
    "EventProcessorRole": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                           "sqs:ChangeMessageVisibility", "states:StartExecution", "ssm:GetParameter",
                           "dynamodb:GetItem", "dynamodb:UpdateItem"} | LAMBDA_LOGS,
    "WorkflowStepsRole": {"ssm:GetParameter"} | LAMBDA_LOGS,
    "StateMachineRole": {"lambda:InvokeFunction", "dynamodb:UpdateItem"},
}


@pytest.mark.parametrize("role", sorted(CALLS))
def test_each_role_grants_exactly_what_its_code_calls(template, role):
    granted = {a for p in template["Resources"][role]["Properties"]["Policies"]
               for s in p["PolicyDocument"]["Statement"] if s["Effect"] == "Allow" for a in as_list(s["Action"])}

    # Nothing missing (AccessDenied on AWS) and nothing extra (least privilege).
    assert granted == CALLS[role]


def test_queue_visibility_is_at_least_six_times_the_processor_timeout(template):
    # AWS's advice for an SQS event source: otherwise a slow batch is redelivered while still running.
    visibility = template["Resources"]["TaskQueue"]["Properties"]["VisibilityTimeout"]
    timeout = template["Resources"]["EventProcessorFunction"]["Properties"]["Timeout"]
    window = template["Resources"]["EventProcessorMapping"]["Properties"].get("MaximumBatchingWindowInSeconds", 0)

    assert visibility >= 6 * timeout + window


def test_task_queue_redrives_to_the_dead_letter_queue(template):
    redrive = template["Resources"]["TaskQueue"]["Properties"]["RedrivePolicy"]
    max_receive = template["Parameters"]["MaxReceiveCount"]

    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": "DeadLetterQueue.Arn"}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert max_receive["Default"] >= 1 and max_receive["MinValue"] >= 1
    # the DLQ keeps messages longer than the source queue, so none expire before inspection
    assert (template["Resources"]["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
            > template["Resources"]["TaskQueue"]["Properties"]["MessageRetentionPeriod"])


def test_event_source_mapping_reports_batch_item_failures(template):
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    assert set(mappings) == {"EventProcessorMapping"}
    props = mappings["EventProcessorMapping"]["Properties"]

    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": "TaskQueue.Arn"}
    assert props["FunctionName"] == {"Ref": "EventProcessorFunction"}
    # the poller's concurrency never exceeds what the function may run
    reserved = template["Resources"]["EventProcessorFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert props["ScalingConfig"]["MaximumConcurrency"] <= reserved


def test_every_function_has_reserved_concurrency_and_its_own_log_group_with_retention(template):
    functions = resources(template, "AWS::Lambda::Function")
    log_groups = resources(template, "AWS::Logs::LogGroup")
    assert len(functions) == 3

    by_name = {sub_text(g["Properties"]["LogGroupName"]): (name, g) for name, g in log_groups.items()}
    for name, fn in functions.items():
        props = fn["Properties"]
        assert "ReservedConcurrentExecutions" in props, name
        # Lambda writes to /aws/lambda/<FunctionName>; a group under any other name is never used
        group_name = "/aws/lambda/" + sub_text(props["FunctionName"])
        assert group_name in by_name, f"{name} has no log group {group_name}"
        group_logical, group = by_name[group_name]
        assert "RetentionInDays" in group["Properties"], group_logical
        # created before the function, or Lambda creates it first without retention
        assert group_logical in as_list(fn.get("DependsOn", [])), name


# ------------------------------------------------------------------ the state machine


def asl_targets(state: dict) -> list[str]:
    targets = [state[k] for k in ("Next", "Default") if k in state]
    targets += [c["Next"] for c in state.get("Choices", [])]
    targets += [c["Next"] for c in state.get("Catch", [])]
    return targets


def test_asl_is_valid_json_with_a_known_start(asl):
    assert ASL_PATH.read_text().strip().startswith("{")
    assert asl["StartAt"] in asl["States"]


def test_asl_transitions_name_existing_states_and_all_states_are_reachable(asl):
    states = asl["States"]
    dangling = [(name, target) for name, s in states.items() for target in asl_targets(s) if target not in states]
    assert dangling == []

    reachable, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in reachable:
            reachable.add(name)
            todo += asl_targets(states[name])
    assert reachable == set(states)


def test_asl_states_that_do_not_end_say_where_to_go(asl):
    moving = {name: state for name, state in asl["States"].items() if state["Type"] not in {"Succeed", "Fail"}}
    assert moving, "no state that moves on: the walk is broken"
    for name, state in moving.items():
        if state["Type"] == "Choice":
            assert "Default" in state, name
        else:
            assert ("Next" in state) != bool(state.get("End")), f"{name} needs exactly one of Next/End"


def test_every_steps_lambda_task_retries_and_catches(asl):
    lambda_tasks = {name: s for name, s in asl["States"].items()
                    if s["Type"] == "Task" and s["Resource"] == "${StepsFunctionArn}"}
    # One Lambda hop runs the business steps (validate, enrich, process): see lambdas/workflow_steps
    assert set(lambda_tasks) == {"RunSteps"}

    for name, state in lambda_tasks.items():
        assert state.get("Retry"), name
        assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name
        # Lambda's own throttles are retried, not turned into a failed task
        assert any("Lambda.TooManyRequestsException" in r["ErrorEquals"] for r in state["Retry"]), name
        assert state.get("TimeoutSeconds"), name


def test_definition_substitutions_cover_every_asl_placeholder(template):
    placeholders = set(re.findall(r"\$\{([^}]+)\}", ASL_PATH.read_text()))
    substitutions = template["Resources"]["TaskWorkflow"]["Properties"]["DefinitionSubstitutions"]

    assert placeholders, "the ASL has no placeholders: the check would be vacuous"
    assert placeholders == set(substitutions)


def test_template_and_packager_agree_on_the_definition_file(template):
    # The state machine is loaded from the S3 key the packager fills with this file.
    from tmctl.core.package import DEFINITION_FILE, DEFINITION_PARAMETER

    location = template["Resources"]["TaskWorkflow"]["Properties"]["DefinitionS3Location"]
    assert location["Key"] == {"Ref": DEFINITION_PARAMETER}
    assert ROOT / DEFINITION_FILE == ASL_PATH
    json.loads((ROOT / DEFINITION_FILE).read_text())


# The handlers' own AWS calls, read from their source: a call added without its
# grant (or a grant left after its call is gone) fails here, not on AWS.
CLIENT_SERVICE = {"ddb": "dynamodb", "sqs": "sqs", "sfn": "states"}
HANDLER_ROLE = {"task_api": "TaskApiRole", "event_processor": "EventProcessorRole",
                "workflow_steps": "WorkflowStepsRole"}
# Calls made for a function by AWS itself, not by its code.
PLATFORM_CALLS = {"EventProcessorRole": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}}


def code_calls(source_dir) -> set[str]:
    calls = set()
    for path in source_dir.rglob("*.py"):
        text = path.read_text()
        for client, method in re.findall(r"\b(ddb|sqs|sfn)\.([a-z_]+)\(", text):
            calls.add(f"{CLIENT_SERVICE[client]}:{''.join(w.title() for w in method.split('_'))}")
        if "config." in text or "injected_failure(" in text:  # taskcore.config reads SSM
            calls.add("ssm:GetParameter")
    return calls


@pytest.mark.parametrize("handler", sorted(HANDLER_ROLE))
def test_each_role_matches_the_calls_in_its_handler_source(handler):
    role = HANDLER_ROLE[handler]
    found = code_calls(ROOT / "lambdas" / handler)

    assert found, f"no AWS calls found in lambdas/{handler}: the scan is broken"
    assert found | PLATFORM_CALLS.get(role, set()) | LAMBDA_LOGS == CALLS[role]


# ------------------------------------------------------------------ data and front door by stage


def resolve(node, params: dict[str, str], template: dict):
    """Fn::If / conditions / Ref to a parameter, as CloudFormation (with the
    LanguageExtensions transform) resolves them for these parameter values."""
    values = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()} | params
    conditions = template["Conditions"]

    def ev(n):
        if not isinstance(n, dict) or len(n) != 1:
            return n
        (fn, arg), = n.items()
        if fn == "Ref":
            return None if arg == "AWS::NoValue" else values.get(arg, n)
        if fn == "Condition":
            return ev(conditions[arg])
        if fn == "Fn::If":
            return ev(arg[1] if ev(conditions[arg[0]]) else arg[2])
        if fn == "Fn::Equals":
            return str(ev(arg[0])) == str(ev(arg[1]))
        if fn == "Fn::Or":
            return any(ev(a) for a in arg)
        if fn == "Fn::And":
            return all(ev(a) for a in arg)
        if fn == "Fn::Not":
            return not ev(arg[0])
        return n

    return ev(node)


def test_the_template_declares_the_transform_its_stage_policies_need(template):
    # Fn::If in DeletionPolicy/UpdateReplacePolicy is only valid under AWS::LanguageExtensions
    transforms = template.get("Transform")
    assert "AWS::LanguageExtensions" in (transforms if isinstance(transforms, list) else [transforms])


@pytest.mark.parametrize("stage", ["prod", "production"])
def test_production_stages_keep_the_tasks_table(template, stage):
    table = template["Resources"]["TasksTable"]

    # the stack's deletion (tmctl down) and a replacing update both leave the table and its data
    assert resolve(table["DeletionPolicy"], {"Stage": stage}, template) == "Retain"
    assert resolve(table["UpdateReplacePolicy"], {"Stage": stage}, template) == "Retain"
    assert resolve(table["Properties"]["DeletionProtectionEnabled"], {"Stage": stage}, template) is True


@pytest.mark.parametrize("stage", ["dev", "local", "test", "staging", "prod2"])
def test_other_stages_delete_the_tasks_table_with_the_stack(template, stage):
    table = template["Resources"]["TasksTable"]

    assert resolve(table["DeletionPolicy"], {"Stage": stage}, template) == "Delete"
    assert resolve(table["UpdateReplacePolicy"], {"Stage": stage}, template) == "Delete"
    assert resolve(table["Properties"]["DeletionProtectionEnabled"], {"Stage": stage}, template) is False


def test_the_templates_production_stages_are_the_functions(template):
    # one definition of "production" for the data (here) and the failure-injection switch (taskcore.config)
    from taskcore.config import PRODUCTION_STAGES

    stages = {"prod", "production", "dev", "local", "staging", "preprod"}
    production = {s for s in stages if resolve({"Condition": "IsProduction"}, {"Stage": s}, template)}
    assert production == set(PRODUCTION_STAGES)


def test_point_in_time_recovery_is_on_for_every_stage(template):
    props = template["Resources"]["TasksTable"]["Properties"]

    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


ROUTES = ("CreateTaskRoute", "ListTasksRoute", "GetTaskRoute", "DefaultRoute")


def test_aws_stages_default_to_iam_and_local_up_opens_the_front_door(template):
    from tmctl.core.deploy import local_parameters
    from tmctl.core.local.limits import Machine

    assert template["Parameters"]["ApiAuth"]["Default"] == "AWS_IAM"
    assert set(template["Parameters"]["ApiAuth"]["AllowedValues"]) == {"NONE", "AWS_IAM", "JWT"}
    assert local_parameters(Machine(2, 8 * 1024))["ApiAuth"] == "NONE"
    # tmctl reads this to decide whether to sign
    assert template["Outputs"]["ApiAuth"]["Value"] == {"Ref": "ApiAuth"}


@pytest.mark.parametrize("auth", ["NONE", "AWS_IAM", "JWT"])
def test_every_route_takes_the_chosen_authorization(template, auth):
    # $default included: no path reaches the function around the front door
    params = {"ApiAuth": auth, "JwtIssuer": "https://issuer.example", "JwtAudience": "client-1"}
    for name in ROUTES:
        props = template["Resources"][name]["Properties"]
        assert resolve(props["AuthorizationType"], params, template) == auth, name
        authorizer = resolve(props["AuthorizerId"], params, template)
        assert authorizer == ({"Ref": "JwtAuthorizer"} if auth == "JWT" else None), name


def test_the_jwt_authorizer_exists_only_for_jwt_and_demands_issuer_and_audience(template):
    authorizer = template["Resources"]["JwtAuthorizer"]
    rule = template["Rules"]["JwtNeedsIssuerAndAudience"]

    assert authorizer["Condition"] == "UseJwt"
    # JWT on the HTTP API only (the REST front door refuses JWT: see the FrontDoor tests)
    for auth, door, want in [("JWT", "http", True), ("AWS_IAM", "http", False), ("NONE", "http", False),
                             ("JWT", "rest", False)]:
        assert condition("UseJwt", {"ApiAuth": auth, "FrontDoor": door}, template) is want, (auth, door)
    assert authorizer["Properties"]["AuthorizerType"] == "JWT"
    assert authorizer["Properties"]["JwtConfiguration"]["Issuer"] == {"Ref": "JwtIssuer"}
    # a JWT stage cannot be created without both: the stack refuses before any resource exists
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "JWT"]}
    asserted = {json.dumps(a["Assert"], sort_keys=True) for a in rule["Assertions"]}
    assert asserted == {json.dumps({"Fn::Not": [{"Fn::Equals": [{"Ref": p}, ""]}]}, sort_keys=True)
                        for p in ("JwtIssuer", "JwtAudience")}


def test_the_stage_writes_json_access_logs_to_its_own_log_group_with_retention(template):
    stage = template["Resources"]["ApiStage"]["Properties"]
    logs = stage["AccessLogSettings"]
    group = template["Resources"]["ApiAccessLogGroup"]

    assert logs["DestinationArn"] == {"Fn::GetAtt": "ApiAccessLogGroup.Arn"}
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert sub_text(group["Properties"]["LogGroupName"]).startswith("/aws/vendedlogs/")
    line = json.loads(logs["Format"])  # one JSON object per request
    assert {"requestId", "ip", "routeKey", "status", "caller"} <= set(line)
    assert all(v.startswith("$context.") for v in line.values())
    # and the throttling that protects the front door stays
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRate"}



# ------------------------------------------------------------------ the front door: HTTP API or REST API


def condition(name: str, params: dict[str, str], template: dict) -> bool:
    """A condition as CloudFormation evaluates it for these parameters (the template's defaults
    for the rest), through tmctl's own evaluator."""
    from tmctl.core.render import condition as evaluate

    values = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v} | params
    return evaluate(name, values, template["Conditions"])


def deployed(template: dict, params: dict[str, str]) -> set[str]:
    """The logical ids CloudFormation creates for these parameters."""
    return {name for name, res in template["Resources"].items()
            if "Condition" not in res or condition(res["Condition"], params, template)}


def api_resources(template: dict, prefix: str) -> set[str]:
    return {name for name, res in template["Resources"].items() if res["Type"].startswith(prefix)}


REST_METHODS = ("CreateTaskMethod", "ListTasksMethod", "GetTaskMethod", "TasksFallbackMethod", "TaskFallbackMethod",
                "RootFallbackMethod", "ProxyFallbackMethod", "TaskProxyFallbackMethod")


def test_the_front_door_defaults_to_the_http_api(template):
    param = template["Parameters"]["FrontDoor"]
    assert (param["Type"], param["Default"], param["AllowedValues"]) == ("String", "http", ["http", "rest"])
    assert param["Description"]
    assert template["Outputs"]["FrontDoor"]["Value"] == {"Ref": "FrontDoor"}


@pytest.mark.parametrize("params", [{}, {"FrontDoor": "http"}, {"FrontDoor": "http", "ApiAuth": "NONE"}])
def test_an_http_front_door_deploys_the_http_api_and_nothing_of_the_rest_api(template, params):
    http, rest = api_resources(template, "AWS::ApiGatewayV2::"), api_resources(template, "AWS::ApiGateway::")
    created = deployed(template, params)

    # Everything of today's default deploy (the JWT authorizer only with JWT, as before), none of REST
    assert http - {"JwtAuthorizer"} <= created and "JwtAuthorizer" not in created
    assert not rest & created
    assert {"ApiAccessLogGroup", "TaskApiInvokePermission"} <= created


@pytest.mark.parametrize("auth", ["NONE", "AWS_IAM"])
def test_a_rest_front_door_deploys_the_rest_api_and_nothing_of_the_http_api(template, auth):
    params = {"FrontDoor": "rest", "ApiAuth": auth}
    http, rest = api_resources(template, "AWS::ApiGatewayV2::"), api_resources(template, "AWS::ApiGateway::")
    created = deployed(template, params)
    other_auth = "RestApiDeploymentOpen" if auth == "AWS_IAM" else "RestApiDeploymentSigned"

    assert rest - {other_auth} <= created and other_auth not in created and not http & created
    assert {"ApiAccessLogGroup", "TaskApiInvokePermission"} <= created
    # The stage-account singleton is never the stack's (tmctl's preflight checks it instead)
    assert "AWS::ApiGateway::Account" not in {r["Type"] for r in template["Resources"].values()}
    # Every output names the chosen API
    assert resolve(template["Outputs"]["ApiId"]["Value"], params, template) == {"Ref": "RestApi"}
    assert resolve(template["Outputs"]["ApiStageName"]["Value"], params, template) == {"Ref": "RestApiStage"}
    endpoint = resolve(template["Outputs"]["ApiEndpoint"]["Value"], params, template)
    assert sub_text(endpoint) == "https://${RestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${RestApiStage}"
    source = template["Resources"]["TaskApiInvokePermission"]["Properties"]["SourceArn"]["Fn::Sub"]
    assert source[0].endswith(":${ApiId}/${Stage}/*")
    assert resolve(source[1]["ApiId"], params, template) == {"Ref": "RestApi"}
    assert resolve(source[1]["ApiId"], {}, template) == {"Ref": "HttpApi"}


def test_the_rest_front_door_refuses_jwt_before_anything_is_created(template):
    rule = template["Rules"]["RestFrontDoorTakesNoJwt"]

    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "FrontDoor"}, "rest"]}
    [assertion] = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiAuth"}, "JWT"]}]}
    assert "AWS_IAM or NONE" in assertion["AssertDescription"] and "\n" not in assertion["AssertDescription"].strip()


@pytest.mark.parametrize("auth", ["NONE", "AWS_IAM"])
def test_every_rest_method_takes_the_chosen_authorization_and_proxies_to_the_task_api(template, auth):
    methods = {name for name, res in template["Resources"].items() if res["Type"] == "AWS::ApiGateway::Method"}
    assert methods == set(REST_METHODS)
    for name in REST_METHODS:
        props = template["Resources"][name]["Properties"]
        assert resolve(props["AuthorizationType"], {"ApiAuth": auth, "FrontDoor": "rest"}, template) == auth, name
        integration = props["Integration"]
        assert (integration["Type"], integration["IntegrationHttpMethod"], integration["TimeoutInMillis"]) == (
            "AWS_PROXY", "POST", 12000), name
        assert "${TaskApiFunction.Arn}/invocations" in sub_text(integration["Uri"]), name
    # The same routes as the HTTP API's, and a fallback (ANY) wherever the HTTP API's $default catches
    by_route = {(template["Resources"][n]["Properties"]["ResourceId"].get("Ref")
                 or template["Resources"][n]["Properties"]["ResourceId"]["Fn::GetAtt"],
                 template["Resources"][n]["Properties"]["HttpMethod"]) for n in REST_METHODS}
    assert by_route == {("RestTasksResource", "POST"), ("RestTasksResource", "GET"), ("RestTaskResource", "GET"),
                        ("RestTasksResource", "ANY"), ("RestTaskResource", "ANY"), ("RestApi.RootResourceId", "ANY"),
                        ("RestProxyResource", "ANY"), ("RestTaskProxyResource", "ANY")}
    assert template["Resources"]["RestProxyResource"]["Properties"]["PathPart"] == "{proxy+}"
    assert template["Resources"]["RestTaskProxyResource"]["Properties"] == {
        "RestApiId": {"Ref": "RestApi"}, "ParentId": {"Ref": "RestTaskResource"}, "PathPart": "{proxy+}"}
    # Each deployment is taken after every method exists
    deployments = ("RestApiDeploymentOpen", "RestApiDeploymentSigned")
    assert {d: set(template["Resources"][d]["DependsOn"]) for d in deployments} == dict.fromkeys(
        deployments, set(REST_METHODS))


def test_changing_api_auth_on_a_rest_stage_moves_it_to_a_new_deployment(template):
    """A REST stage serves the snapshot its deployment took; the methods' AuthorizationType follows ApiAuth, so
    a switch of ApiAuth must create another deployment and point the stage at it (else AWS keeps the old auth)."""
    active = {}
    for auth in ("NONE", "AWS_IAM"):
        params = {"FrontDoor": "rest", "ApiAuth": auth}
        deployments = {n for n in deployed(template, params)
                       if template["Resources"][n]["Type"] == "AWS::ApiGateway::Deployment"}
        assert len(deployments) == 1, deployments
        [active[auth]] = deployments
        stage = template["Resources"]["RestApiStage"]["Properties"]["DeploymentId"]
        assert resolve(stage, params, template) == {"Ref": active[auth]}
    assert active["NONE"] != active["AWS_IAM"]
    assert not {n for n in deployed(template, {"FrontDoor": "http", "ApiAuth": "AWS_IAM"})
                if template["Resources"][n]["Type"] == "AWS::ApiGateway::Deployment"}


def test_the_rest_stage_throttles_and_logs_like_the_http_stage(template):
    rest = template["Resources"]["RestApiStage"]["Properties"]
    http = template["Resources"]["ApiStage"]["Properties"]

    assert rest["StageName"] == {"Ref": "Stage"}
    assert rest["MethodSettings"] == [{"ResourcePath": "/*", "HttpMethod": "*",
                                       "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
                                       "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"}}]
    assert rest["AccessLogSetting"]["DestinationArn"] == http["AccessLogSettings"]["DestinationArn"]
    rest_line = json.loads(rest["AccessLogSetting"]["Format"])
    http_line = json.loads(http["AccessLogSettings"]["Format"])
    assert set(rest_line) == set(http_line)  # one log group, one shape of line, whichever the door
    assert rest_line["routeKey"] == "$context.resourcePath"
    assert all(v.startswith("$context.") for v in rest_line.values())
    assert "Condition" not in template["Resources"]["ApiAccessLogGroup"]


# ------------------------------------------------------------------ the roles' permissions boundary

BOUNDARY_ARN = "arn:aws:iam::123456789012:policy/taskmanager-pipeline-RoleBoundaryPolicy-1A2B3C4D5E6F"


def test_every_role_carries_the_permissions_boundary_when_given(template):
    # The pipeline's build may create roles only with its boundary (pipeline.yaml): a role
    # without it would fail the deploy; local stages and manual deploys give none.
    roles = resources(template, "AWS::IAM::Role")

    assert set(roles) == {"TaskApiRole", "EventProcessorRole", "WorkflowStepsRole", "StateMachineRole"}
    for name, role in roles.items():
        boundary = role["Properties"].get("PermissionsBoundary")
        assert resolve(boundary, {"RolePermissionsBoundary": BOUNDARY_ARN}, template) == BOUNDARY_ARN, name
        assert resolve(boundary, {}, template) is None, name
        # inline policies only: the build is not granted iam:AttachRolePolicy
        assert "ManagedPolicyArns" not in role["Properties"], name


@pytest.mark.parametrize(("value", "ok"), [
    ("", True), (BOUNDARY_ARN, True), ("arn:aws-us-gov:iam::123456789012:policy/path/boundary", True),
    ("arn:aws:iam::123456789012:role/admin", False), ("arn:aws:iam::aws:policy/AdministratorAccess", False),
    ("boundary", False),
])
def test_the_boundary_parameter_takes_a_managed_policy_arn_or_nothing(template, value, ok):
    param = template["Parameters"]["RolePermissionsBoundary"]

    assert param["Default"] == ""
    assert bool(re.fullmatch(param["AllowedPattern"], value)) is ok

CHECKOV_SKIP_IDS = {"CKV_AWS_27", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_119", "CKV_AWS_158", "CKV_AWS_173",
                    "CKV_AWS_73", "CKV_AWS_120"}  # the last two: the REST stage (X-Ray, caching)


def test_every_checkov_skip_carries_a_reason(template):
    # checkov runs in CI (.ci/run); a skip without a reason is an unexplained failed check
    skips = [(name, s) for name, res in template["Resources"].items()
             for s in res.get("Metadata", {}).get("checkov", {}).get("skip", [])]

    assert skips, "no skips found: the walk is broken"
    for name, skip in skips:
        assert skip["id"] in CHECKOV_SKIP_IDS, f"{name}: new skip {skip['id']} (explain it, then add it here)"
        assert len(skip.get("comment", "").split()) >= 8, f"{name}: {skip['id']} needs a reason"
