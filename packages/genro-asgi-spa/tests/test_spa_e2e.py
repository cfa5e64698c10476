"""End to end over a real uvicorn with the ``websockets`` client and httpx: two pages of one
user both hear a user-level change, a reconnect within the grace period resumes the page and
its data, a forged page id is refused and another user's pages are untouched."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from spa_helpers import TOKENS, make_server
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiApplication, Request, route
from genro_asgi.testing import LiveServer
from genro_asgi_spa import PageRecord, page_context, spa_of

TIMEOUT = 10.0  # a guard against a hang, never an assertion about speed


class LivePage:
    """A page over a real socket."""

    def __init__(self, live: LiveServer, user: str | None = None,
                 cookie: str | None = None) -> None:
        extra = []
        if user is not None:
            extra.append(("Authorization", f"Bearer {TOKENS[user]}"))
        if cookie is not None:
            extra.append(("Cookie", f"spa_connection_id={cookie}"))
        self._connecting = connect(live.ws_url + "/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
                                   additional_headers=extra, open_timeout=TIMEOUT,
                                   close_timeout=TIMEOUT)
        self.ws: ClientConnection = self._connecting.__enter__()
        self.events: list[dict[str, Any]] = []
        self.ids = 0

    def call(self, name: str, **data: Any) -> dict[str, Any]:
        self.ids += 1
        self.ws.send("WSX://" + json.dumps({"id": self.ids, "path": f"/_spa/{name}",
                                            "data": data}))
        while True:
            frame = self.frame()
            if frame.get("id") == self.ids:
                return frame
            self.events.append(frame)

    def ok(self, name: str, **data: Any) -> Any:
        frame = self.call(name, **data)
        assert frame["status"] == 200, frame
        return json.loads(frame["data"])

    def frame(self) -> dict[str, Any]:
        text = self.ws.recv(timeout=TIMEOUT)
        assert isinstance(text, str) and text.startswith("WSX://"), text
        return json.loads(text[6:])  # type: ignore[no-any-return]

    def event(self) -> dict[str, Any]:
        frame = self.events.pop(0) if self.events else self.frame()
        assert frame["type"] == "event" and frame["subscription"] == "spa", frame
        return {"channel": frame["channel"], **json.loads(frame["data"])}

    def quiet(self) -> None:
        self.ws.send('WSX://{"type":"ping","id":"q"}')
        assert not self.events and self.frame() == {"type": "pong", "id": "q"}

    def close(self) -> None:
        self._connecting.__exit__(None, None, None)


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_two_pages_of_one_user_both_hear_a_user_level_change(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    with LiveServer(server) as live:
        one, two, bob = LivePage(live, "alice"), LivePage(live, "alice"), LivePage(live, "bob")
        try:
            first = one.ok("register", info={"title": "one"})
            second = two.ok("register")
            bob.ok("register")
            assert first["connection_id"] != second["connection_id"]  # two browsers
            for page in (one, two, bob):
                page.ok("subscribe", level="user", path="cart")
            one.ok("set", level="user", path="cart.items", value=[{"sku": "p1", "qty": 2}])
            for page in (one, two):
                assert page.event() == {"channel": "spa.change", "level": "user",
                                        "path": "cart.items", "deleted": False,
                                        "value": [{"sku": "p1", "qty": 2}]}
                page.quiet()
            bob.quiet()
            assert two.ok("get", level="user", path="cart") == {
                "items": [{"sku": "p1", "qty": 2}]}
        finally:
            for page in (one, two, bob):
                page.close()


def test_a_reconnect_within_grace_resumes_the_page_and_its_data(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"allow_anonymous": True, "grace_period": 60}, auth=False)
    spa = spa_of(server)
    with LiveServer(server) as live:
        # a browser: the cookie first, over HTTP, then the socket carries it
        answer = httpx.get(live.url + "/_spa/connection", timeout=TIMEOUT)
        cookie = answer.cookies["spa_connection_id"]
        page = LivePage(live, cookie=cookie)
        info = page.ok("register")
        assert info["connection_id"] == answer.json()["connection_id"]
        assert "connection_token" not in info  # the cookie named the connection
        page.ok("set", level="page", path="form", value={"name": "Ada", "step": 2})
        page.close()
        wait_for(lambda: _state(spa, info["page_id"]) == "grace")
        again = LivePage(live, cookie=cookie)
        try:
            resumed = again.ok("register", page_id=info["page_id"])
            assert resumed["resumed"] is True and resumed["page_id"] == info["page_id"]
            assert again.ok("get", level="page", path="form") == {"name": "Ada", "step": 2}
            assert _state(spa, info["page_id"]) == "live"
        finally:
            again.close()


def test_a_forged_page_id_is_refused_and_other_users_pages_are_untouched(
        tmp_path: Path) -> None:
    server = make_server(tmp_path)
    with LiveServer(server) as live:
        bob = LivePage(live, "bob")
        alice = LivePage(live, "alice")
        try:
            victim = bob.ok("register")
            bob.ok("set", level="page", path="secret", value="bob's draft")
            bob.ok("subscribe", level="page", path="")
            mine = alice.ok("register")
            thief = LivePage(live, "alice", mine["connection_token"])
            try:
                for forged, status, code in ((victim["page_id"], 403, "spa_foreign"),
                                             ("x" * 500, 400, "spa_bad_request"),
                                             ("Z0Hforged00000000000000", 404,
                                              "spa_unknown_page")):
                    frame = thief.call("register", page_id=forged)
                    assert frame["status"] == status, frame
                    assert frame["error"]["message"].startswith(code), frame
                frame = thief.call("register", session_id=victim["session_id"])
                assert frame["status"] == 403, frame
                # the socket is still usable: it can register a page of its own
                assert thief.ok("register")["user_id"] == "alice"
            finally:
                thief.close()
            # bob's page: live, its data his, it still hears its changes
            assert bob.ok("get", level="page", path="secret") == "bob's draft"
            bob.ok("set", level="page", path="secret", value="still mine")
            assert bob.event()["value"] == "still mine"
            assert [p["page_id"] for p in bob.ok("pages")] == [victim["page_id"]]
            record = _record(spa_of(server), victim["page_id"])
            assert record is not None and record.state == "live" and record.user_id == "bob"
        finally:
            bob.close()
            alice.close()


def _record(spa: Any, page_id: str) -> PageRecord | None:
    found = spa.backend._records["page"].get(page_id)  # read without an event loop
    return found if isinstance(found, PageRecord) else None


def _state(spa: Any, page_id: str) -> str | None:
    record = _record(spa, page_id)
    return None if record is None else record.state


class Shop(AsgiApplication):
    """The handler of docs/spa.md's Python API example."""

    @route()
    async def add_to_cart(self, request: Request, sku: str) -> int:
        page = await page_context(self.server, request)
        cart = await page.get("user", "cart.items") or []
        cart.append(sku)
        await page.set("user", "cart.items", cart)
        return len(cart)


