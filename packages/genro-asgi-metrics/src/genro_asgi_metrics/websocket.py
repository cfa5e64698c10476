"""A pure-ASGI middleware counting WebSocket messages; HTTP scopes pass through untouched.

Open connections need no middleware: they are counted from the envelope registry.
"""

from __future__ import annotations

from collections.abc import Callable

from genro_asgi.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import ServerMetrics


def websocket_middleware(metrics: ServerMetrics,
                         skipped: Callable[[str], bool]) -> Callable[[ASGIApp], ASGIApp]:
    """The factory returned from genro_asgi_middleware."""
    count_in = metrics.ws_in.inc
    count_out = metrics.ws_out.inc

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "websocket" or skipped(scope["path"]):
                await app(scope, receive, send)
                return
            async def counting_receive() -> Message:
                message = await receive()
                if message["type"] == "websocket.receive":
                    count_in()
                return message

            async def counting_send(message: Message) -> None:
                if message["type"] == "websocket.send":
                    count_out()
                await send(message)

            await app(scope, counting_receive, counting_send)

        return middleware

    # WebSocket scopes only: the core keeps this middleware out of the HTTP chain entirely
    factory.scope_types = ("websocket",)  # type: ignore[attr-defined]

    return factory
