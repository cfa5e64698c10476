"""A real uvicorn serving an app on a free loopback port, in a background thread, for e2e tests.

An ``AsgiServer`` is served as ``AsgiServer.run()`` serves it: with genro-asgi's HTTP protocol
(read deadlines, bounded head) and its connection settings; anything passed as
``uvicorn_options`` wins.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn

from ..server import AsgiServer
from ..types import ASGIApp

# uvicorn options an AsgiServer's settings decide for the connections it serves; the rest
# (host, port, workers, logging, shutdown) belong to the test
_CONNECTION_OPTIONS = ("http", "timeout_keep_alive", "limit_concurrency",
                       "h11_max_incomplete_event_size", "ws_max_size", "ws_ping_interval",
                       "ws_ping_timeout")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it), for a server a test starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


class LiveServer:
    """``with LiveServer(app) as live: httpx.get(live.url + "/")``."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int | None = None,
                 startup_timeout: float = 15.0, **uvicorn_options: Any) -> None:
        self.host = host
        self.port = port or free_port(host)
        options: dict[str, Any] = {"log_level": "warning", "lifespan": "on", "loop": "asyncio"}
        if isinstance(app, AsgiServer):
            served = app.uvicorn_options()
            options.update({key: served[key] for key in _CONNECTION_OPTIONS})
        options.update(uvicorn_options)
        self.server = _ThreadedServer(uvicorn.Config(app, host=host, port=self.port, **options))
        self.startup_timeout = startup_timeout
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> LiveServer:
        """Start uvicorn in a thread, wait until it serves (RuntimeError after startup_timeout)."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()),
                                        name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn exited during startup (see its log)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start within {self.startup_timeout}s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Ask uvicorn to exit (lifespan shutdown runs); wait up to ``timeout`` seconds for it."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
