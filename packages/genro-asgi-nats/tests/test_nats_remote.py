"""Remote executors: a ``kind: remote`` pool on a real nats-server (JetStream), jobs run by
real ``genro-asgi worker`` processes started from another directory."""

from __future__ import annotations

import asyncio
import datetime
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from remote_helpers import TIMEOUT, WorkerProcess, app_dir, call, copy_app, server_for

from genro_asgi.testing import LiveServer, free_port
from genro_asgi_nats.testing import NatsServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def site(tmp_path: Path, nats_server: NatsServer) -> Iterator[tuple[LiveServer, Path]]:
    directory = app_dir(tmp_path, "app", nats_server.url, ack_wait=1.0, max_deliver=2)
    with LiveServer(server_for(directory)) as live:
        yield live, copy_app(directory, tmp_path / "elsewhere" / "app")


@pytest.fixture
def worker(site: tuple[LiveServer, Path]) -> Iterator[WorkerProcess]:
    process = WorkerProcess(site[1]).ready()
    yield process
    process.stop()


def queued_jobs(live: LiveServer) -> int:
    """Messages in the application's job stream, read with a client of our own."""
    from nats.aio.client import Client

    url = live.server.config.app.plugins.get("nats").config.servers[0]

    async def count() -> int:
        nc = Client()
        await nc.connect(url, connect_timeout=5, max_reconnect_attempts=1)
        try:
            info = await nc.jetstream().stream_info("rt_jobs")
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(asyncio.wait_for(count(), TIMEOUT))


