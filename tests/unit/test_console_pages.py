"""The console's pages over a moto stack: what each shows, that it comes from
the core (the same figures `tmctl status` / `task trace` / `dlq peek` give),
the stable ids browser tests use, page weight, the task list's order and
paging, and the one shared live poller."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tmctl.console.app import create_app, state_rows
from tmctl.console.live import Hub, sse
from tmctl.console.security import cookie_name, csrf_token
from tmctl.core.tasks import decode_cursor, recent_tasks, search_tasks

pytestmark = pytest.mark.unit

PORT = 8765
TOKEN = "t0ken-for-tests"  # noqa: S105 - a test's own value
PAGE_LIMIT = 200 * 1024
STATUSES = ("PENDING", "QUEUED", "DEAD_LETTERED", "PROCESSING", "COMPLETED", "FAILED")

EVENTS = Path(__file__).resolve().parents[1] / "events"


def client(source) -> TestClient:
    c = TestClient(create_app(source, token=TOKEN, port=PORT), base_url=f"http://127.0.0.1:{PORT}")
    c.cookies.set(cookie_name(PORT), TOKEN)
    return c


def put_tasks(stack, n: int, status_of=lambda i: STATUSES[i % len(STATUSES)], prefix: str = "t") -> list[str]:
    ids = []
    for i in range(n):
        task_id = f"{prefix}-{i:04d}"
        stamp = f"2026-12-04T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
        stack.put_item({"taskID": task_id, "title": f"task {i}", "status": status_of(i), "createdAt": stamp,
                        "updatedAt": stamp, "priority": "LOW", "history": []})
        ids.append(task_id)
    return ids


def figure(html: str, name: str) -> str:
    m = re.search(rf'data-figure="{re.escape(name)}">([^<]*)<', html)
    assert m, f"no figure {name}"
    return m.group(1)


# ------------------------------------------------------------------ core: newest first across statuses


def test_recent_tasks_are_newest_first_across_statuses_and_page_without_gaps_or_repeats(stack):
    ids = put_tasks(stack, 23)
    seen, cursor, pages = [], None, 0
    while True:
        page = recent_tasks(stack.ddb, stack.table, STATUSES, before=cursor, limit=5)
        seen += [t["taskID"] for t in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert pages == 5


@pytest.mark.parametrize("status", [None, "COMPLETED"])
def test_one_status_holding_every_task_pages_to_the_end(stack, status):
    """Most tasks end COMPLETED: its query alone must carry the listing past page 2 (each page drops the
    cursor's own row, which the next page of the Query makes up for)."""
    ids = put_tasks(stack, 100, status_of=lambda i: "COMPLETED")
    seen, cursor = [], None
    for _ in range(10):
        page = recent_tasks(stack.ddb, stack.table, STATUSES, status=status, before=cursor, limit=25)
        seen += [t["taskID"] for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_recent_tasks_of_one_status_and_a_search(stack):
    put_tasks(stack, 12)
    failed = recent_tasks(stack.ddb, stack.table, STATUSES, status="FAILED", limit=10)
    assert [t["taskID"] for t in failed.items] == ["t-0011", "t-0005"]
    assert {t["status"] for t in failed.items} == {"FAILED"}
    assert [t["taskID"] for t in search_tasks(stack.ddb, stack.table, "t-0003").items] == ["t-0003"]
    assert [t["taskID"] for t in search_tasks(stack.ddb, stack.table, "-001").items] == ["t-0011", "t-0010"]


def test_a_cursor_that_is_not_ours_is_a_usage_error():
    from tmctl.core.errors import UsageError

    for bad in ("nope", "W10=", "eyJhIjoxfQ=="):
        with pytest.raises(UsageError):
            decode_cursor(bad)
    assert decode_cursor("WyJhIiwiYiJd") == ("a", "b")


# ------------------------------------------------------------------ pages


def test_overview_shows_the_cores_figures_and_links_each_box(console_source, stack):
    put_tasks(stack, 7)
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=json.dumps({"taskID": "poison-1"}))
    for i in range(3):
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps({"taskID": f"q-{i}"}))
    r = client(console_source()).get("/")
    assert r.status_code == 200
    html = r.text
    assert figure(html, "tasks.total") == "7"
    assert figure(html, "tasks.PENDING") == "2"  # 0 and 6
    assert figure(html, "queue.visible") == "3"
    assert figure(html, "dlq.total") == "1"
    assert re.search(r'id="box-dlq" data-testid="box-dlq"\s+data-alert="true"', html)
    for box, href in (("box-table", "/tasks"), ("box-queue", "/queues"), ("box-workflow", "/executions"),
                      ("box-processor", "/queues"), ("box-api", "/tasks"), ("box-dlq", "/dlq")):
        assert re.search(rf'href="{re.escape(href)}" id="{box}"', html), box
    assert nested_links(html) == []  # a link inside a box's link: browsers split the box and the drawing falls apart
    assert len(r.content) <= PAGE_LIMIT


