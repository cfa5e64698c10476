"""The spa replica's ordering rules and key encoding (no NATS needed)."""

from __future__ import annotations

import asyncio
import re

import pytest

from genro_asgi_nats.spa_replica import (
    Replica,
    decode_record,
    encode_record,
    key_token,
    record_key,
    tree_key,
)
from genro_asgi_spa.backend import PageRecord, UserRecord

KV_KEY = re.compile(r"[-/_=.a-zA-Z0-9]+")


def page(state: str = "live", process: str = "a") -> PageRecord:
    return PageRecord("p1", "s1", "c1", "u1", process, state)  # type: ignore[arg-type]


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["plain-id_1", "user@example.com", "anon:Z0H", "a.b.c",
                                   "é" * 10, "x" * 500, "", "*", ">"])
def test_every_id_becomes_one_valid_kv_token(value: str) -> None:
    token = key_token(value)
    assert KV_KEY.fullmatch(token) and "." not in token
    assert len(token) <= 128
    assert key_token(value) == token
    assert record_key("user", value) == f"r.user.{token}"
    assert tree_key("page", value) == f"t.page.{token}"


def test_distinct_ids_distinct_tokens() -> None:
    ids = ["a", "=a", "YQ", "=YQ", "a.b", "a_b", "x" * 129, "x" * 130, "é"]
    assert len({key_token(i) for i in ids}) == len(ids)


def test_records_round_trip_and_garbage_is_refused() -> None:
    record = UserRecord("u@x", "proc-1", anonymous=False, created_at=1.5)
    assert decode_record(encode_record(record)) == record
    for bad in (b"\xff", b"[1]", b'{"kind": "nope"}', b'{"kind": "page"}', b"{"):
        with pytest.raises(ValueError):
            decode_record(bad)


def test_an_older_watched_value_never_overwrites_a_newer_one() -> None:
    async def go() -> None:
        replica = Replica()
        key = record_key("page", "p1")
        await replica.confirmed_put(key, page("grace"), 7)
        # the watch is behind: it brings revision 5 now
        assert not await replica.watched_put(key, page("live"), 5)
        assert (await replica.get("page", "p1")).state == "grace"  # type: ignore[union-attr]
        assert await replica.watched_put(key, page("live", "b"), 8)
        assert (await replica.get("page", "p1")).process_id == "b"  # type: ignore[union-attr]

    run(go())


def test_a_confirmed_write_the_watch_already_passed_is_not_applied_again() -> None:
    async def go() -> None:
        replica = Replica()
        key = record_key("page", "p1")
        # another process deleted the key at 6, after our put at 5, before our put returned
        assert await replica.watched_put(key, page("live"), 5)
        assert await replica.watched_delete(key, 6)
        await replica.confirmed_put(key, page("live"), 5)
        assert await replica.get("page", "p1") is None

    run(go())


def test_a_deleted_key_stays_deleted_until_the_watch_shows_the_delete() -> None:
    async def go() -> None:
        replica = Replica()
        key = record_key("page", "p1")
        await replica.confirmed_put(key, page(), 3)
        await replica.local_delete(key, confirmed=True)
        # a late echo of the put (or of an older one) must not bring it back
        assert not await replica.watched_put(key, page(), 4)
        assert await replica.get("page", "p1") is None
        await replica.watched_delete(key, 5)
        assert await replica.watched_put(key, page("live", "c"), 6)  # a new page: applies
        assert (await replica.get("page", "p1")).process_id == "c"  # type: ignore[union-attr]

    run(go())


def test_unconfirmed_writes_are_kept_in_order_and_win_over_the_watch() -> None:
    async def go() -> None:
        replica = Replica()
        first, second = record_key("page", "p1"), record_key("user", "u1")
        await replica.unconfirmed_put(first, page("live"))
        await replica.unconfirmed_put(second, UserRecord("u1", "a"))
        await replica.unconfirmed_put(first, page("grace"))
        assert list(replica.dirty) == [second, first]  # replayed as last written
        assert not await replica.watched_put(first, page("live", "z"), 9)
        assert (await replica.get("page", "p1")).state == "grace"  # type: ignore[union-attr]
        await replica.local_delete(second, confirmed=False)
        assert replica.dirty[second] is None and await replica.get("user", "u1") is None
        await replica.confirmed_put(first, page("grace"), 10)
        assert first not in replica.dirty

    run(go())


def test_presence_indexes_follow_the_watch() -> None:
    async def go() -> None:
        replica = Replica()
        for n in range(3):
            record = PageRecord(f"p{n}", "s1", "c1", "u1", "a")
            await replica.watched_put(record_key("page", record.page_id), record, n + 1)
        assert len(await replica.records.pages(user_id="u1")) == 3
        await replica.watched_delete(record_key("page", "p1"), 10)
        assert sorted(p.page_id for p in await replica.records.pages(session_id="s1")) == \
            ["p0", "p2"]

    run(go())
