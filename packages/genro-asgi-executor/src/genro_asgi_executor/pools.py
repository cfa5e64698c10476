"""Named pools: a thread pool and a process pool behind one small interface.

A job goes ``prepare`` (a process pool pickles it now, so an unpicklable function or argument
fails in the caller) -> ``admit`` (the ``max_pending`` bound: wait or fail fast) -> ``launch``.
Its ``future`` (an asyncio future on the server's loop) gets the result or the exception.
Bookkeeping happens on the event loop; worker threads reach it with ``call_soon_threadsafe``,
except the ``pending``/``running`` counts of a thread pool, which its threads keep themselves
(under the pool's lock) so a job needs no loop wake-up to start. A plain call (``run``, not a
task) of a thread pool skips the ``Job`` altogether: one wake-up delivers its outcome, as with
``loop.run_in_executor``.

The process pool is our own, not ``ProcessPoolExecutor``: each worker is a process with a pipe
and a reader thread, so a job's process is known. Cancelling a running job kills exactly that
process; a worker that dies fails exactly the job it was running; the others carry on, and a
replacement is started when a job needs one. ``ProcessPoolExecutor`` instead breaks as a whole
(``BrokenProcessPool``) and fails every job in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import multiprocessing.util
import os
import pickle
import signal
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Literal

from ._worker import GROUP_SIGNALS, PROTOCOL, STOP, worker_main
from .config import PoolConfig
from .context import TaskCancelled, TaskContext, run_with_context
from .errors import (
    ExecutorClosed,
    NotPicklable,
    PoolFull,
    RemoteJobError,
    RemoteTraceback,
    TaskTimedOut,
    WorkerCrashed,
)

StopReason = Literal["cancelled", "timed_out"]
ProgressSink = Callable[[float | None, str | None], None]
# a process job pickled larger than this is sent to its worker by a thread: writing it would
# hold the event loop until the worker has read it all (about 150 ms for 64 MiB here)
SEND_INLINE_MAX = 1 << 20


def call_threadsafe(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Schedule ``fn`` on ``loop`` from any thread; a closed loop (server gone) is ignored."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def describe(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class ProgressRelay:
    """Carries a job's progress from its thread to the loop, coalesced: however fast a job
    reports, at most one callback per job waits on the loop, holding the latest value."""

    __slots__ = ("_latest", "_lock", "_loop", "_pending", "_sink")

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: ProgressSink) -> None:
        self._loop = loop
        self._sink = sink
        self._lock = threading.Lock()
        self._latest: tuple[float | None, str | None] = (None, None)
        self._pending = False

    def __call__(self, fraction: float | None, message: str | None) -> None:
        with self._lock:
            self._latest = (fraction, message)
            if self._pending:
                return
            self._pending = True
        call_threadsafe(self._loop, self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            fraction, message = self._latest
            self._pending = False
        self._sink(fraction, message)


class Job:
    """One call of a function in a pool."""

    __slots__ = ("args", "cancel_event", "fn", "future", "handle", "kwargs", "on_progress",
                 "on_start", "payload", "relay", "resent", "state", "task_id")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 task_id: str | None = None) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.task_id = task_id
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # outcomes also reach task records; an unawaited failure is not an asyncio warning
        self.future.add_done_callback(_retrieve)
        self.state = "new"  # new -> pending -> running -> ended (the slot is free again)
        self.on_start: Callable[[], None] | None = None
        self.on_progress: ProgressSink | None = None
        self.cancel_event = threading.Event()
        self.payload: bytes | None = None
        self.resent = False  # its first worker died before it had it: sent to another once
        self.handle: Any = None
        self.relay: ProgressRelay | None = None

    def resolve(self, result: Any = None, error: BaseException | None = None) -> bool:
        """Settle the future once; later outcomes (a job that ends after its cancel) are
        dropped."""
        if self.future.done():
            return False
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)
        return True

    def stop(self, reason: StopReason) -> bool:
        self.cancel_event.set()
        if reason == "timed_out":
            return self.resolve(error=TaskTimedOut(f"task {self.task_id} timed out"))
        return self.resolve(error=TaskCancelled(f"task {self.task_id or describe(self.fn)} "
                                                "was cancelled"))

    def started(self) -> None:
        if self.on_start is not None:
            self.on_start()

    def progress(self, fraction: float | None, message: str | None) -> None:
        if self.on_progress is not None and not self.future.done():
            self.on_progress(fraction, message)


class Pool:
    """What thread and process pools share: admission (``max_pending``) and counters."""

    kind = ""

    def __init__(self, name: str, config: PoolConfig) -> None:
        self.name = name
        self.config = config
        self.workers = int(config.workers or 1)
        self.max_pending = config.max_pending
        self.pending = 0  # admitted, not started
        self.running = 0  # holding a worker
        # pending/running and the waiters: thread pool workers update them from their threads
        self._lock = threading.Lock()
        self.restarts = 0  # worker processes replaced after dying
        self.closed = False
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def prepare(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                task_id: str | None = None) -> Job:
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        return Job(fn, args, kwargs, task_id)

    async def admit(self) -> None:
        """Take a pending slot, waiting or failing per ``when_full`` when there is none."""
        waiter = self._enter()
        if waiter is not None:
            await self._wait_for_room(waiter)

    def _enter(self) -> asyncio.Future[None] | None:
        """Take a pending slot now (None), raise PoolFull, or queue for one: the future to
        await (``_wait_for_room``). Split from ``admit`` so the common case costs no await."""
        if self.closed or self.loop is None:
            raise ExecutorClosed(f"pool {self.name!r} is not accepting jobs")
        with self._lock:  # a thread that frees a slot now sees the waiter, or we see the slot
            if self.max_pending is None or (self.pending < self.max_pending
                                            and not self._waiters):
                self.pending += 1
                return None
            if self.config.when_full == "fail":
                raise PoolFull(self.name, self.pending, self.config.retry_after)
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
        return waiter

    async def _wait_for_room(self, waiter: asyncio.Future[None]) -> None:
        try:
            await waiter  # _hand_over gave us the slot: pending was counted for us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._leave_pending()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        if self.closed:  # closed after the hand-over, before this caller resumed
            self._leave_pending()
            raise ExecutorClosed(f"pool {self.name!r} is shutting down")

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` here and return its result (or raise its exception).

        If the caller is cancelled (a client went away) a job that has not started is
        dropped; a running one finishes and its result is discarded.
        """
        job = self.prepare(fn, args, kwargs)
        await self.admit()
        self.launch(job)
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            if job.state in ("new", "pending"):
                self.cancel(job, "cancelled")
            raise

    def launch(self, job: Job) -> None:
        raise NotImplementedError

    def cancel(self, job: Job, reason: StopReason) -> bool:
        raise NotImplementedError

    async def close(self) -> None:
        """Accept nothing more; jobs still queued are cancelled, workers are stopped."""
        self.closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ExecutorClosed(f"pool {self.name!r} is shutting down"))

    # -- bookkeeping, on the loop ------------------------------------------------------------

    def _leave_pending(self) -> None:
        with self._lock:
            self.pending -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        """Give free pending slots to the callers waiting for room, in order."""
        with self._lock:
            while self._waiters and (self.max_pending is None
                                     or self.pending < self.max_pending):
                waiter = self._waiters.popleft()
                if not waiter.done():
                    self.pending += 1
                    waiter.set_result(None)

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "workers": self.workers,
                "pending": self.pending, "running": self.running, "restarts": self.restarts}


