"""Task events to the ``genro_asgi_executor_task_event`` hook: in order, off the caller's path.

Events are queued and one task delivers them, so a job's transitions never wait for a slow
listener and listeners see them in the order they happened. With no implementation of the
hook, ``emit`` does nothing. When listeners fall far behind, progress events are dropped
(counted in ``dropped``); state events never are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

HOOK = "genro_asgi_executor_task_event"
MAX_BACKLOG = 10_000  # queued events beyond which progress events are dropped

logger = logging.getLogger("genro_asgi_executor.events")


class EventBus:
    def __init__(self) -> None:
        self.active = False
        self.dropped = 0
        self.delivered = 0
        self._queue: deque[dict[str, Any]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self, server: AsgiServer) -> None:
        self.active = bool(server.plugins.ordered_impls(HOOK))
        self._closing = False
        if self.active:
            self._wakeup = asyncio.Event()
            self._task = asyncio.create_task(self._deliver(server), name="executor-events")

    def emit(self, event: dict[str, Any]) -> None:
        if not self.active or self._wakeup is None:
            return
        if event["kind"] == "progress" and len(self._queue) >= MAX_BACKLOG:
            self.dropped += 1
            return
        self._queue.append(event)
        self._wakeup.set()

    async def _deliver(self, server: AsgiServer) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                event = self._queue.popleft()
                # strict=False: a failing listener is logged with its name, the others run
                await server.plugins.call(HOOK, strict=False, server=server, event=event)
                self.delivered += 1
            if self._closing:
                return

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop."""
        task, self._task = self._task, None
        if task is None or self._wakeup is None:
            return
        self._closing = True
        self._wakeup.set()
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            logger.warning("executor: %d task event(s) not delivered at shutdown",
                           len(self._queue))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._queue.clear()
        self.active = False
