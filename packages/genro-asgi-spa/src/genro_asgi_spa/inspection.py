"""Inspection routes, ``<path>/inspect/users|pages|tree``: what ``genro-asgi spa`` lists.

They are off (404) until ``inspect_auth`` (a tag rule on the auth plugin's identity) or
``inspect_token`` (a Bearer secret) is configured; then a caller without either is a 401 and
an identity whose tags miss the rule a 403. Answers are bounded: at most ``inspect_max_rows``
rows (users, pages, or tree nodes), and at most ``inspect_max_bytes`` of data values in one
tree; what is left out is said (``truncated``, ``data_omitted``), never silently dropped.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from genro_toolbox import tags_match

from genro_asgi import AsgiApplication, HTTPException, NotFound, Request, route

from .backend import ConnectionRecord, PageRecord, SessionRecord, UserRecord

if TYPE_CHECKING:
    from .manager import SpaManager

MAX_USER_ID = 256  # characters of a ?user= filter; longer cannot be an identity we hold


class InspectionApp(AsgiApplication):
    """GET routes listing the registries of the whole application (every process the
    backend sees), for operators; see docs/spa.md, "Inspection"."""

    def __init__(self, manager: SpaManager) -> None:
        super().__init__()
        self.manager = manager

    def _authorize(self, request: Request) -> None:
        config = self.manager.config
        token = config.inspect_token.get_secret_value() if config.inspect_token else None
        if token is None and config.inspect_auth is None:
            raise NotFound(detail="spa inspection is off: set plugins.spa.inspect_auth (a tag "
                                  "rule) or plugins.spa.inspect_token")
        if token is not None:
            sent = request.headers.get("authorization", "").encode("latin-1", "replace")
            if hmac.compare_digest(sent, f"Bearer {token}".encode()):
                return
        identity = request.identity
        if config.inspect_auth is None or identity is None:
            raise HTTPException(401, detail="spa inspection needs a credential",
                                headers={"www-authenticate": 'Bearer realm="spa-inspect"'})
        if not tags_match(config.inspect_auth, set(identity.tags)):
            raise HTTPException(403, detail="the identity's tags do not satisfy "
                                            "plugins.spa.inspect_auth")

    @staticmethod
    def _user_filter(user: str | None) -> str | None:
        if user is not None and (user == "" or len(user) > MAX_USER_ID):
            raise HTTPException(400, detail=f"user must be 1 to {MAX_USER_ID} characters")
        return user

    @route(methods=["GET"])
    async def users(self, request: Request, online: bool | None = None) -> dict[str, Any]:
        """Users (``online``: only those online or offline) with their home process and
        their number of pages."""
        self._authorize(request)
        backend = self.manager.backend
        users = sorted(await backend.users(online=online), key=lambda u: u.user_id)
        counts: dict[str, int] = defaultdict(int)
        for page in await backend.pages():
            counts[page.user_id] += 1
        rows, truncated = _bounded(users, self.manager.config.inspect_max_rows)
        return {"users": [_user_row(u, counts[u.user_id]) for u in rows],
                "total": len(users), "truncated": truncated, "now": self.manager.clock()}

    @route(methods=["GET"])
    async def pages(self, request: Request, user: str | None = None) -> dict[str, Any]:
        """Pages (live and in their grace period), of one user or of everyone."""
        self._authorize(request)
        backend = self.manager.backend
        found = await backend.pages(user_id=self._user_filter(user))
        found.sort(key=lambda p: (p.user_id, p.created_at, p.page_id))
        rows, truncated = _bounded(found, self.manager.config.inspect_max_rows)
        return {"pages": [_page_row(p) for p in rows], "total": len(found),
                "truncated": truncated, "now": self.manager.clock()}

    @route(methods=["GET"])
    async def tree(self, request: Request, user: str | None = None,
                   data: bool = False) -> dict[str, Any]:
        """The registry tree user > connection > session > page, each node with the bytes
        of its data tree (and its values with ``data``)."""
        self._authorize(request)
        return await TreeBuilder(self.manager, data).build(self._user_filter(user))


class TreeBuilder:
    """One tree answer: four backend queries, then one ``data_size`` (and with ``data`` one
    ``data_get``) per node shown, at most ``inspect_max_rows`` nodes."""

    def __init__(self, manager: SpaManager, with_data: bool) -> None:
        self.backend = manager.backend
        self.clock = manager.clock
        self.rows_left = manager.config.inspect_max_rows
        self.bytes_left = int(manager.config.inspect_max_bytes) if with_data else 0
        self.with_data = with_data
        self.truncated = False
        self.data_omitted = False

    async def build(self, user_id: str | None) -> dict[str, Any]:
        backend = self.backend
        users = await backend.users()
        if user_id is not None:
            users = [u for u in users if u.user_id == user_id]
        connections: dict[str, list[ConnectionRecord]] = defaultdict(list)
        for connection in await backend.connections(user_id=user_id):
            connections[connection.user_id].append(connection)
        sessions: dict[str, list[SessionRecord]] = defaultdict(list)
        for session in await backend.sessions(user_id=user_id):
            sessions[session.connection_id].append(session)
        pages: dict[str, list[PageRecord]] = defaultdict(list)
        for page in await backend.pages(user_id=user_id):
            pages[page.session_id].append(page)
        out = []
        for user in sorted(users, key=lambda u: u.user_id):
            node = await self._node("user", user.user_id, _user_row(user, None))
            if node is None:
                break
            node["connections"] = []
            for connection in sorted(connections[user.user_id], key=lambda c: c.created_at):
                cnode = await self._node("connection", connection.connection_id, {
                    "connection_id": connection.connection_id,
                    "process_id": connection.process_id, "last_seen": connection.last_seen})
                if cnode is None:
                    break
                node["connections"].append(cnode)
                cnode["sessions"] = []
                for session in sorted(sessions[connection.connection_id],
                                      key=lambda s: s.created_at):
                    snode = await self._node("session", session.session_id, {
                        "session_id": session.session_id, "process_id": session.process_id,
                        "master_page_id": session.master_page_id,
                        "last_seen": session.last_seen})
                    if snode is None:
                        break
                    cnode["sessions"].append(snode)
                    snode["pages"] = []
                    for page in sorted(pages[session.session_id], key=lambda p: p.created_at):
                        pnode = await self._node("page", page.page_id, _page_row(page))
                        if pnode is None:
                            break
                        snode["pages"].append(pnode)
            out.append(node)
        return {"users": out, "truncated": self.truncated, "data_omitted": self.data_omitted,
                "now": self.clock()}

    async def _node(self, level: Any, owner: str, row: dict[str, Any]
                    ) -> dict[str, Any] | None:
        if self.rows_left <= 0:
            self.truncated = True
            return None
        self.rows_left -= 1
        size = await self.backend.data_size(level, owner)
        row["data_bytes"] = size
        if self.with_data:
            if size <= self.bytes_left:
                value = await self.backend.data_get(level, owner, "")
                self.bytes_left -= size
                row["data"] = value
            else:
                self.data_omitted = True
                row["data"] = None
                row["data_omitted"] = True
        return row


def _bounded(items: list[Any], limit: int) -> tuple[list[Any], bool]:
    return items[:limit], len(items) > limit


def _user_row(user: UserRecord, pages: int | None) -> dict[str, Any]:
    row: dict[str, Any] = {"user_id": user.user_id, "process_id": user.process_id,
                           "online": user.online, "anonymous": user.anonymous,
                           "last_seen": user.last_seen, "offline_at": user.offline_at}
    if pages is not None:
        row["pages"] = pages
    return row


def _page_row(page: PageRecord) -> dict[str, Any]:
    return {"page_id": page.page_id, "user_id": page.user_id, "session_id": page.session_id,
            "connection_id": page.connection_id, "state": page.state,
            "process_id": page.process_id, "created_at": page.created_at,
            "last_seen": page.last_seen, "closed_at": page.closed_at, "info": page.info}
