"""Live figures for every open page from ONE poller per console process.

The poller runs only while at least one page listens (a server-sent events
stream is open) and stops when the last one leaves. Each tick (0.5 s) it makes
a cheap look (`fingerprint`: both queues' depths and the newest executions'
statuses, three small calls); only when that changed, or every
`refresh_every` seconds, does it read the full figures and the newest tasks'
statuses and push what differs, never spending more than READ_SHARE of the
time on full reads. The engine's cost is bounded by the interval and that
share, never by the number of tabs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tmctl.console")

INTERVAL = 0.5
REFRESH_EVERY = 5.0
# At most this share of the time goes to full reads while the pipeline changes on every tick (a full read
# of 1,000 tasks takes ~0.17 s on the embedded emulator: one every ~0.7 s at most; of 10,000, ~0.65 s: ~2.6 s).
READ_SHARE = 0.2
QUEUE_SIZE = 16  # events a slow page may fall behind by; older ones are dropped (the next carries all figures)


def sse(event: str, data: Any) -> bytes:
    """One server-sent event (a single data line: the JSON has no newlines)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


class Hub:
    """The shared poller and its listeners. `figures()` returns the overview's
    flat figures; `task_statuses(watched)` taskID → status of the newest tasks
    and of the watched ones (a task page open on an older task);
    `fingerprint()` anything comparable that changes when the pipeline moves.
    All three are blocking (boto3) and run in a worker thread."""

    def __init__(self, figures: Callable[[], dict], task_statuses: Callable[[frozenset[str]], dict[str, str]],
                 fingerprint: Callable[[], Any], *, interval: float = INTERVAL, refresh_every: float = REFRESH_EVERY):
        self._figures, self._task_statuses, self._fingerprint = figures, task_statuses, fingerprint
        self.interval, self.refresh_every = interval, refresh_every
        self.listeners: set[asyncio.Queue] = set()
        self.watched: dict[str, int] = {}  # taskID → pages open on it
        self.last_figures: dict = {}
        self.last_tasks: dict[str, str] = {}
        self.polls = 0  # full reads, for tests and the benchmark
        self.ticks = 0  # cheap looks
        self._task: asyncio.Task | None = None
        self.closing = False  # the server is shutting down: every stream ends (set from its loop)
        self._wake: set[asyncio.Event] = set()
        self._last_print: Any = None
        self._last_full = 0.0
        self._last_tick = 0.0  # when a tick last saw the engine (monotonic)
        self._next_full = 0.0  # no full read before this (monotonic): see READ_SHARE
        self._held = False  # the last tick saw a change and left its full read to the end of that window

    def current_figures(self) -> dict | None:
        """The figures as of the last tick, when the poller runs and looked within two intervals (a page
        can render from them without asking the engine); None otherwise."""
        if self.running and self.last_figures and time.monotonic() - self._last_tick <= 2 * self.interval + 0.5:
            return self.last_figures
        return None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def subscribe(self, task_id: str | None = None) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.listeners.add(queue)
        if task_id:
            self.watched[task_id] = self.watched.get(task_id, 0) + 1
            # The page was rendered before this stream opened: a change in between was broadcast to the
            # others only. Forget the task's last status and read at the next tick, so this page hears where
            # the task is now (and reloads if that is not what it shows).
            self.last_tasks.pop(task_id, None)
            self._last_print = None
        if self.last_figures:
            queue.put_nowait(sse("overview", self.last_figures))
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue, task_id: str | None = None) -> None:
        self.listeners.discard(queue)
        if task_id and task_id in self.watched:
            self.watched[task_id] -= 1
            if not self.watched[task_id]:
                del self.watched[task_id]
        # the poller sees nobody left at its next tick and ends

    def close(self) -> None:
        """End every open stream now (the server is stopping: nothing waits for them)."""
        self.closing = True
        for event in list(self._wake):
            event.set()

    def _broadcast(self, message: bytes) -> None:
        for queue in list(self.listeners):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    async def _run(self) -> None:
        while self.listeners:
            try:
                await self.tick()
            except Exception as err:  # the engine went away, say: tell the pages, keep trying at the interval
                log.warning("live update failed: %s", err)
                self._broadcast(sse("problem", {"message": str(err)[:300]}))
                self._held = False  # a change held back before the failure must not turn the pause into 0
            await asyncio.sleep(self._pause())
        self._task = None

    def _pause(self) -> float:
        """Until the next tick: the interval, or only until the READ_SHARE window ends when a change waits
        for it (a whole interval more would add up to 0.5 s to what the pages see)."""
        if self._held:
            return max(0.0, min(self.interval, self._next_full - time.monotonic()))
        return self.interval

    async def tick(self) -> None:
        self.ticks += 1
        fingerprint = await asyncio.to_thread(self._fingerprint)
        now = time.monotonic()
        moved = fingerprint != self._last_print or now - self._last_full >= self.refresh_every
        if not moved or now < self._next_full:
            self._last_tick = now  # nothing moved (or the last full read was too recent: a later tick sees it)
            self._held = moved
            return
        self._held = False
        self._last_print, self._last_full = fingerprint, now
        self.polls += 1
        figures, statuses = await asyncio.gather(asyncio.to_thread(self._figures),
                                                 asyncio.to_thread(self._task_statuses, frozenset(self.watched)))
        if figures != self.last_figures:
            self.last_figures = figures
            self._broadcast(sse("overview", figures))
        self._last_tick = time.monotonic()
        # a busy pipeline changes on every tick: full reads then take at most READ_SHARE of the time
        self._next_full = self._last_tick + (self._last_tick - now) * (1 / READ_SHARE - 1)
        changed = {k: v for k, v in statuses.items() if self.last_tasks.get(k) != v}
        self.last_tasks = {**self.last_tasks, **statuses}
        if changed:
            self._broadcast(sse("tasks", changed))


async def stream(hub: Hub, is_disconnected: Callable, *, task_id: str | None = None, keepalive: float = 15.0):
    """The body of one page's event stream: the hub's events, a comment line
    every `keepalive` seconds (so a dead connection is noticed), until the page goes."""
    queue = hub.subscribe(task_id)
    closing = asyncio.Event()
    hub._wake.add(closing)
    waits: tuple[asyncio.Future, ...] = ()
    try:
        yield b"retry: 1000\n\n"
        while not hub.closing:
            getter = asyncio.ensure_future(queue.get())
            stopper = asyncio.ensure_future(closing.wait())
            waits = (getter, stopper)
            done, _ = await asyncio.wait(waits, timeout=keepalive, return_when=asyncio.FIRST_COMPLETED)
            for pending in waits:
                if pending not in done:
                    pending.cancel()
            if getter in done:
                yield getter.result()
            elif stopper in done or await is_disconnected():
                return
            else:
                yield b": keepalive\n\n"
    finally:
        for pending in waits:  # cancelled mid-wait (the page went): leave no task behind
            pending.cancel()
        hub._wake.discard(closing)
        hub.unsubscribe(queue, task_id)