def nested_links(html: str) -> list[str]:
    """The hrefs of <a> elements opened inside another <a> (invalid HTML: the parser closes the outer one)."""
    from html.parser import HTMLParser

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.open, self.nested = 0, []

        def handle_starttag(self, tag, attrs):
            if tag == "a":
                if self.open:
                    self.nested.append(dict(attrs).get("href", "?"))
                self.open += 1

        def handle_endtag(self, tag):
            if tag == "a":
                self.open = max(0, self.open - 1)

    parser = Links()
    parser.feed(html)
    return parser.nested


def test_overview_json_is_the_same_figures(console_source, stack):
    put_tasks(stack, 3)
    data = client(console_source()).get("/api/overview").json()
    assert data["tasks.total"] == 3
    assert data["dlq.total"] == 0
    assert set(data) >= {"queue.visible", "queue.in_flight", "queue.delayed", "queue.oldest", "executions.RUNNING",
                         "executions.SUCCEEDED", "executions.FAILED"}


def test_tasks_page_filters_searches_and_pages(console_source, stack):
    put_tasks(stack, 60)
    c = client(console_source())
    first = c.get("/tasks")
    assert first.status_code == 200
    rows = re.findall(r'data-testid="task-row-([^"]+)"', first.text)
    assert rows[:3] == ["t-0059", "t-0058", "t-0057"]
    assert len(rows) == 25
    older = re.search(r'href="(/tasks\?before=[^"]+)" data-testid="older"', first.text)
    assert older
    second = c.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-testid="task-row-([^"]+)"', second.text)[0] == "t-0034"
    failed = c.get("/tasks?status=FAILED")
    failed_rows = re.findall(r'data-testid="task-row-([^"]+)"', failed.text)
    assert failed_rows
    assert all(int(t[2:]) % 6 == 5 for t in failed_rows)
    exact = c.get("/tasks?q=t-0042", follow_redirects=False)
    assert exact.status_code == 303
    assert exact.headers["location"] == "/tasks/t-0042"
    assert c.get("/tasks?status=BOGUS").status_code == 400


def test_a_task_page_with_no_execution_yet_draws_the_machine_uncoloured(console_source, stack):
    put_tasks(stack, 1, status_of=lambda i: "QUEUED", prefix="one")
    r = client(console_source()).get("/tasks/one-0000")
    assert r.status_code == 200
    assert 'data-testid="task-status" data-task-status="one-0000">QUEUED<' in r.text
    asl = json.loads((stack.sfn.describe_state_machine(stateMachineArn=stack.state_machine_arn))["definition"])
    drawn = dict(re.findall(r'data-testid="state-([^"]+)" data-state="[^"]*" data-type="[^"]*" data-outcome="([^"]+)"',
                            r.text))
    assert drawn == dict.fromkeys(asl["States"], "none")
    assert len(r.content) <= PAGE_LIMIT


def test_an_unknown_task_is_a_404_page(console_source):
    r = client(console_source()).get("/tasks/nothing-here")
    assert r.status_code == 404
    assert "nothing-here" in r.text


def test_the_state_list_gives_each_state_the_outcome_the_drawing_colours_it_with():
    from tmctl.console import graph
    from tmctl.core.executions import timeline

    events = json.loads((EVENTS / "sfn_history_ministack_failed_process.json").read_text())["events"]
    runs = graph.path_from_history(events)
    assert {r.outcome for r in runs.values()} >= {"succeeded", "caught"}
    definition = {"States": {**{name: {"Type": run.type or "Task"} for name, run in runs.items()},
                             "NeverReached": {"Type": "Succeed"}}}

    rows = {r["name"]: r["outcome"] for r in state_rows(definition, timeline(events), events)}

    assert rows == {**{name: run.outcome for name, run in runs.items()}, "NeverReached": "not_run"}
    assert {r["name"]: r["outcome"] for r in state_rows(definition, None)} == dict.fromkeys(definition["States"],
                                                                                           "not_run")


