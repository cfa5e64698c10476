"""uvicorn's h11 protocol with the read deadlines of :mod:`genro_asgi.http_protocol`.

In its own module so that only a server with ``server.http: h11`` loads h11; the default
(httptools) never does. ``genro_asgi.http_protocol.H11Protocol`` still names it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http import h11_impl

from .http_protocol import _GUARD_SLOTS, _ReadGuard, _UrlLimited, logger


class H11Protocol(_ReadGuard, h11_impl.H11Protocol):
    """uvicorn's h11 protocol with read deadlines; h11 itself bounds the head's buffer."""

    __slots__ = _GUARD_SLOTS

    _count_head = False

    def __init__(self, config: Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard_init(config)
        # h11 refuses a buffered head over this (uvicorn answers it with a 400, made a 431 in
        # send_400_response)
        self.conn._max_incomplete_event_size = self._limits.head_budget
        self.app = _UrlLimited(self.app, self._limits)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        conn = self.conn
        state = conn.their_state
        if state is h11.SEND_BODY and not self._upgraded:
            self._read_body(len(data))
        elif state is h11.IDLE and conn.our_state is h11.IDLE and conn._receive_buffer:
            self._wait_for_head(len(data))
        elif self._phase:
            self._stop_watching()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True
        self._stop_watching()
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:
        self._stop_watching()
        if len(self.conn._receive_buffer) > self._limits.head_budget:
            logger.warning("%s: request head over %d bytes", self._who(),
                           self._limits.head_budget)
            self._refuse_head(f"Request head larger than {self._limits.head_budget} bytes.")
            return
        super().send_400_response(msg)

    def _head_so_far(self) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]] | None:
        # h11 keeps a head unparsed until it is complete: its lines, read here once
        data = bytes(self.conn._receive_buffer)
        request_line, found, rest = data.partition(b"\r\n")
        parts = request_line.split(b" ")
        if not found or len(parts) != 3:
            return None
        headers = []
        for line in rest.split(b"\r\n")[:-1]:  # the last line may still be arriving
            name, colon, value = line.partition(b":")
            if not line or not colon or not name.strip():
                break
            headers.append((name.strip().lower(), value.strip(b" \t")))
        return parts[0], parts[1], headers

    def _current_cycle(self) -> Any:
        return self.cycle

    def _discard_input(self) -> None:
        pass  # data_received drops everything once refused
