"""The demo of `make serve` with the spa plugin on, on a real uvicorn: a browser takes its
connection cookie over HTTP, opens two pages (each authenticates its socket with the demo's
user token), and both hear a user-level change."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx
import pytest
import yaml
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer

from .conftest import DEMO

pytestmark = pytest.mark.e2e
TIMEOUT = 10.0  # a guard against a hang, never an assertion about speed


def demo_server() -> AsgiServer:
    """The demo as config.yaml sets it up (the debug secret is written by conftest)."""
    if str(DEMO) not in sys.path:
        sys.path.insert(0, str(DEMO))
    config: dict[str, Any] = yaml.safe_load((DEMO / "config.yaml").read_text())
    assert "spa" in config["plugins"]
    return AsgiServer(DEMO, environ={})


def call(ws: ClientConnection, msg_id: int, route: str, **data: Any) -> Any:
    ws.send("WSX://" + json.dumps({"id": msg_id, "path": route, "data": data}))
    while True:
        frame = json.loads(str(ws.recv(timeout=TIMEOUT))[6:])
        if frame.get("id") == msg_id:
            assert frame["status"] == 200, frame
            return json.loads(frame["data"])


def test_the_demo_serves_spa_pages() -> None:
    with LiveServer(demo_server()) as live:
        minted = httpx.get(live.url + "/_spa/connection", timeout=TIMEOUT)
        assert minted.status_code == 200
        cookie = minted.cookies["spa_connection_id"]
        headers = [("Cookie", f"spa_connection_id={cookie}")]
        with connect(live.ws_url + "/_wsx", additional_headers=headers,
                     open_timeout=TIMEOUT) as one, \
                connect(live.ws_url + "/_wsx", additional_headers=headers,
                        open_timeout=TIMEOUT) as two:
            for ws in (one, two):
                ws.send('WSX://{"id":0,"type":"auth","token":"demo-user-token-change-me"}')
                assert json.loads(str(ws.recv(timeout=TIMEOUT))[6:])["status"] == 200
            first = call(one, 1, "/_spa/register", info={"title": "shop"})
            second = call(two, 1, "/_spa/register")
            assert first["user_id"] == second["user_id"] == "demo-user"
            assert first["connection_id"] == second["connection_id"]  # the cookie's
            call(two, 2, "/_spa/subscribe", level="user", path="cart")
            call(one, 2, "/_spa/set", level="user", path="cart.p1", value=2)
            event = json.loads(str(two.recv(timeout=TIMEOUT))[6:])
            assert event["channel"] == "spa.change"
            assert json.loads(event["data"])["value"] == 2
        # the rest of the demo is as it was
        assert httpx.get(live.url + "/shop/products", timeout=TIMEOUT).status_code == 200
