"""Responses: JSON, TYTX, HTML, text, bytes, redirect and streaming, plus handler-result rendering.

A response is an ASGI callable. Headers are kept as raw byte pairs, so sending costs two
messages and no re-encoding; HEAD requests get the same headers and no body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from . import tytx
from .types import RawHeaders, Receive, Scope, Send

_CONTENT_LENGTH = b"content-length"
_CONTENT_TYPE = b"content-type"


def content_type_header(media_type: str | None, charset: str) -> bytes | None:
    """The Content-Type value: text types get the charset."""
    if media_type is None:
        return None
    if media_type.startswith("text/") and "charset=" not in media_type:
        return f"{media_type}; charset={charset}".encode("latin-1")
    return media_type.encode("latin-1")


class Response:
    """A complete response with a bytes body."""

    media_type: str | None = None
    charset = "utf-8"
    # Computed once per class (and per instance only when media_type is passed in).
    content_type: bytes | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.content_type = content_type_header(cls.media_type, cls.charset)

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
            self.content_type = content_type_header(media_type, self.charset)
        self.body = self.render(content)
        self.raw_headers: RawHeaders = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ] if headers else []

    def render(self, content: Any) -> bytes:
        """The body for ``content``: str encoded, bytes kept, None empty, else ``str()``."""
        if type(content) is str:
            return content.encode(self.charset)
        if content is None:
            return b""
        if isinstance(content, bytes | bytearray | memoryview):
            return bytes(content)
        return str(content).encode(self.charset)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.raw_headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    def set_header(self, name: str, value: str) -> None:
        """Set a header, replacing any earlier value."""
        key = name.lower().encode("latin-1")
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != key]
        self.raw_headers.append((key, value.encode("latin-1")))

    def append_header(self, name: str, value: str) -> None:
        """Add a header, keeping earlier values of the same name (``Set-Cookie``, ``Link``)."""
        self.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    def set_cookie(
        self,
        key: str,
        value: str = "",
        *,
        max_age: int | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = True,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` header: HttpOnly and ``SameSite=Lax`` unless told otherwise."""
        from http.cookies import SimpleCookie

        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = max_age
        morsel["path"] = path
        if domain:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite:
            morsel["samesite"] = samesite
        self.append_header("set-cookie", morsel.OutputString())

    def delete_cookie(self, key: str, path: str = "/", domain: str | None = None) -> None:
        """Expire cookie ``key`` (same ``path`` and ``domain`` as when it was set)."""
        self.set_cookie(key, max_age=0, path=path, domain=domain)

    def start_headers(self) -> RawHeaders:
        """Content-Length and Content-Type first (unless set explicitly), then the rest."""
        headers = self.raw_headers
        content_type = self.content_type
        names = {k for k, _ in headers} if headers else ()
        extra: RawHeaders = []
        if _CONTENT_LENGTH not in names and self.status_code not in (204, 304):
            extra.append((_CONTENT_LENGTH, b"%d" % len(self.body)))
        if content_type is not None and _CONTENT_TYPE not in names:
            extra.append((_CONTENT_TYPE, content_type))
        return extra + headers if headers else extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.start_headers()})
        body = b"" if scope.get("method") == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})


class PlainTextResponse(Response):
    """A ``text/plain; charset=utf-8`` response."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """A ``text/html; charset=utf-8`` response."""

    media_type = "text/html"


class JSONResponse(Response):
    """JSON without TYTX types: Decimal as a string, dates in ISO 8601, models as objects."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_encode(content)


class TytxResponse(Response):
    """A typed payload: Decimal, date, datetime and time survive the round trip."""

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        transport: tytx.Transport = "json",
    ) -> None:
        self.transport = transport
        super().__init__(content, status_code, headers, tytx.MEDIA_TYPES[transport])

    def render(self, content: Any) -> bytes:
        return tytx.encode(_plain(content), self.transport)


