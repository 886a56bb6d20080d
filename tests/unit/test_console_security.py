"""The console's guard, request by request (Starlette's TestClient, moto behind
the source): a token traded for a cookie, the Host check, CSRF and Origin on
writes, no CORS, read-only production. Each refusal is a 403 and changes
nothing. These never skip: the extra is part of the dev install."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from tmctl.console.app import create_app
from tmctl.console.security import cookie_name, csrf_token
from tmctl.core.queues import approximate_count

pytestmark = pytest.mark.unit

PORT = 8765
TOKEN = "t0ken-for-tests"  # noqa: S105 - a test's own value
BASE = f"http://127.0.0.1:{PORT}"
CSRF = csrf_token(TOKEN)


def client(source, *, cookie: bool = True, base_url: str = BASE) -> TestClient:
    c = TestClient(create_app(source, token=TOKEN, port=PORT), base_url=base_url, follow_redirects=False)
    if cookie:
        c.cookies.set(cookie_name(PORT), TOKEN)
    return c


def send_to_dlq(stack, n: int = 2) -> None:
    for i in range(n):
        stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=json.dumps({"taskID": f"poison-{i}"}),
                               MessageAttributes={"taskID": {"DataType": "String", "StringValue": f"poison-{i}"}})


def intake(stack) -> str:
    return stack.ssm.get_parameter(Name="/taskmanager/dev/intake")["Parameter"]["Value"]


WRITE = {"csrf": CSRF, "key": "intake", "value": "paused"}
SAME_ORIGIN = {"origin": BASE}


# ------------------------------------------------------------------ the token


@pytest.mark.parametrize("path", ["/", "/tasks", "/tasks/t-1", "/dlq", "/config", "/events", "/api/overview",
                                  "/static/console.js", "/dlq/export"])
def test_no_cookie_and_no_token_is_refused_everywhere(console_source, path):
    r = client(console_source(), cookie=False).get(path)
    assert r.status_code == 403
    assert "token" in r.text


def test_the_token_is_traded_for_a_strict_httponly_cookie_and_a_clean_url(console_source):
    c = client(console_source(), cookie=False)
    r = c.get(f"/tasks?status=FAILED&token={TOKEN}")
    assert r.status_code == 303
    assert r.headers["location"] == "/tasks?status=FAILED"  # the token leaves the address bar
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{cookie_name(PORT)}={TOKEN};")
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    assert c.get("/tasks?status=FAILED").status_code == 200  # the cookie now stands for the token


@pytest.mark.parametrize("path", ["//evil.example/x", "/\\evil.example/x", "///evil.example"])
def test_the_token_trade_redirects_only_to_a_path_of_this_console(path):
    """The printed URL's path could be edited into a scheme-relative one: the redirect stays on this console."""
    import asyncio

    from tmctl.console.security import Guard

    async def app(scope, receive, send):  # never reached: the trade answers first
        raise AssertionError("the app was called")

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": path, "query_string": f"token={TOKEN}".encode(),
             "headers": [(b"host", f"127.0.0.1:{PORT}".encode())]}
    asyncio.run(Guard(app, token=TOKEN, port=PORT)(scope, receive, send))

    location = dict(sent[0]["headers"])[b"location"].decode()
    assert sent[0]["status"] == 303
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert location == "/" + path.lstrip("/\\")


@pytest.mark.parametrize("given", ["wrong", TOKEN + "x", ""])
def test_a_wrong_token_is_refused_and_sets_no_cookie(console_source, given):
    r = client(console_source(), cookie=False).get(f"/?token={given}")
    assert r.status_code == 403
    assert "set-cookie" not in r.headers


def test_a_wrong_cookie_is_refused(console_source):
    c = client(console_source(), cookie=False)
    c.cookies.set(cookie_name(PORT), "guess")
    assert c.get("/").status_code == 403


def test_the_cookie_of_a_console_on_another_port_does_not_open_this_one(console_source):
    c = client(console_source(), cookie=False)
    c.cookies.set(cookie_name(PORT + 1), TOKEN)
    assert c.get("/").status_code == 403


# ------------------------------------------------------------------ Host (DNS rebinding)


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", f"127.0.0.1:{PORT + 1}", "127.0.0.1",
                                  f"localhost.evil.example:{PORT}", f"[::1]:{PORT}", ""])
