"""Shared state on ctx.obj, built once in the root callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from tmctl.core.target import Clients, Target

LocalFlag = Annotated[bool, typer.Option("--local", help="Target the local emulator (default endpoint "
                                         "http://localhost:4566; TMCTL_LOCAL=1 makes it the default).")]


@dataclass
class State:
    local: bool = False
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    stage: str | None = None
    output: str | None = None  # table | json | None (auto: table on a TTY)
    debug: bool = False
    _clients: dict = field(default_factory=dict)

    def target(self, local: bool = False) -> Target:
        from tmctl.core.target import resolve_target

        return resolve_target(local=self.local or local, endpoint_url=self.endpoint_url, region=self.region,
                              profile=self.profile, stage=self.stage)

    def clients(self, local: bool = False) -> Clients:
        from tmctl.core.target import Clients

        target = self.target(local)
        if target not in self._clients:
            self._clients[target] = Clients(target)
        return self._clients[target]


def state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)
