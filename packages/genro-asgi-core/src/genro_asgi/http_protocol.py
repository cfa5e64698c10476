"""uvicorn's HTTP/1.1 protocols with read deadlines and a bounded request head.

Stock uvicorn waits forever for a client that connects and sends nothing, sends half a request
head, or sends its body slower than it promised, and its httptools parser buffers a header line
of any length before the app can refuse it. :class:`HttpToolsProtocol` and :class:`H11Protocol`
add, per connection:

- ``server.head_timeout``: from the connection opening (or the first byte of the next request on
  a kept-alive connection) to the end of the request head. A connection that sent nothing is
  closed; one that sent part of a head gets a 408.
- ``server.body_timeout`` and ``server.body_min_rate``: while the request body is incomplete,
  the client may stay silent at most ``body_timeout``, and must keep up ``body_min_rate``
  bytes/s on average after a grace of ``body_timeout``. Past either, a 408 (or a plain close
  once the response has started) ends the connection, and the app's ``receive()`` returns
  ``http.disconnect``. Time the server itself stops reading (flow control, a pending
  ``100 Continue``) is not counted against the client.
- the head's size while it arrives: once the bytes of a head after its first read exceed
  ``max_url_size + max_header_size + 4 * max_header_count`` the connection gets a 414 (still in
  the URL) or 431 and is closed without reading the rest. The exact limits on a complete head
  are checked by the envelope (header count and size) and here (URL size). When the served app
  is an ``AsgiServer`` the 431 is the application's answer (the errors plugin's, decorated by
  the middleware of its error chain) to the request line and the header lines that arrived,
  rendered within ``_REFUSAL_TIMEOUT`` while the rest is dropped unread; any other app, or a
  failure, gets the plain-text one.

The limits come from the ``AsgiServer`` that uvicorn serves (``ServerSettings``), found once per
uvicorn ``Config``; any other app gets the defaults. A request that arrives whole in one read,
the common case, costs one overridden ``data_received`` call and a few attribute reads.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl

from .config import ServerSettings, Settings
from .exceptions import HTTPException, RequestHeaderFieldsTooLarge
from .lazy import lazy_exports

if TYPE_CHECKING:
    pass

# the h11 protocol is in its own module: h11 is loaded only by a server with http: h11
__getattr__, __dir__ = lazy_exports(__name__, {"H11Protocol": "genro_asgi.http_h11"})

logger = logging.getLogger("genro_asgi.http")

_LIMITS_ATTRIBUTE = "_genro_asgi_http_limits"
RefusalAnswer = Callable[[dict[str, Any], Any, Any, Exception], Awaitable[None]]
_REFUSAL_TIMEOUT = 2.0  # seconds the application gets to render a refused head's answer
_MAX_REFUSAL_BODY = 64 * 1024  # bytes of that answer; past them the plain one goes out
_NOT_COPIED = frozenset({b"content-length", b"connection", b"transfer-encoding"})
_HEAD_OVERHEAD = 4  # ": " and CRLF around each header name and value


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The read limits of one server's connections."""

    head_timeout: float
    body_timeout: float
    body_min_rate: float | None  # bytes per second, None: no rate check
    max_url_size: int
    head_budget: int  # raw bytes a head may take while it arrives
    send_timeout: float  # seconds a full send buffer may wait for the client to read
    # the AsgiServer's answer to a head refused while it arrives (AsgiServer.answer_refused);
    # None for any other app: the plain answer
    answer_refused: RefusalAnswer | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, settings: ServerSettings,
                      answer_refused: RefusalAnswer | None = None) -> HttpLimits:
        max_url_size = int(settings.max_url_size)
        budget = (max_url_size + int(settings.max_header_size)
                  + _HEAD_OVERHEAD * settings.max_header_count)
        rate = settings.body_min_rate
        return cls(settings.head_timeout, settings.body_timeout,
                   None if rate is None else float(rate), max_url_size, budget,
                   settings.send_timeout, answer_refused)

    async def url_too_long(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI app answering a request whose URL is over ``max_url_size``: the
        AsgiServer's answer (decorated by its error chain), or a plain one for any other app.
        Either way the connection closes after it."""
        client = scope.get("client")
        logger.warning("%s: request URL over %d bytes", f"{client[0]}:{client[1]}" if client
                       else "client", self.max_url_size)
        message = f"Request URL larger than {self.max_url_size} bytes."
        if self.answer_refused is not None:
            await self.answer_refused(scope, receive, send, HTTPException(
                414, detail=message, headers={"Connection": "close"}))
            return
        body = message.encode("ascii")
        await send({"type": "http.response.start", "status": 414,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode("ascii")),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class _UrlLimited:
    """The app behind a check of the request target's length: the 414. The httptools protocol
    puts it in front only for the reads that could hold a long URL, h11 for every request."""

    __slots__ = ("app", "limits")

    def __init__(self, app: Any, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"")
            target = (len(scope["raw_path"]) - len(scope.get("root_path", "").encode())
                      + (len(query) + 1 if query else 0))
            if target > self.limits.max_url_size:
                await self.limits.url_too_long(scope, receive, send)
                return
        await self.app(scope, receive, send)


def limits_for(config: Config) -> HttpLimits:
    """The limits of the AsgiServer behind ``config.loaded_app`` (cached on the config)."""
    cached: HttpLimits | None = getattr(config, _LIMITS_ATTRIBUTE, None)
    if cached is not None:
        return cached
    app: Any = config.loaded_app
    settings = ServerSettings()
    answer = None
    for _ in range(8):  # uvicorn's wrappers (proxy headers, message logger) keep it in .app
        found = getattr(app, "settings", None)
        if isinstance(found, Settings):
            settings = found.server
            answer = getattr(app, "answer_refused", None)
            break
        app = getattr(app, "app", None)
        if app is None:
            break
    limits = HttpLimits.from_settings(settings, answer)
    setattr(config, _LIMITS_ATTRIBUTE, limits)
    return limits


def _error_response(status: int, message: str,
                    default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = message.encode("ascii")
    content = [httptools_impl.STATUS_LINE[status]]
    for name, value in default_headers:
        content.extend([name, b": ", value, b"\r\n"])
    content.extend([b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: ", str(len(body)).encode("ascii"), b"\r\n",
                    b"connection: close\r\n\r\n", body])
    return b"".join(content)


def _compose(status: int, headers: Any, body: bytes,
             default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """An HTTP/1.1 response that closes the connection, from an ASGI start message's parts."""
    content = [httptools_impl.STATUS_LINE.get(status) or b"HTTP/1.1 %d \r\n" % status]
    for name, value in [*default_headers, *(headers or ())]:
        if name.lower() not in _NOT_COPIED:
            content.extend([name, b": ", value, b"\r\n"])
    content.extend([b"content-length: ", str(len(body)).encode("ascii"), b"\r\n",
                    b"connection: close\r\n\r\n", body])
    return b"".join(content)


async def _render_refusal(answer: RefusalAnswer, scope: dict[str, Any], exc: Exception,
                          default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The bytes of the application's answer to a refused head (ValueError: none, or one
    larger than ``_MAX_REFUSAL_BODY``)."""
    start: dict[str, Any] | None = None
    body: list[bytes] = []
    size = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal start, size
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > _MAX_REFUSAL_BODY:
                raise ValueError(f"the answer is over {_MAX_REFUSAL_BODY} bytes")
            body.append(chunk)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}  # nothing more is read from this connection

    await answer(scope, receive, send, exc)
    if start is None:
        raise ValueError("the application sent no response")
    content = b"" if scope["method"] == "HEAD" else b"".join(body)
    return _compose(start["status"], start.get("headers"), content, default_headers)


_IDLE, _HEAD, _BODY = 0, 1, 2
# Our per-connection state lives in slots: uvicorn's protocols already keep about 28
# attributes in the instance dict, and past 30 CPython stops sharing dict keys, which slows
# every attribute access of uvicorn's own per-request code (measured: +2.5% instructions for
# GET /hello).
_GUARD_SLOTS = ("_limits", "_phase", "_timer", "_head_bytes", "_head_started", "_body_start",
                "_body_last", "_body_bytes", "_upgraded", "_refused", "_write_timer",
                "_continue_pending", "_refusal")
_LINGER = 2.0  # seconds a refused connection is drained before it is closed


class _ReadGuard:
    """Deadlines and the head budget, shared by both protocols.

    One timer per connection at most, armed when a phase (head, body) outlasts the read that
    began it and re-armed lazily: a body read only stores the time, and the timer, when it
    fires, moves itself to the real deadline.
    """

    _count_head = True  # False where the parser bounds its own buffer (h11)

    # provided by the uvicorn protocol this is mixed into
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    server_state: Any
    flow: Any
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    scheme: Literal["http", "https"] | None
    root_path: str
    app_state: dict[str, Any]

    def _guard_init(self, config: Config) -> None:
        self._limits = limits_for(config)
        self._phase = _IDLE
        self._timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_started = False  # a byte of the current head arrived
        self._body_start = 0.0
        self._body_last = 0.0
        self._body_bytes = 0
        self._upgraded = False
        self._refused = False  # answered 408/414/431 (or will close after the response)
        self._write_timer: asyncio.TimerHandle | None = None
        self._continue_pending = False  # the client was waiting for our 100 Continue
        self._refusal: asyncio.Task[None] | None = None  # the application answering a 431

    # -- what each protocol tells us ---------------------------------------------------------

    def _current_cycle(self) -> Any:
        raise NotImplementedError

    def _url_size(self) -> int:
        return 0

    def _head_so_far(self) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]] | None:
        """The method, request target and complete header lines of the head that is
        arriving, or None when the request line is not complete."""
        return None

    # -- phases ------------------------------------------------------------------------------

    def _wait_for_head(self, received: int) -> None:
        """The head is incomplete after a read of ``received`` bytes (0: the connection
        just opened)."""
        if self._refused:
            return
        if self._phase == _HEAD:
            self._head_started = self._head_started or received > 0
            self._head_bytes += received
            if self._count_head and self._head_bytes > self._limits.head_budget:
                self._head_too_large()
            return
        # the read that begins a head may also end the previous request: not counted
        self._phase = _HEAD
        self._head_bytes = 0
        self._head_started = received > 0
        self._arm(self._limits.head_timeout)

    def _read_body(self, received: int) -> None:
        if self._refused:
            return
        now = self.loop.time()
        if self._phase != _BODY:
            self._phase = _BODY
            self._body_start = now
            self._body_bytes = 0
            self._arm(self._limits.body_timeout)
        self._body_last = now
        self._body_bytes += received

    def _stop_watching(self) -> None:
        self._phase = _IDLE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the connection's life (both protocols) ---------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._wait_for_head(0)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        self._stop_write_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    # -- the write side: a client that does not read ---------------------------------------

    def pause_writing(self) -> None:
        """The transport's buffer is full: the client is not reading what we send. The
        response's ``send`` now waits; past ``send_timeout`` the connection is dropped, so
        a client that never reads cannot hold a request, its envelope and its response's
        bytes for ever."""
        super().pause_writing()  # type: ignore[misc]
        if self._write_timer is None and not self._upgraded:
            self._write_timer = self.loop.call_later(self._limits.send_timeout,
                                                     self._write_stalled)

    def resume_writing(self) -> None:
        self._stop_write_timer()
        super().resume_writing()  # type: ignore[misc]

    def _stop_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_stalled(self) -> None:
        self._write_timer = None
        if self.transport.is_closing():
            return
        logger.warning("%s: read nothing of the response for %.0fs; connection dropped",
                       self._who(), self._limits.send_timeout)
        # abort, not close: close would wait to flush a buffer the client never reads; the
        # protocol's connection_lost then tells the app (http.disconnect) and resumes send
        self.transport.abort()

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, self._deadline_reached)

    # -- deadlines ---------------------------------------------------------------------------

    def _deadline_reached(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._upgraded or self._phase == _IDLE:
            return
        if self._phase == _BODY:
            cycle = self._current_cycle()
            if cycle is not None and not cycle.more_body:
                self._stop_watching()  # the whole body arrived: nothing left to wait for
                return
            waiting_on_app = cycle is not None and bool(cycle.body)
        else:
            waiting_on_app = False
        # we stopped reading, or the app has not taken what arrived: not the client's stall
        if self.flow.read_paused or waiting_on_app:
            self._body_last = self.loop.time()
            self._arm(self._limits.head_timeout if self._phase == _HEAD
                      else self._limits.body_timeout)
            return
        if self._phase == _HEAD:
            self._head_timed_out()
        else:
            self._check_body()

    def _head_timed_out(self) -> None:
        if not self._head_started:
            logger.debug("%s: closing a connection that sent nothing", self._who())
            self._phase = _IDLE
            self.transport.close()
            return
        logger.warning("%s: request head not complete after %ss", self._who(),
                       self._limits.head_timeout)
        self._refuse(408, "Request head not received in time.")

    def _check_body(self) -> None:
        cycle = self._current_cycle()
        limits = self._limits
        now = self.loop.time()
        if cycle is not None and cycle.waiting_for_100_continue:
            self._body_last = now  # the client waits for our 100 Continue
            self._continue_pending = True
        elif self._continue_pending:
            # our 100 Continue went out since the last check, at a moment we did not see:
            # the client's body_timeout starts now
            self._continue_pending = False
            self._body_last = now
        deadline = self._body_last + limits.body_timeout
        if limits.body_min_rate is not None:
            deadline = min(deadline, self._body_start + limits.body_timeout
                           + self._body_bytes / limits.body_min_rate)
        if now < deadline:
            self._arm(deadline - now)
            return
        logger.warning("%s: request body stalled (%d bytes in %.1fs)", self._who(),
                       self._body_bytes, now - self._body_start)
        response = None
        if cycle is not None and not cycle.response_complete:
            if not cycle.response_started:
                response = _error_response(408, "Request body not received in time.",
                                           self.server_state.default_headers)
            # the app's send() becomes a no-op and its receive() returns http.disconnect
            cycle.disconnected = True
            cycle.message_event.set()
        self._close_after(response)

    def _head_too_large(self) -> None:
        if self._url_size() > self._limits.max_url_size:
            logger.warning("%s: request URL over %d bytes", self._who(),
                           self._limits.max_url_size)
            self._refuse(414, f"Request URL larger than {self._limits.max_url_size} bytes.")
        else:
            logger.warning("%s: request head over %d bytes", self._who(),
                           self._limits.head_budget)
            self._refuse_head(f"Request head larger than {self._limits.head_budget} bytes.")

    def _refuse_head(self, message: str) -> None:
        """A 431 for a head over the budget: the application's answer (its middleware decorate
        it) when the served app is an AsgiServer, else the plain one. Nothing more is read
        either way."""
        answer = self._limits.answer_refused
        cycle = self._current_cycle()
        scope = None
        if answer is not None and (cycle is None or cycle.response_complete):
            scope = self._refused_scope()
        if answer is None or scope is None:
            self._refuse(431, message)
            return
        self._stop_watching()
        self._refused = True
        self._discard_input()
        self._refusal = self.loop.create_task(self._answer_refused(answer, scope, message))

    def _refused_scope(self) -> dict[str, Any] | None:
        head = self._head_so_far()
        if head is None:
            return None
        method, target, headers = head
        try:
            parsed = httptools.parse_url(target)
            method_text = method.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None
        raw_path = parsed.path or b"/"
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = urllib.parse.unquote(path)
        return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1", "server": self.server, "client": self.client,
                "scheme": self.scheme, "root_path": self.root_path, "method": method_text,
                "path": self.root_path + path,
                "raw_path": self.root_path.encode("ascii") + raw_path,
                "query_string": parsed.query or b"", "headers": headers,
                "state": dict(self.app_state)}

    async def _answer_refused(self, answer: RefusalAnswer, scope: dict[str, Any],
                              message: str) -> None:
        default_headers = self.server_state.default_headers
        try:
            data = await asyncio.wait_for(
                _render_refusal(answer, scope, RequestHeaderFieldsTooLarge(detail=message),
                                default_headers), _REFUSAL_TIMEOUT)
        except Exception as exc:  # a middleware that fails or hangs: the plain answer
            logger.warning("%s: the application did not answer the 431 (%r); answered "
                           "without it", self._who(), exc)
            data = _error_response(431, message, default_headers)
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(data)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = self.loop.call_later(_LINGER, transport.close)

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` and close; behind a pipelined request still being answered, stop
        reading and close once that response is complete."""
        cycle = self._current_cycle()
        if cycle is not None and not cycle.response_complete:
            self._stop_watching()
            self._refused = True
            cycle.keep_alive = False
            self.flow.pause_reading()
            return
        self._close_after(_error_response(status, message, self.server_state.default_headers))

    def _close_after(self, response: bytes | None) -> None:
        """Write ``response``, end our side, and close after a short linger.

        Closing with unread input makes the kernel reset the connection, and a client still
        sending then often loses the answer; so what still arrives is read and dropped for
        up to ``_LINGER`` seconds (or until the client closes).
        """
        self._stop_watching()
        self._refused = True
        self._discard_input()
        transport = self.transport
        if response is not None:
            transport.write(response)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = self.loop.call_later(_LINGER, transport.close)

    def _discard_input(self) -> None:
        raise NotImplementedError

    def _who(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"


_stock_httptools_data_received = httptools_impl.HttpToolsProtocol.data_received


class HttpToolsProtocol(_ReadGuard, httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines and a bounded head."""

    __slots__ = (*_GUARD_SLOTS, "_plain_app", "_url_checked_app", "_url_limit")

    def __init__(self, config: Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard_init(config)
        self._plain_app = self.app
        self._url_checked_app = _UrlLimited(self.app, self._limits)
        self._url_limit = self._limits.max_url_size

    def data_received(self, data: bytes) -> None:
        if self._phase or len(data) > self._url_limit:
            # a request completed by this read may have a URL over the limit: its app (chosen
            # by uvicorn as the head completes) checks it first
            self.app = self._url_checked_app
            try:
                _stock_httptools_data_received(self, data)
            finally:
                self.app = self._plain_app
        else:  # a whole request in one short read after an idle connection: the hot path
            # uvicorn's data_received, inline: a Python call less per request is half of
            # what this class costs on GET /hello (bench/http_protocol_overhead.py)
            if self.timeout_keep_alive_task is not None:
                self.timeout_keep_alive_task.cancel()
                self.timeout_keep_alive_task = None
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
                return
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
        scope = self.scope
        if scope is None or "method" not in scope:  # the head is not complete
            self._wait_for_head(len(data))
            return
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self._upgraded:
            self._read_body(len(data))
        elif self._phase:
            self._stop_watching()

    def handle_websocket_upgrade(self) -> None:
        self._upgraded = True
        self._stop_watching()
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # our own refusal stopped the parser: already answered
            return
        self._stop_watching()
        super().send_400_response(msg)

    def _current_cycle(self) -> Any:
        return self.cycle

    def _discard_input(self) -> None:
        self.parser = _DISCARD  # type: ignore[assignment]

    def _url_size(self) -> int:
        return len(getattr(self, "url", b""))

    def _head_so_far(self) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]] | None:
        url: bytes = getattr(self, "url", b"")
        headers: list[tuple[bytes, bytes]] = getattr(self, "headers", [])
        try:
            method = self.parser.get_method()
        except httptools.HttpParserError:
            return None
        return (method, url, list(headers)) if url and method else None


def protocol_class(http: str = "auto") -> type[asyncio.Protocol]:
    """The protocol for ``server.http``: ``auto`` is httptools (uvicorn[standard] installs it),
    as in uvicorn."""
    if http == "h11":
        from .http_h11 import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


class _Discard:
    """Stands in for the parser of a refused connection: what still arrives is dropped."""

    def feed_data(self, data: bytes) -> None:
        pass


_DISCARD = _Discard()
