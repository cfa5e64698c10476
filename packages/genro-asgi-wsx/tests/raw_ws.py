"""A WebSocket client on a plain socket, for clients that must misbehave (never read).

The ``websockets`` client reads in a background thread, so it cannot play a client that stops
reading: this one does the handshake and framing by hand, with a small receive buffer, and
reads only when told to.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from typing import Any

TIMEOUT = 30.0  # a guard against a hang, never an assertion about speed


class Closed(Exception):
    """The server's close frame arrived (``code``), or the socket ended without one (None)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class RawWs:
    def __init__(self, host: str, port: int, path: str = "/_wsx", protocol: str = "wsx",
                 rcvbuf: int = 4096) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # set before connect, so the TCP window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(TIMEOUT)
        sock.connect((host, port))
        self.sock = sock
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
                      ).encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"handshake refused: {head[:80]!r}")

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed(None)
        self._buffer += chunk

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def send_text(self, text: str) -> None:
        payload = text.encode("utf-8")
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv_frame(self) -> tuple[int, bytes]:
        first, second = self._take(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._take(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._take(8))
        return first & 0x0F, self._take(size)

    def recv_text(self) -> str:
        """The next text frame (pings skipped); a close frame raises Closed."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 1:
                return payload.decode("utf-8")
            if opcode == 8:
                raise Closed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None)

    def wsx(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send_text("WSX://" + json.dumps(message))
        text = self.recv_text()
        assert text.startswith("WSX://"), text[:80]
        return json.loads(text[6:])  # type: ignore[no-any-return]

    def read_until_closed(self) -> tuple[int | None, int]:
        """Read everything until the server closes: its close code (None: no close frame) and
        how many text frames came before it."""
        frames = 0
        try:
            while True:
                self.recv_text()
                frames += 1
        except Closed as closed:
            return closed.code, frames
        except ConnectionResetError:
            return None, frames

    def close(self) -> None:
        self.sock.close()
