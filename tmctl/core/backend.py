"""Which backend a target talks to, and what it can do: decided here, once.

AWS, LocalStack and MiniStack differ in a few places tmctl cares about: the
SQS move-task API, Step Functions' RedriveExecution, and the non-consuming
inspection endpoint for SQS messages. Commands ask the Backend; where a name
alone could be wrong (engines grow features), callers also fall back when the
call itself answers with one of UNSUPPORTED_CODES.
"""

from __future__ import annotations

from dataclasses import dataclass

from tmctl.core.errors import error_code, http_status
from tmctl.core.target import Target

AWS, MINISTACK, LOCALSTACK, UNKNOWN = "aws", "ministack", "localstack", "unknown"

# What an engine answers for an API it does not implement (checked by code, never by text).
UNSUPPORTED_CODES = frozenset({
    "InvalidAction", "UnknownOperationException", "UnknownOperation", "NotImplemented",
    "NotImplementedException", "InvalidParameterValue.NotImplemented", "501",
})

PEEK_PATHS = {MINISTACK: "/_ministack/sqs/messages", LOCALSTACK: "/_aws/sqs/messages"}


@dataclass(frozen=True)
class Backend:
    name: str  # aws | ministack | localstack | unknown
    version: str = ""
    endpoint_url: str | None = None

    @property
    def is_emulator(self) -> bool:
        return self.name != AWS

    @property
    def peek_url(self) -> str | None:
        """The engine's non-consuming SQS inspection endpoint, if it has one."""
        path = PEEK_PATHS.get(self.name)
        return f"{self.endpoint_url}{path}" if path and self.endpoint_url else None

    @property
    def has_move_tasks(self) -> bool:
        """SQS StartMessageMoveTask / ListMessageMoveTasks / CancelMessageMoveTask."""
        return self.name in {AWS, LOCALSTACK}

    @property
    def has_dead_letter_source_listing(self) -> bool:
        """SQS ListDeadLetterSourceQueues."""
        return self.name in {AWS, LOCALSTACK}

    @property
    def has_redrive_execution(self) -> bool:
        """Step Functions RedriveExecution (LocalStack's free tier and MiniStack lack it)."""
        return self.name == AWS

    def describe(self) -> str:
        if self.name == AWS:
            return "AWS"
        return f"{self.name} {self.version}".strip() + (f" on {self.endpoint_url}" if self.endpoint_url else "")


def detect(target: Target) -> Backend:
    """AWS for a non-local target; else whichever engine answers its health endpoint."""
    if not target.local:
        return Backend(AWS)
    from tmctl.core.local.emulator import probe

    engine = probe(target.endpoint_url)
    if engine is None:
        return Backend(UNKNOWN, "", target.endpoint_url)
    return Backend(engine.name, engine.version, target.endpoint_url)


def unsupported(err: Exception) -> bool:
    """True when a botocore error says the backend lacks the operation."""
    return error_code(err) in UNSUPPORTED_CODES or http_status(err) == 501
