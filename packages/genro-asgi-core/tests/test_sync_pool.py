"""The server's sync pool and the inline option, in process: where a ``def`` handler runs, what
a full pool answers, what an inline handler that blocks leaves in the log, and that two servers
keep separate pools that stop with them.

Handlers that must stay busy wait on a ``threading.Event`` the test sets; every wait is bounded
by ``SAFETY`` against a hang and is never an assertion about speed.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, AsgiServer, ConfigError, StreamingResponse, route
from genro_asgi.sync_pool import SyncPool
from genro_asgi.testing import AsyncTestClient

SAFETY = 20.0  # seconds: a guard against a hung test, never an assertion


class Gate:
    """A handler holds its worker until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        if not self.release.wait(SAFETY):
            raise RuntimeError("the test never released the gate")


class Where(AsgiApplication):
    """Handlers that tell which thread ran them."""

    def __init__(self, gate: Gate | None = None) -> None:
        super().__init__()
        self.gate = gate or Gate()

    @route()
    async def loop_thread(self) -> int:
        return threading.get_ident()

    @route()
    def pooled(self) -> dict[str, Any]:
        return {"ident": threading.get_ident(), "name": threading.current_thread().name}

    @route(inline=True)
    def inline(self) -> dict[str, Any]:
        return {"ident": threading.get_ident(), "name": threading.current_thread().name}

    @route(inline=False)
    def never_inline(self) -> dict[str, Any]:
        return {"ident": threading.get_ident(), "name": threading.current_thread().name}

    @route()
    def hold(self) -> str:
        self.gate.hold()
        return "released"

    @route(inline=True)
    def nap(self) -> str:
        time.sleep(0.05)  # blocks the loop: longer than the test's inline_block (0.01 s)
        return "awake"

    @route()
    def lines(self) -> StreamingResponse:
        def produce() -> Iterator[str]:
            for _ in range(3):
                yield threading.current_thread().name + "\n"

        return StreamingResponse(produce(), media_type="text/plain")

    @route()
    async def lines_from_async(self) -> StreamingResponse:
        response: StreamingResponse = self.lines()
        return response

    @route()
    def fails(self) -> str:
        raise ValueError("a def handler failed")


def make_server(tmp_path: Path, gate: Gate | None = None, **server: Any) -> AsgiServer:
    built = AsgiServer(tmp_path, config={"server": server}, environ={})
    built.mount("/w", Where(gate))
    return built


async def until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, SAFETY), "the handler never started"


# -- where a def handler runs ----------------------------------------------------------------


