"""The ASGI app mounted at the plugin's path: the WebSocket handshake, and ``client.js``.

The handshake picks the subprotocol, checks the Origin, takes the identity the auth plugin put
on the scope, and hands the accepted socket to a WsxConnection.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from genro_asgi import WebSocket, WebSocketDisconnect
from genro_asgi.types import Receive, Scope, Send

from .connection import Subprotocol, WsxConnection
from .errors import CloseCode
from .jsonrpc import JsonRpcProtocol
from .wsx_protocol import WsxProtocol

if TYPE_CHECKING:
    from .plugin import WsxPlugin

PROTOCOLS: dict[str, Callable[[WsxConnection], Subprotocol]] = {
    "wsx": WsxProtocol, "jsonrpc": JsonRpcProtocol}
CLIENT_JS = "client.js"


class WsxEndpoint:
    def __init__(self, plugin: WsxPlugin) -> None:
        self.plugin = plugin
        self.config = plugin.config
        self.client_js = files("genro_asgi_wsx").joinpath("static", CLIENT_JS).read_bytes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._serve_client(scope, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    # -- http: the browser client ------------------------------------------------------------

    async def _serve_client(self, scope: Scope, send: Send) -> None:
        path = scope["path"]
        if path.strip("/") != CLIENT_JS:
            await _plain(send, 404, b"Not Found")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        body = self.client_js
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/javascript; charset=utf-8"),
            (b"content-length", b"%d" % len(body)), (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})

    # -- websocket: the handshake ------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        ws = WebSocket(scope, receive, send)
        if scope["path"].strip("/"):
            await ws.close(CloseCode.POLICY_VIOLATION)  # refused: HTTP 403
            return
        offered = ws.subprotocols
        if offered:
            chosen = next((p for p in offered if p in self.config.subprotocols), None)
            if chosen is None:
                await ws.close(CloseCode.POLICY_VIOLATION)
                return
        else:
            chosen = self.config.subprotocols[0]
        if not self.plugin.origin_allowed(ws.headers.get("origin"), ws.headers.get("host")):
            await ws.close(CloseCode.POLICY_VIOLATION)
            return
        plugin = self.plugin
        try:
            await ws.accept(chosen if offered else None)
        except WebSocketDisconnect:
            return
        limit = self.config.max_connections
        if plugin.server.draining or plugin.closing or (
                limit and len(plugin.connections) >= limit):
            await ws.close(CloseCode.TRY_AGAIN_LATER)
            return
        conn = WsxConnection(plugin, ws, receive, send, scope.get("genro.identity"),
                             require_identity=plugin.require_identity,
                             tytx=chosen == "jsonrpc" and _wants_tytx(ws, scope))
        plugin.connections.add(conn)
        try:
            await conn.run(PROTOCOLS[chosen](conn))
        finally:
            plugin.connections.discard(conn)


def _wants_tytx(ws: WebSocket, scope: Scope) -> bool:
    envelope = scope.get("genro.envelope")
    if envelope is not None and envelope.tytx_mode == "json":
        return True
    if ws.headers.get("x-tytx-transport", "").strip().lower() == "json":
        return True
    query = scope.get("query_string") or b""
    return b"tytx" in query and parse_qs(query.decode("latin-1")).get("tytx") == ["json"]


def same_origin(origin: str, host: str | None) -> bool:
    if not host:
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.lower()


async def _plain(send: Send, status: int, body: bytes,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