def test_a_handler_reaches_the_callers_page_over_wsx_and_http(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.mount("/shop", Shop())
    with LiveServer(server) as live:
        one, two = LivePage(live, "alice"), LivePage(live, "alice")
        try:
            first = one.ok("register")
            two.ok("register")
            two.ok("subscribe", level="user", path="cart")
            one.ws.send("WSX://" + json.dumps({"id": 99, "path": "/shop/add_to_cart",
                                               "data": {"sku": "p1"}}))
            assert one.frame() == {"id": 99, "status": 200, "data": "1"}
            assert two.event()["value"] == ["p1"]
            # over HTTP: the page named by X-Spa-Page, checked against cookie and identity
            headers = {"Authorization": f"Bearer {TOKENS['alice']}",
                       "Cookie": f"spa_connection_id={first['connection_token']}",
                       "X-Spa-Page": first["page_id"]}
            answer = httpx.post(live.url + "/shop/add_to_cart", json={"sku": "p2"},
                                headers=headers, timeout=TIMEOUT)
            assert answer.status_code == 200 and answer.json() == 2
            assert two.event()["value"] == ["p1", "p2"]
            forged = httpx.post(live.url + "/shop/add_to_cart", json={"sku": "p3"},
                                headers={**headers,
                                         "Authorization": f"Bearer {TOKENS['bob']}"},
                                timeout=TIMEOUT)
            assert forged.status_code == 403 and "spa_foreign" in forged.text
            two.quiet()
        finally:
            one.close()
            two.close()
