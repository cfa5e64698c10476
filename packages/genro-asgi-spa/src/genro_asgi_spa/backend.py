"""Where the SPA manager keeps its state: the backend interface and the in-memory backend.

The manager never touches shared memory: every record, every data tree and every delivery
goes through a ``SpaBackend``, whose methods are all async, so a network backend (NATS: KV
buckets for the records and presence, subjects for the deliveries) fits the same interface.
Every record carries ``process_id``, the process that holds it (for a user: its home
process, which a worker pool with user affinity will pin it to).

Rules a backend keeps (the memory one trivially):

- ``put`` replaces a record whole; ``get`` of an unknown key is None; ``delete`` of an unknown
  key is a no-op. Records are plain dataclasses; ``to_dict``/``record_from_dict`` turn them
  into JSON-friendly dicts and back, for a backend that stores bytes.
- ``publish(delivery)`` hands the delivery to the sink given to ``start`` **once in every
  process** (this one included). The sink resolves the process's own live pages, so each page
  gets each delivery once: a page lives in exactly one process at a time.
- The sweeper of each process expires only the records whose ``process_id`` is its own
  (``own``), so no record is expired twice.
- Data trees: one per (level, owner id). ``data_set`` refuses, changing nothing, a value that
  would take the tree past ``max_bytes`` (``DataLimitExceeded``).

Select it in config like wsx selects its broker: ``backend: memory`` (the default) or
``backend: pkg.module:Class`` with ``backend_options`` as keyword arguments.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from genro_toolbox import get_uuid

from genro_asgi.components import component_class

from .tree import DataLimitExceeded, DataTree

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

__all__ = ["LEVELS", "ConnectionRecord", "DataLimitExceeded", "Delivery", "MemoryBackend",
           "PageRecord", "Record", "RecordKind", "SessionRecord", "SpaBackend", "UserRecord",
           "backend_class", "record_from_dict"]

RecordKind: TypeAlias = Literal["user", "connection", "session", "page"]
Level: TypeAlias = Literal["user", "connection", "session", "page"]
LEVELS: tuple[Level, ...] = ("user", "connection", "session", "page")
PageState: TypeAlias = Literal["live", "grace"]
Target: TypeAlias = Literal["page", "session", "connection", "user", "all"]


@dataclass(slots=True)
class UserRecord:
    """A user with pages (online) or recently without (offline since ``offline_at``)."""

    user_id: str
    process_id: str  # the home process
    anonymous: bool = False
    online: bool = True
    created_at: float = 0.0
    last_seen: float = 0.0
    idle_since: float | None = None  # the last page ended; offline after user_ttl
    offline_at: float | None = None  # went offline; record and data dropped after retention
    kind: RecordKind = field(default="user", init=False, repr=False)

    @property
    def key(self) -> str:
        return self.user_id


@dataclass(slots=True)
class ConnectionRecord:
    """A browser or device, named by the signed ``connection_id`` cookie."""

    connection_id: str
    user_id: str
    process_id: str
    created_at: float = 0.0
    last_seen: float = 0.0
    kind: RecordKind = field(default="connection", init=False, repr=False)

    @property
    def key(self) -> str:
        return self.connection_id


@dataclass(slots=True)
class SessionRecord:
    """A master page and its iframes."""

    session_id: str
    connection_id: str
    user_id: str
    process_id: str
    master_page_id: str
    created_at: float = 0.0
    last_seen: float = 0.0
    kind: RecordKind = field(default="session", init=False, repr=False)

    @property
    def key(self) -> str:
        return self.session_id


@dataclass(slots=True)
class PageRecord:
    """One page: ``live`` while its socket is open, ``grace`` for ``grace_period`` after."""

    page_id: str
    session_id: str
    connection_id: str
    user_id: str
    process_id: str
    state: PageState = "live"
    created_at: float = 0.0
    last_seen: float = 0.0
    closed_at: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    kind: RecordKind = field(default="page", init=False, repr=False)

    @property
    def key(self) -> str:
        return self.page_id


Record: TypeAlias = UserRecord | ConnectionRecord | SessionRecord | PageRecord
_CLASSES: dict[str, type[Any]] = {"user": UserRecord, "connection": ConnectionRecord,
                                  "session": SessionRecord, "page": PageRecord}


def to_dict(record: Record) -> dict[str, Any]:
    """A JSON-friendly dict of ``record`` (with its ``kind``)."""
    return asdict(record)


def record_from_dict(data: dict[str, Any]) -> Record:
    """The record ``to_dict`` made; ValueError for an unknown kind or missing fields."""
    values = dict(data)
    cls = _CLASSES.get(values.pop("kind", None))
    if cls is None:
        raise ValueError(f"not a record: kind {data.get('kind')!r}")
    try:
        return cls(**values)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise ValueError(f"not a {cls.__name__}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Something for some pages: an addressed message or a data change.

    ``target``/``target_id`` name the pages (a page, the pages of a session, of a connection,
    of a user, or ``all`` with ``target_id`` None). With ``path`` set, only those of them that
    subscribed, at ``level``, to a path covering ``path`` (or covered by it) get it: a data
    change is delivered this way, and so is a message to the subscribers of a data path.
    ``channel`` is the WSX event channel (``spa.message``, ``spa.change``); ``data`` its
    payload (TYTX-encodable). ``id`` is unique per delivery (a network backend may use it to
    drop duplicates); ``origin`` the sending process.
    """

    target: Target
    target_id: str | None
    channel: str
    data: Any
    level: Level | None = None
    path: str | None = None
    origin: str = ""
    id: str = field(default_factory=get_uuid)


