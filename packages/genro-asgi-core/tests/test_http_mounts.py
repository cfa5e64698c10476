"""Mounting foreign apps: ASGI and WSGI apps under a prefix, prefix collisions, WebSockets."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, AsgiServer, ConfigError, route
from genro_asgi.testing import LiveServer, WebSocketDisconnect


async def scope_reporter(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A pure ASGI app that answers with what it saw, and echoes WebSocket text."""
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text == "close":
                await send({"type": "websocket.close", "code": 4001})
                return
            await send({"type": "websocket.send",
                        "text": f"{scope['root_path']}|{scope['path']}|{text}"})
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = {
        "root_path": scope["root_path"], "path": scope["path"],
        "raw_path": scope["raw_path"].decode() if scope.get("raw_path") else None,
        "query": scope["query_string"].decode(), "method": scope["method"],
        "body": body.decode(), "has_envelope": "genro.envelope" in scope,
    }
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def wsgi_app(environ: dict[str, Any],
             start_response: Callable[[str, list[tuple[str, str]]], Any]) -> Iterable[bytes]:
    """A WSGI app that reports its environ."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length).decode() if length else ""
    payload = {"script_name": environ["SCRIPT_NAME"], "path_info": environ["PATH_INFO"],
               "query": environ["QUERY_STRING"], "method": environ["REQUEST_METHOD"],
               "body": body}
    start_response("203 Non-Authoritative Information",
                   [("Content-Type", "application/json"), ("X-Wsgi", "1")])
    return [json.dumps(payload).encode()]


class Shop(AsgiApplication):
    @route()
    def index(self) -> str:
        return "shop"

    @route()
    def hello(self) -> str:
        return "hello from shop"


# -- ASGI ------------------------------------------------------------------------------------


def test_asgi_app_sees_root_path_extended_and_path_stripped(make_server: Any,
                                                           make_client: Any) -> None:
    server = make_server()
    server.mount("/ext/api", scope_reporter)
    client = make_client(server)
    seen = client.post("/ext/api/users/7?full=1", content=b"payload").json()
    assert seen == {"root_path": "/ext/api", "path": "/users/7", "raw_path": "/users/7",
                    "query": "full=1", "method": "POST", "body": "payload",
                    "has_envelope": True}
    at_prefix = client.get("/ext/api").json()
    assert (at_prefix["root_path"], at_prefix["path"], at_prefix["raw_path"]) == (
        "/ext/api", "/", "/")
    assert client.get("/ext/api/").json()["path"] == "/"


def test_asgi_prefix_matches_whole_segments_only(make_server: Any, make_client: Any) -> None:
    server = make_server()
    server.mount("/ext", scope_reporter)
    client = make_client(server)
    assert client.get("/ext/x").status_code == 200
    assert client.get("/extra").status_code == 404
    assert client.get("/ex").status_code == 404


def test_longest_asgi_prefix_wins(make_server: Any, make_client: Any) -> None:
    async def other(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"other"})

    server = make_server()
    server.mount("/a", other)
    server.mount("/a/b", scope_reporter)
    client = make_client(server)
    assert client.get("/a/b/c").json()["path"] == "/c"
    assert client.get("/a/c").text == "other"


def test_asgi_app_at_root_is_a_fallback_behind_mounted_routes(make_server: Any,
                                                              make_client: Any) -> None:
    server = make_server()
    server.mount("/", scope_reporter)
    server.mount("/shop", Shop())
    client = make_client(server)
    assert client.get("/shop").text == "shop"
    assert client.get("/shop/hello").text == "hello from shop"
    fallback = client.get("/anything/else").json()
    assert (fallback["root_path"], fallback["path"]) == ("", "/anything/else")


def test_asgi_app_mounted_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      make_server: Any, make_client: Any) -> None:
    module = _write_module(tmp_path, monkeypatch, """
        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body",
                        "body": (scope["root_path"] + "|" + scope["path"]).encode()})
    """)
    server = make_server({"apps": {"raw": {"module": f"{module}:app"}}})
    client = make_client(server)
    assert client.get("/raw/x/y").text == "/raw|/x/y"


# -- WSGI ------------------------------------------------------------------------------------


def test_wsgi_app_via_mount_wsgi(make_server: Any, make_client: Any) -> None:
    server = make_server()
    server.mount_wsgi("/legacy", wsgi_app)
    client = make_client(server)
    response = client.post("/legacy/orders/9?sort=asc", content=b"a=1")
    assert response.status_code == 203
    assert response.headers["x-wsgi"] == "1"
    assert response.json() == {"script_name": "/legacy", "path_info": "/orders/9",
                               "query": "sort=asc", "method": "POST", "body": "a=1"}
    assert client.get("/legacy").json()["path_info"] == "/"


def test_wsgi_app_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              make_server: Any, make_client: Any) -> None:
    module = _write_module(tmp_path, monkeypatch, """
        def wsgi_app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [("wsgi:" + environ["SCRIPT_NAME"] + "|" + environ["PATH_INFO"]).encode()]
    """)
    server = make_server({"apps": {"legacy": {"module": f"{module}:wsgi_app", "wsgi": True}}})
    client = make_client(server)
    response = client.get("/legacy/page")
    assert response.status_code == 200
    assert response.text == "wsgi:/legacy|/page"


def test_wsgi_object_with_params_is_a_config_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   make_server: Any) -> None:
    module = _write_module(tmp_path, monkeypatch, """
        def wsgi_app(environ, start_response):
            return []
    """)
    with pytest.raises(ConfigError, match=r"apps\.legacy"):
        make_server({"apps": {"legacy": {"module": f"{module}:wsgi_app", "wsgi": True,
                                         "colour": "red"}}})


# -- collisions and refusals -----------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [
    ("/shop", "/shop"), ("/shop", "shop/"), ("/", "/"), ("/a/b", "/a/b/"),
])
def test_prefix_collision_is_a_config_error(make_server: Any, first: str, second: str) -> None:
    server = make_server()
    server.mount(first, Shop())
    with pytest.raises(ConfigError, match="already mounted"):
        server.mount(second, scope_reporter)
    with pytest.raises(ConfigError, match="already mounted"):
        server.mount(second, Shop())


def test_config_app_colliding_with_a_code_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                make_server: Any) -> None:
    module = _write_module(tmp_path, monkeypatch, """
        from genro_asgi import AsgiApplication

        class App(AsgiApplication):
            pass
    """)
    server = make_server({"apps": {"shop": {"module": f"{module}:App"}}})
    with pytest.raises(ConfigError, match="'/shop' is already mounted"):
        server.mount("/shop", Shop())
    with pytest.raises(ConfigError, match="already mounted"):
        make_server({"apps": {"a": {"module": f"{module}:App", "prefix": "/x"},
                              "b": {"module": f"{module}:App", "prefix": "/x"}}})


def test_one_instance_cannot_be_mounted_twice(make_server: Any) -> None:
    server = make_server()
    shop = Shop()
    server.mount("/one", shop)
    with pytest.raises(ConfigError, match="already mounted"):
        server.mount("/two", shop)
    with pytest.raises(ConfigError, match="already mounted"):
        server.mount("/deeper/two", shop)
    assert shop.prefix == "/one"


def test_mounting_something_that_is_not_an_app(make_server: Any) -> None:
    with pytest.raises(TypeError, match="cannot mount"):
        make_server().mount("/x", 42)


def test_config_module_that_does_not_import(make_server: Any) -> None:
    with pytest.raises(ConfigError, match=r"apps\.shop\.module: cannot import"):
        make_server({"apps": {"shop": {"module": "no_such_module_for_http_tests:Shop"}}})


# -- WebSocket -------------------------------------------------------------------------------


def test_websocket_without_a_websocket_app_is_closed(make_server: Any, make_client: Any) -> None:
    server = make_server()
    server.mount("/shop", Shop())
    client = make_client(server)
    for path in ("/shop/hello", "/nowhere"):
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(path):
            pass
        assert info.value.code == 1008
    assert len(server.envelopes) == 0


def test_mounted_asgi_websocket_echo(make_server: Any, make_client: Any) -> None:
    server = make_server()
    server.mount("/ws", scope_reporter)
    client = make_client(server)
    with client.websocket_connect("/ws/room/1") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "/ws|/room/1|hi"
        ws.send_text("again")
        assert ws.receive_text() == "/ws|/room/1|again"
        ws.send_text("close")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == 4001
    assert len(server.envelopes) == 0


@pytest.mark.e2e
def test_mounted_asgi_websocket_echo_through_uvicorn(tmp_path: Path) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/ws", scope_reporter)
    server.mount("/shop", Shop())
    with LiveServer(server) as live:
        with connect(f"{live.ws_url}/ws/chat", open_timeout=10) as ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "/ws|/chat|ping"
            ws.send("pong")
            assert ws.recv(timeout=10) == "/ws|/chat|pong"
        # uvicorn turns a close before accept into a 403 handshake refusal
        with pytest.raises(InvalidStatus) as refused, \
                connect(f"{live.ws_url}/shop/hello", open_timeout=10):
            pass
        assert refused.value.response.status_code == 403
    assert len(server.envelopes) == 0


def _write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    name = f"http_mount_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name
