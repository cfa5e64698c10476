"""Unpaired UTF-16 surrogates: valid JSON escapes that no UTF-8 encoder takes back.

A body or TYTX query value spelling ``"\\ud800"`` decoded fine and then failed when the
handler's answer echoed it: a 500. Every decoder now refuses it with a 400 that says why;
paired surrogates (how ``json.dumps`` writes an emoji) still work.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genro_asgi import AsgiApplication, AsgiServer, Request, route
from genro_asgi.testing import LiveServer
from genro_asgi.wellformed import MalformedText, check_decoded, may_hold_surrogates

TYTX = {"X-TYTX-Transport": "json"}
JSON = {"content-type": "application/json"}


class Echo(AsgiApplication):
    @route()
    def echo(self, **values: Any) -> dict[str, Any]:
        return values

    @route()
    def text(self, value: str = "") -> str:
        return value

    @route()
    async def raw(self, request: Request) -> Any:
        return await request.json()


def test_check_decoded() -> None:
    check_decoded('{"a": "\\ud83d\\ude00"}', {"a": "\U0001f600"})  # a pair: fine
    check_decoded("plain", "plain")
    assert not may_hold_surrogates(b'{"a": "\\u00e9"}')
    assert may_hold_surrogates(b'{"a": "\\uDC00"}')
    with pytest.raises(MalformedText, match="unpaired"):
        check_decoded('{"a": "\\ud800"}', {"a": "\ud800"})
    with pytest.raises(MalformedText):
        check_decoded('{"\\udc00": 1}', {"\udc00": 1})  # in a key
    with pytest.raises(MalformedText):
        check_decoded('[[["\\udbff"]]]', [[["\udbff"]]])


@pytest.fixture
def client(make_server: Any, make_client: Any) -> Any:
    server = make_server()
    server.mount("/e", Echo())
    return make_client(server)


@pytest.mark.parametrize(("path", "body", "headers"), [
    ("/e/echo", b'{"x": "\\ud800"}', JSON),
    ("/e/echo", b'{"x": ["ok", {"y": "a\\udfffb"}]}', JSON),
    ("/e/echo", b'{"\\ud800": 1}', JSON),
    ("/e/echo", b'{"x": "\\ud800"}', TYTX),
    ("/e/echo", b'{"x": "\\ud800", "d": "2025-01-02::D"}::JS', TYTX),
    ("/e/raw", b'{"x": "\\udc00"}', JSON),
])
def test_bodies_with_lone_surrogates_are_400(client: Any, path: str, body: bytes,
                                             headers: dict[str, str]) -> None:
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "unpaired UTF-16 surrogate" in response.json()["error"]["message"]


def test_tytx_query_value_with_a_lone_surrogate_is_400(client: Any) -> None:
    response = client.get("/e/echo", params={"v": '{"a": "\\ud800"}::JS'}, headers=TYTX)
    assert response.status_code == 400
    assert "unpaired" in response.json()["error"]["message"]


def test_paired_surrogates_and_plain_text_still_work(client: Any) -> None:
    body = json.dumps({"x": "smile \U0001f600", "y": "\u00e9"}).encode()  # ASCII escapes
    assert b"\\ud83d" in body
    assert client.post("/e/echo", content=body, headers=JSON).json() == {
        "x": "smile \U0001f600", "y": "\u00e9"}
    # invalid UTF-8 in a query is replaced, never a 500
    assert client.get("/e/text?value=%ED%A0%80").status_code == 200


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = AsgiServer(Path(tmp_path_factory.mktemp("surrogates")), config={}, environ={})
    server.mount("/e", Echo())
    with LiveServer(server) as live_server:
        yield live_server


@pytest.mark.e2e
def test_lone_surrogates_over_uvicorn(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        for headers in (JSON, TYTX):
            response = http.post("/e/echo", content=b'{"x": "\\ud800"}', headers=headers)
            assert response.status_code == 400
            assert "unpaired" in response.json()["error"]["message"]
        assert http.post("/e/echo", json={"x": "fine"}).json() == {"x": "fine"}
