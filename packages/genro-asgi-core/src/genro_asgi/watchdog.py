"""The watchdog: reports envelopes in flight longer than ``timeout`` and ``critical`` seconds,
and inline sync handlers that held the event loop longer than ``inline_block``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import WatchdogSettings
    from .envelope import Envelope, EnvelopeRegistry
    from .plugins.manager import PluginManager

logger = logging.getLogger("genro_asgi.watchdog")

WARNING, CRITICAL = "warning", "critical"


def report_inline_block(path: str, elapsed: float, threshold: float) -> None:
    """An inline ``def`` handler blocked the loop: nothing else ran meanwhile. Measured around
    the call (the watchdog's own task cannot run while the loop is held)."""
    logger.warning("inline sync handler %s held the event loop for %.3fs (watchdog.inline_block "
                   "%.3fs): every other request waited; run it in the sync pool "
                   "(@route(inline=False))", path, elapsed, threshold)


class Watchdog:
    def __init__(self, registry: EnvelopeRegistry, settings: WatchdogSettings,
                 plugins: PluginManager, server: object) -> None:
        self.registry = registry
        self.settings = settings
        self.stuck = plugins.observers("genro_asgi_envelope_stuck", server=server)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="genro-asgi-watchdog")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            self.check()

    def check(self) -> list[tuple[Envelope, str]]:
        """Report each envelope once per level it crosses; return what was reported."""
        reported = []
        for envelope in self.registry:
            if envelope.scope_type == "websocket":  # a connection is meant to stay open
                continue
            age = envelope.age
            if age >= self.settings.critical and envelope.stuck_level < 2:
                envelope.stuck_level = 2
                reported.append((envelope, CRITICAL))
            elif age >= self.settings.timeout and envelope.stuck_level < 1:
                envelope.stuck_level = 1
                reported.append((envelope, WARNING))
        for envelope, level in reported:
            log = logger.critical if level == CRITICAL else logger.warning
            log("request %s %s %s in flight for %.1fs", envelope.request_id, envelope.method,
                envelope.path, envelope.age)
            for plugin_name, observer in self.stuck:
                try:
                    observer(envelope, level)
                except Exception:
                    logger.exception("plugin %r failed in genro_asgi_envelope_stuck", plugin_name)
        return reported
