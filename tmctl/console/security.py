"""The console's guard: one ASGI middleware every request passes, before any
page or action runs. It needs nothing but the standard library.

The console is a local web server with the developer's AWS credentials behind
it, so any page the browser has open (any site, in any tab) must not be able to
read from it or act through it:

- **Host** must be `127.0.0.1:<port>` or `localhost:<port>`: a DNS-rebinding
  page (evil.example resolving to 127.0.0.1) sends its own name, and is refused
  before anything else, the token included.
- **Token**: the URL tmctl prints carries `?token=…` (secrets.token_urlsafe);
  it is traded for an HttpOnly, SameSite=Strict cookie and a redirect to the
  clean URL (as Jupyter and datasette do). Any request without a valid cookie
  or token is refused. The cookie's name carries the port: cookies are not
  isolated by port, and two consoles (two stages) must not clobber each other.
- **Writes** (POST, the only state-changing method; others are refused) need a
  same-origin `Origin` (or, when a browser sends none, `Referer`) and the CSRF
  token (a hidden form field `csrf`, or the `X-CSRF-Token` header) derived
  from the session token. On an AWS production stage the console is read-only
  unless started with --allow-writes: every POST is refused.
- **No CORS**: no response ever carries an Access-Control-* header; pages may
  not be framed; scripts only from the console itself.

A refusal is a 403 with a one-line reason, and the request never reaches the
application: nothing is read from or written to the stack.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_PARAM = "token"
CSRF_FIELD = "csrf"
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
ALLOWED_METHODS = SAFE_METHODS | {"POST"}
MAX_FORM_BYTES = 64 * 1024  # the biggest form is the failure-injection editor
READ_ONLY_MESSAGE = ("read-only: this is the AWS production stage {stage}; nothing was changed "
                     "(restart with `tmctl console --allow-writes` to act on it)")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                 b"form-action 'self'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from its secret, so it needs no
    storage and is worthless without the cookie."""
    return hmac.new(session_token.encode(), b"tmctl-console-csrf", hashlib.sha256).hexdigest()


def cookie_name(port: int) -> str:
    return f"tmctl_console_{port}"


def _headers(scope: Scope) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for name, value in scope.get("headers") or []:
        out.setdefault(name.lower(), value)
    return out


def _cookies(raw: bytes) -> dict[str, str]:
    jar: dict[str, str] = {}
    for part in raw.decode("latin-1").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            jar.setdefault(name, value)
    return jar


class Guard:
    """ASGI middleware enforcing the rules in this module's docstring."""

    def __init__(self, app: ASGIApp, *, token: str, port: int, read_only: bool = False, stage: str = ""):
        self.app = app
        self.token = token
        self.csrf = csrf_token(token)
        self.port = port
        self.read_only = read_only
        self.stage = stage
        self.cookie = cookie_name(port)
        self.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        headers = _headers(scope)
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if host not in self.hosts:
            await _refuse(send, 403, f"refused: Host {host or '(none)'} is not this console's "
                                     f"(open http://127.0.0.1:{self.port}/)")
            return
        method = scope["method"]
        if method not in ALLOWED_METHODS:
            await _refuse(send, 405, f"refused: {method} is not used here", [(b"allow", b"GET, HEAD, POST")])
            return
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if TOKEN_PARAM in query:
            await self._trade_token(scope, query, send)
            return
        if not hmac.compare_digest(_cookies(headers.get(b"cookie", b"")).get(self.cookie, ""), self.token):
            await _refuse(send, 403, "refused: no valid console token (open the URL `tmctl console` printed, "
                                     "with its ?token=)")
            return
        if method == "POST":
            body = await self._checked_write(headers, host, receive, send)
            if body is None:
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, _with_headers(send))

    async def _trade_token(self, scope: Scope, query: dict[str, list[str]], send: Send) -> None:
        given = query.pop(TOKEN_PARAM)
        if scope["method"] not in SAFE_METHODS or len(given) != 1 or not hmac.compare_digest(given[0], self.token):
            await _refuse(send, 403, "refused: that console token is not valid (each `tmctl console` run "
                                     "prints a new one)")
            return
        rest = urllib.parse.urlencode(query, doseq=True)
        # Only a path on this console: "//host/x" or "/\\host" would send the browser (and the user's trust in
        # the link tmctl printed) to another site.
        location = "/" + (scope.get("path") or "/").lstrip("/\\") + (f"?{rest}" if rest else "")
        cookie = f"{self.cookie}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1")),
            (b"content-length", b"0"), *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": b""})

    async def _checked_write(self, headers: dict[bytes, bytes], host: str, receive: Receive,
                             send: Send) -> bytes | None:
        """The POST's body when the write may go ahead; None once it is refused."""
        origin = headers.get(b"origin")
        expected = f"http://{host}"
        if origin is not None:
            if origin.decode("latin-1").lower() != expected:
                await _refuse(send, 403, f"refused: a write from origin {origin.decode('latin-1')} "
                                         "(only this console's own pages may write)")
                return None
        else:
            referer = headers.get(b"referer", b"").decode("latin-1")
            if not referer.lower().startswith(expected + "/"):
                await _refuse(send, 403, "refused: a write with neither Origin nor a same-origin Referer")
                return None
        if self.read_only:
            await _refuse(send, 403, READ_ONLY_MESSAGE.format(stage=self.stage))
            return None
        body = await _read_body(receive, MAX_FORM_BYTES)
        if body is None:
            await _refuse(send, 413, f"refused: a form of over {MAX_FORM_BYTES} bytes")
            return None
        given = headers.get(CSRF_HEADER, b"").decode("latin-1")
        if not given and headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            given = (form.get(CSRF_FIELD) or [""])[0]
        if not given or not hmac.compare_digest(given, self.csrf):
            await _refuse(send, 403, "refused: a write without this page's CSRF token (reload the page and "
                                     "try again)")
            return None
        return body


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")]
            names = {k.lower() for k, _ in kept}
            message["headers"] = kept + [(k, v) for k, v in SECURITY_HEADERS if k not in names]
        await send(message)

    return wrapped


async def _refuse(send: Send, status: int, reason: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (reason + "\n").encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        *(extra or []), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
