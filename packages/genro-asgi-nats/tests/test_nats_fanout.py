"""WSX fan-out across servers: two real uvicorn servers on one real nats-server."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats_helpers import TIMEOUT, event, make, notify, open_ws, subscribe

from genro_asgi.testing import LiveServer
from genro_asgi_nats import NatsBroker
from genro_asgi_nats.testing import NatsServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def pair(tmp_path: Path, nats_server: NatsServer) -> Iterator[tuple[LiveServer, LiveServer]]:
    with LiveServer(make(tmp_path, nats_server.url, name="a")) as a, \
            LiveServer(make(tmp_path, nats_server.url, name="b")) as b:
        yield a, b


def broker_of(live: LiveServer) -> NatsBroker:
    broker = live.server.config.app.plugins.get("wsx").broker
    assert isinstance(broker, NatsBroker)
    return broker


def test_a_publication_on_one_server_reaches_subscribers_on_both(
        pair: tuple[LiveServer, LiveServer]) -> None:
    a, b = pair
    with open_ws(a) as on_a, open_ws(b) as on_b:
        sub_a = subscribe(on_a, "orders.*")
        sub_b = subscribe(on_b, "orders.42")
        value = {"price": Decimal("10.50"), "day": datetime.date(2025, 1, 15)}
        assert notify(a, "orders.42", value).status_code == 200
        assert event(on_a) == (sub_a, "orders.42", value)  # typed values survive NATS
        assert event(on_b) == (sub_b, "orders.42", value)
        notify(b, "orders.7", "seven")  # matches a's wildcard only
        assert event(on_a) == (sub_a, "orders.7", "seven")
        notify(b, "orders.42", 2)
        assert event(on_b) == (sub_b, "orders.42", 2)  # nothing queued before it


def test_wildcards_map_onto_subjects(pair: tuple[LiveServer, LiveServer]) -> None:
    a, b = pair
    with open_ws(b) as ws:
        star = subscribe(ws, "shop.*.price", 1)
        tail = subscribe(ws, "shop.>", 2)
        notify(a, "shop.p1.price", 1)
        got = {event(ws)[0] for _ in range(2)}
        assert got == {star, tail}
        notify(a, "shop.p1.stock.eu", 2)  # two tokens after shop.: only '>'
        assert event(ws) == (tail, "shop.p1.stock.eu", 2)
        notify(a, "shop", 3)  # '>' needs at least one token
        notify(a, "shop.p2.price", 4)
        assert {event(ws)[:2] for _ in range(2)} == {(star, "shop.p2.price"),
                                                      (tail, "shop.p2.price")}


def test_exactly_once_per_subscriber_and_in_order_per_publisher(
        pair: tuple[LiveServer, LiveServer]) -> None:
    a, b = pair
    count = 200
    with open_ws(a) as on_a, open_ws(b) as on_b:
        # overlapping patterns on one process: each subscription gets each publication once
        subs_b = {subscribe(on_b, "feed.>", 1), subscribe(on_b, "feed.*", 2),
                  subscribe(on_b, "feed.x", 3)}
        sub_a = subscribe(on_a, "feed.x")
        for live, origin in ((a, "A"), (b, "B")):
            response = httpx.post(f"{live.url}/pub/burst", timeout=TIMEOUT,
                                  json={"channel": "feed.x", "count": count, "origin": origin})
            assert response.status_code == 200
        seen_b: dict[tuple[str, str], list[int]] = {}
        for _ in range(3 * 2 * count):
            sub, channel, data = event(on_b)
            assert channel == "feed.x"
            seen_b.setdefault((sub, data["origin"]), []).append(data["n"])
        assert set(seen_b) == {(s, o) for s in subs_b for o in "AB"}
        for numbers in seen_b.values():
            assert numbers == list(range(count))  # once each, in publication order
        seen_a: dict[str, list[int]] = {"A": [], "B": []}
        for _ in range(2 * count):
            sub, _, data = event(on_a)
            assert sub == sub_a
            seen_a[data["origin"]].append(data["n"])
        assert seen_a == {"A": list(range(count)), "B": list(range(count))}


def test_one_nats_subscription_per_distinct_pattern(pair: tuple[LiveServer, LiveServer]) -> None:
    a, _ = pair
    broker = broker_of(a)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(open_ws(a)) for _ in range(4)]
        for ws in clients:
            subscribe(ws, "room.1", 1)
            subscribe(ws, "room.*", 2)
        assert broker.subscription_count == 8
        assert broker.pattern_count == 2
        nc = broker.link.nc
        assert nc is not None
        assert len(nc._subs) == 2  # what the NATS server was asked for
    deadline_ok = _eventually(lambda: broker.pattern_count == 0)
    assert deadline_ok and broker.subscription_count == 0


def test_subject_prefix_keeps_two_applications_apart(tmp_path: Path,
                                                     nats_server: NatsServer) -> None:
    shop = make(tmp_path, nats_server.url, name="shop", nats={"subject_prefix": "shop"})
    blog = make(tmp_path, nats_server.url, name="blog", nats={"subject_prefix": "blog.eu"})
    with LiveServer(shop) as a, LiveServer(blog) as b, open_ws(a) as on_a, open_ws(b) as on_b:
        sub_a = subscribe(on_a, "news")
        sub_b = subscribe(on_b, "news")
        notify(b, "news", "for blog")
        notify(a, "news", "for shop")
        assert event(on_a) == (sub_a, "news", "for shop")
        assert event(on_b) == (sub_b, "news", "for blog")


def _eventually(check: Any, timeout: float = TIMEOUT) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())
