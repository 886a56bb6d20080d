"""The live poller and a task page that opens its stream late: a status
change between the page's render and its stream must still reach it (the
browser test, tests/integration/test_console_browser.py, waits on exactly that)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tmctl.console.live import Hub, sse

pytestmark = pytest.mark.unit


def test_a_task_page_that_subscribes_after_a_change_hears_the_tasks_current_status():
    state = {"status": "QUEUED"}

    async def scenario():
        hub = Hub(lambda: {"tasks.total": 1}, lambda watched: {"t-1": state["status"]}, lambda: "same",
                  interval=0.01, refresh_every=60)
        overview = hub.subscribe()  # another page keeps the poller running
        await asyncio.sleep(0.05)
        # the task page is rendered (QUEUED) ... the task moves on and the poller tells the pages listening ...
        state["status"] = "COMPLETED"
        hub._last_print = None  # the engine's fingerprint moved
        await asyncio.sleep(0.05)
        assert hub.last_tasks["t-1"] == "COMPLETED"
        # ... and only then does the task page open its stream
        page = hub.subscribe("t-1")
        await asyncio.sleep(0.05)
        got = [page.get_nowait() for _ in range(page.qsize())]
        for q, task_id in ((overview, None), (page, "t-1")):
            hub.unsubscribe(q, task_id)
        await asyncio.sleep(0.05)
        return hub, got

    hub, got = asyncio.run(scenario())
    assert sse("tasks", {"t-1": "COMPLETED"}) in got
    assert not hub.running and not hub.watched


def test_a_change_held_back_by_the_read_share_is_read_when_its_window_ends_not_a_whole_interval_later():
    prints = iter(["before", "after"])

    async def scenario():
        hub = Hub(lambda: {"tasks.total": 1}, lambda watched: {}, lambda: next(prints), interval=0.5,
                  refresh_every=60)
        await hub.tick()  # the first look: a full read
        assert hub.polls == 1 and hub._pause() == hub.interval  # nothing waits: the usual interval
        hub._next_full = time.monotonic() + 0.2  # as after a slow full read: the window runs 0.2 s more
        await hub.tick()  # the pipeline moved, inside the window
        assert hub.polls == 1  # held back ...
        return hub._pause()  # ... and looked at again when the window ends

    pause = asyncio.run(scenario())
    assert 0.05 < pause <= 0.2


def test_an_engine_that_fails_after_a_change_was_held_back_is_asked_again_an_interval_later_not_at_once():
    calls = {"n": 0}
    prints = iter(["before", "after"])

    def fingerprint():
        calls["n"] += 1
        try:
            return next(prints)
        except StopIteration:
            raise RuntimeError("ExpiredToken") from None  # the credentials ran out, say

    async def scenario():
        hub = Hub(lambda: {"tasks.total": 1}, lambda watched: {}, fingerprint, interval=0.1, refresh_every=60)
        await hub.tick()  # a full read
        hub._next_full = time.monotonic() + 0.05  # the read-share window open a moment more: the next change waits
        page = hub.subscribe()
        await asyncio.sleep(0.35)  # the poller: a held-back change, then failures
        hub.unsubscribe(page)
        await asyncio.sleep(0.15)

    asyncio.run(scenario())
    assert calls["n"] <= 8  # ~ one look per 0.1 s interval, not a busy loop (thousands)
