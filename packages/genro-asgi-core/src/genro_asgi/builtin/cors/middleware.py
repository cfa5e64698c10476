"""The CORS middleware: pure ASGI, for http and websocket scopes, compiled once per server.

http: a preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here and
never reaches the app; any other request goes through with the policy's headers added to its
response. websocket: a handshake from an Origin the policy refuses is closed before accept,
which the ASGI server turns into an HTTP 403.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable

from ...envelope import reporting_send
from ...types import ASGIApp, Message, RawHeaders, Receive, Scope, Send
from .policy import VARY, CorsPolicy

logger = logging.getLogger("genro_asgi.cors")

_ORIGIN = b"origin"
_HOST = b"host"
_ACRM = b"access-control-request-method"
_ACRH = b"access-control-request-headers"
_CONTROL = b"access-control-"
_SPECIAL = frozenset(b"vVaA")  # first byte of Vary and Access-Control-*, as ints
_VARY_ORIGIN = (VARY, b"Origin")


def add_cors_headers(headers: Iterable[tuple[bytes, bytes]], extra: RawHeaders,
                     vary: bool) -> RawHeaders:
    """The response headers with ``extra`` added, ``Origin`` merged into Vary when ``vary``.

    Access-Control-* headers set by the app are dropped: the plugin owns CORS, and two
    Access-Control-Allow-Origin values make a browser reject the response.
    """
    if _special(headers):
        return _merge(headers, extra, vary)
    # the common case: no Vary and no Access-Control-* header to look at
    return [*headers, _VARY_ORIGIN, *extra] if vary else [*headers, *extra]


def _special(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a header may be Vary or Access-Control-* (by its first byte; an empty name,
    which no valid response has, counts too: the careful merge deals with it)."""
    try:
        for key, _ in headers:
            if key[0] in _SPECIAL:
                return True
    except IndexError:
        return True
    return False


def _merge(headers: Iterable[tuple[bytes, bytes]], extra: RawHeaders,
           vary: bool) -> RawHeaders:
    merged: RawHeaders = []
    vary_at = -1
    varies = False
    for key, value in headers:
        name = key.lower()
        if name.startswith(_CONTROL):
            continue
        if vary and name == VARY:
            if vary_at < 0:
                vary_at = len(merged)
            varies = varies or _varies_on_origin(value)
        merged.append((key, value))
    if vary and not varies:
        if vary_at < 0:
            merged.append(_VARY_ORIGIN)
        else:
            key, value = merged[vary_at]
            merged[vary_at] = (key, value + b", Origin" if value.strip() else b"Origin")
    merged.extend(extra)
    return merged


def _varies_on_origin(value: bytes) -> bool:
    tokens = {token.strip().lower() for token in value.split(b",")}
    return b"origin" in tokens or b"*" in tokens


class CorsMiddleware:
    """Applies one CorsPolicy. An exception raised further in is answered by the envelope
    through the error chain, which this middleware decorates like any other response."""

    # It changes no status or body, and records what it answers itself (preflights): the
    # envelope need not wrap every send for it (see AsgiServer.build).
    reports_responses = True

    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function handing back the next app's awaitable: per request it only
        # chooses a ``send``, so it needs no coroutine of its own.
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                return self._websocket(scope, receive, send)
            return self.app(scope, receive, send)
        policy = self.policy
        vary = policy.vary
        origin: bytes | None = None
        if scope["method"] == "OPTIONS":
            method: bytes | None = None
            requested: list[bytes] = []
            for key, value in scope["headers"]:
                if key == _ORIGIN:
                    origin = value if origin is None else origin
                elif key == _ACRM:
                    method = value if method is None else method
                elif key == _ACRH:
                    requested.append(value)
            # (in the error chain the request is already refused: decorate, do not answer)
            if origin is not None and method is not None and "genro.error" not in scope:
                return self._preflight(reporting_send(scope, send), origin, method, requested)
        elif vary:
            for key, value in scope["headers"]:
                if key == _ORIGIN:
                    origin = value
                    break
        appended = policy.static_headers if not vary else policy.by_origin.get(origin) \
            or policy.appended_headers(origin)

        # a plain function handing back ``send``'s awaitable: no coroutine per message
        def send_with_cors(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = message.get("headers") or []
                if type(headers) is not list:
                    headers = list(headers)
                try:  # _special, inline
                    for key, _ in headers:
                        if key[0] in _SPECIAL:  # a Vary or Access-Control-* header to merge
                            break
                    else:
                        message["headers"] = headers + appended
                        return send(message)
                except IndexError:  # an empty header name: the careful merge deals with it
                    pass
                message["headers"] = add_cors_headers(
                    headers, appended[1:] if vary else appended, vary)
            return send(message)

        return self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, origin: bytes, method: bytes,
                         requested: list[bytes]) -> None:
        answer = self.policy.preflight(origin, method, requested)
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": answer.headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = self.policy
        origin = host = None
        for key, value in scope["headers"]:
            if key == _ORIGIN:
                origin = value if origin is None else origin
            elif key == _HOST:
                host = value if host is None else host
        if origin is not None and not policy.allows(origin) and not (
            policy.websocket_same_origin
            and policy.same_origin(origin, scope.get("scheme", "ws"), host)
        ):
            logger.debug("websocket handshake to %s refused: origin %r is not allowed",
                         scope.get("path"), origin[:80])
            envelope = scope.get("genro.envelope")
            if envelope is not None:
                envelope.status = 403  # what the client sees: the server answers HTTP 403
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)
