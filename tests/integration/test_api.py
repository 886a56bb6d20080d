"""The HTTP contract, over real HTTP against the deployed API: every
validation error, idempotent replays and conflicts, listing, and conformance
to the OpenAPI document."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import uid, wait_for
from tests.integration.openapi import assert_conforms

pytestmark = pytest.mark.integration


def test_seed_body_is_accepted_as_is(env):
    # GIVEN the seed's exact body, WHEN it is posted
    task_id = uid("task")
    resp = env.api.request("POST", "/tasks", json.dumps({"taskID": task_id}).encode())
    # THEN it is accepted, stored and queued, in the documented shape
    assert resp.status == 202, resp.body
    assert resp.body["taskID"] == task_id and resp.body["title"] == task_id
    assert resp.body["status"] in {"QUEUED", "PROCESSING", "COMPLETED"}
    # 'started' may come before 'queued' when the workflow wins the race with the API's own update.
    assert {"created", "queued"} <= {h["step"] for h in resp.body["history"]}
    assert resp.body["history"][0]["step"] == "created"
    assert_conforms("POST", "/tasks", 202, resp.body)


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    (b"{not json", "application/json", 400, "MALFORMED_JSON"),
    (b"", "application/json", 400, "MALFORMED_JSON"),
    (b"[1, 2]", "application/json", 400, "VALIDATION_ERROR"),
    (b'{"taskID": "ok-1", "owner": "me"}', "application/json", 400, "UNKNOWN_FIELD"),
    (b'{"taskID": "has space"}', "application/json", 400, "INVALID_TASK_ID"),
    (b'{"taskID": "' + b"x" * 65 + b'"}', "application/json", 400, "INVALID_TASK_ID"),
    (b'{"taskID": "-lead"}', "application/json", 400, "INVALID_TASK_ID"),
    (b'{"taskID": 173}', "application/json", 400, "INVALID_TASK_ID"),
    (b'{"priority": "SOMEDAY"}', "application/json", 400, "VALIDATION_ERROR"),
    (b'{"dueDate": "next friday"}', "application/json", 400, "VALIDATION_ERROR"),
    (b'{"title": 42}', "application/json", 400, "VALIDATION_ERROR"),
    (json.dumps({"title": "t" * 201}).encode(), "application/json", 400, "VALIDATION_ERROR"),
    (json.dumps({"description": "d" * 17000}).encode(), "application/json", 413, "PAYLOAD_TOO_LARGE"),
    (b"<task/>", "application/xml", 415, "UNSUPPORTED_MEDIA_TYPE"),
    (b"taskID=task-1", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
])
def test_bad_input_gets_a_json_4xx_and_stores_nothing(env, body, content_type, status, code):
    before = env.clients.dynamodb.scan(TableName=env.stack.table, Select="COUNT")["Count"]
    resp = env.api.request("POST", "/tasks", body, content_type=content_type, retry=False)
    assert (resp.status, resp.body.get("error")) == (status, code), resp.body
    assert resp.body["message"]
    assert_conforms("POST", "/tasks", status, resp.body)
    # Nothing half-written: the bad request created no item.
    assert env.clients.dynamodb.scan(TableName=env.stack.table, Select="COUNT")["Count"] == before


@pytest.mark.parametrize("content_type", ["application/vnd.tasks+json", "application/merge-patch+json"])
def test_body_the_gateway_base64_encodes_still_parses(env, content_type):
    # HTTP APIs pass only a few content types as text; a JSON body with a vendor
    # JSON type reaches the handler base64-encoded (isBase64Encoded).
    task_id = uid("b64")
    resp = env.api.request("POST", "/tasks", json.dumps({"taskID": task_id, "title": "é ✓"}).encode(),
                           content_type=content_type)
    assert resp.status == 202, resp.body
    assert resp.body["title"] == "é ✓"


def test_identical_replay_is_idempotent_and_a_different_body_conflicts(env):
    task_id = uid("dup")
    body = {"taskID": task_id, "title": "pay invoice", "priority": "HIGH"}
    first = env.api.create(body)
    replay = env.api.create(body)
    assert first.status == replay.status == 202
    assert replay.body["taskID"] == task_id and replay.body["createdAt"] == first.body["createdAt"]
    # Replays published nothing new: exactly one 'queued' step.
    task = env.api.get(task_id).body
    assert [h["step"] for h in task["history"]].count("queued") == 1

    conflict = env.api.create({**body, "title": "pay a different invoice"})
    assert conflict.status == 409 and conflict.body["error"] == "CONFLICT"
    assert_conforms("POST", "/tasks", 409, conflict.body)
    assert env.api.get(task_id).body["title"] == "pay invoice"


def test_get_unknown_and_invalid_ids(env):
    missing = env.api.get(uid("missing"))
    assert missing.status == 404 and missing.body["error"] == "NOT_FOUND"
    assert_conforms("GET", "/tasks/{taskID}", 404, missing.body)
    bad = env.api.request("GET", "/tasks/" + "y" * 80)
    assert bad.status == 400 and bad.body["error"] == "INVALID_TASK_ID"


def test_unknown_route_is_a_json_404(env):
    resp = env.api.request("GET", "/nothing-here")
    assert resp.status == 404 and resp.body["error"] == "NOT_FOUND" and resp.body["message"]


def test_list_by_status_with_pagination(env):
    ids = {uid("page") for _ in range(3)}
    for task_id in ids:
        assert env.api.create({"taskID": task_id, "title": "page me"}).status == 202
    seen: list[str] = []
    token = None
    for _ in range(50):
        page = env.api.list(limit=2, next_token=token)
        assert page.status == 200, page.body
        assert_conforms("GET", "/tasks", 200, page.body)
        assert len(page.body["items"]) <= 2
        seen += [t["taskID"] for t in page.body["items"]]
        token = page.body.get("nextToken")
        if not token:
            break
    assert ids <= set(seen)
    assert len(seen) == len(set(seen)), "a task appeared on two pages"


def test_list_filters_by_status(env):
    task_id = uid("done")
    assert env.api.create({"taskID": task_id}).status == 202
    assert wait_for(lambda: env.api.get(task_id).body["status"], lambda s: s == "COMPLETED") == "COMPLETED"
    seen, token = [], None
    while True:
        page = env.api.list(status="COMPLETED", limit=100, next_token=token).body
        assert all(t["status"] == "COMPLETED" for t in page["items"])
        seen += [t["taskID"] for t in page["items"]]
        token = page.get("nextToken")
        if not token:
            break
    assert task_id in seen


@pytest.mark.parametrize(("query", "code"), [
    ("status=DONE", "VALIDATION_ERROR"),
    ("limit=0", "VALIDATION_ERROR"),
    ("limit=abc", "VALIDATION_ERROR"),
    ("limit=101", "VALIDATION_ERROR"),
    ("nextToken=garbage", "INVALID_TOKEN"),
    ("sort=asc", "UNKNOWN_FIELD"),
])
def test_list_rejects_bad_queries(env, query, code):
    resp = env.api.request("GET", "/tasks?" + query)
    assert resp.status == 400 and resp.body["error"] == code, resp.body
    assert_conforms("GET", "/tasks", 400, resp.body)
