"""genro-asgi-wsx: WebSocket RPC and subscriptions (WSX and JSON-RPC 2.0) for genro-asgi."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .broker import Broker, MemoryBroker, Publication
from .config import WsxConfig
from .errors import CloseCode, WsxError
from .hookspecs import WsxHookSpecs
from .plugin import WsxPlugin

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

__version__ = "0.2.0"


async def publish(server: AsgiServer, channel: str, data: Any) -> None:
    """Publish through the hook: works from any handler or plugin, a no-op when wsx is off."""
    await server.plugins.call("genro_asgi_wsx_publish", strict=False, server=server,
                              channel=channel, data=data)


__all__ = ["Broker", "CloseCode", "MemoryBroker", "Publication", "WsxConfig", "WsxError",
           "WsxHookSpecs", "WsxPlugin", "__version__", "publish"]
