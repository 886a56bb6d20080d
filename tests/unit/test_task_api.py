"""Task API handler, driven through handler(event, context) with real HTTP API
payload 2.0 events (tests/events) against moto DynamoDB + SQS built from the
template."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from botocore.exceptions import EndpointConnectionError
from taskcore.model import WORKFLOW_FIELDS

pytestmark = pytest.mark.unit

SEED_BODY = b'{"taskID":"task-173"}'


@pytest.fixture
def call(task_api, lambda_context):
    """Invoke the handler; return (status, decoded JSON body, headers)."""

    def invoke(event: dict) -> tuple[int, dict, dict]:
        resp = task_api.handler(event, lambda_context)
        return resp["statusCode"], json.loads(resp["body"]) if resp.get("body") else {}, resp.get("headers", {})

    return invoke


@pytest.fixture
def post_event(load_event):
    """The real POST event with another body (base64, as the sample is)."""

    def make(body: bytes | str, content_type: str | None = "application/json") -> dict:
        event = load_event("http_api_v2_post_task")
        data = body.encode() if isinstance(body, str) else body
        event["body"] = base64.b64encode(data).decode()
        event["headers"]["content-length"] = str(len(data))
        if content_type is None:
            del event["headers"]["content-type"]
        else:
            event["headers"]["content-type"] = content_type
        return event

    return make


@pytest.fixture
def get_event(load_event):
    def make(task_id: str) -> dict:
        event = load_event("http_api_v2_get_task")
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/dev/tasks/{task_id}"
        event["pathParameters"] = {"taskID": task_id}
        return event

    return make


@pytest.fixture
def list_event(load_event):
    def make(**query: str) -> dict:
        event = load_event("http_api_v2_list_tasks")
        event["rawQueryString"] = urllib.parse.urlencode(query)
        if query:
            event["queryStringParameters"] = dict(query)
        else:
            del event["queryStringParameters"]  # AWS omits the key when there is no query
        return event

    return make


def received_bodies(stack) -> list[dict]:
    msgs = stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10,
                                     MessageAttributeNames=["All"]).get("Messages", [])
    return [{**json.loads(m["Body"]), "_id": m["MessageId"], "_attrs": m.get("MessageAttributes", {})}
            for m in msgs]


# ------------------------------------------------------------------ POST /tasks


def test_post_sample_event_stores_queues_and_publishes(call, load_event, stack):
    # GIVEN the real POST event: base64 body {"taskID":"task-173"} on stage "dev"
    event = load_event("http_api_v2_post_task")

    # WHEN the handler runs
    status, body, headers = call(event)

    # THEN the task is accepted and QUEUED (its event is on the queue)
    assert status == 202
    assert body["taskID"] == "task-173" and body["status"] == "QUEUED"
    assert body["title"] == "task-173" and body["priority"] == "MEDIUM"
    assert "requestHash" not in body
    assert headers["Content-Type"] == "application/json"
    assert headers["Location"] == "tasks/task-173"  # relative: right under any stage prefix

    item = stack.get_item("task-173")
    assert item["status"] == "QUEUED" and "error" not in item

    messages = received_bodies(stack)
    assert len(messages) == 1
    message = messages[0]
    assert {k: message[k] for k in ("type", "version", "taskID")} == {
        "type": "TaskCreated", "version": 1, "taskID": "task-173"}
    # the event carries what the workflow needs, so the processor need not read the table
    assert message["task"] == {k: item[k] for k in WORKFLOW_FIELDS if k in item}
    assert message["_attrs"]["taskID"]["StringValue"] == "task-173"

    # The history links the task to the exact SQS message that carries it
    assert [h["step"] for h in item["history"]] == ["created", "queued"]
    assert item["history"][1]["outcome"] == "ok"
    assert item["history"][1]["detail"] == message["_id"]
    assert body["history"] == item["history"]


def test_identical_replay_answers_202_and_does_not_publish_again(call, load_event, stack):
    # GIVEN a task already accepted and QUEUED
    first_status, first, _ = call(load_event("http_api_v2_post_task"))
    assert first_status == 202

    # WHEN the client retries the identical request (e.g. after a timeout)
    status, body, _ = call(load_event("http_api_v2_post_task"))

    # THEN it gets the same answer, and the workflow is not triggered twice
    assert status == 202
    assert body == first
    assert stack.queue_depth() == 1
    assert [h["step"] for h in stack.get_item("task-173")["history"]] == ["created", "queued"]


def test_same_task_id_with_another_body_is_a_conflict(call, post_event, stack):
    assert call(post_event(SEED_BODY))[0] == 202

    status, body, _ = call(post_event(b'{"taskID":"task-173","priority":"URGENT"}'))

    assert status == 409
    assert body["error"] == "CONFLICT"
    # The stored task is the first one, untouched
    assert stack.get_item("task-173")["priority"] == "MEDIUM"
    assert stack.queue_depth() == 1


@pytest.mark.parametrize(("raw", "content_type", "want_status", "want_code"), [
    (b'{"taskID": "task-1",', "application/json", 400, "MALFORMED_JSON"),
    (b"", "application/json", 400, "MALFORMED_JSON"),
    (b"\xff\xfe\x00", "application/json", 400, "MALFORMED_JSON"),
    (b"<task><taskID>t1</taskID></task>", "text/xml", 415, "UNSUPPORTED_MEDIA_TYPE"),
    (b'{"taskID":"t1","colour":"red"}', "application/json", 400, "UNKNOWN_FIELD"),
    (b'{"taskID":"has space"}', "application/json", 400, "INVALID_TASK_ID"),
    (b'["t1"]', "application/json", 400, "VALIDATION_ERROR"),
    (b'{"taskID":"t1","priority":"SOON"}', "application/json; charset=utf-8", 400, "VALIDATION_ERROR"),
])
def test_bad_requests_are_refused_with_a_code_and_nothing_stored(call, post_event, stack, raw, content_type,
                                                                 want_status, want_code):
    status, body, _ = call(post_event(raw, content_type))

    assert (status, body["error"]) == (want_status, want_code)
    assert body["message"]
    assert stack.ddb.scan(TableName=stack.table)["Count"] == 0
    assert stack.queue_depth() == 0


def test_body_over_16_kib_is_refused_with_413(call, post_event, stack):
    # GIVEN valid JSON just over the limit (a long description would pass
    # model checks only if the size check were missing)
    body = json.dumps({"taskID": "big", "description": "x" * (16 * 1024)}).encode()
    assert len(body) > 16 * 1024

    status, resp, _ = call(post_event(body))

    assert (status, resp["error"]) == (413, "PAYLOAD_TOO_LARGE")
    assert stack.get_item("big") is None


def test_body_that_is_not_base64_when_flagged_so_is_refused(call, load_event):
    event = load_event("http_api_v2_post_task")
    event["body"] = "not base64!"

    status, body, _ = call(event)

    assert (status, body["error"]) == (400, "MALFORMED_BODY")


def test_plain_text_body_without_content_type_is_accepted(call, load_event):
    # Not every client sends a Content-Type; a JSON body is still a JSON body.
    event = load_event("http_api_v2_post_task")
    del event["headers"]["content-type"]
    event["isBase64Encoded"] = False
    event["body"] = '{"taskID":"task-plain"}'

    status, body, _ = call(event)

    assert (status, body["taskID"], body["status"]) == (202, "task-plain", "QUEUED")


# ------------------------------------------------------------------ publish failure and recovery


def test_publish_failure_is_503_then_a_replay_recovers(call, load_event, stack):
    # GIVEN the queue is gone (deleted, or SQS unavailable) when the task is created
    stack.sqs.delete_queue(QueueUrl=stack.queue_url)

    # WHEN the client posts
    status, body, _ = call(load_event("http_api_v2_post_task"))

    # THEN it is told to retry, and the task is stored but still PENDING with the reason
    assert (status, body["error"]) == (503, "PUBLISH_FAILED")
    stored = stack.get_item("task-173")
    assert stored["status"] == "PENDING"
    assert stored["error"]["code"] == "PUBLISH_FAILED"

    # WHEN the queue is back and the client repeats the same request
    stack.create_queue("TaskQueue")
    status, body, _ = call(load_event("http_api_v2_post_task"))

    # THEN the dual write completes: one message, QUEUED, the old error cleared
    assert status == 202
    assert body["status"] == "QUEUED"
    recovered = stack.get_item("task-173")
    assert recovered["status"] == "QUEUED" and "error" not in recovered
    assert [h["step"] for h in recovered["history"]] == ["created", "queued"]
    assert stack.queue_depth() == 1


class UnreachableSqs:
    """An SQS client whose endpoint cannot be reached (a BotoCoreError, not a ClientError)."""

    def send_message(self, **_kwargs):
        raise EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com/")


def test_unreachable_queue_endpoint_is_also_publish_failed(task_api, call, load_event, stack):
    task_api._service.sqs = UnreachableSqs()

    status, body, _ = call(load_event("http_api_v2_post_task"))

    assert (status, body["error"]) == (503, "PUBLISH_FAILED")
    assert stack.get_item("task-173")["error"]["code"] == "PUBLISH_FAILED"


# ------------------------------------------------------------------ GET /tasks/{taskID}


def test_location_header_resolves_to_the_task_on_a_named_stage(call, load_event):
    event = load_event("http_api_v2_post_task")
    request_url = "https://" + event["requestContext"]["domainName"] + event["rawPath"]

    _, _, headers = call(event)

    assert urllib.parse.urljoin(request_url, headers["Location"]).endswith("/dev/tasks/task-173")


def test_get_existing_task_hides_the_request_hash(call, load_event, stack):
    call(load_event("http_api_v2_post_task"))
    assert "requestHash" in stack.get_item("task-173")  # stored, so hiding it is the view's doing

    status, body, _ = call(load_event("http_api_v2_get_task"))

    assert status == 200
    assert body["taskID"] == "task-173" and body["status"] == "QUEUED"
    assert "requestHash" not in body


def test_get_missing_task_is_404(call, load_event):
    status, body, _ = call(load_event("http_api_v2_get_task"))

    assert (status, body["error"]) == (404, "NOT_FOUND")
    assert "task-173" in body["message"]


def test_get_with_an_impossible_task_id_is_400(call, get_event):
    status, body, _ = call(get_event("x" * 65))

    assert (status, body["error"]) == (400, "INVALID_TASK_ID")


def test_unrouted_path_is_a_json_404(call, get_event):
    event = get_event("task-173")
    event["rawPath"] = "/dev/nothing-here"

    status, body, _ = call(event)

    assert (status, body["error"]) == (404, "NOT_FOUND")


# ------------------------------------------------------------------ GET /tasks


def create_tasks(call, post_event, *task_ids: str) -> None:
    for task_id in task_ids:
        assert call(post_event(json.dumps({"taskID": task_id})))[0] == 202


def test_list_sample_event_filters_by_status_and_pages(call, post_event, load_event, stack):
    # GIVEN three QUEUED tasks and one that already COMPLETED
    create_tasks(call, post_event, "t-a", "t-b", "t-c")
    done = {**stack.get_item("t-a"), "taskID": "t-done", "status": "COMPLETED"}
    stack.put_item(done)

    # WHEN listing QUEUED tasks two at a time (the sample event: status=QUEUED&limit=2)
    status, first, _ = call(load_event("http_api_v2_list_tasks"))

    # THEN a full page and a token come back
    assert status == 200
    assert len(first["items"]) == 2
    assert "nextToken" in first

    # WHEN the token is followed
    event = load_event("http_api_v2_list_tasks")
    event["queryStringParameters"]["nextToken"] = first["nextToken"]
    event["rawQueryString"] = urllib.parse.urlencode(event["queryStringParameters"])
    status, second, _ = call(event)

    # THEN the rest arrives, with no token, no repeats and no other status
    assert status == 200
    assert "nextToken" not in second
    listed = [i["taskID"] for i in first["items"] + second["items"]]
    assert sorted(listed) == ["t-a", "t-b", "t-c"]
    assert all(i["status"] == "QUEUED" and "requestHash" not in i for i in first["items"] + second["items"])
    # newest first within a status
    created = [i["createdAt"] for i in first["items"] + second["items"]]
    assert created == sorted(created, reverse=True)


def test_list_without_filter_scans_every_task_across_pages(call, post_event, list_event):
    create_tasks(call, post_event, "t-a", "t-b", "t-c")

    seen, token, pages = [], None, 0
    while True:
        query = {"limit": "2", **({"nextToken": token} if token else {})}
        status, page, _ = call(list_event(**query))
        assert status == 200
        seen += [i["taskID"] for i in page["items"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
        assert pages < 5, "pagination never ended"

    assert sorted(seen) == ["t-a", "t-b", "t-c"]
    assert pages >= 2


def test_forged_token_with_plain_values_is_400_not_a_crash(call, list_event):
    forged = base64.urlsafe_b64encode(json.dumps({"taskID": "t-a"}).encode()).decode()

    status, body, _ = call(list_event(nextToken=forged))

    assert (status, body["error"]) == (400, "INVALID_TOKEN")


def test_list_with_no_query_uses_defaults(call, post_event, list_event):
    create_tasks(call, post_event, "t-a")

    status, body, _ = call(list_event())

    assert status == 200
    assert [i["taskID"] for i in body["items"]] == ["t-a"]


@pytest.mark.parametrize("token", [
    "not-a-token!!",
    base64.urlsafe_b64encode(b'{"nope": 1}').decode(),
    base64.urlsafe_b64encode(b"[1, 2]").decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_bad_next_token_is_400(call, list_event, token):
    status, body, _ = call(list_event(nextToken=token))

    assert (status, body["error"]) == (400, "INVALID_TOKEN")


@pytest.mark.parametrize("query", [
    {"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"limit": "-1"}, {"status": "DONE"},
])
def test_bad_limit_or_status_is_400(call, list_event, query):
    status, body, _ = call(list_event(**query))

    assert (status, body["error"]) == (400, "VALIDATION_ERROR")


def test_unknown_query_parameter_is_400(call, list_event):
    status, body, _ = call(list_event(limit="2", sort="asc"))

    assert (status, body["error"]) == (400, "UNKNOWN_FIELD")
    assert "sort" in body["message"]


def test_status_filter_is_case_insensitive(call, post_event, list_event):
    create_tasks(call, post_event, "t-a")

    status, body, _ = call(list_event(status="queued"))

    assert status == 200
    assert [i["taskID"] for i in body["items"]] == ["t-a"]


# ------------------------------------------------------------------ body limits at the edge (issue 9)


def nothing_stored(stack) -> bool:
    return stack.ddb.scan(TableName=stack.table)["Count"] == 0 and stack.queue_depth() == 0


@pytest.mark.parametrize(("raw", "want_code"), [
    (b"[" * 8000 + b"]" * 8000, "LIMIT_EXCEEDED"),  # 16,000 bytes: within the size limit, 8000 deep
    (b'{"a":' * 2500 + b'"x"' + b"}" * 2500, "LIMIT_EXCEEDED"),  # 15,003 bytes
    (b'{"taskID": "t1", "title": 1e400}', "LIMIT_EXCEEDED"),
    (b'{"taskID": "t1", "title": ' + b"7" * 5000 + b"}", "LIMIT_EXCEEDED"),
    (b'{"taskID": "t1", "title": NaN}', "MALFORMED_JSON"),
    (b'{"taskID": "t1", "title": "\\ud800"}', "MALFORMED_JSON"),
    (b'\xef\xbb\xbf{"taskID": "t1"}', "MALFORMED_JSON"),
    ('{"taskID": "t1"}'.encode("utf-16"), "MALFORMED_JSON"),
    ('{"taskID": "t1", "title": "été"}'.encode("latin-1"), "MALFORMED_JSON"),
    (b'{"taskID": "t1", "taskID": "t2"}', "DUPLICATE_FIELD"),
    (b'{"taskID": null}', "INVALID_TASK_ID"),
    (b'{"taskID": "t1", "title": null}', "VALIDATION_ERROR"),
    (b'{"taskID": "t1", "title": "nul \\u0000 inside"}', "VALIDATION_ERROR"),
])
def test_every_bad_body_is_a_400_with_a_code_and_nothing_stored(call, post_event, stack, raw, want_code):
    # GIVEN a body the edge refuses; WHEN posted (base64, as the gateway sends it)
    status, body, headers = call(post_event(raw))

    # THEN a JSON 400 with its code, and no item and no event
    assert (status, body["error"]) == (400, want_code), body
    assert body["message"] and headers["Content-Type"] == "application/json"
    assert nothing_stored(stack)


def test_a_deep_text_body_is_refused_too(call, load_event, stack):
    # The gateway passes application/json as text (isBase64Encoded false): the same limits apply.
    event = load_event("http_api_v2_post_task")
    event["isBase64Encoded"] = False
    event["body"] = "[" * 8000 + "]" * 8000

    status, body, _ = call(event)

    assert (status, body["error"]) == (400, "LIMIT_EXCEEDED")
    assert nothing_stored(stack)


def test_a_text_body_with_a_lone_surrogate_is_malformed_not_a_crash(call, load_event, stack):
    event = load_event("http_api_v2_post_task")
    event["isBase64Encoded"] = False
    event["body"] = '{"taskID": "t1", "title": "\ud800"}'  # the character itself, as a str event may carry

    status, body, _ = call(event)

    assert (status, body["error"]) == (400, "MALFORMED_JSON")
    assert nothing_stored(stack)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-16", "application/json;charset=latin-1",
                                          'application/json; charset="iso-8859-1"'])
def test_a_charset_other_than_utf8_is_415(call, post_event, stack, content_type):
    status, body, _ = call(post_event(b'{"taskID": "t1"}', content_type))

    assert (status, body["error"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert nothing_stored(stack)


@pytest.mark.parametrize("content_type", ["application/json; charset=UTF-8", 'application/json; charset="utf-8"',
                                          "application/json;charset=utf8"])
def test_utf8_charset_spellings_are_accepted(call, post_event, content_type):
    assert call(post_event(b'{"taskID": "t1"}', content_type))[0] == 202


def test_an_oversized_base64_body_is_413_before_it_is_decoded(call, load_event, stack):
    event = load_event("http_api_v2_post_task")
    event["body"] = "A" * (4 * 1024 * 1024)  # 3 MiB once decoded

    status, body, _ = call(event)

    assert (status, body["error"]) == (413, "PAYLOAD_TOO_LARGE")
    assert nothing_stored(stack)


def test_a_task_at_the_limits_is_accepted(call, post_event, stack):
    # Every field at its longest, with a description's own line breaks: nothing above refuses an honest task.
    body = {"taskID": "a" * 64, "title": "t" * 200, "description": "line\n" * 800, "priority": "urgent",
            "dueDate": "2099-12-31"}

    status, resp, _ = call(post_event(json.dumps(body)))

    assert status == 202, resp
    assert stack.get_item("a" * 64)["description"] == ("line\n" * 800).strip()


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("TRACE", "/dev/tasks", "GET, POST"),
    ("PUT", "/dev/tasks", "GET, POST"),
    ("DELETE", "/dev/tasks/task-173", "GET"),
    ("POST", "/dev/tasks/task-173", "GET"),
    ("PATCH", "/tasks/task-173", "GET"),  # the emulator's shape, without the stage
])
def test_an_undeclared_method_on_a_declared_path_is_405_with_allow(call, load_event, method, path, allow):
    # GIVEN a request only the $default route catches
    event = load_event("http_api_v2_get_task")
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event["requestContext"]["http"]["method"] = method
    event["rawPath"] = event["requestContext"]["http"]["path"] = path

    status, body, headers = call(event)

    assert (status, body["error"]) == (405, "METHOD_NOT_ALLOWED")
    assert headers["Allow"] == allow
    assert method in body["message"]


@pytest.mark.parametrize(("method", "path"), [("TRACE", "/dev/nothing"), ("GET", "/dev/tasks/a/b"),
                                              ("DELETE", "/dev/tasks/")])
def test_unknown_paths_stay_404_whatever_the_method(call, load_event, method, path):
    event = load_event("http_api_v2_get_task")
    event["requestContext"]["http"]["method"] = method
    event["rawPath"] = path

    status, body, headers = call(event)

    assert (status, body["error"]) == (404, "NOT_FOUND")
    assert "Allow" not in headers


def test_a_task_id_the_router_cannot_match_is_400_not_404(call, get_event):
    # The router's parameter pattern has no '"'; the route exists all the same.
    status, body, _ = call(get_event('ab"c'))

    assert (status, body["error"]) == (400, "INVALID_TASK_ID")


def test_an_unexpected_error_in_a_route_is_a_json_500(task_api, call, load_event):
    # GIVEN a bug: the service raises something no handler expects
    class Broken:
        def get(self, _task_id):
            raise KeyError("bug")

    task_api._service = Broken()

    status, body, _ = call(load_event("http_api_v2_get_task"))

    assert (status, body["error"]) == (500, "INTERNAL_ERROR")
    assert "KeyError" in body["message"]


def test_an_unexpected_error_outside_the_routes_is_a_json_500(task_api, call, load_event, monkeypatch):
    def explode(_event):
        raise RuntimeError("bug")

    monkeypatch.setattr(task_api, "with_stage_in_path", explode)

    status, body, headers = call(load_event("http_api_v2_get_task"))

    assert (status, body["error"]) == (500, "INTERNAL_ERROR")
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("token", [
    base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode(),  # would blow the parser's recursion
    base64.urlsafe_b64encode(b'{"taskID": {"S": "\\ud800"}}').decode(),  # a key DynamoDB cannot encode
    base64.urlsafe_b64encode(b'{"taskID": {"S": "a"}, "taskID": {"S": "b"}}').decode(),
    "ünïcode",
])
def test_hostile_next_tokens_are_400(call, list_event, token):
    status, body, _ = call(list_event(nextToken=token))

    assert (status, body["error"]) == (400, "INVALID_TOKEN")


@pytest.mark.parametrize("limit", [" 5", "+5", "1_0", "٥", "5.0", "1e1", ""])
def test_limit_must_be_plain_decimal_digits(call, list_event, limit):
    status, body, _ = call(list_event(limit=limit))

    assert (status, body["error"]) == (400, "VALIDATION_ERROR")


def test_status_that_only_unicode_folding_would_match_is_400(call, list_event):
    status, body, _ = call(list_event(status="fa\u0131led"))  # dotless i: "faıled".upper() == "FAILED"

    assert (status, body["error"]) == (400, "VALIDATION_ERROR")


# ------------------------------------------------------------------ stage handling and warm-up


def test_emulator_shape_without_stage_in_raw_path_routes_the_same(call, load_event, stack):
    # GIVEN an event as some emulators send it: stage "dev" but rawPath "/tasks"
    event = load_event("http_api_v2_post_task")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/tasks"

    # WHEN handled
    status, body, _ = call(event)

    # THEN it reaches POST /tasks as on AWS (without the fix Powertools would
    # strip "/dev" from "/tasks" and answer 404)
    assert (status, body["taskID"]) == (202, "task-173")

    get = load_event("http_api_v2_get_task")
    get["rawPath"] = "/tasks/task-173"
    assert call(get)[0] == 200


@pytest.mark.parametrize(("raw_path", "stage", "want"), [
    ("/tasks", "dev", "/dev/tasks"),  # emulator shape: stage added
    ("/dev/tasks", "dev", "/dev/tasks"),  # AWS shape: unchanged
    ("/dev", "dev", "/dev"),
    ("/development/tasks", "dev", "/dev/development/tasks"),  # a prefix is not the stage
    ("/tasks", "$default", "/tasks"),  # the $default stage is never in the path
])
def test_with_stage_in_path(task_api, raw_path, stage, want):
    event = {"rawPath": raw_path, "requestContext": {"stage": stage}}

    assert task_api.with_stage_in_path(event)["rawPath"] == want
    assert event["rawPath"] == raw_path  # the caller's event is not mutated


def test_warmup_event_answers_without_routing(task_api, lambda_context):
    assert task_api.handler({"warmup": True}, lambda_context) == {"warm": True}


def test_handler_module_reads_its_environment_from_the_template(task_api, stack):
    # The template's env vars flowed into the module: no drift in names
    assert (stack.table, stack.queue_url, "byStatus") == (task_api.TABLE, task_api.QUEUE_URL, task_api.STATUS_INDEX)
    assert task_api.STATUS_INDEX in {g["IndexName"] for g in stack.cfn.props("TasksTable")["GlobalSecondaryIndexes"]}


# ------------------------------------------------------------------ both front doors, one contract
# The template's FrontDoor parameter puts an HTTP API (payload 2.0) or a REST API
# (proxy payload 1.0) in front of the same function; each test below runs on both
# real event shapes (tests/events/http_api_v2_*, rest_api_v1_*).


class Door:
    """Builds requests of one event shape and reads its answers."""

    def __init__(self, kind: str, load_event):
        self.kind, self.load = kind, load_event

    def _event(self, name: str) -> dict:
        return self.load(f"{'http_api_v2' if self.kind == 'http' else 'rest_api_v1'}_{name}")

    def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None,
                base64_body: bool = False, query: dict | None = None) -> dict:
        """`path` after the stage ("/tasks/x"), as each door delivers it on AWS."""
        event = self._event("post_task" if body is not None else "get_task")
        headers = event["headers"] = {k: v for k, v in event["headers"].items()
                                      if k.lower() not in {"content-type", "content-length"}}
        if body is not None and content_type is not None:
            headers["content-type" if self.kind == "http" else "Content-Type"] = content_type
        event["body"] = None if body is None else (
            base64.b64encode(body).decode() if base64_body else body.decode("utf-8", "surrogatepass"))
        event["isBase64Encoded"] = base64_body
        if self.kind == "http":
            event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
            event["requestContext"]["http"]["method"] = method
            event["rawPath"] = event["requestContext"]["http"]["path"] = f"/dev{path}"
            event["rawQueryString"] = urllib.parse.urlencode(query or {})
            event.pop("pathParameters", None)
            if query:
                event["queryStringParameters"] = dict(query)
            else:
                event.pop("queryStringParameters", None)
        else:
            # The REST API's explicit methods or its ANY fallbacks: path after the stage, resource as matched.
            event["httpMethod"] = event["requestContext"]["httpMethod"] = method
            event["path"], event["requestContext"]["path"] = path, f"/dev{path}"
            event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
            event["queryStringParameters"] = dict(query) if query else None
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
            event["pathParameters"] = None
        return event

    @staticmethod
    def headers(resp: dict) -> dict:
        """The answer's headers, whichever way the resolver put them (REST: multiValueHeaders)."""
        return {**resp.get("headers", {}), **{k: ", ".join(v) for k, v in resp.get("multiValueHeaders", {}).items()}}


