"""Starlette with three trivial pure-ASGI middleware, the reference the design's figures quote.

Each middleware does what the commonest pure-ASGI middleware does: it passes non-http scopes
through and wraps ``send`` to look at the response start (here: it appends one header).
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from bench.apps.starlette_app import ROUTES


class HeaderMiddleware:
    """Pure ASGI: appends ``x-<name>: 1`` to every HTTP response."""

    def __init__(self, app: Any, name: str) -> None:
        self.app = app
        self.header = (f"x-{name}".encode("latin-1"), b"1")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = self.header

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_wrapper)


app = Starlette(
    routes=ROUTES,
    middleware=[Middleware(HeaderMiddleware, name=f"mw{i}") for i in (1, 2, 3)],
)
