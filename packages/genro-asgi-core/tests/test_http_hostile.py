"""Limits and hostile input: body size (413), bogus lengths, header floods (431), deep or broken
JSON, huge queries, odd paths, handler crashes (500 without leaks) and client disconnects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import pytest

from genro_asgi import AsgiApplication, Request, route
from genro_asgi.routing import MAX_PATH_SEGMENTS

LIMIT = 64 * 1024


class Target(AsgiApplication):
    @route()
    def echo(self, **values: Any) -> dict[str, Any]:
        return {"keys": sorted(values), "sizes": {k: len(str(v)) for k, v in values.items()}}

    @route()
    def word(self, word: str) -> str:
        return word

    @route()
    def count(self, n: int = 0) -> dict[str, int]:
        return {"n": n}

    @route()
    async def read_body(self, request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @route()
    def boom(self) -> None:
        raise RuntimeError("db password is hunter2")

    @route()
    async def aboom(self) -> None:
        raise KeyError("secret-key-material")


@pytest.fixture
def server(make_server: Any) -> Any:
    server = make_server(max_body_size=LIMIT, max_header_count=30)
    server.mount("/h", Target())
    return server


@pytest.fixture
def client(server: Any, make_client: Any) -> Any:
    return make_client(server)


class Driven:
    """What a direct ASGI call sent back, and how many messages the app received."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.received = 0

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent
                        if m["type"] == "http.response.body")


async def drive(app: Any, path: str, *, method: str = "POST", query: bytes = b"",
                raw_path: bytes | None = None, headers: Iterable[tuple[bytes, bytes]] = (),
                chunks: Iterable[bytes] = (b"",), disconnect: bool = False) -> Driven:
    """Call the ASGI app directly, feeding the body in ``chunks`` (then a disconnect)."""
    result = Driven()
    pending = list(chunks)
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        result.received += 1
        if pending:
            chunk = pending.pop(0)
            more = disconnect or bool(pending)
            return {"type": "http.request", "body": chunk, "more_body": more}
        if not disconnect:  # a connected client: nothing more until the response is done
            await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        result.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": raw_path or path.encode(), "root_path": "",
        "query_string": query, "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return result


