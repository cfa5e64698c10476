"""The per-request envelope: registered for every http and websocket scope, always removed.

Also the ``X-Request-ID`` contract (echoed, used as external id, refused when oversized or not
printable) and the uniqueness of internal ids.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from genro_asgi import AsgiServer
from genro_asgi.testing import AsyncTestClient, WebSocketDisconnect

MakeServer = Callable[..., AsgiServer]
SAFETY = 10  # seconds: a guard against a hung test, never an assertion

APP = """
from genro_asgi import StreamingResponse


class Api(AsgiApplication):
    @route()
    async def inspect(self, request: Request):
        envelope = request.envelope
        live = list(self.server.envelopes)
        return {"registered": envelope in live, "count": len(live),
                "internal_id": envelope.internal_id, "external_id": envelope.external_id,
                "request_id": envelope.request_id, "type": envelope.scope_type,
                "metadata": envelope.metadata, "summary": envelope.summary()}

    @route()
    def boom(self):
        raise ValueError("handler broke")

    @route(methods=["POST"])
    async def upload(self, data: str = ""):
        return {"size": len(data)}

    @route()
    async def hello(self):
        return "hello"

    @route()
    async def forever(self):
        async def chunks():
            while True:
                yield b"x" * 1024
                await asyncio.sleep(0.001)
        return StreamingResponse(chunks(), media_type="application/octet-stream")


class Closed(Plugin):
    @hookimpl
    def genro_asgi_envelope_closed(self, server, envelope):
        record(server, envelope)


async def ws_echo(scope, receive, send):
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "boom":
            raise RuntimeError("websocket handler broke")
        await send({"type": "websocket.send", "text": message["text"]})
