"""The built-in ``compression`` plugin, in-process: negotiation, options, which responses are
compressed and how (complete and streamed bodies, ETag, Vary, 304/206, HEAD), error paths.

The middleware is driven directly with recorded ASGI messages where the chunking matters, and
through an ``AsgiServer`` with the project's TestClient elsewhere (httpx decodes gzip and br,
so the raw bytes are read with ``iter_raw``).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import sys
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import brotli
import pytest

from genro_asgi import (
    AsgiApplication,
    AsgiServer,
    Plugin,
    PluginError,
    Response,
    StaticRouter,
    StreamingResponse,
    WebSocket,
    hookimpl,
    route,
)
from genro_asgi.builtin.compression import CompressionPlugin, choose_coding
from genro_asgi.builtin.compression.encoding import gzip_codec, parse_accept_encoding
from genro_asgi.builtin.compression.middleware import (
    OFFLOAD_SIZE,
    CompressionMiddleware,
    ResponsePolicy,
)
from genro_asgi.testing import TestClient
from genro_asgi.types import Message, Receive, Scope, Send

TEXT = ("The quick brown fox jumps over the lazy dog. " * 60).encode()  # 2700 bytes
BOTH = ("br", "gzip")


def gunzip(data: bytes) -> bytes:
    return gzip.decompress(data)


# -- negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "offered", "expected"), [
    (b"gzip", BOTH, "gzip"),
    (b"br", BOTH, "br"),
    (b"gzip, deflate, br, zstd", BOTH, "br"),          # equal weights: br preferred
    (b"gzip, deflate, br", ("gzip",), "gzip"),
    (b"br;q=0.5, gzip", BOTH, "gzip"),                  # higher weight wins
    (b"br;q=0.8, gzip;q=0.9", BOTH, "gzip"),
    (b"gzip;q=0", BOTH, None),                          # q=0 refuses
    (b"gzip;q=0.000", BOTH, None),
    (b"br;q=0, gzip;q=0.001", BOTH, "gzip"),
    (b"identity", BOTH, None),
    (b"", BOTH, None),
    (b"deflate", BOTH, None),
    (b"*", BOTH, "br"),                                 # * covers every coding not listed
    (b"*", ("gzip",), "gzip"),
    (b"*;q=0", BOTH, None),
    (b"*, br;q=0", BOTH, "gzip"),
    (b"*;q=0, gzip", BOTH, "gzip"),
    (b"x-gzip", BOTH, "gzip"),                          # RFC 9110: same as gzip
    (b"GZip", BOTH, "gzip"),                            # names are case-insensitive
    (b"  gzip ;  Q=0.7 ", BOTH, "gzip"),
    (b"gzip;q=0.5, identity", BOTH, None),             # the client prefers identity
    (b"gzip, identity;q=0.5", BOTH, "gzip"),
    (b"gzip, identity", BOTH, "gzip"),                  # a tie: compressing saves bytes
    (b"*;q=0.5, gzip;q=0.1", ("gzip",), None),          # identity (via *) is preferred
    (b"gzip;q=0, gzip", BOTH, None),                   # a refusal is never undone
    (b"gzip;q=1.5", BOTH, None),                        # malformed weights: entry ignored
    (b"gzip;q=abc", BOTH, None),
    (b"gzip;q=", BOTH, None),
    (b"gzip;q=0.5.5", BOTH, None),
    (b"gzip;q=-1", BOTH, None),
    (b"gzip;q=0.1234", BOTH, None),
    (b"gzip;level=9", BOTH, "gzip"),                    # other parameters are ignored
    (b",,, ;q=1, gzip", BOTH, "gzip"),
])
def test_choose_coding(header: bytes, offered: tuple[str, ...], expected: str | None) -> None:
    assert choose_coding(header, offered) == expected


def test_parse_keeps_the_lowest_weight_of_a_repeated_coding() -> None:
    assert parse_accept_encoding(b"gzip;q=0.8, x-gzip;q=0.3, br") == {"gzip": 0.3, "br": 1.0}


def test_hostile_accept_encoding_never_raises() -> None:
    rng = random.Random(20261122)
    alphabet = b"gzipbr*;q=0.1,  \t\x00\xff\"'=identity"
    values = [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
              for _ in range(2000)]
    values += [rng.randbytes(rng.randint(0, 200)) for _ in range(500)]
    values += [b"gzip;q=" + b"9" * 10_000, b"," * 50_000, b";" * 50_000,
               b"gzip" + b";q=1" * 5_000, b"br;q=0.5,gzip" * 2_000]
    for value in values:
        assert choose_coding(value, BOTH) in (None, "br", "gzip")


# -- options -------------------------------------------------------------------------------


class Site(AsgiApplication):
    """Every kind of response the plugin must tell apart."""

    @route()
    def text(self, size: int = len(TEXT)) -> Response:
        return Response(TEXT[:size] if size <= len(TEXT) else TEXT * (size // len(TEXT)),
                        media_type="text/plain")

    @route()
    def plain(self) -> str:  # the dispatcher's fast path (no Response object)
        return TEXT.decode()

    @route()
    def data(self) -> dict[str, Any]:
        return {"items": [{"id": i, "name": f"item {i}"} for i in range(100)]}

    @route()
    def small(self) -> str:
        return "tiny"

    @route()
    def image(self) -> Response:
        return Response(TEXT, media_type="image/png")

    @route()
    def svg(self) -> Response:
        return Response(TEXT, media_type="image/svg+xml")

    @route()
    def blob(self) -> bytes:
        return TEXT

    @route()
    def encoded(self) -> Response:
        return Response(gzip.compress(TEXT), media_type="text/plain",
                        headers={"Content-Encoding": "gzip"})

    @route()
    def events(self) -> StreamingResponse:
        return StreamingResponse(iter([TEXT, TEXT]), media_type="text/event-stream")

    @route()
    def events_charset(self) -> Response:
        return Response(TEXT, media_type="Text/Event-Stream; charset=utf-8")

    @route()
    def stream(self) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(5):
                yield TEXT + str(i).encode()

        return StreamingResponse(chunks(), media_type="text/plain",
                                 headers={"ETag": '"s1"'})

    @route()
    def tagged(self) -> Response:
        return Response(TEXT, media_type="text/html", headers={"ETag": '"v1"'})

    @route()
    def weak(self) -> Response:
        return Response(TEXT, media_type="text/html", headers={"ETag": 'W/"v1"'})

    @route()
    def vary_origin(self) -> Response:
        return Response(TEXT, media_type="text/html", headers={"Vary": "Origin"})

    @route()
    def vary_star(self) -> Response:
        return Response(TEXT, media_type="text/html", headers={"Vary": "*"})

    @route()
    def vary_already(self) -> Response:
        return Response(TEXT, media_type="text/html", headers={"Vary": "origin, ACCEPT-ENCODING"})

    @route()
    def no_transform(self) -> Response:
        return Response(TEXT, media_type="text/html",
                        headers={"Cache-Control": "public, No-Transform"})

    @route()
    def noise(self) -> Response:  # compressible type, incompressible content
        return Response(random.Random(7).randbytes(4000), media_type="text/plain")

    @route()
    def no_content(self) -> Response:
        return Response(None, status_code=204)

    @route()
    def missing(self) -> Response:
        return Response(TEXT, status_code=404, media_type="text/plain")

    @route()
    def boom(self) -> str:
        raise RuntimeError("handler failed")


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text() * 100)
    await websocket.close()


def make_site(tmp_path: Path, options: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None) -> AsgiServer:
    plugins: dict[str, Any] = {"compression": options or {}, **(extra or {})}
    server = AsgiServer(tmp_path, config={"plugins": plugins}, environ={})
    server.mount("/", Site())
    server.mount("/echo", echo)
    return server


@pytest.fixture
def site(tmp_path: Path) -> AsgiServer:
    return make_site(tmp_path)


@pytest.fixture
def client(site: AsgiServer) -> Any:
    with TestClient(site) as c:
        yield c


def raw_get(client: TestClient, path: str, **headers: str) -> tuple[Any, bytes]:
    with client.stream("GET", path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def test_defaults(site: AsgiServer) -> None:
    plugin = site.plugins.get("compression")
    assert isinstance(plugin, CompressionPlugin)
    assert plugin.encodings == ("br", "gzip")
    assert plugin.config.minimum_size == 500
    assert plugin.config.gzip_level == 6
    assert plugin.config.brotli_quality == 4
    assert "video/" in plugin.config.exclude_types


@pytest.mark.parametrize(("options", "key"), [
    ({"gzip_level": 0}, "gzip_level"),
    ({"gzip_level": 10}, "gzip_level"),
    ({"brotli_quality": -1}, "brotli_quality"),
    ({"brotli_quality": 12}, "brotli_quality"),
    ({"minimum_size": -1}, "minimum_size"),
    ({"minimum_size": "lots"}, "minimum_size"),
    ({"brotli": "maybe"}, "brotli"),
    ({"exclude_types": ["image"]}, "exclude_types"),
    ({"exclude_types": ["text/html; charset=utf-8"]}, "exclude_types"),
    ({"exclude_types": "image/"}, "exclude_types"),
    ({"level": 5}, "level"),
])
def test_bad_options_name_the_key(tmp_path: Path, options: dict[str, Any], key: str) -> None:
    with pytest.raises(PluginError, match=rf"plugins\.compression\.{key}"):
        make_site(tmp_path, options)


def test_sizes_with_units_and_types_normalised(tmp_path: Path) -> None:
    plugin = make_site(tmp_path, {"minimum_size": "1KiB",
                                  "exclude_types": [" Text/CSV ", "model/"]}
                       ).plugins.get("compression")
    assert plugin.config.minimum_size == 1024
    assert plugin.config.exclude_types == ["text/csv", "model/"]


def test_off_unless_named_in_config(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/", Site())
    assert "compression" not in server.plugins.names()
    with TestClient(server) as c:
        response, raw = raw_get(c, "/text", **{"accept-encoding": "gzip, br"})
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert raw == TEXT


def test_brotli_off_offers_gzip_only(tmp_path: Path) -> None:
    server = make_site(tmp_path, {"brotli": False})
    assert server.plugins.get("compression").encodings == ("gzip",)
    with TestClient(server) as c:
        response, raw = raw_get(c, "/text", **{"accept-encoding": "br, gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert gunzip(raw) == TEXT


def test_brotli_asked_for_but_missing_logs_once_and_uses_gzip(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "brotli", None)       # import brotli -> ImportError
    monkeypatch.setitem(sys.modules, "brotlicffi", None)
    server = make_site(tmp_path, {"brotli": True})
    assert server.plugins.get("compression").encodings == ("gzip",)
    with caplog.at_level(logging.WARNING, "genro_asgi.compression"), TestClient(server) as c:
        response, raw = raw_get(c, "/text", **{"accept-encoding": "br"})
        assert "content-encoding" not in response.headers
        assert raw == TEXT
        response, raw = raw_get(c, "/text", **{"accept-encoding": "br, gzip"})
        assert response.headers["content-encoding"] == "gzip"
    warnings = [r for r in caplog.records if "only gzip" in r.getMessage()]
    assert len(warnings) == 1


def test_brotli_missing_by_default_is_silent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "brotli", None)
    monkeypatch.setitem(sys.modules, "brotlicffi", None)
    with caplog.at_level(logging.WARNING, "genro_asgi.compression"), \
            TestClient(make_site(tmp_path)) as c:
        assert c.get("/text").status_code == 200
    assert not [r for r in caplog.records if "only gzip" in r.getMessage()]


def test_middleware_joins_the_http_chain_only(site: AsgiServer) -> None:
    factory = site.plugins.get("compression").genro_asgi_middleware()
    assert factory.scope_types == ("http",)


def test_websocket_untouched(client: TestClient) -> None:
    with client.websocket_connect("/echo") as ws:
        ws.send_text("ab")
        assert ws.receive_text() == "ab" * 100


# -- which responses are compressed --------------------------------------------------------


@pytest.mark.parametrize("path", ["/text", "/plain", "/data", "/svg", "/missing"])
def test_gzip(client: TestClient, path: str) -> None:
    plain = client.get(path, headers={"accept-encoding": "identity"})
    response, raw = raw_get(client, path, **{"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) == len(raw) < len(plain.content)
    assert gunzip(raw) == plain.content
    assert response.status_code == plain.status_code
    assert response.headers["content-type"] == plain.headers["content-type"]


def test_brotli(client: TestClient) -> None:
    response, raw = raw_get(client, "/text", **{"accept-encoding": "gzip, br"})
    assert response.headers["content-encoding"] == "br"
    assert int(response.headers["content-length"]) == len(raw)
    assert brotli.decompress(raw) == TEXT
    assert client.get("/text", headers={"accept-encoding": "br"}).content == TEXT  # httpx decodes


@pytest.mark.parametrize(("accept", "coding"), [
    ("*", "br"), ("gzip;q=0, *", "br"), ("*, br;q=0", "gzip"), ("br;q=0.1, gzip;q=0.2", "gzip"),
])
def test_negotiated_through_the_server(client: TestClient, accept: str, coding: str) -> None:
    response, _ = raw_get(client, "/text", **{"accept-encoding": accept})
    assert response.headers["content-encoding"] == coding


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "*;q=0", "deflate", "", "zstd",
                                    "gzip;q=2", "\x7f\x7f"])
def test_refused_or_unknown_codings_get_the_body_as_is(client: TestClient, accept: str) -> None:
    response, raw = raw_get(client, "/text", **{"accept-encoding": accept})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert raw == TEXT
    assert response.headers["content-length"] == str(len(TEXT))
    assert response.headers["vary"] == "Accept-Encoding"  # the answer depended on the header


def test_no_accept_encoding_header(client: TestClient) -> None:
    client.headers.pop("accept-encoding", None)  # httpx sends one by default
    response, raw = raw_get(client, "/text")
    assert "content-encoding" not in response.headers
    assert raw == TEXT
    assert response.headers["vary"] == "Accept-Encoding"


@pytest.mark.parametrize("path", ["/small", "/image", "/blob", "/encoded", "/events",
                                  "/events_charset", "/no_transform", "/no_content"])
def test_never_compressed(client: TestClient, path: str) -> None:
    plain = client.get(path, headers={"accept-encoding": "identity"})
    response, raw = raw_get(client, path, **{"accept-encoding": "gzip, br"})
    assert response.status_code == plain.status_code
    assert response.headers.get("content-encoding") == plain.headers.get("content-encoding")
    assert raw == plain.content or (path == "/encoded" and gunzip(raw) == TEXT)
    assert "vary" not in response.headers  # nothing depends on Accept-Encoding


def test_event_stream_chunks_pass_through(client: TestClient) -> None:
    response, raw = raw_get(client, "/events", **{"accept-encoding": "gzip"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert raw == TEXT * 2


def test_minimum_size_boundary(tmp_path: Path) -> None:
    with TestClient(make_site(tmp_path, {"minimum_size": 1000})) as c:
        below, raw = raw_get(c, "/text?size=999", **{"accept-encoding": "gzip"})
        assert "content-encoding" not in below.headers and raw == TEXT[:999]
        assert "vary" not in below.headers
        at, raw = raw_get(c, "/text?size=1000", **{"accept-encoding": "gzip"})
        assert at.headers["content-encoding"] == "gzip" and gunzip(raw) == TEXT[:1000]


def test_minimum_size_zero_and_empty_body(tmp_path: Path) -> None:
    with TestClient(make_site(tmp_path, {"minimum_size": 0})) as c:
        response, raw = raw_get(c, "/text?size=0", **{"accept-encoding": "gzip"})
        assert response.status_code == 200 and raw == b""
        assert "content-encoding" not in response.headers  # gzip of nothing is larger


def test_incompressible_body_is_sent_as_is_with_vary(client: TestClient) -> None:
    plain = client.get("/noise", headers={"accept-encoding": "identity"}).content
    response, raw = raw_get(client, "/noise", **{"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert raw == plain and response.headers["content-length"] == str(len(plain))
    assert response.headers["vary"] == "Accept-Encoding"


def test_custom_exclude_types_replace_the_defaults(tmp_path: Path) -> None:
    with TestClient(make_site(tmp_path, {"exclude_types": ["text/"]})) as c:
        response, _ = raw_get(c, "/text", **{"accept-encoding": "gzip"})
        assert "content-encoding" not in response.headers
        response, raw = raw_get(c, "/image", **{"accept-encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip" and gunzip(raw) == TEXT
        response, _ = raw_get(c, "/events", **{"accept-encoding": "gzip"})  # always excluded
        assert "content-encoding" not in response.headers


def test_head_is_never_compressed(client: TestClient) -> None:
    response = client.head("/text", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(TEXT))
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.content == b""


def test_large_body_compressed_off_the_loop(client: TestClient,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    offloaded: list[int] = []
    to_thread = asyncio.to_thread

    async def spy(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        offloaded.extend(len(arg) for arg in args if isinstance(arg, bytes))
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", spy)
    size = OFFLOAD_SIZE * 4
    plain = client.get(f"/text?size={size}", headers={"accept-encoding": "identity"}).content
    assert offloaded == []
    response, raw = raw_get(client, f"/text?size={size}", **{"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert gunzip(raw) == plain
    assert offloaded == [len(plain)]
    raw_get(client, "/text", **{"accept-encoding": "gzip"})   # small: compressed inline
    assert offloaded == [len(plain)]


def test_error_responses_are_compressed_too(client: TestClient) -> None:
    response = client.get("/boom", headers={"accept-encoding": "gzip"})
    assert response.status_code == 500
    assert response.json()["error"]["status"] == 500


# -- headers: ETag, Vary -------------------------------------------------------------------


def test_strong_etag_becomes_weak_when_compressed(client: TestClient) -> None:
    compressed, _ = raw_get(client, "/tagged", **{"accept-encoding": "gzip"})
    assert compressed.headers["etag"] == 'W/"v1"'
    plain, _ = raw_get(client, "/tagged", **{"accept-encoding": "identity"})
    assert plain.headers["etag"] == '"v1"'
    weak, _ = raw_get(client, "/weak", **{"accept-encoding": "gzip"})
    assert weak.headers["etag"] == 'W/"v1"'


@pytest.mark.parametrize(("path", "vary"), [
    ("/vary_origin", "Origin, Accept-Encoding"),
    ("/vary_star", "*"),
    ("/vary_already", "origin, ACCEPT-ENCODING"),
])
@pytest.mark.parametrize("accept", ["gzip", "identity"])
def test_vary_is_merged_never_duplicated(client: TestClient, path: str, vary: str,
                                         accept: str) -> None:
    response, _ = raw_get(client, path, **{"accept-encoding": accept})
    assert response.headers.get_list("vary") == [vary]


# -- streaming -----------------------------------------------------------------------------


def test_streaming_response_through_the_server(client: TestClient) -> None:
    response, raw = raw_get(client, "/stream", **{"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["etag"] == 'W/"s1"'
    assert gunzip(raw) == b"".join(TEXT + str(i).encode() for i in range(5))


# -- static files: 304, 206 ----------------------------------------------------------------


@pytest.fixture
def static(tmp_path: Path) -> Any:
    public = tmp_path / "public"
    public.mkdir()
    (public / "page.html").write_bytes(TEXT)
    (public / "photo.png").write_bytes(TEXT)
    server = AsgiServer(tmp_path, config={"plugins": {"compression": {}}}, environ={})
    server.mount("/static", StaticRouter(public))
    with TestClient(server) as c:
        yield c


def test_static_file_compressed_and_revalidated(static: TestClient) -> None:
    first, raw = raw_get(static, "/static/page.html", **{"accept-encoding": "gzip"})
    assert first.headers["content-encoding"] == "gzip" and gunzip(raw) == TEXT
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    again = static.get("/static/page.html",
                       headers={"accept-encoding": "gzip", "if-none-match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag       # the validator the client holds
    assert again.headers["vary"] == "Accept-Encoding"
    assert again.content == b""


def test_304_for_an_uncompressed_copy_keeps_the_strong_etag(static: TestClient) -> None:
    plain = static.get("/static/page.html", headers={"accept-encoding": "identity"})
    strong = plain.headers["etag"]
    assert strong.startswith('"')
    for accept in ("gzip", "identity"):
        again = static.get("/static/page.html",
                           headers={"accept-encoding": accept, "if-none-match": strong})
        assert again.status_code == 304
        assert again.headers["etag"] == strong


def test_range_request_is_never_compressed(static: TestClient) -> None:
    response, raw = raw_get(static, "/static/page.html",
                            **{"accept-encoding": "gzip", "range": "bytes=10-99"})
    assert response.status_code == 206
    assert "content-encoding" not in response.headers
    assert raw == TEXT[10:100]
    assert response.headers["content-range"] == f"bytes 10-99/{len(TEXT)}"


def test_static_image_not_compressed(static: TestClient) -> None:
    response, raw = raw_get(static, "/static/photo.png", **{"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers and raw == TEXT


# -- the envelope sees the wire --------------------------------------------------------------


class Recorder(Plugin):
    def __init__(self, server: AsgiServer, config: Any) -> None:
        super().__init__(server, config)
        self.closed: list[tuple[int | None, int]] = []

    @hookimpl
    def genro_asgi_envelope_closed(self, envelope: Any) -> None:
        self.closed.append((envelope.status, envelope.response_size))


def test_envelope_records_the_wire_size(tmp_path: Path) -> None:
    server = make_site(tmp_path, extra={"recorder": {"module": f"{__name__}:Recorder"}})
    with TestClient(server) as c:
        _, raw = raw_get(c, "/text", **{"accept-encoding": "gzip"})
        raw_get(c, "/text", **{"accept-encoding": "identity"})
        _, streamed = raw_get(c, "/stream", **{"accept-encoding": "br"})
    assert server.plugins.get("recorder").closed == [
        (200, len(raw)), (200, len(TEXT)), (200, len(streamed))]


# -- the middleware alone: chunks, errors, odd apps ----------------------------------------


def scope_for(accept: bytes | None = b"gzip", method: str = "GET",
              extra: Sequence[tuple[bytes, bytes]] = ()) -> Scope:
    headers = [(b"host", b"test")] + ([(b"accept-encoding", accept)] if accept is not None
                                      else []) + list(extra)
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": "/", "raw_path": b"/",
            "query_string": b"", "root_path": "", "headers": headers}


async def receive_nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def middleware(app: Any, minimum_size: int = 100, exclude: Sequence[str] = ()) -> Any:
    return CompressionMiddleware(app, [gzip_codec(6)], ResponsePolicy(minimum_size, exclude))


def app_sending(*messages: Message) -> Callable[[Scope, Receive, Send], Any]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    return app


async def run(app: Any, scope: Scope | None = None) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope or scope_for(), receive_nothing, send)
    return sent


def start(*headers: tuple[bytes, bytes], status: int = 200) -> Message:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def test_each_streamed_chunk_decodes_on_arrival() -> None:
    chunks = [TEXT[:700], TEXT[700:1500], b"", TEXT[1500:]]
    sent = await run(middleware(app_sending(
        start((b"content-type", b"text/plain"), (b"content-length", b"%d" % len(TEXT))),
        *[body(c, more=True) for c in chunks], body(b"end"))))
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"),
                                  (b"content-encoding", b"gzip"),
                                  (b"vary", b"Accept-Encoding")]
    decoder = zlib.decompressobj(31)
    for chunk, message in zip(chunks, sent[1:-1], strict=True):
        assert message["more_body"] is True
        assert decoder.decompress(message["body"]) == chunk   # no waiting for later chunks
    assert decoder.decompress(sent[-1]["body"]) == b"end"
    assert sent[-1]["more_body"] is False
    assert decoder.eof


async def test_brotli_stream_decodes_chunk_by_chunk() -> None:
    from genro_asgi.builtin.compression.encoding import brotli_codec

    app = CompressionMiddleware(app_sending(start((b"content-type", b"text/plain")),
                                            body(b"a" * 600, more=True),
                                            body(b"b" * 600, more=True), body(b"")),
                                [brotli_codec(brotli, 4)], ResponsePolicy(100, ()))
    sent = await run(app, scope_for(b"br"))
    decoder = brotli.Decompressor()
    assert decoder.process(sent[1]["body"]) == b"a" * 600
    assert decoder.process(sent[2]["body"]) == b"b" * 600
    assert decoder.process(sent[3]["body"]) == b""
    assert decoder.is_finished()


async def test_large_chunk_streams_off_the_loop() -> None:
    data = TEXT * (OFFLOAD_SIZE // len(TEXT) + 1)
    sent = await run(middleware(app_sending(start(), body(data, more=True), body(data))))
    assert gunzip(sent[1]["body"] + sent[2]["body"]) == data * 2


async def test_streaming_with_a_small_content_length_passes_through() -> None:
    sent = await run(middleware(app_sending(start((b"content-length", b"50")),
                                            body(b"x" * 25, more=True), body(b"y" * 25))))
    assert sent[0]["headers"] == [(b"content-length", b"50")]
    assert [m["body"] for m in sent[1:]] == [b"x" * 25, b"y" * 25]


async def test_foreign_app_with_mixed_case_headers() -> None:
    sent = await run(middleware(app_sending(
        start((b"Content-Type", b"TEXT/HTML"), (b"Content-Length", b"%d" % len(TEXT)),
              (b"ETag", b'"x"'), (b"Vary", b"Cookie")), body(TEXT))))
    headers = dict(sent[0]["headers"])
    assert headers[b"ETag"] == b'W/"x"' and headers[b"Vary"] == b"Cookie, Accept-Encoding"
    assert b"Content-Length" not in headers
    assert headers[b"content-length"] == b"%d" % len(sent[1]["body"])
    sent = await run(middleware(app_sending(
        start((b"Content-Encoding", b"br")), body(TEXT))))
    assert sent[1]["body"] == TEXT


async def test_the_apps_header_list_is_not_mutated() -> None:
    headers = [(b"content-type", b"text/plain"), (b"etag", b'"e"')]
    snapshot = list(headers)
    message = {"type": "http.response.start", "status": 200, "headers": headers}
    await run(middleware(app_sending(message, body(TEXT))))
    await run(middleware(app_sending(message, body(TEXT))), scope_for(b"identity"))
    assert headers == snapshot and message["headers"] is headers


@pytest.mark.parametrize("status", [101, 103, 204, 206, 304])
async def test_statuses_never_compressed(status: int) -> None:
    sent = await run(middleware(app_sending(start(status=status), body(TEXT))))
    assert sent == [start(status=status), body(TEXT)]


async def test_trailers_pass_after_a_compressed_stream() -> None:
    trailers = {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")],
                "more_trailers": False}
    sent = await run(middleware(app_sending(
        {**start(), "trailers": True}, body(TEXT, more=True), body(b""), trailers)))
    assert sent[0]["trailers"] is True
    assert sent[-1] == trailers
    assert gunzip(sent[1]["body"] + sent[2]["body"]) == TEXT


async def test_unexpected_message_releases_the_held_start() -> None:
    odd = {"type": "http.response.debug", "info": {}}
    sent = await run(middleware(app_sending(start(), odd, body(TEXT))))
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["headers"] == [(b"vary", b"Accept-Encoding")]
    assert sent[1:] == [odd, body(TEXT)]


async def test_exception_before_the_body_sends_nothing() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        raise RuntimeError("after start")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with pytest.raises(RuntimeError, match="after start"):
        await middleware(app)(scope_for(), receive_nothing, send)
    assert sent == []  # the held start never went out: the error can still be rendered


async def test_exception_mid_stream_propagates() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        await send(body(TEXT, more=True))
        raise RuntimeError("mid-stream")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with pytest.raises(RuntimeError, match="mid-stream"):
        await middleware(app)(scope_for(), receive_nothing, send)
    assert zlib.decompressobj(31).decompress(sent[1]["body"]) == TEXT


async def test_a_failing_send_propagates_to_the_app() -> None:
    seen: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        try:
            for _ in range(10):
                await send(body(TEXT, more=True))
        except OSError as exc:
            seen.append(exc)
            raise

    calls = 0

    async def send(message: Message) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("client went away")

    with pytest.raises(OSError):
        await middleware(app)(scope_for(), receive_nothing, send)
    assert len(seen) == 1


async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        await send({"type": "websocket.accept"})

    sent = await run(middleware(app), {"type": "websocket", "headers": []})
    assert seen == ["websocket"] and sent == [{"type": "websocket.accept"}]


async def test_repeated_accept_encoding_headers_are_combined() -> None:
    scope = scope_for(b"identity", extra=[(b"accept-encoding", b"gzip")])
    sent = await run(middleware(app_sending(start(), body(TEXT))), scope)
    assert (b"content-encoding", b"gzip") in sent[0]["headers"]


async def test_choice_cache_is_bounded() -> None:
    app = middleware(app_sending(start(), body(b"ok")))
    for i in range(1000):
        await run(app, scope_for(b"gzip;q=0.%d" % (i % 999 + 1)))
    await run(app, scope_for(b"gzip, " + b"x" * 1000))
    assert 0 < len(app._choices) <= 256


async def test_concurrent_responses_do_not_share_state() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        tag = scope["path"].encode()
        await send(start())
        for _ in range(3):
            await send(body(tag * 300, more=True))
            await asyncio.sleep(0)
        await send(body(b""))

    wrapped = middleware(app)

    async def one(path: str) -> bytes:
        scope = {**scope_for(), "path": path}
        return gunzip(b"".join(m["body"] for m in (await run(wrapped, scope))[1:]))

    results = await asyncio.gather(*(one(f"/{i}") for i in range(20)))
    assert results == [f"/{i}".encode() * 900 for i in range(20)]


@pytest.mark.parametrize(("length", "compressible"), [
    (b"13", False), (b"499", False), (b"500", True), (b"5000", True), (b"0", False),
    (b"0499", True), (b"abc", True), (b"", True), (b"-1", True),
])
def test_policy_reads_content_length(length: bytes, compressible: bool) -> None:
    policy = ResponsePolicy(500, ())
    assert policy.compressible(200, [(b"content-length", length)]) is compressible
    assert ResponsePolicy(0, ()).compressible(200, [(b"content-length", length)])


def test_policy_remembers_a_bounded_number_of_content_types() -> None:
    policy = ResponsePolicy(0, ["image/png", "video/"])
    for i in range(600):
        assert policy.compressible(200, [(b"content-type", b"text/x-%d" % i)])
    assert not policy.compressible(200, [(b"content-type", b"IMAGE/PNG; q=1")])
    assert not policy.compressible(200, [(b"content-type", b"video/mp4")])
    assert policy.compressible(200, [(b"content-type", b"image/pngx")])
    assert policy.compressible(200, [(b"content-type", b"text/plain;" + b" " * 1000)])
    assert 0 < len(policy._types) <= 256


@pytest.mark.parametrize("accept", [b"gzip", b"identity"])
@pytest.mark.parametrize("kind", [tuple, iter])
async def test_headers_given_as_any_iterable(accept: bytes, kind: Any) -> None:
    pairs = [(b"content-type", b"text/plain"), (b"etag", b'"i"')]
    message = {"type": "http.response.start", "status": 200, "headers": kind(pairs)}
    sent = await run(middleware(app_sending(message, body(TEXT))), scope_for(accept))
    headers = dict(sent[0]["headers"])
    assert headers[b"vary"] == b"Accept-Encoding"
    if accept == b"gzip":
        assert headers[b"etag"] == b'W/"i"' and gunzip(sent[1]["body"]) == TEXT
    else:
        assert headers[b"etag"] == b'"i"' and sent[1]["body"] == TEXT
