"""The WebSocket connection seen by an application: accept, receive, send and close.

A thin, state-checked layer over the ASGI websocket messages, for mounted endpoints and for
plugins (WSX builds its protocols on it). The envelope of the connection stays registered for
as long as the connection is open.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from enum import Enum
from typing import Any

from .connection import Connection
from .types import Message, Receive, Scope, Send


class WebSocketState(Enum):
    """Where a connection is in its life: CONNECTING (before accept), CONNECTED, CLOSED."""

    CONNECTING = 0
    CONNECTED = 1
    CLOSED = 2


class WebSocketDisconnect(Exception):
    """The peer closed the connection (or it was closed); ``code`` is the close code."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class WebSocket(Connection):
    """One WebSocket connection. Methods raise RuntimeError when used in the wrong state.

    ``connection_state`` is where the connection is in its life; ``state`` (as on a Request)
    is the attribute bag shared with middleware.
    """

    __slots__ = ("_receive", "_send", "connection_state")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError(f"a WebSocket needs a websocket scope, not {scope['type']!r}")
        super().__init__(scope)
        self._receive = receive
        self._send = send
        self.connection_state = WebSocketState.CONNECTING

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols") or [])

    # -- lifecycle -----------------------------------------------------------------------------

    async def accept(self, subprotocol: str | None = None,
                     headers: Iterable[tuple[str, str]] = ()) -> None:
        """Complete the handshake, choosing one of the offered subprotocols (or none)."""
        if self.connection_state is not WebSocketState.CONNECTING:
            raise RuntimeError(f"cannot accept a WebSocket that is {self.connection_state.name}")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client")
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self.connection_state = WebSocketState.CLOSED
            raise WebSocketDisconnect(message.get("code", 1006))
        await self._send({
            "type": "websocket.accept", "subprotocol": subprotocol,
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        })
        self.connection_state = WebSocketState.CONNECTED

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection; before accept this refuses the handshake (HTTP 403)."""
        if self.connection_state is WebSocketState.CLOSED:
            return
        self.connection_state = WebSocketState.CLOSED
        await self._send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    # -- messages ------------------------------------------------------------------------------

    async def receive(self) -> Message:
        """The next data message (with ``text`` or ``bytes``); disconnect raises."""
        if self.connection_state is not WebSocketState.CONNECTED:
            raise RuntimeError(
                f"cannot receive on a WebSocket that is {self.connection_state.name}")
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self.connection_state = WebSocketState.CLOSED
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        return message

    async def receive_text(self) -> str:
        """The next text frame: TypeError for a binary one, WebSocketDisconnect if the peer left."""
        message = await self.receive()
        text = message.get("text")
        if text is None:
            raise TypeError("expected a text frame, got a binary one")
        return text  # type: ignore[no-any-return]

    async def receive_bytes(self) -> bytes:
        """The next binary frame: TypeError for a text one, WebSocketDisconnect if the peer left."""
        message = await self.receive()
        data = message.get("bytes")
        if data is None:
            raise TypeError("expected a binary frame, got a text one")
        return data  # type: ignore[no-any-return]

    async def receive_json(self) -> Any:
        """A text (or UTF-8 binary) frame decoded as JSON; ValueError when it is not JSON."""
        message = await self.receive()
        data = message.get("text")
        if data is None:
            data = (message.get("bytes") or b"").decode("utf-8")
        return json.loads(data)

    async def send_text(self, data: str) -> None:
        """Send a text frame (RuntimeError unless connected)."""
        await self._send_message({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame (RuntimeError unless connected)."""
        await self._send_message({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any) -> None:
        """Send ``data`` as compact JSON in a text frame."""
        await self.send_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False))

    async def _send_message(self, message: Message) -> None:
        if self.connection_state is not WebSocketState.CONNECTED:
            raise RuntimeError(f"cannot send on a WebSocket that is {self.connection_state.name}")
        await self._send(message)

    async def iter_text(self) -> AsyncIterator[str]:
        """Text messages until the peer disconnects (the disconnect ends the loop quietly)."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            return

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Binary messages until the peer disconnects (the disconnect ends the loop quietly)."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            return