def test_dlq_page_on_aws_does_not_receive_until_asked(console_source, stack):
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=json.dumps({"taskID": "poison-1", "n": 1}))
    c = client(console_source())
    r = c.get("/dlq")
    assert r.status_code == 200
    assert 'data-testid="dlq-count">1<' in r.text
    assert "poison-1" not in r.text  # not looked at: on AWS a look is a receive
    looked = c.get("/dlq?look=1")
    assert 'data-testid="dlq-message-' in looked.text
    assert "&#34;n&#34;: 1" in looked.text  # pretty-printed body, escaped
    exported = c.get("/dlq/export?look=1")
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert json.loads(exported.text.splitlines()[0])["task_id"] == "poison-1"


def test_dry_run_then_redrive_of_selected_messages_from_the_dlq_page(console_source, stack):
    for task_id in ("poison-1", "poison-2"):
        stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=json.dumps({"taskID": task_id}),
                               MessageAttributes={"taskID": {"DataType": "String", "StringValue": task_id}})
    c = client(console_source())
    write = {"origin": f"http://127.0.0.1:{PORT}"}
    csrf = csrf_token(TOKEN)
    preview = c.post("/dlq/preview", data={"csrf": csrf, "task_id": "poison-2"}, headers=write)
    assert preview.status_code == 200, preview.text
    assert 'data-testid="dry-run"' in preview.text
    assert stack.queue_depth() == 0
    done = c.post("/dlq/redrive", data={"csrf": csrf, "task_id": "poison-2"}, headers=write)
    assert done.status_code == 200, done.text
    assert re.search(r'data-testid="acc-moved">1<', done.text)
    moved = stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["taskID"] for m in moved] == ["poison-2"]


def test_config_page_offers_the_allowed_values(console_source):
    r = client(console_source()).get("/config")
    assert r.status_code == 200
    assert re.search(r'data-testid="value-intake"><option selected>open</option><option>paused</option>', r.text)
    assert 'data-testid="value-failure-injection"' in r.text


# ------------------------------------------------------------------ one shared poller


def test_one_poller_serves_every_listener_pushes_changes_only_and_stops_when_nobody_listens():
    state = {"n": 0, "prints": 0}

    def figures():
        return {"tasks.total": state["n"]}

    def fingerprint():
        state["prints"] += 1
        return state["n"]

    async def scenario():
        hub = Hub(figures, lambda watched: {"a": "QUEUED" if state["n"] < 2 else "COMPLETED"}, fingerprint,
                  interval=0.01, refresh_every=60)
        queues = [hub.subscribe() for _ in range(5)]
        await asyncio.sleep(0.05)
        assert hub.running
        first = [[q.get_nowait() for _ in range(q.qsize())] for q in queues]
        state["n"] = 2
        await asyncio.sleep(0.05)
        got = [[q.get_nowait() for _ in range(q.qsize())] for q in queues]
        polls_while_busy = hub.polls
        for q in queues:
            hub.unsubscribe(q)
        await asyncio.sleep(0.05)
        prints_after = state["prints"]
        await asyncio.sleep(0.05)
        return hub, first, got, polls_while_busy, prints_after

    hub, first, got, polls, prints_after = asyncio.run(scenario())
    assert len(first) == len(got) == 5
    # the first full read reports the figures and every task once; then only what changed
    assert all(f == [sse("overview", {"tasks.total": 0}), sse("tasks", {"a": "QUEUED"})] for f in first)
    assert all(g == [sse("overview", {"tasks.total": 2}), sse("tasks", {"a": "COMPLETED"})] for g in got)
    assert polls == 2  # one full read per change, not per listener or per tick
    assert not hub.running
    assert state["prints"] == prints_after  # nobody listening: no more looks at the engine


