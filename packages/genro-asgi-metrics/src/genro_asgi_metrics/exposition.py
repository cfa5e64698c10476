"""The scrape endpoint: content negotiation (text / OpenMetrics), gzip, optional access control.

Access is open unless a Bearer ``token`` or an ``auth_rule`` is configured: the rule is matched
against the tags of the identity that the auth plugin records on the request's envelope.

``Exposition`` renders a scrape from request headers. ``ExpositionRoute`` serves it on the main
server as a route (a route joins the core's route table, so the other requests pay nothing for
it, where an ASGI mount is checked on every request); the separate-port listener serves it too.
``ExpositionApp`` is the same as a plain ASGI app, to mount anywhere.
"""

from __future__ import annotations

import gzip
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from genro_toolbox import tags_match
from prometheus_client.exposition import choose_encoder, gzip_accepted

from genro_asgi import AsgiApplication, Request, Response, route
from genro_asgi.types import Receive, Scope, Send

Reply = tuple[int, list[tuple[bytes, bytes]], bytes]


def identity_tags(identity: Any) -> set[str]:
    """The tags of an identity: its ``tags`` attribute, or the ``"tags"`` key of a mapping."""
    tags = getattr(identity, "tags", None)
    if tags is None and isinstance(identity, Mapping):
        tags = identity.get("tags")
    return {str(tag) for tag in tags or ()}


_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class Exposition:
    """Render the metrics of ``source()`` (a registry or any collector) for one scrape."""

    def __init__(self, source: Callable[[], Any], token: str | None = None,
                 auth_rule: str | None = None) -> None:
        self.source = source
        self._expected = f"Bearer {token}".encode() if token else None
        self.auth_rule = auth_rule

    def authorized(self, authorization: bytes | None) -> bool:
        if self._expected is None:
            return self.auth_rule is None
        # constant time whatever the header holds
        return hmac.compare_digest(authorization or b"", self._expected)

    def access(self, headers: dict[bytes, bytes], identity: Any) -> int:
        """200 when the scrape may proceed, else 401 (no credential) or 403 (wrong tags)."""
        if self.authorized(headers.get(b"authorization")):
            return 200
        if self.auth_rule is None or identity is None:
            return 401
        return 200 if tags_match(self.auth_rule, identity_tags(identity)) else 403

    def reply(self, method: str, headers: dict[bytes, bytes], identity: Any = None) -> Reply:
        if method not in ("GET", "HEAD"):
            return 405, [*_TEXT, (b"allow", b"GET, HEAD")], b"Method Not Allowed\n"
        status = self.access(headers, identity)
        if status == 401:
            return 401, [*_TEXT, (b"www-authenticate", b'Bearer realm="metrics"')], \
                b"Unauthorized\n"
        if status == 403:
            return 403, list(_TEXT), b"Forbidden\n"
        encoder, content_type = choose_encoder(headers.get(b"accept", b"").decode("latin-1"))
        body = encoder(self.source())
        out = [(b"content-type", content_type.encode("latin-1")),
               (b"vary", b"Accept, Accept-Encoding")]
        if gzip_accepted(headers.get(b"accept-encoding", b"").decode("latin-1")):
            body = gzip.compress(body, compresslevel=6)
            out.append((b"content-encoding", b"gzip"))
        out.append((b"content-length", str(len(body)).encode()))
        return 200, out, b"" if method == "HEAD" else body


class ExpositionApp:
    """A plain ASGI app serving the scrape at its mount point (sub-paths are 404)."""

    def __init__(self, exposition: Exposition) -> None:
        self.exposition = exposition

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["path"] not in ("/", ""):
            status, headers, body = 404, list(_TEXT), b"Not Found\n"
        else:
            envelope = scope.get("genro.envelope")
            status, headers, body = self.exposition.reply(
                scope["method"], dict(scope.get("headers") or ()),
                envelope.identity if envelope is not None else None)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class ExpositionRoute(AsgiApplication):
    """The scrape at the mount point, GET and HEAD (the core answers 405 to other methods,
    and 404 to sub-paths). Query parameters are accepted and ignored."""

    def __init__(self, exposition: Exposition) -> None:
        super().__init__()
        self.exposition = exposition

    @route(methods=["GET"])
    async def index(self, request: Request, **params: str) -> Response:
        # async: rendered on the event loop, never beside the observers writing the numbers
        envelope = request.envelope
        identity = envelope.identity if envelope is not None else None
        status, headers, body = self.exposition.reply(
            "GET", dict(request.scope.get("headers") or ()), identity)
        response = Response(body, status_code=status)
        response.raw_headers = headers  # the core strips the body of a HEAD
        return response
