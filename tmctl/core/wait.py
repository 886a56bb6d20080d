"""The one waiting helper: poll until done or a deadline, with growing pauses.
Every "wait until…" in tmctl goes through `poll`; no module keeps its own loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(fetch: Callable[[], T], done: Callable[[T], bool], *, timeout: float, interval: float = 0.05,
         max_interval: float = 1.0, backoff: float = 1.5, sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `fetch` until `done(value)` or `timeout` seconds have passed; return
    the last value either way (the caller decides what a timeout means)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return value
        sleep(min(interval, remaining))
        interval = min(max_interval, interval * backoff)


def pauses(first: float = 0.05, most: float = 1.0, backoff: float = 1.5):
    """An endless series of growing pauses, for loops that do their own work between waits."""
    pause = first
    while True:
        yield pause
        pause = min(most, pause * backoff)