def test_the_core_and_the_cli_import_no_web_code_at_module_level():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "tmctl"
    web = ("starlette", "jinja2", "uvicorn", "markupsafe", "tmctl.console")
    core = sorted((root / "core").rglob("*.py"))
    assert core
    offenders = []
    for path in [*core, *sorted((root / "cli").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        top = tree.body if path.parent.name == "cli" else list(ast.walk(tree))  # the CLI imports lazily, in commands
        for node in top:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.startswith(web)]
    assert offenders == []


def test_closing_the_hub_ends_every_open_stream_at_once():
    from tmctl.console.live import stream

    async def scenario():
        hub = Hub(lambda: {"x": 1}, lambda watched: {}, lambda: 0, interval=0.01)

        async def never_disconnected():
            return False

        async def drain(task_id):
            return [chunk async for chunk in stream(hub, never_disconnected, task_id=task_id, keepalive=30)]

        readers = [asyncio.ensure_future(drain(t)) for t in ("a", "a", None)]
        await asyncio.sleep(0.05)
        assert hub.watched == {"a": 2}
        started = asyncio.get_running_loop().time()
        hub.close()
        got = await asyncio.wait_for(asyncio.gather(*readers), timeout=2)
        return hub, got, asyncio.get_running_loop().time() - started

    hub, got, took = asyncio.run(scenario())
    assert took < 1  # not the 30 s keepalive
    assert len(got) == 3
    assert all(chunks[0] == b"retry: 1000\n\n" and sse("overview", {"x": 1}) in chunks for chunks in got)
    assert hub.listeners == set() and hub.watched == {}


def test_the_dlq_page_stays_light_with_large_messages(console_source, stack):
    big = json.dumps({"taskID": "big", "blob": "x" * 100_000})
    for _ in range(20):  # 2 MB of bodies
        stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=big)
    r = client(console_source()).get("/dlq?look=1")
    assert r.status_code == 200
    shown = r.text.count('data-testid="dlq-message-')
    assert shown >= 10  # moto's receive-with-visibility-0 hands back the same first ten; AWS samples
    assert shown * 100_000 > 4 * PAGE_LIMIT  # untrimmed, these bodies alone would be over 4× the limit
    assert len(r.content) <= PAGE_LIMIT
    assert "bytes in all: the export has every byte" in r.text


def test_the_overview_renders_from_the_pollers_fresh_figures_without_asking_the_engine(console_source):
    source = console_source()
    figures = source.overview().figures()
    figures["tasks.total"] = 4242

    class FreshHub:
        state = None

        def current_figures(self):
            return figures

    def no_engine():
        raise AssertionError("the overview asked the engine although the poller's figures were fresh")

    source.overview = no_engine
    c = TestClient(create_app(source, token=TOKEN, port=PORT, hub=FreshHub()), base_url=f"http://127.0.0.1:{PORT}")
    c.cookies.set(cookie_name(PORT), TOKEN)
    r = c.get("/")
    assert r.status_code == 200, r.text
    assert figure(r.text, "tasks.total") == "4242"


def test_the_queues_and_executions_pages(console_source, stack):
    for i in range(2):
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps({"taskID": f"q-{i}"}))
    started = stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn, name="t-0001-abc123",
                                        input=json.dumps({"taskID": "t-0001"}))
    assert started["executionArn"]
    c = client(console_source())
    queues = c.get("/queues")
    assert queues.status_code == 200
    assert re.search(r'data-testid="main-visible">2<', queues.text)
    assert "Not looked at" in queues.text  # AWS: the main queue is never received from the console
    executions = c.get("/executions")
    assert executions.status_code == 200
    assert 'data-testid="execution-row-t-0001-abc123"' in executions.text
    assert 'href="/tasks/t-0001"' in executions.text
    assert c.get("/executions?status=FAILED").text.count('data-testid="execution-row-') == 0
    assert len(executions.content) <= PAGE_LIMIT


def test_a_drawing_that_fails_falls_back_to_the_state_list(monkeypatch, console_source, stack):
    from tmctl.console import graph

    def broken(definition, runs):
        raise ValueError("an ASL shape it does not know")

    monkeypatch.setattr(graph, "render_svg", broken)
    put_tasks(stack, 1, status_of=lambda i: "QUEUED", prefix="one")
    r = client(console_source()).get("/tasks/one-0000")
    assert r.status_code == 200
    assert 'data-testid="graph"' not in r.text
    asl = json.loads((stack.sfn.describe_state_machine(stateMachineArn=stack.state_machine_arn))["definition"])
    listed = dict(re.findall(r'data-testid="state-([^"]+)" data-outcome="([^"]+)"', r.text))
    assert listed == dict.fromkeys(asl["States"], "not_run")


