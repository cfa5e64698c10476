"""Testing helpers: an in-process client (HTTP, WebSocket, lifespan) and a live uvicorn server."""

from ..websocket import WebSocketDisconnect
from .client import AsyncTestClient, TestClient, WebSocketSession
from .live import LiveServer, free_port

__all__ = [
    "AsyncTestClient",
    "LiveServer",
    "TestClient",
    "WebSocketDisconnect",
    "WebSocketSession",
    "free_port",
]
