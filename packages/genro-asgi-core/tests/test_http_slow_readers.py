"""A client that asks and never reads: ``server.send_timeout`` drops it.

With the socket's buffers full, a streamed response's ``send`` waits for the client to read,
and a complete one sits in the transport's buffer; a client that never reads used to hold
its request, its envelope and the response's bytes for ever (N such clients: N responses in
memory). Raw sockets with a tiny receive buffer play that client,
over a real uvicorn with genro-asgi's HTTP protocol (both parsers).
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genro_asgi import AsgiApplication, AsgiServer, StreamingResponse, route
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e

WAIT = 20.0  # bound on every wait: generous, a guard against a hang, not a speed check
BIG = 32 * 1024 * 1024  # well over what the kernel buffers on loopback (4 MiB each way)
CHUNK = 64 * 1024


class Big(AsgiApplication):
    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.finished = 0

    @route()
    def big(self) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(BIG // CHUNK):
                yield b"x" * CHUNK
            self.finished += 1

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @route()
    def whole(self) -> bytes:
        return b"x" * BIG

    @route()
    def hello(self) -> str:
        return "hello"


@pytest.fixture(params=["httptools", "h11"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer,
                                                                             AsgiServer]]:
    server = AsgiServer(tmp_path, environ={}, config={
        "server": {"send_timeout": 1.0, "http": request.param},
        "logging": {"access_log": False}})
    server.mount("/b", Big())
    with LiveServer(server) as live:
        yield live, server


def _never_reading_client(live: LiveServer, path: str = "/b/big") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((live.host, live.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def _read_until_closed(sock: socket.socket) -> int:
    sock.settimeout(WAIT)
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass
    return received


def _wait_for(condition: Any) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_client_that_never_reads_is_dropped(served: tuple[LiveServer, AsgiServer]) -> None:
    live, server = served
    app = server.apps["b"]
    sockets = [_never_reading_client(live) for _ in range(3)]
    try:
        assert _wait_for(lambda: server.envelopes.count("http") == 3)
        # each stream waits on a full buffer; after send_timeout the connection is dropped,
        # the stream stops and its envelope is released
        assert _wait_for(lambda: server.envelopes.count("http") == 0)
        for sock in sockets:
            assert _read_until_closed(sock) < BIG
        assert app.finished == 0  # no stream ran to its end
    finally:
        for sock in sockets:
            sock.close()
    with httpx.Client(base_url=live.url, timeout=WAIT) as http:
        assert http.get("/b/hello").text == "hello"


def test_a_whole_response_left_unread_is_dropped(served: tuple[LiveServer,
                                                                AsgiServer]) -> None:
    live, _ = served
    # the body went to the transport in one piece (the request is over), but it is still
    # held there for a client that does not read: the connection is dropped all the same
    sock = _never_reading_client(live, "/b/whole")
    try:
        time.sleep(3.0)  # three times send_timeout without reading
        assert _read_until_closed(sock) < BIG
    finally:
        sock.close()


def test_a_slow_but_reading_client_gets_everything(served: tuple[LiveServer,
                                                                 AsgiServer]) -> None:
    live, server = served
    sock = socket.create_connection((live.host, live.port))
    try:
        sock.sendall(b"GET /b/big HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(WAIT)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        received = len(data.partition(b"\r\n\r\n")[2])
        next_pause = 4 * 1024 * 1024
        # chunked framing adds a few bytes per chunk: read until the final chunk
        while not data.endswith(b"0\r\n\r\n"):
            if received >= next_pause:  # stop reading for half of send_timeout now and then
                time.sleep(0.5)
                next_pause += 4 * 1024 * 1024
            data = sock.recv(1 << 20)
            assert data, "dropped while reading"
            received += len(data)
        assert received > BIG
        assert server.apps["b"].finished == 1
    finally:
        sock.close()
