"""The per-connection extension points: ``WsxConnection.push_event`` (an event for one
connection alone) and ``WsxConnection.on_close`` (told when it ends); genro-asgi-spa builds
on both. Over a real uvicorn, both subprotocols."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from wsx_helpers import TIMEOUT, make, open_ws, recv_wsx, rpc, serving, wsx

from genro_asgi import AsgiApplication, Request, route
from genro_asgi_wsx import Publication, PublishError


class Pusher(AsgiApplication):
    """Keeps the connections that called ``attach`` and pushes to one of them."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.attached: dict[str, Any] = {}
        self.closed: list[str] = []

    @route()
    def attach(self, request: Request, name: str) -> bool:
        conn = request.scope["wsx.connection"]
        self.attached[name] = conn
        conn.on_close(lambda c: self.closed.append(name))

        async def later(c: Any) -> None:  # an async callback is awaited
            await asyncio.sleep(0)
            self.closed.append(f"{name}:async")

        conn.on_close(later)
        conn.on_close(lambda c: 1 / 0)  # a failing one is logged, the others still run
        return True

    @route()
    def push(self, name: str, value: Any = None, subscription: str = "srv") -> bool:
        publication = Publication("things.changed", value)
        self.attached[name].push_event(subscription, publication)
        return True


def _server(tmp_path: Path) -> tuple[Any, Pusher]:
    server = make(tmp_path)
    app = Pusher()
    server.mount("/p", app)
    return server, app


def test_push_event_reaches_only_its_connection_in_its_wire_format(tmp_path: Path) -> None:
    server, _ = _server(tmp_path)
    with serving(server) as live, open_ws(live) as one, open_ws(live) as two, \
            open_ws(live, "jsonrpc") as three:
        assert wsx(one, {"id": 1, "path": "/p/attach", "data": {"name": "one"}})["status"] == 200
        assert wsx(two, {"id": 1, "path": "/p/attach", "data": {"name": "two"}})["status"] == 200
        assert rpc(three, {"jsonrpc": "2.0", "id": 1, "method": "p.attach",
                           "params": {"name": "three"}})["result"] is True
        answer = wsx(two, {"id": 2, "path": "/p/push",
                           "data": {"name": "one", "value": {"n": 1}}})
        assert answer["status"] == 200
        event = recv_wsx(one)
        assert event["type"] == "event" and event["subscription"] == "srv"
        assert event["channel"] == "things.changed" and json.loads(event["data"]) == {"n": 1}
        wsx(one, {"id": 3, "path": "/p/push", "data": {"name": "three", "value": 2}})
        note = json.loads(three.recv(timeout=TIMEOUT))
        assert note == {"jsonrpc": "2.0", "method": "wsx.event", "params": {
            "subscription": "srv", "channel": "things.changed", "data": 2}}
        # nothing reached two: its next frame is the answer to its own ping
        assert wsx(two, {"type": "ping", "id": "p"}) == {"type": "pong", "id": "p"}


def test_push_event_refuses_a_bad_name_and_unencodable_data(tmp_path: Path) -> None:
    server, app = _server(tmp_path)
    with serving(server) as live, open_ws(live) as one:
        wsx(one, {"id": 1, "path": "/p/attach", "data": {"name": "one"}})
        bad = wsx(one, {"id": 2, "path": "/p/push",
                        "data": {"name": "one", "subscription": 'x"}'}})
        assert bad["status"] == 500 and bad["error"]["code"] == "internal_error"
        conn = app.attached["one"]
        with pytest.raises(PublishError):
            conn.push_event("srv", Publication("a.b", float("nan")))
        with pytest.raises(PublishError):
            conn.push_event("srv", Publication("a.b", {"d": object()}))
        # still usable: the next event arrives
        one.send("WSX://" + json.dumps({"id": 3, "path": "/p/push",
                                        "data": {"name": "one", "value": "1.5"}}))
        frames = [recv_wsx(one), recv_wsx(one)]
        assert {"id": 3, "status": 200, "data": "true"} in frames
        assert [f["data"] for f in frames if f.get("type") == "event"] == ['"1.5"']
        assert conn.push_event("srv", Publication("a.b", Decimal("2.5"))) is False


def test_on_close_callbacks_run_once_when_the_connection_ends(tmp_path: Path) -> None:
    server, app = _server(tmp_path)
    with serving(server) as live:
        with open_ws(live) as one, open_ws(live) as two:
            wsx(one, {"id": 1, "path": "/p/attach", "data": {"name": "one"}})
            wsx(two, {"id": 1, "path": "/p/attach", "data": {"name": "two"}})
            one.close()
            _wait_for(lambda: "one:async" in app.closed)
            assert app.closed == ["one", "one:async"]
        _wait_for(lambda: len(app.closed) == 4)
        assert app.closed == ["one", "one:async", "two", "two:async"]


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT  # a guard against a hang, not a speed assertion
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
