"""`tmctl console` on the real stack: the console served on a free 127.0.0.1
port in a thread, driven over real HTTP. The overview shows the engine's
figures; a task created through the API appears in Tasks and on its own page;
the event stream delivers the change within about a second; a poisoned task is
dead-lettered, shown in the DLQ without consuming it, and redriven from its
page to COMPLETED once the cause is fixed."""

from __future__ import annotations

import json
import queue
import re
import threading
import time

import httpx2
import pytest

from tests.integration.conftest import FAILURE_RULES, uid, wait_for
from tmctl.console.security import csrf_token

pytestmark = pytest.mark.integration

CONFIG_CACHE_SECONDS = 5  # the Lambdas cache the failure switch this long (taskcore.config)
PAGE_LIMIT = 200 * 1024


@pytest.fixture
def browser(console):
    """An HTTP client that opened the printed URL: it holds the session cookie."""
    with httpx2.Client(base_url=console.base_url, timeout=30) as client:
        opened = client.get(console.url, follow_redirects=False)
        assert opened.status_code == 303
        assert opened.headers["location"] == "/"
        yield client


def figure(html: str, name: str) -> str:
    m = re.search(rf'data-figure="{re.escape(name)}">([^<]*)<', html)
    assert m, f"no figure {name}"
    return m.group(1)


def write(console, client, path: str, data: dict) -> httpx2.Response:
    return client.post(path, data={**data, "csrf": csrf_token(console.token)}, headers={"origin": console.base_url})


