"""How a route handler finds the page it was called from:
``await page_context(self.server, request)``.

Over WSX the page is the one registered on the call's connection. Over HTTP it is named by
the ``X-Spa-Page`` header and checked against the connection cookie and the caller's
identity: the page must belong to that connection and that user (live or in its grace
period), or the call is refused, as a forged page id over the socket is.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .backend import PageRecord
from .errors import SpaError
from .manager import _ID, PageContext, SpaManager

if TYPE_CHECKING:
    from genro_asgi import AsgiServer, Request

logger = logging.getLogger("genro_asgi_spa")

PAGE_HEADER = "x-spa-page"


def spa_of(server: AsgiServer) -> SpaManager:
    """The server's SPA manager; RuntimeError when the spa plugin is not enabled."""
    plugin = server.plugins.get("spa")
    manager = getattr(plugin, "manager", None)
    if not isinstance(manager, SpaManager):
        raise RuntimeError("the spa plugin is not enabled on this server")
    return manager


async def page_context(server: AsgiServer, request: Request) -> PageContext:
    """The caller's page, session, connection and user (a handler passes ``self.server`` and
    its ``request``); SpaError (401/403/404) when the call comes from no valid page."""
    return await manager_page_context(spa_of(server), request)


async def manager_page_context(manager: SpaManager, request: Request) -> PageContext:
    """``page_context`` with the manager already at hand (the spa routes)."""
    socket = request.scope.get("wsx.connection")
    if socket is not None:
        context = manager.page_of(socket)
        if context is None:
            raise SpaError("spa_no_page", "register a page first")
        return context
    page_id = request.headers.get(PAGE_HEADER)
    if not page_id:
        raise SpaError("spa_no_page", f"name the page in the {PAGE_HEADER} header")
    if not _ID.fullmatch(page_id):
        raise SpaError("spa_bad_request", "page_id must be 1 to 64 characters of letters, "
                       "digits, '_' or '-'")
    token = request.cookies.get(manager.config.cookie_name)
    if not token:
        raise SpaError("spa_no_page", "no connection cookie")
    connection_id = manager.read_connection_token(token)
    record = await manager.backend.get("page", page_id)
    if not isinstance(record, PageRecord):
        raise SpaError("spa_unknown_page", "no such page")
    identity = request.identity
    user_id = identity.id if identity is not None else f"anon:{connection_id}"
    if record.connection_id != connection_id or record.user_id != user_id:
        logger.warning("spa: page %s refused over HTTP: it belongs to another connection or "
                       "user (caller user %r, connection %s)", page_id, user_id, connection_id)
        raise SpaError("spa_foreign", "the page belongs to another connection or user")
    return PageContext(manager, record)
