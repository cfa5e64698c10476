"""``genro-asgi worker DIR --pool NAME``: runs the jobs of a ``kind: remote`` pool.

A worker reads the application's ``config.yaml`` (the same directory, on any machine), joins
NATS as the server would, takes jobs from the pool's JetStream consumer (``concurrency`` at a
time, each in a thread of this process) and reports back to the server that submitted each
one: started, progress (coalesced), then the outcome, which the server confirms before the job
is acknowledged. While a job runs the worker beats (``in_progress``) every ``ack_wait / 3``;
a worker that dies stops beating and JetStream gives the job to another worker, up to
``max_deliver`` deliveries. At-least-once: a worker that dies after reporting the outcome but
before acknowledging it lets the job run again; the server records the first outcome and logs
(and counts) the second.

SIGTERM or SIGINT: no new jobs; the running ones finish and are reported; a second signal
exits at once (the unfinished jobs go to other workers after ``ack_wait``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout

from genro_asgi import ConfigError
from genro_asgi_executor.context import TaskCancelled, TaskContext, run_with_context
from genro_asgi_executor.pools import ProgressRelay

from . import jobs
from .connection import NatsLink
from .jobs import JobRegistry, RemotePoolOptions
from .queue import WorkQueue

FETCH_WAIT = 1.0  # seconds one fetch waits for a job (then the worker looks at its stop flag)
OUTCOME_TRIES = 12


class Worker:
    """The jobs of one remote pool, taken from its queue."""

    def __init__(self, link: NatsLink, pool: str, options: RemotePoolOptions,
                 concurrency: int, name: str) -> None:
        self.link = link
        self.options = options
        self.queue = WorkQueue(link, pool, options)
        self.registry = JobRegistry(options.jobs)
        self.concurrency = concurrency
        self.name = name
        self.stopping = asyncio.Event()
        self.done = 0
        self._running: dict[str, threading.Event] = {}
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix=f"job-{pool}")

    async def run(self) -> None:
        nc = self.link.nc
        if nc is None:
            raise ConfigError("the worker needs NATS (plugins.nats.servers)")
        js = nc.jetstream()
        await self.queue.ensure(js)
        jobs_sub = await js.pull_subscribe_bind(durable=self.queue.consumer,
                                                stream=self.queue.stream)
        cancel_sub = await nc.subscribe(self.queue.cancel_subject, cb=self._on_cancel)
        free = [self.concurrency]
        room = asyncio.Event()
        room.set()
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            free[0] += 1
            room.set()

        print(f"worker {self.name}: pool {self.queue.pool!r}, {self.concurrency} at a time, "
              f"on {nc.connected_url.netloc if nc.connected_url else '?'}", flush=True)
        try:
            while not self.stopping.is_set():
                if free[0] == 0:
                    room.clear()
                    await room.wait()
                    continue
                try:  # as many jobs as there are free slots, in one request
                    batch = await jobs_sub.fetch(free[0], timeout=FETCH_WAIT)
                except (TimeoutError, NatsTimeout):
                    continue
                except NatsError:  # reconnecting: the client replays the subscription
                    await asyncio.sleep(0.2)
                    continue
                for msg in batch:
                    free[0] -= 1
                    task = asyncio.create_task(self._handle(msg))
                    running.add(task)
                    task.add_done_callback(finished)
            if running:
                await asyncio.wait(running)
        finally:
            with contextlib.suppress(NatsError):
                await cancel_sub.unsubscribe()
            with contextlib.suppress(NatsError):
                await jobs_sub.unsubscribe()
            self._threads.shutdown(wait=False, cancel_futures=True)

    async def _handle(self, msg: Msg) -> None:
        try:
            job = jobs.decode(msg.data)
            task_id, name, reply = job["task"], job["job"], job["reply"]
            args, kwargs = job.get("args") or [], job.get("kwargs") or {}
            if not (isinstance(task_id, str) and isinstance(name, str) and
                    isinstance(reply, str) and reply.startswith(self.link.subject("jobs", "r"))
                    and isinstance(args, list) and isinstance(kwargs, dict)):
                raise jobs.BadMessage("fields of the wrong type")
        except (jobs.BadMessage, KeyError) as exc:
            print(f"worker {self.name}: dropped a malformed job ({exc})", flush=True)
            with contextlib.suppress(NatsError):
                await msg.term()  # never delivered again
            return
        function = self.registry.functions.get(name)
        if function is None:
            await self._report(reply, {"task": task_id, "kind": "failed", "error": {
                "type": "UnknownJob",
                "message": f"job {name!r} is not registered on worker {self.name}"}})
            with contextlib.suppress(NatsError):
                await msg.term()
            return
        await self._send(reply, {"task": task_id, "kind": "started", "worker": self.name,
                                 "attempt": msg.metadata.num_delivered})
        cancel = self._running[task_id] = threading.Event()
        beat = asyncio.create_task(self._beat(msg))
        loop = asyncio.get_running_loop()
        relay = ProgressRelay(loop, lambda fraction, message: self._progress(
            reply, task_id, fraction, message))
        context = TaskContext(task_id, relay, cancel)
        try:
            result = await loop.run_in_executor(self._threads, run_with_context, context,
                                                function, tuple(args), kwargs)
            outcome: dict[str, Any] = {"kind": "done", "result": result}
        except TaskCancelled as exc:
            outcome = {"kind": "cancelled", "error": {"type": "TaskCancelled",
                                                      "message": str(exc)}}
        except Exception as exc:
            outcome = {"kind": "failed", "error": _describe(exc)}
        finally:
            beat.cancel()
            self._running.pop(task_id, None)
        beat = asyncio.create_task(self._beat(msg))  # still ours while it is reported
        try:
            await self._report(reply, {"task": task_id, "worker": self.name,
                                       "attempt": msg.metadata.num_delivered, **outcome})
        finally:
            beat.cancel()
        self.done += 1
        with contextlib.suppress(NatsError):
            await msg.ack()

    def _progress(self, reply: str, task_id: str, fraction: float | None,
                  message: str | None) -> None:
        asyncio.get_running_loop().create_task(self._send(reply, {
            "task": task_id, "kind": "progress", "fraction": fraction, "message": message}))

    async def _send(self, reply: str, event: dict[str, Any]) -> None:
        nc = self.link.nc
        if nc is not None:
            with contextlib.suppress(NatsError):
                await nc.publish(reply, jobs.encode(event))

    async def _report(self, reply: str, outcome: dict[str, Any]) -> None:
        """Send the outcome and wait for the server to confirm it."""
        try:
            payload = jobs.encode(outcome)
        except (ValueError, TypeError, RecursionError) as exc:
            payload = jobs.encode({**_strip(outcome), "kind": "failed", "error": {
                "type": "ResultNotSendable",
                "message": f"the result cannot be sent as TYTX ({type(exc).__name__}: {exc})"}})
        if len(payload) > self.options.max_job_size:
            payload = jobs.encode({**_strip(outcome), "kind": "failed", "error": {
                "type": "ResultTooLarge",
                "message": f"{len(payload)} bytes, over options.max_job_size "
                           f"({int(self.options.max_job_size)})"}})
        # until the server confirms it (NATS may be restarting: the job keeps beating and is
        # not acknowledged meanwhile), for at most OUTCOME_TRIES x outcome_timeout
        for attempt in range(OUTCOME_TRIES):
            nc = self.link.nc
            if nc is None:
                return
            try:
                await nc.request(reply, payload, timeout=self.options.outcome_timeout)
                return
            except (TimeoutError, NatsTimeout, NatsError):
                await asyncio.sleep(min(1.0, 0.1 * 2 ** attempt))
        print(f"worker {self.name}: the server of task {outcome.get('task')} did not confirm "
              f"its outcome (gone?)", flush=True)

    async def _beat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self.options.ack_wait / 3)
            with contextlib.suppress(NatsError):
                await msg.in_progress()

    async def _on_cancel(self, msg: Msg) -> None:
        flag = self._running.get(msg.data.decode("utf-8", "replace"))
        if flag is not None:
            flag.set()


def _describe(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": str(exc)[:2000],
            "traceback": "".join(traceback.format_exception(exc))[-20000:]}


def _strip(outcome: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in outcome.items() if k in ("task", "worker", "attempt")}


# -- the command ------------------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", required=True, help="a pool of kind 'remote'")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="jobs at a time (default: the pool's workers)")
    parser.add_argument("--name", default=None, help="this worker's name (default: host-pid)")


def run_command(args: argparse.Namespace, link_factory: Any) -> int:
    server = args.server
    executor = server.plugins.plugin_config("executor") if "executor" in \
        server.plugins.names() else None
    pools = getattr(executor, "pools", None) or {}
    pool = pools.get(args.pool)
    if pool is None or pool.kind != "remote":
        remote = ", ".join(n for n, p in pools.items() if p.kind == "remote") or "none"
        raise ConfigError(f"--pool {args.pool!r}: no pool of kind 'remote' by that name in "
                          f"plugins.executor.pools (remote pools: {remote})")
    try:
        options = RemotePoolOptions.model_validate(pool.options)
    except ValueError as exc:
        raise ConfigError(f"plugins.executor.pools.{args.pool}.options: {exc}") from None
    concurrency = args.concurrency or int(pool.workers or 1)
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    return asyncio.run(_serve(link_factory(), args.pool, options, concurrency, name))


async def _serve(link: NatsLink, pool: str, options: RemotePoolOptions, concurrency: int,
                 name: str) -> int:
    await link.start()
    try:
        worker = Worker(link, pool, options, concurrency, name)
    except ValueError as exc:
        await link.close()
        raise ConfigError(f"plugins.executor.pools.{pool}.{exc}") from None
    loop = asyncio.get_running_loop()
    forced = asyncio.Event()

    def on_signal() -> None:
        if worker.stopping.is_set():
            forced.set()
        worker.stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    serving = asyncio.create_task(worker.run())
    force = asyncio.create_task(forced.wait())
    await asyncio.wait({serving, force}, return_when=asyncio.FIRST_COMPLETED)
    force.cancel()
    if forced.is_set():
        print(f"worker {name}: stopped at once; unfinished jobs go to other workers",
              flush=True)
        await link.close()
        os._exit(1)  # job threads cannot be stopped
    await link.close()
    serving.result()
    print(f"worker {name}: stopped after {worker.done} job(s)", flush=True)
    return 0