class Events:
    """The console's event stream read in a thread: (arrival time, event, data) as they come."""

    def __init__(self, console, client):
        self.got: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        cookies = dict(client.cookies)
        self.thread = threading.Thread(target=self._read, args=(console.base_url, cookies), daemon=True)
        self.thread.start()

    def _read(self, base_url: str, cookies: dict) -> None:
        with httpx2.Client(base_url=base_url, cookies=cookies, timeout=None) as c, \
                c.stream("GET", "/events") as r:
            assert r.status_code == 200
            event = None
            for line in r.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event:
                    self.got.put((time.monotonic(), event, json.loads(line[6:])))

    def until(self, check, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                at, event, data = self.got.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if check(event, data):
                return at, data
        raise AssertionError("no matching event in time")


def outcome(page: str, state: str) -> str | None:
    """The outcome a task page shows for one state (the drawing's data-outcome)."""
    found = re.search(rf'data-testid="state-{re.escape(state)}"[^>]*? data-outcome="([^"]+)"', page)
    return found.group(1) if found else None


def test_the_server_refuses_without_the_token_and_binds_loopback_only(console):
    assert console.sock.getsockname()[0] == "127.0.0.1"
    assert httpx2.get(console.base_url + "/").status_code == 403
    assert httpx2.get(console.base_url + "/", headers={"host": f"evil.example:{console.port}"}).status_code == 403


def test_overview_shows_the_engines_figures(env, console, browser):
    env.api.create({"taskID": uid("ov"), "title": "for the overview"})
    r = browser.get("/")
    assert r.status_code == 200
    assert len(r.content) <= PAGE_LIMIT
    assert int(figure(r.text, "tasks.total")) >= 1
    for name in ("queue.visible", "queue.in_flight", "dlq.total", "executions.SUCCEEDED"):
        assert figure(r.text, name) != ""
    assert browser.get("/static/console.js").status_code == 200


def test_a_task_from_the_api_appears_in_tasks_and_on_its_page(env, console, browser):
    task_id = uid("cons")
    assert env.api.create({"taskID": task_id, "title": "seen in the console"}).status == 202
    wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") == "COMPLETED", timeout=30)
    listed = browser.get("/tasks")
    assert f'data-testid="task-row-{task_id}"' in listed.text
    assert browser.get(f"/tasks?q={task_id}", follow_redirects=False).headers["location"] == f"/tasks/{task_id}"
    page = browser.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    assert len(page.content) <= PAGE_LIMIT
    assert re.search(rf'data-testid="task-status" data-task-status="{task_id}">COMPLETED<', page.text)
    assert 'data-where="consumed"' in page.text
    assert 'data-status="SUCCEEDED"' in page.text  # its execution
    assert 'data-testid="graph"' in page.text  # the state machine drawn, coloured by this run
    assert (outcome(page.text, "MarkCompleted"), outcome(page.text, "MarkFailed")) == ("succeeded", "not_run")


def test_the_event_stream_delivers_a_new_task_within_a_second_or_so(env, console, browser):
    events = Events(console, browser)
    try:
        _, first = events.until(lambda e, d: e == "overview")
        before = first["tasks.total"]
        task_id = uid("live")
        sent = time.monotonic()
        assert env.api.create({"taskID": task_id, "title": "live"}).status == 202
        at, figures = events.until(lambda e, d: e == "overview" and d["tasks.total"] > before)
        assert figures["tasks.total"] == before + 1
        # the task's own status changes come as `tasks` events
        events.until(lambda e, d: d.get(task_id) == "COMPLETED" if e == "tasks" else False, timeout=30)
    finally:
        events.stop.set()
    # ≤ 1 s on a quiet machine (0.5 s ticks); CI machines are shared: allow three ticks of slack
    assert at - sent < 2.5, f"the overview heard of the task {at - sent:.2f} s after it was created"
    assert console.app.app.state.hub.polls >= 2  # one shared poller did the reading


@pytest.fixture
def switch_restored(env):
    yield
    env.restore_failure_rules()


def test_a_poisoned_task_is_seen_in_the_dlq_and_redriven_from_its_page(env, console, browser, switch_restored):
    task_id = uid("poison")  # FAILURE_RULES: the processor fails poison-*
    assert env.api.create({"taskID": task_id, "title": "poisoned"}).status == 202
    task = wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") == "DEAD_LETTERED", timeout=30)
    assert task.get("status") == "DEAD_LETTERED", task

    # the DLQ page shows it without consuming it (the engine's inspection endpoint)
    dlq = wait_for(lambda: browser.get("/dlq").text, lambda html: task_id in html, timeout=10)
    assert task_id in dlq
    receives = re.search(rf'href="/tasks/{task_id}" class="mono">{task_id}</a></td>\s*<td>(\d+)</td>', dlq)
    assert receives
    again = browser.get("/dlq").text
    assert re.search(rf'href="/tasks/{task_id}" class="mono">{task_id}</a></td>\s*<td>{receives.group(1)}</td>', again)
    overview = browser.get("/").text
    assert 'data-testid="box-dlq"\n     data-alert="true"' in overview or 'data-alert="true"' in overview

    page = browser.get(f"/tasks/{task_id}").text
    assert 'data-testid="redrive-task"' in page
    assert 'data-where="DLQ"' in page

    # a cross-origin redrive is refused and leaves the message where it is
    refused = browser.post(f"/tasks/{task_id}/redrive", data={"csrf": csrf_token(console.token)},
                           headers={"origin": "http://evil.example"})
    assert refused.status_code == 403
    assert task_id in browser.get("/dlq").text

    # fix the cause (through the console's config page), then redrive from the task's page
    fixed = write(console, browser, "/config", {"key": "failure-injection", "value": json.dumps(
        [r for r in FAILURE_RULES if r["match"] != "poison-*"])})
    assert fixed.status_code == 200, fixed.text
    time.sleep(CONFIG_CACHE_SECONDS + 0.5)
    done = write(console, browser, f"/tasks/{task_id}/redrive", {})
    assert done.status_code == 200, done.text
    assert re.search(r'data-testid="acc-moved">1<', done.text)
    final = wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") == "COMPLETED", timeout=30)
    assert final["status"] == "COMPLETED"
    assert "redriven" in [h["step"] for h in final["history"]]


def test_the_command_prints_its_url_serves_it_and_ctrl_c_exits_0(env):
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "tmctl", "console", "--no-open", "--port", "0"],
                            env={**os.environ, **env.cli_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        url = proc.stdout.readline().strip()  # the one stdout line
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{40,}", url), url
        with httpx2.Client(timeout=30) as client:
            page = client.get(url, follow_redirects=True)
            assert page.status_code == 200
            assert f'data-testid="stack">{env.stack.name}<' in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        finally:
            proc.kill()
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"tmctl console for stack {env.stack.name}" in stderr


def test_a_failed_task_is_retried_from_its_page_once_the_cause_is_fixed(env, console, browser, switch_restored):
    task_id = uid("boom")  # FAILURE_RULES: the process step fails boom-*
    assert env.api.create({"taskID": task_id, "title": "fails in process"}).status == 202
    wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") == "FAILED", timeout=30)
    page = browser.get(f"/tasks/{task_id}").text
    assert 'data-testid="retry-task"' in page and 'data-testid="redrive-task"' not in page
    assert 'data-status="FAILED"' in page  # its execution
    assert outcome(page, "MarkFailed") in {"succeeded", "caught"} and outcome(page, "MarkCompleted") == "not_run"

    env.set_failure_rules([r for r in FAILURE_RULES if r["match"] != "boom-*"])
    time.sleep(CONFIG_CACHE_SECONDS + 0.5)
    done = write(console, browser, f"/tasks/{task_id}/retry", {})
    assert done.status_code == 200, done.text
    assert 'data-testid="retry-result"' in done.text
    final = wait_for(lambda: env.api.get(task_id).body, lambda t: t.get("status") == "COMPLETED", timeout=30)
    assert final["status"] == "COMPLETED"
    assert "retried" in [h["step"] for h in final["history"]]
    # the queues and executions pages on the engine: its inspection endpoint, its executions
    assert 'data-testid="queue-messages"' in browser.get("/queues").text
    executions = browser.get("/executions").text
    assert f'href="/tasks/{task_id}"' in executions
    rows = re.findall(rf'<tr data-testid="execution-row-{re.escape(task_id)}[^"]*">(.*?)</tr>', executions, re.S)
    failed = [row for row in rows if "s-FAILED" in row]
    assert failed, rows  # the first run, before the retry: with its error (DescribeExecution's, not the list's)
    assert re.search(r'<td class="small error">[^<\s][^<]*</td>', failed[0]), failed[0]
