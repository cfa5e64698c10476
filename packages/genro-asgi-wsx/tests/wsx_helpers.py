"""Shared test helpers: apps whose handlers answer HTTP and WSX, and small socket clients."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiApplication, AsgiServer, BadRequest, NotFound, Request, route
from genro_asgi.testing import LiveServer
from genro_asgi_wsx import MemoryBroker, publish

TIMEOUT = 10.0  # a guard against a hang, never an assertion about speed


class Shop(AsgiApplication):
    """Handlers called over HTTP and over both subprotocols."""

    @route()
    def hello(self, name: str = "world") -> str:
        return f"hello {name}"

    @route()
    def quote(self, qty: int, price: Decimal, day: datetime.date) -> dict[str, Any]:
        return {"total": price * qty, "day": day, "at": datetime.time(9, 15),
                "stamp": datetime.datetime(2025, 1, 15, 10, 30, tzinfo=datetime.UTC)}

    @route()
    def item(self, item_id: int) -> dict[str, Any]:
        if item_id > 100:
            raise NotFound(detail=f"no item {item_id}")
        return {"id": item_id}

    @route()
    def check(self, value: str) -> str:
        raise BadRequest(detail="value refused")

    @route()
    def boom(self) -> None:
        raise RuntimeError("secret database password in this message")

    @route(methods=["GET"])
    def only_get(self) -> str:
        return "got"

    @route()
    async def slow(self, seconds: float = 30.0) -> str:
        self.state.slow_started = getattr(self.state, "slow_started", 0) + 1
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.state.slow_cancelled = getattr(self.state, "slow_cancelled", 0) + 1
            raise
        return "done"

    @route()
    async def notify(self, channel: str, value: Any = None) -> bool:
        await publish(self.server, channel, value)
        return True

    @route()
    async def flood(self, channel: str, count: int) -> int:
        for index in range(count):
            await publish(self.server, channel, {"n": index})
        return count

    @route()
    def odd(self) -> Any:
        return {"bad": object()}

    @route()
    def not_finite(self, which: str = "nan") -> Any:
        return {"value": float(which), "label": "NaN and Infinity as text are fine"}

    @route(auth="admin")
    def admin_only(self) -> str:
        return "secret stuff"

    @route()
    def whoami(self, request: Request) -> Any:
        identity = request.identity
        return identity.id if identity is not None else None


class Spec(AsgiApplication):
    """The methods used by the examples of the JSON-RPC 2.0 specification."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.notified: list[Any] = []

    @route()
    def subtract(self, minuend: int, subtrahend: int) -> int:
        return minuend - subtrahend

    @route()
    def sum(self, *values: int) -> int:
        return sum(int(v) for v in values)

    @route()
    def update(self, *values: Any) -> None:
        self.notified.append(("update", values))

    @route()
    def notify_hello(self, *values: Any) -> None:
        self.notified.append(("notify_hello", values))

    @route()
    def notify_sum(self, *values: Any) -> None:
        self.notified.append(("notify_sum", values))

    @route()
    def get_data(self) -> list[Any]:
        return ["hello", 5]


class RecordingBroker(MemoryBroker):
    """A broker named in config (``broker: wsx_helpers:RecordingBroker``): in-memory fan-out,
    plus a log of what went through it and of its lifecycle."""

    def __init__(self, label: str = "default") -> None:
        if not label:
            raise ValueError("label must not be empty")
        super().__init__()
        self.label = label
        self.log: list[Any] = []

    async def start(self) -> None:
        self.log.append("start")
        await super().start()

    async def close(self) -> None:
        self.log.append("close")
        await super().close()

    async def publish(self, channel: str, data: Any) -> None:
        self.log.append((channel, data))
        await super().publish(channel, data)


def make(tmp_path: Path, wsx: dict[str, Any] | None = None, *,
         plugins: dict[str, Any] | None = None) -> AsgiServer:
    config = {"plugins": {**(plugins or {}), "wsx": {"heartbeat_interval": 0, **(wsx or {})}}}
    server = AsgiServer(tmp_path, config=config, environ={})
    server.mount("/shop", Shop())
    server.mount("/", Spec())
    return server


@contextmanager
def serving(server: AsgiServer) -> Iterator[LiveServer]:
    with LiveServer(server) as live:
        yield live


def open_ws(live: LiveServer, protocol: str | None = "wsx", path: str = "/_wsx",
            **options: Any) -> ClientConnection:
    subprotocols = [protocol] if protocol else None
    return connect(live.ws_url + path, subprotocols=subprotocols,  # type: ignore[list-item]
                   open_timeout=TIMEOUT, close_timeout=TIMEOUT, **options)


def wsx(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send a wsx frame and return the next one, parsed."""
    ws.send("WSX://" + json.dumps(message))
    return recv_wsx(ws)


def recv_wsx(ws: ClientConnection) -> dict[str, Any]:
    frame = ws.recv(timeout=TIMEOUT)
    assert isinstance(frame, str) and frame.startswith("WSX://"), frame
    return json.loads(frame[6:])  # type: ignore[no-any-return]


def rpc(ws: ClientConnection, payload: Any) -> Any:
    """Send a JSON-RPC frame (object, array or raw text) and return the next frame, parsed."""
    ws.send(payload if isinstance(payload, str) else json.dumps(payload))
    return json.loads(ws.recv(timeout=TIMEOUT))


def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    try:
        while True:
            ws.recv(timeout=TIMEOUT)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None