@pytest.fixture(params=["http", "rest"])
def door(request, load_event) -> Door:
    return Door(request.param, load_event)


@pytest.fixture
def answer(task_api, lambda_context):
    """Invoke the handler; return (status, decoded JSON body, headers) from either shape's response."""

    def invoke(event: dict) -> tuple[int, dict, dict]:
        resp = task_api.handler(event, lambda_context)
        return resp["statusCode"], json.loads(resp["body"]) if resp.get("body") else {}, Door.headers(resp)

    return invoke


@pytest.mark.parametrize("kind", ["http", "rest"])
def test_the_sample_events_of_each_door_create_get_and_list(answer, load_event, stack, kind):
    prefix = "http_api_v2" if kind == "http" else "rest_api_v1"

    status, created, headers = answer(load_event(f"{prefix}_post_task"))
    assert (status, created["taskID"], created["status"]) == (202, "task-173", "QUEUED")
    assert headers["Content-Type"] == "application/json" and headers["Location"] == "tasks/task-173"
    assert stack.get_item("task-173")["status"] == "QUEUED"

    status, got, _ = answer(load_event(f"{prefix}_get_task"))
    assert (status, got["taskID"]) == (200, "task-173") and "requestHash" not in got

    status, listed, _ = answer(load_event(f"{prefix}_list_tasks"))
    assert status == 200 and [t["taskID"] for t in listed["items"]] == ["task-173"]


