"""genro-asgi-wsx: WebSocket RPC and subscriptions (WSX and JSON-RPC 2.0) for genro-asgi."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genro_asgi import HTTPException, PluginError

from .broker import Broker, MemoryBroker, Publication, PublishError, Subscriber
from .config import WsxConfig
from .errors import CloseCode, WsxError
from .hookspecs import WsxHookSpecs
from .plugin import WsxPlugin

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

__version__ = "0.2.0"


async def publish(server: AsgiServer, channel: str, data: Any) -> None:
    """Publish through the hook: works from any handler or plugin, a no-op when wsx is off.

    A publication the plugin refuses raises here, so the publisher knows: ValueError for a
    channel outside the grammar, PublishError (a ValueError) for data that cannot be encoded,
    which no subscriber got; a broker that cannot take it now raises an HTTPException (a
    network broker's 503), passed through as is.
    """
    try:
        await server.plugins.call("genro_asgi_wsx_publish", strict=True, server=server,
                                  channel=channel, data=data)
    except PluginError as exc:
        cause = exc.__cause__
        if isinstance(cause, (ValueError, HTTPException)):
            raise cause from cause.__cause__
        raise


__all__ = ["Broker", "CloseCode", "MemoryBroker", "Publication", "PublishError", "Subscriber",
           "WsxConfig", "WsxError", "WsxHookSpecs", "WsxPlugin", "__version__", "publish"]
