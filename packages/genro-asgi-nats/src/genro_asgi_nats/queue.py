"""The JetStream work queue of the remote pools: names, subjects and its idempotent setup.

A second stream keeps the queue's max-deliveries advisories (a job no worker finished).

One stream per application (``<prefix>`` with dots as underscores, plus ``_jobs``), work-queue
retention, holding ``<prefix>.jobs.q.<pool>``; one durable pull consumer per pool, shared by
all its workers. Servers and workers both ensure them at startup with the same settings, so
either may start first.
"""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from .connection import NatsLink
from .jobs import RemotePoolOptions


class WorkQueue:
    """Names and subjects of one remote pool."""

    def __init__(self, link: NatsLink, pool: str, options: RemotePoolOptions) -> None:
        self.link = link
        self.pool = pool
        self.options = options
        flat = link.prefix.replace(".", "_")
        self.stream = f"{flat}_jobs"
        self.consumer = "pool_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in pool)
        self.subject = link.subject("jobs", "q", pool)
        self.cancel_subject = link.subject("jobs", "cancel", pool)
        self.advisory = (f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.stream}."
                         f"{self.consumer}")
        # the advisories are kept in a stream of their own, so that a server cut off from NATS
        # when one is sent still reads it when it is back
        self.dead_stream = f"{flat}_jobs_dead"

    def reply_subject(self, origin: str) -> str:
        return self.link.subject("jobs", "r", origin)

    async def ensure(self, js: JetStreamContext) -> None:
        """Create (or bring up to date) the stream and this pool's consumer."""
        stream = StreamConfig(
            name=self.stream, subjects=[self.link.subject("jobs", "q", ">")],
            retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
            max_msg_size=int(self.options.max_job_size) + 4096,
            max_age=self.options.max_age, duplicate_window=120.0)
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await _tolerate_race(js.add_stream(stream))
        else:
            await js.update_stream(stream)
        dead = StreamConfig(
            name=self.dead_stream,
            subjects=[f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.stream}.*"],
            retention=RetentionPolicy.LIMITS, storage=StorageType.FILE, max_age=86400.0)
        try:
            await js.stream_info(self.dead_stream)
        except NotFoundError:
            await _tolerate_race(js.add_stream(dead))
        consumer = ConsumerConfig(
            durable_name=self.consumer, filter_subject=self.subject,
            ack_policy=AckPolicy.EXPLICIT, ack_wait=self.options.ack_wait,
            max_deliver=self.options.max_deliver)
        await _tolerate_race(js.add_consumer(self.stream, consumer))


async def _tolerate_race(create: Any) -> None:
    """Another process created the same thing at the same moment: that is fine."""
    try:
        await create
    except BadRequestError as exc:
        if "already" not in str(exc).lower():
            raise
