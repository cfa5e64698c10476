"""Thread and process pools: results, exceptions, pickling, max_pending, dying workers."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any

import executor_jobs as jobs
import pytest
from executor_helpers import HANG_GUARD, running, until

from genro_asgi_executor import (
    ExecutorClosed,
    NotPicklable,
    PoolFull,
    RemoteJobError,
    RemoteTraceback,
    TaskCancelled,
    WorkerCrashed,
)


async def test_run_blocking_runs_in_a_pool_thread(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        assert await executor.run_blocking(jobs.add, 2, b=3) == 5
        seen = await executor.run_blocking(jobs.whoami)
    assert seen["pid"] == os.getpid()
    assert seen["thread"].startswith("pool-io")
    assert seen["task_id"] is None


async def test_run_process_runs_in_another_process(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        seen = await executor.run_process(jobs.whoami)
        assert await executor.run_in("cpu", jobs.add, 40, 2) == 42
    assert seen["pid"] != os.getpid()


async def test_thread_exception_keeps_its_traceback(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        with pytest.raises(ValueError, match="bad input") as info:
            await executor.run_blocking(jobs.boom, "bad input")
    assert "boom" in [entry.name for entry in info.traceback]


async def test_process_exception_carries_the_remote_traceback(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        with pytest.raises(ValueError, match="far away") as info:
            await executor.run_process(jobs.boom, "far away")
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "jobs.py" in cause.text and "in boom" in cause.text


async def test_an_exception_that_cannot_be_rebuilt_still_arrives(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        with pytest.raises(RemoteJobError, match="Unpicklable: 1-2"):
            await executor.run_process(jobs.raise_unpicklable)


async def test_unpicklable_function_argument_and_result_are_clear_errors(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        with pytest.raises(NotPicklable, match="module-level function"):
            await executor.run_process(lambda: 1)
        with pytest.raises(NotPicklable, match="add"):
            await executor.run_process(jobs.add, threading.Lock())
        with pytest.raises(RemoteJobError, match="not picklable"):
            await executor.run_process(jobs.return_lock)
        pool = executor.pool("cpu")
        assert pool.pending == 0 and pool.running == 0
        assert await executor.run_process(jobs.add, 1, 1) == 2  # the pool is fine


async def test_a_dying_worker_fails_its_job_and_is_replaced(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        first = (await executor.run_process(jobs.whoami))["pid"]
        with pytest.raises(WorkerCrashed, match=r"exit code 7.*die.*keeps serving"):
            await executor.run_process(jobs.die, 7)
        with pytest.raises(WorkerCrashed, match="killed by SIGKILL"):
            await executor.run_process(jobs.kill_self)
        pool = executor.pool("cpu")
        assert pool.restarts == 2
        # the pool keeps serving, concurrently, with new processes as needed
        results = await asyncio.gather(*[executor.run_process(jobs.add, i, 1)
                                          for i in range(6)])
        assert results == [1, 2, 3, 4, 5, 6]
        assert pool.processes <= 2
        assert first  # a pid


async def test_a_crash_fails_only_the_job_on_that_worker(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    async with running(tmp_path) as executor:
        survivor = asyncio.ensure_future(
            executor.run_process(jobs.wait_for_file, str(flag), 0))
        await until(lambda: executor.pool("cpu").running == 1, "the first job to start")
        with pytest.raises(WorkerCrashed):
            await executor.run_process(jobs.die)
        flag.write_text("still here")
        assert await asyncio.wait_for(survivor, 30) == "still here"


async def test_a_worker_that_closes_its_pipe_is_stopped_not_leaked(tmp_path: Path) -> None:
    from executor_helpers import pid_alive

    pid_file = tmp_path / "pid"
    async with running(tmp_path) as executor:
        with pytest.raises(WorkerCrashed):
            await executor.run_process(jobs.close_pipe_and_linger, str(pid_file))
        assert not pid_alive(int(pid_file.read_text()))  # reaped before the job failed
        assert await executor.run_process(jobs.add, 1, 2) == 3


async def test_full_pool_fails_fast_with_retry_after(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1, "max_pending": 1, "retry_after": 7}}
    async with running(tmp_path, pools=pools) as executor:
        busy = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, started, release))
        await until(lambda: executor.pool("io").running == 1, "the worker to be busy")
        queued = asyncio.ensure_future(executor.run_blocking(jobs.add, 1))
        await until(lambda: executor.pool("io").pending == 1, "one pending job")
        with pytest.raises(PoolFull) as info:
            await executor.run_blocking(jobs.add, 2)
        assert info.value.status_code == 503
        assert info.value.headers == {"Retry-After": "7"}
        release.set()
        assert await busy == "finished anyway"
        assert await queued == 1


async def test_a_pool_is_bounded_by_default(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1}}
    async with running(tmp_path, pools=pools) as executor:
        pool = executor.pool("io")
        assert pool.max_pending == 1000
        busy = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, started, release))
        await until(lambda: pool.running == 1, "the worker to be busy")
        queued = [asyncio.ensure_future(executor.run_blocking(jobs.add, n)) for n in range(1000)]
        await until(lambda: pool.pending == 1000, "a thousand pending jobs")
        with pytest.raises(PoolFull) as info:  # the flood is refused, not queued
            await executor.run_blocking(jobs.add, -1)
        assert info.value.status_code == 503
        release.set()
        assert await busy == "finished anyway"
        assert await asyncio.gather(*queued) == list(range(1000))


async def test_max_pending_null_is_unbounded(tmp_path: Path) -> None:
    pools = {"io": {"kind": "thread", "workers": 1, "max_pending": None}}
    async with running(tmp_path, pools=pools) as executor:
        assert executor.pool("io").max_pending is None


async def test_full_pool_can_wait_for_room(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1, "max_pending": 1, "when_full": "wait"}}
    async with running(tmp_path, pools=pools) as executor:
        pool = executor.pool("io")
        busy = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, started, release))
        await until(lambda: pool.running == 1, "the worker to be busy")
        queued = asyncio.ensure_future(executor.run_blocking(jobs.add, 1))
        waiting = asyncio.ensure_future(executor.run_blocking(jobs.add, 2))
        await until(lambda: len(pool._waiters) == 1, "a caller waiting for room")
        assert not waiting.done()
        release.set()
        assert await asyncio.gather(busy, queued, waiting) == ["finished anyway", 1, 2]
        assert pool.pending == 0 and pool.running == 0


async def test_a_cancelled_waiter_gives_its_place_back(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1, "max_pending": 1, "when_full": "wait"}}
    async with running(tmp_path, pools=pools) as executor:
        pool = executor.pool("io")
        busy = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, started, release))
        await until(lambda: pool.running == 1, "the worker to be busy")
        queued = asyncio.ensure_future(executor.run_blocking(jobs.add, 1))
        waiting = asyncio.ensure_future(executor.run_blocking(jobs.add, 2))
        await until(lambda: len(pool._waiters) == 1, "a caller waiting")
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        release.set()
        assert await asyncio.gather(busy, queued) == ["finished anyway", 1]
        assert pool.pending == 0 and not pool._waiters


async def test_process_pool_max_pending(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    pools = {"cpu": {"kind": "process", "workers": 1, "max_pending": 1}}
    async with running(tmp_path, pools=pools) as executor:
        first = asyncio.ensure_future(executor.run_process(jobs.wait_for_file, str(flag), 0))
        await until(lambda: executor.pool("cpu").running == 1, "the job to start")
        second = asyncio.ensure_future(executor.run_process(jobs.add, 5))
        await until(lambda: executor.pool("cpu").pending == 1, "one pending")
        with pytest.raises(PoolFull):
            await executor.run_process(jobs.add, 6)
        flag.write_text("ok")
        assert await asyncio.gather(first, second) == ["ok", 5]


async def test_closed_pool_refuses_and_unknown_pool_is_named(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        with pytest.raises(ValueError, match="no pool named 'gpu'"):
            await executor.run_in("gpu", jobs.add, 1)
        pool = executor.pool("io")
    with pytest.raises(ExecutorClosed):
        await pool.run(jobs.add, 1)


async def test_shutdown_stops_every_worker_process(tmp_path: Path) -> None:
    from executor_helpers import pid_alive

    async with running(tmp_path) as executor:
        pids = await asyncio.gather(*[executor.run_process(jobs.whoami) for _ in range(2)])
    for seen in pids:
        await until(lambda seen=seen: not pid_alive(seen["pid"]), "the worker to exit")


# -- plain thread calls (run_blocking / run_in): no Job, the thread counts itself ------------


async def test_a_plain_call_cancelled_while_pending_never_runs(tmp_path: Path) -> None:
    started, release, ran = threading.Event(), threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1}}
    async with running(tmp_path, pools=pools) as executor:
        pool = executor.pool("io")
        busy = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, started, release))
        await until(lambda: pool.running == 1, "the worker to be busy")
        queued = asyncio.ensure_future(executor.run_blocking(ran.set))
        await until(lambda: pool.pending == 1, "one pending job")
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await until(lambda: pool.pending == 0, "the slot to be given back")
        release.set()
        assert await busy == "finished anyway"
        assert await executor.run_blocking(jobs.add, 1) == 1  # after the queued one, in order
        assert not ran.is_set()
        assert pool.pending == 0 and pool.running == 0


async def test_a_plain_call_cancelled_while_running_is_discarded(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    async with running(tmp_path) as executor:
        pool = executor.pool("io")
        call = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, started, release))
        await until(lambda: pool.running == 1, "the job to run")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert pool.running == 1  # a thread cannot be stopped: it still holds its worker
        release.set()
        await until(lambda: pool.running == 0, "the thread to return")
        assert await executor.run_blocking(jobs.add, 2, 3) == 5


async def test_a_plain_call_that_raises_frees_its_worker(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        pool = executor.pool("io")
        results = await asyncio.gather(*[executor.run_blocking(jobs.boom, f"no {i}")
                                         for i in range(5)], return_exceptions=True)
        assert [str(error) for error in results] == [f"no {i}" for i in range(5)]
        assert all(isinstance(error, ValueError) for error in results)
        assert pool.pending == 0 and pool.running == 0
        with pytest.raises(TypeError, match="not callable"):
            await executor.run_blocking(42)
        assert pool.pending == 0


async def test_a_waiter_gets_the_slot_when_a_queued_call_starts(tmp_path: Path) -> None:
    first, release_first = threading.Event(), threading.Event()
    second, release_second = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1, "max_pending": 1, "when_full": "wait"}}
    async with running(tmp_path, pools=pools) as executor:
        pool = executor.pool("io")
        busy = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, first,
                                                           release_first))
        await until(lambda: pool.running == 1, "the worker to be busy")
        queued = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, second,
                                                             release_second))
        await until(lambda: pool.pending == 1, "one pending job")
        waiting = asyncio.ensure_future(executor.run_blocking(jobs.add, 3))
        await until(lambda: len(pool._waiters) == 1, "a caller waiting for room")
        release_first.set()
        # the queued call took the worker: its thread hands its pending slot to the waiter
        await until(lambda: second.is_set() and not pool._waiters, "the waiter admitted")
        assert (pool.running, pool.pending) == (1, 1)
        release_second.set()
        assert list(await asyncio.gather(busy, queued, waiting)) == ["finished anyway"] * 2 + [3]
        assert pool.pending == 0 and pool.running == 0


async def test_shutdown_fails_plain_calls_that_had_not_started(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1}}
    async with running(tmp_path, pools=pools) as executor:
        pool = executor.pool("io")
        busy = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, started, release))
        await until(lambda: pool.running == 1, "the worker to be busy")
        queued = asyncio.ensure_future(executor.run_blocking(jobs.add, 1))
        await until(lambda: pool.pending == 1, "one pending job")
        await pool.close()
        with pytest.raises(TaskCancelled, match="before it started"):
            await queued
        assert pool.pending == 0
        release.set()
        assert await busy == "finished anyway"  # a running job still returns its result


async def test_a_caller_given_room_as_the_pool_closes_is_refused(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1, "max_pending": 1, "when_full": "wait"}}
    async with running(tmp_path, pools=pools) as executor:
        pool = executor.pool("io")
        busy = asyncio.ensure_future(executor.run_blocking(jobs.ignore_cancel, started, release))
        await until(lambda: pool.running == 1, "the worker to be busy")
        queued = asyncio.ensure_future(executor.run_blocking(jobs.add, 1))
        waiting = asyncio.ensure_future(executor.run_blocking(jobs.add, 2))
        await until(lambda: len(pool._waiters) == 1, "a caller waiting for room")
        pool.max_pending = 2
        pool._hand_over()  # room for the waiter: it resumes only after the close below
        await pool.close()
        with pytest.raises(ExecutorClosed, match="shutting down"):
            await waiting
        with pytest.raises(TaskCancelled):
            await queued
        release.set()
        assert await busy == "finished anyway"
        await until(lambda: pool.pending == 0 and pool.running == 0, "the accounting")


class GatedSend:
    """ProcessPool._send held until ``release()``: a large job caught while being sent. Each
    send waits for its own release; ``open()`` lets every send through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from genro_asgi_executor import pools

        self.gates: list[threading.Event] = []
        self.workers: list[Any] = []
        self.threads: list[str] = []
        self.opened = threading.Event()
        original = pools.ProcessPool._send

        def gated(pool: Any, loop: Any, worker: Any, job: Any, payload: bytes) -> None:
            gate = threading.Event()
            self.gates.append(gate)
            self.workers.append(worker)
            self.threads.append(threading.current_thread().name)
            while not (gate.is_set() or self.opened.is_set()):
                gate.wait(0.01)
            original(pool, loop, worker, job, payload)

        monkeypatch.setattr(pools.ProcessPool, "_send", gated)

    def release(self, index: int = -1) -> None:
        self.gates[index].set()

    def open(self) -> None:
        self.opened.set()


