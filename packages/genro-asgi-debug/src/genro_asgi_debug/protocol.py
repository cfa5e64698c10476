"""The wire protocol between the debug listener and its client, shared by both sides.

Frames are a 4-byte big-endian length followed by that many bytes of UTF-8 JSON: one object
with a ``type``. Authentication is a mutual challenge-response on the shared secret, which never
crosses the wire::

    server -> {"type": "hello", "protocol": 1, "nonce": <server nonce>}
    client -> {"type": "auth", "nonce": <client nonce>, "proof": client_proof(...)}
    server -> {"type": "welcome", "proof": server_proof(...), "pid": ..., ...}   (or "error")

Then the client sends commands (``incidents``, ``requests``, ``attach``, ``input``,
``detach``) and the server answers; during an attach it streams ``output`` frames and ends
with ``detached``. See docs/debug.md for every message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import socket
import struct
from typing import Any

PROTOCOL = 1
NONCE_BYTES = 32
HEADER = struct.Struct(">I")
MAX_CLIENT_FRAME = 64 * 1024  # what the server accepts from a client
MAX_SERVER_FRAME = 4 * 1024 * 1024  # what the client accepts from the server
OUTPUT_CHUNK = 32 * 1024  # characters of pdb output per frame
_CLIENT_LABEL = b"genro-asgi-debug/1/client\x00"
_SERVER_LABEL = b"genro-asgi-debug/1/server\x00"


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame; the connection is closed."""


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def valid_nonce(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != NONCE_BYTES * 2:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def _proof(label: bytes, secret: bytes, server_nonce: str, client_nonce: str) -> str:
    message = label + bytes.fromhex(server_nonce) + bytes.fromhex(client_nonce)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def client_proof(secret: bytes, server_nonce: str, client_nonce: str) -> str:
    return _proof(_CLIENT_LABEL, secret, server_nonce, client_nonce)


def server_proof(secret: bytes, server_nonce: str, client_nonce: str) -> str:
    return _proof(_SERVER_LABEL, secret, server_nonce, client_nonce)


def proof_matches(expected: str, given: Any) -> bool:
    """Constant-time comparison that tolerates any type from the wire."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    except RecursionError:  # "[[[[..." fits in any frame limit; a bad frame, not a crash
        raise ProtocolError("frame is nested too deeply") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("frame is not an object with a string 'type'")
    return message


async def read_frame(reader: asyncio.StreamReader, limit: int) -> dict[str, Any] | None:
    """The next message, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("stream ended inside a frame header") from None
        return None
    (length,) = HEADER.unpack(header)
    if length > limit:
        raise ProtocolError(f"frame of {length} bytes is over the {limit} byte limit")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ProtocolError("stream ended inside a frame") from None
    return decode(body)


def recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    received = 0
    while received < size:
        chunk = sock.recv(size - received)
        if not chunk:
            if received:
                raise ProtocolError("connection closed inside a frame")
            return None
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, limit: int = MAX_SERVER_FRAME) -> dict[str, Any] | None:
    """Blocking read of the next message (the client side); None when the server closed."""
    header = recv_exact(sock, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > limit:
        raise ProtocolError(f"frame of {length} bytes is over the {limit} byte limit")
    body = recv_exact(sock, length)
    if body is None:
        raise ProtocolError("connection closed inside a frame")
    return decode(body)
