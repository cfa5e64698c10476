"""TaskManager: every state transition, cancellation, timeouts, progress, events, retention,
graceful shutdown and the SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import executor_jobs as jobs
import pytest
from executor_helpers import pid_alive, running, until

from genro_asgi import AsgiServer
from genro_asgi_executor import (
    ExecutorClosed,
    NotPicklable,
    PoolFull,
    RemoteJobError,
    ResultUnavailable,
    TaskCancelled,
    TaskNotFinished,
    TaskTimedOut,
    UnknownTask,
    executor_of,
)

# strings TYTX would otherwise decode as typed values (or fail to decode) after a restart
TRICKY = {"price": "12.50::N", "when": "x::D", "path": "C::Users::NN", "plain": "a::b",
          "list": ["y::DHZ", "ok"], "key::N": "v::T"}


async def test_pending_running_done_with_events(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    async with running(tmp_path, events=True) as executor:
        log = executor.server.plugins.get("eventlog")
        task_id = await executor.submit(jobs.wait_for_event, started, release, name="job-a")
        assert executor.tasks.status(task_id).state in ("pending", "running")
        await until(lambda: executor.tasks.status(task_id).state == "running", "running")
        release.set()
        assert await executor.tasks.result(task_id) == "released"
        record = executor.tasks.status(task_id)
        assert (record.state, record.name, record.pool) == ("done", "job-a", "io")
        assert record.created_at <= record.started_at <= record.finished_at
        await until(lambda: log.states(task_id) == ["pending", "running", "done"], "events")
    event = log.events[-1]
    assert set(event) == {"task_id", "name", "pool", "state", "progress", "message", "at",
                          "kind"}


async def test_every_transition_in_both_pool_kinds_is_announced_once(tmp_path: Path) -> None:
    never, flag = str(tmp_path / "never"), tmp_path / "flag"
    pools = {"io": {"kind": "thread", "workers": 1}, "cpu": {"kind": "process", "workers": 1}}
    expected: dict[str, list[str]] = {}
    async with running(tmp_path, events=True, pools=pools) as executor:
        log, tasks = executor.server.plugins.get("eventlog"), executor.tasks

        async def settle(task_id: str, *states: str) -> None:
            expected[task_id] = ["pending", *states]
            with contextlib.suppress(Exception):
                await tasks.result(task_id)

        for pool in ("io", "cpu"):
            await settle(await executor.submit(jobs.add, 1, pool=pool), "running", "done")
            await settle(await executor.submit(jobs.boom, pool=pool), "running", "failed")
            await settle(await executor.submit(jobs.wait_for_file, never, 0, pool=pool,
                                               timeout=0.1), "running", "timed_out")
            blocker = await executor.submit(jobs.wait_for_file, str(flag), 0, pool=pool)
            queued = await executor.submit(jobs.add, 2, pool=pool)
            await until(lambda b=blocker: tasks.status(b).state == "running", "running")
            assert tasks.cancel(queued) and tasks.cancel(blocker)
            await settle(queued, "cancelled")
            await settle(blocker, "running", "cancelled")
        crashed = await executor.submit(jobs.die, pool="cpu")
        await settle(crashed, "running", "failed")
        assert tasks.status(crashed).error.startswith("WorkerCrashed: ")
        for task_id, states in expected.items():
            assert tasks.status(task_id).state == states[-1]
    # shutdown delivered every queued event: exactly one per transition, in order
    for task_id, states in expected.items():
        assert log.states(task_id) == states, (tasks.status(task_id), log.states(task_id))


async def test_failed_task_keeps_the_exception(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        thread_task = await executor.submit(jobs.boom, "thread side")
        process_task = await executor.submit(jobs.boom, "process side", pool="cpu")
        with pytest.raises(ValueError, match="thread side"):
            await executor.tasks.result(thread_task)
        with pytest.raises(ValueError, match="process side"):
            await executor.tasks.result(process_task)
        record = executor.tasks.status(process_task)
    assert record.state == "failed"
    assert record.error == "ValueError: process side"
    assert "in boom" in record.traceback


async def test_submit_refuses_what_a_process_cannot_take(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        with pytest.raises(NotPicklable, match="module-level function"):
            await executor.submit(lambda: 1, pool="cpu")
        with pytest.raises(NotPicklable, match="add"):
            await executor.submit(jobs.add, threading.Lock(), pool="cpu")
        assert executor.tasks.list() == [] and executor.pool("cpu").pending == 0
        task_id = await executor.submit(jobs.return_lock, pool="cpu")
        with pytest.raises(RemoteJobError, match="not picklable"):
            await executor.tasks.result(task_id)
        assert executor.tasks.status(task_id).state == "failed"


async def test_result_without_waiting_and_unknown_ids(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    async with running(tmp_path) as executor:
        task_id = await executor.submit(jobs.wait_for_event, started, release)
        with pytest.raises(TaskNotFinished):
            await executor.tasks.result(task_id, wait=False)
        with pytest.raises(TimeoutError):
            await executor.tasks.result(task_id, timeout=0.01)
        release.set()
        assert await executor.tasks.result(task_id) == "released"
        assert await executor.tasks.result(task_id, wait=False) == "released"
        for bad in ("nope", "", None):
            with pytest.raises(UnknownTask):
                executor.tasks.status(bad)  # type: ignore[arg-type]
            with pytest.raises(UnknownTask):
                executor.tasks.cancel(bad)  # type: ignore[arg-type]


async def test_cancel_a_pending_task(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1}}
    async with running(tmp_path, events=True, pools=pools) as executor:
        log = executor.server.plugins.get("eventlog")
        busy = await executor.submit(jobs.ignore_cancel, started, release)
        waiting = await executor.submit(jobs.add, 1)
        await until(lambda: executor.tasks.status(busy).state == "running", "busy running")
        assert executor.tasks.cancel(waiting) is True
        assert executor.tasks.status(waiting).state == "cancelled"
        with pytest.raises(TaskCancelled):
            await executor.tasks.result(waiting)
        assert executor.tasks.cancel(waiting) is False  # already finished
        release.set()
        assert await executor.tasks.result(busy) == "finished anyway"
        assert executor.pool("io").pending == 0
        await until(lambda: log.states(waiting) == ["pending", "cancelled"], "events")


async def test_cancel_a_running_thread_task_sets_its_flag(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    async with running(tmp_path) as executor:
        task_id = await executor.submit(jobs.wait_for_event, started, release)
        await until(lambda: executor.tasks.status(task_id).state == "running", "running")
        assert executor.tasks.cancel(task_id) is True
        record = executor.tasks.status(task_id)
        assert (record.state, record.error) == ("cancelled", "cancelled")
        # the job saw the flag and stopped: its thread is free again
        await until(lambda: executor.pool("io").running == 0, "the thread to stop")


async def test_cancel_a_running_process_task_stops_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    async with running(tmp_path) as executor:
        task_id = await executor.submit(jobs.sleep_forever, str(pid_file), pool="cpu")
        await until(pid_file.exists, "the job to start")
        pid = int(pid_file.read_text())
        assert executor.tasks.cancel(task_id) is True
        assert executor.tasks.status(task_id).state == "cancelled"
        await until(lambda: not pid_alive(pid), "the process to be gone")
        pool = executor.pool("cpu")
        await until(lambda: pool.running == 0, "accounting")
        assert pool.restarts == 0  # a cancel is not a crash
        assert await executor.run_process(jobs.add, 2, 2) == 4


async def test_thread_task_timeout(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    async with running(tmp_path, events=True) as executor:
        log = executor.server.plugins.get("eventlog")
        task_id = await executor.submit(jobs.wait_for_event, started, release, timeout=0.05)
        with pytest.raises(TaskTimedOut):
            await executor.tasks.result(task_id)
        record = executor.tasks.status(task_id)
        assert (record.state, record.error) == ("timed_out", "timed out after 0.05s")
        await until(lambda: executor.pool("io").running == 0, "the thread to stop")
        await until(lambda: log.states(task_id)[-1:] == ["timed_out"], "event")


async def test_process_task_timeout_stops_the_process(tmp_path: Path) -> None:
    pools = {"cpu": {"kind": "process", "workers": 1}}
    async with running(tmp_path, pools=pools) as executor:
        pid = (await executor.run_process(jobs.whoami))["pid"]  # the pool's only worker
        task_id = await executor.submit(jobs.sleep_forever, str(tmp_path / "pid"), pool="cpu",
                                        timeout=0.2)
        with pytest.raises(TaskTimedOut):
            await executor.tasks.result(task_id)
        assert executor.tasks.status(task_id).state == "timed_out"
        await until(lambda: not pid_alive(pid), "the process to go")
        assert (await executor.run_process(jobs.whoami))["pid"] != pid


async def test_timeout_must_be_positive(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        for bad in (0, -1, float("nan")):
            with pytest.raises(ValueError, match="timeout"):
                await executor.submit(jobs.add, 1, timeout=bad)
        assert executor.tasks.list() == []


async def test_progress_from_a_thread_and_from_a_process(tmp_path: Path) -> None:
    async with running(tmp_path, events=True) as executor:
        log = executor.server.plugins.get("eventlog")
        flags = {pool: tmp_path / pool for pool in ("io", "cpu")}
        ids = {pool: await executor.submit(jobs.wait_for_file, str(flag), 4, pool=pool)
               for pool, flag in flags.items()}
        for pool, task_id in ids.items():
            await until(lambda t=task_id: executor.tasks.status(t).progress == 0.75,
                        f"progress from {pool}")
            assert executor.tasks.status(task_id).message == "step 3"
            flags[pool].write_text(pool)
            assert await executor.tasks.result(task_id) == pool
            record = executor.tasks.status(task_id)
            assert (record.progress, record.message) == (1.0, "done")
    for task_id in ids.values():
        progress = [e["progress"] for e in log.events
                    if e["task_id"] == task_id and e["kind"] == "progress"]
        assert progress and progress == sorted(progress)  # coalesced, never out of order
        assert progress[-1] == 1.0


async def test_progress_floods_are_coalesced(tmp_path: Path) -> None:
    async with running(tmp_path, events=True) as executor:
        log = executor.server.plugins.get("eventlog")
        task_id = await executor.submit(jobs.chatty, 20_000)
        assert await executor.tasks.result(task_id) == 20_000
        await until(lambda: log.states(task_id)[-1:] == ["done"], "done event")
    progress = [e for e in log.events if e["kind"] == "progress"]
    assert 1 <= len(progress) <= 20_000


async def test_the_progress_relay_keeps_one_callback_with_the_latest_value() -> None:
    from genro_asgi_executor.pools import ProgressRelay

    seen: list[tuple[float | None, str | None]] = []
    relay = ProgressRelay(asyncio.get_running_loop(), lambda f, m: seen.append((f, m)))
    for i in range(1000):  # the loop does not run in between: one callback is queued
        relay(i / 1000, str(i))
    await asyncio.sleep(0)
    assert seen == [(0.999, "999")]
    relay(1.0, "end")
    await asyncio.sleep(0)
    assert seen == [(0.999, "999"), (1.0, "end")]


async def test_bad_progress_values_fail_the_job(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        for bad, error in ((2, ValueError), (float("nan"), ValueError), ("half", TypeError),
                           (True, TypeError)):
            task_id = await executor.submit(jobs.bad_progress, bad)
            with pytest.raises(error):
                await executor.tasks.result(task_id)


async def test_list_filters_and_counts(tmp_path: Path) -> None:
    async with running(tmp_path) as executor:
        ok = [await executor.submit(jobs.add, i, name="adder") for i in range(3)]
        bad = await executor.submit(jobs.boom, pool="cpu", name="boomer")
        for task_id in ok:
            await executor.tasks.result(task_id)
        with pytest.raises(ValueError):
            await executor.tasks.result(bad)
        tasks = executor.tasks
        assert [r.task_id for r in tasks.list(name="adder")] == list(reversed(ok))
        assert [r.task_id for r in tasks.list(state="failed")] == [bad]
        assert [r.task_id for r in tasks.list(pool="cpu")] == [bad]
        assert len(tasks.list(state=["done", "failed"], limit=2)) == 2
        assert tasks.counts()["done"] == 3
        with pytest.raises(ValueError, match="unknown state"):
            tasks.list(state="exploded")


async def test_retention_and_max_records(tmp_path: Path) -> None:
    async with running(tmp_path, retention=60, max_records=3) as executor:
        ids = []
        for i in range(5):
            ids.append(await executor.submit(jobs.add, i))
            await executor.tasks.result(ids[-1])
        assert [r.task_id for r in executor.tasks.list()] == list(reversed(ids[-3:]))
        assert executor.tasks.purge(now=time.time() + 61) == 3
        assert executor.tasks.list() == []


async def test_retention_is_applied_without_being_asked(tmp_path: Path) -> None:
    async with running(tmp_path, retention=0.05) as executor:
        task_id = await executor.submit(jobs.add, 1)
        await executor.tasks.result(task_id)
        await until(lambda: not executor.tasks.list(), "the periodic purge")
        with pytest.raises(UnknownTask):
            executor.tasks.status(task_id)


async def test_submit_while_full_and_after_shutdown(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1, "max_pending": 1}}
    async with running(tmp_path, pools=pools) as executor:
        busy = await executor.submit(jobs.ignore_cancel, started, release)
        await until(lambda: executor.tasks.status(busy).state == "running", "busy")
        await executor.submit(jobs.add, 1)
        with pytest.raises(PoolFull):
            await executor.submit(jobs.add, 2)
        assert len(executor.tasks.list()) == 2  # the refused one left no record
        release.set()
    with pytest.raises(ExecutorClosed):
        await executor.submit(jobs.add, 3)


async def test_graceful_shutdown_records_everything(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pid_file, flag = tmp_path / "pid", tmp_path / "flag"
    pools = {"io": {"kind": "thread", "workers": 1}, "cpu": {"kind": "process", "workers": 2}}
    server = AsgiServer(tmp_path, config={"plugins": {"executor": {
        "pools": pools, "shutdown_timeout": 1}}}, environ={})
    await server.startup()
    executor = executor_of(server)
    tasks = executor.tasks
    quick = await executor.submit(jobs.wait_for_file, str(flag), 0, pool="cpu")
    stuck_process = await executor.submit(jobs.sleep_forever, str(pid_file), pool="cpu")
    stuck = await executor.submit(jobs.ignore_cancel, started, release)
    queued = await executor.submit(jobs.add, 1)
    queued_process = await executor.submit(jobs.add, 1, pool="cpu")
    for task_id in (quick, stuck_process, stuck):
        await until(lambda t=task_id: tasks.status(t).state == "running", "running")
    await until(pid_file.exists, "the process job to start")
    pid = int(pid_file.read_text())
    flag.write_text("finished during the drain")
    await server.shutdown()
    release.set()
    state = {task_id: tasks.status(task_id) for task_id in
             (quick, stuck_process, stuck, queued, queued_process)}
    assert state[quick].state == "done"
    for task_id in (stuck, stuck_process):
        assert state[task_id].state == "cancelled"
        assert "still running 1s into shutdown" in state[task_id].error
    for task_id in (queued, queued_process):
        assert state[task_id].state == "cancelled"
        assert "before it started" in state[task_id].error
    assert not pid_alive(pid)  # the process job was stopped, not left running


async def test_nothing_is_accepted_or_lost_during_the_drain(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    pools = {"io": {"kind": "thread", "workers": 1, "max_pending": 1, "when_full": "wait"}}
    server = AsgiServer(tmp_path, config={"plugins": {"executor": {"pools": pools}}},
                        environ={})
    await server.startup()
    executor = executor_of(server)
    busy = await executor.submit(jobs.ignore_cancel, started, release)
    await until(lambda: executor.tasks.status(busy).state == "running", "busy")
    queued = await executor.submit(jobs.add, 1)
    waiting = asyncio.ensure_future(executor.submit(jobs.add, 2))
    await until(lambda: len(executor.pool("io")._waiters) == 1, "a submitter waiting for room")
    shutdown = asyncio.ensure_future(server.shutdown())
    await until(lambda: executor.tasks.closed, "the drain to begin")
    with pytest.raises(ExecutorClosed):
        await executor.submit(jobs.add, 3)
    with pytest.raises(ExecutorClosed):  # it was given the room the cancelled task left
        await waiting
    release.set()  # the running task finishes within shutdown_timeout
    await shutdown
    assert executor.tasks.status(busy).state == "done"
    assert executor.tasks.status(queued).state == "cancelled"
    assert len(executor.tasks.list()) == 2  # the refused submissions left no record


async def test_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    options = {"store": "sqlite", "sqlite_path": "tasks.db", "shutdown_timeout": 0}
    async with running(tmp_path, **options) as executor:
        typed = await executor.submit(jobs.typed_result, pool="cpu", name="typed")
        failed = await executor.submit(jobs.boom, "kept")
        unstorable = await executor.submit(jobs.return_lock)
        strings = await executor.submit(jobs.echo, TRICKY)
        await executor.tasks.result(typed)
        await executor.tasks.result(strings)
        with pytest.raises(ValueError):
            await executor.tasks.result(failed)
        await executor.tasks.result(unstorable)
        cancelled = await executor.submit(jobs.sleep_forever, str(pid_file), pool="cpu")
        await until(pid_file.exists, "running")
    with contextlib.closing(sqlite3.connect(tmp_path / "tasks.db")) as db:
        stored = dict(db.execute("SELECT task_id, typeof(result) FROM tasks").fetchall())
        text = db.execute("SELECT result FROM tasks WHERE task_id = ?", (typed,)).fetchone()[0]
    assert stored[typed] == stored[strings] == "text"  # TYTX text, never a pickled blob
    assert stored[failed] == stored[unstorable] == stored[cancelled] == "null"
    assert text == '{"total":"12.50::N","items":[1,2]}::JS'
    async with running(tmp_path, **options) as executor:
        tasks = executor.tasks
        assert await tasks.result(typed) == {"total": Decimal("12.50"), "items": [1, 2]}
        assert await tasks.result(strings) == TRICKY  # strings that look typed stay strings
        with pytest.raises(RemoteJobError, match="ValueError: kept") as info:
            await tasks.result(failed)
        assert "in boom" in str(info.value.__cause__)
        with pytest.raises(ResultUnavailable, match="not JSON/TYTX"):
            await tasks.result(unstorable)
        assert tasks.status(cancelled).state == "cancelled"
        assert {r.task_id for r in tasks.list()} == {typed, failed, unstorable, cancelled,
                                                    strings}


async def test_sqlite_retention_deletes_on_disk_too(tmp_path: Path) -> None:
    options = {"store": "sqlite", "retention": 60}
    async with running(tmp_path, **options) as executor:
        old = await executor.submit(jobs.add, 1)
        await executor.tasks.result(old)
        assert executor.tasks.purge(now=time.time() + 61) == 1
        new = await executor.submit(jobs.add, 2)
        await executor.tasks.result(new)
    async with running(tmp_path, **options) as executor:
        assert [r.task_id for r in executor.tasks.list()] == [new]


async def test_sqlite_marks_tasks_of_a_crashed_run_interrupted(tmp_path: Path) -> None:
    from genro_asgi_executor import SqliteTaskStore, TaskRecord

    store = SqliteTaskStore(tmp_path / "t.db")
    store.save(TaskRecord("t1", "job", "io", state="running", started_at=1.0))
    store.close()
    records = SqliteTaskStore(tmp_path / "t.db").load()
    assert [(r.task_id, r.state) for r in records] == [("t1", "failed")]
    assert records[0].error.startswith("interrupted")


async def test_sqlite_store_directory_must_exist(tmp_path: Path) -> None:
    from genro_asgi_executor import SqliteTaskStore

    with pytest.raises(ValueError, match="does not exist"):
        SqliteTaskStore(tmp_path / "missing" / "t.db")


async def test_a_failing_listener_does_not_stop_the_others(tmp_path: Path) -> None:
    from genro_asgi import Plugin, hookimpl

    class Broken(Plugin):
        @hookimpl(optionalhook=True)
        def genro_asgi_executor_task_event(self, event: dict) -> None:
            raise RuntimeError("listener bug")

    import executor_helpers as helpers

    helpers.Broken = Broken  # type: ignore[attr-defined]
    server = AsgiServer(tmp_path, config={"plugins": {
        "executor": helpers.executor_config(), "broken": {"module": "executor_helpers:Broken"},
        "eventlog": {"module": "executor_helpers:EventLog"}}}, environ={})
    await server.startup()
    try:
        executor = executor_of(server)
        task_id = await executor.submit(jobs.add, 1)
        assert await executor.tasks.result(task_id) == 1
        log = server.plugins.get("eventlog")
        await until(lambda: log.states(task_id) == ["pending", "running", "done"], "events")
    finally:
        await server.shutdown()


async def test_event_delivery_waits_for_nobody(tmp_path: Path) -> None:
    """Without listeners nothing is queued; the bus stays inactive."""
    async with running(tmp_path) as executor:
        task_id = await executor.submit(jobs.add, 1)
        await executor.tasks.result(task_id)
        assert executor.events.active is False
        assert executor.events.delivered == 0
    await asyncio.sleep(0)
