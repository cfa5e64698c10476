"""A hostile client in process: a flood of pages that come and go leaves nothing behind once
every grace period, idle time and retention has passed (records, indexes, trees, buckets)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from spa_helpers import Clock, Page, headers, make_server, manager

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
        assert spa._buckets == {} and spa._user_buckets == {}
