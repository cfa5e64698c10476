"""``NatsBroker``: wsx publications fan out across processes and machines through NATS.

Each process subscribes to NATS once per distinct pattern its clients hold (``orders.*``
becomes ``<prefix>.wsx.orders.*``: WSX channels follow NATS subject rules) and hands what
arrives to that pattern's local ``MemoryBroker``, so every matching subscriber gets a
publication exactly once and in the order its publisher sent it. A publication is encoded as
TYTX once, by its publisher; each receiving process decodes it once (a message that reaches it
through two overlapping patterns shares one ``Publication``, hence one encoding per wire
format). The publisher's own subscribers get it back through NATS too, in the same order as
everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import FlushTimeoutError

from genro_asgi import ConfigError
from genro_asgi_wsx import Broker, MemoryBroker, Publication, PublishError, Subscriber
from genro_asgi_wsx.broker import Deliver
from genro_asgi_wsx.channels import check_channel, pattern_matches

from . import codec
from .connection import NatsLink, NatsUnavailable
from .history import ensure_streams, parse_namespaces, read_after

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

logger = logging.getLogger("genro_asgi_nats.broker")

FLUSH_TIMEOUT = 2  # seconds a new NATS subscription may take to reach the server
LOG_EVERY = 10.0  # seconds between two log lines about dropped messages of one kind


class _Pattern:
    """One distinct pattern of this process: its NATS subscription and local subscribers."""

    __slots__ = ("local", "pattern", "ready", "sub", "users")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.local = MemoryBroker()
        self.sub: Subscription | None = None
        self.users = 0
        self.ready = asyncio.Event()


class _Held(Subscriber):
    """A recovering subscription: live publications wait until the recovered ones are out."""

    __slots__ = ("buffer", "holding", "target")

    def __init__(self, target: Deliver) -> None:
        self.target = target
        self.buffer: list[Publication] = []
        self.holding = True

    def prepare(self, publication: Publication) -> Any:
        return publication

    def push(self, prepared: Any) -> bool:
        if self.holding:
            self.buffer.append(prepared)
            return False
        return self.forward(prepared)

    def forward(self, publication: Publication) -> bool:
        target = self.target
        try:
            if isinstance(target, Subscriber):
                return bool(target.push(target.prepare(publication)))
            target(publication)
        except Exception:
            logger.exception("delivery of a publication on %r failed", publication.channel)
        return False

    def release(self) -> list[Publication]:
        held, self.buffer, self.holding = self.buffer, [], False
        return held


class NatsBroker(Broker):
    """``plugins.wsx.broker: genro_asgi_nats:NatsBroker`` (needs the ``nats`` plugin on)."""

    def __init__(self, max_depth: int = 128, shared_window: int = 1024,
                 history: dict[str, Any] | None = None, max_recover: int = 1000,
                 recover_timeout: float = 5.0) -> None:
        if not 1 <= max_depth <= 400:
            raise ValueError("max_depth must be 1 to 400")
        if shared_window < 1:
            raise ValueError("shared_window must be at least 1")
        if not 1 <= max_recover <= 100_000:
            raise ValueError("max_recover must be 1 to 100000")
        if not 0 < recover_timeout <= 60:
            raise ValueError("recover_timeout must be more than 0 and at most 60 seconds")
        self.max_depth = max_depth
        self.shared_window = shared_window
        self.spaces = parse_namespaces(history or {})
        self.max_recover = max_recover
        self.recover_timeout = recover_timeout
        self._recovery: dict[int, bool] = {}
        self._server: weakref.ref[AsgiServer] | None = None
        self._link: NatsLink | None = None
        self._handles = itertools.count(1)
        self._patterns: dict[str, _Pattern] = {}
        self._where: dict[int, tuple[str, int]] = {}
        self._origin = secrets.token_hex(6)
        self._seq = itertools.count(1)
        self._recent: OrderedDict[bytes, Publication] = OrderedDict()
        self._logged: dict[str, float] = {}

    @property
    def link(self) -> NatsLink:
        if self._link is None:
            raise RuntimeError("the NATS broker is not started")
        return self._link

    @property
    def pattern_count(self) -> int:
        """Distinct patterns, hence NATS subscriptions, of this process."""
        return len(self._patterns)

    @property
    def subscription_count(self) -> int:
        return len(self._where)

    # -- lifecycle ----------------------------------------------------------------------------

    def bind(self, server: AsgiServer) -> None:
        self._server = weakref.ref(server)

    async def start(self) -> None:
        server = self._server() if self._server is not None else None
        if server is None:
            raise RuntimeError("NatsBroker.start() before bind(server)")
        link = getattr(server.plugins.get("nats"), "link", None)
        if not isinstance(link, NatsLink):
            raise ConfigError("plugins.wsx.broker: genro_asgi_nats:NatsBroker needs the nats "
                              "plugin: add 'nats: {servers: [nats://host:4222]}' under plugins")
        self._link = link
        link.on_connect(self._subscribe_all)
        if self.spaces and link.nc is not None:
            await ensure_streams(link, link.nc.jetstream(), self.spaces)

    async def close(self) -> None:
        """Unsubscribe from NATS (the connection itself is the nats plugin's to drain)."""
        for entry in list(self._patterns.values()):
            await self._drop_nats(entry)
        self._patterns.clear()
        self._where.clear()
        self._recent.clear()

    # -- Broker -------------------------------------------------------------------------------

    async def subscribe(self, pattern: str, deliver: Deliver, since: str | None = None) -> int:
        """Subscribe; with ``since`` (a channel namespace with history), first deliver what was
        published after that offset: the live publications are held meanwhile, and released
        after the recovered ones (without those already recovered)."""
        space = next((s for s in self.spaces if s.covers(pattern)), None) \
            if since is not None else None
        nc = self.link.nc
        if since is None or space is None or nc is None or not nc.is_connected:
            handle = await self._subscribe(pattern, deliver)
            if since is not None:
                self._recovery[handle] = False
            return handle
        held = _Held(deliver)
        handle = await self._subscribe(pattern, held)
        try:
            found, stored = await read_after(self.link, nc.jetstream(), space, pattern, since,
                                             self.max_recover, self.recover_timeout)
        except Exception as exc:
            logger.warning("history of %r not readable: %s", pattern, exc)
            found, stored = False, []
        self._recovery[handle] = found
        loop = asyncio.get_running_loop()
        # after the subscribe answer is queued (the caller answers in this same step)
        loop.call_soon(loop.call_soon, self._release, held, stored)
        return handle

    def recovered(self, handle: int) -> bool | None:
        return self._recovery.get(handle)

    def _release(self, held: _Held, stored: list[tuple[str, bytes]]) -> None:
        seen: set[str] = set()
        prefix = len(self.link.prefix) + 5
        for subject, payload in stored:
            try:
                pub_id, data = codec.decode(payload, self.max_depth)
            except ValueError:
                continue
            offset = pub_id.decode("ascii", "replace")
            seen.add(offset)
            held.forward(Publication(subject[prefix:], data, offset))
        for publication in held.release():
            if publication.offset is None or publication.offset not in seen:
                held.forward(publication)

    async def _subscribe(self, pattern: str, deliver: Deliver) -> int:
        entry = self._patterns.get(pattern)
        if entry is None:
            entry = self._patterns[pattern] = _Pattern(pattern)
            entry.users += 1
            try:
                await self._subscribe_nats(entry)
            except BaseException:
                entry.users -= 1
                if entry.users == 0 and self._patterns.get(pattern) is entry:
                    del self._patterns[pattern]
                raise
            finally:
                entry.ready.set()
        else:
            entry.users += 1
            await entry.ready.wait()
        handle = next(self._handles)
        self._where[handle] = (pattern, await entry.local.subscribe(pattern, deliver))
        return handle

    async def unsubscribe(self, handle: int) -> None:
        where = self._where.pop(handle, None)
        if where is None:
            return
        self._recovery.pop(handle, None)
        pattern, local = where
        entry = self._patterns.get(pattern)
        if entry is None:
            return
        await entry.local.unsubscribe(local)
        entry.users -= 1
        if entry.users == 0:
            del self._patterns[pattern]
            await self._drop_nats(entry)

    async def publish(self, channel: str, data: Any) -> None:
        """Send once to NATS; every process (this one included) fans it out locally.

        PublishError when the data cannot be encoded or is larger than
        ``plugins.nats.max_message_size``; NatsUnavailable when NATS has been unreachable long
        enough to fill ``pending_size``. In a degraded start (never connected) the
        publication is delivered in this process only.
        """
        link = self.link
        pub_id = f"{self._origin}:{next(self._seq)}"
        try:
            body = codec.encode(pub_id, data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise PublishError(f"cannot publish on {channel!r}: the data cannot be encoded "
                               f"({type(exc).__name__}: {exc})") from exc
        limit = int(link.config.max_message_size)
        if len(body) > limit:
            raise PublishError(f"cannot publish on {channel!r}: {len(body)} bytes encoded, "
                               f"over plugins.nats.max_message_size ({limit})")
        if link.nc is None:  # degraded: this process is all there is
            self._deliver_here(Publication(channel, data))
            return
        try:
            await link.nc.publish(link.subject("wsx", channel), body)
        except NatsError as exc:
            raise NatsUnavailable(f"cannot publish on {channel!r}: NATS is unreachable and "
                                  f"its buffer is full ({type(exc).__name__})") from exc
        link.stats.messages_out += 1
        link.stats.bytes_out += len(body)

    # -- NATS side ----------------------------------------------------------------------------

    async def _subscribe_nats(self, entry: _Pattern) -> None:
        link = self.link
        nc = link.nc
        if nc is None or nc.is_closed:
            return  # degraded: subscribed when a connection comes (_subscribe_all)

        async def on_message(msg: Msg) -> None:
            self._receive(entry, msg)
            await asyncio.sleep(0)  # let the subscribers' writers send before the next one

        entry.sub = await nc.subscribe(link.subject("wsx", entry.pattern), cb=on_message)
        if nc.is_connected:  # the subscription is live on the server once answered
            # a reconnect replays it: nothing to refuse the client for
            with contextlib.suppress(FlushTimeoutError, NatsError):
                await nc.flush(FLUSH_TIMEOUT)

    async def _subscribe_all(self) -> None:
        if self.spaces and self.link.nc is not None:
            await ensure_streams(self.link, self.link.nc.jetstream(), self.spaces)
        for entry in list(self._patterns.values()):
            if entry.sub is None:
                await self._subscribe_nats(entry)

    async def _drop_nats(self, entry: _Pattern) -> None:
        sub, entry.sub = entry.sub, None
        if sub is not None:
            with contextlib.suppress(NatsError):  # a lost connection took it along
                await sub.unsubscribe()

    def _receive(self, entry: _Pattern, msg: Msg) -> None:
        stats = self.link.stats
        payload = msg.data
        stats.messages_in += 1
        stats.bytes_in += len(payload)
        if len(payload) > self.link.config.max_message_size:
            self._drop("oversized", msg.subject, f"{len(payload)} bytes")
            return
        channel = msg.subject[len(self.link.prefix) + 5:]  # after "<prefix>.wsx."
        head = payload[:len(codec.MARK) + codec.MAX_ID + 1]
        pub_id = head[len(codec.MARK):head.find(b" ", len(codec.MARK))] \
            if head.startswith(codec.MARK) else b""
        publication = self._recent.get(pub_id) if pub_id else None
        if publication is None or publication.channel != channel:
            if check_channel(channel) is not None:
                self._drop("foreign", msg.subject, "not a wsx channel")
                return
            try:
                pub_id, data = codec.decode(payload, self.max_depth)
            except codec.Foreign as exc:
                self._drop("foreign", msg.subject, str(exc))
                return
            except codec.Garbage as exc:
                self._drop("garbage", msg.subject, str(exc))
                return
            offset = pub_id.decode("ascii", "replace") \
                if self.spaces and any(s.holds(channel) for s in self.spaces) else None
            publication = Publication(channel, data, offset)
            self._recent[pub_id] = publication
            if len(self._recent) > self.shared_window:
                self._recent.popitem(last=False)
        try:
            entry.local.fan_out(publication)
        except PublishError as exc:
            self._drop("undeliverable", msg.subject, str(exc))

    def _deliver_here(self, publication: Publication) -> None:
        for entry in list(self._patterns.values()):
            if pattern_matches(entry.pattern, publication.channel):
                entry.local.fan_out(publication)

    def _drop(self, reason: str, subject: str, detail: str) -> None:
        """Count a dropped message; log it, at most once per LOG_EVERY seconds per reason."""
        dropped = self.link.stats.dropped
        dropped[reason] = dropped.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._logged.get(reason, -LOG_EVERY) >= LOG_EVERY:
            self._logged[reason] = now
            logger.warning("dropped a message on %r (%s: %s); %d dropped so far as %s",
                           subject[:200], reason, detail[:200], dropped[reason], reason)
