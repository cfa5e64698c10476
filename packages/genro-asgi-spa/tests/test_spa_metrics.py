"""The spa_* metrics on a real scrape (metrics and spa both on, real uvicorn, the websockets
client), read with prometheus_client's own parser: pages and users online, deliveries by
target and kind, events pushed, refusals by code."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from spa_helpers import TOKENS
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e
TIMEOUT = 10.0  # a guard against a hang, never an assertion about speed


class Socket:
    def __init__(self, stack: ExitStack, live: LiveServer, user: str,
                 cookie: str | None = None) -> None:
        headers = [("Authorization", f"Bearer {TOKENS[user]}")]
        if cookie:
            headers.append(("Cookie", f"spa_connection_id={cookie}"))
        self.ws: ClientConnection = stack.enter_context(connect(
            live.ws_url + "/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
            additional_headers=headers, open_timeout=TIMEOUT))
        self.ids = 0
        self.events: list[dict[str, Any]] = []

    def call(self, name: str, **data: Any) -> dict[str, Any]:
        self.ids += 1
        self.ws.send("WSX://" + json.dumps({"id": self.ids, "path": f"/_spa/{name}",
                                            "data": data}))
        while True:
            frame = json.loads(str(self.ws.recv(timeout=TIMEOUT))[6:])
            if frame.get("id") == self.ids:
                return frame  # type: ignore[no-any-return]
            self.events.append(frame)

    def ok(self, name: str, **data: Any) -> Any:
        frame = self.call(name, **data)
        assert frame["status"] == 200, frame
        return json.loads(frame["data"])

    def event(self) -> dict[str, Any]:
        frame = self.events.pop(0) if self.events else json.loads(
            str(self.ws.recv(timeout=TIMEOUT))[6:])
        assert frame["type"] == "event" and frame["subscription"] == "spa", frame
        return {"channel": frame["channel"], **json.loads(frame["data"])}


def scrape(live: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{live.url}/metrics", timeout=TIMEOUT).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.startswith("spa_")}


def test_a_scrape_counts_pages_deliveries_and_refusals(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {
        "auth": {"public": ["/metrics"], "bearer": {
            user: {"token": TOKENS[user], "tags": ["user"]} for user in ("alice", "bob")}},
        "metrics": {},
        "wsx": {"heartbeat_interval": 0},
        "spa": {"cookie_secret": "test-secret-0123456789"}}})
    with LiveServer(server) as live, ExitStack() as stack:
        before = scrape(live)
        assert before[("spa_pages_online", ())] == 0.0
        assert before[("spa_refused_total", (("code", "spa_foreign"),))] == 0.0

        alice = Socket(stack, live, "alice")
        first = alice.ok("register")
        alice2 = Socket(stack, live, "alice", first["connection_token"])
        alice2.ok("register")
        bob = Socket(stack, live, "bob")
        bob.ok("register")
        for page in (alice, alice2):
            page.ok("subscribe", level="user", path="prefs")
        alice.ok("set", level="user", path="prefs.theme", value="dark")
        alice.ok("send", to="user", topic="hello", data=1)
        for page in (alice, alice2):
            assert [page.event()["channel"] for _ in range(2)] == ["spa.change", "spa.message"]
        # bob presents alice's page id, then a malformed one: refused, counted by code
        intruder = Socket(stack, live, "bob")
        assert intruder.call("register", page_id=first["page_id"])["status"] == 403
        assert intruder.call("register", page_id="not a page id!")["status"] == 400

        found = scrape(live)
        assert found[("spa_pages_online", ())] == 3.0
        assert found[("spa_users_online", ())] == 2.0
        assert found[("spa_connections_online", ())] == 2.0
        assert found[("spa_sessions_online", ())] == 3.0
        assert found[("spa_deliveries_total", (("kind", "change"), ("target", "user")))] == 1.0
        assert found[("spa_deliveries_total", (("kind", "message"), ("target", "user")))] == 1.0
        assert found[("spa_deliveries_total", (("kind", "message"), ("target", "page")))] == 0.0
        assert found[("spa_events_pushed_total", ())] == 4.0
        refused = {dict(labels)["code"]: value for (name, labels), value in found.items()
                   if name == "spa_refused_total" and value}
        assert refused == {"spa_foreign": 1.0, "spa_bad_request": 1.0}

        # a page whose socket closes is no longer online here (it waits in its grace period)
        alice2.ws.close()
        deadline = time.monotonic() + TIMEOUT
        while scrape(live)[("spa_pages_online", ())] != 2.0:
            assert time.monotonic() < deadline, "the closed page stayed online"
            time.sleep(0.05)
        assert scrape(live)[("spa_users_online", ())] == 2.0