async def test_a_default_def_handler_runs_in_the_servers_pool(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client:
        loop_ident = (await client.get("/w/loop_thread")).json()
        pooled = (await client.get("/w/pooled")).json()
        kept = (await client.get("/w/never_inline")).json()
        pool_idents = {thread.ident for thread in server.sync.pool.threads}
    assert pooled["ident"] != loop_ident and pooled["ident"] in pool_idents
    assert pooled["name"].startswith(f"genro-sync-{server.boot_id}-")
    assert kept["ident"] in pool_idents


async def test_an_inline_handler_runs_on_the_loop_thread(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client:
        loop_ident = (await client.get("/w/loop_thread")).json()
        inline = (await client.get("/w/inline")).json()
    assert inline["ident"] == loop_ident


async def test_sync_handlers_inline_makes_every_def_route_inline_but_flagged_ones(
        tmp_path: Path) -> None:
    server = make_server(tmp_path, sync_handlers="inline")
    async with AsyncTestClient(server) as client:
        loop_ident = (await client.get("/w/loop_thread")).json()
        pooled = (await client.get("/w/pooled")).json()
        kept = (await client.get("/w/never_inline")).json()
    assert pooled["ident"] == loop_ident  # the server-wide default
    assert kept["ident"] != loop_ident  # @route(inline=False) wins
    assert kept["name"].startswith("genro-sync-")


async def test_a_sync_generator_steps_in_the_pool(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client:
        response = await client.get("/w/lines")
    names = response.text.split()
    assert response.status_code == 200 and len(names) == 3
    assert all(name.startswith(f"genro-sync-{server.boot_id}-") for name in names)


async def test_a_failing_def_handler_is_a_500_and_frees_its_slot(tmp_path: Path) -> None:
    server = make_server(tmp_path, sync_workers=1, sync_queue=0)
    async with AsyncTestClient(server) as client:
        assert (await client.get("/w/fails")).status_code == 500
        assert (await client.get("/w/pooled")).status_code == 200  # the slot came back
    assert server.sync.pool.admitted == 0


async def test_the_wsx_entry_point_invoke_uses_the_same_pool(tmp_path: Path) -> None:
    """``CompiledRoute.invoke`` is what WSX (and any other non-HTTP transport) calls."""
    server = make_server(tmp_path)
    async with AsyncTestClient(server):
        result = await server.routes["/w/pooled"].invoke(None, (), {})
        loop_ident = threading.get_ident()
        inline = await server.routes["/w/inline"].invoke(None, (), {})
        pool_idents = {thread.ident for thread in server.sync.pool.threads}
    assert result["ident"] in pool_idents
    assert inline["ident"] == loop_ident


# -- a full pool -----------------------------------------------------------------------------


async def test_a_full_pool_answers_503_with_retry_after(tmp_path: Path) -> None:
    gate = Gate()
    server = make_server(tmp_path, gate, sync_workers=1, sync_queue=1, sync_retry_after=7)
    async with AsyncTestClient(server) as client:
        running = asyncio.ensure_future(client.get("/w/hold"))
        await until(gate.entered)
        queued = asyncio.ensure_future(client.get("/w/pooled"))  # takes the one queue slot
        for _ in range(100):  # let it reach the pool; bounded, not a timing assertion
            if server.sync.pool.admitted == 2:
                break
            await asyncio.sleep(0.01)
        assert server.sync.pool.admitted == 2
        refused = await client.get("/w/pooled")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "7"
        assert "server.sync_workers" in refused.text
        # an async handler does not need the pool: it still answers
        assert (await client.get("/w/loop_thread")).status_code == 200
        gate.release.set()
        assert (await asyncio.wait_for(running, SAFETY)).text == "released"
        assert (await asyncio.wait_for(queued, SAFETY)).status_code == 200
        assert (await client.get("/w/pooled")).status_code == 200
    assert server.sync.pool.refused == 1 and server.sync.pool.admitted == 0


async def test_a_streaming_step_is_never_refused(tmp_path: Path) -> None:
    """A response already started must not fail halfway for lack of room."""
    gate = Gate()
    server = make_server(tmp_path, gate, sync_workers=1, sync_queue=0)
    async with AsyncTestClient(server) as client:
        running = asyncio.ensure_future(client.get("/w/hold"))
        await until(gate.entered)
        # an async handler returning a sync generator: its first step waits past the bound
        streamed = asyncio.ensure_future(client.get("/w/lines_from_async"))
        for _ in range(100):  # bounded, not a timing assertion
            if server.sync.pool.admitted == 2:
                break
            await asyncio.sleep(0.01)
        assert server.sync.pool.admitted == 2 and not streamed.done()
        assert (await client.get("/w/pooled")).status_code == 503  # a new call is refused
        gate.release.set()
        assert (await asyncio.wait_for(running, SAFETY)).status_code == 200
        lines = await asyncio.wait_for(streamed, SAFETY)
    assert lines.status_code == 200 and len(lines.text.split()) == 3


# -- the inline hazard -----------------------------------------------------------------------


async def test_a_blocking_inline_handler_is_reported_with_its_route(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"watchdog": {"inline_block": 0.01}})
    server.mount("/w", Where())
    caplog.set_level(logging.WARNING, logger="genro_asgi.watchdog")
    async with AsyncTestClient(server) as client:
        assert (await client.get("/w/nap")).text == "awake"
    assert server.sync.inline_blocks == 1
    # the report once it returned (the loop-stall monitor may also have reported it meanwhile)
    (record,) = [r for r in caplog.records if "inline sync handler" in r.getMessage()
                 and "has not returned" not in r.getMessage()]
    assert "/w/nap" in record.getMessage() and "held the event loop" in record.getMessage()


async def test_a_quick_inline_handler_is_not_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"watchdog": {"inline_block": 30}})
    server.mount("/w", Where())
    caplog.set_level(logging.WARNING, logger="genro_asgi.watchdog")
    async with AsyncTestClient(server) as client:
        assert (await client.get("/w/inline")).status_code == 200
    assert server.sync.inline_blocks == 0
    assert not [r for r in caplog.records if "inline sync handler" in r.getMessage()]


# -- instance isolation and lifecycle --------------------------------------------------------


async def test_two_servers_keep_separate_pools(tmp_path: Path) -> None:
    gate = Gate()
    busy = make_server(tmp_path, gate, sync_workers=1, sync_queue=0)
    other = make_server(tmp_path, sync_workers=1, sync_queue=0)
    assert busy.sync.pool is not other.sync.pool
    async with AsyncTestClient(busy) as busy_client, AsyncTestClient(other) as other_client:
        running = asyncio.ensure_future(busy_client.get("/w/hold"))
        await until(gate.entered)
        assert (await busy_client.get("/w/pooled")).status_code == 503
        answer = await other_client.get("/w/pooled")  # the other server's pool is free
        assert answer.status_code == 200
        assert answer.json()["ident"] in {t.ident for t in other.sync.pool.threads}
        busy_idents = {t.ident for t in busy.sync.pool.threads}
        assert busy_idents.isdisjoint({t.ident for t in other.sync.pool.threads})
        gate.release.set()
        assert (await asyncio.wait_for(running, SAFETY)).status_code == 200


