"""The ``cors`` plugin over a real uvicorn: WebSocket handshakes with the ``websockets`` client
(403 before accept for a refused Origin), the preflight's wire format on both HTTP parsers, and
raw bytes no client library would send.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from genro_asgi import AsgiServer, WebSocket
from genro_asgi.testing import LiveServer
from genro_asgi.types import Receive, Scope, Send

pytestmark = pytest.mark.e2e

APP = "https://app.example"


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    ws = WebSocket(scope, receive, send)
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(f"echo:{text}")


def serve(directory: Path, options: dict[str, Any], **uvicorn_options: Any) -> LiveServer:
    server = AsgiServer(directory, config={"plugins": {"cors": options}}, environ={})
    server.mount("/ws", echo)
    return LiveServer(server, **uvicorn_options).start()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve(tmp_path_factory.mktemp("ws"), {
        "allow_origins": [APP], "allow_origin_regex": r"https://[a-z]+\.preview\.example"})
    yield server
    server.stop()


def talk(url: str, origin: str | None) -> str:
    with connect(url, origin=origin, proxy=None, open_timeout=10) as conn:  # type: ignore[arg-type]
        conn.send("hi")
        return str(conn.recv(timeout=10))


@pytest.mark.parametrize("origin", [None, APP, "https://feature.preview.example"])
def test_allowed_handshakes_connect(live: LiveServer, origin: str | None) -> None:
    assert talk(f"{live.ws_url}/ws", origin) == "echo:hi"


def test_same_origin_handshake_connects(live: LiveServer) -> None:
    assert talk(f"{live.ws_url}/ws", f"http://127.0.0.1:{live.port}") == "echo:hi"


@pytest.mark.parametrize("origin", [
    "https://evil.example", "https://app.example.evil.com", "null",
    "http://127.0.0.1:1",  # the server's host on another port is another origin
])
def test_refused_handshakes_get_403(live: LiveServer, origin: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        talk(f"{live.ws_url}/ws", origin)
    assert info.value.response.status_code == 403


def test_star_accepts_any_origin(tmp_path: Path) -> None:
    live = serve(tmp_path, {"allow_origins": ["*"]})
    try:
        assert talk(f"{live.ws_url}/ws", "https://anyone.example") == "echo:hi"
    finally:
        live.stop()


# -- raw HTTP on both parsers ------------------------------------------------------------------

@pytest.fixture(scope="module", params=["h11", "httptools"])
def raw_live(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve(tmp_path_factory.mktemp("raw"), {"allow_origins": [APP],
                                                     "allow_headers": ["x-token"]},
                   http=request.param)
    yield server
    server.stop()


def exchange(live: LiveServer, *requests: bytes) -> list[bytes]:
    """Send requests on one keep-alive connection; return each raw response head."""
    heads = []
    with socket.create_connection((live.host, live.port), timeout=10) as sock:
        buffer = b""
        for request in requests:
            sock.sendall(request)
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                buffer += sock.recv(65536)
            buffer = buffer[length:]
            heads.append(head.lower())
    return heads


def test_preflight_204_keeps_the_connection_usable(raw_live: LiveServer) -> None:
    preflight = (b"OPTIONS /ws HTTP/1.1\r\nhost: x\r\norigin: https://app.example\r\n"
                 b"access-control-request-method: POST\r\n"
                 b"access-control-request-headers: x-token\r\n\r\n")
    refused = (b"OPTIONS /ws HTTP/1.1\r\nhost: x\r\norigin: https://evil.example\r\n"
               b"access-control-request-method: GET\r\n\r\n")
    first, second, third = exchange(raw_live, preflight, refused, preflight)
    assert first.startswith(b"http/1.1 204")
    assert b"access-control-allow-origin: https://app.example" in first
    assert b"access-control-allow-methods: get, head, post" in first
    assert b"content-length" not in first and b"transfer-encoding" not in first
    assert second.startswith(b"http/1.1 403")
    assert b"access-control-" not in second
    assert third.startswith(b"http/1.1 204")


@pytest.mark.parametrize("origin", [b"https://\xc3\xa9t\xe9.example", b"x" * 8000])
def test_garbled_origins_over_the_wire(raw_live: LiveServer, origin: bytes) -> None:
    simple = b"GET /nothing HTTP/1.1\r\nhost: x\r\norigin: " + origin + b"\r\n\r\n"
    preflight = (b"OPTIONS /nothing HTTP/1.1\r\nhost: x\r\norigin: " + origin +
                 b"\r\naccess-control-request-method: GET\r\n\r\n")
    heads = exchange(raw_live, simple, preflight)
    assert heads[0].startswith(b"http/1.1 404")
    assert b"access-control-allow-origin" not in heads[0]
    assert heads[1].startswith(b"http/1.1 403")
