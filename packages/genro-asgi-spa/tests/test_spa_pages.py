"""Pages in process (the project's test client): registration, identities, resume, bad input,
lifecycle with an injectable clock, hooks."""

from __future__ import annotations

import json
import logging
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from spa_helpers import Clock, Page, headers, make_server, manager, refused

from genro_asgi.testing import AsyncTestClient
from genro_asgi_spa import PageRecord


async def open_page(stack: AsyncExitStack, client: AsyncTestClient, user: str | None,
                    cookie: str | None = None) -> Page:
    ws = await stack.enter_async_context(client.websocket_connect(
        "/_wsx", headers=headers(user, cookie)))
    return Page(ws)


async def test_a_first_page_mints_the_connection_and_a_session(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        page = await open_page(stack, client, "alice")
        info = await page.register(info={"title": "orders"})
        assert info["user_id"] == "alice" and info["resumed"] is False
        assert info["master"] is True and info["connection_token"]
        assert info["process_id"] == manager(server).process_id
        assert await page.ok("whoami") == {k: info[k] for k in (
            "page_id", "session_id", "connection_id", "user_id", "process_id")}
        # the same browser (the cookie) opens a second page: same connection, a new session
        second = await open_page(stack, client, "alice", info["connection_token"])
        other = await second.register()
        assert other["connection_id"] == info["connection_id"]
        assert "connection_token" not in other
        assert other["session_id"] != info["session_id"] and other["master"] is True
        # an iframe joins the first page's session
        frame = await open_page(stack, client, "alice", info["connection_token"])
        joined = await frame.register(session_id=info["session_id"])
        assert joined["session_id"] == info["session_id"] and joined["master"] is False
        sessions = await page.ok("sessions")
        assert [len(s["pages"]) for s in sessions] == [2, 1]
        assert sessions[0]["master_page_id"] == info["page_id"]
        pages = await page.ok("pages")
        assert [p["page_id"] for p in pages] == [info["page_id"], other["page_id"],
                                                 joined["page_id"]]
        assert pages[0]["info"] == {"title": "orders"} and pages[0]["state"] == "live"
        # one page per socket
        refused(await page.call("register"), 409, "spa_already_registered")


async def test_calls_before_register_are_refused(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        page = await open_page(stack, client, "alice")
        for name, data in (("whoami", {}), ("get", {"level": "page"}),
                           ("set", {"level": "page", "path": "a", "value": 1})):
            refused(await page.call(name, **data), 401, "spa_no_page")


async def test_anonymous_pages_only_when_allowed(tmp_path: Path) -> None:
    closed = make_server(tmp_path, auth=False)
    async with AsyncTestClient(closed) as client, AsyncExitStack() as stack:
        page = await open_page(stack, client, None)
        refused(await page.call("register"), 401, "spa_identity_required")
    open_ = make_server(tmp_path, {"allow_anonymous": True}, auth=False)
    async with AsyncTestClient(open_) as client, AsyncExitStack() as stack:
        page = await open_page(stack, client, None)
        info = await page.register()
        assert info["user_id"] == f"anon:{info['connection_id']}"
        # another browser is another anonymous user
        other = await (await open_page(stack, client, None)).register()
        assert other["user_id"] != info["user_id"]


async def test_a_tampered_or_foreign_cookie_is_refused_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = make_server(tmp_path)
    elsewhere = make_server(tmp_path, {"cookie_secret": "another-secret-0123456789"})
    foreign = manager(elsewhere).connection_token("Z0HHRbat9imPaXyBy61ZmE")
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        info = await (await open_page(stack, client, "alice")).register()
        token = info["connection_token"]
        payload, expiry, signature = token.split(".")
        tampered = f"{payload}.{expiry}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
        caplog.set_level(logging.WARNING, "genro_asgi_spa")
        for bad in (tampered, foreign, "garbage", "a.b.c"):
            page = await open_page(stack, client, "alice", bad)
            refused(await page.call("register"), 401, "spa_bad_cookie")
            page2 = await open_page(stack, client, "alice")
            refused(await page2.call("register", connection=bad), 401, "spa_bad_cookie")
        assert sum("does not verify" in r.getMessage() for r in caplog.records) == 8
        assert all(token not in r.getMessage() for r in caplog.records)


async def test_a_cookie_of_another_user_gets_a_new_connection(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        alice = await (await open_page(stack, client, "alice")).register()
        bob = await (await open_page(stack, client, "bob", alice["connection_token"])).register()
        assert bob["user_id"] == "bob" and bob["connection_id"] != alice["connection_id"]
        assert bob["connection_token"]


async def test_forged_and_foreign_page_ids_are_refused_and_touch_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        bob_page = await open_page(stack, client, "bob")
        bob = await bob_page.register()
        await bob_page.ok("set", level="page", path="draft", value="bob's")
        await bob_page.ok("subscribe", level="user", path="")
        alice_page = await open_page(stack, client, "alice")
        alice = await alice_page.register()
        caplog.set_level(logging.WARNING, "genro_asgi_spa")
        for bad in ("x" * 65, "../etc", "a b", "", 42, ["a"]):
            attempt = await open_page(stack, client, "alice", alice["connection_token"])
            refused(await attempt.call("register", page_id=bad), 400, "spa_bad_request")
        attempt = await open_page(stack, client, "alice", alice["connection_token"])
        refused(await attempt.call("register", page_id="Z0Hnosuchpage0000000000"), 404,
                "spa_unknown_page")
        # bob's page id with alice's identity and cookie
        refused(await attempt.call("register", page_id=bob["page_id"]), 403, "spa_foreign")
        # alice's own page id from another connection of alice (another browser)
        stranger = await open_page(stack, client, "alice")
        refused(await stranger.call("register", page_id=alice["page_id"]), 403, "spa_foreign")
        # bob's session
        refused(await attempt.call("register", session_id=bob["session_id"]), 403,
                "spa_foreign")
        assert sum("refused" in r.getMessage() for r in caplog.records) == 6 + 3
        assert sum("malformed page_id" in r.getMessage() for r in caplog.records) == 6
        assert all(len(r.getMessage()) < 200 for r in caplog.records)  # values cut at 80
        # bob is untouched: his page is live, his data is his, and he still hears his user
        record = await manager(server).backend.get("page", bob["page_id"])
        assert isinstance(record, PageRecord) and record.state == "live"
        assert await bob_page.ok("get", level="page", path="draft") == "bob's"
        await bob_page.ok("set", level="user", path="seen", value=1)
        assert (await bob_page.next_event())["path"] == "seen"
        # and alice's attempts left no page behind
        assert [p["page_id"] for p in await alice_page.ok("pages")] == [alice["page_id"]]


async def test_reconnect_within_grace_resumes_the_page_and_its_data(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"grace_period": 30})
    clock = Clock()
    spa = manager(server, clock)
    async with AsyncTestClient(server) as client:
        async with AsyncExitStack() as stack:
            page = await open_page(stack, client, "alice")
            info = await page.register()
            await page.ok("set", level="page", path="form.name", value="Ada")
            await page.ok("set", level="session", path="tab", value=2)
        # the socket closed: the page waits in its grace period
        record = await spa.backend.get("page", info["page_id"])
        assert isinstance(record, PageRecord) and record.state == "grace"
        clock.advance(29)
        await spa.sweep()
        async with AsyncExitStack() as stack:
            page = await open_page(stack, client, "alice", info["connection_token"])
            again = await page.register(page_id=info["page_id"])
            assert again["resumed"] is True and again["page_id"] == info["page_id"]
            assert again["session_id"] == info["session_id"] and again["master"] is True
            assert await page.ok("get", level="page", path="form") == {"name": "Ada"}
            assert await page.ok("get", level="session", path="tab") == 2
            # a second socket cannot take the live page (a duplicated tab)
            twin = await open_page(stack, client, "alice", info["connection_token"])
            refused(await twin.call("register", page_id=info["page_id"]), 409,
                    "spa_page_in_use")


async def test_lifecycle_grace_idle_and_offline_with_hooks(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"grace_period": 30, "user_ttl": 10, "session_idle": 100,
                                    "connection_idle": 1000, "user_retention": 500},
                         recorder=True)
    recorder = server.plugins.get("recorder")
    clock = Clock()
    spa = manager(server, clock)
    backend = spa.backend
    async with AsyncTestClient(server) as client:
        async with AsyncExitStack() as stack:
            page = await open_page(stack, client, "alice")
            info = await page.register()
            for level in ("user", "connection", "session", "page"):
                await page.ok("set", level=level, path="x", value=level)
        pid, sid, cid = info["page_id"], info["session_id"], info["connection_id"]
        assert recorder.seen == [("opened", pid), ("online", "alice")]
        clock.advance(29.9)
        await spa.sweep()
        assert await backend.get("page", pid) is not None
        clock.advance(0.2)
        await spa.sweep()  # grace over: the page ends, with its data
        assert await backend.get("page", pid) is None
        assert await backend.data_size("page", pid) == 0
        assert recorder.seen[-1] == ("closed:expired", pid)
        assert [u.user_id for u in await spa.online_users()] == ["alice"]
        clock.advance(10)
        await spa.sweep()  # no page for user_ttl: offline
        assert recorder.seen[-1] == ("offline", "alice")
        assert await spa.online_users() == []
        assert await backend.get("session", sid) is not None  # idle, not yet expired
        clock.advance(100)
        await spa.sweep()
        assert await backend.get("session", sid) is None
        assert await backend.data_size("session", sid) == 0
        assert await backend.get("connection", cid) is not None
        assert await backend.data_get("user", "alice", "x") == "user"  # retained
        clock.advance(1000)
        await spa.sweep()
        assert await backend.get("connection", cid) is None
        assert await backend.data_size("connection", cid) == 0
        assert await backend.get("user", "alice") is None  # retention passed
        assert await backend.data_size("user", "alice") == 0


async def test_a_user_back_within_ttl_stays_online_and_unregister_ends_a_page(
        tmp_path: Path) -> None:
    server = make_server(tmp_path, {"grace_period": 0, "user_ttl": 10}, recorder=True)
    recorder = server.plugins.get("recorder")
    clock = Clock()
    spa = manager(server, clock)
    async with AsyncTestClient(server) as client:
        async with AsyncExitStack() as stack:
            page = await open_page(stack, client, "alice")
            first = await page.register()
            assert await page.ok("unregister") == {"page_id": first["page_id"]}
            assert recorder.seen[-1] == ("closed:closed", first["page_id"])
            refused(await page.call("whoami"), 401, "spa_no_page")
            second = await page.register()  # the same socket may register again
        assert recorder.seen[-1] == ("closed:expired", second["page_id"])  # grace 0
        clock.advance(5)
        await spa.sweep()
        async with AsyncExitStack() as stack:
            await (await open_page(stack, client, "alice")).register()
            clock.advance(20)
            await spa.sweep()
            assert ("offline", "alice") not in recorder.seen
        assert [s for s, _ in recorder.seen].count("online") == 1


async def test_two_servers_in_one_process_share_nothing(tmp_path: Path) -> None:
    one, two = make_server(tmp_path), make_server(tmp_path)
    assert manager(one) is not manager(two)
    assert manager(one).backend is not manager(two).backend
    async with AsyncTestClient(one) as c1, AsyncTestClient(two) as c2, \
            AsyncExitStack() as stack:
        info = await (await open_page(stack, c1, "alice")).register()
        page = await open_page(stack, c2, "alice", info["connection_token"])
        refused(await page.call("register", page_id=info["page_id"]), 404,
                "spa_unknown_page")


async def test_a_page_stored_live_without_a_socket_is_not_kept_forever(tmp_path: Path) -> None:
    """A register cancelled between storing the page and attaching it (its socket went while
    a network backend answered) leaves a live record with no socket: the sweeper moves it to
    its grace period, so it ends instead of counting against the user's pages forever. A page
    attached to its socket is never touched."""
    server = make_server(tmp_path, {"grace_period": 30})
    clock = Clock()
    spa = manager(server, clock)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        page = await open_page(stack, client, "alice")
        live = await page.register()
        orphan = PageRecord("Z0Horphan000000000000", live["session_id"], live["connection_id"],
                            "alice", spa.process_id, "live", clock.now, clock.now)
        await spa.backend.put(orphan)
        await spa.sweep()
        assert (await spa.backend.get("page", orphan.page_id)) == orphan  # just stored
        clock.advance(10)
        await spa.sweep()
        moved = await spa.backend.get("page", orphan.page_id)
        assert isinstance(moved, PageRecord) and moved.state == "grace"
        clock.advance(30)
        await spa.sweep()
        assert await spa.backend.get("page", orphan.page_id) is None
        clock.advance(86400)
        await spa.sweep()
        kept = await spa.backend.get("page", live["page_id"])
        assert isinstance(kept, PageRecord) and kept.state == "live"
        assert (await page.ok("whoami"))["page_id"] == live["page_id"]


async def test_clients_that_leave_without_data_leave_nothing_behind(tmp_path: Path) -> None:
    """A page's session, connection and user without data go as soon as they have nothing
    under them (the idle times keep only records that hold data), so anonymous clients that
    open a page and go cost nothing once the grace period and user_ttl are over."""
    server = make_server(tmp_path, {"allow_anonymous": True, "grace_period": 30,
                                    "user_ttl": 10}, auth=False)
    clock = Clock()
    spa = manager(server, clock)
    backend = spa.backend
    async with AsyncTestClient(server) as client:
        for _ in range(20):
            async with AsyncExitStack() as stack:
                await (await open_page(stack, client, None)).register()
        async with AsyncExitStack() as stack:  # one keeps connection-level data
            keeper = await open_page(stack, client, None)
            kept = await keeper.register()
            await keeper.ok("set", level="connection", path="cart", value=[1])
        assert len(await backend.users()) == 21
        clock.advance(30)
        await spa.sweep()  # pages over: their sessions and connections go (but the keeper's)
        assert await backend.pages() == [] and await backend.sessions() == []
        assert [c.connection_id for c in await backend.connections()] == [
            kept["connection_id"]]
        clock.advance(10)
        await spa.sweep()  # offline, and without data: gone; the keeper's user record stays
        # with its connection (max_anonymous_users counts it) until anonymous_ttl is over
        assert [u.user_id for u in await backend.users()] == [kept["user_id"]]
        assert await backend.data_get("connection", kept["connection_id"], "cart") == [1]
        clock.advance(spa.config.anonymous_ttl)
        await spa.sweep()
        assert await backend.users() == [] and await backend.connections() == []
        assert await backend.data_get("connection", kept["connection_id"], "cart") is None


async def test_two_registers_at_once_on_one_socket_make_one_page(tmp_path: Path) -> None:
    """WSX runs a socket's calls concurrently; with a backend that waits (a network one),
    a second register sent before the first is answered is refused, not a second page."""
    server = make_server(tmp_path, {"backend": "spa_helpers:YieldingBackend"})
    spa = manager(server)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        page = await open_page(stack, client, "alice")
        for msg_id in (1, 2):
            await page.ws.send_text("WSX://" + json.dumps({"id": msg_id, "path": "/_spa/register"}))
        frames = {f["id"]: f for f in [await page.next_frame(), await page.next_frame()]}
        assert frames[1]["status"] == 200
        refused(frames[2], 409, "spa_already_registered")
        assert len(await spa.backend.pages()) == 1 and len(spa.live) == 1
        assert (await page.ok("whoami"))["page_id"] == json.loads(frames[1]["data"])["page_id"]
