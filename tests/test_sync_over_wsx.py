"""``def`` routes called over WSX on a real uvicorn use the server's sync pool: they run in its
threads, and when it is full the call gets an error frame with status 503 (HTTP's answer) and
``retry_after`` (HTTP's Retry-After)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from genro_tytx import from_tytx
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e

TIMEOUT = 20.0  # a guard against a hang, never an assertion about speed


class Held(AsgiApplication):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    @route()
    def hold(self) -> str:
        self.entered.set()
        if not self.release.wait(TIMEOUT):
            raise RuntimeError("never released")
        return "released"

    @route()
    def where(self) -> str:
        return threading.current_thread().name

    @route(inline=True)
    def inline(self) -> str:
        return threading.current_thread().name

    @route()
    async def loop(self) -> str:
        return threading.current_thread().name


def call(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    ws.send("WSX://" + json.dumps(message))
    frame = ws.recv(timeout=TIMEOUT)
    assert isinstance(frame, str) and frame.startswith("WSX://"), frame
    answer: dict[str, Any] = json.loads(frame[6:])
    return answer


def test_def_routes_over_wsx_share_the_servers_pool(tmp_path: Path) -> None:
    pytest.importorskip("genro_asgi_wsx")
    server = AsgiServer(tmp_path, environ={}, config={
        "server": {"sync_workers": 1, "sync_queue": 0},
        "plugins": {"wsx": {"heartbeat_interval": 0}}})
    app = Held()
    server.mount("/h", app)
    with LiveServer(server) as live, ThreadPoolExecutor(1) as background, \
            connect(live.ws_url + "/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
                    open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        where = call(ws, {"id": 1, "path": "/h/where"})
        assert where["status"] == 200
        assert from_tytx(where["data"], "json").startswith(f"genro-sync-{server.boot_id}-")
        loop_thread = from_tytx(call(ws, {"id": 2, "path": "/h/loop"})["data"], "json")
        assert from_tytx(call(ws, {"id": 3, "path": "/h/inline"})["data"], "json") == loop_thread

        holding = background.submit(httpx.get, live.url + "/h/hold", timeout=TIMEOUT)
        assert app.entered.wait(TIMEOUT)
        refused = call(ws, {"id": 4, "path": "/h/where"})  # the only worker is held by HTTP
        assert refused["status"] == 503 and "data" not in refused, refused
        assert "sync_workers" in refused["error"]["message"]
        # when to try again, as HTTP's Retry-After says it (server.sync_retry_after)
        assert refused["error"]["retry_after"] == 1
        with connect(live.ws_url + "/_wsx", subprotocols=["jsonrpc"],  # type: ignore[list-item]
                     open_timeout=TIMEOUT, close_timeout=TIMEOUT) as rpc:
            rpc.send(json.dumps({"jsonrpc": "2.0", "method": "h.where", "id": 9}))
            error = json.loads(rpc.recv(timeout=TIMEOUT))["error"]
            assert error["data"]["status"] == 503 and error["data"]["retry_after"] == 1, error
        app.release.set()
        assert holding.result(TIMEOUT).text == "released"
        assert call(ws, {"id": 5, "path": "/h/where"})["status"] == 200
