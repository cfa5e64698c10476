"""TaskManager: long jobs with an id, a state, progress, cancellation, timeouts and retention.

States: ``pending`` (accepted, waiting for a worker) -> ``running`` -> ``done`` | ``failed`` |
``cancelled`` | ``timed_out``; a pending task can also be cancelled. Every change is saved to
the store and announced through ``emit`` (the plugin turns it into the
``genro_asgi_executor_task_event`` hook); progress is announced but not stored.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable, Collection, Iterable
from typing import Any

from genro_toolbox import get_uuid

from genro_asgi.identity import Identity

from .context import TaskCancelled
from .errors import (
    ExecutorClosed,
    RemoteJobError,
    RemoteTraceback,
    ResultUnavailable,
    TaskNotFinished,
    TaskTimedOut,
    UnknownTask,
)
from .pools import Job, Pool
from .records import (
    CANCELLED,
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    STATES,
    TIMED_OUT,
    TaskRecord,
)
from .store import TaskStore

Emit = Callable[[dict[str, Any]], None]
MAX_NAME = 200


def owner_key(identity: Identity | None) -> str | None:
    """How a task records its owner: ``backend:id``, so that equal names proved by different
    backends (a basic user and a JWT subject) are different owners."""
    if identity is None:
        return None
    backend = getattr(identity, "backend", "")
    return f"{backend}:{identity.id}" if backend else str(identity.id)


class TaskManager:
    """The tasks of one server. Use it from the event loop."""

    def __init__(self, pools: dict[str, Pool], store: TaskStore, emit: Emit, *,
                 default_pool: str | None, retention: float, max_records: int) -> None:
        self.pools = pools
        self.store = store
        self.emit = emit
        self.default_pool = default_pool
        self.retention = retention
        self.max_records = max_records
        self.records: dict[str, TaskRecord] = {}
        self.closed = False
        self._jobs: dict[str, Job] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def load(self) -> int:
        """Take the records of previous runs from the store; returns how many."""
        for record in self.store.load():
            self.records[record.task_id] = record
        self.purge()
        return len(self.records)

    # -- the API -----------------------------------------------------------------------------

    async def submit(self, fn: Callable[..., Any], *args: Any, pool: str | None = None,
                     name: str | None = None, timeout: float | None = None,
                     owner: Identity | None = None, **kwargs: Any) -> str:
        """Start ``fn(*args, **kwargs)`` as a task in ``pool``; returns its id at once.

        ``timeout`` (seconds) counts from the start of the run; ``owner`` is the identity
        the task belongs to (``request.identity``): the task API shows and cancels it for
        that identity and admins. Raises PoolFull (the pool's queue is full and it fails
        fast), NotPicklable (process pools), ExecutorClosed.
        """
        if owner is not None and not isinstance(owner, Identity):
            raise TypeError(f"owner must be an Identity (request.identity) or None, "
                            f"not {type(owner).__name__}")
        if self.closed:
            raise ExecutorClosed("the executor is shutting down: no new tasks")
        target = self._pool(pool)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        task_name = str(name if name is not None else getattr(fn, "__qualname__", "task"))
        task_id = get_uuid()
        job = target.prepare(fn, args, kwargs, task_id)
        await target.admit()
        if self.closed:  # shutdown began while this call waited for room
            target.cancel(job, "cancelled")
            raise ExecutorClosed("the executor is shutting down: no new tasks")
        record = TaskRecord(task_id, task_name[:MAX_NAME], target.name, timeout=timeout,
                            owner=owner_key(owner))
        self.records[task_id] = record
        self._jobs[task_id] = job
        job.on_start = lambda: self._started(task_id)
        job.on_progress = lambda fraction, message: self._progressed(task_id, fraction, message)
        job.future.add_done_callback(lambda _: self._finish(task_id))
        self._changed(record)
        target.launch(job)
        return task_id

    def status(self, task_id: str) -> TaskRecord:
        """A snapshot of the task's record. Raises UnknownTask."""
        return self._record(task_id).snapshot()

    async def result(self, task_id: str, *, wait: bool = True,
                     timeout: float | None = None) -> Any:
        """The task's result; its exception when it failed; TaskCancelled or TaskTimedOut.

        ``wait=False`` raises TaskNotFinished for an unfinished task; with ``wait`` the call
        waits (up to ``timeout`` seconds, then TimeoutError; the task goes on).
        """
        record = self._record(task_id)
        if not record.finished:
            job = self._jobs.get(task_id)
            if not wait or job is None:
                raise TaskNotFinished(f"task {task_id} is {record.state}")
            done, _ = await asyncio.wait({job.future}, timeout=timeout)
            if not done:
                raise TimeoutError(f"task {task_id} did not finish within {timeout}s")
            self._finish(task_id)
        return _outcome(record)

    def cancel(self, task_id: str) -> bool:
        """Cancel a pending or running task; False when it had already finished.

        A process job's process is stopped; a thread job gets its cancel flag set and the
        task is recorded as cancelled at once (what the thread still does is discarded).
        """
        record = self._record(task_id)
        job = self._jobs.get(task_id)
        if record.finished or job is None:
            return False
        stopped = self.pools[record.pool].cancel(job, "cancelled")
        self._finish(task_id)
        return stopped

    def list(self, *, state: str | Iterable[str] | None = None, name: str | None = None,
             pool: str | None = None, limit: int | None = None,
             owners: Collection[str] | None = None) -> list[TaskRecord]:
        """Snapshots of the tasks matching every filter given, newest first; ``owners``: only
        tasks owned by one of them (an empty collection: none)."""
        states = _states(state)
        found = []
        for record in reversed(self.records.values()):
            if (states is None or record.state in states) and (
                    name is None or record.name == name) and (
                    pool is None or record.pool == pool) and (
                    owners is None or record.owner in owners):
                found.append(record.snapshot())
                if limit is not None and len(found) >= limit:
                    break
        return found

    def counts(self) -> dict[str, int]:
        """How many records are in each state."""
        totals = dict.fromkeys(STATES, 0)
        for record in self.records.values():
            totals[record.state] += 1
        return totals

    def purge(self, now: float | None = None) -> int:
        """Drop finished records older than ``retention``, then the oldest finished ones
        beyond ``max_records``. Returns how many went."""
        now = time.time() if now is None else now
        finished = [r for r in self.records.values() if r.finished]
        expired = {r.task_id for r in finished
                   if (r.finished_at or r.created_at) < now - self.retention}
        excess = len(finished) - len(expired) - self.max_records
        if excess > 0:
            kept = sorted((r for r in finished if r.task_id not in expired),
                          key=lambda r: r.finished_at or r.created_at)
            expired.update(r.task_id for r in kept[:excess])
        for task_id in expired:
            del self.records[task_id]
        self.store.delete(sorted(expired))
        return len(expired)

    async def close(self, timeout: float) -> None:
        """Graceful shutdown: refuse new tasks, cancel the pending ones, give the running
        ones ``timeout`` seconds, then cancel them. Every task ends recorded."""
        self.closed = True
        for task_id, job in list(self._jobs.items()):
            if job.state in ("new", "pending"):
                self._stop(task_id, "cancelled: the server shut down before it started")
        running = [job.future for job in self._jobs.values()]
        if running and timeout > 0:
            await asyncio.wait(running, timeout=timeout)
        for task_id in list(self._jobs):
            self._stop(task_id, f"cancelled: still running {timeout:g}s into shutdown")

    # -- transitions (on the loop) -----------------------------------------------------------

    def _started(self, task_id: str) -> None:
        record = self.records.get(task_id)
        if record is None or record.state != PENDING:
            return
        record.state = RUNNING
        record.started_at = time.time()
        if record.timeout is not None:
            loop = asyncio.get_running_loop()
            self._timers[task_id] = loop.call_later(record.timeout, self._time_out, task_id)
        self._changed(record)

    def _progressed(self, task_id: str, fraction: float | None, message: str | None) -> None:
        record = self.records.get(task_id)
        if record is None or record.finished:
            return
        if fraction is not None:
            record.progress = fraction
        record.message = message
        self.emit(record.event("progress"))

    def _time_out(self, task_id: str) -> None:
        self._timers.pop(task_id, None)
        record = self.records.get(task_id)
        job = self._jobs.get(task_id)
        if record is not None and job is not None and not record.finished:
            self.pools[record.pool].cancel(job, "timed_out")
            self._finish(task_id)

    def _stop(self, task_id: str, reason: str) -> None:
        job = self._jobs.get(task_id)
        record = self.records.get(task_id)
        if job is None or record is None:
            return
        self.pools[record.pool].cancel(job, "cancelled")
        self._finish(task_id, reason)

    def _finish(self, task_id: str, reason: str | None = None) -> None:
        """Record the outcome of a settled job (idempotent: the first call wins)."""
        job = self._jobs.get(task_id)
        record = self.records.get(task_id)
        if job is None or record is None or not job.future.done():
            return
        del self._jobs[task_id]
        timer = self._timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()
        error = job.future.exception()
        if error is None:
            record.state = DONE
            record.result = job.future.result()
            if record.progress is not None:
                record.progress = 1.0
        elif isinstance(error, TaskTimedOut):
            record.state = TIMED_OUT
            record.error = f"timed out after {record.timeout:g}s"
        elif isinstance(error, TaskCancelled):
            record.state = CANCELLED
            record.error = reason or "cancelled"
        else:
            record.state = FAILED
            record.error = f"{type(error).__name__}: {error}"[:2000]
            record.traceback = "".join(traceback.format_exception(error))
            record.exception = error
        record.finished_at = time.time()
        self._changed(record)
        if len(self.records) > self.max_records:
            self.purge()

    def _changed(self, record: TaskRecord) -> None:
        self.store.save(record)
        self.emit(record.event("state"))

    # -- helpers -----------------------------------------------------------------------------

    def _pool(self, name: str | None) -> Pool:
        name = name or self.default_pool
        pool = self.pools.get(name) if name is not None else None
        if pool is None:
            raise ValueError(f"no pool named {name!r} (pools: {', '.join(self.pools) or 'none'})")
        return pool

    def _record(self, task_id: str) -> TaskRecord:
        record = self.records.get(task_id) if isinstance(task_id, str) else None
        if record is None:
            raise UnknownTask(f"no task {task_id!r}")
        return record


def _states(state: str | Iterable[str] | None) -> frozenset[str] | None:
    if state is None:
        return None
    wanted = frozenset([state] if isinstance(state, str) else state)
    unknown = wanted - set(STATES)
    if unknown:
        raise ValueError(f"unknown state(s) {', '.join(sorted(unknown))} "
                         f"(states: {', '.join(STATES)})")
    return wanted


def _outcome(record: TaskRecord) -> Any:
    if record.state == DONE:
        if record.result is None and record.result_error is not None:
            raise ResultUnavailable(f"task {record.task_id}: {record.result_error}")
        return record.result
    if record.state == CANCELLED:
        raise TaskCancelled(f"task {record.task_id} {record.error or 'cancelled'}")
    if record.state == TIMED_OUT:
        raise TaskTimedOut(f"task {record.task_id} {record.error or 'timed out'}")
    if record.exception is not None:
        raise record.exception
    error = RemoteJobError(record.error or "failed")
    if record.traceback:
        error.__cause__ = RemoteTraceback(record.traceback)
    raise error