def test_a_pipeline_that_moves_on_every_tick_gets_full_reads_for_at_most_a_fifth_of_the_time():
    import itertools
    import time as clock

    from tmctl.console.live import READ_SHARE

    counter = itertools.count()

    def slow_figures():
        clock.sleep(0.05)  # a full read of a big stage
        return {"n": next(counter)}

    async def scenario():
        hub = Hub(slow_figures, lambda watched: {}, lambda: clock.monotonic(), interval=0.005, refresh_every=60)
        q = hub.subscribe()
        started = clock.monotonic()
        await asyncio.sleep(1.0)
        hub.unsubscribe(q)
        return hub, clock.monotonic() - started

    hub, took = asyncio.run(scenario())
    reading = hub.polls * 0.05
    assert hub.polls >= 2
    assert reading / took <= READ_SHARE + 0.06  # one read's worth of slack
    assert hub.ticks > 3 * hub.polls  # the cheap looks went on in between


def test_a_log_line_shows_powertools_level_message_and_its_own_keys_not_the_boilerplate():
    from tmctl.console.app import log_line

    line = log_line(json.dumps({"level": "ERROR", "location": "h:1", "message": "step failed", "timestamp": "t",
                                "service": "steps", "cold_start": False, "function_arn": "arn", "taskID": "t-1"}))
    assert line == {"level": "ERROR", "message": "step failed", "extra": '{"taskID": "t-1"}'}
    assert log_line("START RequestId: 1 Version: $LATEST\n") == {
        "level": "", "message": "START RequestId: 1 Version: $LATEST", "extra": ""}
    assert log_line('["not", "a", "record"]')["message"] == '["not", "a", "record"]'


def test_each_execution_is_drawn_from_the_definition_it_ran_not_the_deployed_one(monkeypatch, console_source):
    """After a deploy or a `tmctl dev` swap, an older execution keeps the machine it ran on."""
    from tmctl.core import executions
    from tmctl.core.executions import Execution
    from tmctl.core.trace import ExecutionTrace, Location, TaskTrace

    ran = {"StartAt": "Before", "States": {"Before": {"Type": "Succeed"}}}
    asked = []

    def execution_definition(_sfn, arn):
        asked.append(arn)
        return ran

    monkeypatch.setattr(executions, "execution_definition", execution_definition)
    old = Execution("arn:aws:states:us-east-1:1:execution:m:old", "old", "SUCCEEDED", None)
    trace = TaskTrace("t-1", {"taskID": "t-1", "status": "COMPLETED"}, Location("consumed", "gone"),
                      [ExecutionTrace(old, [], [])], [], None)
    monkeypatch.setattr("tmctl.core.trace.trace_task", lambda **_: trace)
    source = console_source()
    c = client(source)

    page = c.get("/tasks/t-1").text
    again = c.get("/tasks/t-1").text

    assert 'data-testid="state-Before"' in page and page == again
    deployed = source.definition()
    assert deployed and "Before" not in deployed["States"]  # the deployed machine is another one
    assert asked == [old.arn]  # what an execution ran never changes: asked once


def _exec(status: str):
    from types import SimpleNamespace as S

    return S(execution=S(status=status))


@pytest.mark.parametrize(("steps", "status", "where", "executions", "expected"), [
    # dead-lettered by the processor: red there and in the DLQ, the workflow never ran
    (["created", "queued", "dead-lettered"], "DEAD_LETTERED", "DLQ", [],
     {"api": "succeeded", "queue": "succeeded", "processor": "failed", "dlq": "failed", "workflow": "not_run",
      "result": "failed"}),
    # redriven and done: every stop green, the DLQ passed through
    (["created", "queued", "dead-lettered", "redriven", "started", "completed"], "COMPLETED", "consumed",
     [_exec("SUCCEEDED")],
     {"api": "succeeded", "queue": "succeeded", "processor": "succeeded", "dlq": "succeeded",
      "workflow": "succeeded", "result": "succeeded"}),
    # a workflow step failed: the processor did its part, the workflow is red
    (["created", "queued", "started", "failed"], "FAILED", "consumed", [_exec("FAILED")],
     {"api": "succeeded", "queue": "succeeded", "processor": "succeeded", "workflow": "failed", "result": "failed"}),
    # still in the main queue
    (["created", "queued"], "QUEUED", "main queue", [],
     {"api": "succeeded", "queue": "succeeded", "processor": "running", "workflow": "not_run", "result": "running"}),
])
def test_a_tasks_journey_through_the_pipeline_marks_where_it_went_wrong(steps, status, where, executions, expected):
    from tmctl.console.app import journey

    task = {"taskID": "t", "status": status, "history": [{"step": s, "outcome": "ok"} for s in steps]}
    assert {j["stop"]: j["outcome"] for j in journey(task, where, executions)} == expected
