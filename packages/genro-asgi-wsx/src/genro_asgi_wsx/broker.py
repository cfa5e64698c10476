"""The broker interface and the in-memory broker (the default).

Connections subscribe with a pattern and a ``deliver`` callback; ``publish`` hands every
matching callback the same ``Publication``, which caches its encodings so that a fan-out to a
thousand sockets encodes the payload once per wire format. A NATS broker implements the same
four methods: it subscribes to NATS once per distinct pattern and fans out locally exactly as
this one does, so handlers and connections do not change.
"""

from __future__ import annotations

import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from .channels import is_wildcard, matches

logger = logging.getLogger("genro_asgi_wsx.broker")


class Publication:
    """One published message: the channel, the data, and its encodings made so far."""

    __slots__ = ("_encoded", "channel", "data")

    def __init__(self, channel: str, data: Any) -> None:
        self.channel = channel
        self.data = data
        self._encoded: dict[str, Any] = {}

    def encoded(self, key: str, encode: Callable[[Publication], Any]) -> Any:
        """``encode(self)``, computed once per ``key`` (a wire format) for all subscribers."""
        try:
            return self._encoded[key]
        except KeyError:
            value = self._encoded[key] = encode(self)
            return value


Deliver = Callable[[Publication], None]
"""Called on the event loop for each matching publication; must not block (it enqueues)."""


class Broker(ABC):
    """Where publications meet subscriptions. One broker per server."""

    async def start(self) -> None:
        """Connect (a network broker); called at the plugin's startup."""
        return None

    async def close(self) -> None:
        """Disconnect; called at the plugin's shutdown."""
        return None

    @abstractmethod
    async def subscribe(self, pattern: str, deliver: Deliver) -> int:
        """Start delivering publications matching ``pattern``; returns a handle."""

    @abstractmethod
    async def unsubscribe(self, handle: int) -> None:
        """Stop a subscription (an unknown handle is ignored)."""

    @abstractmethod
    async def publish(self, channel: str, data: Any) -> None:
        """Deliver ``data`` to every subscription matching ``channel`` (everywhere)."""


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

    async def subscribe(self, pattern: str, deliver: Deliver) -> int:
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
        self.fan_out(Publication(channel, data))

    def fan_out(self, publication: Publication) -> int:
        """Deliver locally; returns how many subscriptions got it. A NATS broker calls this
        for each message it receives."""
        delivered = 0
        exact = self._exact.get(publication.channel)
        targets: list[Deliver] = list(exact.values()) if exact else []
        if self._wildcards:
            tokens = publication.channel.split(".")
            targets.extend(deliver for pattern, deliver in list(self._wildcards.values())
                           if matches(pattern, tokens))
        for deliver in targets:
            try:
                deliver(publication)
            except Exception:
                logger.exception("delivery of a publication on %r failed", publication.channel)
                continue
            delivered += 1
        return delivered
