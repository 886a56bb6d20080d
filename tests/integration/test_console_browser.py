"""`tmctl console` in a real browser: Debian's chromium driven by Playwright
(`executable_path`: Playwright's own browser download is not reachable here),
on the suite's stack. The failure path as a user clicks through it: the
overview follows a poisoned task live, its page turns DEAD_LETTERED with the
failure in red, the switch is fixed on the config page, the message is
redriven from the DLQ page (the page's own forms carry the CSRF token and the
browser its Origin), and the task page follows it to COMPLETED with the path
green.

Skipped, with the reason, where the playwright package or a chromium is
missing (TMCTL_TEST_CHROMIUM, else `chromium` on PATH); the server's own tests
(tests/unit/test_console_security.py, tests/integration/test_console.py) never
skip."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.integration.conftest import FAILURE_RULES, uid
from tmctl.core import settings

pytestmark = pytest.mark.integration

# Skipped at collection, before the session's stack is deployed for nothing.
pw = pytest.importorskip("playwright.sync_api",
                         reason="the playwright package is not installed (pip install -e '.[dev]')")
CHROMIUM = settings.TEST_CHROMIUM.get() or shutil.which("chromium")
if not CHROMIUM:
    pytest.skip(f"no chromium: install Debian's (apt-get install chromium) or set {settings.TEST_CHROMIUM.name}",
                allow_module_level=True)

CONFIG_CACHE_SECONDS = 5  # the Lambdas cache the failure switch this long (taskcore.config)
# Debian's chromium as root in a container: no sandbox, no GPU, nothing fetched from Google.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
RED, GREEN = "rgb(198, 40, 40)", "rgb(26, 127, 55)"  # console.css --bad, --ok


@pytest.fixture(scope="module")
def browser():
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh tab (no cookie yet) that records every script error and failed console message."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.problems = []
    tab.on("pageerror", lambda err: tab.problems.append(f"script error: {err}"))
    tab.on("console", lambda msg: msg.type == "error" and tab.problems.append(f"console: {msg.text}"))
    tab.on("response", lambda r: r.status >= 400 and tab.problems.append(f"{r.status} {r.request.method} {r.url}"))
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def switch_restored(env):
    yield
    env.restore_failure_rules()


def at_least(page, figure: str, n: int, timeout: float = 15_000) -> None:
    """Wait until the overview's live figure reads n or more (it changes without a reload)."""
    page.wait_for_function("([name, n]) => Number(document.querySelector(`[data-figure=\"${name}\"]`)"
                           ".textContent) >= n", arg=[figure, n], timeout=timeout)


