"""The Task API over real HTTP (urllib: no extra dependency, fast to import).
Retries throttles and transient 5xx with jittered backoff; a create always
carries a taskID, so its retry is an idempotent replay, never a duplicate."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from tmctl.core.errors import ApiError, BackendUnreachable

RETRY_STATUSES = frozenset({429, 502, 503, 504})
FINAL = frozenset({"COMPLETED", "FAILED"})


@dataclass
class Response:
    status: int
    body: dict
    attempts: int


class TaskApi:
    def __init__(self, base_url: str, *, timeout: float = 15.0, max_attempts: int = 8, backoff: float = 0.1):
        self.base_url = base_url.rstrip("/")
        self.timeout, self.max_attempts, self.backoff = timeout, max_attempts, backoff

    def request(self, method: str, path: str, body: bytes | None = None, *,
                content_type: str | None = "application/json", retry: bool = True) -> Response:
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        if content_type and body is not None:
            headers["Content-Type"] = content_type
        attempts = 0
        while True:
            attempts += 1
            req = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
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
        return self.request("GET", "/tasks" + ("?" + urllib.parse.urlencode(query) if query else ""))


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
    raise ApiError(resp.status, str(resp.body.get("error", "HTTP_ERROR")),
                   str(resp.body.get("message", resp.body)))


def wait_final(api: TaskApi, task_id: str, timeout: float = 60.0, interval: float = 0.1) -> dict:
    """Poll until the task is COMPLETED or FAILED (or the timeout passes)."""
    from tmctl.core.wait import poll

    return poll(lambda: ok(api.get(task_id)), lambda task: task.get("status") in FINAL, timeout=timeout,
                interval=interval)


def new_task_id() -> str:
    return f"task-{time.strftime('%Y%m%d%H%M%S')}-{random.getrandbits(32):08x}"
