"""The hooks this plugin declares, so other plugins follow pages and users without importing
it. Each is documented on its own page under docs/hooks/."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genro_asgi import hookspec

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

    from .backend import PageRecord, UserRecord


class SpaHookSpecs:
    """Hook specifications added to the plugin manager when the spa plugin is loaded."""

    @hookspec
    async def genro_asgi_spa_page_opened(self, server: AsgiServer, page: PageRecord) -> None:
        """A new page registered (not a resume). May be async."""

    @hookspec
    async def genro_asgi_spa_page_closed(self, server: AsgiServer, page: PageRecord,
                                         reason: str) -> None:
        """A page ended for good: ``reason`` is ``expired`` (its grace period passed) or
        ``closed`` (the page unregistered). May be async."""

    @hookspec
    async def genro_asgi_spa_user_online(self, server: AsgiServer, user: UserRecord) -> None:
        """A user without pages opened one. May be async."""

    @hookspec
    async def genro_asgi_spa_user_offline(self, server: AsgiServer, user: UserRecord) -> None:
        """A user had no page for ``user_ttl`` seconds. May be async."""
