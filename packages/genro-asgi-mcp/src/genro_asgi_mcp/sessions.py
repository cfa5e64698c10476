"""MCP sessions (``Mcp-Session-Id``): bounded in count and in idle time, bound to the caller.

A session remembers the negotiated protocol version and who opened it. A request presenting
the id of a session opened by another identity is treated as presenting an unknown id (404),
so a leaked id is useless without its owner's credential. Expired sessions are dropped when
the store is touched; no background task is needed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from genro_asgi.identity import Identity

MAX_ID_LENGTH = 128


def owner_of(identity: Identity | None) -> tuple[str, str] | None:
    return None if identity is None else (identity.backend, identity.id)


@dataclass
class Session:
    id: str
    protocol_version: str
    owner: tuple[str, str] | None
    client_name: str
    last_used: float
    initialized: bool = False
    calls: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)
    """Tool calls in flight by JSON-RPC id: what ``notifications/cancelled`` and the end of
    the session cancel."""

    def cancel_calls(self) -> None:
        for task in self.calls.values():
            task.cancel()


class SessionStore:
    """The sessions of one server, least recently used first."""

    def __init__(self, max_sessions: int, idle_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        self._expire(self.clock())
        return len(self._sessions)

    def open(self, protocol_version: str, identity: Identity | None,
             client_name: str) -> Session | None:
        """A new session, or None when ``max_sessions`` are open."""
        now = self.clock()
        self._expire(now)
        if len(self._sessions) >= self.max_sessions:
            return None
        session = Session(secrets.token_urlsafe(32), protocol_version, owner_of(identity),
                          client_name[:200], now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, identity: Identity | None) -> Session | None:
        """The live session with this id opened by this identity (its idle clock restarts)."""
        now = self.clock()
        self._expire(now)
        session = self._sessions.get(session_id)
        if session is None or session.owner != owner_of(identity):
            return None
        session.last_used = now
        self._sessions.move_to_end(session_id)
        return session

    def close(self, session_id: str, identity: Identity | None) -> bool:
        """End a session (DELETE): its calls in flight are cancelled."""
        session = self.get(session_id, identity)
        if session is None:
            return False
        del self._sessions[session_id]
        session.cancel_calls()
        return True

    def clear(self) -> None:
        for session in self._sessions.values():
            session.cancel_calls()
        self._sessions.clear()

    def _expire(self, now: float) -> None:
        sessions = self._sessions
        deadline = now - self.idle_timeout
        while sessions:
            oldest = next(iter(sessions.values()))
            if oldest.last_used > deadline:
                return
            del sessions[oldest.id]
