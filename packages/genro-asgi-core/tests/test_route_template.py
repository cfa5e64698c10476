"""``AsgiServer.route_template(scope)``: the ``route`` the dispatcher records on the envelope,
looked up without calling anything (what genro-asgi-metrics labels a request with when the
auth or cors plugin answered it before the dispatcher)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genro_asgi import AsgiApplication, AsgiServer, Envelope, Plugin, hookimpl, route
from genro_asgi.routing import MAX_PATH_SEGMENTS
from genro_asgi.testing import TestClient

CALLS: list[str] = []


class Shop(AsgiApplication):
    @route(methods=["GET"])
    def index(self) -> str:
        CALLS.append("index")
        return "shop"

    @route(methods=["GET"])
    def get(self, *parts: str) -> str:
        CALLS.append("get")
        return "/".join(parts)


class Routes(Plugin):
    """Remembers the route of every envelope, as an observer reads it."""

    def __init__(self, server: Any, config: Any) -> None:
        super().__init__(server, config)
        self.seen: list[str | None] = []

    @hookimpl
    def genro_asgi_envelope_closed(self, envelope: Envelope) -> None:
        self.seen.append(envelope.route)


async def raw(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})
        return
    CALLS.append("raw")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})


def build(tmp_path: Path) -> AsgiServer:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {
        "routes": {"module": f"{__name__}:Routes"}}})
    server.mount("/shop", Shop())
    server.mount("/raw", raw)
    return server


PATHS = [
    "/shop/get", "/shop/get/", "/shop/get/1/2", "/shop", "/shop/", "/shop/index",
    "/shop/get/" + "/".join(["x"] * (MAX_PATH_SEGMENTS - 3)),
    "/shop/get/" + "/".join(["x"] * (MAX_PATH_SEGMENTS + 5)),
    "/shop/get/" + "y" * 20_000, "/shop//get//", "/raw", "/raw/", "/raw/a/b", "/rawx",
    "/nowhere", "/", "",
]


def test_the_template_is_what_the_dispatcher_records(tmp_path: Path) -> None:
    server = build(tmp_path)
    with TestClient(server) as client:
        for path in PATHS:
            client.get(path or "/")
    seen = server.plugins.get("routes").seen
    assert seen == [server.route_template({"type": "http", "path": path or "/"})
                    for path in PATHS]
    assert set(seen) == {"/shop/get", "/shop/index", "/raw", None}


def test_the_lookup_calls_nothing(tmp_path: Path) -> None:
    server = build(tmp_path)
    CALLS.clear()
    for path in PATHS:
        server.route_template({"type": "http", "path": path or "/"})
    assert CALLS == []


def test_websocket_scopes_match_mounts_only(tmp_path: Path) -> None:
    server = build(tmp_path)
    assert server.route_template({"type": "websocket", "path": "/raw/socket"}) == "/raw"
    assert server.route_template({"type": "websocket", "path": "/shop/get"}) is None


def test_a_root_mount_is_the_fallback(tmp_path: Path) -> None:
    server = build(tmp_path)
    server.mount("/", raw)
    assert server.route_template({"type": "http", "path": "/shop/get/1"}) == "/shop/get"
    assert server.route_template({"type": "http", "path": "/anything/else"}) == "/"
