"""The ``mcp`` plugin: an MCP server over Streamable HTTP, one per AsgiServer.

Everything lives on the plugin instance: the session store, the tool catalog and the
endpoint, mounted as a route at ``path``. The plugin has no middleware and no per-request
observer, so requests to other routes never reach it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from genro_asgi import Plugin, hookimpl

from .config import McpConfig
from .endpoint import McpEndpoint, McpTransport
from .protocol import McpProtocol
from .sessions import SessionStore

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

VERSION = "0.1.0"


class McpPlugin(Plugin):
    """Chosen routes as MCP tools; see docs/mcp.md."""

    config_model = McpConfig
    requires_core = ">=0.1,<0.2"
    config: McpConfig

    def __init__(self, server: AsgiServer, config: McpConfig) -> None:
        super().__init__(server, config)
        self.sessions = SessionStore(config.max_sessions, config.session_idle_timeout)
        self.protocol = McpProtocol(server, config, VERSION)
        self.transport = McpTransport(self.protocol, self.sessions, config,
                                      int(server.settings.server.max_body_size))

    @hookimpl
    def genro_asgi_mount(self) -> Mapping[str, Any]:
        return {self.config.path: McpEndpoint(self.transport)}

    @hookimpl
    def genro_asgi_startup(self) -> None:
        # every app is mounted by now: a pattern matching nothing or two tools with one
        # name stop the server here, not at the first client's request
        _ = self.protocol.catalog

    @hookimpl
    def genro_asgi_shutdown(self) -> None:
        self.sessions.clear()
