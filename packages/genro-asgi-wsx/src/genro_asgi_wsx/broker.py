"""The broker interface and the in-memory broker (the default).

Connections subscribe with a pattern and a ``deliver`` callback; ``publish`` hands every
matching callback the same ``Publication``, which caches its encodings so that a fan-out to a
thousand sockets encodes the payload once per wire format, and every subscriber queues that one
text (only a short per-subscription head is its own). A ``Subscriber`` target is asked for its
frame before anything is delivered, so a publication that cannot be encoded is refused whole
(``PublishError``) instead of reaching some subscribers, or dropping them. A NATS broker
implements the same four methods: it subscribes to NATS once per distinct pattern and fans out
locally exactly as this one does, so handlers and connections do not change.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .channels import is_wildcard, matches
from .wire import check_utf8, wire_size

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

logger = logging.getLogger("genro_asgi_wsx.broker")


class PublishError(ValueError):
    """A publication that cannot be encoded (a non-finite float, an object, a lone surrogate):
    refused before any subscriber got it."""


class Publication:
    """One published message: the channel, the data, and its encodings made so far.

    ``offset``: the publication's id in a broker that keeps channel history (sent to clients
    with each event, so that a client reconnecting can ask for what came after it); None
    elsewhere.
    """

    __slots__ = ("_encoded", "_sizes", "channel", "data", "offset")

    def __init__(self, channel: str, data: Any, offset: str | None = None) -> None:
        self.channel = channel
        self.data = data
        self.offset = offset
        self._encoded: dict[str, Any] = {}
        self._sizes: dict[str, int] = {}

    def encoded(self, key: str, encode: Callable[[Publication], Any]) -> Any:
        """``encode(self)``, computed once per ``key`` (a wire format) for all subscribers.

        Text that UTF-8 cannot carry (a lone surrogate) raises NotUtf8, a ValueError, as any
        other value the encoder cannot write does.
        """
        try:
            return self._encoded[key]
        except KeyError:
            value = encode(self)
            if type(value) is str:
                check_utf8(value)
            self._encoded[key] = value
            return value

    def size(self, text: str) -> int:
        """The UTF-8 size of ``text``, one of this publication's encodings, computed once."""
        try:
            return self._sizes[text]  # the str caches its hash: O(1) after the first time
        except KeyError:
            size = self._sizes[text] = wire_size(text)
            return size


Deliver = Callable[[Publication], None]
"""Called on the event loop for each matching publication; must not block (it enqueues)."""


class Subscriber(ABC):
    """A ``Deliver`` in two steps, so that a fan-out encodes for everyone before delivering to
    anyone: ``prepare`` (may raise: the publication cannot be encoded), then ``push``."""

    __slots__ = ()

    @abstractmethod
    def prepare(self, publication: Publication) -> Any:
        """What ``push`` will deliver (the frame); raises when it cannot be encoded."""

    @abstractmethod
    def push(self, prepared: Any) -> bool:
        """Deliver; True when this subscriber has a backlog its writer should be let to send."""

    def __call__(self, publication: Publication) -> None:
        self.push(self.prepare(publication))


class Broker(ABC):
    """Where publications meet subscriptions. One broker per server."""

    def bind(self, server: AsgiServer) -> None:
        """Called once by the wsx plugin, with its server, right after the broker is built
        (before ``start``): a network broker finds the server's connection there. Keep the
        server weakly, as plugins do; the default does nothing."""
        return None

    async def start(self) -> None:
        """Connect (a network broker); called at the plugin's startup."""
        return None

    async def close(self) -> None:
        """Disconnect; called at the plugin's shutdown."""
        return None

    @abstractmethod
    async def subscribe(self, pattern: str, deliver: Deliver, since: str | None = None) -> int:
        """Start delivering publications matching ``pattern``; returns a handle.

        ``since`` (passed only when a client asks, by keyword): the offset of the last event
        the client saw. A broker with history first delivers what was published after it,
        then the live publications, and answers ``recovered(handle)``; one without ignores
        it (``recovered`` stays None: the client is told nothing was recovered).
        """

    def recovered(self, handle: int) -> bool | None:
        """Whether the subscription made with ``since`` got every publication after it (False:
        the gap is too old, or this broker keeps no history); None when not asked."""
        return None

    @abstractmethod
    async def unsubscribe(self, handle: int) -> None:
        """Stop a subscription (an unknown handle is ignored)."""

    @abstractmethod
    async def publish(self, channel: str, data: Any) -> None:
        """Deliver ``data`` to every subscription matching ``channel`` (everywhere); raise
        PublishError, delivering nothing, when it cannot be encoded."""


class MemoryBroker(Broker):
    """Fan-out inside this process: exact channels by dict lookup, wildcards by token match."""

    def __init__(self) -> None:
        self._handles = itertools.count(1)
        self._exact: dict[str, dict[int, Deliver]] = {}
        self._wildcards: dict[int, tuple[tuple[str, ...], Deliver]] = {}
        self._where: dict[int, str] = {}

    @property
    def subscription_count(self) -> int:
        return len(self._where)

    async def subscribe(self, pattern: str, deliver: Deliver, since: str | None = None) -> int:
        handle = next(self._handles)
        self._where[handle] = pattern
        if is_wildcard(pattern):
            self._wildcards[handle] = (tuple(pattern.split(".")), deliver)
        else:
            self._exact.setdefault(pattern, {})[handle] = deliver
        return handle

    async def unsubscribe(self, handle: int) -> None:
        pattern = self._where.pop(handle, None)
        if pattern is None:
            return
        if handle in self._wildcards:
            del self._wildcards[handle]
            return
        exact = self._exact.get(pattern)
        if exact is not None:
            exact.pop(handle, None)
            if not exact:
                del self._exact[pattern]

    async def publish(self, channel: str, data: Any) -> None:
        """Deliver here; PublishError (nothing delivered) when the data cannot be encoded.

        When a subscriber is left with a backlog, the publisher yields once to the event loop:
        the subscribers' writers send what they can before the next publication, so a loop of
        publications never outruns a client that reads (only one that does not read fills its
        budget and is closed with 4000).
        """
        _, backlog = self._deliver(Publication(channel, data))
        if backlog:
            await asyncio.sleep(0)

    def fan_out(self, publication: Publication) -> int:
        """Deliver locally; returns how many subscriptions got it. A NATS broker calls this
        for each message it receives. Raises PublishError, having delivered nothing, when a
        ``Subscriber`` cannot encode the publication."""
        return self._deliver(publication)[0]

    def _deliver(self, publication: Publication) -> tuple[int, bool]:
        exact = self._exact.get(publication.channel)
        targets: list[Deliver] = list(exact.values()) if exact else []
        if self._wildcards:
            tokens = publication.channel.split(".")
            targets.extend(deliver for pattern, deliver in list(self._wildcards.values())
                           if matches(pattern, tokens))
        # every frame first: a publication that cannot be encoded reaches nobody
        ready: list[tuple[Callable[[Any], Any], Any]] = []
        for deliver in targets:
            if isinstance(deliver, Subscriber):
                try:
                    ready.append((deliver.push, deliver.prepare(publication)))
                except Exception as exc:
                    raise PublishError(
                        f"cannot publish on {publication.channel!r}: the data cannot be "
                        f"encoded ({type(exc).__name__}: {exc})") from exc
            else:
                ready.append((deliver, publication))
        delivered = 0
        backlog = False
        for push, item in ready:
            try:
                if push(item) is True:
                    backlog = True
            except Exception:
                logger.exception("delivery of a publication on %r failed", publication.channel)
                continue
            delivered += 1
        return delivered, backlog
