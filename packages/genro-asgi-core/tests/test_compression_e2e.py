"""The ``compression`` plugin over a real uvicorn, seen by real clients (httpx, raw sockets,
the ``websockets`` client): wire bytes, headers, chunks decodable as they arrive, static files
(304, 206), hostile Accept-Encoding values and clients that leave mid-stream."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
from websockets.sync.client import connect

from genro_asgi import (
    AsgiApplication,
    AsgiServer,
    Response,
    StaticRouter,
    StreamingResponse,
    WebSocket,
    route,
)
from genro_asgi.testing import LiveServer
from genro_asgi.types import Receive, Scope, Send

pytestmark = pytest.mark.e2e

TEXT = ("Sphinx of black quartz, judge my vow. " * 80).encode()
WAIT = 10.0  # generous, only so that a broken build fails instead of hanging


class Gates:
    """Per-test events the server-side stream waits on before producing its next chunk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: dict[str, list[threading.Event]] = {}

    def get(self, token: str) -> list[threading.Event]:
        with self._lock:
            return self._gates.setdefault(token, [threading.Event() for _ in range(4)])


GATES = Gates()


class Site(AsgiApplication):
    @route()
    def text(self) -> Response:
        return Response(TEXT, media_type="text/plain", headers={"ETag": '"t1"'})

    @route()
    def gated(self, token: str) -> StreamingResponse:
        gates = GATES.get(token)

        async def chunks() -> AsyncIterator[bytes]:
            for i, gate in enumerate(gates):
                yield f"chunk {i}: ".encode() + TEXT[: 200 * (i + 1)]
                # the next chunk is produced only once the client has decoded this one
                if not await asyncio.to_thread(gate.wait, WAIT):
                    return

        return StreamingResponse(chunks(), media_type="application/x-ndjson")

    @route()
    def endless(self) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield TEXT
                await asyncio.sleep(0.005)

        return StreamingResponse(chunks(), media_type="text/plain")

    @route()
    def events(self) -> StreamingResponse:
        return StreamingResponse(iter([b"data: one\n\n" * 100, b"data: two\n\n" * 100]),
                                 media_type="text/event-stream")


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text * 50)


def build(directory: Path, plugins: dict[str, Any]) -> AsgiServer:
    public = directory / "public"
    public.mkdir()
    (public / "page.html").write_bytes(TEXT)
    server = AsgiServer(directory, config={"plugins": plugins}, environ={})
    server.mount("/", Site())
    server.mount("/static", StaticRouter(public))
    server.mount("/echo", echo)
    return server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AsgiServer, str]]:
    server = build(tmp_path_factory.mktemp("compression"), {"compression": {}})
    with LiveServer(server) as live:
        yield server, live.url


@pytest.fixture(scope="module")
def url(served: tuple[AsgiServer, str]) -> str:
    return served[1]


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=WAIT) as c:
        yield c


