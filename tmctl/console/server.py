"""Serving the console on 127.0.0.1: the port, the URL with its token, the
browser. The socket is bound here (never on another interface) and handed to
uvicorn, so the port printed is the port served, with no race in between.

Port: 8765 unless taken, then the next few, then any free one. A fixed
default keeps the same origin from run to run (an `ssh -L 8765:127.0.0.1:8765`
forward or a bookmark keeps working; each run's token still differs), and the
fallback lets two consoles (two stages) run side by side. `--port N` is taken
as given, or refused if busy; `--port 0` asks the system for a free one."""

from __future__ import annotations

import errno
import os
import socket
import threading

from tmctl.console.app import create_app
from tmctl.console.security import new_token
from tmctl.console.source import ConsoleSource
from tmctl.core.errors import UsageError
from tmctl.core.wait import poll

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
FALLBACK_PORTS = 10  # 8765 … 8774, then any free port


def bind(port: int | None = None) -> socket.socket:
    """A listening socket on 127.0.0.1: `port` exactly (0: any free one), or by default 8765 or a fallback."""
    candidates = [port] if port is not None else [*range(DEFAULT_PORT, DEFAULT_PORT + FALLBACK_PORTS), 0]
    for candidate in candidates:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((HOST, candidate))
            sock.listen(128)
        except OSError as err:
            sock.close()
            if err.errno != errno.EADDRINUSE:
                raise
            if port is not None:
                raise UsageError(f"port {port} on {HOST} is in use", "pass another --port, or --port 0 for any "
                                                                     "free one") from None
            continue
        sock.setblocking(False)
        return sock
    raise UsageError(f"no free port on {HOST}", "pass --port N")  # pragma: no cover - port 0 always binds


def can_open_browser() -> bool:
    """A browser can be shown: a desktop session (macOS and Windows always have one)."""
    import sys

    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class ConsoleServer:
    """The console app on its own socket, run in the foreground (`serve`) or
    in a thread (`start`/`stop`, for tests and benchmarks)."""

    def __init__(self, source: ConsoleSource, *, port: int | None = None, token: str | None = None):
        import uvicorn

        self.sock = bind(port)
        self.port = self.sock.getsockname()[1]
        self.token = token or new_token()
        self.app = create_app(source, token=self.token, port=self.port)
        # lifespan off: nothing to set up; a short graceful shutdown: the event streams never end on their own
        hub = self.app.app.state.hub

        class Server(uvicorn.Server):
            async def shutdown(self, sockets=None) -> None:
                hub.close()  # the event streams end by themselves: nothing for the shutdown to cancel
                await super().shutdown(sockets)

        self.server = Server(uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                            timeout_graceful_shutdown=2))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """What to open: the token is traded for a cookie and dropped from the address bar."""
        return f"{self.base_url}/?token={self.token}"

    def serve(self) -> None:
        """Until Ctrl-C (uvicorn re-raises it as KeyboardInterrupt once it has shut down)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def start(self, timeout: float = 10.0) -> ConsoleServer:
        self._thread = threading.Thread(target=self.serve, name=f"tmctl-console-{self.port}", daemon=True)
        self._thread.start()
        poll(lambda: self.server.started or not self._thread.is_alive(), bool, timeout=timeout, interval=0.01)
        if not self.server.started:
            raise RuntimeError("the console did not start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
