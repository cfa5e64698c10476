"""genro-asgi-wsx: WebSocket RPC and subscriptions (WSX and JSON-RPC 2.0)."""

from .plugin import WsxConfig, WsxPlugin

__version__ = "0.1.0"

__all__ = ["WsxConfig", "WsxPlugin", "__version__"]
