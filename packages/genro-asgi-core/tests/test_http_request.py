"""The Request object on its own: lazy parsing, cookies, body streaming, size limits, decoding."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from genro_asgi import BadRequest, PayloadTooLarge, Request, UnsupportedMediaType
from genro_asgi.request import ClientDisconnect

Receive = Callable[[], Awaitable[dict[str, Any]]]


def make_request(
    body: bytes | list[bytes] = b"",
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "POST",
    query: bytes = b"",
    max_body_size: int = 1024,
    disconnect_after: int | None = None,
) -> tuple[Request, list[dict[str, Any]]]:
    """A request whose receive() yields ``body`` in chunks; returns it and the messages sent."""
    chunks = body if isinstance(body, list) else [body]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if disconnect_after is not None:
        messages = [*messages[:disconnect_after], {"type": "http.disconnect"}]
        for message in messages[:-1]:
            message["more_body"] = True
    delivered: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not messages:
            raise AssertionError("receive() called after the last message")
        message = messages.pop(0)
        delivered.append(message)
        return message

    scope = {
        "type": "http", "method": method, "path": "/x", "root_path": "", "scheme": "http",
        "query_string": query, "headers": headers or [], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    return Request(scope, receive, max_body_size), delivered


def test_properties_are_read_from_the_scope() -> None:
    request, delivered = make_request(
        headers=[(b"content-type", b"Application/JSON; charset=UTF-8")],
        method="PUT", query=b"a=1&a=2",
    )
    assert request.method == "PUT"
    assert request.path == "/x"
    assert request.content_type == "application/json"
    assert request.query_params.getlist("a") == ["1", "2"]
    assert request.headers is request.headers  # parsed once
    assert request.envelope is None
    assert request.tytx_transport is None
    assert delivered == []  # nothing above touched the body


def test_cookies_are_parsed_and_a_malformed_header_is_ignored() -> None:
    request, _ = make_request(headers=[(b"cookie", b'session=abc123; theme="dark"')])
    assert request.cookies == {"session": "abc123", "theme": "dark"}
    broken, _ = make_request(headers=[(b"cookie", b"\x00\x01;;;=\"")])
    assert broken.cookies == {}
    none, _ = make_request()
    assert none.cookies == {}


def test_too_many_query_fields_is_a_bad_request() -> None:
    request, _ = make_request(query="&".join(f"k{i}=1" for i in range(1500)).encode())
    with pytest.raises(BadRequest) as info:
        request.query_params  # noqa: B018
    assert "query string" in info.value.detail


async def test_body_joins_chunks_and_is_cached() -> None:
    request, delivered = make_request([b"hel", b"", b"lo"])
    assert await request.body() == b"hello"
    assert await request.body() == b"hello"
    assert len(delivered) == 3  # the second call did not receive again
    assert [chunk async for chunk in request.stream()] == [b"hello"]


async def test_stream_yields_chunks_as_they_arrive() -> None:
    request, _ = make_request([b"a", b"bb", b"ccc"])
    assert [chunk async for chunk in request.stream()] == [b"a", b"bb", b"ccc"]


async def test_declared_content_length_over_the_limit_is_refused_before_reading() -> None:
    request, delivered = make_request(b"x" * 10, headers=[(b"content-length", b"5000")],
                                      max_body_size=100)
    with pytest.raises(PayloadTooLarge) as info:
        await request.body()
    assert info.value.status_code == 413
    assert "100 bytes" in info.value.detail
    assert delivered == []


async def test_streamed_body_over_the_limit_is_refused_without_reading_the_rest() -> None:
    request, delivered = make_request([b"x" * 40] * 10, max_body_size=100)
    with pytest.raises(PayloadTooLarge):
        await request.body()
    assert len(delivered) == 3  # 120 bytes seen, then it stopped


async def test_body_exactly_at_the_limit_is_accepted() -> None:
    request, _ = make_request([b"x" * 50, b"y" * 50], max_body_size=100,
                              headers=[(b"content-length", b"100")])
    assert len(await request.body()) == 100


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1.5", b"", b" 10"])
async def test_bogus_content_length_is_a_bad_request(value: bytes) -> None:
    request, _ = make_request(b"x", headers=[(b"content-length", value)])
    with pytest.raises(BadRequest) as info:
        await request.body()
    assert "Content-Length" in info.value.detail


async def test_client_disconnect_while_reading_the_body() -> None:
    request, _ = make_request([b"part", b"never"], disconnect_after=1)
    with pytest.raises(ClientDisconnect):
        await request.body()


async def test_json_body() -> None:
    request, _ = make_request('{"name": "caf\u00e9", "n": [1, 2]}'.encode())
    assert await request.json() == {"name": "caf\u00e9", "n": [1, 2]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": 1', "malformed JSON body"),
        (b'{"a": "\xff\xfe"}', "not valid UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b"", "malformed JSON body"),
    ],
)
async def test_bad_json_is_a_bad_request(body: bytes, message: str) -> None:
    request, _ = make_request(body, max_body_size=1024 * 1024)
    with pytest.raises(BadRequest) as info:
        await request.json()
    assert message in info.value.detail


async def test_urlencoded_form() -> None:
    request, _ = make_request(b"a=1&b=caf%C3%A9&a=2&empty=",
                              headers=[(b"content-type", b"application/x-www-form-urlencoded")])
    form = await request.form()
    assert form["a"] == "2"
    assert form.getlist("a") == ["1", "2"]
    assert form["b"] == "caf\u00e9"
    assert form["empty"] == ""


async def test_form_refuses_multipart_and_bad_utf8() -> None:
    multipart, _ = make_request(b"--x\r\n", headers=[
        (b"content-type", b"multipart/form-data; boundary=x")])
    with pytest.raises(UnsupportedMediaType, match=r"request\.multipart\(\)"):
        await multipart.form()
    bad, _ = make_request(b"a=\xff", headers=[
        (b"content-type", b"application/x-www-form-urlencoded")])
    with pytest.raises(BadRequest, match="UTF-8"):
        await bad.form()


async def test_body_params_by_content_type() -> None:
    as_json, _ = make_request(json.dumps({"x": 1}).encode(),
                              headers=[(b"content-type", b"application/json")])
    assert await as_json.body_params() == {"x": 1}
    problem_json, _ = make_request(b'{"x": 2}',
                                   headers=[(b"content-type", b"application/problem+json")])
    assert await problem_json.body_params() == {"x": 2}
    untyped, _ = make_request(b'{"x": 3}')  # no content type: read as JSON
    assert await untyped.body_params() == {"x": 3}
    form, _ = make_request(b"x=4", headers=[
        (b"content-type", b"application/x-www-form-urlencoded")])
    assert await form.body_params() == {"x": "4"}
    typed, _ = make_request(b'{"x":"4.50::N"}::JS', headers=[(b"x-tytx-transport", b"json")])
    assert await typed.body_params() == {"x": Decimal("4.50")}
    empty, _ = make_request(b"", headers=[(b"content-type", b"application/json")])
    assert await empty.body_params() == {}


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
async def test_body_params_must_be_an_object(body: bytes) -> None:
    request, _ = make_request(body, headers=[(b"content-type", b"application/json")])
    with pytest.raises(BadRequest, match="object of named parameters"):
        await request.body_params()


@pytest.mark.parametrize("content_type", [b"text/plain", b"application/xml",
                                          b"multipart/related; boundary=z"])
async def test_body_params_refuse_other_content_types(content_type: bytes) -> None:
    request, _ = make_request(b"x=1", headers=[(b"content-type", content_type)])
    with pytest.raises(UnsupportedMediaType) as info:
        await request.body_params()
    assert info.value.status_code == 415


def test_tytx_transport_negotiation() -> None:
    by_header, _ = make_request(headers=[(b"x-tytx-transport", b" JSON ")])
    assert by_header.tytx_transport == "json"
    by_type, _ = make_request(headers=[(b"content-type", b"application/vnd.tytx+json")])
    assert by_type.tytx_transport == "json"
    plain, _ = make_request(headers=[(b"content-type", b"application/json")])
    assert plain.tytx_transport is None
    unknown, _ = make_request(headers=[(b"x-tytx-transport", b"yaml")])
    with pytest.raises(BadRequest, match="X-TYTX-Transport"):
        unknown.tytx_transport  # noqa: B018


async def test_tytx_body_decodes_in_the_declared_transport() -> None:
    request, _ = make_request(b'{"d":"2025-01-15::D"}::JS',
                              headers=[(b"content-type", b"application/vnd.tytx+json")])
    value = await request.tytx()
    assert str(value["d"]) == "2025-01-15"
