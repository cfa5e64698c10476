"""Helpers for the spa-over-NATS tests: servers with wsx + spa on one NATS, pages as real
``websockets`` clients, and a probe app that answers from a server's own backend."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from genro_tytx import from_tytx
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi.testing import LiveServer
from genro_asgi_nats.spa_backend import NatsSpaBackend

TIMEOUT = 15.0  # a guard against a hang, never an assertion about speed
SECRET = "a-cookie-secret-shared-by-every-process-0123"


class Probe(AsgiApplication):
    """Reads the server's own backend on its own loop (what a handler would see)."""

    def _backend(self) -> NatsSpaBackend:
        backend = self.server.plugins.get("spa").manager.backend  # type: ignore[union-attr]
        assert isinstance(backend, NatsSpaBackend)
        return backend

    @route()
    async def pages(self, user_id: str | None = None) -> list[dict[str, Any]]:
        return [{"page_id": p.page_id, "state": p.state, "process_id": p.process_id}
                for p in await self._backend().pages(user_id=user_id)]

    @route()
    async def user(self, user_id: str) -> dict[str, Any] | None:
        found = await self._backend().get("user", user_id)
        return None if found is None else {"process_id": found.process_id,
                                           "online": getattr(found, "online", None)}

    @route()
    async def me(self) -> dict[str, Any]:
        backend = self._backend()
        return {"process_id": backend.process_id, "processes": backend.processes(),
                "ready": backend.ready, "stats": backend.stats,
                "dropped": backend.link.stats.dropped}

    @route()
    async def data(self, level: str, owner: str, path: str = "") -> dict[str, Any]:
        return {"value": await self._backend().data_get(level, owner, path)}  # type: ignore[arg-type]


def make(tmp_path: Path, nats_url: str, name: str, *, spa: dict[str, Any] | None = None,
         backend: dict[str, Any] | None = None, nats: dict[str, Any] | None = None,
         plugins: dict[str, Any] | None = None) -> AsgiServer:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    config = {"plugins": {
        "nats": {"servers": [nats_url], "reconnect_wait": 0.05, "reconnect_wait_max": 0.25,
                 **(nats or {})},
        "wsx": {"heartbeat_interval": 0},
        "spa": {"allow_anonymous": True, "cookie_secret": SECRET, "presence_auth": None,
                "backend": "genro_asgi_nats:NatsSpaBackend",
                "backend_options": {"heartbeat_interval": 0.2, "process_ttl": 10.0,
                                    **(backend or {})},
                **(spa or {})},
        **(plugins or {}),
    }}
    server = AsgiServer(directory, config=config, environ={})
    server.mount("/probe", Probe())
    return server


def probe(live: LiveServer, name: str, **params: Any) -> Any:
    answer = httpx.get(f"{live.url}/probe/{name}", params=params, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()


def eventually(check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """``check()`` once it is truthy; AssertionError after ``timeout`` (a hang guard)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        time.sleep(0.02)


class Page:
    """A page: a WSX connection that calls the spa routes and collects the events."""

    def __init__(self, live: LiveServer) -> None:
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(connect(
            live.ws_url + "/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
            open_timeout=TIMEOUT, close_timeout=TIMEOUT))
        self.events: list[tuple[str, Any]] = []
        self._ids = iter(range(1, 1 << 30))
        self.info: dict[str, Any] = {}

    def call(self, name: str, **data: Any) -> tuple[int, Any]:
        """(status, data or error message) of one call; events meanwhile are kept."""
        ident = next(self._ids)
        self.ws.send("WSX://" + json.dumps({"id": ident, "path": f"/_spa/{name}",
                                            "data": data}))
        while True:
            frame = self._frame()
            if frame.get("id") == ident:
                status = int(frame.get("status", 0))
                if status == 200:
                    return status, from_tytx(frame["data"])
                return status, (frame.get("error") or {}).get("message", frame)

    def ok(self, name: str, **data: Any) -> Any:
        status, answer = self.call(name, **data)
        assert status == 200, (name, status, answer)
        return answer

    def register(self, **data: Any) -> dict[str, Any]:
        self.info = self.ok("register", **data)
        return self.info

    def _frame(self) -> dict[str, Any]:
        text = self.ws.recv(timeout=TIMEOUT)
        assert isinstance(text, str) and text.startswith("WSX://"), text
        frame: dict[str, Any] = json.loads(text[6:])
        if frame.get("type") == "event":
            self.events.append((frame["channel"], from_tytx(frame["data"])))
        return frame

    def until(self, predicate: Callable[[tuple[str, Any]], bool]) -> list[tuple[str, Any]]:
        """Read until an event matches ``predicate``; every event read so far (and clear)."""
        while not any(predicate(e) for e in self.events):
            self._frame()
        got, self.events = self.events, []
        return got

    def close(self) -> None:
        self._stack.close()


def message_topic(topic: str) -> Callable[[tuple[str, Any]], bool]:
    return lambda e: e[0] == "spa.message" and e[1]["topic"] == topic
