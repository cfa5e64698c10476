"""The auth middleware: identify every http request and WebSocket handshake, refuse early.

A refused HTTP request gets the errors plugin's 401 (with ``WWW-Authenticate``); a refused
handshake gets an HTTP 401 through the ASGI denial-response extension when the server offers
it, else a close before accept (which servers send as 403).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from ...envelope import reporting_send
from ...exceptions import HTTPException, Unauthorized
from ...identity import SCOPE_KEY, Identity
from ...request import Request
from ...types import ASGIApp, Receive, Scope, Send
from .authenticator import NEEDS_AWAIT, Authenticator

if TYPE_CHECKING:
    from ...server import AsgiServer


def close_reason(detail: str) -> str:
    """``detail`` cut to what a close frame's reason may hold, 123 bytes of UTF-8 (RFC 6455
    5.5.1): cut by bytes, since a custom backend's detail may be non-ASCII."""
    return detail.encode("utf-8")[:123].decode("utf-8", "ignore")


class PublicPaths:
    """``/health`` matches itself; ``/static/*`` matches ``/static`` and everything under it."""

    def __init__(self, patterns: list[str]) -> None:
        self.exact = frozenset("/" + p.strip("/") if p.strip("/") else "/"
                               for p in patterns if not p.endswith("*"))
        prefixes = [p[:-1] for p in patterns if p.endswith("*")]
        self.prefixes = tuple(prefixes)
        self.roots = frozenset(p.rstrip("/") for p in prefixes if p.rstrip("/"))

    def __contains__(self, path: str) -> bool:
        return path in self.exact or path in self.roots or path.startswith(self.prefixes)


class AuthMiddleware:
    # the only responses it sends itself (refusals) are recorded through reporting_send, so
    # the envelope need not wrap every send (see EnvelopeMiddleware)
    reports_responses = True

    def __init__(self, app: ASGIApp, server: AsgiServer, authenticator: Authenticator,
                 public: PublicPaths, anonymous: bool) -> None:
        self.app = app
        self.server = server
        self.authenticator = authenticator
        self.public = public
        self.anonymous = anonymous

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function handing back the next app's awaitable when the answer needs no
        # waiting (bearer, JWT, API key, no credential): no coroutine of its own per request.
        try:
            identity = self.authenticator.check(scope)
        except HTTPException as exc:
            return self._deny(scope, receive, send, exc)
        if identity is NEEDS_AWAIT:
            return self._identify_slowly(scope, receive, send)
        if identity is None:
            return self._admit(None, scope, receive, send)
        # _admit() for an identity, inline: the request of every authenticated client
        scope[SCOPE_KEY] = identity
        envelope = scope.get("genro.envelope")
        if envelope is not None:
            envelope.identity = identity
        return self.app(scope, receive, send)

    def _admit(self, identity: Identity | None, scope: Scope, receive: Receive,
               send: Send) -> Awaitable[None]:
        """The next app with ``identity`` set, or the 401 when there is none and the path
        needs one."""
        if identity is None:
            path = scope["path"]
            if not (self.anonymous or self._public(path)
                    or path in self.server.self_authenticating_paths):
                return self._deny(scope, receive, send,
                                  Unauthorized(detail="authentication required"))
        else:
            scope[SCOPE_KEY] = identity
            envelope = scope.get("genro.envelope")
            if envelope is not None:
                envelope.identity = identity
        return self.app(scope, receive, send)

    async def _identify_slowly(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Basic credentials (a hash in a thread) or the identify hook decide."""
        try:
            identity = await self.authenticator.check_slow(scope, self.server)
        except HTTPException as exc:
            await self._deny(scope, receive, send, exc)
            return
        await self._admit(identity, scope, receive, send)

    def _public(self, path: str) -> bool:
        """Whether ``path`` is public: it matches a pattern (trailing slashes aside) and so does
        the route serving it, so a public-looking path cannot reach a parent route that is not
        public (``/shop/catalog`` under ``/shop/catalog/*`` served by ``/shop``'s index). A
        mounted app is judged by the path: its routes are its own."""
        public = self.public
        if path not in public and "/" + path.strip("/") not in public:
            return False
        served = self.server.served_by(path)
        return served is None or served[1] or served[0] in public

    async def _deny(self, scope: Scope, receive: Receive, send: Send,
                    exc: HTTPException) -> None:
        if scope["type"] == "http":
            response = await self.server.render_error(Request(scope, receive), exc)
            await response(scope, receive, reporting_send(scope, send))
            return
        envelope = scope.get("genro.envelope")
        if envelope is not None:
            envelope.error = exc
            envelope.status = exc.status_code
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": 1008,
                        "reason": close_reason(exc.detail)})
            return
        headers = {"content-type": "application/json"}
        headers.update({k.lower(): v for k, v in exc.headers.items()})
        if exc.status_code == 401 and "www-authenticate" not in headers:
            headers["www-authenticate"] = self.authenticator.challenge
        body = json.dumps({"error": {"status": exc.status_code, "message": exc.detail}}).encode()
        await send({"type": "websocket.http.response.start", "status": exc.status_code,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                for k, v in headers.items()]})
        await send({"type": "websocket.http.response.body", "body": body})