def _eventually(check: Any) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def outcome(live: LiveServer, job: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    task_id = call(live, "submit", job=job, args=list(args), kwargs=kwargs)
    return call(live, "outcome", task_id=task_id)  # type: ignore[no-any-return]


def test_results_and_typed_arguments_travel_as_tytx(site: tuple[LiveServer, Path],
                                                    worker: WorkerProcess) -> None:
    live, _ = site
    assert outcome(live, "add", 2, 3) == {"ok": True, "result": 5}
    answer = outcome(live, "typed", price=Decimal("10.25"), day=datetime.date(2026, 2, 28))
    assert answer == {"ok": True, "result": {"total": Decimal("20.50"),
                                             "next": datetime.date(2026, 3, 1)}}
    assert outcome(live, "noop") == {"ok": True, "result": None}


def test_failure_comes_back_with_the_remote_traceback(site: tuple[LiveServer, Path],
                                                      worker: WorkerProcess) -> None:
    live, _ = site
    answer = outcome(live, "fail", "no stock")
    assert answer["ok"] is False
    assert answer["error"] == "RemoteJobError: ValueError: no stock"
    assert "raise ValueError(text)" in answer["cause"]  # the worker's traceback
    unsendable = outcome(live, "unsendable")
    assert unsendable["ok"] is False and "ResultNotSendable" in unsendable["error"]


def test_progress_reaches_the_task_record(site: tuple[LiveServer, Path],
                                          worker: WorkerProcess) -> None:
    live, _ = site
    task_id = call(live, "submit", job="steps", args=[20])
    assert call(live, "outcome", task_id=task_id) == {"ok": True, "result": 20}
    status = call(live, "status", task_id=task_id)
    assert status["state"] == "done" and status["progress"] == 1.0
    assert status["message"] is not None and status["message"].startswith("step ")


def test_an_unregistered_job_is_a_400_for_the_caller(site: tuple[LiveServer, Path]) -> None:
    import httpx

    live, _ = site
    answer = httpx.post(f"{live.url}/jobs/submit", timeout=TIMEOUT,
                        json={"job": "os:system", "args": ["true"]})
    assert answer.status_code == 400
    assert "not a registered job of pool 'gpu'" in answer.text


async def test_prepare_refuses_in_the_caller(tmp_path: Path) -> None:
    import sys

    from genro_asgi_executor import PoolConfig
    from genro_asgi_nats import NatsConfig, NatsLink
    from genro_asgi_nats.remote import RemotePool

    directory = app_dir(tmp_path, "unit", "nats://127.0.0.1:1")
    sys.path.insert(0, str(directory))
    config = PoolConfig(kind="remote", options={"jobs": {"add": "remote_jobs:add"},
                                                "max_job_size": 2048})
    pool = RemotePool("gpu", config, NatsLink(NatsConfig(), directory))
    import remote_jobs  # type: ignore[import-not-found]

    job = pool.prepare(remote_jobs.add, (1, 2), {})  # the function itself, registered
    assert job.payload is not None and b'"job":"add"' in job.payload
    with pytest.raises(TypeError, match="not a registered job"):
        pool.prepare(print, (), {})
    with pytest.raises(TypeError, match="cannot be sent as TYTX"):
        pool.prepare("add", ({1, 2}, 1), {})
    with pytest.raises(TypeError, match="cannot be sent as TYTX"):
        pool.prepare("add", (float("nan"), 1), {})
    with pytest.raises(ValueError, match="max_job_size"):
        pool.prepare("add", ("x" * 4096, ""), {})
    with pytest.raises(ValueError, match=r"options: jobs: .*'bad'"):
        RemotePool("gpu", PoolConfig(kind="remote", options={"jobs": {"bad": "nomodule"}}),
                   pool.link)
    with pytest.raises(ValueError, match="cannot import"):
        RemotePool("gpu", PoolConfig(kind="remote", options={"jobs": {"x": "nosuch:f"}}),
                   pool.link)


def test_cancel_a_queued_job_and_a_running_one(site: tuple[LiveServer, Path]) -> None:
    live, other = site
    queued = call(live, "submit", job="add", args=[1, 1])  # no worker yet: it waits queued
    assert _eventually(lambda: queued_jobs(live) == 1)
    assert call(live, "cancel", task_id=queued) is True
    assert call(live, "status", task_id=queued)["state"] == "cancelled"
    assert _eventually(lambda: queued_jobs(live) == 0)  # deleted from the queue
    worker = WorkerProcess(other).ready()
    try:
        running = call(live, "submit", job="wait_for_cancel")
        deadline = time.monotonic() + TIMEOUT
        while call(live, "status", task_id=running)["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert call(live, "cancel", task_id=running) is True
        assert call(live, "outcome", task_id=running)["error"].startswith("TaskCancelled")
        assert outcome(live, "add", 2, 2) == {"ok": True, "result": 4}  # the worker goes on
    finally:
        worker.stop()


def test_timeout_counts_from_the_start(site: tuple[LiveServer, Path],
                                       worker: WorkerProcess) -> None:
    live, _ = site
    task_id = call(live, "submit", job="wait_for_cancel", timeout=0.5)
    answer = call(live, "outcome", task_id=task_id)
    assert answer["ok"] is False and answer["error"].startswith("TaskTimedOut")
    assert call(live, "status", task_id=task_id)["state"] == "timed_out"


def test_a_worker_dying_mid_job_is_redelivered(site: tuple[LiveServer, Path],
                                               tmp_path: Path) -> None:
    live, other = site
    first, second = WorkerProcess(other).ready(), WorkerProcess(other).ready()
    try:
        marker = tmp_path / "died-once"
        answer = outcome(live, "die_once", str(marker))
        assert answer["ok"] is True and answer["result"].startswith("survived after")
        pool = live.server.config.app.plugins.get("executor").pools["gpu"]
        assert pool.remote.redeliveries == 1
    finally:
        codes = sorted(w.stop() for w in (first, second))
    assert 3 in codes  # one of them died in the job


def test_max_deliver_then_the_task_fails(site: tuple[LiveServer, Path]) -> None:
    live, other = site
    workers = [WorkerProcess(other).ready() for _ in range(3)]
    try:
        answer = outcome(live, "always_die")
        assert answer["ok"] is False
        assert answer["error"].startswith("WorkerCrashed") and "2 deliveries" in answer["error"]
    finally:
        for process in workers:
            process.stop()


def run_worker(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genro_asgi", "worker", str(directory), *args],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=directory.parent)


def test_worker_command_errors(site: tuple[LiveServer, Path], tmp_path: Path) -> None:
    _, other = site
    for pool in ("io", "nosuch"):
        done = run_worker(other, "--pool", pool)
        assert done.returncode == 2
        assert "no pool of kind 'remote'" in done.stderr and "(remote pools: gpu)" in done.stderr
    port = free_port()
    config = other / "config.yaml"
    config.write_text(re.sub(r"nats://127\.0\.0\.1:\d+", f"nats://127.0.0.1:{port}",
                             config.read_text()))
    done = run_worker(other, "--pool", "gpu")
    assert done.returncode == 2 and "plugins.nats.servers" in done.stderr, done.stderr
    listing = subprocess.run([sys.executable, "-m", "genro_asgi", "help-plugins", str(other)],
                             capture_output=True, text=True, timeout=TIMEOUT)
    assert "worker" in listing.stdout and "--pool NAME" in listing.stdout


def test_nats_restarted_while_jobs_run(site: tuple[LiveServer, Path],
                                       nats_server: NatsServer) -> None:
    """Accepted jobs are stored by JetStream (on disk): a nats-server restart loses none, and a
    job that runs twice because its acknowledgement was lost is counted, not hidden."""
    live, other = site
    worker = WorkerProcess(other).ready()
    try:
        task_ids = [call(live, "submit", job="sleep", args=[0.05]) for _ in range(20)]
        nats_server.restart()
        outcomes = [call(live, "outcome", task_id=t) for t in task_ids]
        # a job whose publish to JetStream timed out while the server was down was never
        # accepted by the queue: its task fails saying so (NatsUnavailable), never silently
        done = [o for o in outcomes if o == {"ok": True, "result": 0.05}]
        refused = [o for o in outcomes if not o["ok"]
                   and o["error"].startswith("NatsUnavailable") and "could not be queued"
                   in o["error"]]
        assert len(done) + len(refused) == 20, outcomes
        assert len(done) >= 10, outcomes
        pool = live.server.config.app.plugins.get("executor").pools["gpu"]
        assert pool.remote.submitted >= len(done)
        print(f"redelivered {pool.remote.redeliveries}, ran twice {pool.remote.duplicates}")
    finally:
        worker.stop()


def test_a_job_that_left_the_queue_without_an_outcome_fails(tmp_path: Path,
                                                           nats_server: NatsServer) -> None:
    """What a lost outcome looks like to the server: the job is no longer queued (as if a
    worker acknowledged it) and nothing came back. The task fails saying so."""
    directory = app_dir(tmp_path, "app", nats_server.url, check_interval=0.2)
    with LiveServer(server_for(directory)) as live:
        task_id = call(live, "submit", job="add", args=[1, 1])
        assert _eventually(lambda: queued_jobs(live) == 1)
        pool = live.server.config.app.plugins.get("executor").pools["gpu"]
        seq = pool._jobs[task_id].handle

        async def delete() -> None:
            from nats.aio.client import Client

            nc = Client()
            await nc.connect(nats_server.url, connect_timeout=5, max_reconnect_attempts=1)
            await nc.jetstream().delete_msg("rt_jobs", seq)
            await nc.close()

        asyncio.run(delete())
        answer = call(live, "outcome", task_id=task_id)
        assert answer["ok"] is False and "no outcome reached this server" in answer["error"]


def test_garbage_on_the_job_subjects_is_dropped(site: tuple[LiveServer, Path],
                                                worker: WorkerProcess) -> None:
    from nats.aio.client import Client

    from genro_asgi_nats import jobs

    live, _ = site
    pool = live.server.config.app.plugins.get("executor").pools["gpu"]
    reply = pool.queue.reply_subject(pool.origin)

    async def inject() -> None:
        nc = Client()
        await nc.connect(live.server.config.app.plugins.get("nats").config.servers[0],
                         connect_timeout=5, max_reconnect_attempts=1)
        js = nc.jetstream()
        for payload in (b"not ours", b"GXJ1 {broken", jobs.encode({"task": 1, "job": []}),
                        jobs.encode({"task": "t", "job": "add", "reply": "elsewhere.r",
                                     "args": [1, 2]})):  # a reply outside our subjects
            await js.publish(pool.queue.subject, payload)
        for payload in (b"junk", jobs.encode({"kind": "done"}),
                        jobs.encode({"task": "nobody", "kind": "started"}),
                        jobs.encode({"task": "x", "kind": "done", "result": 1})):
            await nc.publish(reply, payload)
        await nc.flush()
        await nc.close()

    asyncio.run(inject())
    for _ in range(4):
        worker.wait_for("dropped a malformed job")
    assert outcome(live, "add", 20, 22) == {"ok": True, "result": 42}  # both sides carry on
    assert pool.remote.dropped >= 2
    assert _eventually(lambda: queued_jobs(live) == 0)  # terminated, never delivered again


def test_a_degraded_start_serves_remote_jobs_once_nats_answers(tmp_path: Path) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    directory = app_dir(tmp_path, "app", url)
    config = directory / "config.yaml"
    config.write_text(config.read_text().replace("subject_prefix: rt,",
                                                 "subject_prefix: rt, required: false,"))
    with LiveServer(server_for(directory)) as live:
        down = call(live, "outcome", task_id=call(live, "submit", job="add", args=[1, 1]))
        assert down["ok"] is False and down["error"].startswith("NatsUnavailable")
        with NatsServer(port=port):
            link = live.server.config.app.plugins.get("nats").link
            assert _eventually(lambda: link.state == "connected")
            worker = WorkerProcess(copy_app(directory, tmp_path / "elsewhere" / "app")).ready()
            try:
                assert outcome(live, "add", 2, 3) == {"ok": True, "result": 5}
            finally:
                worker.stop()
