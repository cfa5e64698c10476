"""An inline sync handler that holds the event loop is reported while it still holds it: with
its route and where it is stuck, in process and over a real uvicorn. Before, a blocking inline
handler was reported only when it returned, so one that never returned left no trace.

Stuck handlers wait on a ``threading.Event`` that the test sets only after the report arrived;
every wait is bounded by ``SAFETY`` against a hang and is never an assertion about speed.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi.loop_stall import LoopStallMonitor
from genro_asgi.testing import AsyncTestClient, LiveServer

SAFETY = 20.0  # seconds: a guard against a hung test, never an assertion
STILL_HOLDING = "has not returned"


class Stuck(AsgiApplication):
    """An inline handler that holds the loop until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    @route(inline=True)
    def stuck_forever(self) -> str:
        if not self.release.wait(SAFETY):
            raise RuntimeError("the test never released the handler")
        return "released"

    @route(inline=True)
    def quick(self) -> str:
        return "quick"


def _stall_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if STILL_HOLDING in r.getMessage()]


def _release_once_reported(app: Stuck, caplog: pytest.LogCaptureFixture) -> threading.Thread:
    """From another thread (the loop is held): let the handler go once the report is logged."""

    def watch() -> None:
        deadline = time.monotonic() + SAFETY
        while time.monotonic() < deadline and not _stall_records(caplog):
            time.sleep(0.01)
        app.release.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


async def test_a_stuck_inline_handler_is_reported_while_it_holds_the_loop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"watchdog": {"inline_block": 0.05}})
    app = Stuck()
    server.mount("/s", app)
    caplog.set_level(logging.WARNING, logger="genro_asgi.watchdog")
    async with AsyncTestClient(server) as client:
        watcher = _release_once_reported(app, caplog)
        answer = await client.get("/s/stuck_forever")
        watcher.join(SAFETY)
    assert answer.text == "released"  # released by the report, not by SAFETY's RuntimeError
    (record, *_) = _stall_records(caplog)
    message = record.getMessage()
    assert "/s/stuck_forever" in message
    assert "stuck_forever" in message.split("it is at:")[1]  # the loop thread's stack
    assert server.sync.stall.reports == 1
    # and once more when it returned, with the whole time it held the loop
    assert server.sync.inline_blocks == 1


async def test_quick_inline_calls_are_not_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"watchdog": {"inline_block": 5}})
    server.mount("/s", Stuck())
    caplog.set_level(logging.WARNING, logger="genro_asgi.watchdog")
    async with AsyncTestClient(server) as client:
        for _ in range(20):
            assert (await client.get("/s/quick")).text == "quick"
    assert not _stall_records(caplog)
    assert server.sync.stall.reports == 0


def test_no_monitor_thread_without_inline_calls_and_none_left_after_shutdown(
        tmp_path: Path) -> None:
    def stall_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.endswith("-stall")]

    before = set(stall_threads())
    server = AsgiServer(tmp_path, environ={})
    server.mount("/s", Stuck())
    with LiveServer(server) as live:
        assert httpx.get(f"{live.url}/s/quick", timeout=SAFETY).text == "quick"
        assert len(set(stall_threads()) - before) == 1  # started by the first inline call
    deadline = time.monotonic() + SAFETY
    while set(stall_threads()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(stall_threads()) - before


def test_a_dropped_monitor_stops_its_thread() -> None:
    monitor = LoopStallMonitor(0.05, name="dropped-stall")
    monitor.enter("/x", time.perf_counter())
    monitor.leave()
    (thread,) = [t for t in threading.enumerate() if t.name == "dropped-stall"]
    del monitor
    gc.collect()
    thread.join(SAFETY)
    assert not thread.is_alive()


@pytest.mark.e2e
def test_a_stuck_inline_handler_is_reported_over_uvicorn(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"watchdog": {"inline_block": 0.05}})
    app = Stuck()
    server.mount("/s", app)
    caplog.set_level(logging.WARNING, logger="genro_asgi.watchdog")
    with LiveServer(server) as live, ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(httpx.get, f"{live.url}/s/stuck_forever", timeout=SAFETY)
        deadline = time.monotonic() + SAFETY
        while not _stall_records(caplog) and time.monotonic() < deadline:
            time.sleep(0.01)
        reported = _stall_records(caplog)
        app.release.set()
        assert stuck.result(SAFETY).text == "released"
        assert httpx.get(f"{live.url}/s/quick", timeout=SAFETY).text == "quick"
    assert reported and "/s/stuck_forever" in reported[0].getMessage()