class ThreadPool(Pool):
    """Threads: for blocking I/O and C code that releases the GIL. Cancelling a running job
    sets its cancel flag (``current_task().cancelled``); a thread cannot be stopped."""

    kind = "thread"

    def __init__(self, name: str, config: PoolConfig) -> None:
        super().__init__(name, config)
        self._executor: ThreadPoolExecutor | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        super().start(loop)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=f"pool-{self.name}")

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``Pool.run`` without a ``Job``: no task context, progress or cancel flag to carry,
        so the thread counts itself and a single loop wake-up delivers the outcome."""
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        waiter = self._enter()
        if waiter is not None:
            await self._wait_for_room(waiter)
        loop, executor = self.loop, self._executor
        assert loop is not None and executor is not None
        future: asyncio.Future[Any] = loop.create_future()
        handle = executor.submit(self._hold, fn, args, kwargs)
        handle.add_done_callback(functools.partial(call_threadsafe, loop, self._settle, future))
        try:
            return await future
        except asyncio.CancelledError:
            handle.cancel()  # not started: it never runs (_settle frees its slot); else discarded
            raise

    def _settle(self, future: asyncio.Future[Any], done: ConcurrentFuture[Any]) -> None:
        if done.cancelled():  # never started (caller gone, or shutdown): its slot is free
            self._leave_pending()
            error: BaseException | None = TaskCancelled("cancelled before it started")
        else:
            error = done.exception()
        if future.done():  # the caller went away
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(done.result())

    def launch(self, job: Job) -> None:
        loop, executor = self.loop, self._executor
        assert loop is not None and executor is not None
        job.state = "pending"
        context = None
        if job.task_id is not None:
            job.relay = ProgressRelay(loop, job.progress)
            context = TaskContext(job.task_id, job.relay, job.cancel_event)
        handle = job.handle = executor.submit(self._hold, self._work, (loop, job, context), {})
        handle.add_done_callback(lambda done: call_threadsafe(loop, self._done, job, done))

    # -- in the worker thread ----------------------------------------------------------------

    def _hold(self, fn: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        """Every thread job runs inside this: it counts as running while it holds the thread."""
        with self._lock:
            self.pending -= 1
            self.running += 1
            wake = bool(self._waiters)
        if wake:  # the slot this job left belongs to a caller waiting for room
            assert self.loop is not None
            call_threadsafe(self.loop, self._hand_over)
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1

    def _work(self, loop: asyncio.AbstractEventLoop, job: Job,
              context: TaskContext | None) -> Any:
        if job.cancel_event.is_set():
            raise TaskCancelled("cancelled before it started")
        call_threadsafe(loop, self._started, job)
        return run_with_context(context, job.fn, job.args, job.kwargs)

    # -- task jobs, on the loop --------------------------------------------------------------

    def _started(self, job: Job) -> None:
        if job.state != "pending":
            return
        job.state = "running"
        if not job.future.done():  # not stopped in the instant before it started
            job.started()

    def _done(self, job: Job, done: ConcurrentFuture[Any]) -> None:
        # _started was scheduled by the thread before the job ran, so it came first
        job.state = "ended"
        if done.cancelled():  # never started: its slot is free again
            self._leave_pending()
            job.resolve(error=TaskCancelled("cancelled before it started"))
            return
        error = done.exception()
        if error is not None:
            job.resolve(error=error)
        else:
            job.resolve(done.result())

    def cancel(self, job: Job, reason: StopReason) -> bool:
        if job.future.done():
            return False
        if job.state == "new":
            job.state = "ended"
            self._leave_pending()
        elif job.state == "pending" and job.handle is not None:
            job.handle.cancel()  # never started: it will not run; _done does the accounting
        return job.stop(reason)

    async def close(self) -> None:
        await super().close()
        if self._executor is not None:
            # running threads cannot be stopped: they end when their job returns
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class _Worker:
    __slots__ = ("conn", "exited", "job", "killed", "process", "sending", "started")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.job: Job | None = None
        self.killed = False
        # it said it has its first job: it is up, and reads the next ones as they come
        self.started = False
        self.sending: Job | None = None  # the large job a thread is writing to it
        self.exited = False  # its reader saw it exit while a job was being written


class ProcessPool(Pool):
    """Processes: for CPU-bound work. Functions and arguments must be picklable (module-level
    functions); cancelling a running job stops its process."""

    kind = "process"

    def __init__(self, name: str, config: PoolConfig) -> None:
        super().__init__(name, config)
        self._mp = multiprocessing.get_context(config.start_method)
        self._queue: deque[Job] = deque()
        self._idle: list[_Worker] = []
        self._alive: set[_Worker] = set()
        self._dying: set[_Worker] = set()  # killed, until their reader has reaped them
        self._finalizer: multiprocessing.util.Finalize | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        super().start(loop)
        # workers ignore SIGTERM (group signals are the server's), so multiprocessing's own
        # exit handler, which terminates then joins every child, would wait forever on a
        # pool never closed: this runs before it (and when the pool is collected) and kills
        self._finalizer = multiprocessing.util.Finalize(
            self, _kill_leftovers, args=(self._alive, self._dying), exitpriority=10)

    @property
    def processes(self) -> int:
        return len(self._alive)

    def prepare(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                task_id: str | None = None) -> Job:
        job = super().prepare(fn, args, kwargs, task_id)
        try:
            job.payload = pickle.dumps((task_id, fn, args, kwargs), PROTOCOL)
        except Exception as exc:
            raise NotPicklable(
                f"cannot send {describe(fn)} to process pool {self.name!r}: {exc} (a process "
                "job needs a module-level function and picklable arguments)") from exc
        return job

    def launch(self, job: Job) -> None:
        assert self.loop is not None
        job.state = "pending"
        if job.task_id is not None:
            job.relay = ProgressRelay(self.loop, job.progress)
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and not self.closed:
            if self._idle:
                worker = self._idle.pop()
            elif len(self._alive) < self.workers:
                worker = self._spawn()
            else:
                return
            job = self._queue.popleft()
            worker.job = job
            payload = job.payload or b""
            if len(payload) > SEND_INLINE_MAX:
                # a large job would hold the loop while the worker drains the pipe: a thread
                # sends it, and the job stays pending until _sent() hears it arrived
                worker.sending = job
                threading.Thread(target=self._send, args=(self.loop, worker, job, payload),
                                 daemon=True, name=f"pool-{self.name}-send").start()
                continue
            try:
                worker.conn.send_bytes(payload)
            except OSError:  # it died while idle; its reader reports the exit
                self._take_back(worker, job)
                continue
            # a worker that is up reads it at once; a new one says when it has it (_received)
            if worker.started and not self._mark_started(job):
                self._kill(worker)  # stopped in the meantime: recycle the worker

    def _send(self, loop: asyncio.AbstractEventLoop, worker: _Worker, job: Job,
              payload: bytes) -> None:
        try:
            worker.conn.send_bytes(payload)
        except (OSError, ValueError):  # it died (or was killed) before it had it all
            call_threadsafe(loop, self._sent, worker, job, False)
        else:
            call_threadsafe(loop, self._sent, worker, job, True)

    def _sent(self, worker: _Worker, job: Job, arrived: bool) -> None:
        """On the loop, once the thread writing ``job`` to ``worker`` is done with the pipe."""
        if worker.sending is job:
            worker.sending = None
        # not cancelled, answered nor shut down, yet the worker died before it had the whole
        # job: the job never ran, so once more on another worker (only once: reading it may
        # be what killed this one)
        if worker.job is job and not self.closed:
            if arrived:
                if worker.started and job.state == "pending" and not self._mark_started(job):
                    self._kill(worker)  # stopped while it was being sent
            elif not job.resent:
                job.resent = True
                self._take_back(worker, job)
                self._dispatch()
        if worker.exited and worker.sending is None:
            self._exited(worker)  # deferred until the pipe was no longer being written

    def _received(self, worker: _Worker, job: Job | None) -> None:
        """On the loop: a new ``worker`` is up and has read its first job, ``job``."""
        worker.started = True
        if job is None or worker.job is not job or worker.killed:  # cancelled or shut down
            return
        if job.state == "pending" and not self._mark_started(job):  # stopped on its way
            self._kill(worker)

    def _take_back(self, worker: _Worker, job: Job) -> None:
        """``worker`` died before it had ``job``: the job goes back to the head of the queue
        and the worker is written off (its reader still reports the exit)."""
        worker.job = None
        worker.killed = True
        self._alive.discard(worker)
        self._queue.appendleft(job)

    # process jobs are counted on the loop: the pool hands each job to its worker from here
    def _mark_started(self, job: Job) -> bool:
        if job.state != "pending":
            return False
        job.state = "running"
        self.running += 1
        self._leave_pending()
        if job.future.done():  # stopped while queued, in the instant before it started
            return False
        job.started()
        return True

    def _mark_ended(self, job: Job) -> None:
        if job.state == "pending":
            self._leave_pending()
        elif job.state == "running":
            self.running -= 1
        job.state = "ended"

    def _spawn(self) -> _Worker:
        assert self.loop is not None
        parent_end, child_end = self._mp.Pipe()
        process = self._mp.Process(target=worker_main, args=(child_end, os.getpid()),
                                   daemon=True, name=f"pool-{self.name}")
        # a spawned worker inherits this thread's mask: a group signal while it starts waits
        # for its handler (a forkserver's workers inherit the forkserver's, start_forkserver)
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        child_end.close()
        worker = _Worker(process, parent_end)
        self._alive.add(worker)
        threading.Thread(target=self._read, args=(self.loop, worker), daemon=True,
                         name=f"pool-{self.name}-reader-{process.pid}").start()
        return worker

    def _read(self, loop: asyncio.AbstractEventLoop, worker: _Worker) -> None:
        """The reader thread of one worker: outcomes are unpickled here, off the loop."""
        while True:
            try:
                data = worker.conn.recv_bytes()
            except (EOFError, OSError):
                break
            try:
                message = pickle.loads(data)
            except Exception as exc:
                message = ("error", None, "pickle", "cannot load what the worker sent back: "
                           f"{exc!r}", "")
            if message[0] == "progress":
                job = worker.job
                if job is not None and job.relay is not None:
                    job.relay(message[1], message[2])
            elif message[0] == "received":  # once per worker: it is up and has its first job
                job = worker.job
                call_threadsafe(loop, self._received, worker, job)
            else:
                call_threadsafe(loop, self._outcome, worker, message)
        worker.process.join(5)  # the exit code, waited for here rather than on the loop
        if worker.process.exitcode is None:  # its pipe closed, yet it lives on: do not leak it
            with contextlib.suppress(OSError, ValueError, AttributeError):
                worker.process.kill()
                worker.process.join(5)
        call_threadsafe(loop, self._exited, worker)

    def _outcome(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        job, worker.job = worker.job, None
        if job is not None:
            if job.state == "pending":  # answered before _received() ran: it did start
                self._mark_started(job)
            self._mark_ended(job)
            if message[0] == "ok":
                job.resolve(message[1])
            else:
                job.resolve(error=_rebuild_error(*message[1:]))
        if worker in self._alive and not worker.killed:
            self._idle.append(worker)
        self._dispatch()

    def _exited(self, worker: _Worker) -> None:
        if worker.sending is not None:  # a thread still writes to its pipe: _sent() ends it
            worker.exited = True
            return
        self._alive.discard(worker)
        self._dying.discard(worker)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        worker.conn.close()
        job, worker.job = worker.job, None
        if job is not None and job.state == "pending" and not worker.killed \
                and not job.resent and not self.closed:
            # a new worker that died before it had its first job (while it started), so the
            # job never ran: once more on another worker (only once: reading it may be what
            # killed it)
            job.resent = True
            self.restarts += 1
            self._queue.appendleft(job)
        elif job is not None:
            self._mark_ended(job)
            if not worker.killed:
                self.restarts += 1
            job.resolve(error=WorkerCrashed(
                f"the worker process (pid {worker.process.pid}) of pool {self.name!r} died "
                f"({_exit_reason(worker.process.exitcode)}) while running "
                f"{describe(job.fn)}; the pool replaces it and keeps serving"))
        elif not worker.killed and not self.closed:
            self.restarts += 1
        self._dispatch()

    def _kill(self, worker: _Worker) -> None:
        worker.killed = True
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        self._alive.discard(worker)  # a replacement may start before this one is reaped
        self._dying.add(worker)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            worker.process.kill()

    def cancel(self, job: Job, reason: StopReason) -> bool:
        if job.future.done():
            return False
        if job.state == "new":
            job.state = "ended"
            self._leave_pending()
        elif job.state == "pending":
            with contextlib.suppress(ValueError):
                self._queue.remove(job)
            for worker in list(self._alive):
                if worker.job is job:  # being sent to it: that worker would run it anyway
                    worker.job = None
                    self._kill(worker)
            self._mark_ended(job)
        elif job.state == "running":
            for worker in list(self._alive):
                if worker.job is job:
                    self._kill(worker)  # _exited ends the job's accounting
        return job.stop(reason)

    async def close(self) -> None:
        await super().close()
        while self._queue:
            job = self._queue.popleft()
            self._mark_ended(job)
            job.resolve(error=ExecutorClosed(f"pool {self.name!r} shut down before the job "
                                              "started"))
        workers = list(self._alive)
        dying = [w.process for w in self._dying]  # killed before: gone by the time close ends
        for worker in workers:
            if worker.job is not None:
                job = worker.job
                self._kill(worker)
                job.resolve(error=ExecutorClosed(f"pool {self.name!r} shut down"))
            else:
                worker.killed = True
                with contextlib.suppress(OSError):
                    worker.conn.send_bytes(STOP)  # the worker returns; its reader sees EOF
        self._alive.clear()
        self._idle.clear()
        await asyncio.to_thread(_reap, [w.process for w in workers] + dying)
        if self._finalizer is not None:
            self._finalizer.cancel()
            self._finalizer = None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _kill_leftovers(alive: set[_Worker], dying: set[_Worker]) -> None:
    """The workers of a pool that was never closed, at exit: killed and reaped."""
    processes = [w.process for w in (*alive, *dying)]
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.kill()
    _reap(processes)


def _reap(processes: list[Any], timeout: float = 5.0) -> None:
    for process in processes:
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(timeout)


def _rebuild_error(exc_bytes: bytes | None, kind: str, message: str,
                   text: str) -> BaseException:
    error: BaseException | None = None
    if exc_bytes is not None:
        with contextlib.suppress(Exception):
            error = pickle.loads(exc_bytes)
    if not isinstance(error, BaseException):
        error = RemoteJobError(f"{kind}: {message}")
    if text:
        error.__cause__ = RemoteTraceback(text)
    return error


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