def raw(client: httpx.Client, path: str, method: str = "GET",
        **headers: str) -> tuple[httpx.Response, bytes]:
    with client.stream(method, path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def test_gzip_on_the_wire(client: httpx.Client) -> None:
    response, data = raw(client, "/text", **{"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["etag"] == 'W/"t1"'
    assert gzip.decompress(data) == TEXT


def test_brotli_on_the_wire_and_decoded_by_httpx(client: httpx.Client) -> None:
    response, data = raw(client, "/text", **{"accept-encoding": "gzip, deflate, br"})
    assert response.headers["content-encoding"] == "br"
    assert brotli.decompress(data) == TEXT
    decoded = client.get("/text", headers={"accept-encoding": "br"})
    assert decoded.content == TEXT


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "*;q=0, identity", "zstd"])
def test_refusals(client: httpx.Client, accept: str) -> None:
    response, data = raw(client, "/text", **{"accept-encoding": accept})
    assert "content-encoding" not in response.headers
    assert data == TEXT
    assert response.headers["etag"] == '"t1"'
    assert response.headers["vary"] == "Accept-Encoding"


def test_head(client: httpx.Client) -> None:
    response = client.head("/text", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(TEXT))
    assert response.content == b""


@pytest.mark.parametrize(("coding", "decoder"), [
    ("gzip", lambda: zlib.decompressobj(31).decompress),
    ("br", lambda: brotli.Decompressor().process),
])
def test_stream_chunks_decode_as_they_arrive(client: httpx.Client, coding: str,
                                             decoder: Any) -> None:
    token = f"stream-{coding}"
    gates = GATES.get(token)
    decode = decoder()
    with client.stream("GET", "/gated", params={"token": token},
                       headers={"accept-encoding": coding}) as response:
        assert response.headers["content-encoding"] == coding
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        pieces = response.iter_raw()
        for i, gate in enumerate(gates):
            expected = f"chunk {i}: ".encode() + TEXT[: 200 * (i + 1)]
            got = b""
            while len(got) < len(expected):  # a read timeout here means a chunk was held back
                got += decode(next(pieces))
            assert got == expected
            gate.set()
        assert decode(b"".join(pieces)) == b""


def test_event_stream_is_not_compressed(client: httpx.Client) -> None:
    response, data = raw(client, "/events", **{"accept-encoding": "gzip, br"})
    assert "content-encoding" not in response.headers
    assert data == b"data: one\n\n" * 100 + b"data: two\n\n" * 100


def test_static_file_revalidation_and_ranges(client: httpx.Client) -> None:
    first, data = raw(client, "/static/page.html", **{"accept-encoding": "gzip"})
    assert first.headers["content-encoding"] == "gzip" and gzip.decompress(data) == TEXT
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    again = client.get("/static/page.html",
                       headers={"accept-encoding": "gzip", "if-none-match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    ranged, data = raw(client, "/static/page.html",
                       **{"accept-encoding": "gzip", "range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert "content-encoding" not in ranged.headers and data == TEXT[:100]
    # If-Range with the weak ETag cannot hold: the whole (compressed) body comes back
    whole, data = raw(client, "/static/page.html",
                      **{"accept-encoding": "gzip", "range": "bytes=0-99", "if-range": etag})
    assert whole.status_code == 200 and gzip.decompress(data) == TEXT


@pytest.mark.parametrize("accept", [
    "gzip;q=" + "9" * 3000, "," * 3000, ";;;;=;q", "*;q=0.0001, gzip;q=0.0000",
    "gzip;q=1.0000000", "br;q=nan, gzip;q=inf", "gzip \t;\t q=0.9", "q=1", "gzip;q=0.5;q=0",
])
def test_hostile_values_never_fail(client: httpx.Client, accept: str) -> None:
    response = client.get("/text", headers={"accept-encoding": accept})
    assert response.status_code == 200
    assert response.content == TEXT


def test_non_ascii_accept_encoding_over_a_raw_socket(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    request = (b"GET /text HTTP/1.1\r\nHost: x\r\nAccept-Encoding: \xff\xfe;q=\x80, gzip\r\n"
               b"Connection: close\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-encoding: gzip" in head.lower()
    assert gzip.decompress(body) == TEXT


def test_client_leaving_mid_stream_leaves_nothing_behind(
        served: tuple[AsgiServer, str], client: httpx.Client) -> None:
    server, _ = served
    with client.stream("GET", "/endless", headers={"accept-encoding": "gzip"}) as response:
        assert response.headers["content-encoding"] == "gzip"
        pieces = response.iter_raw()
        decode = zlib.decompressobj(31).decompress
        got = b""
        while len(got) < 3 * len(TEXT):
            got += decode(next(pieces))
        assert got.startswith(TEXT * 3)
    deadline = time.monotonic() + WAIT
    while len(server.envelopes) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.envelopes) == 0
    assert client.get("/text").status_code == 200  # the server is fine


def test_websocket_is_not_touched(url: str) -> None:
    with connect(url.replace("http://", "ws://") + "/echo", open_timeout=WAIT,
                 compression=None) as ws:
        ws.send("ab")
        assert ws.recv(timeout=WAIT) == "ab" * 50


def test_off_unless_named(tmp_path: Path) -> None:
    with LiveServer(build(tmp_path, {})) as live, \
            httpx.Client(base_url=live.url, timeout=WAIT) as c:
        response, data = raw(c, "/text", **{"accept-encoding": "gzip, br"})
    assert "content-encoding" not in response.headers and "vary" not in response.headers
    assert data == TEXT