class RedirectResponse(Response):
    """A redirect to ``url`` (307 by default: the method and body are kept), percent-encoded."""

    def __init__(
        self, url: str, status_code: int = 307, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(None, status_code, headers)
        self.set_header("location", quote(str(url), safe=":/%#?=@[]!$&'()*+,;"))


class StreamingResponse(Response):
    """A body produced chunk by chunk from a (sync or async) iterable."""

    def __init__(
        self,
        content: AsyncIterable[str | bytes] | Iterable[str | bytes],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(None, status_code, headers, media_type)
        self.body_iterator = content
        # where a sync iterator's steps run: the server's sync pool (set by the dispatcher);
        # None outside a server (a mounted ASGI app): the loop's default executor
        self.sync_steps: Callable[..., Awaitable[Any]] | None = None

    def start_headers(self) -> RawHeaders:
        content_type = self.content_type
        names = {k for k, _ in self.raw_headers}
        if content_type is not None and _CONTENT_TYPE not in names:
            return [(_CONTENT_TYPE, content_type), *self.raw_headers]
        return self.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream until the iterator ends or the client disconnects, whichever comes first.

        Servers silently drop what is sent to a closed connection, so without watching for
        ``http.disconnect`` an endless stream (events, logs) would run forever.
        """
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.start_headers()})
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        streaming = asyncio.ensure_future(self._stream(send))
        watching = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, watching):
                if not task.done():
                    task.cancel()
            await asyncio.gather(streaming, watching, return_exceptions=True)
        if not streaming.cancelled() and streaming.exception() is not None:
            raise streaming.exception()  # type: ignore[misc]

    async def _stream(self, send: Send) -> None:
        if isinstance(self.body_iterator, AsyncIterable):
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": self._bytes(chunk),
                            "more_body": True})
                # a send to a dropped connection returns at once: without this yield an
                # iterator that never awaits would run to its end (or for ever) before the
                # disconnect watcher could stop it
                await asyncio.sleep(0)
        else:  # a sync iterator may block: each step runs in a worker thread
            iterator = iter(self.body_iterator)
            step = self.sync_steps or asyncio.to_thread
            while (chunk := await step(_next_or_end, iterator)) is not _END:
                await send({"type": "http.response.body", "body": self._bytes(chunk),
                            "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _bytes(self, chunk: Any) -> bytes:
        return chunk if isinstance(chunk, bytes) else str(chunk).encode(self.charset)


_END = object()


def _next_or_end(iterator: Iterator[Any]) -> Any:
    return next(iterator, _END)


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def json_default(value: Any) -> Any:
    """How plain JSON shows the types it lacks."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Built once: json.dumps with options builds a new encoder on every call.
_JSON_ENCODER = json.JSONEncoder(default=json_default, ensure_ascii=False,
                                 separators=(",", ":"), allow_nan=False)


def json_encode(value: Any) -> bytes:
    """Compact UTF-8 JSON with json_default for the types JSON lacks."""
    return _JSON_ENCODER.encode(value).encode("utf-8")


def encode_plain(value: Any) -> tuple[bytes, bytes] | None:
    """Body and Content-Type for the results that need no Response object, else None.

    The dispatcher's fast path: exactly what render_result would send for a str, bytes,
    dict or list when no TYTX transport and no media type apply.
    """
    kind = type(value)
    if kind is str:
        return value.encode("utf-8"), _TEXT_PLAIN
    if kind is dict or kind is list:
        return json_encode(value), _APPLICATION_JSON
    if kind is bytes:
        return value, _OCTET_STREAM
    return None


def _plain(value: Any) -> Any:
    """Models and dataclasses as dicts (also inside lists and dicts), so TYTX keeps their types."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def render_result(
    value: Any, tytx_transport: tytx.Transport | None, media_type: str | None
) -> Response:
    """Turn what a handler returned into a Response.

    A Response passes through; with TYTX the value goes out typed; a declared ``media_type``
    wins; otherwise str is text, bytes are octet-stream and everything else is JSON.
    """
    if isinstance(value, Response):
        return value
    if tytx_transport is not None and not isinstance(value, bytes):
        return TytxResponse(value, transport=tytx_transport)
    if media_type is not None:
        if media_type == "application/json" or media_type.endswith("+json"):
            return JSONResponse(value, media_type=media_type)
        return Response(value, media_type=media_type)
    if isinstance(value, str):
        return PlainTextResponse(value)
    if isinstance(value, bytes):
        return Response(value, media_type="application/octet-stream")
    return JSONResponse(value)


_TEXT_PLAIN = PlainTextResponse.content_type or b""
_APPLICATION_JSON = JSONResponse.content_type or b""
_OCTET_STREAM = content_type_header("application/octet-stream", "utf-8") or b""
