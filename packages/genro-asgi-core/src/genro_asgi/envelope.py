"""The per-request envelope, the registry of in-flight envelopes, and the middleware that owns them.

Every http and websocket scope gets an envelope before anything else runs; it is registered,
visible to observers and the watchdog, and removed in ``finally`` whatever happens.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from time import monotonic
from typing import TYPE_CHECKING, Any

from .exceptions import HTTPException, RequestHeaderFieldsTooLarge
from .sync_pool import SCOPE_KEY as SYNC_POOL
from .types import ASGIApp, Message, Receive, Scope, Send
from .tytx import transport_from_content_type

if TYPE_CHECKING:
    from .response import Response
    from .server import AsgiServer

logger = logging.getLogger("genro_asgi.envelope")

EnvelopeObserver = Callable[["Envelope"], Any]
NamedObservers = tuple[tuple[str, EnvelopeObserver], ...]
_REQUEST_ID_HEADER = b"x-request-id"
_TYTX_HEADER = b"x-tytx-transport"
_CONTENT_TYPE = b"content-type"
_MAX_EXTERNAL_ID = 200


class _EnvelopeDefaults:
    """Fields most requests never set: class-level defaults cost nothing until written."""

    external_id: str | None = None
    tytx_mode: str | None = None
    params: dict[str, Any] | None = None
    error: BaseException | None = None
    error_id: str | None = None
    identity: Any = None
    stuck_level = 0
    request_size = 0  # body bytes read so far (set only when a body is read)
    # True when EnvelopeMiddleware wraps ``send`` (some HTTP middleware does not report its
    # responses): then the outermost send records, and reporting middleware stand down
    tracked = False


class Envelope(_EnvelopeDefaults):
    """What the framework knows about one request or WebSocket connection while it is in flight.

    ``tytx_mode`` is the TYTX transport the client asked for (validated by the dispatcher);
    ``route`` the matched route template; ``status`` and ``response_size`` what was sent.
    Opening one is on every request's path, so it stores only the scope and derives the rest.
    """

    # route, status and response_size are written on every request: slots, not the dict
    __slots__ = ("_id_prefix", "created_at", "response_size", "route", "scope", "seq", "status")

    def __init__(self, seq: int, id_prefix: str, scope: Scope) -> None:
        self.seq = seq
        self._id_prefix = id_prefix
        self.scope = scope
        self.created_at = monotonic()
        self.route: str | None = None
        self.status: int | None = None
        self.response_size = 0

    @property
    def scope_type(self) -> str:
        return self.scope["type"]  # type: ignore[no-any-return]

    @property
    def method(self) -> str:
        return self.scope.get("method", "WS")  # type: ignore[no-any-return]

    @property
    def path(self) -> str:
        return self.scope["path"]  # type: ignore[no-any-return]

    @property
    def client(self) -> tuple[str, int] | None:
        return self.scope.get("client")

    @property
    def internal_id(self) -> str:
        """Unique per server run: the server's boot id and a sequence number."""
        return f"{self._id_prefix}-{self.seq:x}"

    @property
    def request_id(self) -> str:
        """The id to show a client and to log: the external one when the client sent one."""
        return self.external_id or self.internal_id

    @property
    def age(self) -> float:
        return time.monotonic() - self.created_at

    @property
    def created_wall(self) -> float:
        """When the envelope was opened, as a Unix timestamp."""
        return time.time() - self.age

    @property
    def metadata(self) -> dict[str, Any]:
        return {"path": self.path, "method": self.method, "client": self.client}

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view, for inspectors and logs."""
        return {
            "internal_id": self.internal_id,
            "external_id": self.external_id,
            "type": self.scope_type,
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "client": list(self.client) if self.client else None,
            "age": round(self.age, 3),
            "status": self.status,
            "tytx_mode": self.tytx_mode,
        }

    def __repr__(self) -> str:
        return f"<Envelope {self.internal_id} {self.method} {self.path}>"


class EnvelopeRegistry:
    """The in-flight envelopes of one server."""

    def __init__(self, id_prefix: str) -> None:
        self._id_prefix = id_prefix
        self._counter = itertools.count(1)
        self._live: dict[int, Envelope] = {}

    def open(self, scope: Scope) -> Envelope:
        envelope = Envelope(next(self._counter), self._id_prefix, scope)
        self._live[envelope.seq] = envelope
        return envelope

    def close(self, envelope: Envelope) -> None:
        self._live.pop(envelope.seq, None)

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Envelope]:
        return iter(list(self._live.values()))

    def count(self, scope_type: str) -> int:
        return sum(1 for e in self._live.values() if e.scope_type == scope_type)


def notify_observers(observers: NamedObservers, envelope: Envelope, hook: str) -> None:
    """Call each observer; one that fails is logged with its plugin's name and skipped."""
    for plugin_name, observer in observers:
        try:
            observer(envelope)
        except Exception:
            logger.exception("plugin %r failed in %s for %s", plugin_name, hook,
                             envelope.request_id)


