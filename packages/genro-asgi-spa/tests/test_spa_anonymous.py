"""Anonymous visitors (``allow_anonymous``): what a flood of cookie-less clients can make the
server hold. Each is a new user, so per-user limits do not bound them: ``max_anonymous_users``
bounds them together (503 ``spa_anonymous_full`` with ``retry_after``, authenticated users
never refused by it), and ``anonymous_ttl`` drops what a visitor leaves once its pages end."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from spa_helpers import Clock, Page, headers, make_server, manager, refused

from genro_asgi.testing import AsyncTestClient
from genro_asgi_spa import MemoryBackend, SpaError, SpaManager, UserRecord

ANON = {"allow_anonymous": True}


def _backend(spa: SpaManager) -> MemoryBackend:
    backend = spa.backend
    assert isinstance(backend, MemoryBackend)
    return backend


def _held(spa: SpaManager) -> dict[str, int]:
    """What the backend and the manager hold, by structure (empty ones left out)."""
    backend = _backend(spa)
    found = {kind: len(table) for kind, table in backend._records.items()}
    found.update(trees=len(backend._trees), total_bytes=backend._total,
                 anonymous=len(backend._anonymous),
                 pages_by=sum(len(index) for index in backend._pages_by.values()),
                 sessions_by=len(backend._sessions_by_connection) + len(backend._sessions_by_user),
                 connections_by=len(backend._connections_by_user),
                 live=len(spa.live), sockets=len(spa._by_socket),
                 local=sum(len(index) for index in spa._local.values()),
                 buckets=len(spa._buckets), user_buckets=len(spa._user_buckets),
                 read_buckets=len(spa._read_buckets), locks=len(spa._user_locks),
                 pending=len(spa._anonymous_pending), registering=len(spa._registering))
    return {key: value for key, value in found.items() if value}


async def _sweep_all(spa: SpaManager, clock: Clock, seconds: float) -> None:
    """Let ``seconds`` pass, one sweep at each step (page -> session -> user: a pass each)."""
    for _ in range(4):
        clock.advance(seconds / 4)
        await spa.sweep()


def _full(frame: dict[str, Any], retry_after: int) -> None:
    refused(frame, 503, "spa_anonymous_full")
    assert frame["error"]["retry_after"] == retry_after, frame


async def test_anonymous_users_are_bounded_and_signed_in_users_are_not(tmp_path: Path) -> None:
    server = make_server(tmp_path, anonymous=True, spa={**ANON, "max_anonymous_users": 3,
                                    "anonymous_retry_after": 17})
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        spa = manager(server)

        async def socket(user: str | None = None, cookie: str | None = None) -> Page:
            return Page(await stack.enter_async_context(client.websocket_connect(
                "/_wsx", subprotocols=["wsx"], headers=headers(user, cookie))))

        visitors = [await socket() for _ in range(3)]
        tokens = [(await page.register())["connection_token"] for page in visitors]
        assert await _backend(spa).anonymous_users() == 3
        before = _held(spa)
        for _ in range(5):  # a fourth visitor, again and again: refused, nothing kept
            _full(await (await socket()).call("register"), 17)
        assert _held(spa) == before
        assert spa.stats.refused["spa_anonymous_full"] == 5
        # a visitor already held opens more pages; signed-in users are not counted
        again = await socket(cookie=tokens[0])
        assert (await again.register())["user_id"] == visitors[0].info["user_id"]
        for user in ("alice", "bob"):
            page = await socket(user)
            assert (await page.register())["user_id"] == user
            await page.ok("set", level="user", path="k", value=user)
            assert await page.ok("get", level="user", path="k") == user
        assert await _backend(spa).anonymous_users() == 3


async def test_the_count_is_what_the_backend_holds() -> None:
    backend = MemoryBackend()
    for index in range(3):
        await backend.put(UserRecord(f"anon:{index}", backend.process_id, anonymous=True))
    await backend.put(UserRecord("alice", backend.process_id))
    await backend.put(UserRecord("anon:0", backend.process_id, anonymous=True, online=False))
    assert await backend.anonymous_users() == 3  # a record written again counts once
    await backend.delete("user", "anon:1")
    await backend.delete("user", "anon:1")
    await backend.delete("user", "alice")
    assert await backend.anonymous_users() == 2


async def test_a_visitor_leaves_nothing_once_anonymous_ttl_has_passed(tmp_path: Path) -> None:
    # the defaults: a visitor's connection data stayed connection_idle (a day) before
    server = make_server(tmp_path, ANON, anonymous=True)
    clock = Clock()
    async with AsyncTestClient(server) as client:
        spa = manager(server, clock)
        backend = _backend(spa)
        baseline = _held(spa)
        for user in (None, "alice"):
            async with client.websocket_connect("/_wsx", subprotocols=["wsx"],
                                                headers=headers(user)) as ws:
                page = Page(ws)
                await page.register()
                await page.ok("subscribe", level="connection", path="k")
                for level in ("user", "connection", "session", "page"):
                    await page.ok("set", level=level, path="k", value="v")
        # the page's grace period, then the user's ttl: offline; its data is still kept...
        await _sweep_all(spa, clock, spa.config.grace_period + spa.config.user_ttl + 4)
        visitor = [u for u in await backend.users() if u.anonymous]
        assert len(visitor) == 1 and not visitor[0].online
        anon = visitor[0].user_id
        assert [c.user_id for c in await backend.connections(user_id=anon)] == [anon]
        assert await backend.data_size("connection", anon[5:]) > 0
        # ... for anonymous_ttl (300 s by default), then all of it goes together
        await _sweep_all(spa, clock, 300)
        assert await backend.anonymous_users() == 0
        assert {r.user_id for table in backend._records.values()
                for r in table.values()} == {"alice"}
        alice_owners = {"alice", *[c.connection_id for c in await backend.connections()],
                        *[s.session_id for s in await backend.sessions()]}
        assert {owner for _, owner in backend._trees} == alice_owners and len(alice_owners) == 3
        assert set(spa._user_buckets) == set(spa._read_buckets) == {"alice"}
        assert spa._buckets == {} and spa._user_locks == {} and spa.live == {}
        # signed-in users keep today's times (user_retention, session_idle, connection_idle)
        await _sweep_all(spa, clock, 10_000_000)
        assert _held(spa) == baseline == {}


async def test_a_flood_of_visitors_fills_the_cap_then_everything_returns_to_baseline(
        tmp_path: Path) -> None:
    server = make_server(tmp_path, anonymous=True, spa={**ANON, "max_anonymous_users": 10})
    clock = Clock()
    async with AsyncTestClient(server) as client:
        spa = manager(server, clock)
        baseline = _held(spa)
        outcomes: list[int] = []
        for round_ in range(30):  # open, store at every level, leave: a new visitor each time
            async with client.websocket_connect("/_wsx", subprotocols=["wsx"]) as ws:
                page = Page(ws)
                frame = await page.call("register", info={"n": round_})
                outcomes.append(frame["status"])
                if frame["status"] == 200:
                    await page.ok("subscribe", level="page", path="")
                    for level in ("user", "connection", "session", "page"):
                        await page.ok("set", level=level, path="blob", value="x" * 100)
                else:
                    _full(frame, spa.config.anonymous_retry_after)
            clock.advance(1.0)
        assert outcomes == [200] * 10 + [503] * 20
        assert await _backend(spa).anonymous_users() == 10
        async with client.websocket_connect("/_wsx", subprotocols=["wsx"],
                                            headers=headers("alice")) as ws:
            await Page(ws).register()  # a signed-in user at the cap
        await _sweep_all(spa, clock, 10_000_000)
        assert _held(spa) == baseline == {}
        async with client.websocket_connect("/_wsx", subprotocols=["wsx"]) as ws:
            await Page(ws).register()  # the places are free again


async def test_concurrent_first_pages_do_not_pass_the_cap(tmp_path: Path) -> None:
    # on a backend that yields (as NATS does) every register counted before any wrote
    server = make_server(tmp_path, anonymous=True, spa={**ANON, "max_anonymous_users": 4,
                                    "backend": "spa_helpers:YieldingBackend"})
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        pages = [Page(await stack.enter_async_context(client.websocket_connect(
            "/_wsx", subprotocols=["wsx"]))) for _ in range(12)]
        frames = await asyncio.gather(*(page.call("register") for page in pages))
        assert sorted(frame["status"] for frame in frames) == [200] * 4 + [503] * 8
        spa = manager(server)
        assert await _backend(spa).anonymous_users() == 4
        assert spa._anonymous_pending == {}


async def test_the_refusal_carries_retry_after_and_a_cookie_costs_no_place(
        tmp_path: Path) -> None:
    server = make_server(tmp_path, anonymous=True, spa={**ANON, "max_anonymous_users": 1})
    async with AsyncTestClient(server) as client:
        async with client.websocket_connect("/_wsx", subprotocols=["wsx"]) as ws:
            await Page(ws).register()
            for _ in range(3):  # minting cookies writes nothing: the place stays taken
                client.cookies.clear()  # a new visitor each time
                answer = await client.get("/_spa/connection")
                assert answer.status_code == 200
                cookie = answer.headers["set-cookie"].split(";")[0].split("=", 1)[1]
                async with client.websocket_connect("/_wsx", subprotocols=["wsx"],
                                                    headers=headers(cookie=cookie)) as other:
                    frame = await Page(other).call("register")
                    _full(frame, 30)  # the default anonymous_retry_after
                    assert "sign in, or try later" in frame["error"]["message"]
        assert len(_backend(manager(server))._records["connection"]) == 1
    # the same error raised over HTTP (by an app's handler) carries the header
    error = SpaError("spa_anonymous_full", "full", retry_after=30)
    assert error.status_code == 503 and error.headers == {"Retry-After": "30"}


async def test_visitors_fill_only_their_share_of_the_data(tmp_path: Path) -> None:
    # max_total_data_bytes 8 KiB, anonymous_data_share 0.5: visitors stop at 4 KiB
    server = make_server(tmp_path, anonymous=True, spa={
        **ANON, "max_total_data_bytes": 8192, "anonymous_data_share": 0.5})
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        statuses = []
        for _ in range(12):  # each stores 1 KiB at connection level and leaves
            async with client.websocket_connect("/_wsx", subprotocols=["wsx"]) as ws:
                page = Page(ws)
                await page.register()
                frame = await page.call("set", level="connection", path="blob",
                                        value="x" * 1000)
                statuses.append(frame["status"])
                if frame["status"] != 200:
                    refused(frame, 503, "spa_server_full")
        # a tree of 1006 bytes each (its path and the JSON text): the 5th passes 4 KiB
        assert statuses == [200] * 5 + [503] * 7
        assert await _backend(manager(server)).data_total() == 5 * 1006
        # a signed-in user still stores (up to max_total_data_bytes)
        alice = Page(await stack.enter_async_context(client.websocket_connect(
            "/_wsx", subprotocols=["wsx"], headers=headers("alice"))))
        await alice.register()
        for index in range(3):
            await alice.ok("set", level="user", path=f"k{index}", value="y" * 1000)


@pytest.mark.parametrize("bad", [
    {"max_anonymous_users": 0}, {"max_anonymous_users": -5}, {"max_anonymous_users": "many"},
    {"anonymous_ttl": -1}, {"anonymous_ttl": "soon"}, {"anonymous_retry_after": 0},
    {"anonymous_retry_after": 3601}, {"anonymous_data_share": 0},
    {"anonymous_data_share": 1.5}])
def test_bad_anonymous_limits_are_config_errors(tmp_path: Path, bad: dict[str, Any]) -> None:
    key = next(iter(bad))
    with pytest.raises(Exception) as info:
        make_server(tmp_path, bad)
    assert f"plugins.spa.{key}" in str(info.value) or key in str(info.value), str(info.value)
    assert type(info.value).__name__ in ("ConfigError", "PluginError"), type(info.value)


async def test_a_backend_that_cannot_count_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = make_server(tmp_path, anonymous=True,
                         spa={**ANON, "backend": "spa_helpers:NoCountBackend"})
    async with AsyncTestClient(server) as client, client.websocket_connect(
            "/_wsx", subprotocols=["wsx"]) as ws:
        await Page(ws).register()  # not counted, not refused
    assert "cannot count anonymous users" in caplog.text
