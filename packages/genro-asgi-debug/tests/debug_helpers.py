"""Shared test helpers: a failing app, a server factory and a request parked in the background."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from genro_asgi import AsgiApplication, AsgiServer, NotFound, route

SECRET = "correct-horse-battery-staple"
WAIT = 20.0  # seconds: a guard against a hung test, never an assertion


class Shop(AsgiApplication):
    @route(methods=["GET"])
    def checkout(self, qty: int = 3, token: str = "") -> None:
        order_total = qty * 14  # noqa: F841  (the local a debugger reads)
        raise RuntimeError("payment gateway exploded")

    @route(methods=["GET"])
    def missing(self) -> None:
        raise NotFound(detail="nothing here")

    @route(methods=["GET"])
    def health(self) -> str:
        return "ok"


def debug_server(tmp_path: Path, **options: Any) -> AsgiServer:
    """A server with the debug plugin (secret from the environment) and the Shop app."""
    plugin = {"secret": {"$env": "DEBUG_SECRET"}, "socket_dir": str(tmp_path / "sockets"),
              **options}
    server = AsgiServer(tmp_path, config={"plugins": {"debug": plugin}},
                        environ={"DEBUG_SECRET": SECRET})
    server.mount("/shop", Shop())
    return server


class Background:
    """An HTTP request running in a thread; ``response()`` waits for it (bounded)."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(url,), kwargs=kwargs,
                                       daemon=True)
        self.thread.start()

    def _run(self, url: str, **kwargs: Any) -> None:
        try:
            self.result["response"] = httpx.get(url, timeout=WAIT, **kwargs)
        except Exception as exc:  # reported by response()
            self.result["error"] = exc

    def response(self) -> httpx.Response:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the request did not finish"
        if "error" in self.result:
            raise self.result["error"]
        return self.result["response"]  # type: ignore[no-any-return]

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def park(server: AsgiServer, url: str, path: str = "/shop/checkout?qty=5") -> Background:
    """Fire a failing request and wait until the plugin has parked it."""
    board = server.plugins.get("debug").board
    before = len(board)
    request = Background(url + path)
    wait_until(lambda: len(board) > before or request.done, "the request to be parked")
    assert len(board) > before, "the request was not parked"
    return request
