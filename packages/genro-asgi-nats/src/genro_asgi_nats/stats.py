"""Counters of one server's NATS traffic, read by the metrics collector at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field

DROP_REASONS = ("foreign", "garbage", "oversized", "undeliverable")


@dataclass
class LinkStats:
    """Plain integers bumped on the event loop; nothing is computed per message but ``+= 1``."""

    connects: int = 0
    disconnects: int = 0
    reconnects: int = 0
    errors: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