def test_a_foreign_host_is_refused_even_with_the_cookie_or_the_token(console_source, host):
    c = client(console_source())
    assert c.get("/", headers={"host": host}).status_code == 403
    r = c.get(f"/?token={TOKEN}", headers={"host": host})
    assert r.status_code == 403
    assert "set-cookie" not in r.headers


def test_localhost_and_127_0_0_1_on_the_port_are_both_this_console(console_source):
    source = console_source()
    assert client(source).get("/config").status_code == 200
    local = client(source, base_url=f"http://localhost:{PORT}")
    assert local.get("/config").status_code == 200


# ------------------------------------------------------------------ writes: CSRF and Origin


def test_a_write_with_origin_and_csrf_goes_through(console_source, stack):
    r = client(console_source()).post("/config", data=WRITE, headers=SAME_ORIGIN)
    assert r.status_code == 200, r.text
    assert intake(stack) == "paused"


def test_the_csrf_header_stands_for_the_form_field(console_source, stack):
    r = client(console_source()).post("/config", data={"key": "intake", "value": "paused"},
                                      headers={**SAME_ORIGIN, "x-csrf-token": CSRF})
    assert r.status_code == 200, r.text
    assert intake(stack) == "paused"


@pytest.mark.parametrize("headers, data", [
    (SAME_ORIGIN, {"key": "intake", "value": "paused"}),  # no CSRF token
    (SAME_ORIGIN, {**WRITE, "csrf": "0" * 64}),  # a wrong one
    ({**SAME_ORIGIN, "x-csrf-token": "nope"}, {"key": "intake", "value": "paused"}),
    ({"origin": "http://evil.example"}, WRITE),  # cross-origin, with a stolen CSRF token even
    ({"origin": f"http://127.0.0.1:{PORT + 1}"}, WRITE),  # another local origin
    ({"origin": "null"}, WRITE),  # a sandboxed frame or a file: page
    ({}, WRITE),  # neither Origin nor Referer
    ({"referer": "http://evil.example/x"}, WRITE),
    ({"referer": f"http://127.0.0.1:{PORT}.evil.example/"}, WRITE),
])
def test_a_write_without_csrf_or_from_another_origin_is_refused_and_changes_nothing(console_source, stack,
                                                                                    headers, data):
    r = client(console_source()).post("/config", data=data, headers=headers)
    assert r.status_code == 403
    assert intake(stack) == "open"


def test_a_same_origin_referer_stands_in_for_a_missing_origin(console_source, stack):
    r = client(console_source()).post("/config", data=WRITE, headers={"referer": f"{BASE}/config"})
    assert r.status_code == 200, r.text
    assert intake(stack) == "paused"


def test_a_refused_redrive_leaves_the_dlq_as_it_was(console_source, stack):
    send_to_dlq(stack, 2)
    c = client(console_source())
    for headers, data in (({"origin": "http://evil.example"}, {"csrf": CSRF}), (SAME_ORIGIN, {}),
                          ({}, {"csrf": CSRF})):
        assert c.post("/dlq/redrive", data=data, headers=headers).status_code == 403
        assert c.post("/tasks/poison-0/redrive", data=data, headers=headers).status_code == 403
        assert c.post("/dlq/purge", data={**data, "confirm": "taskmanager-dev-tasks-dlq"},
                      headers=headers).status_code == 403
    assert approximate_count(stack.sqs, stack.dlq_url) == 2
    assert approximate_count(stack.sqs, stack.queue_url) == 0


def test_a_purge_needs_the_queue_name_typed(console_source, stack):
    send_to_dlq(stack, 2)
    c = client(console_source())
    name = stack.dlq_url.rsplit("/", 1)[-1]
    r = c.post("/dlq/purge", data={"csrf": CSRF, "confirm": "yes"}, headers=SAME_ORIGIN)
    assert r.status_code == 400
    assert name in r.text
    assert approximate_count(stack.sqs, stack.dlq_url) == 2
    r = c.post("/dlq/purge", data={"csrf": CSRF, "confirm": name}, headers=SAME_ORIGIN)
    assert r.status_code == 200, r.text
    assert approximate_count(stack.sqs, stack.dlq_url) == 0


def test_methods_other_than_get_head_post_are_refused(console_source, stack):
    c = client(console_source())
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        r = c.request(method, "/config", headers=SAME_ORIGIN)
        assert r.status_code == 405, method
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    assert intake(stack) == "open"


