"""``RemotePool``: an executor pool (``kind: remote``) whose jobs run in ``genro-asgi worker``
processes, on any machine, through a JetStream work queue.

The server side: ``prepare`` resolves the job's registered name and encodes its arguments as
TYTX in the caller (an unregistered function or arguments TYTX cannot carry fail there);
``launch`` publishes it to the queue (JetStream confirms it is stored: the job is accepted);
the workers' events (started, progress, outcome) arrive on this pool's reply subject and drive
the job as a local pool's threads would, so the TaskManager, its store and the task events
work unchanged. Cancelling or timing out a queued job deletes it from the queue; a running one
is told to stop (its ``current_task().cancelled`` turns true) and its outcome is discarded.
A job whose workers died ``max_deliver`` times fails with WorkerCrashed (JetStream's
max-deliveries advisory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from genro_asgi_executor.context import TaskCancelled, check_fraction, check_message
from genro_asgi_executor.errors import (
    ExecutorClosed,
    RemoteJobError,
    RemoteTraceback,
    WorkerCrashed,
)
from genro_asgi_executor.pools import Job, Pool, StopReason

from . import jobs
from .connection import NatsLink, NatsUnavailable
from .jobs import JobRegistry, RemotePoolOptions
from .queue import WorkQueue

if TYPE_CHECKING:
    from genro_asgi_executor.config import PoolConfig

logger = logging.getLogger("genro_asgi_nats.remote")
PUBLISH_TIMEOUT = 5.0  # seconds for JetStream to confirm that a job is stored


class RemoteStats:
    """What the metrics collector reads (plain counters, on the loop)."""

    __slots__ = ("dropped", "duplicates", "redeliveries", "submitted")

    def __init__(self) -> None:
        self.submitted = 0
        self.redeliveries = 0
        self.duplicates = 0
        self.dropped = 0


class RemotePool(Pool):
    """Jobs on remote workers; see docs/nats.md#remote-executors."""

    kind = "remote"

    def __init__(self, name: str, config: PoolConfig, link: NatsLink) -> None:
        super().__init__(name, config)
        try:
            self.options = RemotePoolOptions.model_validate(config.options)
        except ValueError as exc:
            raise ValueError("options: " + "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in _errors(exc))) from None
        self.registry = JobRegistry(self.options.jobs)
        self.link = link
        self.queue = WorkQueue(link, name, self.options)
        self.origin = secrets.token_hex(8)
        self.remote = RemoteStats()
        self._jobs: dict[str, Job] = {}
        self._seqs: dict[int, str] = {}
        self._subs: list[Subscription] = []
        self._ready: asyncio.Task[JetStreamContext] | None = None
        self._watch: asyncio.Task[None] | None = None
        self.queue_depth: tuple[int, int] | None = None  # (waiting, running), all servers

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        super().start(loop)
        self._ready = loop.create_task(self._setup(), name=f"remote-pool-{self.name}")
        self._ready.add_done_callback(_log_setup_failure)

    def _ensure_ready(self) -> asyncio.Task[JetStreamContext]:
        """The setup task; a failed one (NATS was unreachable: a degraded start) is tried
        again once the connection exists."""
        ready = self._ready
        if ready is None or self.loop is None:
            raise ExecutorClosed(f"pool {self.name!r} is not started")
        failed = ready.done() and (ready.cancelled() or ready.exception() is not None)
        if failed and self.link.nc is not None and not self.closed:
            ready = self._ready = self.loop.create_task(self._setup(),
                                                        name=f"remote-pool-{self.name}")
            ready.add_done_callback(_log_setup_failure)
        return ready

    async def _setup(self) -> JetStreamContext:
        for sub in self._subs:  # what an earlier, failed setup left
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        self._subs.clear()
        nc = self.link.nc
        if nc is None:
            raise NatsUnavailable(f"pool {self.name!r}: NATS is not connected (degraded)")
        js = nc.jetstream(timeout=PUBLISH_TIMEOUT)
        await self.queue.ensure(js)
        self._subs.append(await nc.subscribe(self.queue.reply_subject(self.origin),
                                             cb=self._on_event))
        # an ordered consumer of the advisories' stream resumes where it was after a
        # reconnection: an advisory sent while this server was cut off is not lost
        self._subs.append(await js.subscribe(
            self.queue.advisory, stream=self.queue.dead_stream, ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW, cb=self._on_advisory))
        await nc.flush()
        self._watch = asyncio.create_task(self._watch_queue(js), name=f"remote-watch-{self.name}")
        return js

    async def _watch_queue(self, js: JetStreamContext) -> None:
        gone: set[str] = set()
        while True:
            with contextlib.suppress(Exception):  # NATS away: the last figures stay
                info = await js.consumer_info(self.queue.stream, self.queue.consumer)
                self.queue_depth = (int(info.num_pending or 0), int(info.num_ack_pending or 0))
            with contextlib.suppress(Exception):
                gone = await self._reconcile(js, gone)
            await asyncio.sleep(self.options.check_interval)

    async def _reconcile(self, js: JetStreamContext, gone: set[str]) -> set[str]:
        """A job acknowledged by its worker has left the queue, and its outcome (confirmed
        before the acknowledgement) arrived first. One that left the queue without an outcome,
        still so at the next look, had it lost with the connection: the task fails saying so
        instead of waiting for ever."""
        still: set[str] = set()
        for task_id, job in list(self._jobs.items()):
            if not isinstance(job.handle, int):
                continue
            try:
                await js.get_msg(self.queue.stream, job.handle)
                continue
            except NotFoundError:
                pass
            if task_id not in gone:
                still.add(task_id)
            elif self._jobs.get(task_id) is job:
                self._forget(task_id, job)
                job.resolve(error=RemoteJobError(
                    f"task {task_id} left the queue of pool {self.name!r} (a worker took and "
                    f"acknowledged it, or it expired after max_age) but no outcome reached "
                    f"this server"))
        return still

    async def close(self) -> None:
        await super().close()
        for task_id, job in list(self._jobs.items()):
            self._forget(task_id, job)
            if job.resolve(error=ExecutorClosed(f"pool {self.name!r} shut down")):
                await self._withdraw(job)
        for sub in self._subs:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        self._subs.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "submitted": self.remote.submitted,
                "redeliveries": self.remote.redeliveries, "duplicates": self.remote.duplicates}

    # -- submitting ---------------------------------------------------------------------------

    def prepare(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                task_id: str | None = None) -> Job:
        """Resolve the registered name and encode the job now, in the caller."""
        name = self.registry.name_of(fn)
        if name is None:
            known = ", ".join(sorted(self.registry.functions))
            raise TypeError(f"{fn!r} is not a registered job of pool {self.name!r} "
                            f"(jobs: {known}; plugins.executor.pools.{self.name}.options.jobs)")
        job = Job(self.registry.functions[name], args, kwargs, task_id or secrets.token_hex(11))
        try:
            job.payload = jobs.encode({"task": job.task_id, "job": name, "args": list(args),
                                       "kwargs": kwargs,
                                       "reply": self.queue.reply_subject(self.origin)})
        except (ValueError, TypeError, RecursionError) as exc:
            raise TypeError(f"the arguments of job {name!r} cannot be sent as TYTX "
                            f"({type(exc).__name__}: {exc})") from None
        if len(job.payload) > self.options.max_job_size:
            raise ValueError(f"job {name!r}: {len(job.payload)} bytes of arguments, over "
                             f"options.max_job_size ({int(self.options.max_job_size)})")
        return job

    def launch(self, job: Job) -> None:
        assert self.loop is not None and job.task_id is not None
        job.state = "pending"
        self._jobs[job.task_id] = job
        self.loop.create_task(self._submit(job), name=f"remote-submit-{job.task_id}")

    async def _submit(self, job: Job) -> None:
        assert job.task_id is not None and job.payload is not None
        try:
            js = await asyncio.shield(self._ensure_ready())
            ack = await js.publish(self.queue.subject, job.payload, timeout=PUBLISH_TIMEOUT,
                                   stream=self.queue.stream,
                                   headers={"Nats-Msg-Id": job.task_id})
        except Exception as exc:
            if self._jobs.get(job.task_id) is job:
                self._forget(job.task_id, job)
                job.resolve(error=exc if isinstance(exc, ExecutorClosed | NatsUnavailable)
                            else NatsUnavailable(f"pool {self.name!r}: the job could not be "
                                                 f"queued ({type(exc).__name__}: {exc})"))
            return
        self.remote.submitted += 1
        job.handle = ack.seq
        self._seqs[ack.seq] = job.task_id
        if job.future.done():  # cancelled while it was being queued
            await self._withdraw(job)

    # -- stopping -----------------------------------------------------------------------------

    def cancel(self, job: Job, reason: StopReason) -> bool:
        if job.future.done():
            return False
        assert job.task_id is not None and self.loop is not None
        self._forget(job.task_id, job)
        stopped = job.stop(reason)
        self.loop.create_task(self._withdraw(job), name=f"remote-cancel-{job.task_id}")
        return stopped

    async def _withdraw(self, job: Job) -> None:
        """Delete a queued job; tell the worker running it to stop."""
        nc = self.link.nc
        if nc is None or self._ready is None or not self._ready.done() or \
                self._ready.exception() is not None:
            return
        with contextlib.suppress(Exception):
            if isinstance(job.handle, int):
                await self._ready.result().delete_msg(self.queue.stream, job.handle)
        with contextlib.suppress(NatsError):
            await nc.publish(self.queue.cancel_subject, str(job.task_id).encode())

    def _forget(self, task_id: str, job: Job) -> None:
        """End the job's bookkeeping (pending/running counts, lookups)."""
        self._jobs.pop(task_id, None)
        if isinstance(job.handle, int):
            self._seqs.pop(job.handle, None)
        if job.state == "pending":
            self._leave_pending()
        elif job.state == "running":
            self.running -= 1
        job.state = "ended"

    # -- what the workers say -----------------------------------------------------------------

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = jobs.decode(msg.data)
            task_id, kind = event["task"], event["kind"]
        except (jobs.BadMessage, KeyError) as exc:
            self.remote.dropped += 1
            logger.warning("pool %r: dropped a malformed worker message (%s)", self.name, exc)
            return
        if msg.reply:  # an outcome: the worker waits for this confirmation before it acks
            with contextlib.suppress(NatsError):
                await msg.respond(b"ok")
        job = self._jobs.get(task_id) if isinstance(task_id, str) else None
        if job is None:
            if kind in ("done", "failed"):
                self.remote.duplicates += 1
                logger.warning("pool %r: task %s ended again on worker %s (delivery %s) after "
                               "its outcome was recorded: a redelivered job ran twice",
                               self.name, task_id, event.get("worker"), event.get("attempt"))
            return
        try:
            self._apply(job, kind, event)
        except Exception as exc:  # a worker we do not understand must not break the pool
            self.remote.dropped += 1
            logger.warning("pool %r: dropped a %r event for task %s (%s)", self.name, kind,
                           task_id, exc)

    def _apply(self, job: Job, kind: str, event: dict[str, Any]) -> None:
        assert job.task_id is not None
        if kind == "started":
            if int(event.get("attempt") or 1) > 1:
                self.remote.redeliveries += 1
            if job.state == "pending":
                job.state = "running"
                self.running += 1
                self._leave_pending()
                job.started()
        elif kind == "progress":
            job.progress(check_fraction(event.get("fraction")),
                         check_message(event.get("message")))
        elif kind == "done":
            self._forget(job.task_id, job)
            job.resolve(event.get("result"))
        elif kind == "failed":
            self._forget(job.task_id, job)
            job.resolve(error=_rebuild(event.get("error")))
        elif kind == "cancelled":
            self._forget(job.task_id, job)
            job.resolve(error=TaskCancelled(f"task {job.task_id} was cancelled"))
        else:
            raise ValueError(f"unknown event kind {kind!r}")

    async def _on_advisory(self, msg: Msg) -> None:
        try:
            advisory = json.loads(msg.data)
            seq, deliveries = int(advisory["stream_seq"]), int(advisory["deliveries"])
        except (ValueError, KeyError, TypeError):
            return
        task_id = self._seqs.get(seq)
        job = self._jobs.get(task_id) if task_id is not None else None
        if job is None or task_id is None:
            return  # another server's job
        self._forget(task_id, job)
        job.resolve(error=WorkerCrashed(
            f"task {task_id}: no worker of pool {self.name!r} finished it in {deliveries} "
            f"deliveries (max_deliver); its workers died or stopped beating"))
        await self._withdraw(job)


def _rebuild(error: Any) -> BaseException:
    if not isinstance(error, dict):
        return RemoteJobError("the worker reported a failure without details")
    kind = str(error.get("type", "Exception"))[:200]
    message = str(error.get("message", ""))[:2000]
    if kind == "TaskCancelled":
        return TaskCancelled(message)
    failure = RemoteJobError(f"{kind}: {message}")
    trace = error.get("traceback")
    if isinstance(trace, str) and trace:
        failure.__cause__ = RemoteTraceback(trace[-20000:])
    return failure


def _errors(exc: ValueError) -> list[dict[str, Any]]:
    errors = getattr(exc, "errors", None)
    return list(errors()) if callable(errors) else [{"loc": (), "msg": str(exc)}]


def _log_setup_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("remote pool setup failed: %s", task.exception())


__all__ = ["RemotePool", "RemoteStats"]
