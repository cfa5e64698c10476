"""Shared test helpers: an app that publishes, servers on one NATS, WSX clients, raw NATS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
from genro_tytx import from_tytx, to_tytx
from nats.aio.client import Client
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiApplication, AsgiServer, BadRequest, route
from genro_asgi.testing import LiveServer
from genro_asgi_wsx import PublishError, publish

TIMEOUT = 15.0  # a guard against a hang, never an assertion about speed
T = TypeVar("T")


class Pub(AsgiApplication):
    """Publishes what it is asked to, from a handler, as any app would."""

    @route()
    async def notify(self, channel: str, value: Any = None) -> bool:
        await publish(self.server, channel, value)
        return True

    @route()
    async def checked(self, channel: str, value: Any = None) -> bool:
        """What an application does with a publication NATS refuses: a 400, not a 500."""
        try:
            await publish(self.server, channel, value)
        except PublishError as exc:
            raise BadRequest(detail=str(exc)) from None
        return True

    @route()
    async def burst(self, channel: str, count: int, origin: str = "") -> int:
        for index in range(count):
            await publish(self.server, channel, {"n": index, "origin": origin})
        return count


def make(tmp_path: Path, nats_url: str | None, *, nats: dict[str, Any] | None = None,
         wsx: dict[str, Any] | None = None, name: str = "a") -> AsgiServer:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    nats_options: dict[str, Any] = {"reconnect_wait": 0.05, "reconnect_wait_max": 0.25,
                                    **({"servers": [nats_url]} if nats_url else {}),
                                    **(nats or {})}
    config = {"plugins": {
        "nats": nats_options,
        "wsx": {"heartbeat_interval": 0, "broker": "genro_asgi_nats:NatsBroker", **(wsx or {})},
    }}
    server = AsgiServer(directory, config=config, environ={})
    server.mount("/pub", Pub())
    return server


def open_ws(live: LiveServer) -> ClientConnection:
    return connect(live.ws_url + "/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
                   open_timeout=TIMEOUT, close_timeout=TIMEOUT)


def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = ws.recv(timeout=TIMEOUT)
    assert isinstance(frame, str) and frame.startswith("WSX://"), frame
    return json.loads(frame[6:])  # type: ignore[no-any-return]


def subscribe(ws: ClientConnection, pattern: str, ident: int = 1) -> str:
    ws.send("WSX://" + json.dumps({"type": "subscribe", "id": ident, "channel": pattern}))
    answer = recv(ws)
    assert answer.get("status") == 200, answer
    return str(from_tytx(answer["data"])["subscription"])


def event(ws: ClientConnection) -> tuple[str, str, Any]:
    """The next event frame: (subscription, channel, data)."""
    frame = recv(ws)
    assert frame.get("type") == "event", frame
    return frame["subscription"], frame["channel"], from_tytx(frame["data"])


def notify(live: LiveServer, channel: str, value: Any) -> httpx.Response:
    body = to_tytx({"channel": channel, "value": value})
    return httpx.post(f"{live.url}/pub/notify", content=body, timeout=TIMEOUT,
                      headers={"Content-Type": "application/vnd.tytx+json"})


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(asyncio.wait_for(factory(), TIMEOUT))


def raw_publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish raw payloads with a client of our own (a foreign or hostile publisher)."""
    async def go() -> None:
        nc = Client()
        await nc.connect(url, connect_timeout=5, max_reconnect_attempts=1)
        for subject, payload in messages:
            await nc.publish(subject, payload)
        await nc.flush()
        await nc.close()
    run(go)
