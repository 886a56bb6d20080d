"""Shared state on ctx.obj, built once in the root callback. Global options
(`--local`, `--stage`, `--output`, …) live here whether they were typed
before or after the subcommand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tmctl.core.backend import Backend
    from tmctl.core.stack import StackInfo
    from tmctl.core.target import Clients, Target


@dataclass
class State:
    local: bool = False
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    stage: str | None = None
    output: str | None = None  # table | json | None (auto: table on a TTY)
    debug: bool = False
    _cache: dict = field(default_factory=dict)

    def target(self, local: bool = False) -> Target:
        """The target, its region resolved: on AWS that is the boto3 Session's
        (a profile's `region` included), so it builds the Session once."""
        return self.clients(local).target

    def clients(self, local: bool = False) -> Clients:
        from tmctl.core.target import Clients, resolve_target

        target = resolve_target(local=self.local or local, endpoint_url=self.endpoint_url, region=self.region,
                                profile=self.profile, stage=self.stage)
        key = ("clients", target)
        if key not in self._cache:
            self._cache[key] = Clients(target)
        return self._cache[key]

    def stack(self) -> StackInfo:
        """The deployed stack's outputs, read once per command."""
        from tmctl.core.stack import load_stack

        target = self.target()
        key = ("stack", target)
        if key not in self._cache:
            self._cache[key] = load_stack(self.clients().cloudformation, target)
        return self._cache[key]

    def backend(self) -> Backend:
        """AWS, or whichever engine answers the local endpoint (tmctl.core.backend decides)."""
        from tmctl.core.backend import detect

        target = self.target()
        key = ("backend", target)
        if key not in self._cache:
            self._cache[key] = detect(target)
        return self._cache[key]


def state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)
