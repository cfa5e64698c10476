"""The scrape endpoint: content negotiation (text / OpenMetrics), gzip, optional Bearer token.

``Exposition`` renders a scrape from request headers and is shared by the ASGI app mounted on
the main server and by the separate-port listener.
"""

from __future__ import annotations

import gzip
import hmac
from collections.abc import Callable
from typing import Any

from prometheus_client.exposition import choose_encoder, gzip_accepted

from genro_asgi.types import Receive, Scope, Send

Reply = tuple[int, list[tuple[bytes, bytes]], bytes]
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class Exposition:
    """Render the metrics of ``source()`` (a registry or any collector) for one scrape."""

    def __init__(self, source: Callable[[], Any], token: str | None = None) -> None:
        self.source = source
        self._expected = f"Bearer {token}".encode() if token else None

    def authorized(self, authorization: bytes | None) -> bool:
        if self._expected is None:
            return True
        # constant time whatever the header holds
        return hmac.compare_digest(authorization or b"", self._expected)

    def reply(self, method: str, headers: dict[bytes, bytes]) -> Reply:
        if method not in ("GET", "HEAD"):
            return 405, [*_TEXT, (b"allow", b"GET, HEAD")], b"Method Not Allowed\n"
        if not self.authorized(headers.get(b"authorization")):
            return 401, [*_TEXT, (b"www-authenticate", b'Bearer realm="metrics"')], \
                b"Unauthorized\n"
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
            status, headers, body = self.exposition.reply(
                scope["method"], dict(scope.get("headers") or ()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
