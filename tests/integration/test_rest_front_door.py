"""The REST front door (FrontDoor=rest), on the embedded emulator: the stack's own
template with an API Gateway REST API (v1) instead of the HTTP API, as an engine
without API Gateway v2 gets it (LocalStack's free plan and community core). A
stage of its own beside the session's (`rest_env`), and one with ApiAuth=AWS_IAM.

What it shows: the seed's request as tmctl up prints it (curl) is accepted and the
task completes; `tmctl verify` passes; the failure path (poison → DEAD_LETTERED,
message in the DLQ) and a redrive after the fix end COMPLETED; answers conform
to cloudformation/openapi.yaml, the API's own JSON 404/405 included (the REST
API's ANY fallbacks, as the HTTP API's $default); an IAM stage refuses unsigned
requests and takes tmctl's signed ones. The contract fuzz runs here too
(tests/integration/test_contract_fuzz.py)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from tests.integration.conftest import FAILURE_RULES, REST_PARAMS, another_stage, uid, wait_for
from tests.integration.openapi import assert_conforms, document
from tmctl.cli.app import app
from tmctl.core.api import ok, task_api
from tmctl.core.up import bring_up

pytestmark = [pytest.mark.integration,
              pytest.mark.needs("apigateway", "lambda", "cloudformation", "dynamodb", "sqs", "stepfunctions", "ssm")]

CONFIG_CACHE_SECONDS = int(REST_PARAMS["ConfigCacheSeconds"])


def cli(env, *args: str):
    return CliRunner().invoke(app, [*args, "--output", "json"], env=env.cli_env)


def final_task(env, task_id: str, timeout: float = 30.0) -> dict:
    return wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") in {"COMPLETED", "FAILED"},
                    timeout=timeout)


def send(url: str, method: str, body: bytes | None = None, headers: dict | None = None):
    """One plain request, no retries: (status, headers, JSON body)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:  # noqa: S310 - the emulator on 127.0.0.1
            return resp.status, resp.headers, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read() or b"{}")


def assert_error_body(body: dict) -> None:
    schema = {**document()["components"]["schemas"]["Error"], "components": document()["components"]}
    assert not [e.message for e in Draft202012Validator(schema).iter_errors(body)]


def test_the_stack_says_which_door_it_has(rest_env):
    outputs = rest_env.stack.outputs
    assert outputs["FrontDoor"] == "rest" and outputs["ApiAuth"] == "NONE"
    # The API id is the REST API's: the emulator's v1 service knows it, and its stage is the stage
    apigw = rest_env.clients.client("apigateway")
    stage = apigw.get_stage(restApiId=outputs["ApiId"], stageName=outputs["ApiStageName"])
    assert stage["stageName"] == rest_env.target.stage
    assert stage["methodSettings"]["*/*"]["throttlingRateLimit"] == 500.0  # ApiThrottleRate's default
    assert outputs["ApiEndpoint"] == (f"https://{outputs['ApiId']}.execute-api.us-east-1.amazonaws.com/"
                                      f"{rest_env.target.stage}")


def test_the_seeds_curl_is_accepted_and_the_task_completes(rest_env):
    from tmctl.cli.stack import _try_it  # the line `tmctl up` prints: what a newcomer pastes

    line = _try_it(rest_env.stack, rest_env.target)
    assert line.startswith("try: curl ")
    argv = shlex.split(line.removeprefix("try: "))
    # Its own taskID (the printed one is the seed's task-173, which the contract fuzz may post on this
    # stage too, and which must then be new there)
    seed = json.loads(argv[argv.index("-d") + 1])
    assert list(seed) == ["taskID"]
    task_id = uid("task")
    argv[argv.index("-d") + 1] = json.dumps({"taskID": task_id}, separators=(",", ":"))

    # WHEN it is sent as printed (curl itself where the machine has it)
    if shutil.which("curl"):
        done = subprocess.run([*argv, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30, check=True)
        body, status = done.stdout.rsplit("\n", 1)
        status, body = int(status), json.loads(body)
    else:
        status, _, body = send(argv[argv.index("POST") + 1], "POST", argv[argv.index("-d") + 1].encode(),
                               {"content-type": "application/json"})

    # THEN the REST door accepts it in the documented shape, and the workflow completes it
    assert status == 202, body
    assert body["taskID"] == task_id
    assert_conforms("POST", "/tasks", 202, body)
    assert final_task(rest_env, task_id)["status"] == "COMPLETED"


def test_verify_passes_through_the_rest_door(rest_env):
    result = cli(rest_env, "verify", "--stage", rest_env.target.stage)

    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)["checks"]
    assert checks and all(c["passed"] for c in checks), checks