def test_a_rest_event_keeps_its_path_the_stage_is_not_added(task_api, answer, load_event):
    # REST's `path` is after the stage (the stage is only in requestContext.path): no fix-up.
    event = load_event("rest_api_v1_post_task")
    assert task_api.is_rest_event(event) and not task_api.is_rest_event(load_event("http_api_v2_post_task"))

    assert answer(event)[0] == 202
    # The access line names the route either way: REST's method and resource, the HTTP API's route key
    assert task_api.route_of(load_event("rest_api_v1_get_task")) == "GET /tasks/{taskID}"
    assert task_api.route_of(load_event("http_api_v2_get_task")) == "GET /tasks/{taskID}"


@pytest.mark.parametrize("text_body", [True, False])
def test_the_seed_body_as_text_or_base64_is_accepted(door, answer, text_body):
    status, body, _ = answer(door.request("POST", "/tasks", body=b'{"taskID":"task-173"}',
                                          content_type="application/json", base64_body=not text_body))

    assert (status, body["taskID"], body["title"]) == (202, "task-173", "task-173")


@pytest.mark.parametrize(("raw", "content_type", "base64_body", "want_status", "want_code"), [
    (b"{not json", "application/json", False, 400, "MALFORMED_JSON"),
    (b"", "application/json", True, 400, "MALFORMED_JSON"),
    (b'{"taskID": "ok-1", "owner": "me"}', "application/json", False, 400, "UNKNOWN_FIELD"),
    (b"<task/>", "application/xml", False, 415, "UNSUPPORTED_MEDIA_TYPE"),
    (json.dumps({"description": "d" * 17000}).encode(), "application/json", False, 413, "PAYLOAD_TOO_LARGE"),
    (json.dumps({"description": "d" * 17000}).encode(), "application/json", True, 413, "PAYLOAD_TOO_LARGE"),
    (b"not base64!", "application/json", True, 400, "MALFORMED_BODY"),
])
def test_bad_bodies_get_the_same_json_4xx_on_both_doors(door, answer, stack, raw, content_type, base64_body,
                                                         want_status, want_code):
    event = door.request("POST", "/tasks", body=raw, content_type=content_type, base64_body=base64_body)
    if raw == b"not base64!":
        event["body"] = raw.decode()

    status, body, headers = answer(event)

    assert (status, body["error"]) == (want_status, want_code)
    assert body["message"] and headers["Content-Type"] == "application/json"
    assert stack.queue_depth() == 0