def tracking_send(envelope: Envelope, send: Send) -> Send:
    """Wrap ``send`` to record status and size on the envelope and echo X-Request-ID.

    The wrapper is a plain function returning ``send``'s awaitable: every message costs one
    call, not a coroutine of its own.
    """
    external_id = envelope.external_id

    def send_tracked(message: Message) -> Awaitable[None]:
        kind = message["type"]
        if kind == "http.response.body":
            envelope.response_size += len(message.get("body", b""))
        elif kind == "http.response.start":
            envelope.status = message["status"]
            if external_id is not None:
                message["headers"] = [
                    *message.get("headers", ()),
                    (_REQUEST_ID_HEADER, external_id.encode("latin-1")),
                ]
        return send(message)

    return send_tracked


def reporting_send(scope: Scope, send: Send) -> Send:
    """``send`` for a response that a reporting middleware answers itself (a CORS preflight,
    an error it renders): records it on the envelope unless the envelope tracks every send."""
    envelope: Envelope | None = scope.get("genro.envelope")
    if envelope is None or envelope.tracked:
        return send
    return tracking_send(envelope, send)


def record_response(envelope: Envelope, response: Response) -> None:
    """What tracking_send would record, for a response the framework itself sends."""
    envelope.status = response.status_code
    envelope.response_size = len(response.body)
    if envelope.external_id is not None:
        response.append_header("x-request-id", envelope.external_id)


