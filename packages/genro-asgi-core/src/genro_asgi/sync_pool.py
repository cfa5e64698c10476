"""The server's own pool for sync (``def``) handlers, and the inline option.

Each ``AsgiServer`` owns one ``SyncPool``: ``server.sync_workers`` threads fed by a queue of
at most ``server.sync_queue`` waiting calls; past that a call is refused with a 503 and
``Retry-After`` instead of queueing without limit. The hand-off is cheaper than
``run_in_executor``: the loop puts a tuple on a ``SimpleQueue`` and awaits a plain loop future;
the worker settles it with one ``call_soon_threadsafe`` (no ``concurrent.futures.Future``,
no ``wrap_future`` chain, no executor bookkeeping).

A route flagged inline (``@route(inline=True)``, or every ``def`` route with
``server.sync_handlers: inline``) is called on the event loop itself: its author promises it
never blocks. A call that takes longer than ``watchdog.inline_block`` is logged with its route,
since it stalled every other request meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .exceptions import ServiceUnavailable
from .loop_stall import LoopStallMonitor
from .watchdog import report_inline_block

logger = logging.getLogger("genro_asgi.sync")

# what the loop hands a worker: fn, args, kwargs, context, future, loop, settle
_Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], contextvars.Context,
             "asyncio.Future[Any]", asyncio.AbstractEventLoop,
             Callable[["asyncio.Future[Any]", Any, BaseException | None], None]]
InlineReport = Callable[[str, float], None]

# where the envelope middleware puts the serving server's SyncPool in each request's scope
SCOPE_KEY = "genro.sync"


def off_loop(scope: Mapping[str, Any], fn: Callable[..., Any], /, *args: Any,
             **kwargs: Any) -> Awaitable[Any]:
    """Blocking work a request needs before its answer starts (decoding a large body, finding
    a static file) in the serving server's sync pool: bounded, so past it a 503 with
    ``Retry-After`` instead of a queue without limit. Outside a server (no pool in the scope),
    asyncio's default executor."""
    pool: SyncPool | None = scope.get(SCOPE_KEY)
    if pool is None:
        return asyncio.to_thread(fn, *args, **kwargs)
    return pool.submit(fn, *args, **kwargs)


def off_loop_step(scope: Mapping[str, Any], fn: Callable[..., Any], /,
                  *args: Any) -> Awaitable[Any]:
    """Like ``off_loop`` for the next step of an answer already decided (a file's next chunk),
    which is never refused: it must not fail halfway for lack of room."""
    pool: SyncPool | None = scope.get(SCOPE_KEY)
    if pool is None:
        return asyncio.to_thread(fn, *args)
    return pool.step(fn, *args)