DeliverySink = Callable[[Delivery], None]
"""Called on the event loop for each delivery reaching this process; must not block."""


class SpaBackend(ABC):
    """Records, presence, data trees and delivery for one server. All methods async."""

    process_id: str
    """This process's id, written into every record it creates (unique per server instance)."""

    def bind(self, server: AsgiServer) -> None:
        """Called once by the spa plugin right after the backend is built (before ``start``):
        a network backend finds the server's connection there (keep it weakly)."""
        return None

    @abstractmethod
    async def start(self, sink: DeliverySink) -> None:
        """Connect (a network backend) and start handing deliveries to ``sink``."""

    async def close(self) -> None:
        """Stop delivering and disconnect; called at the plugin's shutdown."""
        return None

    # -- records ------------------------------------------------------------------------------

    @abstractmethod
    async def put(self, record: Record) -> None:
        """Create or replace ``record`` (keyed by its kind and key)."""

    async def put_if(self, record: Record, expected: Record | None) -> bool:
        """Compare-and-set: put ``record`` only if the stored one (same kind and key) still
        equals ``expected`` (None: there is none); whether it was put. The manager resumes a
        page and moves it to its grace period with it, so two processes racing for one page
        cannot both win. The default compares in this process (atomic for a backend whose
        ``get``/``put`` do not wait); a network backend uses its store's revisions."""
        current = await self.get(record.kind, record.key)
        if current != expected:
            return False
        await self.put(record)
        return True

    @abstractmethod
    async def get(self, kind: RecordKind, key: str) -> Record | None:
        """The record, or None. A backend may hand out its stored object: the manager never
        changes a record it got in place, it puts a changed copy."""

    @abstractmethod
    async def delete(self, kind: RecordKind, key: str) -> None:
        """Remove the record (unknown: no-op)."""

    @abstractmethod
    async def pages(self, *, user_id: str | None = None, connection_id: str | None = None,
                    session_id: str | None = None) -> list[PageRecord]:
        """The pages (live and in grace) matching every filter given (none: all pages)."""

    @abstractmethod
    async def sessions(self, *, connection_id: str | None = None,
                       user_id: str | None = None) -> list[SessionRecord]:
        """The sessions matching every filter given."""

    @abstractmethod
    async def connections(self, *, user_id: str | None = None) -> list[ConnectionRecord]:
        """The connections matching the filter given."""

    @abstractmethod
    async def users(self, *, online: bool | None = None) -> list[UserRecord]:
        """The users (``online``: only those online, or only those offline)."""

    @abstractmethod
    async def own(self, kind: RecordKind) -> list[Record]:
        """The records of ``kind`` whose ``process_id`` is this process's (for the sweeper)."""

    # -- data trees ---------------------------------------------------------------------------

    @abstractmethod
    async def data_get(self, level: Level, owner: str, path: str, default: Any = None) -> Any:
        """A copy of the value at ``path`` (``""``: the whole tree as a dict), or ``default``."""

    @abstractmethod
    async def data_set(self, level: Level, owner: str, path: str, value: Any,
                       max_bytes: int) -> int:
        """Set ``path`` (a dict value is a subtree); the tree's new size in bytes. Raises
        DataLimitExceeded (nothing changed) past ``max_bytes``, ValueError for a value that
        cannot be encoded."""

    @abstractmethod
    async def data_delete(self, level: Level, owner: str, path: str) -> bool:
        """Remove ``path`` (``""``: everything); whether anything was there."""

    @abstractmethod
    async def data_drop(self, level: Level, owner: str) -> None:
        """Forget the whole tree (its owner expired)."""

    @abstractmethod
    async def data_size(self, level: Level, owner: str) -> int:
        """The tree's size in bytes (0 when it has none)."""

    async def data_total(self) -> int | None:
        """Bytes of every tree this backend holds, for ``max_total_data_bytes``; None (the
        default) when it cannot tell cheaply: that limit is then not enforced."""
        return None

    async def anonymous_users(self) -> int | None:
        """How many anonymous user records (``UserRecord.anonymous``) this backend holds, for
        ``max_anonymous_users``; it must not cost a scan (it is asked at each anonymous
        visitor's first page). None (the default) when it cannot tell cheaply: that limit is
        then not enforced (the manager warns at startup when anonymous pages are allowed)."""
        return None

    # -- delivery -----------------------------------------------------------------------------

    @abstractmethod
    async def publish(self, delivery: Delivery) -> None:
        """Hand ``delivery`` to the sink of every process, this one included, once each."""


