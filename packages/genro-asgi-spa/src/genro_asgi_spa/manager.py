"""The SPA manager: the registries, the page lifecycle, addressed delivery and the sweeper.

One per server (the spa plugin owns it). State lives in the backend; what this process keeps
itself is only its live pages (the WSX connection of each, its data subscriptions and its
token bucket), indexed by page, session, connection and user, so a delivery reaching this
process finds its pages with a dict lookup. Timers cost no task per page: one sweeper per
server expires grace periods, idle sessions and connections, and offline users, looking only
at the records this process holds (``backend.own``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from genro_toolbox import SignatureError, get_uuid, sign, verify

from genro_asgi_wsx import Publication

from .backend import (
    LEVELS,
    ConnectionRecord,
    DataLimitExceeded,
    Delivery,
    Level,
    PageRecord,
    SessionRecord,
    SpaBackend,
    Target,
    UserRecord,
)
from .errors import SpaError
from .stats import SpaStats
from .tree import check_path, covers, value_size

if TYPE_CHECKING:
    from genro_asgi import AsgiServer
    from genro_asgi.identity import Identity

    from .config import SpaConfig

logger = logging.getLogger("genro_asgi_spa")

EVENTS = "spa"  # the WSX subscription name every spa event carries
CHANGE = "spa.change"
MESSAGE = "spa.message"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOPIC = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,15}")
MAX_TOPIC = 200
# what a connection token signs before the id: a value signed with the same key for another
# purpose (an app reusing cookie_secret) never reads as a connection id
TOKEN_PURPOSE = "spa.connection:"
MAX_BUCKETS = 100_000  # token buckets kept (the oldest goes first past it)
SWEEP_SLICE = 500  # records the sweeper looks at between two turns of the event loop
ORPHAN_AFTER = 10.0  # seconds a page may be stored live before its register attaches it
_OWNER_FIELD = {"user": "user_id", "connection": "connection_id", "session": "session_id",
                "page": "page_id"}


class PageSocket(Protocol):
    """What the manager needs of a page's WSX connection (``WsxConnection``)."""

    def push_event(self, subscription: str, publication: Publication) -> bool: ...

    def on_close(self, callback: Callable[[Any], Any]) -> None: ...


class LivePage:
    """This process's side of a live page: its socket and its data subscriptions."""

    __slots__ = ("_next_sub", "record", "socket", "subscriptions")

    def __init__(self, record: PageRecord, socket: PageSocket) -> None:
        self.record = record
        self.socket = socket
        self.subscriptions: dict[str, tuple[str, str]] = {}  # id -> (level, path)
        self._next_sub = 0

    def new_subscription_id(self) -> str:
        self._next_sub += 1
        return f"d{self._next_sub}"

    def wants(self, level: str, path: str) -> bool:
        return any(lv == level and covers(p, path) for lv, p in self.subscriptions.values())


@dataclass(frozen=True, slots=True)
class PageContext:
    """The page a call came from, with its session, connection and user: what a handler
    reaches through ``await page_context(self.server, request)``. Its data methods address
    the caller's own trees."""

    manager: SpaManager
    page: PageRecord

    @property
    def page_id(self) -> str:
        return self.page.page_id

    @property
    def session_id(self) -> str:
        return self.page.session_id

    @property
    def connection_id(self) -> str:
        return self.page.connection_id

    @property
    def user_id(self) -> str:
        return self.page.user_id

    @property
    def anonymous(self) -> bool:
        """Whether the page's user is an anonymous visitor (``anon:<its connection id>``)."""
        return self.page.user_id == f"anon:{self.page.connection_id}"

    def owner(self, level: str) -> str:
        """The id owning this page's tree at ``level``."""
        if not isinstance(level, str) or level not in _OWNER_FIELD:
            raise SpaError("spa_bad_request", f"level must be one of {', '.join(LEVELS)}")
        return str(getattr(self.page, _OWNER_FIELD[level]))

    async def get(self, level: str, path: str = "", default: Any = None) -> Any:
        return await self.manager.get_data(level, self.owner(level), path, default)

    async def set(self, level: str, path: str, value: Any) -> int:
        return await self.manager.set_data(level, self.owner(level), path, value,
                                           anonymous=self.anonymous)

    async def delete(self, level: str, path: str = "") -> bool:
        return await self.manager.delete_data(level, self.owner(level), path)

    def summary(self) -> dict[str, Any]:
        return {"page_id": self.page_id, "session_id": self.session_id,
                "connection_id": self.connection_id, "user_id": self.user_id,
                "process_id": self.page.process_id}


