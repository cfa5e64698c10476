"""Plugin middleware decorate the errors the envelope answers itself (the error chain).

A header flood's 431 and the 500 of a middleware that raised are answered by the envelope,
outside the plugin middleware; the error chain runs them around that answer so they can add
their headers. A middleware that raises again there is skipped (the answer still goes out), the
auth middleware stays out (a refused request is not asked for credentials), and a CORS
preflight in the error chain is decorated, not answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from genro_asgi import AsgiApplication, AsgiServer, Plugin, hookimpl, route
from genro_asgi.http_protocol import protocol_class
from genro_asgi.testing import LiveServer, TestClient
from genro_asgi.types import ASGIApp, Message, Receive, Scope, Send

FLOOD = [(f"X-Flood-{i}", "1") for i in range(40)]  # over max_header_count: 30 below


class Hello(AsgiApplication):
    @route()
    async def hi(self) -> str:
        return "hi"


def stamping(header: bytes) -> Any:
    """A middleware factory adding ``header: yes`` to every http response."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def send_stamped(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), (header, b"yes")]
                await send(message)

            await app(scope, receive, send_stamped)

        return middleware

    return factory


class Stamp(Plugin):
    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        return stamping(b"x-stamp")


class Inner(Plugin):
    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        return stamping(b"x-inner")


class Aloof(Plugin):
    """Stays out of the error chain."""

    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        factory = stamping(b"x-aloof")
        factory.joins_error_chain = False
        return factory


class Boom(Plugin):
    """A middleware with a bug: it raises on /boom paths, every time it is called."""

    calls = 0

    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        plugin = self

        def factory(app: ASGIApp) -> ASGIApp:
            async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] == "http" and scope["path"].startswith("/boom"):
                    plugin.calls += 1
                    raise RuntimeError("the middleware has a bug")
                await app(scope, receive, send)

            return middleware

        return factory


def make(tmp_path: Path, plugins: dict[str, Any], **server: Any) -> AsgiServer:
    config = {"server": {"max_header_count": 30, **server}, "plugins": plugins}
    app = AsgiServer(tmp_path, config=config, environ={})
    app.mount("/app", Hello())
    return app


def plugin(name: str, order: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"module": f"{__name__}:{name}"}
    if order is not None:
        spec["order"] = order
    return spec


def error_of(response: Any) -> dict[str, Any]:
    return response.json()["error"]  # type: ignore[no-any-return]


def test_a_header_flood_431_is_decorated(tmp_path: Path) -> None:
    server = make(tmp_path, {"stamp": plugin("Stamp")})
    with TestClient(server) as client:
        response = client.get("/app/hi", headers=FLOOD)
        assert response.status_code == 431
        assert response.headers["x-stamp"] == "yes"
        assert "more than 30 request headers" in error_of(response)["message"]
        assert client.get("/app/hi").headers["x-stamp"] == "yes"


def test_an_oversized_header_431_is_decorated(tmp_path: Path) -> None:
    server = make(tmp_path, {"stamp": plugin("Stamp")}, max_header_size=1024)
    with TestClient(server) as client:
        response = client.get("/app/hi", headers={"X-Big": "b" * 2000})
        assert response.status_code == 431
        assert response.headers["x-stamp"] == "yes"
        assert "larger than 1024 bytes" in error_of(response)["message"]


