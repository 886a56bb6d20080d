"""The Task API over real HTTP (urllib: no extra dependency, fast to import).
Retries throttles and transient 5xx with jittered backoff; a create always
carries a taskID, so its retry is an idempotent replay, never a duplicate.
A stack deployed with ApiAuth=AWS_IAM gets SigV4-signed requests (`SigV4`,
chosen from the stack's outputs by `task_api`)."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tmctl.core.contract import FINAL_STATUSES
from tmctl.core.errors import ApiError, BackendUnreachable, UsageError

if TYPE_CHECKING:
    from tmctl.core.stack import StackInfo

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IAM_AUTH = "AWS_IAM"  # the stack's ApiAuth output when callers must sign
NO_CREDENTIALS_FIX = "configure AWS credentials (--profile, AWS_PROFILE or the environment)"


@dataclass(frozen=True)
class SigV4:
    """Signs requests for an HTTP API route with AuthorizationType AWS_IAM.
    `credentials` are botocore's (e.g. `Session.get_credentials()`): refreshable
    ones are read again for every request, so a long wait never signs with
    expired keys."""

    credentials: Any
    region: str
    service: str = "execute-api"

    def headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus Authorization, X-Amz-Date (and X-Amz-Security-Token for temporary keys)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        SigV4Auth(self.credentials.get_frozen_credentials(), self.service, self.region).add_auth(request)
        return dict(request.headers.items())


@dataclass
class Response:
    status: int
    body: dict
    attempts: int


class TaskApi:
    def __init__(self, base_url: str, *, timeout: float = 15.0, max_attempts: int = 8, backoff: float = 0.1,
                 signer: SigV4 | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout, self.max_attempts, self.backoff = timeout, max_attempts, backoff
        self.signer = signer

    def request(self, method: str, path: str, body: bytes | None = None, *,
                content_type: str | None = "application/json", retry: bool = True) -> Response:
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        if content_type and body is not None:
            headers["Content-Type"] = content_type
        attempts = 0
        while True:
            attempts += 1
            # signed per attempt: a retry gets a fresh X-Amz-Date (AWS refuses signatures older than 5 min)
            sent = self.signer.headers(method, url, body, headers) if self.signer else headers
            req = urllib.request.Request(url, data=body, method=method, headers=sent)  # noqa: S310
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                    return Response(resp.status, _json(resp.read()), attempts)
            except urllib.error.HTTPError as err:
                status, payload = err.code, _json(err.read())
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if not retry or attempts >= self.max_attempts:
                    raise BackendUnreachable(f"cannot reach the API at {self.base_url}: {err}",
                                             "is the stack up? run `tmctl status`") from None
                status, payload = 0, {}
            if status and (status not in RETRY_STATUSES or not retry or attempts >= self.max_attempts):
                return Response(status, payload, attempts)
            time.sleep(random.uniform(0, min(2.0, self.backoff * 2 ** attempts)))

    def create(self, task: dict) -> Response:
        return self.request("POST", "/tasks", json.dumps(task).encode())

    def get(self, task_id: str) -> Response:
        return self.request("GET", "/tasks/" + urllib.parse.quote(task_id, safe=""))

    def list(self, status: str | None = None, limit: int | None = None, next_token: str | None = None) -> Response:
        query = {k: v for k, v in (("status", status), ("limit", limit), ("nextToken", next_token)) if v}
        # %20, never '+', for a space: SigV4's canonical query (what AWS recomputes) has no '+' form
        qs = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return self.request("GET", "/tasks" + ("?" + qs if query else ""))


def task_api(stack: StackInfo, session: Any = None, **kwargs: Any) -> TaskApi:
    """The client a deployed stack needs: SigV4-signed with `session`'s
    credentials and region (a boto3 Session) when the stack's ApiAuth output
    says AWS_IAM, plain otherwise (NONE; JWT callers bring their own token)."""
    signer = None
    if stack.outputs.get("ApiAuth") == IAM_AUTH:
        credentials = session.get_credentials() if session is not None else None
        if credentials is None:
            raise UsageError(f"the API of {stack.name} takes only signed (AWS_IAM) requests and there are no AWS "
                             "credentials to sign with", NO_CREDENTIALS_FIX)
        signer = SigV4(credentials, session.region_name)
    return TaskApi(stack.api_url, signer=signer, **kwargs)


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"error": "NOT_JSON", "message": raw[:200].decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


def ok(resp: Response) -> dict:
    """The body of a 2xx, else the API's own error as a domain error."""
    if 200 <= resp.status < 300:
        return resp.body
    fix = None
    if resp.status in (401, 403) and "error" not in resp.body:  # the gateway's refusal, not the function's
        fix = ("the stage's ApiAuth refused the caller: with AWS_IAM your credentials need execute-api:Invoke "
               "on this API; with JWT send a valid token (see the stack's ApiAuth output)")
    raise ApiError(resp.status, str(resp.body.get("error", "HTTP_ERROR")),
                   str(resp.body.get("message", resp.body)), fix)


def wait_final(api: TaskApi, task_id: str, timeout: float = 60.0, interval: float = 0.1) -> dict:
    """Poll until the task is COMPLETED or FAILED (or the timeout passes)."""
    from tmctl.core.wait import poll

    return poll(lambda: ok(api.get(task_id)), lambda task: task.get("status") in FINAL_STATUSES, timeout=timeout,
                interval=interval)


def new_task_id() -> str:
    return f"task-{time.strftime('%Y%m%d%H%M%S')}-{random.getrandbits(32):08x}"