class SpaManager:
    """Users, connections, sessions and pages of one server; see docs/spa.md."""

    def __init__(self, server: AsgiServer, config: SpaConfig, backend: SpaBackend,
                 clock: Callable[[], float] = time.time) -> None:
        self._server_ref = weakref.ref(server)  # the server owns this manager, not the reverse
        self.config = config
        self.backend = backend
        self.clock = clock
        secret = config.cookie_secret
        self._key = secret.get_secret_value() if secret is not None else secrets.token_hex(32)
        self.live: dict[str, LivePage] = {}  # page id -> live page, in this process
        self._by_socket: dict[int, LivePage] = {}  # id(socket) -> live page
        self._registering: set[int] = set()  # id(socket) of the registers in flight
        self._local: dict[str, dict[str, set[str]]] = {
            "session": {}, "connection": {}, "user": {}}
        self._sweeper: asyncio.Task[None] | None = None
        self._backlog = False  # a delivery left a page with a backlog: the sender yields
        # page id -> (tokens, when): the change rate of each page that changed something
        # here, over WSX or HTTP, live here or not (closing the socket does not reset it)
        self._buckets: dict[str, tuple[float, float]] = {}
        # user id -> (tokens, when): every page of the user, and its registers, together
        self._user_buckets: dict[str, tuple[float, float]] = {}
        self._read_buckets: dict[str, tuple[float, float]] = {}  # user id -> (bytes, when)
        self._user_locks: dict[str, list[Any]] = {}  # user id -> [lock, holders+waiters]
        # anonymous user ids admitted by a register that has not written their record yet
        # (on a backend that yields, concurrent first pages would all pass the count)
        self._anonymous_pending: dict[int, str] = {}  # id(socket) -> anonymous user id
        self._anonymous_refused = 0  # refusals since the last warning (one a minute at most)
        self._anonymous_warned_at: float | None = None
        self.stats = SpaStats()  # plain counters, read by the metrics collector

    @property
    def server(self) -> AsgiServer:
        server = self._server_ref()
        if server is None:
            raise RuntimeError("the server this SPA manager belonged to is gone")
        return server

    @property
    def process_id(self) -> str:
        return self.backend.process_id

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.backend.start(self._on_delivery)
        if self.config.allow_anonymous and await self.backend.anonymous_users() is None:
            logger.warning("spa: the backend %s cannot count anonymous users: "
                           "max_anonymous_users is not enforced", type(self.backend).__name__)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="spa-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self.backend.close()

    # -- connection cookie --------------------------------------------------------------------

    def connection_token(self, connection_id: str) -> str:
        """The signed value of the connection cookie for ``connection_id``."""
        return str(sign(TOKEN_PURPOSE + connection_id, self._key,
                        expires_in=self.config.cookie_max_age))

    def read_connection_token(self, token: str) -> str:
        """The connection id a signed token names; SpaError ``spa_bad_cookie`` when it does
        not verify (tampered, expired, signed with another key)."""
        if not isinstance(token, str) or not 0 < len(token) <= 512:
            raise SpaError("spa_bad_cookie", "the connection token is malformed")
        try:
            value = verify(token, self._key)
        except (SignatureError, ValueError, TypeError):
            value = None
        if not isinstance(value, str) or not value.startswith(TOKEN_PURPOSE) \
                or not _ID.fullmatch(value[len(TOKEN_PURPOSE):]):
            raise SpaError("spa_bad_cookie", "the connection cookie does not verify")
        return value[len(TOKEN_PURPOSE):]

    # -- registration -------------------------------------------------------------------------

    async def register(self, socket: PageSocket, identity: Identity | None,
                       token: str | None, page_id: Any = None, session_id: Any = None,
                       info: Any = None) -> dict[str, Any]:
        """Register a page on ``socket`` (new, or resumed when ``page_id`` names one this
        connection and user own that is live elsewhere, or in its grace period)."""
        key = id(socket)
        if key in self._by_socket:
            held = self._by_socket[key].record.page_id
            raise SpaError("spa_already_registered",
                           f"this connection already holds page {held}")
        if key in self._registering:  # WSX runs a socket's calls concurrently
            raise SpaError("spa_already_registered", "this connection is registering a page")
        self._registering.add(key)
        try:
            return await self._register(socket, identity, token, page_id, session_id, info)
        finally:
            self._registering.discard(key)
            self._anonymous_pending.pop(key, None)

    async def _register(self, socket: PageSocket, identity: Identity | None,
                        token: str | None, page_id: Any, session_id: Any,
                        info: Any) -> dict[str, Any]:
        for name, value in (("page_id", page_id), ("session_id", session_id)):
            if value is not None and not (isinstance(value, str) and _ID.fullmatch(value)):
                logger.warning("spa: a register with a malformed %s refused (user %r): %.80r",
                               name, identity.id if identity is not None else None, value)
                raise SpaError("spa_bad_request", f"{name} must be 1 to 64 characters of "
                               "letters, digits, '_' or '-'")
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise SpaError("spa_bad_request", "info must be an object")
        try:
            info_size = value_size(info)
        except ValueError as exc:
            raise SpaError("spa_bad_request", f"info: {exc}") from None
        if info_size > self.config.max_info_bytes:
            raise SpaError("spa_bad_request",
                           f"info is over {int(self.config.max_info_bytes)} bytes")
        now = self.clock()
        minted: str | None = None
        connection_id = self.read_connection_token(token) if token else None
        if identity is None and not self.config.allow_anonymous:
            raise SpaError("spa_identity_required", "an identity is required to open a page")
        connection = None
        if connection_id is not None:
            found = await self.backend.get("connection", connection_id)
            if isinstance(found, ConnectionRecord):
                connection = found
        if connection is not None:
            expected = identity.id if identity is not None \
                else f"anon:{connection.connection_id}"
            if connection.user_id != expected:
                # the browser's cookie belongs to another user (a logout and login, or an
                # anonymous visitor after a login): never that user's; a new connection
                logger.info("spa: connection %s of user %r presented by %r: a new connection",
                            connection.connection_id, connection.user_id, expected)
                connection, connection_id = None, None
        if connection_id is None:
            connection_id = get_uuid()
            minted = self.connection_token(connection_id)
        user_id = identity.id if identity is not None else f"anon:{connection_id}"
        # a new anonymous user is counted against max_anonymous_users before anything is
        # spent or written: a refused visitor leaves no record, bucket or lock behind
        if identity is None:
            await self._admit_anonymous(id(socket), user_id)
        self.spend_register(user_id)
        # the limits count what the backend holds, then write: one user's registers take
        # turns in this process, or concurrent ones on a backend that yields (NATS) all
        # pass the count (30 pages for a limit of 5 in a test)
        async with self._user_lock(user_id):
            if connection is None and identity is not None:  # one more connection for this user
                held = len(await self.backend.connections(user_id=user_id))
                if held >= self.config.max_connections_per_user:
                    logger.warning("spa: user %r holds %d connections: a new one refused",
                                   user_id, held)
                    raise SpaError("spa_too_many_connections", f"at most "
                                   f"{self.config.max_connections_per_user} browser connections "
                                   "per user (one with no session and no data goes at the next "
                                   "sweep)")
            if page_id is not None:
                found = await self._resumable(page_id, connection_id, user_id)
                record = replace(found, state="live", closed_at=None, process_id=self.process_id,
                                 last_seen=now)
                if not await self.backend.put_if(record, found):  # another socket won the race
                    raise SpaError("spa_page_in_use", "the page is live on another socket: "
                                   "register a new one")
                resumed = True
            else:
                record = await self._new_page(connection_id, user_id, session_id, info, now)
                await self.backend.put(record)
                resumed = False
            if connection is None:  # a known one is not written again: its idle time starts
                # when its last session goes (the sweeper), not at each page
                await self.backend.put(ConnectionRecord(connection_id, user_id, self.process_id,
                                                        now, now))
            self._attach(record, socket)
            came_online = await self._user_seen(user_id, identity is None, now)
            self._anonymous_pending.pop(id(socket), None)  # its record now counts it
        if not resumed:
            await self.server.plugins.call("genro_asgi_spa_page_opened", strict=False,
                                           server=self.server, page=record)
        if came_online is not None:
            await self.server.plugins.call("genro_asgi_spa_user_online", strict=False,
                                           server=self.server, user=came_online)
        answer = {"page_id": record.page_id, "session_id": record.session_id,
                  "connection_id": connection_id, "user_id": user_id,
                  "process_id": self.process_id, "resumed": resumed,
                  "master": await self._is_master(record)}
        if minted is not None:
            answer["connection_token"] = minted
        return answer

    async def _admit_anonymous(self, key: int, user_id: str) -> None:
        """Refuse a new anonymous user once the backend holds ``max_anonymous_users`` of them
        (503, ``Retry-After``); admitted, it holds a place until its register ends (``key``:
        the socket's), by which time its user record is written and counted."""
        held = await self.backend.anonymous_users()
        config = self.config
        if held is not None and held + len(self._anonymous_pending) \
                >= config.max_anonymous_users:
            # looked up only at the cap (on NATS a miss is a round trip): a returning
            # visitor, already held and counted, is never refused
            if await self.backend.get("user", user_id) is not None:
                return
            self._anonymous_refused += 1
            now = self.clock()
            if self._anonymous_warned_at is None or now - self._anonymous_warned_at >= 60:
                # a flood is logged once a minute, not once per visitor
                logger.warning("spa: %d anonymous users held (max_anonymous_users): %d new "
                               "anonymous visitors refused", held, self._anonymous_refused)
                self._anonymous_warned_at, self._anonymous_refused = now, 0
            raise SpaError("spa_anonymous_full", f"the server holds all the anonymous users it "
                           f"may ({config.max_anonymous_users}): sign in, or try later",
                           retry_after=config.anonymous_retry_after)
        # (a returning visitor below the cap holds a place too while it registers: counted
        # twice for those milliseconds, which can only refuse early, never admit past the cap)
        self._anonymous_pending[key] = user_id

    @asynccontextmanager
    async def _user_lock(self, user_id: str) -> AsyncIterator[None]:
        """This process's lock for one user's registers; it goes when nobody holds or waits
        for it."""
        found = self._user_locks.get(user_id)
        if found is None:
            found = self._user_locks[user_id] = [asyncio.Lock(), 0]
        found[1] += 1
        try:
            async with found[0]:
                yield
        finally:
            found[1] -= 1
            if not found[1]:
                del self._user_locks[user_id]

    async def _resumable(self, page_id: str, connection_id: str, user_id: str) -> PageRecord:
        found = await self.backend.get("page", page_id)
        if not isinstance(found, PageRecord):
            raise SpaError("spa_unknown_page", "no such page (its grace period may have "
                           "ended): register a new one")
        if found.user_id != user_id or found.connection_id != connection_id:
            logger.warning("spa: page %s refused: it belongs to another %s (caller user %r, "
                           "connection %s)", page_id,
                           "user" if found.user_id != user_id else "connection",
                           user_id, connection_id)
            raise SpaError("spa_foreign", "the page belongs to another connection or user")
        if found.state == "live" and (found.process_id != self.process_id
                                      or page_id in self.live):
            raise SpaError("spa_page_in_use", "the page is live on another socket: "
                           "register a new one")
        return found

    async def _new_page(self, connection_id: str, user_id: str, session_id: str | None,
                        info: dict[str, Any], now: float) -> PageRecord:
        config = self.config
        if len(await self.backend.pages(user_id=user_id)) >= config.max_pages_per_user:
            raise SpaError("spa_too_many_pages",
                           f"at most {config.max_pages_per_user} pages per user")
        if len(await self.backend.pages(connection_id=connection_id)) \
                >= config.max_pages_per_connection:
            raise SpaError("spa_too_many_pages",
                           f"at most {config.max_pages_per_connection} pages per connection")
        page_id = get_uuid()
        if session_id is not None:
            session = await self.backend.get("session", session_id)
            if not isinstance(session, SessionRecord):
                raise SpaError("spa_unknown_session", "no such session")
            if session.user_id != user_id or session.connection_id != connection_id:
                logger.warning("spa: session %s refused: it belongs to another connection or "
                               "user (caller user %r, connection %s)", session_id, user_id,
                               connection_id)
                raise SpaError("spa_foreign", "the session belongs to another connection or "
                               "user")
        else:
            held = len(await self.backend.sessions(user_id=user_id))
            if held >= config.max_sessions_per_user:
                logger.warning("spa: user %r holds %d sessions: a new one refused",
                               user_id, held)
                raise SpaError("spa_too_many_sessions", f"at most "
                               f"{config.max_sessions_per_user} sessions per user (one with no "
                               "page and no data goes at the next sweep)")
            session = SessionRecord(get_uuid(), connection_id, user_id, self.process_id,
                                    page_id, now, now)
        await self.backend.put(replace(session, last_seen=now))
        return PageRecord(page_id, session.session_id, connection_id, user_id,
                          self.process_id, "live", now, now, None, info)

    async def _is_master(self, record: PageRecord) -> bool:
        session = await self.backend.get("session", record.session_id)
        return isinstance(session, SessionRecord) and session.master_page_id == record.page_id

    async def _user_seen(self, user_id: str, anonymous: bool, now: float) -> UserRecord | None:
        """Mark the user online; the record when it was not (for the user_online hook)."""
        user = await self.backend.get("user", user_id)
        if not isinstance(user, UserRecord):
            user = UserRecord(user_id, self.process_id, anonymous, True, now, now)
            await self.backend.put(user)
            return user
        if user.online and user.idle_since is None:
            return None  # online with pages: nothing to write (one backend write less a page)
        seen = replace(user, online=True, idle_since=None, offline_at=None, last_seen=now)
        await self.backend.put(seen)
        return None if user.online else seen

    def _attach(self, record: PageRecord, socket: PageSocket) -> None:
        live = LivePage(record, socket)
        self.live[record.page_id] = live
        self._by_socket[id(socket)] = live
        for level in ("session", "connection", "user"):
            self._local[level].setdefault(getattr(record, _OWNER_FIELD[level]), set()).add(
                record.page_id)
        socket.on_close(self._socket_closed)

    def _detach(self, live: LivePage) -> None:
        record = live.record
        self.live.pop(record.page_id, None)
        self._by_socket.pop(id(live.socket), None)
        for level in ("session", "connection", "user"):
            owner = getattr(record, _OWNER_FIELD[level])
            pages = self._local[level].get(owner)
            if pages is not None:
                pages.discard(record.page_id)
                if not pages:
                    del self._local[level][owner]

    async def _socket_closed(self, socket: PageSocket) -> None:
        """The page's socket closed: the page keeps its state for the grace period."""
        live = self._by_socket.get(id(socket))
        if live is None or live.socket is not socket:
            return
        self._detach(live)
        record = await self.backend.get("page", live.record.page_id)
        if not isinstance(record, PageRecord) or record.process_id != self.process_id \
                or record.state != "live":
            return  # resumed elsewhere meanwhile, or already ended
        now = self.clock()
        waiting = replace(record, state="grace", closed_at=now, last_seen=now)
        if not await self.backend.put_if(waiting, record):
            return  # resumed elsewhere meanwhile
        if self.config.grace_period <= 0:
            await self._end_page(waiting, "expired")

    def page_of(self, socket: Any) -> PageContext | None:
        """The page registered on this WSX connection, or None."""
        live = self._by_socket.get(id(socket))
        if live is None or live.socket is not socket:
            return None
        return PageContext(self, live.record)

    async def unregister(self, context: PageContext) -> None:
        """End the caller's page now, without a grace period; its socket stays open."""
        live = self.live.get(context.page_id)
        if live is not None:
            self._detach(live)
        record = await self.backend.get("page", context.page_id)
        if isinstance(record, PageRecord):
            await self._end_page(record, "closed")

    async def _end_page(self, record: PageRecord, reason: str) -> None:
        now = self.clock()
        await self.backend.delete("page", record.page_id)
        await self.backend.data_drop("page", record.page_id)
        self._buckets.pop(record.page_id, None)
        session = await self.backend.get("session", record.session_id)
        if isinstance(session, SessionRecord):
            await self.backend.put(replace(session, last_seen=now))
        await self.server.plugins.call("genro_asgi_spa_page_closed", strict=False,
                                       server=self.server, page=record, reason=reason)

    # -- limits -------------------------------------------------------------------------------

    def spend(self, context: PageContext) -> None:
        """Take one token from the page's bucket and one from its user's (a change or a
        message); 429, taking none, when either is empty."""
        config, now = self.config, self.clock()
        page = _refill(self._buckets, context.page_id, config.change_rate,
                       config.change_burst, now)
        user = _refill(self._user_buckets, context.user_id, config.user_change_rate,
                       config.user_change_burst, now)
        if page < 1.0 or user < 1.0:
            self._buckets[context.page_id] = (page, now)
            self._user_buckets[context.user_id] = (user, now)
            rate, burst = (config.change_rate, config.change_burst) if page < 1.0 \
                else (config.user_change_rate, config.user_change_burst)
            raise SpaError("spa_rate_limited", f"more than {rate:g} changes per second "
                           f"(burst {burst}) {'on this page' if page < 1.0 else 'of this user'}")
        self._buckets[context.page_id] = (page - 1.0, now)
        self._user_buckets[context.user_id] = (user - 1.0, now)

    def spend_register(self, user_id: str) -> None:
        """Take one token from the user's bucket for a page register (new or resumed): a
        page registered anew starts with a full bucket of its own, its user's does not."""
        config, now = self.config, self.clock()
        user = _refill(self._user_buckets, user_id, config.user_change_rate,
                       config.user_change_burst, now)
        if user < 1.0:
            self._user_buckets[user_id] = (user, now)
            logger.warning("spa: user %r registers pages faster than user_change_rate: refused",
                           user_id)
            raise SpaError("spa_rate_limited", f"more than {config.user_change_rate:g} "
                           f"changes or page registers per second of this user (burst "
                           f"{config.user_change_burst})")
        self._user_buckets[user_id] = (user - 1.0, now)

    def check_read(self, context: PageContext) -> None:
        """Refuse a read (429) while the user's read bucket (bytes) is empty or in debt."""
        config, now = self.config, self.clock()
        tokens = _refill(self._read_buckets, context.user_id, float(config.read_bytes_rate),
                         int(config.read_bytes_burst), now)
        self._read_buckets[context.user_id] = (tokens, now)
        if tokens <= 0:
            raise SpaError("spa_rate_limited", f"more than {int(config.read_bytes_rate)} "
                           f"bytes read per second by this user (burst "
                           f"{int(config.read_bytes_burst)})")

    def pay_read(self, context: PageContext, value: Any) -> None:
        """Charge what a read answered to the user's read bucket (it may go into debt)."""
        tokens, when = self._read_buckets.get(context.user_id, (0.0, self.clock()))
        self._read_buckets[context.user_id] = (tokens - value_size(value), when)

    def check_path(self, path: Any) -> str:
        problem = check_path(path, self.config.max_path_length, self.config.max_path_depth)
        if problem is not None:
            raise SpaError("spa_bad_request", f"path {problem}")
        return str(path)

    @staticmethod
    def check_level(level: Any) -> Level:
        if not isinstance(level, str) or level not in _OWNER_FIELD:  # a list is unhashable
            raise SpaError("spa_bad_request", f"level must be one of {', '.join(LEVELS)}")
        return level  # type: ignore[return-value]

    # -- data ---------------------------------------------------------------------------------

    async def get_data(self, level: str, owner: str, path: str = "",
                       default: Any = None) -> Any:
        """The value at ``path`` of ``owner``'s tree at ``level`` (a copy), or ``default``."""
        return await self.backend.data_get(self.check_level(level), owner,
                                           self.check_path(path), default)

    async def set_data(self, level: str, owner: str, path: str, value: Any, *,
                       anonymous: bool = False) -> int:
        """Set a value and tell the pages under ``owner`` that subscribed to a covering
        path; the tree's new size in bytes. ``anonymous``: set by an anonymous visitor,
        refused past ``anonymous_data_share`` of ``max_total_data_bytes``."""
        lv, path = self.check_level(level), self.check_path(path)
        if not path:
            raise SpaError("spa_bad_request", "set needs a path (delete '' clears the tree)")
        total = await self.backend.data_total()
        config = self.config
        if total is not None and total >= config.max_total_data_bytes:
            logger.warning("spa: the server's data is full (%d bytes); a set refused", total)
            raise SpaError("spa_server_full", "the server holds all the data it may: try later")
        if anonymous and total is not None \
                and total >= config.max_total_data_bytes * config.anonymous_data_share:
            # not logged per set: a flood would log each; the refusals are counted by code
            raise SpaError("spa_server_full", "the server holds all the data anonymous "
                           "visitors may store: sign in, or try later")
        try:
            size = await self.backend.data_set(lv, owner, path, value,
                                               int(self.config.max_data_bytes))
        except DataLimitExceeded as exc:
            raise SpaError("spa_data_too_large", f"{level} data: {exc}") from None
        except ValueError as exc:
            raise SpaError("spa_bad_request", str(exc)) from None
        await self._publish(Delivery(lv, owner, CHANGE, {
            "level": lv, "path": path, "value": value, "deleted": False},
            level=lv, path=path, origin=self.process_id))
        return size

    async def delete_data(self, level: str, owner: str, path: str = "") -> bool:
        lv, path = self.check_level(level), self.check_path(path)
        found = await self.backend.data_delete(lv, owner, path)
        if found:
            await self._publish(Delivery(lv, owner, CHANGE, {
                "level": lv, "path": path, "value": None, "deleted": True},
                level=lv, path=path, origin=self.process_id))
        return found

    # -- delivery -----------------------------------------------------------------------------

    async def send(self, target: Target, target_id: str | None, topic: str, data: Any, *,
                   sender: PageContext | None = None) -> None:
        """Send ``data`` under ``topic`` to a page, the pages of a session, connection or
        user, or every page (``all``, ``target_id`` None), on every process."""
        await self._publish(self._message(target, target_id, topic, data, sender))

    async def send_to_path(self, level: str, path: str, topic: str, data: Any, *,
                           sender: PageContext | None = None) -> None:
        """Send to every page that subscribed, at ``level``, to a path covering ``path``."""
        lv, path = self.check_level(level), self.check_path(path)
        message = self._message("all", None, topic, data, sender)
        await self._publish(Delivery("all", None, MESSAGE, message.data, level=lv, path=path,
                                     origin=self.process_id))

    def _message(self, target: Target, target_id: str | None, topic: str, data: Any,
                 sender: PageContext | None) -> Delivery:
        if target not in ("page", "session", "connection", "user", "all"):
            raise SpaError("spa_bad_request", "to must be page, session, connection, user "
                           "or all")
        if (target == "all") != (target_id is None):
            raise SpaError("spa_bad_request", "an id is needed for every target but all")
        if not (isinstance(topic, str) and len(topic) <= MAX_TOPIC
                and _TOPIC.fullmatch(topic)):
            raise SpaError("spa_bad_request", "topic must be dot-separated tokens of letters, "
                           f"digits, '_' or '-', at most {MAX_TOPIC} characters")
        try:
            value_size(data)
        except ValueError as exc:
            raise SpaError("spa_bad_request", f"data: {exc}") from None
        origin = None if sender is None else {"user_id": sender.user_id,
                                              "page_id": sender.page_id}
        return Delivery(target, target_id, MESSAGE, {"topic": topic, "data": data,
                                                     "from": origin},
                        origin=self.process_id)

    async def _publish(self, delivery: Delivery) -> None:
        self.stats.delivery(delivery)
        try:
            await self.backend.publish(delivery)
        except SpaError:
            raise
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise SpaError("spa_unavailable", f"the backend cannot deliver now ({exc})") \
                from None
        if self._backlog:
            # a page was left with a backlog: let its writer send before the next delivery,
            # so a loop of deliveries never outruns a page that reads (as WSX's broker does)
            self._backlog = False
            await asyncio.sleep(0)

    def local_pages(self, delivery: Delivery) -> list[LivePage]:
        """This process's live pages a delivery is for."""
        target, owner = delivery.target, delivery.target_id
        if target == "all":
            pages = list(self.live.values())
        elif target == "page":
            found = self.live.get(owner) if owner is not None else None
            pages = [found] if found is not None else []
        else:
            ids = self._local[target].get(owner or "", ())
            pages = [self.live[i] for i in ids]
        if delivery.path is not None and delivery.level is not None:
            level, path = delivery.level, delivery.path
            pages = [p for p in pages if p.wants(level, path)]
        return pages

    def _on_delivery(self, delivery: Delivery) -> None:
        """The backend's sink: push the delivery to each of this process's pages it is for,
        one event each, the payload encoded once for all of them."""
        pages = self.local_pages(delivery)
        if not pages:
            return
        publication = Publication(delivery.channel, delivery.data)
        for live in pages:
            try:
                if live.socket.push_event(EVENTS, publication):
                    self._backlog = True
            except Exception:
                logger.exception("spa: delivery %s to page %s failed", delivery.id,
                                 live.record.page_id)
            else:
                self.stats.pushed += 1

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, context: PageContext, level: str, path: str) -> dict[str, Any]:
        live = self.live.get(context.page_id)
        if live is None:
            raise SpaError("spa_not_websocket", "subscribe needs the page's WebSocket")
        lv, path = self.check_level(level), self.check_path(path)
        if len(live.subscriptions) >= self.config.max_subscriptions:
            raise SpaError("spa_too_many_subscriptions",
                           f"at most {self.config.max_subscriptions} subscriptions per page")
        self.check_read(context)
        sid = live.new_subscription_id()
        live.subscriptions[sid] = (lv, path)
        value = await self.backend.data_get(lv, context.owner(lv), path)
        self.pay_read(context, value)
        return {"subscription": sid, "level": lv, "path": path, "value": value}

    def unsubscribe(self, context: PageContext, subscription: Any) -> None:
        live = self.live.get(context.page_id)
        if live is None or not isinstance(subscription, str) \
                or live.subscriptions.pop(subscription, None) is None:
            raise SpaError("spa_bad_request", "no such subscription on this page")

    # -- presence -----------------------------------------------------------------------------

    async def online_users(self) -> list[UserRecord]:
        return await self.backend.users(online=True)

    async def pages_of_user(self, user_id: str) -> list[PageRecord]:
        return await self.backend.pages(user_id=user_id)

    async def sessions_of_connection(self, connection_id: str) -> list[SessionRecord]:
        return await self.backend.sessions(connection_id=connection_id)

    # -- expiry -------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("spa: the sweep failed; the next one runs in %.1fs",
                                 self.config.sweep_interval)

    async def sweep(self) -> None:
        """Expire what is due among this process's own records (one pass).

        What has a live page here is skipped without asking the backend, and the pass lets
        the event loop run every ``SWEEP_SLICE`` records: with 10,000 live pages it costs a
        few ms, never one long stall of every client.
        """
        config, backend, now = self.config, self.backend, self.clock()
        local = self._local
        for index, record in enumerate(await backend.own("page")):
            if not index % SWEEP_SLICE:
                await asyncio.sleep(0)
            if not isinstance(record, PageRecord) or record.page_id in self.live:
                continue
            if record.state == "live" and record.page_id not in self.live \
                    and now - record.last_seen >= ORPHAN_AFTER:
                # stored live by a register that never attached it (its socket went while
                # the backend answered): it waits in its grace period like any closed page
                orphan = replace(record, state="grace", closed_at=now)
                if await backend.put_if(orphan, record):
                    logger.info("spa: page %s had no socket here: now in its grace period",
                                record.page_id)
            elif record.state == "grace" and record.closed_at is not None \
                    and now - record.closed_at >= config.grace_period:
                await self._end_page(record, "expired")
        # a record without children goes after its idle time when it holds data, at once when
        # it holds none (nothing would be lost: a cookie that comes back makes a new one), so
        # clients that open a page and leave cost only what they stored
        for index, record in enumerate(await backend.own("session")):
            if not index % SWEEP_SLICE:
                await asyncio.sleep(0)
            if isinstance(record, SessionRecord) and record.session_id not in local["session"] \
                    and not await backend.pages(session_id=record.session_id) \
                    and (now - record.last_seen >= config.session_idle
                         or not await backend.data_size("session", record.session_id)):
                await backend.delete("session", record.session_id)
                await backend.data_drop("session", record.session_id)
                connection = await backend.get("connection", record.connection_id)
                if isinstance(connection, ConnectionRecord):
                    await backend.put(replace(connection, last_seen=now))
        for index, record in enumerate(await backend.own("connection")):
            if not index % SWEEP_SLICE:
                await asyncio.sleep(0)
            if isinstance(record, ConnectionRecord) \
                    and record.connection_id not in local["connection"] \
                    and not await backend.sessions(connection_id=record.connection_id) \
                    and (now - record.last_seen >= config.connection_idle
                         or not await backend.data_size("connection", record.connection_id)):
                await backend.delete("connection", record.connection_id)
                await backend.data_drop("connection", record.connection_id)
        for index, record in enumerate(await backend.own("user")):
            if not index % SWEEP_SLICE:
                await asyncio.sleep(0)
            if isinstance(record, UserRecord) and not (
                    record.online and record.idle_since is None
                    and record.user_id in local["user"]):
                await self._sweep_user(record, now)

    async def _sweep_user(self, user: UserRecord, now: float) -> None:
        config, backend = self.config, self.backend
        if user.online:
            if await backend.pages(user_id=user.user_id):
                if user.idle_since is not None:
                    await backend.put(replace(user, idle_since=None))
                return
            if user.idle_since is None:
                user = replace(user, idle_since=now)
                await backend.put(user)
            idle_since = user.idle_since if user.idle_since is not None else now
            if now - idle_since < config.user_ttl:
                return
            offline = replace(user, online=False, offline_at=now)
            if not await backend.put_if(offline, user):  # back online meanwhile
                return
            await self.server.plugins.call("genro_asgi_spa_user_offline", strict=False,
                                           server=self.server, user=offline)
            user = offline
        if user.offline_at is None or await backend.pages(user_id=user.user_id):
            return
        if user.anonymous:
            # its connection and sessions go with it, anonymous_ttl after it went offline
            # (or, holding no data, at once): the user record, which max_anonymous_users
            # counts, is never gone while anything of the visitor is left
            sessions = await backend.sessions(user_id=user.user_id)
            connections = await backend.connections(user_id=user.user_id)
            if now - user.offline_at < config.anonymous_ttl and (
                    sessions or connections
                    or await backend.data_size("user", user.user_id)):
                return
            for session in sessions:
                await backend.delete("session", session.session_id)
                await backend.data_drop("session", session.session_id)
            for connection in connections:
                await backend.delete("connection", connection.connection_id)
                await backend.data_drop("connection", connection.connection_id)
        elif now - user.offline_at < config.user_retention \
                and await backend.data_size("user", user.user_id):
            return
        await backend.delete("user", user.user_id)
        await backend.data_drop("user", user.user_id)
        self._user_buckets.pop(user.user_id, None)  # full long since: nothing forgotten
        self._read_buckets.pop(user.user_id, None)


def _refill(buckets: dict[str, tuple[float, float]], key: str, rate: float, burst: int,
            now: float) -> float:
    """The tokens of ``key``'s bucket now, popped from ``buckets`` (the caller puts it back,
    last: the newest); a new bucket is full, and the oldest goes past ``MAX_BUCKETS``."""
    found = buckets.pop(key, None)
    if found is None:
        if len(buckets) >= MAX_BUCKETS:
            del buckets[next(iter(buckets))]
        return float(burst)
    return min(float(burst), found[0] + max(0.0, now - found[1]) * rate)
