"""Addressed delivery, data changes, limits, presence and the HTTP accessor, in process."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from spa_helpers import TOKENS, Clock, Page, headers, make_server, manager, refused

from genro_asgi.testing import AsyncTestClient
from genro_asgi_spa import spa_of


async def open_page(stack: AsyncExitStack, client: AsyncTestClient, user: str | None,
                    cookie: str | None = None, **register: object) -> Page:
    ws = await stack.enter_async_context(client.websocket_connect(
        "/_wsx", headers=headers(user, cookie)))
    page = Page(ws)
    await page.register(**register)
    return page


async def test_a_user_level_change_reaches_every_page_of_that_user_once(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        a1 = await open_page(stack, client, "alice")
        a2 = await open_page(stack, client, "alice")  # another browser of alice
        b1 = await open_page(stack, client, "bob")
        for page in (a1, a2, b1):
            await page.ok("subscribe", level="user", path="prefs")
        await a2.ok("subscribe", level="user", path="prefs.theme")  # two covering ones
        assert (await a1.ok("set", level="user", path="prefs.theme", value="dark")) == {
            "size": len("prefs.theme") + len('"dark"')}
        for page in (a1, a2):
            event = await page.next_event()
            assert event == {"channel": "spa.change", "level": "user", "path": "prefs.theme",
                             "value": "dark", "deleted": False}
            await page.no_event()  # once, however many subscriptions cover it
        await b1.no_event()
        assert await b1.ok("get", level="user", path="prefs") is None  # bob's tree is his
        assert await a2.ok("get", level="user", path="prefs") == {"theme": "dark"}
        assert await a1.ok("delete", level="user", path="prefs") == {"deleted": True}
        for page in (a1, a2):
            assert (await page.next_event())["deleted"] is True
        assert await a1.ok("delete", level="user", path="prefs") == {"deleted": False}
        await a1.no_event()  # nothing was there: no event


async def test_each_level_reaches_its_own_pages_only(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        master = await open_page(stack, client, "alice")
        cookie = master.info["connection_token"]
        iframe = await open_page(stack, client, "alice", cookie,
                                 session_id=master.info["session_id"])
        other_tab = await open_page(stack, client, "alice", cookie)
        other_browser = await open_page(stack, client, "alice")
        pages = (master, iframe, other_tab, other_browser)
        for page in pages:
            for level in ("connection", "session", "page"):
                await page.ok("subscribe", level=level, path="")
        expect = {"page": {0}, "session": {0, 1}, "connection": {0, 1, 2}}
        for level, who in expect.items():
            await master.ok("set", level=level, path="k", value=level)
            for index, page in enumerate(pages):
                if index in who:
                    assert (await page.next_event())["level"] == level
                await page.no_event()


async def test_subscriptions_filter_by_path(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        page = await open_page(stack, client, "alice")
        sub = await page.ok("subscribe", level="page", path="a.b")
        assert sub == {"subscription": "d1", "level": "page", "path": "a.b", "value": None}
        await page.ok("set", level="page", path="a.c", value=1)  # a sibling: not covered
        await page.ok("set", level="page", path="ab", value=1)  # a prefix of the text only
        await page.no_event()
        await page.ok("set", level="page", path="a", value={"b": {}})  # an ancestor
        assert (await page.next_event())["path"] == "a"
        await page.ok("set", level="page", path="a.b.c", value=3)  # a descendant
        assert (await page.next_event())["path"] == "a.b.c"
        again = await page.ok("subscribe", level="page", path="a.b")
        assert again["value"] == {"c": 3}
        assert await page.ok("unsubscribe", subscription="d1") == {"subscription": "d1"}
        refused(await page.call("unsubscribe", subscription="d1"), 400, "spa_bad_request")
        await page.ok("unsubscribe", subscription=again["subscription"])
        await page.ok("set", level="page", path="a.b", value=4)
        await page.no_event()


async def test_addressed_messages_from_pages_and_from_python(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    spa = spa_of(server)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        a1 = await open_page(stack, client, "alice")
        a2 = await open_page(stack, client, "alice", a1.info["connection_token"])
        a3 = await open_page(stack, client, "alice")
        b1 = await open_page(stack, client, "bob")
        await a1.ok("send", to="page", id=a3.info["page_id"], topic="hello", data={"n": 1})
        event = await a3.next_event()
        assert event == {"channel": "spa.message", "topic": "hello", "data": {"n": 1},
                         "from": {"user_id": "alice", "page_id": a1.info["page_id"]}}
        await a1.ok("send", to="connection", topic="conn.wide", data=2)
        for page in (a1, a2):
            assert (await page.next_event())["topic"] == "conn.wide"
        await a3.no_event()
        await a1.ok("send", to="user", topic="all.mine", data=3)
        for page in (a1, a2, a3):
            assert (await page.next_event())["data"] == 3
        await b1.no_event()
        # nothing crosses to another user
        refused(await a1.call("send", to="page", id=b1.info["page_id"], topic="x"), 403,
                "spa_foreign")
        refused(await a1.call("send", to="user", id="bob", topic="x"), 403, "spa_foreign")
        refused(await a1.call("send", to="session", id=b1.info["session_id"], topic="x"),
                403, "spa_foreign")
        refused(await a1.call("send", to="all", topic="x"), 400, "spa_bad_request")
        refused(await a1.call("send", to="user", topic="bad topic"), 400, "spa_bad_request")
        await b1.no_event()
        # from Python: to anyone, and to the subscribers of a data path
        await spa.send("all", None, "news", {"v": 1})
        for page in (a1, a2, a3, b1):
            assert (await page.next_event()) == {"channel": "spa.message", "topic": "news",
                                                 "data": {"v": 1}, "from": None}
        await spa.send("user", "bob", "just.bob", 1)
        assert (await b1.next_event())["topic"] == "just.bob"
        await b1.ok("subscribe", level="user", path="stock.p1")
        await a3.ok("subscribe", level="page", path="stock")
        await spa.send_to_path("user", "stock.p1.qty", "restock", 5)
        assert (await b1.next_event())["topic"] == "restock"
        for page in (a1, a2, a3):
            await page.no_event()  # a3 watches page-level stock, not user-level
        await spa.set_data("user", "alice", "notice", "from python")
        await a3.no_event()
        await a3.ok("subscribe", level="user", path="notice")
        await spa.set_data("user", "alice", "notice", "again")
        assert (await a3.next_event())["value"] == "again"
        await b1.no_event()


async def test_limits_refuse_the_page_over_them_and_nobody_else(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"max_pages_per_user": 3, "max_pages_per_connection": 2,
                                    "max_data_bytes": 1024, "change_rate": 1,
                                    "change_burst": 5, "max_subscriptions": 2,
                                    "max_path_depth": 3, "max_path_length": 20,
                                    "max_info_bytes": 256})
    clock = Clock()
    manager(server, clock)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        a1 = await open_page(stack, client, "alice")
        cookie = a1.info["connection_token"]
        await open_page(stack, client, "alice", cookie)
        extra = Page(await stack.enter_async_context(client.websocket_connect(
            "/_wsx", headers=headers("alice", cookie))))
        refused(await extra.call("register"), 429, "spa_too_many_pages")  # per connection
        await open_page(stack, client, "alice")  # another browser: the third page
        refused(await extra.call("register"), 429, "spa_too_many_pages")  # per user
        big = Page(await stack.enter_async_context(client.websocket_connect(
            "/_wsx", headers=headers("bob"))))
        refused(await big.call("register", info={"t": "x" * 300}), 400, "spa_bad_request")
        b1 = await open_page(stack, client, "bob")
        # bytes per tree
        await a1.ok("set", level="user", path="a", value="x" * 900)
        refused(await a1.call("set", level="user", path="b", value="y" * 200), 413,
                "spa_data_too_large")
        assert await a1.ok("get", level="user", path="b") is None  # nothing changed
        clock.advance(10)
        assert (await b1.ok("set", level="user", path="b", value="y" * 200))["size"] > 200
        # change rate: a burst of 5, then 1 per second
        clock.advance(10)
        for n in range(5):
            await a1.ok("set", level="page", path="n", value=n)
        refused(await a1.call("set", level="page", path="n", value=9), 429,
                "spa_rate_limited")
        await b1.ok("set", level="page", path="n", value=1)  # bob is not paced by alice
        clock.advance(1)
        await a1.ok("set", level="page", path="n", value=10)
        # paths, levels, values, subscriptions
        clock.advance(10)
        for path in ("a.b.c.d", "x" * 21, "a..b", "a b", 7):
            refused(await a1.call("get", level="page", path=path), 400, "spa_bad_request")
        refused(await a1.call("get", level="global", path="a"), 400, "spa_bad_request")
        refused(await a1.call("set", level="page", path="", value={}), 400,
                "spa_bad_request")
        await a1.ok("set", level="page", path="a", value=1)
        refused(await a1.call("set", level="page", path="a.b", value=[1]), 400,
                "spa_bad_request")  # "a" holds a value, not a branch
        await a1.ok("subscribe", level="page", path="a")
        await a1.ok("subscribe", level="page", path="b")
        refused(await a1.call("subscribe", level="page", path="c"), 429,
                "spa_too_many_subscriptions")
        assert (await a1.ok("whoami"))["user_id"] == "alice"  # still usable


async def test_values_that_cannot_be_stored_are_refused(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    spa = spa_of(server)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        page = await open_page(stack, client, "alice")
        deep: object = 1
        for _ in range(70):
            deep = [deep]
        for value in (float("nan"), object(), {1: "x"}, deep):
            try:
                await spa.set_data("page", page.info["page_id"], "v", value)
            except Exception as exc:
                assert getattr(exc, "code", None) == "spa_bad_request", exc
            else:
                raise AssertionError(f"{value!r} was stored")
        assert await spa.get_data("page", page.info["page_id"], "v") is None


async def test_presence_own_pages_and_others_only_with_the_rule(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        a1 = await open_page(stack, client, "alice")
        await open_page(stack, client, "alice")
        b1 = await open_page(stack, client, "bob")
        root = await open_page(stack, client, "root")
        assert len(await a1.ok("pages")) == 2
        refused(await a1.call("pages", user_id="bob"), 403, "spa_forbidden")
        refused(await a1.call("online"), 403, "spa_forbidden")
        refused(await a1.call("sessions", connection_id=b1.info["connection_id"]), 403,
                "spa_forbidden")
        assert [p["page_id"] for p in await root.ok("pages", user_id="bob")] == [
            b1.info["page_id"]]
        online = await root.ok("online")
        assert [(u["user_id"], u["pages"]) for u in online] == [
            ("alice", 2), ("bob", 1), ("root", 1)]
        sessions = await root.ok("sessions", connection_id=b1.info["connection_id"])
        assert [s["session_id"] for s in sessions] == [b1.info["session_id"]]
        spa = spa_of(server)
        assert [u.user_id for u in await spa.online_users()] == ["alice", "bob", "root"]
        assert len(await spa.pages_of_user("alice")) == 2
        assert len(await spa.sessions_of_connection(a1.info["connection_id"])) == 1


async def test_http_calls_find_the_page_from_header_and_cookie(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        page = await open_page(stack, client, "alice")
        await page.ok("subscribe", level="session", path="")
        other = await open_page(stack, client, "bob")
        auth = {"authorization": f"Bearer {TOKENS['alice']}"}
        cookie = f"spa_connection_id={page.info['connection_token']}"
        good = {**auth, "cookie": cookie, "x-spa-page": page.info["page_id"]}
        answer = await client.post("/_spa/whoami", headers=good)
        assert answer.status_code == 200 and answer.json()["page_id"] == page.info["page_id"]
        answer = await client.post("/_spa/set", headers=good,
                                   json={"level": "session", "path": "cart", "value": [1]})
        assert answer.status_code == 200
        assert (await page.next_event())["path"] == "cart"
        cases = [
            ({**auth, "cookie": cookie}, 401, "spa_no_page"),
            ({**auth, "x-spa-page": page.info["page_id"]}, 401, "spa_no_page"),
            ({**good, "x-spa-page": "no/such"}, 400, "spa_bad_request"),
            ({**good, "x-spa-page": other.info["page_id"]}, 403, "spa_foreign"),
            ({**good, "cookie": "spa_connection_id=forged.x.y"}, 401, "spa_bad_cookie"),
            ({**good, "authorization": f"Bearer {TOKENS['bob']}"}, 403, "spa_foreign"),
        ]
        for sent, status, code in cases:
            answer = await client.post("/_spa/whoami", headers=sent)
            assert answer.status_code == status, (sent, answer.text)
            assert code in answer.text
        answer = await client.post("/_spa/register", headers=good)
        assert answer.status_code == 400 and "spa_not_websocket" in answer.text
        # the cookie: minted when missing or bad, kept when good
        minted = await client.get("/_spa/connection")
        assert minted.status_code == 200 and "HttpOnly" in minted.headers["set-cookie"]
        assert "SameSite=Lax" in minted.headers["set-cookie"]
        kept = await client.get("/_spa/connection", headers={"cookie": cookie})
        assert "set-cookie" not in kept.headers
        assert kept.json() == {"connection_id": page.info["connection_id"]}
        bad = await client.get("/_spa/connection", headers={"cookie": "spa_connection_id=x.y.z"})
        assert "set-cookie" in bad.headers


async def test_the_same_protocol_over_json_rpc(tmp_path: Path) -> None:
    """The spa routes are the methods ``_spa.*``; events are ``wsx.event`` notifications of
    the subscription ``spa``; refusals are -32000 with the status and the coded detail."""
    import json

    server = make_server(tmp_path, {"allow_anonymous": True}, auth=False)
    async with AsyncTestClient(server) as client, \
            client.websocket_connect("/_wsx", subprotocols=["jsonrpc"]) as ws:
        async def rpc(msg_id: int, method: str, **params: object) -> dict[str, object]:
            await ws.send_text(json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method,
                                           "params": params}))
            return json.loads(await ws.receive_text())  # type: ignore[no-any-return]

        info = (await rpc(1, "_spa.register"))["result"]
        assert isinstance(info, dict) and info["user_id"].startswith("anon:")
        await rpc(2, "_spa.subscribe", level="page", path="")
        await ws.send_text(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "_spa.set",
                                       "params": {"level": "page", "path": "a", "value": 1}}))
        frames = [json.loads(await ws.receive_text()) for _ in range(2)]
        assert {"jsonrpc": "2.0", "result": {"size": 2}, "id": 3} in frames
        assert {"jsonrpc": "2.0", "method": "wsx.event", "params": {
            "subscription": "spa", "channel": "spa.change",
            "data": {"level": "page", "path": "a", "value": 1, "deleted": False}}} in frames
        again = await rpc(4, "_spa.register")
        assert again["error"] == {"code": -32000, "message": "Handler error", "data": {
            "status": 409, "detail": "spa_already_registered: this connection already holds "
            f"page {info['page_id']}"}}


async def test_the_server_wide_data_budget(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"max_total_data_bytes": 2000, "max_data_bytes": 1024})
    spa = spa_of(server)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        alice = await open_page(stack, client, "alice")
        bob = await open_page(stack, client, "bob")
        await alice.ok("set", level="user", path="a", value="x" * 1000)
        await bob.ok("set", level="user", path="b", value="y" * 1000)
        assert await spa.backend.data_total() == 2 * (1 + 1002)
        refused(await alice.call("set", level="page", path="c", value=1), 503,
                "spa_server_full")
        assert await alice.ok("get", level="user", path="a") == "x" * 1000  # reads still work
        await bob.ok("delete", level="user", path="b")
        assert await spa.backend.data_total() == 1003
        await alice.ok("set", level="page", path="c", value=1)  # room again


async def test_the_change_rate_holds_over_http_for_a_page_without_its_socket(
        tmp_path: Path) -> None:
    """A page in its grace period (or live on another process) called over HTTP is paced by
    the same bucket: closing the socket is no way around the change rate."""
    server = make_server(tmp_path, {"change_rate": 1, "change_burst": 3, "grace_period": 60})
    manager(server, Clock())
    async with AsyncTestClient(server) as client:
        async with AsyncExitStack() as stack:
            page = await open_page(stack, client, "alice")
            await page.ok("set", level="page", path="n", value=0)  # one token spent
        sent = {"authorization": f"Bearer {TOKENS['alice']}",
                "cookie": f"spa_connection_id={page.info['connection_token']}",
                "x-spa-page": page.info["page_id"]}
        statuses = []
        for n in range(4):
            answer = await client.post("/_spa/set", headers=sent,
                                       json={"level": "page", "path": "n", "value": n})
            statuses.append(answer.status_code)
        assert statuses == [200, 200, 429, 429]
