"""What a body may cost the event loop: large bodies decode in a worker thread, and TYTX xml
never declares a DTD (entity expansion cost half a second per 800-byte request).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from genro_tytx import from_tytx

from genro_asgi import AsgiApplication, AsgiServer, Request, route
from genro_asgi import tytx as tytx_module
from genro_asgi.request import DECODE_IN_THREAD_ABOVE
from genro_asgi.testing import LiveServer

LOL = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
       + "".join(f'<!ENTITY lol{i} "' + (f"&lol{i - 1};" if i > 1 else "&lol;") * 10 + '">'
                 for i in range(1, 10))
       + "]><tytx_root><x>&lol9;</x></tytx_root>").encode()


class Sink(AsgiApplication):
    @route(methods=["POST"])
    def keys(self, **values: Any) -> int:
        return len(values)

    @route(methods=["POST"])
    async def raw_json(self, request: Request) -> int:
        return len(await request.json())


@pytest.fixture
def client(make_server: Any, make_client: Any) -> Any:
    server = make_server(max_body_size=4 * 1024 * 1024)
    server.mount("/s", Sink())
    return make_client(server)


@pytest.mark.parametrize("body", [
    LOL,
    b'<!doctype x [<!entity a "b">]><tytx_root>1</tytx_root>',
    b"<tytx_root><! ENTITY x></tytx_root>",
])
def test_tytx_xml_with_a_dtd_is_refused_before_parsing(client: Any, body: bytes) -> None:
    response = client.post("/s/keys", content=body, headers={"X-TYTX-Transport": "xml"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == \
        "TYTX xml bodies may not declare a DTD or entities"


def test_tytx_xml_without_a_dtd_still_decodes(client: Any) -> None:
    body = b"<tytx_root><a>1::L</a><b>x</b></tytx_root>"
    response = client.post("/s/keys", content=body, headers={"X-TYTX-Transport": "xml"})
    assert response.status_code == 200, response.text


def _recording(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    threads: list[int] = []
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return threads


def test_large_tytx_bodies_decode_off_the_loop(client: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    threads = _recording(monkeypatch, tytx_module, "decode")

    small = b'{"a":"1.5::N"}::JS'
    big = ('{"pad":"' + "x" * DECODE_IN_THREAD_ABOVE + '","a":"1.5::N"}::JS').encode()
    for body in (small, big):
        response = client.post("/s/keys", content=body, headers={"X-TYTX-Transport": "json"})
        assert response.status_code == 200, response.text
    assert len(threads) == 2
    # the small body decoded on the loop thread, the big one elsewhere
    assert threads[1] != threads[0]


def test_large_json_bodies_decode_off_the_loop(client: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import genro_asgi.request as request_module

    threads = _recording(monkeypatch, request_module.json, "loads")
    small = b'{"a": 1}'
    big = ('{"pad": "' + "x" * DECODE_IN_THREAD_ABOVE + '", "a": 1}').encode()
    for body in (small, big):
        response = client.post("/s/raw_json", content=body,
                               headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text
    assert len(threads) == 2 and threads[0] != threads[1]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = AsgiServer(Path(tmp_path_factory.mktemp("decoding")), config={}, environ={},
                        max_body_size=4 * 1024 * 1024)
    server.mount("/s", Sink())
    with LiveServer(server) as live_server:
        yield live_server


@pytest.mark.e2e
def test_over_uvicorn(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        response = http.post("/s/keys", content=LOL, headers={"X-TYTX-Transport": "xml"})
        assert response.status_code == 400
        big = ('{"a":[' + ",".join(['"1.5::N"'] * 60_000) + ']}::JS').encode()
        response = http.post("/s/keys", content=big, headers={"X-TYTX-Transport": "json"})
        assert response.status_code == 200
        assert from_tytx(response.text, "json") == 1
