"""The hooks this plugin declares, so other plugins publish and authorize without importing it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genro_asgi import hookspec

if TYPE_CHECKING:
    from genro_asgi import AsgiServer
    from genro_asgi.identity import Identity


class WsxHookSpecs:
    """Hook specifications added to the plugin manager when the wsx plugin is loaded."""

    @hookspec
    async def genro_asgi_wsx_publish(self, server: AsgiServer, channel: str, data: Any) -> None:
        """Publish ``data`` on ``channel`` to the WSX subscribers. Implemented by wsx itself.

        Call it with ``await server.plugins.call("genro_asgi_wsx_publish", strict=False,
        server=server, channel=..., data=...)``: with wsx off there is no implementation and
        the call does nothing.
        """

    @hookspec(firstresult=True)
    async def genro_asgi_wsx_authorize_channel(self, server: AsgiServer,
                                               identity: Identity | None,
                                               channel: str) -> bool | None:
        """May ``identity`` subscribe to ``channel`` (a pattern)? False refuses; the first
        non-None answer wins; None from every plugin allows. May be async."""
