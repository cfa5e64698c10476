"""The spa routes (mounted at ``path``, default ``/_spa``): the wire protocol of docs/spa.md.

Each is an ordinary genro-asgi route, so a page calls it over WSX exactly as any route, and
HTTP reaches the ones that do not need the socket (the page then named by ``X-Spa-Page``).
Every level's owner is the caller's own: nothing here reaches another user's data.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from genro_toolbox import get_uuid, tags_match

from genro_asgi import AsgiApplication, JSONResponse, Request, Response, route

from .backend import PageRecord, SessionRecord, UserRecord
from .client_script import ClientScript
from .context import manager_page_context
from .errors import SpaError
from .inspection import InspectionApp
from .manager import PageContext
from .stats import counts_refusals
from .tree import DataLimitExceeded, measure

if TYPE_CHECKING:
    from .manager import SpaManager

logger = logging.getLogger("genro_asgi_spa")


class SpaApp(AsgiApplication):
    """The routes a page calls; see docs/spa.md, "Wire protocol"."""

    def __init__(self, manager: SpaManager) -> None:
        super().__init__()
        self.manager = manager
        self.script = ClientScript(manager)
        # <path>/inspect/...: a branch (a second mount under this one's prefix would collide)
        self.inspection = InspectionApp(manager)
        self.add_branches({"name": "inspect", "instance": self.inspection})

    async def _page(self, request: Request) -> PageContext:
        return await manager_page_context(self.manager, request)

    # -- pages --------------------------------------------------------------------------------

    @route()
    @counts_refusals
    async def register(self, request: Request, page_id: Any = None, session_id: Any = None,
                       info: Any = None, connection: Any = None) -> dict[str, Any]:
        socket = request.scope.get("wsx.connection")
        if socket is None:
            raise SpaError("spa_not_websocket", "register over the page's WebSocket")
        manager = self.manager
        token = connection if connection is not None \
            else request.cookies.get(manager.config.cookie_name)
        if token is not None and not isinstance(token, str):
            raise SpaError("spa_bad_request", "connection must be the connection token")
        try:
            return await manager.register(socket, request.identity, token or None,
                                          page_id, session_id, info)
        except SpaError as exc:
            if exc.code == "spa_bad_cookie":
                identity = request.identity
                logger.warning("spa: a connection cookie that does not verify, from %s "
                               "(user %r)", request.client, identity.id if identity else None)
            raise

    @route()
    @counts_refusals
    async def unregister(self, request: Request) -> dict[str, Any]:
        context = await self._page(request)
        await self.manager.unregister(context)
        return {"page_id": context.page_id}

    @route()
    @counts_refusals
    async def whoami(self, request: Request) -> dict[str, Any]:
        return (await self._page(request)).summary()

    # -- data ---------------------------------------------------------------------------------

    @route()
    @counts_refusals
    async def subscribe(self, request: Request, level: Any, path: Any = "") -> dict[str, Any]:
        if request.scope.get("wsx.connection") is None:
            raise SpaError("spa_not_websocket", "subscribe over the page's WebSocket")
        return await self.manager.subscribe(await self._page(request), level, path)

    @route()
    @counts_refusals
    async def unsubscribe(self, request: Request, subscription: Any) -> dict[str, Any]:
        self.manager.unsubscribe(await self._page(request), subscription)
        return {"subscription": subscription}

    @route()
    @counts_refusals
    async def get(self, request: Request, level: Any, path: Any = "") -> Any:
        context = await self._page(request)
        self.manager.check_level(level)
        self.manager.check_read(context)
        value = await context.get(level, path)
        self.manager.pay_read(context, value)
        return value

    @route()
    @counts_refusals
    async def set(self, request: Request, level: Any, path: Any, value: Any = None
                  ) -> dict[str, Any]:
        context = await self._page(request)
        self.manager.check_level(level)
        self.manager.check_path(path)  # malformed input costs no token
        self.manager.spend(context)
        return {"size": await context.set(level, path, value)}

    @route()
    @counts_refusals
    async def delete(self, request: Request, level: Any, path: Any = "") -> dict[str, Any]:
        context = await self._page(request)
        self.manager.check_level(level)
        self.manager.check_path(path)
        self.manager.spend(context)
        return {"deleted": await context.delete(level, path)}

    # -- messages -----------------------------------------------------------------------------

    @route()
    @counts_refusals
    async def send(self, request: Request, to: Any, topic: Any, data: Any = None,
                   id: Any = None) -> dict[str, Any]:
        context = await self._page(request)
        manager = self.manager
        if to == "page":
            if not isinstance(id, str):
                raise SpaError("spa_bad_request", "to: page needs the page's id")
            record = await manager.backend.get("page", id) if len(id) <= 64 else None
            if not isinstance(record, PageRecord):
                raise SpaError("spa_unknown_page", "no such page")
            if record.user_id != context.user_id:
                logger.warning("spa: page %s (user %r) tried to send to page %s of another "
                               "user", context.page_id, context.user_id, id)
                raise SpaError("spa_foreign", "a page may send only to its own user's pages")
            target_id = id
        elif to in ("session", "connection", "user"):
            target_id = context.owner(to)
            if id is not None and id != target_id:
                logger.warning("spa: page %s (user %r) tried to send to %s %r", context.page_id,
                               context.user_id, to, id)
                raise SpaError("spa_foreign", f"a page may send only to its own {to}")
        else:
            raise SpaError("spa_bad_request", "to must be page, session, connection or user")
        limit = int(manager.config.max_message_bytes)
        try:
            measure(0, data, limit)
        except DataLimitExceeded as exc:
            logger.info("spa: page %s (user %r) sent a message over %d bytes: refused",
                        context.page_id, context.user_id, limit)
            raise SpaError("spa_message_too_large", f"data: {exc}") from None
        except ValueError as exc:
            raise SpaError("spa_bad_request", f"data: {exc}") from None
        manager.spend(context)
        await manager.send(to, target_id, topic, data, sender=context)
        return {"sent": True}

    # -- presence -----------------------------------------------------------------------------

    def _may_see_others(self, request: Request) -> None:
        rule = self.manager.config.presence_auth
        if rule is None:
            return
        identity = request.identity
        if identity is None or not tags_match(rule, set(identity.tags)):
            raise SpaError("spa_forbidden", "listing other users needs the presence_auth rule")

    @route()
    @counts_refusals
    async def pages(self, request: Request, user_id: Any = None) -> list[dict[str, Any]]:
        context = await self._page(request)
        if user_id is not None and user_id != context.user_id:
            self._may_see_others(request)
            if not isinstance(user_id, str):
                raise SpaError("spa_bad_request", "user_id must be a string")
        records = await self.manager.pages_of_user(user_id or context.user_id)
        return [_page_summary(p) for p in sorted(records, key=lambda p: p.created_at)]

    @route()
    @counts_refusals
    async def sessions(self, request: Request, connection_id: Any = None
                       ) -> list[dict[str, Any]]:
        context = await self._page(request)
        if connection_id is not None and connection_id != context.connection_id:
            self._may_see_others(request)
            if not isinstance(connection_id, str):
                raise SpaError("spa_bad_request", "connection_id must be a string")
        cid = connection_id or context.connection_id
        sessions = await self.manager.sessions_of_connection(cid)
        pages = await self.manager.backend.pages(connection_id=cid)
        return [_session_summary(s, [p for p in pages if p.session_id == s.session_id])
                for s in sorted(sessions, key=lambda s: s.created_at)]

    @route()
    @counts_refusals
    async def online(self, request: Request) -> list[dict[str, Any]]:
        await self._page(request)
        self._may_see_others(request)
        users = await self.manager.online_users()
        return [await self._user_summary(u) for u in sorted(users, key=lambda u: u.user_id)]

    async def _user_summary(self, user: UserRecord) -> dict[str, Any]:
        pages = await self.manager.pages_of_user(user.user_id)
        return {"user_id": user.user_id, "process_id": user.process_id, "pages": len(pages)}

    # -- the browser client -------------------------------------------------------------------

    @route(name="client.js", methods=["GET"], media_type="text/javascript")
    def client_js(self) -> Response:
        return self.script.response()

    # -- the connection cookie ----------------------------------------------------------------

    @route(methods=["GET"])
    async def connection(self, request: Request) -> JSONResponse:
        manager = self.manager
        config = manager.config
        token = request.cookies.get(config.cookie_name)
        connection_id = None
        if token:
            try:
                connection_id = manager.read_connection_token(token)
            except SpaError:
                logger.warning("spa: a connection cookie that does not verify, from %s: a new "
                               "one", request.client)
        headers: dict[str, str] = {"cache-control": "no-store"}
        if connection_id is None:
            connection_id = get_uuid()
            secure = config.cookie_secure
            if secure is None:
                secure = request.scope.get("scheme") in ("https", "wss")
            headers["set-cookie"] = (
                f"{config.cookie_name}={manager.connection_token(connection_id)}; Path=/; "
                f"Max-Age={config.cookie_max_age}; HttpOnly; SameSite=Lax"
                + ("; Secure" if secure else ""))
        return JSONResponse({"connection_id": connection_id}, headers=headers)


def _page_summary(page: PageRecord) -> dict[str, Any]:
    return {"page_id": page.page_id, "session_id": page.session_id,
            "connection_id": page.connection_id, "state": page.state,
            "process_id": page.process_id, "info": page.info}


def _session_summary(session: SessionRecord, pages: list[PageRecord]) -> dict[str, Any]:
    return {"session_id": session.session_id, "master_page_id": session.master_page_id,
            "pages": [_page_summary(p) for p in pages]}
