"""A hostile client in process: a flood of pages that come and go leaves nothing behind once
every grace period, idle time and retention has passed (records, indexes, trees, buckets)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from spa_helpers import Clock, Page, headers, make_server, manager, refused

from genro_asgi.testing import AsyncTestClient
from genro_asgi_spa import MemoryBackend


async def test_a_flood_of_pages_leaves_nothing_once_every_timeout_passed(
        tmp_path: Path) -> None:
    server = make_server(tmp_path, {"max_sessions_per_user": 1000,
                                    "max_connections_per_user": 1000})
    clock = Clock()
    async with AsyncTestClient(server) as client:
        spa = manager(server, clock)
        backend = spa.backend
        assert isinstance(backend, MemoryBackend)
        for user in ("alice", "bob"):
            for round_ in range(30):
                async with AsyncExitStack() as stack:
                    ws = await stack.enter_async_context(client.websocket_connect(
                        "/_wsx", subprotocols=["wsx"], headers=headers(user)))
                    page = Page(ws)
                    await page.register()
                    for level in ("user", "connection", "session", "page"):
                        await page.ok("set", level=level, path=f"k{round_}", value="v")
                    if round_ % 2:
                        await page.ok("unregister")
                        await page.register()
                clock.advance(1.0)
        assert spa.live == {}
        clock.advance(10_000_000)
        for _ in range(3):  # page -> session -> connection -> user: one pass each at most
            await spa.sweep()
            clock.advance(10_000_000)
        leftovers = {kind: len(table) for kind, table in backend._records.items() if table}
        assert leftovers == {}
        assert backend._trees == {} and backend._total == 0
        assert not any(backend._pages_by.values())
        assert backend._sessions_by_connection == {}
        assert backend._sessions_by_user == {} and backend._connections_by_user == {}
        assert spa._by_socket == {} and not any(spa._local.values())
        assert spa._buckets == {} and spa._user_buckets == {} and spa._read_buckets == {}


@pytest.mark.parametrize(("limits", "code", "count"), [
    ({"max_pages_per_user": 4}, "spa_too_many_pages", "pages"),
    ({"max_sessions_per_user": 4}, "spa_too_many_sessions", "sessions"),
    ({"max_connections_per_user": 4}, "spa_too_many_connections", "connections"),
])
async def test_concurrent_registers_of_one_user_do_not_pass_its_limits(
        tmp_path: Path, limits: dict[str, int], code: str, count: str) -> None:
    # on a backend that yields (as NATS does) every register counted before any wrote: all
    # 12 passed a limit of 4
    server = make_server(tmp_path, {"backend": "spa_helpers:YieldingBackend",
                                    "max_pages_per_connection": 100, **limits})
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        pages = [Page(await stack.enter_async_context(client.websocket_connect(
            "/_wsx", subprotocols=["wsx"], headers=headers("alice"))))
            for _ in range(12)]
        frames = await asyncio.gather(*(page.call("register") for page in pages))
        assert sorted(frame["status"] for frame in frames) == [200] * 4 + [429] * 8
        for frame in frames:
            if frame["status"] != 200:
                refused(frame, 429, code)
        backend = manager(server).backend
        assert len(await getattr(backend, count)(user_id="alice")) == 4
        assert manager(server)._user_locks == {}
