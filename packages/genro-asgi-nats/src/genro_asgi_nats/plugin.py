"""The ``nats`` plugin: owns the server's one NATS connection (``self.link``).

Started before the other plugins (so the wsx broker finds the connection up) and stopped after
them (so they can still publish while they shut down): ``tryfirst`` on both hooks, as the
shutdown runs in reverse order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genro_asgi import Plugin, hookimpl

from .config import NatsConfig
from .connection import NatsLink

if TYPE_CHECKING:
    from genro_asgi import AsgiServer


class NatsPlugin(Plugin):
    """One NATS connection per server; see docs/nats.md."""

    config_model = NatsConfig
    requires_core = ">=0.1,<0.2"
    config: NatsConfig

    def __init__(self, server: AsgiServer, config: NatsConfig) -> None:
        super().__init__(server, config)
        self.link = NatsLink(config, server.server_dir)

    @hookimpl(tryfirst=True)
    async def genro_asgi_startup(self) -> None:
        await self.link.start()

    @hookimpl(tryfirst=True)
    async def genro_asgi_shutdown(self) -> None:
        await self.link.close()
