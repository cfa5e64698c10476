"""The ``spa`` plugin: owns the backend, the SPA manager and its routes, and declares the spa
hooks.

Everything lives on the plugin instance (one per server), so two servers in one process never
share a page. The backend is built with the server (``backend: memory`` or a dotted path) and
bound to it, started at lifespan startup (the manager's sweeper with it) and closed at
shutdown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from genro_asgi import CliCommand, ConfigError, Plugin, hookimpl
from genro_asgi.components import build_component

from .backend import SpaBackend, backend_class
from .config import SpaConfig
from .hookspecs import SpaHookSpecs
from .manager import SpaManager
from .routes import SpaApp

if TYPE_CHECKING:
    from genro_asgi import AsgiServer


class SpaPlugin(Plugin):
    """The SPA manager; see docs/spa.md."""

    config_model = SpaConfig
    requires_core = ">=0.1,<0.2"
    hookspecs = SpaHookSpecs
    config: SpaConfig

    def __init__(self, server: AsgiServer, config: SpaConfig) -> None:
        super().__init__(server, config)
        backend = _make_backend(config)
        backend.bind(server)
        self.manager = SpaManager(server, config, backend)

    @hookimpl
    def genro_asgi_configure(self, server: AsgiServer) -> None:
        if server.plugins.get("wsx") is None:
            raise ConfigError("plugins.spa needs the wsx plugin: a page is a WSX connection "
                              "(add 'wsx: {}' under plugins)")
        # a browser asks for its connection cookie before it has authenticated the socket
        server.self_authenticating_paths.add(f"{self.config.path}/connection")
        # the browser client is public code, imported without credentials
        server.self_authenticating_paths.add(f"{self.config.path}/client.js")

    @hookimpl
    def genro_asgi_mount(self) -> Mapping[str, Any]:
        return {self.config.path: SpaApp(self.manager)}

    @hookimpl(optionalhook=True)
    def genro_asgi_metrics_collectors(self, registry: Any) -> None:
        """Declared by the metrics plugin (never imported here): the spa_* metrics."""
        from .collectors import SpaCollector

        registry.register(SpaCollector(self.manager))

    @hookimpl
    def genro_asgi_cli_commands(self) -> list[CliCommand]:
        from .cli import spa_command

        return [spa_command(self)]

    @hookimpl
    async def genro_asgi_startup(self) -> None:
        await self.manager.start()

    @hookimpl
    async def genro_asgi_shutdown(self) -> None:
        await self.manager.close()


def _make_backend(config: SpaConfig) -> SpaBackend:
    return build_component(backend_class(config.backend), config.backend_options,
                           "plugins.spa.backend", config.backend)
