"""End to end over a real uvicorn on a loopback port: the HTTP path as a client sees it."""

from __future__ import annotations

import asyncio
import datetime
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from genro_tytx import from_tytx, to_tytx

from genro_asgi import AsgiApplication, AsgiServer, Request, StreamingResponse, route
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e

LIMIT = 4096


class Shop(AsgiApplication):
    @route()
    def index(self) -> str:
        return "shop index"

    @route(name="get")
    def get_product(self, pid: int) -> dict[str, Any]:
        return {"pid": pid, "currency": self.config.get("currency")}

    @route(methods=["POST"])
    def order(self, sku: str, qty: int) -> dict[str, Any]:
        return {"sku": sku, "qty": qty}

    @route()
    def price(self, amount: Decimal, day: datetime.date) -> dict[str, Any]:
        return {"amount": amount * 2, "day": day + datetime.timedelta(days=1),
                "at": datetime.datetime(2025, 1, 15, 10, 30, tzinfo=datetime.UTC)}

    @route()
    def stream(self, n: int = 5) -> StreamingResponse:
        async def lines() -> AsyncIterator[str]:
            for i in range(n):
                await asyncio.sleep(0)
                yield f"line {i}\n"

        return StreamingResponse(lines(), media_type="text/plain")

    @route()
    def where(self) -> dict[str, Any]:
        return {"main_thread": threading.current_thread() is threading.main_thread(),
                "thread": threading.current_thread().name}

    @route(methods=["POST"])
    async def upload(self, request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @route()
    def crash(self) -> None:
        raise RuntimeError("internal detail that must stay private")


class Root(AsgiApplication):
    @route()
    def index(self) -> str:
        return "home"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, AsgiServer]]:
    server = AsgiServer(Path(tmp_path_factory.mktemp("e2e")), config={}, environ={},
                        max_body_size=LIMIT)
    server.mount("/", Root())
    server.mount("/shop", Shop(currency="EUR"))
    with LiveServer(server) as live_server:
        yield live_server, server


@pytest.fixture
def client(live: tuple[LiveServer, AsgiServer]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live[0].url, timeout=10) as http:
        yield http


def test_routes(client: httpx.Client) -> None:
    assert client.get("/").text == "home"
    assert client.get("/shop").text == "shop index"
    response = client.get("/shop/get/42")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"pid": 42, "currency": "EUR"}
    assert client.post("/shop/order", json={"sku": "A1", "qty": "3"}).json() == {
        "sku": "A1", "qty": 3}
    assert client.post("/shop/order", data={"sku": "B2", "qty": "1"}).json() == {
        "sku": "B2", "qty": 1}


def test_sync_handler_runs_in_a_worker_thread(client: httpx.Client) -> None:
    result = client.get("/shop/where").json()
    assert result["main_thread"] is False
    assert not result["thread"].startswith("uvicorn")


def test_not_found(client: httpx.Client) -> None:
    for path in ("/nope", "/shop/nope", "/shop/get/1/2"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["status"] == 404


def test_method_not_allowed(client: httpx.Client) -> None:
    response = client.get("/shop/order")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    put = client.put("/shop/get/1")
    assert put.status_code == 405
    assert put.headers["allow"] == "GET, HEAD, POST"


def test_body_too_large(client: httpx.Client) -> None:
    response = client.post("/shop/upload", content=b"x" * (LIMIT * 2))
    assert response.status_code == 413
    assert response.json()["error"]["status"] == 413


def test_streamed_upload_too_large(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    response = client.post("/shop/upload", content=chunks())  # chunked, no Content-Length
    assert response.status_code == 413


def test_upload_within_the_limit(client: httpx.Client) -> None:
    response = client.post("/shop/upload", content=b"z" * LIMIT,
                           headers={"Content-Type": "application/octet-stream"})
    assert response.json() == {"size": LIMIT}


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post("/shop/order", content=b'{"sku": "A1", "qty": ',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("malformed JSON body")


def test_tytx_round_trip(client: httpx.Client) -> None:
    body = to_tytx({"amount": Decimal("10.25"), "day": datetime.date(2025, 1, 31)})
    assert isinstance(body, str)
    response = client.post("/shop/price", content=body.encode(),
                           headers={"Content-Type": "application/vnd.tytx+json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.tytx+json"
    assert from_tytx(response.text, "json") == {
        "amount": Decimal("20.50"), "day": datetime.date(2025, 2, 1),
        "at": datetime.datetime(2025, 1, 15, 10, 30, tzinfo=datetime.UTC)}
    bad = client.post("/shop/price", content=b'{"amount":"x::N","day":"2025-01-01::D"}',
                      headers={"X-TYTX-Transport": "json"})
    assert bad.status_code == 400


def test_request_id_is_echoed(client: httpx.Client) -> None:
    response = client.get("/shop/get/1", headers={"X-Request-ID": "e2e-abc-123"})
    assert response.headers["x-request-id"] == "e2e-abc-123"
    missing = client.get("/shop/missing", headers={"X-Request-ID": "e2e-404"})
    assert missing.headers["x-request-id"] == "e2e-404"
    assert missing.json()["error"]["request_id"] == "e2e-404"


def test_streaming(client: httpx.Client) -> None:
    with client.stream("GET", "/shop/stream?n=50") as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        body = b"".join(response.iter_raw())
    assert body.decode().splitlines() == [f"line {i}" for i in range(50)]


def test_head(client: httpx.Client) -> None:
    for path in ("/shop/get/7", "/shop", "/"):
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code == 200
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == get.headers["content-length"] == str(
            len(get.content))
    head = client.head("/shop/stream")
    assert head.status_code == 200
    assert head.content == b""
    assert client.head("/shop/order").status_code == 405


def test_crash_is_500_without_details(client: httpx.Client) -> None:
    response = client.get("/shop/crash")
    assert response.status_code == 500
    assert "private" not in response.text
    assert response.json()["error"]["error_id"]


def _raw_exchange(live: LiveServer, payload: bytes) -> bytes:
    with socket.create_connection((live.host, live.port), timeout=10) as sock:
        sock.sendall(payload)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received:
                break
        return received


@pytest.mark.parametrize("payload", [
    b"THIS IS NOT HTTP\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    b"GET /shop HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_malformed_http_gets_a_4xx_and_the_server_keeps_serving(
        live: tuple[LiveServer, AsgiServer], client: httpx.Client, payload: bytes) -> None:
    answer = _raw_exchange(live[0], payload)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4"), answer[:200]
    assert client.get("/shop/get/9").json()["pid"] == 9


def test_nothing_left_in_flight(live: tuple[LiveServer, AsgiServer],
                                client: httpx.Client) -> None:
    client.get("/shop/get/1")
    # the client may read the response before the server thread runs the envelope's
    # ``finally``: wait (bounded) for it, then assert
    deadline = time.monotonic() + 5
    while len(live[1].envelopes) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(live[1].envelopes) == 0


def test_live_server_fixture_from_the_plugin(live_server: Any, tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/shop", Shop(currency="CHF"))
    live = live_server(server)
    response = httpx.get(f"{live.url}/shop/get/5", timeout=10)
    assert response.json() == {"pid": 5, "currency": "CHF"}