def test_the_500_of_a_failing_middleware_is_decorated_by_the_others(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # stamp outside boom, inner inside it: both decorate the 500; boom, which raises again in
    # the error chain, is skipped there
    server = make(tmp_path, {"stamp": plugin("Stamp", 1), "boom": plugin("Boom", 2),
                             "inner": plugin("Inner", 3)})
    with TestClient(server) as client, \
            caplog.at_level(logging.ERROR):
        response = client.get("/boom/x", headers={"X-Request-ID": "req-7"})
        assert response.status_code == 500
        assert response.headers["x-stamp"] == "yes"
        assert response.headers["x-inner"] == "yes"
        assert response.headers["x-request-id"] == "req-7"
        assert error_of(response)["message"] == "Internal Server Error"
        assert client.get("/app/hi").text == "hi"
    assert server.plugins.get("boom").calls == 2  # the request, then the error chain
    assert "plugin 'boom': its middleware failed while answering" in caplog.text


def test_the_outermost_middleware_failing_still_answers(tmp_path: Path) -> None:
    server = make(tmp_path, {"boom": plugin("Boom", 1), "stamp": plugin("Stamp", 2)})
    with TestClient(server) as client:
        response = client.get("/boom/x")
        assert response.status_code == 500
        assert response.headers["x-stamp"] == "yes"


def test_a_middleware_can_stay_out_of_the_error_chain(tmp_path: Path) -> None:
    server = make(tmp_path, {"aloof": plugin("Aloof"), "stamp": plugin("Stamp")})
    with TestClient(server) as client:
        assert client.get("/app/hi").headers["x-aloof"] == "yes"
        response = client.get("/app/hi", headers=FLOOD)
        assert response.status_code == 431
        assert "x-aloof" not in response.headers
        assert response.headers["x-stamp"] == "yes"


def test_no_error_chain_without_http_middleware(tmp_path: Path) -> None:
    server = make(tmp_path, {})
    assert server._error_app is None
    with TestClient(server) as client:
        assert client.get("/app/hi", headers=FLOOD).status_code == 431


def test_auth_does_not_turn_a_431_into_a_401(tmp_path: Path) -> None:
    server = make(tmp_path, {"auth": {"bearer": {"ops": {"token": "ops-token-123456"}}},
                             "stamp": plugin("Stamp")})
    with TestClient(server) as client:
        assert client.get("/app/hi").status_code == 401
        response = client.get("/app/hi", headers=FLOOD)
        assert response.status_code == 431
        assert response.headers["x-stamp"] == "yes"


def test_cors_decorates_a_431_and_never_answers_a_refused_preflight(tmp_path: Path) -> None:
    server = make(tmp_path, {"cors": {"allow_origins": ["https://app.example"]}})
    origin = {"Origin": "https://app.example"}
    with TestClient(server) as client:
        response = client.get("/app/hi", headers=[*origin.items(), *FLOOD])
        assert response.status_code == 431
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        preflight = client.options("/app/hi", headers=[
            *origin.items(), ("Access-Control-Request-Method", "GET"), *FLOOD])
        assert preflight.status_code == 431
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"


def test_over_uvicorn(tmp_path: Path) -> None:
    server = make(tmp_path, {"stamp": plugin("Stamp", 1), "boom": plugin("Boom", 2),
                             "cors": {"allow_origins": ["https://app.example"]}})
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        flooded = client.get("/app/hi", headers=[("Origin", "https://app.example"), *FLOOD])
        assert flooded.status_code == 431
        assert flooded.headers["x-stamp"] == "yes"
        assert flooded.headers["access-control-allow-origin"] == "https://app.example"
        failed = client.get("/boom/here", headers={"Origin": "https://app.example"})
        assert failed.status_code == 500
        assert failed.headers["x-stamp"] == "yes"
        assert failed.headers["access-control-allow-origin"] == "https://app.example"
        assert error_of(failed)["message"] == "Internal Server Error"
        assert client.get("/app/hi").text == "hi"


# -- a head refused by the HTTP protocol while it arrives (over the head budget) ---------------

WAIT = 30.0  # seconds: a guard against a hang, never an assertion


class Hang(Plugin):
    """A middleware that never answers an error it is asked to decorate."""

    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        def factory(app: ASGIApp) -> ASGIApp:
            async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
                if "genro.error" in scope:
                    await asyncio.sleep(3600)
                await app(scope, receive, send)

            return middleware

        return factory


class Closed(Plugin):
    """Records what every closed envelope answered."""

    def __init__(self, server: AsgiServer, config: Any) -> None:
        super().__init__(server, config)
        self.seen: list[tuple[str, int | None]] = []

    @hookimpl
    def genro_asgi_envelope_closed(self, envelope: Any) -> None:
        self.seen.append((envelope.path, envelope.status))


def endless_header(live: LiveServer, *head: bytes) -> bytes:
    """A request whose last header never ends: what the server answers before it closes."""
    received: list[bytes] = []
    with socket.create_connection((live.host, live.port), timeout=WAIT) as sock:

        def read() -> None:
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            received.append(b"".join(chunks))

        reader = threading.Thread(target=read)
        reader.start()
        sock.sendall(b"GET /app/hi?x=1 HTTP/1.1\r\nHost: test\r\n" + b"".join(head)
                     + b"X-Big: ")
        try:
            for _ in range(256):  # up to 16 MiB: the head never ends
                sock.sendall(b"a" * 65536)
                if received:
                    break
        except OSError:  # the server closed: what it answered is in received
            pass
        reader.join(WAIT)
    return received[0]


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_head_over_the_budget_is_answered_by_the_app_and_decorated(
        tmp_path: Path, http: str) -> None:
    server = make(tmp_path, {"stamp": plugin("Stamp"), "closed": plugin("Closed"),
                             "cors": {"allow_origins": ["https://app.example"]}},
                  http=http, max_header_size="4KiB", max_url_size="1KiB")
    with LiveServer(server) as live:
        status, headers, body = parse(endless_header(
            live, b"Origin: https://app.example\r\n", b"X-Request-ID: big-1\r\n"))
        assert status == 431
        assert headers["x-stamp"] == "yes"
        assert headers["access-control-allow-origin"] == "https://app.example"
        assert headers["connection"] == "close"
        assert headers["x-request-id"] == "big-1"
        assert int(headers["content-length"]) == len(body)
        error = json.loads(body)["error"]
        assert error["status"] == 431 and error["message"].startswith("Request head larger")
        with httpx.Client(base_url=live.url, timeout=WAIT) as client:
            assert client.get("/app/hi").text == "hi"  # the server goes on serving
    # observers saw the refused request, with the path its request line named
    assert ("/app/hi", 431) in server.plugins.get("closed").seen


def test_a_middleware_that_hangs_gets_the_plain_answer(tmp_path: Path) -> None:
    server = make(tmp_path, {"hang": plugin("Hang")}, max_header_size="4KiB",
                  max_url_size="1KiB")
    with LiveServer(server) as live:
        status, headers, body = parse(endless_header(live))
        assert status == 431
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert body.startswith(b"Request head larger than")


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_url_over_the_limit_is_answered_by_the_app_and_decorated(
        tmp_path: Path, http: str) -> None:
    server = make(tmp_path, {"stamp": plugin("Stamp"), "closed": plugin("Closed")}, http=http,
                  max_url_size="1KiB")
    with LiveServer(server) as live, \
            socket.create_connection((live.host, live.port), timeout=WAIT) as sock:
        sock.sendall(b"GET /app/hi?q=" + b"a" * 2000 + b" HTTP/1.1\r\nHost: test\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):  # the server closes after its answer
            chunks.append(chunk)
        status, headers, body = parse(b"".join(chunks))
    assert status == 414
    assert headers["x-stamp"] == "yes"
    assert json.loads(body)["error"]["message"] == "Request URL larger than 1024 bytes."
    assert ("/app/hi", 414) in server.plugins.get("closed").seen


def test_any_other_app_gets_the_plain_answers() -> None:
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"bare"})

    with LiveServer(bare, http=protocol_class()) as live, \
            socket.create_connection((live.host, live.port), timeout=WAIT) as sock:
        sock.sendall(b"GET /?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: test\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        status, headers, body = parse(b"".join(chunks))
    assert status == 414
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body.startswith(b"Request URL larger than")
