"""genro-asgi-spa across processes: two servers (real uvicorn, in threads) with
``NatsSpaBackend`` on one real nats-server, pages as real ``websockets`` clients."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats_helpers import raw_publish
from spa_nats_helpers import TIMEOUT, Page, eventually, make, message_topic, probe

from genro_asgi.testing import LiveServer
from genro_asgi_nats.testing import NatsServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def pair(tmp_path: Path, nats_server: NatsServer) -> Iterator[tuple[LiveServer, LiveServer]]:
    with LiveServer(make(tmp_path, nats_server.url, "a")) as a, \
            LiveServer(make(tmp_path, nats_server.url, "b")) as b:
        yield a, b


@pytest.fixture
def pages() -> Iterator[list[Page]]:
    opened: list[Page] = []
    yield opened
    for page in opened:
        with contextlib.suppress(Exception):
            page.close()


def open_page(pages: list[Page], live: LiveServer, **register: Any) -> Page:
    page = Page(live)
    pages.append(page)
    page.register(**register)
    return page


def test_presence_of_a_page_opened_on_a_is_visible_on_b(
        pair: tuple[LiveServer, LiveServer], pages: list[Page]) -> None:
    a, b = pair
    page = open_page(pages, a, info={"title": "orders"})
    user, page_id = page.info["user_id"], page.info["page_id"]
    home_a = probe(a, "me")["process_id"]
    assert page.info["process_id"] == home_a
    seen = eventually(lambda: probe(b, "pages", user_id=user))
    assert seen == [{"page_id": page_id, "state": "live", "process_id": home_a}]
    # the same through the wire, from a page on b (presence_auth: null in these servers)
    watcher = open_page(pages, b)
    listed = watcher.ok("pages", user_id=user)
    assert [(p["page_id"], p["process_id"], p["info"]) for p in listed] == \
        [(page_id, home_a, {"title": "orders"})]
    assert user in {u["user_id"] for u in watcher.ok("online")}
    # each process hears the other beat
    assert eventually(lambda: len(probe(b, "me")["processes"]) == 2)


def test_a_user_change_on_a_reaches_the_users_pages_on_a_and_b_exactly_once(
        pair: tuple[LiveServer, LiveServer], pages: list[Page]) -> None:
    a, b = pair
    first = open_page(pages, a)
    token = first.info["connection_token"]
    second = open_page(pages, a, connection=token)
    third = open_page(pages, b, connection=token)
    user = first.info["user_id"]
    assert {p.info["user_id"] for p in (first, second, third)} == {user}
    eventually(lambda: len(probe(b, "pages", user_id=user)) == 3)
    eventually(lambda: len(probe(a, "pages", user_id=user)) == 3)
    # overlapping subscriptions on one page: still one event per change per page
    for page in (first, second, third):
        page.ok("subscribe", level="user", path="prefs")
        page.ok("subscribe", level="user", path="")
    third.ok("subscribe", level="user", path="prefs.theme")
    # another user's page, subscribed to the same path of its own tree: nothing for it
    stranger = open_page(pages, b)
    stranger.ok("subscribe", level="user", path="prefs")
    first.ok("set", level="user", path="prefs.theme", value="dark")
    # a later message to the user from the same process marks the end (each process's
    # deliveries arrive in the order it sent them): whatever came before it is all there is
    first.ok("send", to="user", topic="done", data=1)
    for page in (first, second, third):
        got = page.until(message_topic("done"))
        changes = [e for e in got if e[0] == "spa.change"]
        assert changes == [("spa.change", {"level": "user", "path": "prefs.theme",
                                           "value": "dark", "deleted": False})], got
        assert [e for e in got if e[0] == "spa.message"] == [
            ("spa.message", {"topic": "done", "data": 1,
                             "from": {"user_id": user, "page_id": first.info["page_id"]}})]
    # the value is one tree, read from either process
    assert third.ok("get", level="user", path="prefs") == {"theme": "dark"}
    assert probe(a, "data", level="user", owner=user, path="prefs.theme")["value"] == "dark"
    stranger.ok("send", to="user", topic="mine", data=0)
    assert stranger.until(message_topic("mine")) == [
        ("spa.message", {"topic": "mine", "data": 0,
                         "from": {"user_id": stranger.info["user_id"],
                                  "page_id": stranger.info["page_id"]}})]


def test_changes_from_two_processes_to_one_tree_are_all_kept(
        pair: tuple[LiveServer, LiveServer], pages: list[Page]) -> None:
    """Compare-and-set on the tree's revision: a write from b between a's read and a's
    write makes a read again, instead of overwriting b's change."""
    a, b = pair
    on_a = open_page(pages, a)
    on_b = open_page(pages, b, connection=on_a.info["connection_token"])
    import threading

    def writer(page: Page, side: str) -> None:
        for n in range(30):
            page.ok("set", level="user", path=f"{side}.k{n}", value=n)

    threads = [threading.Thread(target=writer, args=(on_a, "a")),
               threading.Thread(target=writer, args=(on_b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    tree = on_a.ok("get", level="user", path="")
    assert tree == {"a": {f"k{n}": n for n in range(30)}, "b": {f"k{n}": n for n in range(30)}}


def test_a_page_closed_on_a_goes_offline_on_b_after_grace(
        tmp_path: Path, nats_server: NatsServer, pages: list[Page]) -> None:
    quick = {"grace_period": 2.0, "user_ttl": 0.3, "sweep_interval": 0.1}
    with LiveServer(make(tmp_path, nats_server.url, "a", spa=quick)) as a, \
            LiveServer(make(tmp_path, nats_server.url, "b", spa=quick)) as b:
        page = open_page(pages, a)
        user = page.info["user_id"]
        page.ok("set", level="user", path="name", value="Ada")  # kept while offline
        eventually(lambda: probe(b, "pages", user_id=user))
        eventually(lambda: (probe(b, "user", user_id=user) or {}).get("online"))
        page.close()
        # first in grace (resumable), then gone; the user goes offline after user_ttl
        eventually(lambda: [p["state"] for p in probe(b, "pages", user_id=user)] == ["grace"])
        assert probe(b, "user", user_id=user)["online"] is True  # not before the page ends
        eventually(lambda: probe(b, "pages", user_id=user) == [])
        eventually(lambda: probe(b, "user", user_id=user)["online"] is False)


def test_each_user_has_a_home_process(pair: tuple[LiveServer, LiveServer],
                                      pages: list[Page]) -> None:
    a, b = pair
    on_a = open_page(pages, a)
    user = on_a.info["user_id"]
    home_a = probe(a, "me")["process_id"]
    # a second page of the user on b: the home stays where the user came first
    open_page(pages, b, connection=on_a.info["connection_token"])
    assert probe(b, "user", user_id=user)["process_id"] == home_a
    assert probe(a, "user", user_id=user)["process_id"] == home_a
    on_b = open_page(pages, b)  # another user, first seen on b
    assert eventually(lambda: probe(a, "user", user_id=on_b.info["user_id"])
                      )["process_id"] == probe(b, "me")["process_id"]


def test_a_forged_or_foreign_page_id_arriving_on_b_is_refused(
        pair: tuple[LiveServer, LiveServer], pages: list[Page]) -> None:
    a, b = pair
    victim = open_page(pages, a)
    victim.ok("set", level="page", path="secret", value="victim's")
    page_id = victim.info["page_id"]
    eventually(lambda: probe(b, "pages", user_id=victim.info["user_id"]))
    attacker = Page(b)
    pages.append(attacker)
    # another connection (another anonymous user) naming the victim's page
    status, message = attacker.call("register", page_id=page_id)
    assert status == 403 and message.startswith("spa_foreign"), (status, message)
    # a page id that never was, and a malformed one
    status, message = attacker.call("register", page_id="Z0HHnoSuchPage0000000000")
    assert status == 404 and message.startswith("spa_unknown_page")
    status, message = attacker.call("register", page_id="../" + "x" * 100)
    assert status == 400 and message.startswith("spa_bad_request")
    # even with the victim's page closed (in grace), a foreign connection cannot resume it
    victim.close()
    eventually(lambda: probe(b, "pages", user_id=victim.info["user_id"])[0]["state"]
               == "grace")
    status, message = attacker.call("register", page_id=page_id)
    assert status == 403 and message.startswith("spa_foreign")
    attacker.register()
    status, message = attacker.call("send", to="page", id=page_id, topic="x", data=1)
    assert status == 403 and message.startswith("spa_foreign")
    # nothing crossed: the victim's page and its data are as they were
    owner = victim.info["page_id"]
    assert probe(b, "data", level="page", owner=owner, path="secret")["value"] == "victim's"
    resumed = Page(b)
    pages.append(resumed)
    again = resumed.register(page_id=page_id, connection=victim.info["connection_token"])
    assert again["resumed"] is True
    assert resumed.ok("get", level="page", path="secret") == "victim's"


def test_a_page_resumes_on_the_other_process_within_grace_with_its_data(
        pair: tuple[LiveServer, LiveServer], pages: list[Page]) -> None:
    a, b = pair
    page = open_page(pages, a)
    page.ok("set", level="page", path="draft", value={"lines": [1, 2]})
    page_id, token = page.info["page_id"], page.info["connection_token"]
    page.close()
    eventually(lambda: probe(b, "pages", user_id=page.info["user_id"])[0]["state"] == "grace")
    again = open_page(pages, b, page_id=page_id, connection=token)
    home_b = probe(b, "me")["process_id"]
    assert again.info["resumed"] is True and again.info["page_id"] == page_id
    assert again.info["process_id"] == home_b
    assert again.ok("get", level="page", path="draft") == {"lines": [1, 2]}
    eventually(lambda: probe(a, "pages", user_id=page.info["user_id"])
               == [{"page_id": page_id, "state": "live", "process_id": home_b}])
    # the resumed page gets what is addressed to it, once, from either process
    again.ok("subscribe", level="page", path="draft")
    again.ok("set", level="page", path="draft.lines", value=[3])
    got = again.until(lambda e: e[0] == "spa.change")
    assert got == [("spa.change", {"level": "page", "path": "draft.lines", "value": [3],
                                   "deleted": False})]


def test_garbage_on_the_delivery_subject_is_dropped_and_counted(
        tmp_path: Path, nats_server: NatsServer, pages: list[Page]) -> None:
    small = {"max_message_size": 65536}
    with LiveServer(make(tmp_path, nats_server.url, "b", nats=small)) as b:
        page = open_page(pages, b)
        subject = "genro.spa.d"
        raw_publish(nats_server.url, [
            (subject, b"not ours"),
            (subject, b"GX1 x:1 {not json"),
            (subject, b'GX1 x:2 {"target":"all"}'),  # ours, but not a delivery
            (subject, b"GX1 x:3 " + b"[" * 1000 + b"]" * 1000),  # deeper than max_depth
            (subject, b"GX1 x:4 " + b"x" * 70000),  # over max_message_size
        ])
        dropped = eventually(lambda: (d := probe(b, "me")["dropped"])["oversized"] and d)
        assert dropped["foreign"] == 1 and dropped["garbage"] == 3
        # the page still gets what is really for it
        page.ok("send", to="user", topic="still", data=True)
        assert page.until(message_topic("still"))[-1][1]["data"] is True


def test_nats_down_keeps_this_process_working_and_heals(
        pair: tuple[LiveServer, LiveServer], pages: list[Page], nats_server: NatsServer) -> None:
    a, b = pair
    first = open_page(pages, a)
    first.ok("subscribe", level="user", path="prefs")
    nats_server.stop()
    eventually(lambda: not probe(a, "me")["ready"])
    # a page opens on a meanwhile, and messages reach this process's pages
    second = open_page(pages, a, connection=first.info["connection_token"])
    second.ok("send", to="user", topic="offline", data=1)
    for page in (first, second):
        assert page.until(message_topic("offline"))[-1][1]["data"] == 1
    # shared data is on NATS: a clear 503, nothing half-written
    status, message = second.call("set", level="user", path="prefs.x", value=1)
    assert status == 503, (status, message)
    nats_server.start()
    eventually(lambda: probe(a, "me")["ready"] and probe(b, "me")["ready"])
    # what a wrote while NATS was away reaches b's replica
    user = first.info["user_id"]
    eventually(lambda: len(probe(b, "pages", user_id=user)) == 2)
    second.ok("set", level="user", path="prefs.x", value=2)
    got = first.until(lambda e: e[0] == "spa.change")
    assert got[-1][1]["value"] == 2


def test_metrics_count_deliveries_processes_and_pending_writes(
        tmp_path: Path, nats_server: NatsServer, pages: list[Page]) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    def scrape(live: LiveServer) -> dict[str, float]:
        text = httpx.get(f"{live.url}/metrics", timeout=TIMEOUT).text
        return {f"{s.name}{sorted(s.labels.items())}": s.value
                for family in text_string_to_metric_families(text) for s in family.samples
                if s.name.startswith("nats_spa_")}

    with LiveServer(make(tmp_path, nats_server.url, "a", plugins={"metrics": {}})) as a, \
            LiveServer(make(tmp_path, nats_server.url, "b")) as b:
        eventually(lambda: scrape(a).get("nats_spa_processes[]") == 2.0)
        on_a = open_page(pages, a)
        on_b = open_page(pages, b, connection=on_a.info["connection_token"])
        on_b.ok("send", to="user", topic="t", data=1)
        on_a.until(message_topic("t"))
        on_a.ok("send", to="user", topic="u", data=2)
        got = eventually(lambda: (m := scrape(a))["nats_spa_deliveries_total[('direction', "
                         "'in')]"] >= 1 and m)
        assert got["nats_spa_deliveries_total[('direction', 'out')]"] >= 1
        assert got["nats_spa_deliveries_not_sent_total[]"] == 0
        assert got["nats_spa_pending_writes[]"] == 0
        assert got["nats_spa_adoptions_total[]"] == 0


def test_anonymous_visitors_are_bounded_per_cluster(
        tmp_path: Path, nats_server: NatsServer, pages: list[Page]) -> None:
    # each process counts the anonymous users of both in its copy of the records: one on a
    # and one on b fill two places for both (a count per process would let a third in on a)
    spa = {"max_anonymous_users": 2}
    with LiveServer(make(tmp_path, nats_server.url, "a", spa=spa)) as a, \
            LiveServer(make(tmp_path, nats_server.url, "b", spa=spa)) as b:
        first, second = open_page(pages, a), open_page(pages, b)
        for live, other in ((a, second), (b, first)):
            eventually(lambda live=live, other=other: probe(live, "user",
                                                            user_id=other.info["user_id"]))
        for live in (a, b):
            late = Page(live)
            pages.append(late)
            status, message = late.call("register")
            assert status == 503 and str(message).startswith("spa_anonymous_full:"), message
        # a visitor already held opens more pages
        again = open_page(pages, a, connection=first.info["connection_token"])
        assert again.info["user_id"] == first.info["user_id"]
