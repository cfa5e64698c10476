"""``NatsSpaBackend``: genro-asgi-spa's registries, presence, data trees and delivery across
processes and machines, over the nats plugin's connection.

- **Records** (users, connections, sessions, pages; each with its home ``process_id``) live in
  one JetStream KV bucket, ``<prefix>_spa``, under ``r.<kind>.<id>``. Every process watches
  ``r.>`` and keeps a replica (``spa_replica``): presence questions are answered locally, and
  a page opened or closed anywhere reaches every replica in milliseconds.
- **Processes** beat ``r.node.<process_id>`` every ``heartbeat_interval``. One silent for
  ``process_ttl`` while we are connected (or gone at shutdown) is adopted by the live process
  with the smallest id: its records get the adopter's id and its live pages go into grace, so
  the adopter's sweeper expires them (or a reconnect on any process resumes them).
- **Data trees** are one KV value each (``t.<level>.<owner>``), changed by compare-and-set on
  the revision: two processes changing one user's tree never lose a change.
- **Deliveries** go once to the subject ``<prefix>.spa.d``; each process subscribes once and
  hands them to its sink, which resolves its own live pages. The publisher's process gets its
  own deliveries directly (and skips their echo), so its pages are served with NATS down too.

A delete leaves a KV marker that expires after ``tombstone_ttl`` (needs nats-server 2.11+), so
the bucket holds the live records, not the history of every page ever opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import secrets
import socket
import time
import weakref
from typing import TYPE_CHECKING, Any, Literal

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from genro_asgi import ConfigError
from genro_asgi_spa.backend import (
    ConnectionRecord,
    DataLimitExceeded,
    Delivery,
    DeliverySink,
    Level,
    PageRecord,
    Record,
    RecordKind,
    SessionRecord,
    SpaBackend,
    UserRecord,
)
from genro_asgi_spa.tree import DataTree
from genro_asgi_wsx.codec import parse_tytx, tytx_text

from . import codec
from .connection import NatsLink, NatsUnavailable
from .spa_replica import (
    RECORD_KINDS,
    Replica,
    decode_record,
    encode_record,
    key_token,
    node_key,
    record_key,
    tree_key,
)

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

logger = logging.getLogger("genro_asgi_nats.spa")

SIZE_EVERY = 5  # heartbeats between two reads of the bucket's size (data_total)
ADOPTED = b"adopted-by "  # the value an adopter writes on the heartbeat key it claims
CAS_TRIES = 8  # compare-and-set attempts of one data change before it is refused (busy tree)
LOG_EVERY = 10.0  # seconds between two log lines about one kind of dropped message
# NatsUnavailable: the connection went (shutdown, a drop) between our look and the call
_KV_ERRORS = (NatsError, asyncio.TimeoutError, TimeoutError, NatsUnavailable)
_DELIVERY_FIELDS = ("target", "target_id", "channel", "data", "level", "path", "origin", "id")
_TARGETS = ("page", "session", "connection", "user", "all")


def default_process_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    return f"{host or 'host'}-{os.getpid()}-{secrets.token_hex(3)}"


class NatsSpaBackend(SpaBackend):
    """``plugins.spa.backend: genro_asgi_nats:NatsSpaBackend`` (needs the ``nats`` plugin)."""

    def __init__(self, process_id: str | None = None, storage: Literal["file", "memory"] = "file",
                 heartbeat_interval: float = 1.0, process_ttl: float = 10.0,
                 op_timeout: float = 2.0, sync_timeout: float = 10.0,
                 tombstone_ttl: float = 60.0, max_depth: int = 128) -> None:
        if process_id is not None and not (1 <= len(process_id) <= 64
                                           and key_token(process_id) == process_id):
            raise ValueError("process_id must be 1 to 64 letters, digits, '_' or '-'")
        if storage not in ("file", "memory"):
            raise ValueError("storage must be 'file' or 'memory'")
        if not 0.05 <= heartbeat_interval <= 60:
            raise ValueError("heartbeat_interval must be 0.05 to 60 seconds")
        if not heartbeat_interval * 2 < process_ttl <= 3600:
            raise ValueError("process_ttl must be more than twice heartbeat_interval and at "
                             "most 3600 seconds")
        for name, value, top in (("op_timeout", op_timeout, 60), ("sync_timeout", sync_timeout,
                                 600), ("tombstone_ttl", tombstone_ttl, 86400)):
            if not 0 < value <= top:
                raise ValueError(f"{name} must be more than 0 and at most {top} seconds")
        if tombstone_ttl < 1:
            raise ValueError("tombstone_ttl must be at least 1 second")
        if not 1 <= max_depth <= 400:
            raise ValueError("max_depth must be 1 to 400")
        self.process_id = process_id or default_process_id()
        self._origin = key_token(self.process_id)[:48]  # the id of our deliveries starts so
        self._own_mark = codec.MARK + self._origin.encode("ascii") + b":"
        self.storage = storage
        self.heartbeat_interval = heartbeat_interval
        self.process_ttl = process_ttl
        self.op_timeout = op_timeout
        self.sync_timeout = sync_timeout
        self.tombstone_ttl = tombstone_ttl
        self.max_depth = max_depth
        self.replica = Replica()
        self.stats: dict[str, int] = dict.fromkeys(
            ("deliveries_out", "deliveries_in", "deliveries_not_sent", "adoptions",
             "take_backs", "resyncs", "kv_errors"), 0)
        self._server: weakref.ref[AsgiServer] | None = None
        self._link: NatsLink | None = None
        self._kv: KeyValue | None = None
        self._js: JetStreamContext | None = None
        self._sink: DeliverySink | None = None
        self._watch: Subscription | None = None
        self._deliveries: Subscription | None = None
        self._nodes: dict[str, float] = {}  # other live processes -> last heartbeat (monotonic)
        self._heartbeat: asyncio.Task[None] | None = None
        self._pending_drops: dict[str, tuple[Level, str]] = {}
        self._seq = itertools.count(1)
        self._logged: dict[str, float] = {}
        self._closing = False
        self._setup_lock = asyncio.Lock()
        self._bucket_bytes: int | None = None
        self._mine: dict[str, Record] = {}  # KV key -> the last record we wrote as ours
        self._adoption: tuple[str, float] = ("", 0.0)  # who adopted us, until when it counts
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def link(self) -> NatsLink:
        if self._link is None:
            raise RuntimeError("the NATS spa backend is not started")
        return self._link

    @property
    def ready(self) -> bool:
        """Connected and set up: records and data go to NATS (else this process only)."""
        return self._kv is not None and self._link is not None and self._link.connected

    # -- lifecycle ----------------------------------------------------------------------------

    def bind(self, server: AsgiServer) -> None:
        self._server = weakref.ref(server)

    async def start(self, sink: DeliverySink) -> None:
        server = self._server() if self._server is not None else None
        if server is None:
            raise RuntimeError("NatsSpaBackend.start() before bind(server)")
        link = getattr(server.plugins.get("nats"), "link", None)
        if not isinstance(link, NatsLink):
            raise ConfigError("plugins.spa.backend: genro_asgi_nats:NatsSpaBackend needs the "
                              "nats plugin: add 'nats: {servers: [nats://host:4222]}' under "
                              "plugins")
        self._link = link
        link.spa = self
        self._sink = sink
        self._closing = False
        link.on_connect(self._setup)
        link.on_reconnect(self._resync)
        if link.nc is not None:
            try:
                await self._setup()
            except Exception as exc:
                raise ConfigError(
                    f"plugins.spa.backend: NatsSpaBackend cannot set up its KV bucket on NATS "
                    f"({_reason(exc)}): it needs JetStream (nats-server -js) and nats-server "
                    f"2.11 or later") from None
        self._heartbeat = asyncio.create_task(self._beat(), name="spa-nats-heartbeat")

    async def close(self) -> None:
        """Stop beating and tell the others this process is gone (they adopt its records at
        once: its pages in grace can resume elsewhere); unsubscribe."""
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ready:
            with contextlib.suppress(*_KV_ERRORS):
                await self._await(self._kv_().purge(node_key(self.process_id),
                                                    msg_ttl=self.tombstone_ttl))
        for sub in (self._watch, self._deliveries):
            if sub is not None:
                with contextlib.suppress(*_KV_ERRORS):
                    await self._await(sub.unsubscribe())
        self._watch = self._deliveries = None
        self._kv = None
        self._sink = None

    async def _setup(self) -> None:
        """Bucket, watch (caught up before we answer anything), delivery subscription; then
        what this process wrote while NATS was away."""
        async with self._setup_lock:
            link = self.link
            nc = link.nc
            if nc is None or self._closing:
                return
            js = nc.jetstream(timeout=self.op_timeout)
            self._js = js
            kv = await self._bucket(js)
            if self._deliveries is None:
                self._deliveries = await nc.subscribe(link.subject("spa", "d"),
                                                      cb=self._on_delivery)
            await self._watch_records(js, kv, self.replica)
            self._kv = kv
            await self._replay_dirty()

    async def _bucket(self, js: JetStreamContext) -> KeyValue:
        name = f"{self.link.prefix.replace('.', '_')}_spa"
        try:
            return await js.key_value(name)
        except BucketNotFoundError:
            pass
        config = KeyValueConfig(
            bucket=name, history=1, max_value_size=int(self.link.config.max_message_size),
            storage=StorageType.FILE if self.storage == "file" else StorageType.MEMORY,
            description="genro-asgi-spa records, heartbeats and data trees")
        try:
            return await js.create_key_value(config)
        except NatsError:  # another process created it first
            return await js.key_value(name)

    async def _watch_records(self, js: JetStreamContext, kv: KeyValue, replica: Replica) -> None:
        """Subscribe to ``r.>`` from the last value of each key, into ``replica``; return
        once caught up (or after ``sync_timeout``)."""
        if self._watch is not None:
            with contextlib.suppress(*_KV_ERRORS):
                await self._await(self._watch.unsubscribe())
            self._watch = None
        caught_up = asyncio.Event()
        stream = f"KV_{self._bucket_name()}"
        subject = f"$KV.{self._bucket_name()}.r.>"
        info = await js.stream_info(stream, subjects_filter=subject)
        if not info.state.subjects:
            caught_up.set()
        prefix = len(f"$KV.{self._bucket_name()}.")

        async def on_entry(msg: Msg) -> None:
            try:
                await self._apply_watched(replica, msg.subject[prefix:], msg)
            except Exception:
                logger.exception("spa: a record from NATS could not be applied")
            if msg.metadata.num_pending == 0:
                caught_up.set()

        self._watch = await js.subscribe(subject, stream=stream, ordered_consumer=True,
                                         deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                                         cb=on_entry)
        try:
            async with asyncio.timeout(self.sync_timeout):
                await caught_up.wait()
        except TimeoutError:
            logger.warning("spa: the records on NATS were not all read within %.1fs "
                           "(sync_timeout); presence fills in as they arrive", self.sync_timeout)

    def _bucket_name(self) -> str:
        return f"{self.link.prefix.replace('.', '_')}_spa"

    async def _apply_watched(self, replica: Replica, key: str, msg: Msg) -> None:
        revision = msg.metadata.sequence.stream
        op = msg.header.get(KV_OP) if msg.header else None
        if op is None and msg.header and "Nats-Marker-Reason" in msg.header:
            op = KV_PURGE
        is_node = key.startswith("r.node.")
        if op is None and not is_node and revision <= replica.revisions.get(key, 0):
            replica.position = max(replica.position, revision)
            return  # the echo of our own write, applied when NATS confirmed it
        if op in (KV_DEL, KV_PURGE):
            if is_node:
                await self._node_gone(key[len("r.node."):])
            else:
                await replica.watched_delete(key, revision)
            return
        if is_node:
            token = key[len("r.node."):]
            if token == key_token(self.process_id) and msg.data.startswith(ADOPTED):
                self._adopted(msg.data)
            else:
                self._node_seen(token, msg.data)
            return
        try:
            record = decode_record(msg.data)
        except ValueError as exc:
            self._drop("garbage", key, str(exc))
            return
        if record_key(record.kind, record.key) != key:
            self._drop("garbage", key, "a record under another record's key")
            return
        await replica.watched_put(key, record, revision)
        mine = self._mine.get(key)
        if mine is not None and record.process_id != self.process_id:
            if isinstance(record, PageRecord) and record.state == "live":
                del self._mine[key]  # resumed on another process: its page now
            elif self._adopted_by(record.process_id):
                self._spawn(self._take_back(key, mine, revision))

    def _adopted_by(self, process_id: str) -> bool:
        """Whether ``process_id`` adopted this process lately, while it is alive (only such
        changes are taken back: the adopter never fights back, so nothing flaps)."""
        adopter, until = self._adoption
        return (adopter == process_id and time.monotonic() < until
                and not self._closing)

    def _adopted(self, payload: bytes) -> None:
        """Our heartbeat key claimed by an adopter: we were silent too long, but we live.
        Take back what it took of ours (and what it takes in the next moments)."""
        adopter = payload[len(ADOPTED):].decode("ascii", "replace")
        self._adoption = (adopter, time.monotonic() + 2 * self.process_ttl)
        logger.warning("spa: process %s took this process for gone (silent for process_ttl); "
                       "taking its records back", adopter)
        for key, mine in list(self._mine.items()):
            current = self.replica.ids.get(key)
            revision = self.replica.revisions.get(key)
            if current is not None and revision:
                record = self.replica.records._records[current[0]].get(current[1])
                if record is not None and record.process_id == adopter:
                    self._spawn(self._take_back(key, mine, revision))

    async def _take_back(self, key: str, mine: Record, revision: int) -> None:
        """A record of ours was adopted while we are alive (we were cut off from NATS, or
        stalled, longer than process_ttl): ours again, unless it changed since."""
        if not self.ready:
            return
        try:
            new = await self._await(self._kv_().update(key, encode_record(mine), last=revision))
        except KeyWrongLastSequenceError:
            return
        except _KV_ERRORS as exc:
            self._kv_failed(exc)
            return
        await self.replica.confirmed_put(key, mine, new)
        self.stats["take_backs"] += 1
        self._log_limited("take-back", "spa: records of this process were adopted by "
                          "another while it was alive; taken back")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resync(self) -> None:
        """After a reconnect: read every record again into a fresh replica (some may have
        gone while we were away), keeping what we wrote meanwhile, and write that."""
        if self._kv is None or self._js is None or self._closing:
            await self._setup()
            return
        self.stats["resyncs"] += 1
        fresh = Replica()
        now = time.monotonic()
        self._nodes = dict.fromkeys(self._nodes, now)  # silence while we were away is ours
        try:
            # the old copy answers until the new one has read everything
            await self._watch_records(self._js, self._kv, fresh)
            old = self.replica
            for key, record in old.dirty.items():
                fresh.base[key] = old.base.get(key, 0)
                if record is None:
                    await fresh.local_delete(key, confirmed=False)
                else:
                    await fresh.unconfirmed_put(key, record)
            self.replica = fresh
            await self._replay_dirty()
        except _KV_ERRORS as exc:
            logger.warning("spa: resynchronising with NATS failed (%s); retrying at the next "
                           "reconnect", _reason(exc))

    @staticmethod
    async def _all(replica: Replica, kind: RecordKind) -> list[Record]:
        if kind == "user":
            return list(await replica.records.users())
        if kind == "connection":
            return list(await replica.records.connections())
        if kind == "session":
            return list(await replica.records.sessions())
        return list(await replica.records.pages())

    async def _replay_dirty(self) -> None:
        """Write what this process changed while NATS was away, in order; a key another
        process changed meanwhile keeps their value (compare-and-set on the revision the
        key had when we first changed it)."""
        replica, kv = self.replica, self._kv_()
        for key, record in list(replica.dirty.items()):
            if replica.dirty.get(key, 0) is not record:
                continue  # written again meanwhile
            base = replica.base.get(key, 0)
            try:
                if record is None:
                    if await self._revision_of(key) in (base, 0):
                        await self._await(kv.purge(key, msg_ttl=self.tombstone_ttl))
                elif base:
                    revision = await self._await(kv.update(key, encode_record(record),
                                                           last=base))
                    await replica.confirmed_put(key, record, revision)
                    continue
                else:
                    revision = await self._await(kv.create(key, encode_record(record)))
                    await replica.confirmed_put(key, record, revision)
                    continue
            except KeyWrongLastSequenceError:
                logger.info("spa: %s changed elsewhere while NATS was away: theirs kept", key)
            replica.dirty.pop(key, None)
            replica.base.pop(key, None)
            replica.tombstones.discard(key)
            await self._refresh(key)
        for key, (level, owner) in list(self._pending_drops.items()):
            # its owner came back meanwhile (on another process): the tree is theirs again
            if await self.get(level, owner) is None:
                await self._await(self._kv_().purge(key, msg_ttl=self.tombstone_ttl))
            self._pending_drops.pop(key, None)

    async def _revision_of(self, key: str) -> int:
        try:
            entry = await self._await(self._kv_().get(key))
        except KeyNotFoundError:
            return 0
        return int(entry.revision or 0)

    async def _refresh(self, key: str) -> None:
        """Put the store's value of ``key`` into the copy (after a write of ours lost)."""
        try:
            entry = await self._await(self._kv_().get(key))
            record = decode_record(entry.value or b"")
        except KeyNotFoundError:
            return
        except ValueError:
            return
        await self.replica.watched_put(key, record, entry.revision or 0)

    # -- processes ----------------------------------------------------------------------------

    async def _beat(self) -> None:
        beats = 0
        while not self._closing:
            try:
                if self.ready:
                    await self._await(self._kv_().put(
                        node_key(self.process_id),
                        tytx_text({"process_id": self.process_id, "at": time.time()}
                                  ).encode("utf-8")))
                    await self._adopt_silent()
                    if beats % SIZE_EVERY == 0:
                        self._bucket_bytes = (await self._await(self._kv_().status())
                                              ).stream_info.state.bytes
                    beats += 1
            except _KV_ERRORS as exc:
                self.stats["kv_errors"] += 1
                self._log_limited("beat", "spa: heartbeat not written: %s", _reason(exc))
            except Exception:
                logger.exception("spa: heartbeat failed")
            await asyncio.sleep(self.heartbeat_interval)

    def _node_seen(self, token: str, payload: bytes) -> None:
        if token == key_token(self.process_id):
            return
        try:
            data = parse_tytx(payload.decode("utf-8"))
            process_id = data["process_id"]
        except Exception:
            return
        if isinstance(process_id, str) and key_token(process_id) == token:
            self._nodes[process_id] = time.monotonic()

    async def _node_gone(self, token: str) -> None:
        """A process left (its heartbeat purged at shutdown, or adopted by someone)."""
        for process_id in list(self._nodes):
            if key_token(process_id) == token:
                del self._nodes[process_id]
                if self.ready and self._adopter_of(process_id):
                    await self._adopt(process_id, revision=None)

    def _adopter_of(self, gone: str) -> bool:
        """Whether this process adopts ``gone``'s records: the smallest live process id."""
        live = [p for p in self._nodes if p != gone]
        return all(self.process_id < p for p in live)

    async def _adopt_silent(self) -> None:
        now = time.monotonic()
        for process_id, seen in list(self._nodes.items()):
            if now - seen > self.process_ttl and process_id in self._nodes:
                del self._nodes[process_id]
                if self._adopter_of(process_id):
                    logger.warning("spa: process %s silent for %.1fs: %s adopts its records",
                                   process_id, now - seen, self.process_id)
                    await self._adopt(process_id, revision=await self._node_revision(process_id))

    async def _node_revision(self, process_id: str) -> int | None:
        try:
            entry = await self._await(self._kv_().get(node_key(process_id)))
        except KeyNotFoundError:
            return None
        revision: int | None = entry.revision
        return revision

    async def _adopt(self, gone: str, revision: int | None) -> None:
        """Take ``gone``'s records: ours from now on, its live pages into grace. The claim
        on its heartbeat key (compare-and-set) makes one adopter win a race, and tells
        ``gone``, if it lives after all, who to take its records back from."""
        kv = self._kv_()
        if revision is not None:
            try:
                await self._await(kv.update(node_key(gone), ADOPTED + self.process_id.encode(),
                                            last=revision))
            except KeyWrongLastSequenceError:
                return  # it beat again, or another process adopted it first
        self.stats["adoptions"] += 1
        now = time.time()
        count = 0
        for kind in RECORD_KINDS:
            for record in await self._all(self.replica, kind):
                if record.process_id == gone and await self._adopt_one(kind, record, now):
                    count += 1
        if revision is None:  # it left (its own purge): nothing to tell it
            with contextlib.suppress(*_KV_ERRORS):
                await self._await(kv.purge(node_key(gone), msg_ttl=self.tombstone_ttl))
        else:
            self._spawn(self._forget_node_later(gone))
        logger.warning("spa: process %s adopted %d record(s) of process %s", self.process_id,
                       count, gone)

    async def _forget_node_later(self, gone: str) -> None:
        """The claim stays while ``gone`` may still come back and read it; then it goes
        (unless ``gone`` beat again meanwhile)."""
        await asyncio.sleep(max(60.0, 6 * self.process_ttl))
        with contextlib.suppress(*_KV_ERRORS, KeyNotFoundError):
            entry = await self._await(self._kv_().get(node_key(gone)))
            if (entry.value or b"").startswith(ADOPTED):
                await self._await(self._kv_().purge(node_key(gone), msg_ttl=self.tombstone_ttl))

    async def _adopt_one(self, kind: RecordKind, record: Record, now: float) -> bool:
        gone, key = record.process_id, record_key(kind, record.key)
        new = dataclasses.replace(record, process_id=self.process_id)
        if isinstance(new, PageRecord) and new.state == "live":
            new.state = "grace"
            new.closed_at = now
        last = self.replica.revisions.get(key)
        for _ in range(2):
            try:
                revision = await self._await(self._kv_().update(key, encode_record(new),
                                                                last=last))
            except KeyWrongLastSequenceError:
                try:  # our copy was behind: adopt what the store holds, if still gone's
                    entry = await self._await(self._kv_().get(key))
                    stored = decode_record(entry.value or b"")
                except (KeyNotFoundError, ValueError):
                    return False
                if stored.process_id != gone:
                    return False  # resumed or changed elsewhere meanwhile: theirs wins
                last = entry.revision
                continue
            await self.replica.confirmed_put(key, new, revision)
            self._mine[key] = new
            return True
        return False

    # -- records ------------------------------------------------------------------------------

    async def put(self, record: Record) -> None:
        key = record_key(record.kind, record.key)
        self._remember(key, record)
        if self.ready:
            try:
                revision = await self._await(self._kv_().put(key, encode_record(record)))
            except _KV_ERRORS as exc:
                self._kv_failed(exc)
            else:
                await self.replica.confirmed_put(key, record, revision)
                return
        await self.replica.unconfirmed_put(key, record)

    async def put_if(self, record: Record, expected: Record | None) -> bool:
        """Compare-and-set on the KV revision: two processes resuming one page cannot both
        win. With NATS away, compared with this process's copy (and written later)."""
        key = record_key(record.kind, record.key)
        if self.ready:
            try:
                return await self._put_if(key, record, expected)
            except _KV_ERRORS as exc:
                self._kv_failed(exc)
        if await self.replica.get(record.kind, record.key) != expected:
            return False
        self._remember(key, record)
        await self.replica.unconfirmed_put(key, record)
        return True

    async def _put_if(self, key: str, record: Record, expected: Record | None) -> bool:
        kv = self._kv_()
        body = encode_record(record)
        known = self.replica.revisions.get(key)
        if known and key not in self.replica.dirty \
                and await self.replica.get(record.kind, record.key) == expected:
            try:  # the copy is current: one round trip
                revision = await self._await(kv.update(key, body, last=known))
            except KeyWrongLastSequenceError:
                pass  # the copy is behind: ask the store
            else:
                return await self._won(key, record, revision)
        try:
            entry = await self._await(kv.get(key))
            current: Record | None = decode_record(entry.value or b"")
            last = entry.revision or 0
        except KeyNotFoundError:
            current, last = None, 0
        except ValueError:
            return False
        if current != expected:
            return False
        try:
            if last:
                revision = await self._await(kv.update(key, body, last=last))
            else:
                revision = await self._await(kv.create(key, body))
        except KeyWrongLastSequenceError:
            return False  # changed between our read and our write: the other one won
        return await self._won(key, record, revision)

    async def _won(self, key: str, record: Record, revision: int) -> bool:
        self._remember(key, record)
        await self.replica.confirmed_put(key, record, revision)
        return True

    def _remember(self, key: str, record: Record) -> None:
        if record.process_id == self.process_id:
            self._mine[key] = record
        else:
            self._mine.pop(key, None)

    async def get(self, kind: RecordKind, key: str) -> Record | None:
        found = await self.replica.get(kind, key)
        if found is not None or not self.ready:
            return found
        # not in the copy yet (created a moment ago elsewhere), or not at all
        kv_key = record_key(kind, key)
        if kv_key in self.replica.tombstones:
            return None
        try:
            entry = await self._await(self._kv_().get(kv_key))
        except KeyNotFoundError:
            return None
        except _KV_ERRORS as exc:
            self._kv_failed(exc)
            return None
        try:
            record = decode_record(entry.value or b"")
        except ValueError:
            return None
        if record.kind != kind or record.key != key:
            return None
        await self.replica.watched_put(kv_key, record, entry.revision or 0)
        return record

    async def delete(self, kind: RecordKind, key: str) -> None:
        kv_key = record_key(kind, key)
        self._mine.pop(kv_key, None)
        confirmed = False
        if self.ready:
            try:
                await self._await(self._kv_().purge(kv_key, msg_ttl=self.tombstone_ttl))
                confirmed = True
            except _KV_ERRORS as exc:
                self._kv_failed(exc)
        await self.replica.local_delete(kv_key, confirmed)

    async def pages(self, *, user_id: str | None = None, connection_id: str | None = None,
                    session_id: str | None = None) -> list[PageRecord]:
        return await self.replica.records.pages(user_id=user_id, connection_id=connection_id,
                                                session_id=session_id)

    async def sessions(self, *, connection_id: str | None = None,
                       user_id: str | None = None) -> list[SessionRecord]:
        return await self.replica.records.sessions(connection_id=connection_id,
                                                   user_id=user_id)

    async def connections(self, *, user_id: str | None = None) -> list[ConnectionRecord]:
        return await self.replica.records.connections(user_id=user_id)

    async def users(self, *, online: bool | None = None) -> list[UserRecord]:
        return await self.replica.records.users(online=online)

    async def anonymous_users(self) -> int:
        """Every process's anonymous users, from the local replica: the cluster's count."""
        return await self.replica.records.anonymous_users()

    async def own(self, kind: RecordKind) -> list[Record]:
        return [r for r in await self._all(self.replica, kind)
                if r.process_id == self.process_id]

    def processes(self) -> list[str]:
        """The processes this one hears beating (itself included), sorted."""
        return sorted({self.process_id, *self._nodes})

    # -- data trees ---------------------------------------------------------------------------

    async def _tree(self, level: Level, owner: str) -> tuple[DataTree | None, int]:
        """The stored tree and its revision (None, 0 when there is none)."""
        self._need_nats(f"the {level} data")
        try:
            entry = await self._await(self._kv_().get(tree_key(level, owner)))
        except KeyNotFoundError:
            return None, 0
        except _KV_ERRORS as exc:
            self._kv_failed(exc)
            raise NatsUnavailable(f"the {level} data cannot be read: NATS did not answer "
                                  f"({_reason(exc)})") from None
        try:
            stored = parse_tytx((entry.value or b"").decode("utf-8"))
            tree = DataTree()
            tree.root = stored["root"]
            tree.size = int(stored["size"])
        except Exception:
            logger.error("spa: the %s data of %r on NATS is not readable: treated as empty",
                         level, owner)
            return None, entry.revision or 0
        return tree, entry.revision or 0

    async def _store_tree(self, level: Level, owner: str, tree: DataTree, revision: int,
                          max_bytes: int) -> None:
        key = tree_key(level, owner)
        body = tytx_text({"size": tree.size, "root": tree.root}).encode("utf-8")
        limit = int(self.link.config.max_message_size)
        if len(body) > limit:
            raise DataLimitExceeded(len(body), min(limit, max_bytes))
        kv = self._kv_()
        if tree.size == 0:
            await self._await(kv.purge(key, msg_ttl=self.tombstone_ttl))
        elif revision:
            await self._await(kv.update(key, body, last=revision))
        else:
            await self._await(kv.create(key, body))

    async def _change(self, level: Level, owner: str, change: Any, max_bytes: int) -> Any:
        """Read, change, write back unless someone wrote in between (then again)."""
        for _ in range(CAS_TRIES):
            tree, revision = await self._tree(level, owner)
            if tree is None:
                tree = DataTree()
            result = change(tree)
            if result is _UNCHANGED:
                return result
            try:
                await self._store_tree(level, owner, tree, revision, max_bytes)
            except KeyWrongLastSequenceError:
                continue
            except _KV_ERRORS as exc:
                self._kv_failed(exc)
                raise NatsUnavailable(f"the {level} data cannot be written: NATS did not "
                                      f"answer ({_reason(exc)})") from None
            return result
        raise NatsUnavailable(f"the {level} data of {owner!r} is changed by others too often: "
                              f"{CAS_TRIES} attempts failed")

    async def data_get(self, level: Level, owner: str, path: str, default: Any = None) -> Any:
        tree, _ = await self._tree(level, owner)
        return default if tree is None else tree.get(path, default)

    async def data_set(self, level: Level, owner: str, path: str, value: Any,
                       max_bytes: int) -> int:
        def change(tree: DataTree) -> int:
            tree.set(path, value, max_bytes)
            return tree.size

        size: int = await self._change(level, owner, change, max_bytes)
        return size

    async def data_delete(self, level: Level, owner: str, path: str) -> bool:
        def change(tree: DataTree) -> Any:
            return True if tree.delete(path) else _UNCHANGED

        return await self._change(level, owner, change, 1 << 62) is True

    async def data_drop(self, level: Level, owner: str) -> None:
        key = tree_key(level, owner)
        if self.ready:
            try:
                await self._await(self._kv_().purge(key, msg_ttl=self.tombstone_ttl))
                return
            except _KV_ERRORS as exc:
                self._kv_failed(exc)
        self._pending_drops[key] = (level, owner)  # dropped when NATS is back

    async def data_size(self, level: Level, owner: str) -> int:
        tree, _ = await self._tree(level, owner)
        return 0 if tree is None else tree.size

    async def data_total(self) -> int | None:
        """The bytes the KV bucket holds (every process's trees and records), read every
        ``SIZE_EVERY`` heartbeats: ``max_total_data_bytes`` bounds the application's shared
        data, not one process's. None before the first read."""
        return self._bucket_bytes

    # -- delivery -----------------------------------------------------------------------------

    async def publish(self, delivery: Delivery) -> None:
        """To this process's sink at once, then once to NATS for every other process.

        ValueError (nothing delivered) when the delivery cannot be encoded or is larger than
        ``plugins.nats.max_message_size``. When NATS cannot take it (unreachable, its buffer
        full) this process's pages still got it; the others miss it (logged, counted).
        """
        link = self.link
        fields = {name: getattr(delivery, name) for name in _DELIVERY_FIELDS}
        fields["origin"] = self.process_id
        try:
            body = codec.encode(f"{self._origin}:{next(self._seq)}", fields)
        except (ValueError, TypeError, RecursionError) as exc:
            raise ValueError(f"the delivery cannot be encoded ({type(exc).__name__}: "
                             f"{exc})") from exc
        limit = int(link.config.max_message_size)
        if len(body) > limit:
            raise ValueError(f"the delivery takes {len(body)} bytes encoded, over "
                             f"plugins.nats.max_message_size ({limit})")
        if self._sink is not None:
            self._sink(delivery)
        nc = link.nc
        if nc is None or self._deliveries is None:
            self.stats["deliveries_not_sent"] += 1
            return
        try:
            await nc.publish(link.subject("spa", "d"), body)
        except NatsError as exc:
            self.stats["deliveries_not_sent"] += 1
            self._log_limited("not-sent", "spa: a delivery reached this process only: NATS "
                              "cannot take it (%s)", _reason(exc))
            return
        self.stats["deliveries_out"] += 1
        link.stats.messages_out += 1
        link.stats.bytes_out += len(body)

    async def _on_delivery(self, msg: Msg) -> None:
        link = self.link
        payload = msg.data
        if payload.startswith(self._own_mark):
            return  # ours: our sink had it when we published
        link.stats.messages_in += 1
        link.stats.bytes_in += len(payload)
        if len(payload) > link.config.max_message_size:
            self._drop("oversized", msg.subject, f"{len(payload)} bytes")
            return
        try:
            _, fields = codec.decode(payload, self.max_depth)
            delivery = _delivery(fields)
        except codec.Foreign as exc:
            self._drop("foreign", msg.subject, str(exc))
            return
        except ValueError as exc:
            self._drop("garbage", msg.subject, str(exc))
            return
        if delivery.origin == self.process_id:
            return
        self.stats["deliveries_in"] += 1
        sink = self._sink
        if sink is not None:
            try:
                sink(delivery)
            except Exception:
                logger.exception("spa: a delivery from process %s failed here", delivery.origin)
        await asyncio.sleep(0)  # let the pages' writers send before the next one

    # -- helpers ------------------------------------------------------------------------------

    def _kv_(self) -> KeyValue:
        if self._kv is None:
            raise NatsUnavailable("NATS is not connected")
        return self._kv

    def _need_nats(self, what: str) -> None:
        if not self.ready:
            raise NatsUnavailable(f"{what} is on NATS, which is not reachable now")

    async def _await(self, operation: Any) -> Any:
        """A KV operation, bounded by ``op_timeout`` (JetStream's own timeout may not fire
        while the connection is down). ``asyncio.timeout``, not ``wait_for``: on Python 3.11
        ``wait_for`` can swallow a cancellation that comes as the operation ends, and a
        heartbeat or sweeper loop cancelled that way never stopped (a shutdown hung)."""
        async with asyncio.timeout(self.op_timeout):
            return await operation

    def _kv_failed(self, exc: BaseException) -> None:
        self.stats["kv_errors"] += 1
        self._log_limited("kv", "spa: a NATS KV operation failed (%s); kept in this process "
                          "and written when NATS answers", _reason(exc))

    def _drop(self, reason: str, subject: str, detail: str) -> None:
        dropped = self.link.stats.dropped
        dropped[reason] = dropped.get(reason, 0) + 1
        self._log_limited(reason, "spa: dropped a message on %r (%s: %s)", subject[:200],
                          reason, detail[:200])

    def _log_limited(self, kind: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_EVERY) >= LOG_EVERY:
            self._logged[kind] = now
            logger.warning(message, *args)


class _Unchanged:
    pass


_UNCHANGED = _Unchanged()


def _delivery(fields: Any) -> Delivery:
    """A ``Delivery`` from the decoded fields; ValueError for anything else."""
    if not isinstance(fields, dict) or set(fields) != set(_DELIVERY_FIELDS):
        raise ValueError("not a delivery")
    if fields["target"] not in _TARGETS or not isinstance(fields["channel"], str):
        raise ValueError("not a delivery (target, channel)")
    for name in ("target_id", "level", "path"):
        if fields[name] is not None and not isinstance(fields[name], str):
            raise ValueError(f"not a delivery ({name})")
    if not isinstance(fields["origin"], str) or not isinstance(fields["id"], str):
        raise ValueError("not a delivery (origin, id)")
    return Delivery(**fields)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["NatsSpaBackend", "default_process_id"]