"""


@pytest.fixture
def build(write_module: Any, make_server: MakeServer) -> Callable[..., AsgiServer]:
    mod = write_module(APP, stem="envapp")

    def factory(**server_settings: Any) -> AsgiServer:
        server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                              "plugins": {"closed": {"module": f"{mod}:Closed"}},
                              "server": server_settings})
        server.mount("/ws", importlib_attr(mod, "ws_echo"))
        return server

    return factory


@pytest.fixture
def server(build: Callable[..., AsgiServer]) -> AsgiServer:
    return build()


def importlib_attr(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)


def closed(server: AsgiServer) -> list[Any]:
    return list(getattr(server.state, "calls", []))


# -- http ---------------------------------------------------------------------------------------


def test_http_envelope_registered_during_request_and_removed_after(
        server: AsgiServer, make_client: Any) -> None:
    client = make_client(server)
    body = client.get("/api/inspect").json()
    assert body["registered"] is True
    assert body["count"] == 1
    assert body["type"] == "http"
    assert body["metadata"] == {"path": "/api/inspect", "method": "GET",
                                "client": ["127.0.0.1", 50000]}
    assert body["summary"]["route"] == "/api/inspect"
    assert body["summary"]["internal_id"] == body["internal_id"]
    assert len(server.envelopes) == 0
    (envelope,) = closed(server)
    assert envelope.status == 200
    assert envelope.internal_id == body["internal_id"]
    assert envelope.response_size > 0


def test_envelope_removed_when_the_handler_raises(server: AsgiServer, make_client: Any) -> None:
    response = make_client(server).get("/api/boom")
    assert response.status_code == 500
    assert len(server.envelopes) == 0
    (envelope,) = closed(server)
    assert envelope.status == 500
    assert isinstance(envelope.error, ValueError)
    assert envelope.error_id == response.json()["error"]["error_id"]


def test_envelope_removed_for_unknown_routes(server: AsgiServer, make_client: Any) -> None:
    assert make_client(server).get("/nowhere").status_code == 404
    assert len(server.envelopes) == 0
    assert closed(server)[0].status == 404


async def test_envelope_removed_when_the_client_disconnects(server: AsgiServer,
                                                            asgi_call: Any) -> None:
    response = await asgi_call(server, "/api/upload", method="POST", disconnect=True,
                               headers=[(b"content-type", b"application/json")])
    assert response.status is None  # nobody left to answer
    assert len(server.envelopes) == 0
    assert len(closed(server)) == 1


async def test_envelope_removed_when_sending_fails(server: AsgiServer) -> None:
    scope = {"type": "http", "method": "GET", "path": "/api/hello", "raw_path": b"/api/hello",
             "query_string": b"", "root_path": "", "headers": [], "scheme": "http",
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        raise OSError("connection reset by peer")

    with pytest.raises(OSError, match="connection reset"):
        await server(scope, receive, send)
    assert len(server.envelopes) == 0
    assert len(closed(server)) == 1


@pytest.mark.e2e
def test_envelope_removed_when_a_streaming_client_goes_away(
        build: Callable[..., AsgiServer], live_server: Any) -> None:
    # short shutdown bounds, so that a server still streaming to nobody stops at teardown
    server = build(shutdown_timeout=1)
    live = live_server(server, timeout_graceful_shutdown=1)
    with httpx.Client(base_url=live.url) as client, \
            client.stream("GET", "/api/forever") as response:
        assert response.status_code == 200
        # keep the iterator referenced: a discarded httpx iterator closes the stream at once
        chunks = response.iter_bytes()
        assert next(chunks)
        assert len(server.envelopes) == 1
    # the client closed the connection: the server must stop streaming and forget the request
    deadline = time.monotonic() + SAFETY
    while len(server.envelopes) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.envelopes) == 0, "an abandoned streaming response is still in flight"


# -- websocket ----------------------------------------------------------------------------------


def test_websocket_envelope_lives_as_long_as_the_connection(server: AsgiServer,
                                                            make_client: Any) -> None:
    client = make_client(server)
    with client.websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
        (envelope,) = list(server.envelopes)
        assert (envelope.scope_type, envelope.method, envelope.path) == ("websocket", "WS", "/ws")
        assert server.envelopes.count("websocket") == 1
        assert server.envelopes.count("http") == 0
    assert len(server.envelopes) == 0
    assert closed(server) == [envelope]


def test_websocket_envelope_removed_when_the_handler_raises(server: AsgiServer,
                                                            make_client: Any) -> None:
    client = make_client(server)
    with client.websocket_connect("/ws") as ws:
        ws.send_text("boom")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == 1011
    assert len(server.envelopes) == 0
    (envelope,) = closed(server)
    assert isinstance(envelope.error, RuntimeError)


def test_websocket_to_an_unknown_path(server: AsgiServer, make_client: Any) -> None:
    client = make_client(server)
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/nowhere"):
        pass  # pragma: no cover
    assert info.value.code == 1008
    assert len(server.envelopes) == 0


async def test_concurrent_requests_each_have_an_envelope(server: AsgiServer) -> None:
    async with AsyncTestClient(server) as client, client.websocket_connect("/ws") as ws:
        await ws.send_text("ping")
        assert await ws.receive_text() == "ping"
        body = (await client.get("/api/inspect")).json()
        assert body["count"] == 2  # the websocket and this request
        assert server.envelopes.count("websocket") == 1
    assert len(server.envelopes) == 0


# -- request ids --------------------------------------------------------------------------------


def test_x_request_id_is_echoed_and_used_as_external_id(server: AsgiServer,
                                                        make_client: Any) -> None:
    client = make_client(server)
    response = client.get("/api/inspect", headers={"X-Request-ID": "trace-abc-123"})
    assert response.headers["x-request-id"] == "trace-abc-123"
    body = response.json()
    assert body["external_id"] == "trace-abc-123"
    assert body["request_id"] == "trace-abc-123"
    assert body["internal_id"] != "trace-abc-123"
    error = client.get("/api/boom", headers={"X-Request-ID": "trace-err"})
    assert error.headers["x-request-id"] == "trace-err"
    assert error.json()["error"]["request_id"] == "trace-err"


def test_no_x_request_id_means_no_echo(server: AsgiServer, make_client: Any) -> None:
    response = make_client(server).get("/api/inspect")
    assert "x-request-id" not in response.headers
    body = response.json()
    assert body["external_id"] is None
    assert body["request_id"] == body["internal_id"]


@pytest.mark.parametrize(("value", "accepted"), [
    (b"a" * 200, True),
    (b"a" * 201, False),
    (b"a" * 10_000, False),
    (b"abc\x01def", False),
    (b"line\nbreak", False),
    (b"tab\there", False),
    (b"", False),
])
async def test_x_request_id_limits(server: AsgiServer, asgi_call: Any, value: bytes,
                                   accepted: bool) -> None:
    response = await asgi_call(server, "/api/inspect", headers=[(b"x-request-id", value)])
    assert response.status == 200
    body = json.loads(response.body)
    if accepted:
        assert body["external_id"] == value.decode()
        assert response.header("x-request-id") == value.decode()
    else:
        assert body["external_id"] is None
        assert body["request_id"] == body["internal_id"]
        assert response.header("x-request-id") is None


def test_internal_ids_are_unique(server: AsgiServer, make_client: Any, tmp_path: Any) -> None:
    client = make_client(server)
    ids = [client.get("/api/inspect").json()["internal_id"] for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(i.startswith(server.boot_id + "-") for i in ids)
    # another server in the same process never produces the same ids
    other = AsgiServer(tmp_path, config={}, environ={})
    assert other.boot_id != server.boot_id
    scope = {"type": "http", "path": "/", "method": "GET"}
    assert other.envelopes.open(scope).internal_id not in ids


async def test_envelope_ids_while_many_requests_run_together(server: AsgiServer) -> None:
    async with AsyncTestClient(server) as client:
        responses = await asyncio.gather(*(client.get("/api/hello") for _ in range(30)))
    assert all(r.status_code == 200 for r in responses)
    envelopes = closed(server)
    assert len({e.internal_id for e in envelopes}) == 30
    assert len(server.envelopes) == 0


async def test_request_size_counts_the_body_read(server: AsgiServer) -> None:
    async with AsyncTestClient(server) as client:
        response = await client.post("/api/upload", json={"data": "x" * 100})
        assert response.json() == {"size": 100}
        response = await client.get("/api/hello")
        assert response.status_code == 200
    seen = [e.request_size for e in closed(server)]
    assert seen == [len(b'{"data":"' + b"x" * 100 + b'"}'), 0]
