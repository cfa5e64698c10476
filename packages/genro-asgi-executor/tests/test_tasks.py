"""TaskManager: every state transition, cancellation, timeouts, progress, events, retention,
graceful shutdown and the SQLite store."""

from __future__ import annotations

import asyncio
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
    PoolFull,
    RemoteJobError,
    ResultUnavailable,
    TaskCancelled,
    TaskNotFinished,
    TaskTimedOut,
    UnknownTask,
    executor_of,
)


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
    pools = {"io": {"kind": "thread", "workers": 1}, "cpu": {"kind": "process", "workers": 1}}
    server = AsgiServer(tmp_path, config={"plugins": {"executor": {
        "pools": pools, "shutdown_timeout": 2}}}, environ={})
    await server.startup()
    executor = executor_of(server)
    quick = await executor.submit(jobs.wait_for_file, str(flag), 0, pool="cpu")
    stuck = await executor.submit(jobs.ignore_cancel, started, release)
    queued = await executor.submit(jobs.add, 1)
    await until(lambda: executor.tasks.status(stuck).state == "running", "stuck running")
    await until(lambda: executor.tasks.status(quick).state == "running", "quick running")
    flag.write_text("finished during the drain")
    await server.shutdown()
    release.set()
    states = {task_id: executor.tasks.status(task_id) for task_id in (quick, stuck, queued)}
    assert states[quick].state == "done"
    assert states[stuck].state == "cancelled"
    assert "into shutdown" in states[stuck].error
    assert states[queued].state == "cancelled"
    assert "before it started" in states[queued].error
    assert not pid_file.exists()


async def test_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    options = {"store": "sqlite", "sqlite_path": "tasks.db", "shutdown_timeout": 0}
    async with running(tmp_path, **options) as executor:
        typed = await executor.submit(jobs.typed_result, pool="cpu", name="typed")
        failed = await executor.submit(jobs.boom, "kept")
        unstorable = await executor.submit(jobs.return_lock)
        await executor.tasks.result(typed)
        with pytest.raises(ValueError):
            await executor.tasks.result(failed)
        await executor.tasks.result(unstorable)
        cancelled = await executor.submit(jobs.sleep_forever, str(pid_file), pool="cpu")
        await until(pid_file.exists, "running")
    assert (tmp_path / "tasks.db").exists()
    async with running(tmp_path, **options) as executor:
        tasks = executor.tasks
        assert await tasks.result(typed) == {"total": Decimal("12.50"), "items": [1, 2]}
        with pytest.raises(RemoteJobError, match="ValueError: kept") as info:
            await tasks.result(failed)
        assert "in boom" in str(info.value.__cause__)
        with pytest.raises(ResultUnavailable, match="not JSON/TYTX"):
            await tasks.result(unstorable)
        assert tasks.status(cancelled).state == "cancelled"
        assert {r.task_id for r in tasks.list()} == {typed, failed, unstorable, cancelled}


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