def large() -> bytes:
    from genro_asgi_executor.pools import SEND_INLINE_MAX

    return b"x" * (SEND_INLINE_MAX + 1)


async def test_a_large_job_is_sent_by_a_thread_and_runs(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sending = GatedSend(monkeypatch)
    sending.open()
    async with running(tmp_path) as executor:
        data = large()
        assert await executor.run_process(jobs.echo, data) == data
        task_id = await executor.submit(jobs.echo, data, pool="cpu")
        assert await executor.tasks.result(task_id) == data
        record = executor.tasks.status(task_id)
        assert record.state == "done" and record.started_at is not None  # it did start
        assert await executor.run_process(jobs.add, 1, 2) == 3  # small ones: sent inline
    assert sending.threads == ["pool-cpu-send", "pool-cpu-send"]


async def test_a_large_job_cancelled_while_being_sent_never_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sending = GatedSend(monkeypatch)
    async with running(tmp_path) as executor:
        pool = executor.pool("cpu")
        task_id = await executor.submit(jobs.echo, large(), pool="cpu")
        await until(lambda: sending.threads, "the send to start")
        assert executor.tasks.status(task_id).state == "pending"
        assert executor.tasks.cancel(task_id)
        sending.release()
        with pytest.raises(TaskCancelled):
            await executor.tasks.result(task_id)
        assert await executor.run_process(jobs.add, 1, 2) == 3  # a new worker serves
        assert pool.restarts == 0 and pool.running == 0
        assert executor.tasks.status(task_id).state == "cancelled"


async def test_a_large_job_whose_worker_dies_before_it_has_it_is_sent_again_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job never ran: it goes to another worker, once (reading it may be what kills)."""
    sending = GatedSend(monkeypatch)
    async with running(tmp_path) as executor:
        data = large()
        future = asyncio.ensure_future(executor.run_process(jobs.echo, data))
        await until(lambda: sending.threads, "the send to start")
        os.kill(sending.workers[0].process.pid, signal.SIGKILL)
        sending.release(0)
        await until(lambda: len(sending.threads) == 2, "the job to be sent again")
        assert sending.workers[1] is not sending.workers[0]
        sending.release(1)
        assert await asyncio.wait_for(future, HANG_GUARD) == data

        twice = asyncio.ensure_future(executor.run_process(jobs.echo, data))
        for attempt in (2, 3):
            await until(lambda a=attempt: len(sending.threads) == a + 1, "a send")
            os.kill(sending.workers[attempt].process.pid, signal.SIGKILL)
            sending.release(attempt)
        with pytest.raises(WorkerCrashed, match="killed by SIGKILL"):
            await asyncio.wait_for(twice, HANG_GUARD)
        assert len(sending.threads) == 4  # not a third time
        sending.open()
        assert await executor.run_process(jobs.add, 2, 2) == 4
        pool = executor.pool("cpu")
        assert pool.running == 0


async def test_a_worker_that_dies_before_it_has_its_job_does_not_fail_it(
        tmp_path: Path) -> None:
    """A signal can hit a worker while it starts: the job it was sent never ran, so it goes
    to a replacement (once) instead of failing with WorkerCrashed."""
    async with running(tmp_path) as executor:
        pool = executor.pool("cpu")
        job = pool.prepare(jobs.add, (40, 2), {})
        await pool.admit()
        pool.launch(job)  # starts a worker and writes the job to its pipe
        (worker,) = pool._alive  # still starting: it has not read the job yet
        os.kill(worker.process.pid, signal.SIGKILL)
        assert await asyncio.wait_for(job.future, HANG_GUARD) == 42
        assert job.resent and pool.restarts == 1
        assert pool.pending == 0 and pool.running == 0


async def test_a_job_is_running_once_its_worker_has_it(tmp_path: Path) -> None:
    """A new worker says when it has its first job; one that is up takes the next at once."""
    flag = tmp_path / "go"
    pools = {"cpu": {"kind": "process", "workers": 1}}
    async with running(tmp_path, pools=pools) as executor:
        pool = executor.pool("cpu")
        job = pool.prepare(jobs.wait_for_file, (str(flag), 0), {})
        await pool.admit()
        pool.launch(job)
        assert job.state == "pending" and pool.pending == 1  # sent, not yet read
        await until(lambda: job.state == "running", "the worker to take the job")
        assert pool.pending == 0 and pool.running == 1
        flag.write_text("ok")
        assert await asyncio.wait_for(job.future, HANG_GUARD) == "ok"
        await until(lambda: pool.running == 0 and pool._idle, "the worker to be idle")
        second = pool.prepare(jobs.add, (1, 2), {})
        await pool.admit()
        pool.launch(second)
        assert second.state == "running"  # the same worker, up and waiting: at once
        assert await asyncio.wait_for(second.future, HANG_GUARD) == 3


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"])
async def test_workers_leave_group_signals_to_the_server(tmp_path: Path, sig: str) -> None:
    flag = tmp_path / "go"
    pid_file = tmp_path / "pid"
    async with running(tmp_path) as executor:
        future = asyncio.ensure_future(
            executor.run_process(jobs.wait_for_file_writing_pid, str(flag), str(pid_file)))
        pid = int(await until(lambda: pid_file.exists() and pid_file.read_text(), "the pid"))
        os.kill(pid, getattr(signal, sig))
        flag.write_text("finished")
        assert await asyncio.wait_for(future, HANG_GUARD) == "finished"
        assert executor.pool("cpu").restarts == 0


async def test_a_jobs_own_subprocesses_get_the_default_signals(tmp_path: Path) -> None:
    """Workers ignore the group's signals with a handler, not SIG_IGN, which a subprocess
    would inherit across exec (and then could not be stopped with SIGTERM)."""
    async with running(tmp_path) as executor:
        seen = await executor.run_process(jobs.child_signals)
    assert seen == []  # none ignored


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
async def test_a_group_signal_while_a_worker_starts_does_not_kill_it(
        tmp_path: Path, sig: str, start_method: str) -> None:
    """A worker starts with the group signals blocked (inherited from the forkserver, or from
    the thread that spawns it): one that arrives while it starts waits for its handler."""
    pools = {"cpu": {"kind": "process", "workers": 1, "start_method": start_method}}
    async with running(tmp_path, pools=pools) as executor:
        pool = executor.pool("cpu")
        job = pool.prepare(jobs.add, (1, 2), {})
        await pool.admit()
        pool.launch(job)
        (worker,) = pool._alive  # starting now
        os.kill(worker.process.pid, getattr(signal, sig))
        assert await asyncio.wait_for(job.future, HANG_GUARD) == 3
        assert not job.resent and pool.restarts == 0
        assert worker in pool._alive  # the same worker, still serving