def error_of(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# -- body size -------------------------------------------------------------------------------


def test_declared_body_over_the_limit_is_413(client: Any) -> None:
    response = client.post("/h/echo", content=b"x" * (LIMIT + 1),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert f"limit of {LIMIT} bytes" in error_of(response)["message"]


def test_body_at_the_limit_is_read(client: Any) -> None:
    value = "v" * (LIMIT - 10)
    body = f'{{"a":"{value}"}}'.encode()
    assert len(body) <= LIMIT
    response = client.post("/h/echo", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json()["sizes"] == {"a": LIMIT - 10}


async def test_streamed_body_over_the_limit_is_413_without_reading_it_all(server: Any) -> None:
    chunks = [b"x" * 1024] * 1000  # 1000 KiB, no Content-Length
    result = await drive(server, "/h/echo", chunks=chunks,
                         headers=[(b"content-type", b"application/json")])
    assert result.status == 413
    assert b"larger than the limit" in result.body
    assert result.received <= LIMIT // 1024 + 1
    assert len(server.envelopes) == 0


async def test_streamed_body_under_the_limit_is_joined(server: Any) -> None:
    result = await drive(server, "/h/read_body", chunks=[b"a" * 1000] * 20,
                         headers=[(b"content-type", b"application/octet-stream")])
    assert result.status == 200
    assert result.body == b'{"size":20000}'


async def test_a_handler_reading_the_body_itself_is_limited_too(server: Any) -> None:
    result = await drive(server, "/h/read_body", chunks=[b"b" * 4096] * 100)
    assert result.status == 413


@pytest.mark.parametrize("value", [b"abc", b"-5", b"1e3", b"0x10", b"", b"12 "])
async def test_bogus_content_length_is_400(server: Any, value: bytes) -> None:
    result = await drive(server, "/h/echo", chunks=[b"{}"],
                         headers=[(b"content-length", value),
                                  (b"content-type", b"application/json")])
    assert result.status == 400
    assert b"Content-Length" in result.body


# -- headers ---------------------------------------------------------------------------------


def test_too_many_headers_is_431(client: Any) -> None:
    headers = [(f"X-Flood-{i}", "1") for i in range(40)]
    response = client.get("/h/count", headers=headers)
    assert response.status_code == 431
    assert "more than 30 request headers" in error_of(response)["message"]


async def test_header_count_at_the_limit_is_accepted(server: Any) -> None:
    headers = [(f"x-h{i}".encode(), b"1") for i in range(29)]  # + host = 30
    result = await drive(server, "/h/count", method="GET", headers=headers)
    assert result.status == 200
    flooded = await drive(server, "/h/count", method="GET", headers=[*headers, (b"x-one", b"1")])
    assert flooded.status == 431


# -- malformed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    (b"[" * 60_000, "nested too deeply"),
    (b'{"a": ' * 10_000, "malformed JSON body"),
    (b'{"a": "\xc3\x28"}', "not valid UTF-8"),
    (b'{"a": "\xff"}', "not valid UTF-8"),
    (b'{"a": ' + b"9" * 5000 + b"}", "malformed JSON body"),
    (b'{"a": 1,}', "malformed JSON body"),
    (b"\x00\x00\x00", "malformed JSON body"),
])
def test_malformed_json_is_400_never_500(client: Any, body: bytes, expected: str) -> None:
    response = client.post("/h/echo", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert expected in error_of(response)["message"]


def test_deep_tytx_is_400(client: Any) -> None:
    response = client.post("/h/echo", content=b"{\"a\":" * 5_000 + b"1" + b"}" * 5_000,
                           headers={"X-TYTX-Transport": "json"})
    assert response.status_code == 400


def test_malformed_form_is_400(client: Any) -> None:
    response = client.post("/h/echo", content=b"a=%FF%FE",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    # percent escapes that are not UTF-8 decode with replacement characters, never a 500
    assert response.status_code in (200, 400)
    too_many = client.post("/h/echo", content="&".join(f"f{i}=1" for i in range(1200)).encode(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert too_many.status_code == 400


# -- query strings ---------------------------------------------------------------------------


async def test_huge_query_value(server: Any) -> None:
    result = await drive(server, "/h/echo", method="GET", query=b"big=" + b"q" * 1_000_000)
    assert result.status == 200
    assert result.body == b'{"keys":["big"],"sizes":{"big":1000000}}'


async def test_too_many_query_fields_is_400(server: Any) -> None:
    query = "&".join(f"k{i}=v" for i in range(5000)).encode()
    result = await drive(server, "/h/echo", method="GET", query=query)
    assert result.status == 400
    assert b"query string" in result.body


def test_huge_integer_in_the_query_is_400(client: Any) -> None:
    response = client.get("/h/count?n=" + "7" * 5000)
    assert response.status_code == 400
    assert "'n'" in error_of(response)["message"]


async def test_query_string_with_invalid_utf8(server: Any) -> None:
    result = await drive(server, "/h/echo", method="GET", query=b"a=%FF%FE&b=\xff")
    assert result.status == 200
    assert result.body.startswith(b'{"keys":["a","b"]')


# -- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["citt\u00e0", "\u6771\u4eac", "\U0001f600", "a b", "%41"])
def test_non_ascii_path_segments(client: Any, word: str) -> None:
    from urllib.parse import quote

    response = client.get(f"/h/word/{quote(word)}")
    assert response.status_code == 200
    assert response.text == word


def test_unknown_non_ascii_path_is_404(client: Any) -> None:
    response = client.get("/h/\u00e9l\u00e8ve")
    assert response.status_code == 404
    assert "/h/\u00e9l\u00e8ve" in error_of(response)["message"]


async def test_undecodable_path_bytes_are_not_a_500(server: Any) -> None:
    # servers decode %FF with the replacement character, as uvicorn does
    result = await drive(server, "/h/word/\ufffd", raw_path=b"/h/word/%FF", method="GET")
    assert result.status == 200
    assert result.body == "\ufffd".encode()


def test_very_deep_paths_are_404(client: Any) -> None:
    response = client.get("/h/word/" + "/".join(["x"] * (MAX_PATH_SEGMENTS + 5)))
    assert response.status_code == 404
    assert client.get("/" + "a/" * 2000).status_code == 404


# -- crashes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "secret"), [("/h/boom", "hunter2"),
                                              ("/h/aboom", "secret-key-material")])
def test_handler_exception_is_500_with_an_error_id_and_no_leak(
        client: Any, caplog: pytest.LogCaptureFixture, path: str, secret: str) -> None:
    with caplog.at_level(logging.ERROR, logger="genro_asgi.errors"):
        response = client.get(path, headers={"X-Request-ID": "req-crash"})
    assert response.status_code == 500
    error = error_of(response)
    assert error["message"] == "Internal Server Error"
    assert len(error["error_id"]) == 8
    assert error["request_id"] == "req-crash"
    assert secret not in response.text
    assert "Traceback" not in response.text
    assert "traceback" not in error
    # the log line carries the id that the user sees, and the real cause
    logged = [r for r in caplog.records if error["error_id"] in r.getMessage()]
    assert logged
    assert secret in logged[0].getMessage()


def test_handler_exception_as_html(client: Any) -> None:
    response = client.get("/h/boom", headers={"Accept": "text/html,application/json;q=0.9"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "500 Internal Server Error" in response.text
    assert "hunter2" not in response.text


def test_server_keeps_serving_after_a_crash(client: Any, server: Any) -> None:
    assert client.get("/h/boom").status_code == 500
    assert client.get("/h/count?n=3").json() == {"n": 3}
    assert len(server.envelopes) == 0


# -- disconnects -----------------------------------------------------------------------------


async def test_client_disconnect_while_binding_the_body(server: Any) -> None:
    result = await drive(server, "/h/echo", chunks=[b'{"a": 1'], disconnect=True,
                         headers=[(b"content-type", b"application/json")])
    assert result.sent == []  # nobody is left to answer: no 500, no response at all
    assert len(server.envelopes) == 0


async def test_client_disconnect_while_the_handler_reads_the_body(server: Any) -> None:
    result = await drive(server, "/h/read_body", chunks=[b"part1", b"part2"], disconnect=True)
    assert result.sent == []
    assert len(server.envelopes) == 0


async def test_disconnect_does_not_disturb_the_next_request(server: Any) -> None:
    await drive(server, "/h/echo", chunks=[b"{"], disconnect=True)
    result = await drive(server, "/h/count", method="GET", query=b"n=4")
    assert result.status == 200
    assert result.body == b'{"n":4}'
    assert len(server.envelopes) == 0


# -- request ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["x" * 201, "line\x01break", ""])
def test_unusable_request_ids_are_not_echoed(client: Any, value: str) -> None:
    response = client.get("/h/count", headers={"X-Request-ID": value})
    assert response.status_code == 200
    assert "x-request-id" not in response.headers
