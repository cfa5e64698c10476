"""An ``HTTPException`` with ``Retry-After`` (a full sync pool's 503, a handler's 429) reaches a
WSX or JSON-RPC client as ``retry_after`` in the error, as the header reaches an HTTP client:
seconds as an integer, an HTTP date as the handler wrote it. In-process (TestClient); the
full pool over uvicorn is in tests/test_sync_over_wsx.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, AsgiServer, HTTPException, ServiceUnavailable, route
from genro_asgi.testing import TestClient

DATE = "Wed, 21 Oct 2026 07:28:00 GMT"


class Busy(AsgiApplication):
    @route()
    async def full(self) -> str:
        raise ServiceUnavailable("no worker free", retry_after=7)

    @route()
    async def later(self) -> str:
        raise HTTPException(429, detail="slow down", headers={"retry-after": DATE})

    @route()
    async def odd(self) -> str:
        raise HTTPException(503, detail="odd", headers={"Retry-After": " ²3 "})

    @route()
    async def plain(self) -> str:
        raise HTTPException(503, detail="no hint")


@pytest.fixture
def client(tmp_path: Path) -> Any:
    server = AsgiServer(tmp_path, environ={}, config={
        "plugins": {"wsx": {"heartbeat_interval": 0}}})
    server.mount("/busy", Busy())
    with TestClient(server) as client:
        yield client


CASES = [("full", 503, 7), ("later", 429, DATE), ("odd", 503, "²3"), ("plain", 503, None)]


@pytest.mark.parametrize(("route", "status", "retry_after"), CASES)
def test_wsx_error_carries_retry_after(client: Any, route: str, status: int,
                                       retry_after: Any) -> None:
    with client.websocket_connect("/_wsx", subprotocols=["wsx"]) as ws:
        ws.send_text("WSX://" + json.dumps({"id": 1, "path": f"/busy/{route}"}))
        answer = json.loads(ws.receive_text()[6:])
    assert answer["status"] == status
    error = answer["error"]
    assert error["code"] == "handler_error"
    assert error.get("retry_after") == retry_after
    assert ("retry_after" in error) is (retry_after is not None)


@pytest.mark.parametrize(("route", "status", "retry_after"), CASES)
def test_jsonrpc_error_carries_retry_after(client: Any, route: str, status: int,
                                           retry_after: Any) -> None:
    with client.websocket_connect("/_wsx", subprotocols=["jsonrpc"]) as ws:
        ws.send_text(json.dumps({"jsonrpc": "2.0", "method": f"busy.{route}", "id": 1}))
        answer = json.loads(ws.receive_text())
    data = answer["error"]["data"]
    assert answer["error"]["code"] == -32000
    assert data["status"] == status
    assert data.get("retry_after") == retry_after
    assert ("retry_after" in data) is (retry_after is not None)


def test_http_sees_the_same_retry_after(client: Any) -> None:
    response = client.get("/busy/full")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
