"""Channel history (JetStream) for the NATS broker: which channels keep it, the streams that
hold it, and reading back what a reconnecting client missed.

A namespace (``chat.>``, ``orders.*``) with ``{size, ttl}`` gets one stream capturing its
subjects (``<prefix>.wsx.<namespace>``), keeping the last ``size`` publications of each
channel for at most ``ttl`` seconds. Publications are captured as NATS sends them: nothing
changes for the publisher, and the event offset a client sees is the publication's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, Field

from genro_asgi_wsx.channels import check_pattern, overlaps

from . import codec
from .connection import NatsLink

READ_WAIT = 2.0  # seconds to wait for the next stored message while reading history


class HistoryOptions(BaseModel):
    """``broker_options.history.<namespace>``."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, le=100_000)
    """Publications kept per channel."""
    ttl: float = Field(gt=0, le=365 * 86400)
    """Seconds a publication is kept."""


class Namespace:
    def __init__(self, pattern: str, options: HistoryOptions) -> None:
        self.pattern = pattern
        self.tokens = tuple(pattern.split("."))
        self.options = options
        digest = hashlib.sha1(pattern.encode()).hexdigest()[:12]
        self.suffix = f"hist_{digest}"

    def covers(self, pattern: str) -> bool:
        """Whether every channel ``pattern`` matches is in this namespace."""
        mine, theirs = self.tokens, pattern.split(".")
        for index, token in enumerate(mine):
            if token == ">":
                return len(theirs) > index
            if index >= len(theirs) or theirs[index] == ">":
                return False
            if token != "*" and token != theirs[index]:
                return False
        return len(theirs) == len(mine)

    def holds(self, channel: str) -> bool:
        return self.covers(channel)


def parse_namespaces(history: dict[str, Any]) -> list[Namespace]:
    """Validated namespaces; ValueError for a bad pattern, bad options or an overlap."""
    found: list[Namespace] = []
    for pattern, options in history.items():
        problem = check_pattern(pattern)
        if problem is not None:
            raise ValueError(f"history: {pattern!r}: {problem}")
        space = Namespace(pattern, HistoryOptions.model_validate(options))
        for other in found:
            if overlaps(space.tokens, other.tokens):
                raise ValueError(f"history: {pattern!r} overlaps {other.pattern!r}: a channel "
                                 f"may belong to one namespace only")
        found.append(space)
    return found


def stream_name(link: NatsLink, space: Namespace) -> str:
    return f"{link.prefix.replace('.', '_')}_{space.suffix}"


async def ensure_streams(link: NatsLink, js: JetStreamContext,
                         spaces: list[Namespace]) -> None:
    for space in spaces:
        config = StreamConfig(
            name=stream_name(link, space), subjects=[link.subject("wsx", space.pattern)],
            retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
            discard=DiscardPolicy.OLD, max_msgs_per_subject=space.options.size,
            max_age=space.options.ttl, max_msg_size=int(link.config.max_message_size))
        try:
            await js.stream_info(config.name or "")
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


async def read_after(link: NatsLink, js: JetStreamContext, space: Namespace, pattern: str,
                     since: str, limit: int, timeout: float
                     ) -> tuple[bool, list[tuple[str, bytes]]]:
    """``(found, [(subject, payload)...])``: the stored publications on ``pattern`` after the
    one whose id is ``since``, oldest first; ``found`` is False when ``since`` is not among the
    last ``limit`` stored (too old, or never ours)."""
    stream = stream_name(link, space)
    subject = link.subject("wsx", pattern)
    info = await js.stream_info(stream, subjects_filter=subject)
    stored = sum((info.state.subjects or {}).values()) if info.state.subjects else 0
    if stored == 0:
        return False, []
    kept: deque[tuple[str, bytes]] = deque(maxlen=limit)
    target = since.encode()
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True,
                             deliver_policy=DeliverPolicy.ALL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found_at: int | None = None
    count = 0
    try:
        while loop.time() < deadline:
            try:
                msg = await sub.next_msg(timeout=min(READ_WAIT, deadline - loop.time()))
            except TimeoutError:
                break
            count += 1
            kept.append((msg.subject, msg.data))
            if _id_of(msg.data) == target:
                found_at = count
            if msg.metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    if found_at is None or count - found_at >= limit:
        return False, []
    return True, list(kept)[len(kept) - (count - found_at):] if count > found_at else []


def _id_of(payload: bytes) -> bytes:
    if not payload.startswith(codec.MARK):
        return b""
    end = payload.find(b" ", len(codec.MARK), len(codec.MARK) + codec.MAX_ID + 1)
    return payload[len(codec.MARK):end] if end > 0 else b""