@pytest.mark.parametrize(("method", "path", "status", "code", "allow"), [
    ("DELETE", "/tasks", 405, "METHOD_NOT_ALLOWED", "GET, POST"),
    ("PUT", "/tasks/task-173", 405, "METHOD_NOT_ALLOWED", "GET"),
    ("GET", "/tasks/no-such-task", 404, "NOT_FOUND", None),
    ("GET", "/nothing/here", 404, "NOT_FOUND", None),
    ("GET", "/", 404, "NOT_FOUND", None),
    ("PATCH", "/tasks/a/b", 404, "NOT_FOUND", None),
])
def test_unknown_methods_and_paths_get_the_apis_own_json_errors(rest_env, method, path, status, code, allow):
    # The explicit methods win over each resource's ANY; the rest reach the function, as on the HTTP API
    got, headers, body = send(rest_env.stack.api_url + path, method)

    assert (got, body.get("error")) == (status, code), body
    assert headers.get("Allow") == allow
    # The document's Error body, whether or not the document has the path (its 404 where it does)
    assert_error_body(body)
    if path == "/tasks/no-such-task":
        assert_conforms("GET", "/tasks/{taskID}", 404, body)


def test_bad_input_is_refused_the_same_way(rest_env):
    for body, content_type, status, code in [
        (b"{not json", "application/json", 400, "MALFORMED_JSON"),
        (b'{"taskID": "ok-1", "owner": "me"}', "application/json", 400, "UNKNOWN_FIELD"),
        (b"taskID=task-1", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (json.dumps({"description": "d" * 17000}).encode(), "application/json", 413, "PAYLOAD_TOO_LARGE"),
    ]:
        got, _, answer = send(rest_env.stack.api_url + "/tasks", "POST", body, {"content-type": content_type})
        assert (got, answer["error"]) == (status, code), answer
        assert_conforms("POST", "/tasks", status, answer)
    # a vendor JSON type, and the listing, as on the HTTP API
    task_id = uid("vnd")
    got, _, answer = send(rest_env.stack.api_url + "/tasks", "POST", json.dumps({"taskID": task_id}).encode(),
                          {"content-type": "application/vnd.tasks+json"})
    assert got == 202, answer
    listed = ok(rest_env.api.list(limit=100))
    assert_conforms("GET", "/tasks", 200, listed)
    got, _, answer = send(rest_env.stack.api_url + "/tasks?limit=0", "GET")
    assert (got, answer["error"]) == (400, "VALIDATION_ERROR")


def test_a_poison_task_is_dead_lettered_then_redriven_after_the_fix(rest_env):
    # GIVEN a task whose event the processor keeps failing (this test's own rule)
    task_id = uid("restsick")
    rest_env.set_failure_rules([*FAILURE_RULES, {"at": "processor", "match": task_id}])
    time.sleep(CONFIG_CACHE_SECONDS + 0.2)
    try:
        assert rest_env.api.create({"taskID": task_id, "title": "sick at first"}).status == 202

        # THEN it is dead-lettered: the task says so and its message sits in the DLQ
        task = wait_for(lambda: rest_env.api.get(task_id).body, lambda t: t.get("status") == "DEAD_LETTERED")
        assert task["status"] == "DEAD_LETTERED" and task["error"]["code"] == "InjectedFailure"

        def in_dlq() -> bool:
            peek = cli(rest_env, "dlq", "peek", "-n", "100")
            assert peek.exit_code == 0, peek.output
            return task_id in {m["task_id"] for m in json.loads(peek.stdout)["messages"]}

        assert wait_for(in_dlq, bool, timeout=10)
    finally:
        # WHEN the cause is fixed
        rest_env.set_failure_rules(FAILURE_RULES)
    time.sleep(CONFIG_CACHE_SECONDS + 0.2)

    # AND the DLQ redriven (just this task)
    redrive = cli(rest_env, "dlq", "redrive", "--task-id", task_id, "--yes")
    assert redrive.exit_code == 0, redrive.output
    assert json.loads(redrive.stdout)["moved"] == 1

    # THEN it runs to COMPLETED, its history telling the whole story, read through the REST door
    done = final_task(rest_env, task_id)
    assert done["status"] == "COMPLETED", done
    assert [h["step"] for h in done["history"]] == [
        "created", "queued", "dead-lettered", "redriven", "started", "validate", "enrich", "process"]
    assert_conforms("GET", "/tasks/{taskID}", 200, done)
    assert not in_dlq()


@pytest.fixture(scope="module")
def rest_iam_stage(rest_env):
    stage = rest_env.target.stage.replace("itrest", "itrestiam")
    with another_stage(rest_env.target, stage, {**REST_PARAMS, "ApiAuth": "AWS_IAM"}, warm=False) as deployed:
        yield deployed


def test_an_iam_rest_stage_refuses_unsigned_requests_and_takes_tmctls_signed_ones(rest_iam_stage):
    clients, stack = rest_iam_stage
    assert (stack.outputs["ApiAuth"], stack.outputs["FrontDoor"]) == ("AWS_IAM", "rest")

    # WHEN the seed's request is sent unsigned, as curl would; and an unknown path (the ANY fallbacks are guarded too)
    refused, _, body = send(stack.api_url + "/tasks", "POST", json.dumps({"taskID": "task-173"}).encode(),
                            {"Content-Type": "application/json"})
    elsewhere, _, _ = send(stack.api_url + "/nothing", "GET")

    # THEN the gateway refuses both before the function runs, as the OpenAPI document says
    assert (refused, elsewhere) == (403, 403)
    assert_conforms("POST", "/tasks", 403, body)

    # WHEN tmctl sends it, choosing the client from the stack's outputs
    api = task_api(stack, clients.session)
    assert api.signer is not None
    created = ok(api.create({"taskID": "task-173"}))

    # THEN it is accepted and readable, signed
    assert created["taskID"] == "task-173"
    assert ok(api.get("task-173"))["taskID"] == "task-173"


def test_switching_api_auth_on_a_rest_stage_really_closes_and_opens_it(rest_env):
    """The REST stage serves its deployment's snapshot: ApiAuth NONE → AWS_IAM must move it to a deployment
    whose methods want a signature (one deployment per ApiAuth), and back."""
    stage = rest_env.target.stage.replace("itrest", "itrestsw")
    seed = json.dumps({"taskID": "task-173"}).encode()
    with another_stage(rest_env.target, stage, REST_PARAMS, warm=False) as (clients, stack):
        assert send(stack.api_url + "/tasks", "POST", seed, {"Content-Type": "application/json"})[0] == 202

        closed = bring_up(clients, clients.target, overrides={**REST_PARAMS, "ApiAuth": "AWS_IAM"}, warm=False)
        assert closed.stack.outputs["ApiAuth"] == "AWS_IAM" and closed.stack.api_url == stack.api_url
        assert send(stack.api_url + "/tasks", "POST", seed, {"Content-Type": "application/json"})[0] == 403
        assert ok(task_api(closed.stack, clients.session).get("task-173"))["taskID"] == "task-173"

        bring_up(clients, clients.target, overrides=REST_PARAMS, warm=False)
        assert send(stack.api_url + "/tasks/task-173", "GET")[0] == 200
