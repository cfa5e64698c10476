"""End to end over a real uvicorn: a CPU job submitted over HTTP, its progress polled, its
result fetched, while other requests keep being answered; executor gauges in /metrics."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from executor_apps import JobsApp
from executor_helpers import HANG_GUARD, POOLS

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e


def poll(client: httpx.Client, task_id: str, done: callable) -> dict:  # type: ignore[valid-type]
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        body = client.get(f"/_tasks/{task_id}").json()
        if done(body):
            return body
        time.sleep(0.01)
    raise AssertionError(f"task {task_id}: condition not reached")


def test_cpu_job_over_http_while_the_server_stays_responsive(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    server = AsgiServer(tmp_path, config={"plugins": {
        "executor": {"pools": POOLS, "access": "open"},
        "eventlog": {"module": "executor_helpers:EventLog"}}},
        environ={})
    server.mount("/jobs", JobsApp())
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=HANG_GUARD) as c:
        submitted = c.post("/jobs/crunch", json={"flag": str(flag)})
        assert submitted.status_code == 200
        task_id = submitted.json()["task_id"]
        seen = poll(c, task_id, lambda b: b["state"] == "running" and b["progress"])
        assert 0 < seen["progress"] < 1 and seen["message"].startswith("round ")
        # the job burns a CPU in another process; the event loop keeps answering
        for _ in range(20):
            assert c.get("/jobs/hello").text == "hello"
        assert c.get(f"/_tasks/{task_id}").json()["state"] == "running"
        flag.write_text("stop")
        final = poll(c, task_id, lambda b: b["state"] == "done")
        assert final["progress"] == 1.0 and final["message"] == "finished"
        assert final["result"]["rounds"] >= 1 and final["result"]["pid"] > 0
        typed = c.get(f"/_tasks/{task_id}", headers={"X-TYTX-Transport": "json"})
        assert "::N" in typed.text  # the Decimal total, typed
    log = server.plugins.get("eventlog")
    assert log.states(task_id) == ["pending", "running", "done"]
    progress = [e["progress"] for e in log.events if e["kind"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_shutdown_with_a_running_job_records_it(tmp_path: Path) -> None:
    flag = tmp_path / "never"
    server = AsgiServer(tmp_path, config={"plugins": {"executor": {
        "pools": POOLS, "shutdown_timeout": 0.2, "store": "sqlite"}}}, environ={})
    server.mount("/jobs", JobsApp())
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=HANG_GUARD) as c:
        task_id = c.post("/jobs/crunch", json={"flag": str(flag)}).json()["task_id"]
        poll(c, task_id, lambda b: b["state"] == "running")
    record = server.plugins.get("executor").tasks.status(task_id)
    assert record.state == "cancelled" and "into shutdown" in record.error
    from genro_asgi_executor import SqliteTaskStore

    stored = {r.task_id: r for r in SqliteTaskStore(tmp_path / "tasks.sqlite3").load()}
    assert stored[task_id].state == "cancelled"  # on disk too, not just in memory
    assert "into shutdown" in (stored[task_id].error or "")


def test_executor_gauges_in_the_metrics_scrape(tmp_path: Path) -> None:
    pytest.importorskip("genro_asgi_metrics")
    flag = tmp_path / "flag"
    server = AsgiServer(tmp_path, config={"plugins": {
        "executor": {"pools": POOLS, "access": "open"}, "metrics": {}}}, environ={})
    server.mount("/jobs", JobsApp())
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=HANG_GUARD) as c:
        task_id = c.post("/jobs/crunch", json={"flag": str(flag)}).json()["task_id"]
        poll(c, task_id, lambda b: b["state"] == "running")
        scrape = c.get("/metrics").text
        flag.write_text("stop")
        poll(c, task_id, lambda b: b["state"] == "done")
        after = c.get("/metrics").text
    assert 'executor_pool_running{pool="cpu"} 1.0' in scrape
    assert 'executor_tasks{state="running"} 1.0' in scrape
    assert 'executor_pool_workers{kind="process",pool="cpu"} 2.0' in scrape
    assert 'executor_tasks{state="done"} 1.0' in after
    assert 'executor_pool_running{pool="cpu"} 0.0' in after


def test_an_anonymous_caller_is_refused_before_its_parameters_are_read(tmp_path: Path) -> None:
    """``auth_rule`` answers 401/403 before the query or the body is bound: a caller without
    the rule's tags cannot make the server coerce anything (a TYTX numeric bomb included)."""
    server = AsgiServer(tmp_path, config={"plugins": {
        "executor": {"pools": POOLS, "auth_rule": "ops", "access": "open"},
        "identity": {"module": "executor_apps:HeaderIdentity"}}}, environ={})
    typed = {"X-TYTX-Transport": "json"}
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=HANG_GUARD) as c:
        bomb = {"limit": "1E+999999999::N"}
        assert c.get("/_tasks", params=bomb, headers=typed).status_code == 401
        assert c.get("/_tasks", params={"limit": "abc"}).status_code == 401
        guest = {**typed, "X-Test-Tags": "guest"}
        assert c.get("/_tasks", params=bomb, headers=guest).status_code == 403
        assert c.post("/_tasks/x/cancel", content=b"{",
                      headers={"Content-Type": "application/json"}).status_code == 401
        # admitted, the same parameters are checked as usual
        ops = {"X-Test-Tags": "ops"}
        assert c.get("/_tasks", params={"limit": "abc"}, headers=ops).status_code == 400
        assert c.get("/_tasks", params={"limit": "3"}, headers=ops).json()["count"] == 0
