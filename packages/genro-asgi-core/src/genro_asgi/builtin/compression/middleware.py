"""The compression middleware: pure ASGI, in the HTTP chain only, rules compiled at startup.

Per request it reads Accept-Encoding once (the choice is cached per distinct header value).
When the client accepts no coding we offer, ``send`` only gains ``Vary`` on the start message.
Otherwise the start of a compressible response is held until the first body message says
whether the body is complete (compressed in one go, or sent as it is when small or when
compression does not shrink it) or streamed (compressed chunk by chunk, each one flushed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from ...types import ASGIApp, Message, RawHeaders, Receive, Scope, Send
from .encoding import Codec, StreamEncoder, choose_coding

# A body or chunk this large is compressed in a worker thread (zlib and brotli release the
# GIL), so a big response does not stall every other request on the event loop.
OFFLOAD_SIZE = 256 * 1024
_CACHE_SIZE = 256  # distinct Accept-Encoding / Content-Type values remembered per server
_CACHEABLE = 256  # longer (unusual, possibly hostile) values are not remembered
_NEVER_STATUS = frozenset({204, 206, 304})
_REFUSING = (b"content-encoding", b"content-range")  # already encoded, or a part
_VARY_VALUE = b"Accept-Encoding"


class ResponsePolicy:
    """Which responses may be compressed, from their status and headers alone."""

    def __init__(self, minimum_size: int, exclude_types: Iterable[str]) -> None:
        self.minimum_size = minimum_size
        self._digits = len(str(minimum_size))
        types = [t.encode("latin-1") for t in exclude_types]
        self.excluded = frozenset(t for t in types if not t.endswith(b"/"))
        self.excluded_prefixes = tuple(t for t in types if t.endswith(b"/"))
        # Content-Type value -> compressible: an app sends a handful of distinct values
        self._types: dict[bytes, bool] = {}

    def compressible(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """False for bodies that must stay as they are or are known to be too small."""
        if status < 200 or status in _NEVER_STATUS:
            return False
        for key, value in headers:
            name = key.lower()
            if name == b"content-type":
                allowed = self._types.get(value)
                if allowed is None:
                    allowed = self._type_allowed(value)
                if not allowed:
                    return False
            elif name == b"content-length":
                # int() of bytes is slow: a shorter number is smaller whatever its digits
                digits = len(value)
                if digits <= self._digits and value.isdigit() and (
                        digits < self._digits or int(value) < self.minimum_size):
                    return False
            elif name in _REFUSING or (
                    name == b"cache-control" and b"no-transform" in value.lower()):
                return False
        return True

    def _type_allowed(self, value: bytes) -> bool:
        media = value.partition(b";")[0].strip().lower()
        allowed = media not in self.excluded and not media.startswith(self.excluded_prefixes)
        if len(value) <= _CACHEABLE:
            if len(self._types) >= _CACHE_SIZE:
                self._types.clear()
            self._types[value] = allowed
        return allowed


def with_vary(headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """The headers with Accept-Encoding in Vary: merged into an existing Vary, never twice."""
    merged: RawHeaders = []
    first_vary = -1
    covered = False
    for key, value in headers:
        if key.lower() == b"vary":
            tokens = [token.strip().lower() for token in value.split(b",")]
            covered = covered or b"*" in tokens or b"accept-encoding" in tokens
            if first_vary < 0:
                first_vary = len(merged)
        merged.append((key, value))
    if covered:
        return merged
    if first_vary < 0:
        merged.append((b"vary", _VARY_VALUE))
    else:
        key, value = merged[first_vary]
        merged[first_vary] = (key, value + b", " + _VARY_VALUE if value.strip() else _VARY_VALUE)
    return merged


def start_headers(message: Message) -> RawHeaders:
    """The start message's headers as a list: ASGI allows any iterable, and they are read
    more than once (another iterable is replaced by a list in the message itself)."""
    headers = message.get("headers")
    if type(headers) is not list:
        message["headers"] = headers = list(headers or ())
    return headers


def weak_etag(value: bytes) -> bytes:
    """A strong ETag made weak: the compressed body is another representation."""
    return b"W/" + value if value.startswith(b'"') else value


def encoded_headers(headers: Iterable[tuple[bytes, bytes]], coding: bytes,
                    length: int | None) -> RawHeaders:
    """Headers of the compressed response: new framing, the coding, a weak ETag, Vary."""
    rewritten: RawHeaders = []
    for key, value in headers:
        name = key.lower()
        if name == b"content-length":
            continue
        rewritten.append((key, weak_etag(value) if name == b"etag" else value))
    rewritten.append((b"content-encoding", coding))
    if length is not None:
        rewritten.append((b"content-length", b"%d" % length))
    return with_vary(rewritten)


def revalidated(scope: Scope, message: Message) -> Message:
    """A 304 for a compressed representation: its strong ETag becomes the weak one we sent.

    Only when the client's If-None-Match holds that weak ETag, i.e. what it has in its cache is
    a body this plugin compressed (the app compares validators weakly, so it answered 304).
    """
    headers = start_headers(message)
    etag = next((value for key, value in headers if key.lower() == b"etag"), None)
    if etag is None or not etag.startswith(b'"'):
        return message
    weak = b"W/" + etag
    for key, value in scope.get("headers") or ():
        if key == b"if-none-match" and weak in value:
            rewritten = [(k, weak if k.lower() == b"etag" else v) for k, v in headers]
            return {**message, "headers": with_vary(rewritten)}
    return message


def vary_only(policy: ResponsePolicy, scope: Scope, send: Send) -> Send:
    """``send`` for a request that gets no compression: only the start message may change."""

    # a plain function handing back ``send``'s awaitable: no coroutine per message
    def send_with_vary(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = start_headers(message)
            if policy.compressible(status, headers):
                message = {**message, "headers": with_vary(headers)}
            elif status == 304:
                message = revalidated(scope, message)
        return send(message)

    return send_with_vary


async def _encode(encode: Callable[[bytes], bytes], data: bytes) -> bytes:
    if len(data) >= OFFLOAD_SIZE:
        return await asyncio.to_thread(encode, data)
    return encode(data)


class CompressingSend:
    """``send`` for a request that accepts ``codec``: a small state machine per response.

    A plain callable handing back an awaitable: once the start message has decided that the
    body goes out as it is (too small, excluded type, an error status), every message goes
    straight to the original ``send`` without a coroutine of its own.
    """

    __slots__ = ("_codec", "_policy", "_scope", "_send", "_sent", "_start", "_state",
                 "_stream")

    _INSPECT, _HOLD, _STREAM, _PASS = range(4)

    def __init__(self, codec: Codec, policy: ResponsePolicy, scope: Scope, send: Send) -> None:
        self._codec = codec
        self._policy = policy
        self._scope = scope
        self._send = send
        self._state = self._INSPECT
        self._start: Message | None = None
        self._stream: StreamEncoder | None = None
        self._sent = 0  # compressed bytes sent so far

    def __call__(self, message: Message) -> Awaitable[None]:
        state = self._state
        if state == self._PASS:
            return self._send(message)
        if state == self._INSPECT and message["type"] == "http.response.start":
            status = message["status"]
            if self._policy.compressible(status, start_headers(message)):
                self._start = message  # held until the first body message
                self._state = self._HOLD
                return _held()
            self._state = self._PASS
            return self._send(revalidated(self._scope, message) if status == 304 else message)
        return self._body(message)

    async def _body(self, message: Message) -> None:
        kind = message["type"]
        state = self._state
        if kind == "http.response.body" and state == self._HOLD:
            await self._first_body(message)
        elif kind == "http.response.body" and state == self._STREAM:
            await self._next_chunk(message)
        else:
            await self._release()
            await self._send(message)

    async def _release(self) -> None:
        """An unexpected message while the start is held: send the start uncompressed."""
        start, self._start = self._start, None
        self._state = self._PASS
        if start is not None:
            await self._send({**start, "headers": with_vary(start_headers(start))})

    def _record(self, size: int) -> None:
        """Count compressed bytes as what the response sends, unless the envelope tracks the
        outermost send itself (the bytes counted further in are the uncompressed ones)."""
        self._sent += size
        envelope = self._scope.get("genro.envelope")
        if envelope is not None and not envelope.tracked:
            envelope.response_size = self._sent

    async def _first_body(self, message: Message) -> None:
        start = self._start
        assert start is not None
        self._start = None
        headers = start_headers(start)
        body: bytes = message.get("body", b"")
        codec = self._codec
        if message.get("more_body", False):
            self._state = self._STREAM
            stream = self._stream = codec.open_stream()
            await self._send({**start, "headers": encoded_headers(headers, codec.header_value,
                                                                  None)})
            chunk = await _encode(stream.chunk, body)
            self._record(len(chunk))
            await self._send({**message, "body": chunk})
            return
        self._state = self._PASS
        if len(body) < self._policy.minimum_size:
            await self._send(start)
            await self._send(message)
            return
        compressed = await _encode(codec.compress, body)
        if len(compressed) >= len(body):  # incompressible: the original is the better answer
            await self._send({**start, "headers": with_vary(headers)})
            await self._send(message)
            return
        self._record(len(compressed))
        await self._send({**start, "headers": encoded_headers(headers, codec.header_value,
                                                              len(compressed))})
        await self._send({**message, "body": compressed})

    async def _next_chunk(self, message: Message) -> None:
        stream = self._stream
        assert stream is not None
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):
            if body:
                chunk = await _encode(stream.chunk, body)
                self._record(len(chunk))
                message = {**message, "body": chunk}
            await self._send(message)
            return
        self._state = self._PASS
        self._stream = None
        chunk = await _encode(stream.finish, body)
        self._record(len(chunk))
        await self._send({**message, "body": chunk})


def _never() -> StreamEncoder:
    raise AssertionError("the _UNSEEN marker is never used as a codec")


_UNSEEN = Codec("unseen", bytes, _never)  # an Accept-Encoding value not negotiated yet


async def _held() -> None:
    """What sending the held start message awaits: nothing goes out yet."""


class CompressionMiddleware:
    """gzip / brotli for HTTP responses (see docs/compression.md)."""

    # It records the compressed size when it changes a body and otherwise lets the record
    # made further in stand: the envelope need not wrap every send (see AsgiServer.build).
    reports_responses = True

    def __init__(self, app: ASGIApp, codecs: Iterable[Codec], policy: ResponsePolicy) -> None:
        self.app = app
        self.codecs = {codec.name: codec for codec in codecs}
        self.offered = tuple(self.codecs)  # in order of preference
        self.policy = policy
        self._choices: dict[bytes, Codec | None] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function handing back the next app's awaitable: all it does per request
        # is choose a ``send``, so it needs no coroutine of its own.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        accept: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"accept-encoding":
                accept = value if accept is None else accept + b"," + value
        policy = self.policy
        if accept is None or scope["method"] == "HEAD":
            return self.app(scope, receive, vary_only(policy, scope, send))
        codec = self._choices.get(accept, _UNSEEN)
        if codec is _UNSEEN:
            codec = self.negotiate(accept)
        if codec is None:
            return self.app(scope, receive, vary_only(policy, scope, send))
        held: CompressingSend | None = None
        passing = False

        # Decides on the start message: a response that may not be compressed (too small by
        # its Content-Length, an excluded type, an error status...) then goes straight to
        # ``send``; only a compressible one gets the CompressingSend state machine.
        def send_compressing(message: Message) -> Awaitable[None]:
            nonlocal held, passing
            if passing:
                return send(message)
            if held is not None:
                return held(message)
            passing = True
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers")  # start_headers, inline
                if type(headers) is not list:
                    message["headers"] = headers = list(headers or ())
                if policy.compressible(status, headers):
                    passing = False
                    held = CompressingSend(codec, policy, scope, send)
                    return held(message)
                if status == 304:
                    return send(revalidated(scope, message))
            return send(message)  # a body with no start: not ours to fix

        return self.app(scope, receive, send_compressing)

    def negotiate(self, accept: bytes) -> Codec | None:
        """The codec for this Accept-Encoding value, remembered for the common values."""
        try:
            return self._choices[accept]
        except KeyError:
            pass
        name = choose_coding(accept, self.offered)
        codec = None if name is None else self.codecs[name]
        if len(accept) <= _CACHEABLE:
            if len(self._choices) >= _CACHE_SIZE:
                self._choices.clear()
            self._choices[accept] = codec
        return codec



__all__ = ["CompressingSend", "CompressionMiddleware", "ResponsePolicy"]