class SyncPool:
    """Worker threads for one server's sync handlers and sync streaming steps.

    The ``workers`` threads start together at the first call (an ``async``-only app starts
    none) and stop at the server's shutdown; a pool dropped without a shutdown tells its
    threads to exit. No state is shared between pools.
    """

    def __init__(self, workers: int, queue_size: int, retry_after: int = 1,
                 name: str = "genro-sync") -> None:
        self.workers = workers
        self.queue_size = queue_size
        self.retry_after = retry_after
        self.name = name
        # calls handed to the pool and not yet settled (running or waiting): only the loop
        # changes it, so it needs no lock
        self.admitted = 0
        self.refused = 0  # calls answered 503 because the pool was full
        self._limit = workers + queue_size
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.closed = False
        # a pool dropped without close(): its threads exit (they hold the queue, not the pool)
        weakref.finalize(self, _release, self._jobs, self._threads)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(self._threads)

    def start(self) -> None:
        """Accept calls (again after a ``close``); the threads start at the first one."""
        self.closed = False

    def _start_threads(self) -> None:
        # all of them at once: a hand-off to one of many idle threads measured about 10%
        # quicker than to a single one (bench: the in-process ``def`` row)
        for index in range(self.workers):
            thread = threading.Thread(target=_work, args=(self._jobs,), daemon=True,
                                      name=f"{self.name}-{index}")
            thread.start()
            self._threads.append(thread)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """``fn(*args, **kwargs)`` in a worker thread, as a future to await.

        Raises ServiceUnavailable (503, Retry-After) when ``workers + queue`` calls are already
        in the pool or it is closed. Cancelling the future before the call starts skips it;
        a call already running finishes and its result is dropped.
        """
        if self.admitted >= self._limit:
            self.refused += 1
            raise ServiceUnavailable(
                detail=f"all {self.workers} sync workers are busy and {self.queue_size} calls "
                       f"are waiting (server.sync_workers, server.sync_queue)",
                retry_after=self.retry_after)
        return self._put(fn, args, kwargs)

    def step(self, fn: Callable[..., Any], /, *args: Any) -> asyncio.Future[Any]:
        """Like ``submit`` but never refused: the next step of a response already started
        (a sync generator's ``next``), which must not fail halfway for lack of room."""
        return self._put(fn, args, {})

    def _put(self, fn: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        if not self._threads:
            if self.closed:
                raise ServiceUnavailable(detail="the server is shutting down",
                                         retry_after=self.retry_after)
            self._start_threads()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.admitted += 1
        self._jobs.put((fn, args, kwargs, contextvars.copy_context(), future, loop,
                        self._settle))
        return future

    def _settle(self, future: asyncio.Future[Any], result: Any,
                error: BaseException | None) -> None:
        self.admitted -= 1
        if future.done():  # its caller was cancelled (a client went away)
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def caller(self, target: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """An awaitable-returning stand-in for the sync ``target``, run in this pool."""
        submit, put = self.submit, self._put

        def call(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            # submit(), inline but for the refusal: this runs for every sync handler call
            if self.admitted >= self._limit:
                return submit(target, *args, **kwargs)
            return put(target, args, kwargs)

        return call

    async def close(self, timeout: float = 30.0) -> None:
        """Refuse new calls, let the queued and running ones finish, stop the threads.

        A thread still busy after ``timeout`` seconds is left behind (it is a daemon thread,
        and exits once its call returns) and logged.
        """
        self.closed = True
        threads = list(self._threads)
        self._threads.clear()  # in place: the finalizer holds this list
        if not threads:
            return
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout

        def join() -> list[str]:
            for thread in threads:
                thread.join(max(deadline - time.monotonic(), 0.0))
            return [thread.name for thread in threads if thread.is_alive()]

        # a thread of its own: the loop's default executor may be what is shutting down
        done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: _deliver(loop, done, join), daemon=True,
                         name=f"{self.name}-join").start()
        alive = await done
        if alive:
            logger.warning("shutdown: sync worker(s) %s still running a call after %.1fs",
                           ", ".join(alive), timeout)


class InlineCall:
    """A sync handler called on the event loop; a call slower than ``threshold`` seconds is
    reported with the route (it blocked every other request meanwhile): by ``monitor`` while it
    still runs, and once more when it returns."""

    __slots__ = ("monitor", "path", "report", "target", "threshold")

    def __init__(self, target: Callable[..., Any], path: str, threshold: float,
                 report: InlineReport, monitor: LoopStallMonitor) -> None:
        self.target = target
        self.path = path
        self.threshold = threshold
        self.report = report
        self.monitor = monitor

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        self.monitor.enter(self.path, start)
        try:
            return self.target(*args, **kwargs)
        finally:
            self.monitor.leave()
            elapsed = time.perf_counter() - start
            if elapsed >= self.threshold:
                self.report(self.path, elapsed)


class SyncHandlers:
    """How one server calls its sync handlers: the pool, or inline on the loop.

    ``inline_blocks`` counts inline calls slower than ``inline_block`` (each one logged by the
    watchdog's logger with its route); ``stall`` reports one that has not returned yet.
    """

    def __init__(self, pool: SyncPool, *, default_inline: bool, inline_block: float) -> None:
        self.pool = pool
        self.default_inline = default_inline
        self.inline_block = inline_block
        self.inline_blocks = 0
        self.stall = LoopStallMonitor(inline_block, name=f"{pool.name}-stall")

    def inline_blocked(self, path: str, elapsed: float) -> None:
        self.inline_blocks += 1
        report_inline_block(path, elapsed, self.inline_block)

    def wrap(self, target: Callable[..., Any], path: str,
             inline: bool | None) -> Callable[..., Awaitable[Any]]:
        """The awaitable call of a sync handler: ``inline`` is the route's own flag (None:
        the server's ``sync_handlers``)."""
        if self.default_inline if inline is None else inline:
            return InlineCall(target, path, self.inline_block, self.inline_blocked, self.stall)
        return self.pool.caller(target)


def _work(jobs: queue.SimpleQueue[_Job | None]) -> None:
    """A worker thread: run calls until a None arrives."""
    while True:
        job = jobs.get()
        if job is None:
            return
        fn, args, kwargs, context, future, loop, settle = job
        result: Any = None
        error: BaseException | None = None
        if not future.cancelled():  # a cancelled caller's call is skipped, still settled
            try:
                result = context.run(fn, *args, **kwargs)
            except BaseException as exc:  # handed to the caller, as to_thread does
                error = exc
        try:  # noqa: SIM105 (contextlib.suppress costs three Python calls per job)
            loop.call_soon_threadsafe(settle, future, result, error)
        except RuntimeError:  # a closed loop: nobody waits any more
            pass
        # hold nothing between calls: an idle worker keeps no handler result alive
        del job, fn, args, kwargs, context, future, loop, settle, result, error


def _release(jobs: queue.SimpleQueue[_Job | None], threads: list[threading.Thread]) -> None:
    for _ in threads:
        jobs.put(None)


def _deliver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[list[str]],
             fn: Callable[[], list[str]]) -> None:
    result = fn()

    def settle() -> None:
        if not future.done():
            future.set_result(result)

    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle)