async def test_shutdown_lets_a_running_call_finish_then_stops_the_threads(
        tmp_path: Path) -> None:
    gate = Gate()
    server = make_server(tmp_path, gate, sync_workers=2)
    client = AsyncTestClient(server)
    await client.__aenter__()
    assert not server.sync.pool.threads  # none until a call needs one
    running = asyncio.ensure_future(client.get("/w/hold"))
    await until(gate.entered)
    threads = server.sync.pool.threads
    assert len(threads) == 2 and all(t.is_alive() for t in threads)
    stopping = asyncio.ensure_future(client.__aexit__(None, None, None))
    await asyncio.sleep(0)
    gate.release.set()
    assert (await asyncio.wait_for(running, SAFETY)).text == "released"
    await asyncio.wait_for(stopping, SAFETY)
    assert server.sync.pool.closed and not server.sync.pool.threads
    assert not any(t.is_alive() for t in threads)


async def test_a_dropped_server_leaves_no_thread(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server, lifespan=False) as client:  # no shutdown ever runs
        assert (await client.get("/w/pooled")).status_code == 200  # the pool starts lazily
    threads = server.sync.pool.threads
    assert threads and all(t.is_alive() for t in threads)
    del server, client
    gc.collect()
    for thread in threads:
        await asyncio.to_thread(thread.join, SAFETY)
    assert not any(t.is_alive() for t in threads)


# -- the pool itself -------------------------------------------------------------------------


async def test_an_async_only_server_starts_no_sync_thread(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client:
        assert (await client.get("/w/loop_thread")).status_code == 200
        assert not server.sync.pool.threads


async def test_the_threads_start_together_at_the_first_call() -> None:
    pool = SyncPool(3, 4)
    pool.start()
    try:
        assert not pool.threads
        assert await asyncio.wait_for(pool.submit(str, 7), SAFETY) == "7"
        assert len(pool.threads) == 3 and all(thread.is_alive() for thread in pool.threads)
        await asyncio.wait_for(pool.submit(str, 8), SAFETY)
        assert len(pool.threads) == 3
    finally:
        await pool.close(SAFETY)


async def test_a_cancelled_call_that_had_not_started_never_runs() -> None:
    pool = SyncPool(1, 4)
    gate, ran = Gate(), list[str]()
    try:
        holding = pool.submit(gate.hold)
        await until(gate.entered)
        skipped = pool.submit(ran.append, "skipped")
        skipped.cancel()
        gate.release.set()
        await asyncio.wait_for(holding, SAFETY)
        await asyncio.wait_for(pool.submit(ran.append, "ran"), SAFETY)
        assert ran == ["ran"] and pool.admitted == 0
    finally:
        gate.release.set()
        await pool.close(SAFETY)


async def test_a_call_sees_its_callers_context_and_raises_its_errors() -> None:
    pool = SyncPool(1, 0)
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("from the caller")
    try:
        assert await pool.submit(var.get) == "from the caller"
        with pytest.raises(ZeroDivisionError):
            await pool.submit(lambda: 1 / 0)
    finally:
        await pool.close(SAFETY)


def test_a_worker_goes_on_after_its_callers_loop_closed() -> None:
    """A call whose event loop is gone when it returns (a server stopped mid-call) cannot be
    settled: its worker drops it and serves the next call, on another loop."""
    pool, gate = SyncPool(1, 1), Gate()

    async def leave_a_call_running() -> None:
        pool.submit(gate.hold)  # never awaited: this loop closes while the call runs
        await until(gate.entered)

    asyncio.run(leave_a_call_running())
    gate.release.set()  # the worker now settles onto a closed loop

    async def call_again() -> str:
        try:
            return await asyncio.wait_for(pool.submit(str, "served"), SAFETY)
        finally:
            await pool.close(SAFETY)

    assert asyncio.run(call_again()) == "served"


async def test_a_closed_pool_refuses_with_503() -> None:
    pool = SyncPool(1, 0)
    pool.start()
    await pool.close(SAFETY)
    from genro_asgi import HTTPException
    with pytest.raises(HTTPException) as info:
        pool.submit(int)
    assert info.value.status_code == 503


@pytest.mark.parametrize("server", [{"sync_workers": 0}, {"sync_queue": -1},
                                    {"sync_handlers": "threads"}, {"sync_retry_after": -1}])
def test_bad_settings_are_config_errors(tmp_path: Path, server: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="sync_"):
        AsgiServer(tmp_path, config={"server": server}, environ={})
