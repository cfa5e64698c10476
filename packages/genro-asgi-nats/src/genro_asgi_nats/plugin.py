"""The ``nats`` plugin: owns the server's one NATS connection (``self.link``), provides the
executor's ``remote`` pool kind and the ``genro-asgi worker`` command.

Started before the other plugins (so the wsx broker finds the connection up) and stopped after
them (so they can still publish while they shut down): ``tryfirst`` on both hooks, as the
shutdown runs in reverse order.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from genro_asgi import CliCommand, Plugin, hookimpl

from .config import NatsConfig
from .connection import NatsLink

if TYPE_CHECKING:
    from genro_asgi import AsgiServer
    from genro_asgi_executor.config import PoolConfig
    from genro_asgi_executor.pools import Pool

    from .remote import RemotePool


class NatsPlugin(Plugin):
    """One NATS connection per server; see docs/nats.md."""

    config_model = NatsConfig
    requires_core = ">=0.1,<0.2"
    config: NatsConfig

    def __init__(self, server: AsgiServer, config: NatsConfig) -> None:
        super().__init__(server, config)
        self.link = NatsLink(config, server.server_dir)
        self.remote_pools: list[RemotePool] = []

    @hookimpl(tryfirst=True)
    async def genro_asgi_startup(self) -> None:
        await self.link.start()

    @hookimpl(tryfirst=True)
    async def genro_asgi_shutdown(self) -> None:
        await self.link.close()

    @hookimpl(optionalhook=True)
    def genro_asgi_executor_pool_kinds(self) -> Mapping[str, Callable[[str, PoolConfig], Pool]]:
        from .remote import RemotePool

        def remote(name: str, config: PoolConfig) -> Pool:
            pool = RemotePool(name, config, self.link)
            self.remote_pools = [*(p for p in self.remote_pools if p.name != name), pool]
            return pool

        return {"remote": remote}

    @hookimpl(optionalhook=True)
    def genro_asgi_metrics_collectors(self, registry: Any) -> None:
        from .collectors import NatsCollector

        registry.register(NatsCollector(self))

    @hookimpl
    def genro_asgi_cli_commands(self) -> list[CliCommand]:
        from . import worker

        def link() -> NatsLink:  # a worker never starts degraded: it is nothing without NATS
            return NatsLink(self.config.model_copy(update={"required": True}),
                            self.server.server_dir)

        def run(args: argparse.Namespace) -> int:
            return worker.run_command(args, link)

        return [CliCommand("worker", "run the jobs of a remote executor pool: "
                           "genro-asgi worker DIR --pool NAME", run, worker.configure)]


__all__ = ["NatsPlugin"]
