"""Shared test helpers: servers with wsx + spa (+ auth), in-process pages, a fake clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from genro_asgi import AsgiServer, Plugin, hookimpl
from genro_asgi.testing.client import WebSocketSession
from genro_asgi_spa import MemoryBackend, PageRecord, SpaManager, spa_of

TOKENS = {"alice": "t-alice-0123456789", "bob": "t-bob-0123456789",
          "root": "t-root-0123456789"}


class Clock:
    """An injectable clock: time moves only when a test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_server(tmp_path: Path, spa: dict[str, Any] | None = None, *, auth: bool = True,
                wsx: dict[str, Any] | None = None, recorder: bool = False,
                anonymous: bool = False) -> AsgiServer:
    """``anonymous``: the auth plugin and wsx let calls without a credential through."""
    plugins: dict[str, Any] = {}
    if recorder:
        plugins["recorder"] = {"module": "spa_helpers:Recorder"}
    if auth:
        plugins["auth"] = {"bearer": {
            "alice": {"token": TOKENS["alice"], "tags": ["user"]},
            "bob": {"token": TOKENS["bob"], "tags": ["user"]},
            "root": {"token": TOKENS["root"], "tags": ["admin"]}}, "anonymous": anonymous}
    plugins["wsx"] = {"heartbeat_interval": 0, **({"require_identity": False} if anonymous else {}),
                      **(wsx or {})}
    plugins["spa"] = {"sweep_interval": 3600, "cookie_secret": "test-secret-0123456789",
                      **(spa or {})}
    return AsgiServer(tmp_path, config={"plugins": plugins}, environ={})


def manager(server: AsgiServer, clock: Clock | None = None) -> SpaManager:
    found = spa_of(server)
    if clock is not None:
        found.clock = clock
    return found


def headers(user: str | None = None, cookie: str | None = None) -> list[tuple[str, str]]:
    found = []
    if user is not None:
        found.append(("authorization", f"Bearer {TOKENS[user]}"))
    if cookie is not None:
        found.append(("cookie", f"spa_connection_id={cookie}"))
    return found


class Page:
    """An in-process WSX socket speaking the spa protocol; events read so far are kept."""

    def __init__(self, ws: WebSocketSession) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._ids = 0
        self.info: dict[str, Any] = {}

    async def call(self, name: str, **data: Any) -> dict[str, Any]:
        """The answer frame to ``/_spa/<name>``; events that arrive first are kept."""
        self._ids += 1
        msg_id = self._ids
        await self.ws.send_text("WSX://" + json.dumps({"id": msg_id, "path": f"/_spa/{name}",
                                                       "data": data}))
        while True:
            frame = await self.next_frame()
            if frame.get("id") == msg_id:
                return frame
            self.events.append(frame)

    async def ok(self, name: str, **data: Any) -> Any:
        frame = await self.call(name, **data)
        assert frame["status"] == 200, frame
        return json.loads(frame["data"])

    async def register(self, **data: Any) -> dict[str, Any]:
        self.info = await self.ok("register", **data)
        return self.info

    async def next_frame(self) -> dict[str, Any]:
        text = await self.ws.receive_text()
        assert text.startswith("WSX://"), text
        return json.loads(text[6:])  # type: ignore[no-any-return]

    async def next_event(self) -> dict[str, Any]:
        """The next spa event (kept ones first), its data decoded."""
        if self.events:
            frame = self.events.pop(0)
        else:
            frame = await self.next_frame()
        assert frame.get("type") == "event" and frame["subscription"] == "spa", frame
        return {"channel": frame["channel"], **json.loads(frame["data"])}

    async def no_event(self) -> None:
        """Nothing is waiting for this page: a ping is answered next."""
        await self.ws.send_text('WSX://{"type":"ping","id":"probe"}')
        frame = await self.next_frame()
        assert not self.events and frame == {"type": "pong", "id": "probe"}, (self.events, frame)


def refused(frame: dict[str, Any], status: int, code: str) -> None:
    assert frame["status"] == status, frame
    assert frame["error"]["code"] == "handler_error", frame
    assert frame["error"]["message"].startswith(code + ":"), frame


class Recorder(Plugin):
    """Implements the four spa hooks (one async, to show both work)."""

    def __init__(self, server: AsgiServer, config: Any) -> None:
        super().__init__(server, config)
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    async def genro_asgi_spa_page_opened(self, page: PageRecord) -> None:
        self.seen.append(("opened", page.page_id))

    @hookimpl
    def genro_asgi_spa_page_closed(self, page: PageRecord, reason: str) -> None:
        self.seen.append((f"closed:{reason}", page.page_id))

    @hookimpl
    def genro_asgi_spa_user_online(self, user: Any) -> None:
        self.seen.append(("online", user.user_id))

    @hookimpl
    def genro_asgi_spa_user_offline(self, user: Any) -> None:
        self.seen.append(("offline", user.user_id))


class YieldingBackend(MemoryBackend):
    """The memory backend, but every read and write waits a turn of the event loop, as a network
    backend's would: concurrent calls interleave (``backend: spa_helpers:YieldingBackend``)."""

    async def get(self, kind: Any, key: str) -> Any:
        await asyncio.sleep(0)
        return await super().get(kind, key)

    async def put(self, record: Any) -> None:
        await asyncio.sleep(0)
        await super().put(record)

    async def pages(self, **filters: Any) -> Any:
        await asyncio.sleep(0)
        return await super().pages(**filters)


class NoCountBackend(MemoryBackend):
    """The memory backend, but it cannot count anonymous users (``anonymous_users`` is None)."""

    async def anonymous_users(self) -> None:  # type: ignore[override]
        return None
