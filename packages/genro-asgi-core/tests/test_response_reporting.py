"""Who records status and size on the envelope: the dispatcher and the built-in middleware that
declare ``reports_responses`` (cors, compression), or the envelope's own wrapper of ``send`` as
soon as one HTTP middleware does not declare it. Either way the envelope sees the wire."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, AsgiServer, Plugin, hookimpl, route
from genro_asgi.testing import TestClient
from genro_asgi.types import ASGIApp, Receive, Scope, Send

ORIGIN = "https://app.example"
BIG = "compress me " * 200


class Site(AsgiApplication):
    @route()
    async def hello(self) -> str:
        return "hello"

    @route()
    async def big(self) -> str:
        return BIG


class Recorder(Plugin):
    def __init__(self, server: AsgiServer, config: Any) -> None:
        super().__init__(server, config)
        self.closed: list[tuple[str, int | None, int]] = []

    @hookimpl
    def genro_asgi_envelope_closed(self, envelope: Any) -> None:
        self.closed.append((envelope.method, envelope.status, envelope.response_size))


class Passing(Plugin):
    """A third-party middleware that does not declare reports_responses."""

    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        def factory(app: ASGIApp) -> ASGIApp:
            async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
                await app(scope, receive, send)

            return middleware

        return factory


class RaisingMiddleware:
    """Fails before answering /boom; it sends nothing, so it may declare reports_responses."""

    reports_responses = True

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path") == "/boom":
            raise RuntimeError("boom")
        await self.app(scope, receive, send)


class Raising(Plugin):
    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        return RaisingMiddleware


def make(tmp_path: Path, **extra: Any) -> AsgiServer:
    plugins: dict[str, Any] = {
        "cors": {"allow_origins": [ORIGIN]},
        "compression": {},
        "recorder": {"module": f"{__name__}:Recorder"},
        **extra,
    }
    server = AsgiServer(tmp_path, config={"plugins": plugins}, environ={})
    server.mount("/", Site())
    return server


def closed(server: AsgiServer) -> list[tuple[str, int | None, int]]:
    return server.plugins.get("recorder").closed  # type: ignore[no-any-return]


def test_reporting_middleware_leave_the_recording_to_the_dispatcher(tmp_path: Path) -> None:
    server = make(tmp_path)
    server.build()
    assert server._dispatcher is not None and server._dispatcher.records_responses
    assert server.build().track_sends is False  # type: ignore[attr-defined]


def test_one_unreporting_middleware_makes_the_envelope_track(tmp_path: Path) -> None:
    server = make(tmp_path, passing={"module": f"{__name__}:Passing"})
    server.build()
    assert server._dispatcher is not None and not server._dispatcher.records_responses
    assert server.build().track_sends is True  # type: ignore[attr-defined]


@pytest.mark.parametrize("third_party", [False, True])
def test_the_envelope_sees_the_wire(tmp_path: Path, third_party: bool) -> None:
    extra = {"passing": {"module": f"{__name__}:Passing"}} if third_party else {}
    server = make(tmp_path, **extra)
    with TestClient(server) as client:
        small = client.get("/hello", headers={"origin": ORIGIN, "accept-encoding": "gzip",
                                              "x-request-id": "r-1"})
        assert small.text == "hello" and small.headers["x-request-id"] == "r-1"
        assert small.headers["access-control-allow-origin"] == ORIGIN
        big = client.get("/big", headers={"accept-encoding": "gzip"})
        assert big.headers["content-encoding"] == "gzip" and big.text == BIG
        wire = int(big.headers["content-length"])
        head = client.head("/hello")
        assert head.status_code == 200
        preflight = client.options("/hello", headers={
            "origin": ORIGIN, "access-control-request-method": "GET", "x-request-id": "r-2"})
        assert preflight.status_code == 204
        assert preflight.headers["x-request-id"] == "r-2"
        refused = client.options("/hello", headers={
            "origin": "https://evil.example", "access-control-request-method": "GET"})
        assert refused.status_code == 403
    assert closed(server) == [
        ("GET", 200, 5), ("GET", 200, wire), ("HEAD", 200, 0), ("OPTIONS", 204, 0),
        ("OPTIONS", 403, len(refused.content)),
    ]
    assert wire < len(gzip.compress(BIG.encode())) + 50


@pytest.mark.parametrize("third_party", [False, True])
def test_an_error_cors_renders_is_recorded_and_echoes_the_request_id(tmp_path: Path,
                                                                      third_party: bool) -> None:
    extra = {"passing": {"module": f"{__name__}:Passing"}} if third_party else {}
    server = make(tmp_path, raising={"module": f"{__name__}:Raising"}, **extra)
    assert server.build().track_sends is third_party  # type: ignore[attr-defined]
    with TestClient(server) as client:
        answer = client.get("/boom", headers={"origin": ORIGIN, "x-request-id": "r-3"})
    assert answer.status_code == 500
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.headers["x-request-id"] == "r-3"
    assert closed(server) == [("GET", 500, len(answer.content))]
