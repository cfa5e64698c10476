"""Middleware chains: scope_types keeps a WebSocket-only middleware out of HTTP; the request id
is echoed through middleware; mounted apps are labelled by prefix; gzip through the client."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, AsgiServer, Plugin, PluginError, hookimpl, route
from genro_asgi.testing import TestClient
from genro_asgi.types import ASGIApp, Receive, Scope, Send


class Hello(AsgiApplication):
    @route()
    async def hi(self) -> str:
        return "hi"


def tagging(tag: str, kinds: tuple[str, ...] | None = None) -> Any:
    """A middleware factory that records the scope types it saw in scope['seen']."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("state", {}).setdefault("seen", []).append((tag, scope["type"]))
            await app(scope, receive, send)

        return middleware

    if kinds is not None:
        factory.scope_types = kinds  # type: ignore[attr-defined]
    return factory


class WsOnly(Plugin):
    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        return tagging("ws", ("websocket",))


class Both(Plugin):
    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        return tagging("both")


class Broken(Plugin):
    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        return tagging("bad", ("smtp",))


def make(tmp_path: Path, **plugins: Any) -> AsgiServer:
    server = AsgiServer(tmp_path, config={"plugins": plugins}, environ={})
    server.mount("/app", Hello())
    return server


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    seen = scope.get("state", {}).get("seen", [])
    await send({"type": "websocket.send", "text": repr(seen)})
    await send({"type": "websocket.close", "code": 1000})


def test_websocket_only_middleware_is_not_in_the_http_chain(tmp_path: Path) -> None:
    server = make(tmp_path, wsonly={"module": f"{__name__}:WsOnly"})
    server.mount("/ws", ws_echo)
    assert server._dispatcher is not None and server._dispatcher.records_responses
    with TestClient(server) as client:
        answer = client.get("/app/hi", headers={"X-Request-ID": "r-1"})
        assert answer.text == "hi"
        assert answer.headers["x-request-id"] == "r-1"
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "[('ws', 'websocket')]"


def test_request_id_is_echoed_through_http_middleware(tmp_path: Path) -> None:
    server = make(tmp_path, both={"module": f"{__name__}:Both"})
    assert server._dispatcher is not None and not server._dispatcher.records_responses
    with TestClient(server) as client:
        answer = client.get("/app/hi", headers={"X-Request-ID": "r-2"})
        assert answer.headers["x-request-id"] == "r-2"
        missing = client.get("/nope", headers={"X-Request-ID": "r-3"})
        assert missing.status_code == 404
        assert missing.headers["x-request-id"] == "r-3"


def test_unknown_scope_types_are_refused_naming_the_plugin(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"'broken'.*scope_types"):
        make(tmp_path, broken={"module": f"{__name__}:Broken"})


class RouteRecorder(Plugin):
    @hookimpl
    def genro_asgi_envelope_closed(self, server: AsgiServer, envelope: Any) -> None:
        server.state.routes.append((envelope.path, envelope.route, envelope.status))


def test_mounted_apps_are_labelled_with_their_prefix(tmp_path: Path) -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = make(tmp_path, recorder={"module": f"{__name__}:RouteRecorder"})
    server.state.routes = []
    server.mount("/raw", raw)
    assert [prefix for prefix, _ in server.asgi_mounts] == ["/raw"]
    with TestClient(server) as client:
        client.get("/raw/deep/path")
        client.get("/app/hi")
        client.get("/nowhere")
    assert server.state.routes == [("/raw/deep/path", "/raw", 202), ("/app/hi", "/app/hi", 200),
                                   ("/nowhere", None, 404)]


def test_gzip_bodies_reach_the_sync_client_decoded_once(tmp_path: Path) -> None:
    async def zipped(scope: Scope, receive: Receive, send: Send) -> None:
        body = gzip.compress(b"hello " * 100)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-encoding", b"gzip"),
                                (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/z", zipped)
    with TestClient(server) as client:
        assert client.get("/z").text == "hello " * 100
