"""Every bad body is a 4xx (issue 9), over real HTTP through the gateway: bodies
that crashed the handler (deep nesting: a 502), bodies past the JSON limits,
bad encodings, duplicate names, nulls, and methods a path does not have. Each
gets a JSON error of the documented shape, and nothing is stored."""

from __future__ import annotations

import codecs
import json
import urllib.error
import urllib.request

import pytest

from tests.integration.openapi import assert_conforms

pytestmark = pytest.mark.integration


def task_count(env) -> int:
    return env.clients.dynamodb.scan(TableName=env.stack.table, Select="COUNT")["Count"]


def send(env, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, dict]:
    """One request, no retry, with the response's headers (TaskApi keeps only the body)."""
    req = urllib.request.Request(env.stack.api_url.rstrip("/") + path, data=body, method=method,  # noqa: S310
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


@pytest.mark.parametrize(("body", "code"), [
    pytest.param(b"[" * 8000 + b"]" * 8000, "LIMIT_EXCEEDED", id="8000-deep-array"),
    pytest.param(b'{"a":' * 2500 + b"1" + b"}" * 2500, "LIMIT_EXCEEDED", id="2500-deep-object"),
    pytest.param(b'{"taskID": "bad-1", "title": ' + b"[" * 33 + b"]" * 33 + b"}", "LIMIT_EXCEEDED",
                 id="33-deep-field"),
    pytest.param(b'{"taskID": "bad-1", "title": 1e400}', "LIMIT_EXCEEDED", id="1e400"),
    pytest.param(b'{"taskID": "bad-1", "title": ' + b"9" * 5000 + b"}", "LIMIT_EXCEEDED", id="5000-digit-int"),
    pytest.param(b'{"taskID": "bad-1", "title": NaN}', "MALFORMED_JSON", id="NaN"),
    pytest.param(b'{"taskID": "bad-1", "title": Infinity}', "MALFORMED_JSON", id="Infinity"),
    pytest.param(b'{"taskID": "bad-1", "title": "\\ud800"}', "MALFORMED_JSON", id="lone-surrogate-escape"),
    pytest.param(codecs.BOM_UTF8 + b'{"taskID": "bad-1"}', "MALFORMED_JSON", id="utf8-bom"),
    pytest.param('{"taskID": "bad-1"}'.encode("utf-16"), "MALFORMED_JSON", id="utf-16"),
    pytest.param(b'{"taskID": "bad-1", "taskID": "bad-2"}', "DUPLICATE_FIELD", id="duplicate-name"),
    pytest.param(b'{"taskID": null}', "INVALID_TASK_ID", id="null-taskID"),
    pytest.param(b'{"taskID": "bad-1", "title": null}', "VALIDATION_ERROR", id="null-title"),
    pytest.param(b'{"taskID": "bad-1", "dueDate": null}', "VALIDATION_ERROR", id="null-dueDate"),
    pytest.param(b'{"taskID": "bad-1", "title": "nul\\u0000inside"}', "VALIDATION_ERROR", id="nul-in-title"),
])
def test_bad_body_is_a_400_and_stores_nothing(env, body, code):
    # GIVEN a body past the API's limits; WHEN posted
    before = task_count(env)
    resp = env.api.request("POST", "/tasks", body, retry=False)

    # THEN a documented 400 with its code (not the gateway's 502 of a crashed handler)
    assert (resp.status, resp.body.get("error")) == (400, code), resp.body
    assert resp.body["message"]
    assert_conforms("POST", "/tasks", 400, resp.body)
    assert task_count(env) == before


@pytest.mark.parametrize("body", [
    pytest.param('{"taskID": "bad-latin1", "title": "café"}'.encode("latin-1"), id="latin-1"),
    pytest.param(b'{"taskID": "bad-latin1", "title": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b'{"taskID": "bad-latin1", "title": "\xed\xa0\x80"}', id="utf8-encoded-surrogate"),
])
def test_a_body_that_is_not_utf8_is_malformed(env, body):
    # Sent as a vendor JSON type, which the gateway hands over as bytes (base64). An
    # application/json body it passes as text, and MiniStack's gateway decodes that with
    # replacement characters first: the handler then never sees the bad bytes.
    before = task_count(env)
    resp = env.api.request("POST", "/tasks", body, content_type="application/vnd.tasks+json", retry=False)

    assert (resp.status, resp.body.get("error")) == (400, "MALFORMED_JSON"), resp.body
    assert "UTF-8" in resp.body["message"]
    assert task_count(env) == before
    assert env.api.get("bad-latin1").status == 404


def test_a_charset_other_than_utf8_is_415(env):
    before = task_count(env)
    resp = env.api.request("POST", "/tasks", '{"taskID": "bad-utf16"}'.encode("utf-16"),
                           content_type="application/json; charset=utf-16", retry=False)

    assert (resp.status, resp.body.get("error")) == (415, "UNSUPPORTED_MEDIA_TYPE"), resp.body
    assert_conforms("POST", "/tasks", 415, resp.body)
    assert task_count(env) == before


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("TRACE", "/tasks", {"GET", "POST"}),
    ("PUT", "/tasks", {"GET", "POST"}),
    ("DELETE", "/tasks/some-task", {"GET"}),
    ("PATCH", "/tasks/some-task", {"GET"}),
])
def test_an_undeclared_method_on_a_declared_path_is_405_with_allow(env, method, path, allow):
    before = task_count(env)
    status, headers, body = send(env, method, path, json.dumps({"taskID": "bad-method"}).encode())

    assert (status, body.get("error")) == (405, "METHOD_NOT_ALLOWED"), body
    assert body["message"]
    assert set(headers["Allow"].split(", ")) == allow
    assert task_count(env) == before


def test_an_unknown_path_stays_404_whatever_the_method(env):
    status, headers, body = send(env, "TRACE", "/nothing-here")

    assert (status, body.get("error")) == (404, "NOT_FOUND"), body
    assert "Allow" not in headers
