"""The WebSocket connection API: handshake, messages, close codes, states, and a real uvicorn."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets

from genro_asgi import AsgiServer, WebSocket, WebSocketDisconnect, WebSocketState
from genro_asgi.testing import LiveServer, TestClient
from genro_asgi.types import Receive, Scope, Send


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Echo text and JSON; close with 4001 on 'bye'; offer the 'wsx' subprotocol if asked."""
    ws = WebSocket(scope, receive, send)
    if ws.query_params.get("refuse"):
        await ws.close(code=1008)
        return
    chosen = "wsx" if "wsx" in ws.subprotocols else None
    await ws.accept(subprotocol=chosen, headers=[("x-hello", "1")])
    async for text in ws.iter_text():
        if text == "bye":
            await ws.close(code=4001, reason="see you")
            return
        if text.startswith("{"):
            await ws.send_json({"got": json.loads(text), "path": ws.path})
        else:
            await ws.send_text(f"echo:{text}")


@pytest.fixture
def server(tmp_path: Path) -> AsgiServer:
    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/ws", echo_app)
    return server


def test_echo_json_and_close_code(server: AsgiServer) -> None:
    with TestClient(server) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "echo:hi"
        ws.send_text('{"a": 1}')
        assert json.loads(ws.receive_text()) == {"got": {"a": 1}, "path": "/"}
        ws.send_text("bye")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == 4001


def test_subprotocol_is_negotiated(server: AsgiServer) -> None:
    with TestClient(server) as client, \
            client.websocket_connect("/ws", subprotocols=["jsonrpc", "wsx"]) as ws:
        assert ws.accepted_subprotocol == "wsx"
        assert (b"x-hello", b"1") in ws.response_headers


def test_refused_before_accept(server: AsgiServer) -> None:
    with TestClient(server) as client, pytest.raises(WebSocketDisconnect) as info, \
            client.websocket_connect("/ws?refuse=1"):
        pass
    assert info.value.code == 1008


def test_envelope_lives_as_long_as_the_connection(server: AsgiServer) -> None:
    with TestClient(server) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_text("x")
            ws.receive_text()
            assert [e.scope_type for e in server.envelopes] == ["websocket"]
        assert len(server.envelopes) == 0


async def test_state_checks_and_errors() -> None:
    sent: list[dict[str, Any]] = []
    incoming = asyncio.Queue[dict[str, Any]]()
    for message in ({"type": "websocket.connect"}, {"type": "websocket.receive", "bytes": b"\x00"},
                    {"type": "websocket.receive", "text": "not json"},
                    {"type": "websocket.disconnect", "code": 1001}):
        incoming.put_nowait(message)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": ["a"]}
    ws = WebSocket(scope, incoming.get, send)
    with pytest.raises(RuntimeError, match="CONNECTING"):
        await ws.send_text("too early")
    with pytest.raises(ValueError, match="not offered"):
        await ws.accept(subprotocol="b")
    await ws.accept()
    assert ws.connection_state is WebSocketState.CONNECTED
    with pytest.raises(TypeError, match="binary"):
        await ws.receive_text()
    with pytest.raises(ValueError):
        await ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.receive()
    assert info.value.code == 1001
    assert ws.connection_state is WebSocketState.CLOSED
    with pytest.raises(RuntimeError, match="CLOSED"):
        await ws.send_text("too late")
    await ws.close()  # closing twice is harmless
    assert sent == [{"type": "websocket.accept", "subprotocol": None, "headers": []}]
    with pytest.raises(ValueError, match="websocket scope"):
        WebSocket({"type": "http"}, incoming.get, send)


@pytest.mark.e2e
def test_real_uvicorn_and_websockets_client(server: AsgiServer) -> None:
    async def talk(url: str) -> tuple[str, str | None, int | None]:
        async with websockets.connect(url, subprotocols=["wsx"]) as conn:
            await conn.send("ping")
            answer = await conn.recv()
            protocol = conn.subprotocol
            await conn.send("bye")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await conn.recv()
            return str(answer), protocol, info.value.rcvd.code if info.value.rcvd else None

    with LiveServer(server) as live:
        answer, protocol, code = asyncio.run(talk(f"{live.ws_url}/ws"))
    assert (answer, protocol, code) == ("echo:ping", "wsx", 4001)


@pytest.mark.e2e
def test_real_uvicorn_refuses_oversized_messages(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, config={"server": {"ws_max_size": "1KiB"}}, environ={})
    server.mount("/ws", echo_app)

    async def talk(url: str) -> int | None:
        async with websockets.connect(url) as conn:
            await conn.send("x" * 4096)
            with pytest.raises(websockets.ConnectionClosed) as info:
                await conn.recv()
            return info.value.rcvd.code if info.value.rcvd else None

    options = server.uvicorn_options()
    with LiveServer(server, ws_max_size=options["ws_max_size"]) as live:
        assert asyncio.run(talk(f"{live.ws_url}/ws")) == 1009