class EnvelopeMiddleware:
    """Outermost layer: opens the envelope, echoes ``X-Request-ID``, closes it in ``finally``.

    It is also the last-resort error boundary, so that a failing plugin middleware still
    produces a response rendered by the error hooks.
    """

    def __init__(self, app: ASGIApp, server: AsgiServer, *, track_sends: bool = True,
                 websocket_app: ASGIApp | None = None) -> None:
        self.app = app
        self.websocket_app = websocket_app or app
        self.registry = server.envelopes
        # what registry.open/close do, for __call__ to do inline (two calls less per request)
        self._live = self.registry._live
        self._counter = self.registry._counter
        self._id_prefix = self.registry._id_prefix
        # blocking steps of a request (large bodies, static files) run in the server's pool
        self.sync_pool = server.sync.pool
        self.opened = server.compiled.envelope_opened
        self.closed = server.compiled.envelope_closed
        # the errors it answers itself go through the error chain (AsgiServer.answer_error)
        self.render_error = server.answer_error
        # With plugin middleware in between that does not report its responses (see
        # ``reports_responses`` in AsgiServer.build), only the outermost send sees what the
        # client gets; otherwise the dispatcher records its own responses, the reporting
        # middleware theirs, and no wrapper is needed.
        self.track_sends = track_sends
        # httptools (uvicorn's fast parser) enforces no header limits, so they live here.
        settings = server.settings.server
        self.max_header_count = settings.max_header_count
        self.max_header_size = int(settings.max_header_size)

    async def refuse(self, scope: Scope, receive: Receive, send: Send,
                     exc: HTTPException) -> None:
        """Answer ``exc`` for a request the HTTP protocol refused while its head arrived (the
        scope holds what arrived): in an envelope of its own, which observers see, through
        the error chain, as the envelope's own 431s."""
        envelope = self.registry.open(scope)
        scope["genro.envelope"] = envelope
        envelope.error = exc
        envelope.tracked = True
        for key, value in scope.get("headers") or ():
            if key == _REQUEST_ID_HEADER:  # echoed, as on any answer
                text: str = value.decode("latin-1")
                if 0 < len(text) <= _MAX_EXTERNAL_ID and text.isprintable():
                    envelope.external_id = text
                break
        try:
            if self.opened:
                notify_observers(self.opened, envelope, "envelope_opened")
            await self.render_error(scope, receive, tracking_send(envelope, send), exc)
        finally:
            self.registry.close(envelope)
            notify_observers(self.closed, envelope, "envelope_closed")
            scope.pop("genro.envelope", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        envelope = Envelope(next(self._counter), self._id_prefix, scope)  # registry.open
        seq = envelope.seq
        live = self._live
        live[seq] = envelope
        is_http = scope["type"] == "http"
        scope["genro.envelope"] = envelope
        scope[SYNC_POOL] = self.sync_pool
        headers = scope.get("headers")
        # One pass over the headers (inline: this runs for every request): their size for the
        # limits, the request id and the TYTX transport the client asks for.
        size = 0
        for key, value in headers or ():
            size += len(key) + len(value)
            if key == _REQUEST_ID_HEADER:
                text: str = value.decode("latin-1")
                if 0 < len(text) <= _MAX_EXTERNAL_ID and text.isprintable():
                    envelope.external_id = text
            elif key == _TYTX_HEADER:
                envelope.tytx_mode = value.decode("latin-1").strip().lower()
            elif key == _CONTENT_TYPE and envelope.tytx_mode is None and b"vnd.tytx+" in value:
                envelope.tytx_mode = transport_from_content_type(value)
        if self.track_sends:  # after the header pass: the wrapper echoes the request id
            envelope.tracked = True
            send = tracking_send(envelope, send)
        try:
            if self.opened:
                notify_observers(self.opened, envelope, "envelope_opened")
            if size > self.max_header_size:
                raise RequestHeaderFieldsTooLarge(
                    detail=f"request headers are larger than {self.max_header_size} bytes")
            if headers and len(headers) > self.max_header_count:
                raise RequestHeaderFieldsTooLarge(
                    detail=f"more than {self.max_header_count} request headers")
            if is_http:
                await self.app(scope, receive, send)
            else:
                await self.websocket_app(scope, receive, send)
        except Exception as exc:
            envelope.error = envelope.error or exc
            if is_http and envelope.status is None:
                if not self.track_sends:
                    envelope.tracked = True
                    send = tracking_send(envelope, send)
                await self.render_error(scope, receive, send, exc)
            elif not is_http and isinstance(exc, HTTPException):
                # refused before accept: the client sees HTTP 403
                await send({"type": "websocket.close", "code": 1008})
            elif is_http:
                logger.error("request %s failed after its response started",
                             envelope.request_id, exc_info=exc)
                raise
            else:
                logger.error("websocket %s failed", envelope.request_id, exc_info=exc)
                # the socket may already be gone; then there is nothing left to tell
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": 1011})
        finally:
            live.pop(seq, None)  # registry.close
            # notify_observers, inline: with an observer plugin this runs for every request
            for plugin_name, observer in self.closed:
                try:
                    observer(envelope)
                except Exception:
                    logger.exception("plugin %r failed in envelope_closed for %s", plugin_name,
                                     envelope.request_id)
            # the envelope keeps the scope; dropping the way back leaves no reference cycle
            scope.pop("genro.envelope", None)
