"""The ASGI lifespan protocol, translated into server.startup() and server.shutdown()."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .types import Receive, Scope, Send

if TYPE_CHECKING:
    from .server import AsgiServer

logger = logging.getLogger("genro_asgi.lifespan")


async def run_lifespan(server: AsgiServer, scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await server.startup()
            except Exception as exc:
                logger.error("startup failed: %s", exc)
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await server.shutdown()
            except Exception as exc:
                logger.exception("shutdown failed")
                await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return