def test_a_poisoned_task_followed_through_the_console_to_completed(env, console, page, switch_restored):
    # GIVEN the overview, opened from the URL `tmctl console` prints (the token becomes a cookie)
    page.goto(console.url)
    assert page.url == console.base_url + "/"
    pw.expect(page.get_by_test_id("live")).to_have_attribute("data-state", "on")
    before = int(page.locator('[data-figure="tasks.total"]').inner_text())
    dlq_before = int(page.locator('[data-figure="dlq.total"]').inner_text())

    # WHEN a task the processor keeps failing is created (FAILURE_RULES: poison-*)
    task_id = uid("poison")
    assert env.api.create({"taskID": task_id, "title": "poisoned in the browser"}).status == 202

    # THEN the overview follows without a reload: one more task, then a DLQ box in red
    # (at least: a message of an earlier test of this worker's stage may still be on its way to the DLQ)
    at_least(page, "tasks.total", before + 1)
    at_least(page, "dlq.total", dlq_before + 1, timeout=20_000)
    pw.expect(page.get_by_test_id("box-dlq")).to_have_attribute("data-alert", "true")
    pw.expect(page.get_by_test_id("box-dlq")).to_have_css("border-top-color", RED)  # after its transition

    # AND its page, opened from the search, turns DEAD_LETTERED: the failure in red, no workflow run
    page.get_by_test_id("nav-tasks").click()
    page.get_by_test_id("task-search").fill(task_id)
    page.get_by_test_id("task-search").press("Enter")
    page.wait_for_url(f"**/tasks/{task_id}")
    status = page.get_by_test_id("task-status")
    pw.expect(status).to_have_text("DEAD_LETTERED", timeout=20_000)
    pw.expect(status).to_have_css("color", RED)
    failed = page.get_by_test_id("history").locator("li.h-failed")
    pw.expect(failed).to_contain_text("dead-lettered")
    pw.expect(failed).to_contain_text("InjectedFailure")
    pw.expect(failed).to_have_css("color", RED)
    pw.expect(page.get_by_test_id("message-where")).to_have_attribute("data-where", "DLQ")
    pw.expect(page.get_by_test_id("no-executions")).to_be_visible()
    # its way through the pipeline: the processor is the failed stop, in red, and the message waits in the DLQ
    for stop, outcome in (("api", "succeeded"), ("queue", "succeeded"), ("processor", "failed"), ("dlq", "failed"),
                          ("workflow", "not_run")):
        pw.expect(page.get_by_test_id(f"stop-{stop}")).to_have_attribute("data-outcome", outcome)
    pw.expect(page.get_by_test_id("stop-processor")).to_have_css("border-top-color", RED)
    pw.expect(page.get_by_test_id("stop-processor")).to_contain_text("InjectedFailure")

    # WHEN the switch is fixed on the config page (only boom-* fails now)
    page.get_by_test_id("nav-config").click()
    rules = [r for r in FAILURE_RULES if r["match"] != "poison-*"]
    page.get_by_test_id("value-failure-injection").fill(json.dumps(rules))
    page.get_by_test_id("save-failure-injection").click()
    pw.expect(page.get_by_test_id("config-message")).to_contain_text("failure-injection")
    page.wait_for_timeout((CONFIG_CACHE_SECONDS + 0.5) * 1000)  # the Lambdas' cached switch expires

    # AND its message is redriven from the DLQ page: selected by a filter (the page lists 50 messages, and
    # the stage's DLQ may hold more), a dry run, then the redrive
    page.get_by_test_id("nav-dlq").click()
    selection = f"body.taskID == '{task_id}'"
    page.get_by_test_id("dlq-filter").fill(selection)
    page.get_by_test_id("dlq-preview").click()
    pw.expect(page.get_by_test_id("dry-run").get_by_test_id("acc-matched")).to_have_text("1")
    pw.expect(page.get_by_test_id("dlq-filter")).to_have_value(selection)  # the selection survives the dry run
    page.get_by_test_id("dlq-redrive").click()
    pw.expect(page.get_by_test_id("acc-moved")).to_have_text("1")
    pw.expect(page.get_by_test_id("accounting")).to_have_attribute("data-ok", "true")

    # THEN its page follows it to COMPLETED, the workflow's path green
    page.goto(f"{console.base_url}/tasks/{task_id}")
    pw.expect(status).to_have_text("COMPLETED", timeout=20_000)
    pw.expect(status).to_have_css("color", GREEN)
    execution = page.locator('[data-testid^="execution-"]').first
    pw.expect(execution).to_have_attribute("data-status", "SUCCEEDED")
    # a redriven message finds the task already past PROCESSING: MarkProcessing's condition is caught (the
    # expected detour, amber) and Resume sends it through MarkRedriven
    pw.expect(execution.get_by_test_id("state-MarkProcessing")).to_have_attribute("data-outcome", "caught")
    pw.expect(execution.get_by_test_id("graph")).to_have_count(1)  # the state machine drawn (tmctl.console.graph)
    for state in ("MarkRedriven", "RunSteps", "MarkCompleted"):
        node = execution.get_by_test_id(f"state-{state}")
        pw.expect(node).to_have_attribute("data-outcome", "succeeded")
        pw.expect(node.locator("rect").first).to_have_css("stroke", GREEN)  # the path drawn green
    for state in ("MarkFailed", "TaskFailed"):
        pw.expect(execution.get_by_test_id(f"state-{state}")).to_have_attribute("data-outcome", "not_run")
    pw.expect(execution.locator('[data-outcome="failed"]')).to_have_count(0)
    # a state's input and output on click (the page's own script; text only)
    execution.get_by_test_id("state-RunSteps").click()
    detail = execution.get_by_test_id("state-detail")
    pw.expect(detail).to_be_visible()
    pw.expect(detail).to_have_attribute("data-state", "RunSteps")
    pw.expect(detail).to_contain_text(task_id)
    pw.expect(page.get_by_test_id("history")).to_contain_text("redriven")
    for stop in ("api", "queue", "processor", "dlq", "workflow", "result"):  # the whole way green now
        pw.expect(page.get_by_test_id(f"stop-{stop}")).to_have_attribute("data-outcome", "succeeded")
    pw.expect(page.get_by_test_id("stop-processor")).to_have_css("border-top-color", GREEN)
    assert not page.problems, page.problems


def test_an_unknown_task_is_an_error_page_whose_links_work_with_nothing_blocked(console, page):
    # GIVEN a task that does not exist
    page.goto(console.url)
    missing = uid("nobody")
    assert page.goto(f"{console.base_url}/tasks/{missing}").status == 404
    pw.expect(page.get_by_test_id("error")).to_contain_text(missing)

    # WHEN its way out is clicked THEN it leads on, and the page broke no rule of the CSP (no script error)
    page.get_by_role("link", name="tasks", exact=True).click()
    page.wait_for_url(f"{console.base_url}/tasks")
    pw.expect(page.get_by_test_id("task-table")).to_be_visible()
    assert [p for p in page.problems if "404" not in p] == []