def test_get_and_list_answer_the_same_on_both_doors(door, answer):
    answer(door.request("POST", "/tasks", body=b'{"taskID":"t-1"}', content_type="application/json"))

    assert answer(door.request("GET", "/tasks/t-1"))[0] == 200
    status, body, _ = answer(door.request("GET", "/tasks/no-such"))
    assert (status, body["error"]) == (404, "NOT_FOUND")
    status, body, _ = answer(door.request("GET", "/tasks/" + "x" * 65))
    assert (status, body["error"]) == (400, "INVALID_TASK_ID")
    status, body, _ = answer(door.request("GET", "/tasks", query={"status": "queued", "limit": "1"}))
    assert status == 200 and [t["taskID"] for t in body["items"]] == ["t-1"]
    status, body, _ = answer(door.request("GET", "/tasks", query={"owner": "me"}))
    assert (status, body["error"]) == (400, "UNKNOWN_FIELD")


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/tasks", "GET, POST"), ("DELETE", "/tasks/task-173", "GET"), ("POST", "/tasks/task-173", "GET"),
])
def test_an_undeclared_method_is_405_with_allow_on_both_doors(door, answer, method, path, allow):
    status, body, headers = answer(door.request(method, path))

    assert (status, body["error"]) == (405, "METHOD_NOT_ALLOWED")
    assert headers["Allow"] == allow and method in body["message"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("TRACE", "/nothing"), ("GET", "/tasks/a/b")])
def test_unknown_paths_are_a_json_404_on_both_doors(door, answer, method, path):
    status, body, headers = answer(door.request(method, path))

    assert (status, body["error"]) == (404, "NOT_FOUND") and "Allow" not in headers


def test_intake_paused_is_503_with_retry_after_on_both_doors(door, answer, stack):
    from aws_lambda_powertools.utilities import parameters

    stack.set_parameter("IntakeParameter", "paused")
    parameters.clear_caches()

    status, body, headers = answer(door.request("POST", "/tasks", body=b'{"taskID":"p-1"}',
                                                content_type="application/json"))

    assert (status, body["error"], headers["Retry-After"]) == (503, "INTAKE_PAUSED", "30")
    assert stack.get_item("p-1") is None


def test_an_unexpected_error_in_a_route_is_a_json_500_on_both_doors(task_api, door, answer):
    class Broken:
        def get(self, _task_id):
            raise KeyError("bug")

    task_api._service = Broken()

    status, body, _ = answer(door.request("GET", "/tasks/task-173"))

    assert (status, body["error"]) == (500, "INTERNAL_ERROR") and "KeyError" in body["message"]
