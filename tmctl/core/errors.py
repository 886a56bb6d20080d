"""Domain errors and the exit codes they map to. The CLI turns any TmctlError
into one stderr line (message + fix) and its exit code; nothing else does."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    UNREACHABLE = 4
    CHECK_FAILED = 5
    INTERRUPTED = 130


class TmctlError(Exception):
    exit_code = ExitCode.ERROR

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class UsageError(TmctlError):
    exit_code = ExitCode.USAGE


class ConfirmationRequired(UsageError):
    """A question before a change on AWS, with nobody to answer it (no terminal
    on stdin) and no --yes: refused before anything is created or deleted."""

    def __init__(self, what: str):
        super().__init__(f"{what} asks for confirmation, and stdin is not a terminal",
                         "pass --yes to go ahead without the question")


class Cancelled(TmctlError):
    """The question was answered no: nothing was changed."""


class NotFound(TmctlError):
    exit_code = ExitCode.NOT_FOUND


class BackendUnreachable(TmctlError):
    exit_code = ExitCode.UNREACHABLE


class CheckFailed(TmctlError):
    exit_code = ExitCode.CHECK_FAILED


class DeployFailed(TmctlError):
    pass


class ApiError(TmctlError):
    """A 4xx/5xx from the Task API, with its JSON error code."""

    def __init__(self, status: int, code: str, message: str, fix: str | None = None):
        super().__init__(f"API answered {status} {code}: {message}", fix)
        self.status, self.code = status, code
        if status == 404:
            self.exit_code = ExitCode.NOT_FOUND
        elif 400 <= status < 500:
            self.exit_code = ExitCode.USAGE


NOT_FOUND_CODES = frozenset({
    "ResourceNotFoundException", "NoSuchEntity", "NotFoundException", "ParameterNotFound",
    "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "ExecutionDoesNotExist",
    "StateMachineDoesNotExist", "NoSuchBucket", "NoSuchKey",
})
AUTH_CODES = frozenset({
    "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException",
    "AccessDenied", "AccessDeniedException", "SignatureDoesNotMatch",
})


def error_code(err: BaseException) -> str:
    """An AWS error's code (a botocore ClientError's `Error.Code`; "" for anything
    else): the one way tmctl reads one. Errors are told apart by it, never by text."""
    response = getattr(err, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def http_status(err: BaseException) -> int | None:
    """The HTTP status an AWS error came with, if any."""
    response = getattr(err, "response", None) or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def from_client_error(err: Exception, what: str) -> TmctlError:
    """Map a botocore error to a domain error by its code, never its text."""
    code = error_code(err)
    if code in NOT_FOUND_CODES:
        return NotFound(f"{what}: not found ({code})", "run `tmctl up` for this stage first")
    if code in AUTH_CODES:
        return TmctlError(f"{what}: {code}", "check your AWS credentials/profile, or pass --local")
    if type(err).__name__ in {"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"}:
        return BackendUnreachable(f"{what}: cannot reach the endpoint",
                                  "start the emulator with `tmctl local start` or check --endpoint-url")
    return TmctlError(f"{what}: {code or type(err).__name__}: {err}")
