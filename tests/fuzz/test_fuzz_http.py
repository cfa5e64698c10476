"""Fuzzing the HTTP decoders and binders: query and path values, JSON/TYTX/form bodies.

Properties, for any input: never a 500 (a client's bytes are never the server's fault), a 4xx
carries a message, the answer comes (the liveness guard in fuzzing.arm), and the server keeps
serving: the same client's next ordinary request still works. In process through the
project's test client, then a smaller run over a real uvicorn.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fuzzing import BODY_HEADERS, Target, arm, bodies, paths, raw_query, routed_queries
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer, TestClient

METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
TRANSPORTS = st.sampled_from([{}, {"X-TYTX-Transport": "json"}, {"X-TYTX-Transport": "xml"},
                              {"X-TYTX-Transport": "bogus"}])


def _server(root: Path) -> AsgiServer:
    server = AsgiServer(root, config={}, environ={}, max_body_size=64 * 1024)
    server.mount("/f", Target())
    return server


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(_server(tmp_path_factory.mktemp("fuzz-http"))) as test_client:
        yield test_client


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400 and response.request.method != "HEAD":
        if response.headers.get("content-type", "").startswith("application/json"):
            assert response.json()["error"]["message"]
        else:  # refused by the HTTP protocol before the app (400/408/414/431): plain text
            assert response.text.strip()


def _send(http: httpx.Client, method: str, url: str, **options: Any) -> httpx.Response:
    """The request, or the example rejected when httpx itself refuses to send that URL."""
    try:
        return http.request(method, url, **options)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        reject()


@settings(max_examples=max(200, settings().max_examples))
@given(target=routed_queries, headers=TRANSPORTS)
def test_query_values(client: TestClient, target: tuple[str, str],
                      headers: dict[str, str]) -> None:
    arm()
    path, query = target
    _check(_send(client, "GET", f"{path}?{query}", headers=headers))


@given(path=paths, query=raw_query, headers=TRANSPORTS)
def test_paths_and_raw_queries(client: TestClient, path: str, query: str,
                               headers: dict[str, str]) -> None:
    arm()
    _check(_send(client, "GET", f"{path}?{query}" if query else path, headers=headers))


@given(method=METHODS, path=paths, query=raw_query, body=bodies)
def test_bodies(client: TestClient, method: str, path: str, query: str,
                body: tuple[str, bytes]) -> None:
    arm()
    kind, content = body
    url = f"{path}?{query}" if query else path
    _check(_send(client, method, url, content=content, headers=BODY_HEADERS[kind]))


@settings(max_examples=max(200, settings().max_examples))
@given(body=bodies)
def test_order_and_raw_bodies(client: TestClient, body: tuple[str, bytes]) -> None:
    arm()
    kind, content = body
    for path in ("/f/order", "/f/raw", "/f/loose", "/f/anything"):
        _check(client.post(path, content=content, headers=BODY_HEADERS[kind]))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(_server(tmp_path_factory.mktemp("fuzz-live"))) as live_server:
        yield live_server


@pytest.mark.e2e
@settings(max_examples=30)
@given(method=METHODS, path=paths, query=raw_query, body=bodies)
def test_over_uvicorn(live: LiveServer, method: str, path: str, query: str,
                      body: tuple[str, bytes]) -> None:
    arm()
    kind, content = body
    url = f"{path}?{query}" if query else path
    with httpx.Client(base_url=live.url, timeout=30) as http:
        _check(_send(http, method, url, content=content, headers=BODY_HEADERS[kind]))
        # the server still serves an ordinary request after whatever came before
        assert http.get("/f/scalars?i=1").json()["i"] == 1


def test_the_target_answers_ordinary_requests(client: TestClient) -> None:
    # the fuzzed routes really bind and answer: the properties above are not vacuous
    assert client.get("/f/scalars?i=3&d=1.5&flag=true&day=2025-01-02").json() == {
        "i": 3, "f": 0.0, "d": "1.5", "flag": True, "s": "", "day": "2025-01-02", "at": None}
    assert client.get("/f/lists?ids=1&ids=2").json()["ids"] == [1, 2]
    assert client.get("/f/item/7").json() == {"pid": 7, "day": None}
    assert client.post("/f/order", json={"qty": 2, "price": "1.5"}).json()["total"] == "3.0"
    response = client.post("/f/raw", content=b'{"a":"1.5::N"}::JS',
                           headers={"X-TYTX-Transport": "json"})
    assert response.status_code == 200


def test_liveness_guard_is_armed() -> None:
    import faulthandler

    # cancel/re-arm must be callable; the guard kills the run only on a real hang
    arm()
    faulthandler.cancel_dump_traceback_later()
    arm()