def test_no_response_carries_cors_headers_and_pages_cannot_be_framed(console_source):
    c = client(console_source())
    answers = [c.get("/", headers={"origin": "http://evil.example"}),
               c.options("/", headers={"origin": "http://evil.example", "access-control-request-method": "POST"}),
               c.get("/static/console.js"), client(console_source(), cookie=False).get("/")]
    assert [r.status_code for r in answers] == [200, 405, 200, 403]
    for r in answers:
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "script-src 'self'" in r.headers["content-security-policy"]


def test_a_large_form_is_refused_before_it_is_read_whole(console_source, stack):
    r = client(console_source()).post("/config", data={**WRITE, "pad": "x" * 70_000}, headers=SAME_ORIGIN)
    assert r.status_code == 413
    assert intake(stack) == "open"


# ------------------------------------------------------------------ production


def test_an_aws_production_stage_is_read_only_unless_allowed(console_source, stack):
    send_to_dlq(stack, 1)
    c = client(console_source("prod", local=False))
    page = c.get("/dlq")
    assert page.status_code == 200
    assert 'data-testid="read-only"' in page.text
    assert 'data-testid="dlq-redrive"' not in page.text and 'data-testid="dlq-purge"' not in page.text
    for path, data in (("/dlq/purge", {"csrf": CSRF, "confirm": stack.dlq_url.rsplit("/", 1)[-1]}),
                       ("/dlq/redrive", {"csrf": CSRF}), ("/config", WRITE)):
        r = c.post(path, data=data, headers=SAME_ORIGIN)
        assert r.status_code == 403, path
        assert "read-only" in r.text and "--allow-writes" in r.text
    assert approximate_count(stack.sqs, stack.dlq_url) == 1
    assert intake(stack) == "open"
    # a look at an AWS DLQ is a receive (it counts toward maxReceiveCount): not from a read-only console
    for path in ("/dlq?look=1", "/dlq/export?look=1"):
        assert c.get(path).status_code == 200
    assert 'href="/dlq?look=1"' not in c.get("/dlq").text
    left = stack.sqs.receive_message(QueueUrl=stack.dlq_url, AttributeNames=["ApproximateReceiveCount"])
    assert left["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "1"  # this receive is the first

    allowed = client(console_source("prod", local=False, allow_writes=True))
    assert 'data-testid="read-only"' not in allowed.get("/dlq").text
    r = allowed.post("/dlq/purge", data={"csrf": CSRF, "confirm": stack.dlq_url.rsplit("/", 1)[-1]},
                     headers=SAME_ORIGIN)
    assert r.status_code == 200, r.text
    assert approximate_count(stack.sqs, stack.dlq_url) == 0


def test_failure_injection_is_refused_on_a_production_stage_even_locally(console_source, stack):
    stack.ssm.put_parameter(Name="/taskmanager/prod/failure-injection", Value="[]", Type="String",
                            AllowedPattern="^\\[.*\\]$", Description="rules")
    c = client(console_source("prod", local=True))  # an emulator's prod stage: writable, but no injection
    page = c.get("/config")
    assert page.status_code == 200
    assert 'data-testid="read-only"' not in page.text
    assert 'data-testid="value-failure-injection"' not in page.text  # no editor
    r = c.post("/config", data={"csrf": CSRF, "key": "failure-injection",
                                "value": '[{"at":"process","match":"boom-*"}]'}, headers=SAME_ORIGIN)
    assert r.status_code == 400
    assert "production" in r.text
    value = stack.ssm.get_parameter(Name="/taskmanager/prod/failure-injection")["Parameter"]["Value"]
    assert value == "[]"


@pytest.mark.parametrize("key, value", [("intake", "closed"), ("failure-injection", "not json"),
                                        ("failure-injection", '[{"at":"nowhere"}]'), ("no-such-key", "x")])
def test_an_invalid_config_value_is_refused_before_writing(console_source, stack, key, value):
    before = {p["Name"]: p["Value"] for p in stack.ssm.get_parameters_by_path(Path="/taskmanager/dev")["Parameters"]}
    assert before
    r = client(console_source()).post("/config", data={"csrf": CSRF, "key": key, "value": value},
                                      headers=SAME_ORIGIN)
    assert r.status_code == 400
    assert 'data-testid="config-error"' in r.text
    after = {p["Name"]: p["Value"] for p in stack.ssm.get_parameters_by_path(Path="/taskmanager/dev")["Parameters"]}
    assert after == before


# ------------------------------------------------------------------ the command without its extra


def test_console_without_its_extra_says_the_one_command_to_run(monkeypatch):
    import sys

    from typer.testing import CliRunner

    from tmctl.cli.app import app

    monkeypatch.setitem(sys.modules, "starlette", None)  # import starlette → ImportError
    result = CliRunner().invoke(app, ["--local", "console", "--no-open"])
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == ["tmctl: error: tmctl console needs its extra: pip install 'tmctl[console]'"]


# ------------------------------------------------------------------ the socket: loopback, the port


def test_the_console_binds_loopback_only_and_falls_back_from_a_taken_default_port():
    import contextlib
    import socket

    from tmctl.console.server import DEFAULT_PORT, FALLBACK_PORTS, bind
    from tmctl.core.errors import UsageError

    def hold(port: int) -> socket.socket | None:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
            return s
        except OSError:  # someone else's already: taken all the same
            s.close()
            return None

    with contextlib.ExitStack() as held:
        # every default port taken (by this test, or by whoever had it)
        taken = [hold(p) for p in range(DEFAULT_PORT, DEFAULT_PORT + FALLBACK_PORTS)]
        _ = [held.enter_context(s) for s in taken if s is not None]
        fallback = held.enter_context(bind())
        host, port = fallback.getsockname()
        assert host == "127.0.0.1"
        assert not DEFAULT_PORT <= port < DEFAULT_PORT + FALLBACK_PORTS
        with pytest.raises(UsageError, match=f"port {port} on 127.0.0.1 is in use"):
            bind(port)  # a --port given is taken as given, or refused


def test_the_printed_url_carries_a_fresh_token_for_the_bound_port(console_source):
    from tmctl.console.server import ConsoleServer

    servers = [ConsoleServer(console_source(), port=0) for _ in range(2)]
    try:
        a, b = servers
        assert a.token != b.token and len(a.token) >= 40
        assert a.url == f"http://127.0.0.1:{a.port}/?token={a.token}"
        assert a.sock.getsockname() == ("127.0.0.1", a.port)
    finally:
        _ = [s.sock.close() for s in servers]


# ------------------------------------------------------------------ the command


@pytest.fixture
def served(monkeypatch):
    """`tmctl console` up to the point it would serve: the stack and backend faked, serving = Ctrl-C at once."""
    from tmctl.cli.context import State
    from tmctl.console.server import ConsoleServer
    from tmctl.core.backend import AWS, Backend
    from tmctl.core.stack import StackInfo

    opened: list[str] = []
    monkeypatch.setattr(State, "stack", lambda self: StackInfo(
        f"taskmanager-{self.target().stage}", "CREATE_COMPLETE", {}, {}, "http://api.invalid"))
    monkeypatch.setattr(State, "backend", lambda self: Backend(AWS))

    def serve(self):
        self.sock.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(ConsoleServer, "serve", serve)
    monkeypatch.setattr("webbrowser.open", opened.append)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    return opened


def run_console(*args: str, env: dict | None = None):
    from typer.testing import CliRunner

    from tmctl.cli.app import app

    return CliRunner().invoke(app, ["console", "--port", "0", *args], env=env)


def test_the_command_prints_the_url_opens_the_browser_and_ctrl_c_is_exit_0(served, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    result = run_console()
    assert result.exit_code == 0, result.stderr
    (url,) = result.stdout.splitlines()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{40,}", url)
    assert served == [url]
    assert "read-write" in result.stderr


def test_no_open_or_no_display_opens_no_browser(served, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    assert run_console("--no-open").exit_code == 0
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert run_console().exit_code == 0
    assert served == []


def test_the_command_says_when_it_is_read_only(served):
    result = run_console("--no-open", env={"TMCTL_STAGE": "prod"})
    assert result.exit_code == 0, result.stderr
    assert "read-only (AWS production stage; --allow-writes to act)" in result.stderr
    allowed = run_console("--no-open", "--allow-writes", env={"TMCTL_STAGE": "prod"})
    assert "read-write" in allowed.stderr