_process_ids = itertools.count(1)


class MemoryBackend(SpaBackend):
    """Everything in this process: dicts with indexes by user, connection and session."""

    def __init__(self, process_id: str | None = None) -> None:
        self.process_id = process_id or f"local-{next(_process_ids)}-{get_uuid()[-8:]}"
        self._records: dict[str, dict[str, Record]] = {kind: {} for kind in _CLASSES}
        # page ids by user, connection and session; session ids by connection
        self._pages_by: dict[str, dict[str, set[str]]] = {
            "user": {}, "connection": {}, "session": {}}
        self._sessions_by_connection: dict[str, set[str]] = {}
        # session and connection ids by user (the per-user limits count them at each register)
        self._sessions_by_user: dict[str, set[str]] = {}
        self._connections_by_user: dict[str, set[str]] = {}
        self._anonymous: set[str] = set()  # ids of the anonymous user records
        self._trees: dict[tuple[str, str], DataTree] = {}
        self._total = 0  # bytes of every tree
        self._sink: DeliverySink | None = None

    async def start(self, sink: DeliverySink) -> None:
        self._sink = sink

    async def close(self) -> None:
        self._sink = None

    # -- records ------------------------------------------------------------------------------

    async def put(self, record: Record) -> None:
        table = self._records[record.kind]
        old = table.get(record.key)
        if old is not None:
            self._unindex(old)
        table[record.key] = record
        self._index(record)

    async def get(self, kind: RecordKind, key: str) -> Record | None:
        return self._records[kind].get(key)

    async def delete(self, kind: RecordKind, key: str) -> None:
        old = self._records[kind].pop(key, None)
        if old is not None:
            self._unindex(old)

    def _index(self, record: Record) -> None:
        if isinstance(record, PageRecord):
            for by, owner in (("user", record.user_id), ("connection", record.connection_id),
                              ("session", record.session_id)):
                self._pages_by[by].setdefault(owner, set()).add(record.page_id)
        elif isinstance(record, SessionRecord):
            self._sessions_by_connection.setdefault(record.connection_id, set()).add(
                record.session_id)
            self._sessions_by_user.setdefault(record.user_id, set()).add(record.session_id)
        elif isinstance(record, ConnectionRecord):
            self._connections_by_user.setdefault(record.user_id, set()).add(
                record.connection_id)
        elif record.anonymous:
            self._anonymous.add(record.user_id)

    def _unindex(self, record: Record) -> None:
        if isinstance(record, PageRecord):
            for by, owner in (("user", record.user_id), ("connection", record.connection_id),
                              ("session", record.session_id)):
                _discard(self._pages_by[by], owner, record.page_id)
        elif isinstance(record, SessionRecord):
            _discard(self._sessions_by_connection, record.connection_id, record.session_id)
            _discard(self._sessions_by_user, record.user_id, record.session_id)
        elif isinstance(record, ConnectionRecord):
            _discard(self._connections_by_user, record.user_id, record.connection_id)
        else:
            self._anonymous.discard(record.user_id)

    async def pages(self, *, user_id: str | None = None, connection_id: str | None = None,
                    session_id: str | None = None) -> list[PageRecord]:
        table: dict[str, Any] = self._records["page"]
        ids: set[str] | None = None
        for by, owner in (("session", session_id), ("connection", connection_id),
                          ("user", user_id)):
            if owner is not None:
                found = self._pages_by[by].get(owner, set())
                ids = set(found) if ids is None else ids & found
        if ids is None:
            return list(table.values())
        return [table[page_id] for page_id in ids]

    async def sessions(self, *, connection_id: str | None = None,
                       user_id: str | None = None) -> list[SessionRecord]:
        table: dict[str, Any] = self._records["session"]
        if connection_id is not None:
            found = [table[s] for s in self._sessions_by_connection.get(connection_id, ())]
        elif user_id is not None:
            return [table[s] for s in self._sessions_by_user.get(user_id, ())]
        else:
            found = list(table.values())
        return [s for s in found if user_id is None or s.user_id == user_id]

    async def connections(self, *, user_id: str | None = None) -> list[ConnectionRecord]:
        table: dict[str, Any] = self._records["connection"]
        if user_id is not None:
            return [table[c] for c in self._connections_by_user.get(user_id, ())]
        return list(table.values())

    async def users(self, *, online: bool | None = None) -> list[UserRecord]:
        table: dict[str, Any] = self._records["user"]
        return [u for u in table.values() if online is None or u.online is online]

    async def own(self, kind: RecordKind) -> list[Record]:
        return [r for r in self._records[kind].values() if r.process_id == self.process_id]

    # -- data trees ---------------------------------------------------------------------------

    async def data_get(self, level: Level, owner: str, path: str, default: Any = None) -> Any:
        tree = self._trees.get((level, owner))
        return default if tree is None else tree.get(path, default)

    async def data_set(self, level: Level, owner: str, path: str, value: Any,
                       max_bytes: int) -> int:
        tree = self._trees.get((level, owner))
        if tree is None:
            tree = DataTree()
            tree.set(path, value, max_bytes)  # raises before the empty tree is kept
            self._trees[(level, owner)] = tree
            self._total += tree.size
            return tree.size
        before = tree.size
        tree.set(path, value, max_bytes)
        self._total += tree.size - before
        return tree.size

    async def data_delete(self, level: Level, owner: str, path: str) -> bool:
        tree = self._trees.get((level, owner))
        if tree is None:
            return False
        before = tree.size
        found = tree.delete(path)
        self._total += tree.size - before
        if not tree.size:
            del self._trees[(level, owner)]
        return found

    async def data_drop(self, level: Level, owner: str) -> None:
        tree = self._trees.pop((level, owner), None)
        if tree is not None:
            self._total -= tree.size

    async def data_size(self, level: Level, owner: str) -> int:
        tree = self._trees.get((level, owner))
        return 0 if tree is None else tree.size

    async def data_total(self) -> int:
        return self._total

    async def anonymous_users(self) -> int:
        return len(self._anonymous)

    # -- delivery -----------------------------------------------------------------------------

    async def publish(self, delivery: Delivery) -> None:
        if self._sink is not None:
            self._sink(delivery)


def _discard(index: dict[str, set[str]], owner: str, item: str) -> None:
    found = index.get(owner)
    if found is not None:
        found.discard(item)
        if not found:
            del index[owner]


def backend_class(spec: str) -> type[SpaBackend]:
    """The ``SpaBackend`` subclass named ``memory`` or ``pkg.module:Class``."""
    builtins: dict[str, type[SpaBackend]] = {"memory": MemoryBackend}
    return component_class(spec, SpaBackend, builtins)
