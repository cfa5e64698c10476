"""The debug listener: a Unix socket (default) or a loopback TCP port, started per worker.

Before a session starts, the peer itself is checked: over a Unix socket its uid (SO_PEERCRED,
where the platform has it) must be this user's or root's; over TCP its address must be loopback
or in ``allowed_ips``. A refused peer is audited and closed without a word. A connection
beyond ``max_handshakes`` still unauthenticated is audited, told the listener is busy (an
``error`` frame with ``code: busy``) and closed: each would otherwise hold a file descriptor for
the handshake timeout, and any local user can reach a loopback TCP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Iterable
from pathlib import Path

from .config import IPNetwork, ip_allowed
from .protocol import encode
from .session import Session, SessionContext

logger = logging.getLogger("genro_asgi_debug")
_PEERCRED = struct.Struct("3i")
MAX_HANDSHAKES = 16  # default max_handshakes; a developer needs one per worker


class DebugListener:
    """``await start_unix(path)`` or ``await start_tcp(host, port)``; ``await stop()``."""

    def __init__(self, context: SessionContext, allowed_ips: Iterable[IPNetwork],
                 max_handshakes: int = MAX_HANDSHAKES) -> None:
        self.context = context
        self.allowed_ips = tuple(allowed_ips)
        self.max_handshakes = max_handshakes
        self.address: str | None = None
        self._server: asyncio.Server | None = None
        self._path: Path | None = None
        self._sessions: set[Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start_unix(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # our own pid's leftover; the directory is private to us
        self._server = await asyncio.start_unix_server(self._handle, path)
        os.chmod(path, 0o600)
        self._path = path
        self.address = f"unix:{path}"

    async def start_tcp(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)
        self.address = f"tcp:{host}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for session in list(self._sessions):
            session.end_attach("server shutting down")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
            self._path = None

    def _peer(self, writer: asyncio.StreamWriter) -> tuple[str, bool]:
        """A description of the peer for the audit log, and whether it may talk to us."""
        sock: socket.socket = writer.get_extra_info("socket")
        if sock.family == socket.AF_UNIX:
            peercred = getattr(socket, "SO_PEERCRED", None)
            if peercred is None:
                return "unix", True  # the 0700 directory is the check on this platform
            pid, uid, _gid = _PEERCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, peercred, _PEERCRED.size))
            return f"unix:uid={uid}:pid={pid}", uid in (os.geteuid(), 0)
        peername = writer.get_extra_info("peername")
        if not peername:  # already reset by the peer
            return "tcp:unknown", False
        host, port = peername[:2]
        return f"{host}:{port}", ip_allowed(host, self.allowed_ips)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            peer, allowed = self._peer(writer)
            if not allowed:
                self.context.audit.record("refused", peer, reason="peer not allowed")
                logger.warning("debug: refused a connection from %s", peer)
                writer.close()
                return
            if sum(s.authenticating for s in self._sessions) >= self.max_handshakes:
                self.context.audit.record("refused", peer, reason="too many connections "
                                                                  "waiting to authenticate")
                # an allowed peer: it may know why, so that it retries instead of giving up
                writer.write(encode({"type": "error", "code": "busy", "error": (
                    f"busy: {self.max_handshakes} connections are already authenticating; "
                    "try again in a moment")}))
                writer.close()
                return
            session = Session(self.context, reader, writer, peer)
            self._sessions.add(session)
            try:
                await session.run()
            finally:
                self._sessions.discard(session)
        except Exception:
            logger.exception("debug listener: a session failed")
            writer.close()
        finally:
            self._tasks.discard(task)
