"""Response classes as ASGI callables, handler-result rendering, cookies, and HEAD on each."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from genro_tytx import from_tytx
from pydantic import BaseModel

from genro_asgi import (
    AsgiApplication,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
    TytxResponse,
    route,
)
from genro_asgi.response import render_result


async def run(response: Response, method: str = "GET") -> list[dict[str, Any]]:
    """Call a response as an ASGI app and return the messages it sent."""
    sent: list[dict[str, Any]] = []
    finished = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        # like a connected client: the (empty) body, then nothing until the response is done
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    await response({"type": "http", "method": method, "path": "/"}, receive, send)
    return sent


def headers_of(messages: list[dict[str, Any]]) -> dict[str, str]:
    start = messages[0]
    assert start["type"] == "http.response.start"
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}


def body_of(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


class Colour(enum.Enum):
    RED = "red"


class Item(BaseModel):
    name: str
    price: Decimal


@dataclasses.dataclass
class Line:
    qty: int
    day: datetime.date


async def test_json_response_renders_compact_utf8_with_plain_json_types() -> None:
    content = {
        "name": "caf\u00e9", "price": Decimal("10.50"), "day": datetime.date(2025, 1, 15),
        "at": datetime.datetime(2025, 1, 15, 10, 30, 5), "t": datetime.time(9, 15),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "colour": Colour.RED,
        "tags": ("a",), "item": Item(name="pen", price=Decimal("1.20")),
        "line": Line(2, datetime.date(2024, 2, 29)),
    }
    messages = await run(JSONResponse(content, status_code=201))
    assert messages[0]["status"] == 201
    headers = headers_of(messages)
    assert headers["content-type"] == "application/json"
    body = body_of(messages)
    assert headers["content-length"] == str(len(body))
    assert body.decode("utf-8") == (
        '{"name":"caf\u00e9","price":"10.50","day":"2025-01-15","at":"2025-01-15T10:30:05",'
        '"t":"09:15:00","id":"12345678-1234-5678-1234-567812345678","colour":"red",'
        '"tags":["a"],"item":{"name":"pen","price":"1.20"},"line":{"qty":2,"day":"2024-02-29"}}'
    )


def test_json_response_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(ValueError):
        JSONResponse({"x": float("nan")})
    with pytest.raises(TypeError, match="not JSON serializable"):
        JSONResponse({"x": object()})


async def test_text_and_html_responses_declare_a_charset() -> None:
    text = await run(PlainTextResponse("h\u00e9llo"))
    assert headers_of(text)["content-type"] == "text/plain; charset=utf-8"
    assert body_of(text) == "h\u00e9llo".encode()
    page = await run(HTMLResponse("<p>x</p>", headers={"X-Frame-Options": "DENY"}))
    headers = headers_of(page)
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["x-frame-options"] == "DENY"
    assert body_of(page) == b"<p>x</p>"


async def test_bytes_response_has_no_content_type_unless_given() -> None:
    raw = await run(Response(b"\x00\x01\x02"))
    headers = headers_of(raw)
    assert "content-type" not in headers
    assert headers["content-length"] == "3"
    assert body_of(raw) == b"\x00\x01\x02"
    typed = await run(Response(b"PNG", media_type="image/png"))
    assert headers_of(typed)["content-type"] == "image/png"
    explicit = await run(Response("x", media_type="text/csv; charset=latin-1"))
    assert headers_of(explicit)["content-type"] == "text/csv; charset=latin-1"


async def test_no_content_has_no_content_length() -> None:
    messages = await run(Response(status_code=204))
    assert messages[0]["status"] == 204
    assert "content-length" not in headers_of(messages)
    assert body_of(messages) == b""


async def test_header_helpers() -> None:
    response = Response("x", headers={"X-A": "1"})
    response.set_header("x-a", "2")
    response.append_header("Vary", "Origin")
    response.append_header("Vary", "Accept")
    assert response.header("X-A") == "2"
    assert response.header("missing") is None
    raw = (await run(response))[0]["headers"]
    assert raw.count((b"x-a", b"2")) == 1
    assert [v for k, v in raw if k == b"vary"] == [b"Origin", b"Accept"]


async def test_redirect_response() -> None:
    messages = await run(RedirectResponse("/new place?q=a b"))
    assert messages[0]["status"] == 307
    headers = headers_of(messages)
    assert headers["location"] == "/new%20place?q=a%20b"
    assert headers["content-length"] == "0"
    assert body_of(messages) == b""
    moved = await run(RedirectResponse("https://example.com/x", status_code=301))
    assert moved[0]["status"] == 301
    assert headers_of(moved)["location"] == "https://example.com/x"


async def test_streaming_response_from_a_sync_iterator_sends_each_chunk() -> None:
    response = StreamingResponse(iter(["one,", b"two,", "three"]), media_type="text/csv")
    messages = await run(response)
    headers = headers_of(messages)
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert "content-length" not in headers
    bodies = [m for m in messages if m["type"] == "http.response.body"]
    assert [m["body"] for m in bodies] == [b"one,", b"two,", b"three", b""]
    assert [m.get("more_body", False) for m in bodies] == [True, True, True, False]


async def test_streaming_response_from_an_async_generator() -> None:
    async def numbers() -> AsyncIterator[str]:
        for i in range(4):
            yield f"{i}\n"

    messages = await run(StreamingResponse(numbers(), status_code=202))
    assert messages[0]["status"] == 202
    assert "content-type" not in headers_of(messages)
    bodies = [m["body"] for m in messages if m["type"] == "http.response.body"]
    assert bodies == [b"0\n", b"1\n", b"2\n", b"3\n", b""]


async def test_streaming_head_does_not_consume_the_iterator() -> None:
    consumed: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(3):
            consumed.append(i)
            yield b"x"

    messages = await run(StreamingResponse(chunks(), media_type="text/plain"), method="HEAD")
    assert headers_of(messages)["content-type"] == "text/plain; charset=utf-8"
    assert body_of(messages) == b""
    assert consumed == []


async def test_tytx_response_round_trips() -> None:
    value = {"price": Decimal("100.50"), "day": datetime.date(2025, 1, 15),
             "at": datetime.datetime(2025, 1, 15, 10, 30, tzinfo=datetime.UTC), "n": 3}
    messages = await run(TytxResponse(value))
    headers = headers_of(messages)
    assert headers["content-type"] == "application/vnd.tytx+json"
    assert from_tytx(body_of(messages).decode(), "json") == value


async def test_tytx_response_keeps_typed_fields_of_models_and_dataclasses() -> None:
    single = await run(TytxResponse(Item(name="a", price=Decimal("2.5"))))
    assert from_tytx(body_of(single).decode(), "json") == {"name": "a", "price": Decimal("2.5")}
    nested = await run(TytxResponse({"rows": [Item(name="a", price=Decimal("2.5")),
                                              Line(1, datetime.date(2025, 3, 1))]}))
    assert from_tytx(body_of(nested).decode(), "json") == {"rows": [
        {"name": "a", "price": Decimal("2.5")}, {"qty": 1, "day": datetime.date(2025, 3, 1)}]}


async def test_set_and_delete_cookie() -> None:
    response = PlainTextResponse("ok")
    response.set_cookie("session", "abc", max_age=3600, secure=True, domain="example.com")
    response.set_cookie("plain", "1", httponly=False, samesite=None, path="/app")
    response.delete_cookie("old")
    raw = (await run(response))[0]["headers"]
    cookies = [v.decode() for k, v in raw if k == b"set-cookie"]
    assert len(cookies) == 3
    session, plain, old = cookies
    assert session.startswith("session=abc")
    for part in ("Max-Age=3600", "Path=/", "Domain=example.com", "Secure", "HttpOnly",
                 "SameSite=lax"):
        assert part in session
    assert plain.startswith("plain=1")
    assert "Path=/app" in plain
    assert "HttpOnly" not in plain
    assert "SameSite" not in plain
    assert old.startswith('old=""')
    assert "Max-Age=0" in old


@pytest.mark.parametrize(
    ("value", "transport", "media_type", "cls", "content_type"),
    [
        ("hi", None, None, PlainTextResponse, "text/plain; charset=utf-8"),
        (b"\x00", None, None, Response, "application/octet-stream"),
        ({"a": 1}, None, None, JSONResponse, "application/json"),
        ([1, 2], None, None, JSONResponse, "application/json"),
        (None, None, None, JSONResponse, "application/json"),
        ("<b>x</b>", None, "text/html", Response, "text/html; charset=utf-8"),
        ({"a": 1}, None, "application/ld+json", JSONResponse, "application/ld+json"),
        ({"a": 1}, "json", None, TytxResponse, "application/vnd.tytx+json"),
        ("text", "json", "text/html", TytxResponse, "application/vnd.tytx+json"),
        (b"raw", "json", None, Response, "application/octet-stream"),
    ],
)
def test_render_result(value: Any, transport: Any, media_type: str | None, cls: type,
                       content_type: str) -> None:
    response = render_result(value, transport, media_type)
    assert type(response) is cls
    assert dict(response.start_headers())[b"content-type"].decode() == content_type


def test_render_result_passes_responses_through() -> None:
    response = RedirectResponse("/x")
    assert render_result(response, "json", "text/html") is response


class Responses(AsgiApplication):
    @route()
    def json(self) -> JSONResponse:
        return JSONResponse({"a": [1, 2, 3]})

    @route()
    def text(self) -> PlainTextResponse:
        return PlainTextResponse("plain text")

    @route()
    def html(self) -> HTMLResponse:
        return HTMLResponse("<h1>Title</h1>")

    @route()
    def raw(self) -> Response:
        return Response(b"\x89PNG", media_type="image/png")

    @route()
    def redirect(self) -> RedirectResponse:
        return RedirectResponse("/elsewhere")

    @route()
    def stream(self) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            for part in (b"a", b"b", b"c"):
                yield part

        return StreamingResponse(gen(), media_type="text/plain")

    @route()
    def tytx(self) -> TytxResponse:
        return TytxResponse({"p": Decimal("1.5")})

    @route()
    def cookie(self) -> PlainTextResponse:
        response = PlainTextResponse("cookie set")
        response.set_cookie("k", "v")
        return response


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [
        ("/r/json", 200, "application/json"),
        ("/r/text", 200, "text/plain; charset=utf-8"),
        ("/r/html", 200, "text/html; charset=utf-8"),
        ("/r/raw", 200, "image/png"),
        ("/r/redirect", 307, None),
        ("/r/stream", 200, "text/plain; charset=utf-8"),
        ("/r/tytx", 200, "application/vnd.tytx+json"),
        ("/r/cookie", 200, "text/plain; charset=utf-8"),
    ],
)
def test_head_sends_the_get_headers_without_a_body(make_server: Any, make_client: Any,
                                                   path: str, status: int,
                                                   content_type: str | None) -> None:
    server = make_server()
    server.mount("/r", Responses())
    client = make_client(server)
    get = client.get(path, follow_redirects=False)
    head = client.head(path, follow_redirects=False)
    assert get.status_code == head.status_code == status
    assert get.content != b"" or status == 307
    assert head.content == b""
    assert get.headers.get("content-type") == head.headers.get("content-type") == content_type
    if path != "/r/stream":  # the in-process client adds a length to a collected stream
        assert head.headers.get("content-length") == get.headers.get("content-length")
    assert head.headers.get_list("set-cookie") == get.headers.get_list("set-cookie")
    assert head.headers.get("location") == get.headers.get("location")
