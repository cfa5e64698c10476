"""The spa browser client (``/_spa/client.js``) in headless Chromium against a real uvicorn.

Two tabs of one user (one browser: one connection cookie) both hear a user-level change; a
reload keeps the page (same page id, its page-level data still there); a tab presenting a
live page's id (a duplicated tab) gets a new page and is told; a page id of another user is
refused (that user's page untouched) and so is a tampered connection cookie, each
surfaced to the app as a SpaError. The test drives the tabs through a command queue the
probe app serves. Needs Debian's ``chromium``; skipped with the reason when it is absent.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from spa_helpers import TOKENS
from websockets.sync.client import connect

from genro_asgi import AsgiApplication, AsgiServer, Response, route
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT = 20.0  # a guard against a hang, never an assertion about speed

TAB = """<!doctype html><meta charset="utf-8"><title>spa tab</title><script type="module">
import { SpaClient, SpaError } from "/_spa/client.js";
const name = new URLSearchParams(location.search).get("name");
const loads = Number(sessionStorage.getItem("loads") || "0") + 1;
sessionStorage.setItem("loads", String(loads));
const report = (kind, data) => fetch("/probe/report", {method: "POST",
  headers: {"content-type": "application/json"},
  body: JSON.stringify({name, kind, loads, data})});
const spa = new SpaClient({ token: "%(token)s", info: { title: name }, minDelay: 50,
                            maxDelay: 200 });
spa.on("error", (e) => report("error", [e instanceof SpaError, e.code, e.status]));
spa.on("reset", (r) => report("reset", r.previous));
try {
  const page = await spa.ready();
  await spa.subscribe("user", "prefs", (change) => {
    if (!change.resync) report("change", [change.level, change.path, change.value]);
  });
  await report("ready", page);
} catch (error) {
  await report("refused", [error instanceof SpaError, error.code, error.status]);
  throw error;
}
const ops = {
  set: (c) => spa.set(c.level, c.path, c.value),
  get: (c) => spa.get(c.level, c.path),
  reload: () => { setTimeout(() => location.reload(), 0); return "reloading"; },
  forge: (c) => {
    sessionStorage.setItem(spa.storageKey, JSON.stringify({ page_id: c.page_id }));
    setTimeout(() => location.reload(), 0);
    return "reloading";
  },
  badtoken: async () => {
    // another client in this tab with a token the server refuses: ready() rejects, and the
    // error listeners hear it too
    const other = new SpaClient({ token: "not-a-token-0123", storage: null, minDelay: 50 });
    const heard = [];
    other.on("error", (e) => heard.push([e.code, e.status]));
    const refused = await other.ready().then(() => "ready", (e) => [e.code, e.status]);
    other.close();
    return { refused, heard };
  },
  tamper: async () => {
    await fetch("/probe/tamper");       // the server overwrites the HttpOnly cookie
    await fetch("/probe/kick");         // and drops the sockets: the client reconnects
    return "kicked";
  },
};
for (;;) {
  const command = await (await fetch(`/probe/next?name=${name}`)).json();
  if (!command.op) continue;
  let result;
  try { result = await ops[command.op](command); } catch (error) {
    result = { error: [error instanceof SpaError, error.code, error.status] };
  }
  await report("done", { op: command.op, result });
  if (result === "reloading") break;
}
</script>"""


class Probe(AsgiApplication):
    """Serves the tab, takes its reports, hands out the test's commands."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.commands: dict[str, queue.SimpleQueue[dict[str, Any]]] = {
            "a": queue.SimpleQueue(), "b": queue.SimpleQueue()}

    @route(methods=["GET"], media_type="text/html")
    def tab(self, name: str) -> str:
        return TAB % {"token": TOKENS["alice"]}

    @route(methods=["POST"])
    def report(self, name: str, kind: str, loads: int, data: Any = None) -> str:
        with self.changed:
            self.reports.append({"name": name, "kind": kind, "loads": loads, "data": data})
            self.changed.notify_all()
        return "ok"

    @route(methods=["GET"])
    async def next(self, name: str) -> dict[str, Any]:
        """The tab's next command; an empty one after a while (the tab asks again)."""
        commands = self.commands[name]
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                return commands.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.02)
        return {}

    @route(methods=["GET"])
    def tamper(self) -> Response:
        return Response("tampered", headers={
            "set-cookie": "spa_connection_id=Zm9yZ2Vk.OTk5OTk5OTk5OQ.bm90LWEtc2lnbmF0dXJl; "
                          "Path=/; HttpOnly; SameSite=Lax"})

    @route(methods=["GET"])
    async def kick(self) -> str:
        """Drop alice's sockets (the browser's); bob's stays open."""
        for connection in list(self.server.plugins.get("wsx").connections):
            if connection.identity is not None and connection.identity.id == "alice":
                connection.close(1001)
        return "kicked"

    def wait_for(self, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        with self.changed:
            while True:
                for found in self.reports:
                    if test(found):
                        self.reports.remove(found)
                        return found
                left = deadline - time.monotonic()
                assert left > 0, f"no such report; reports so far: {self.reports}"
                self.changed.wait(left)

    def send(self, name: str, **command: Any) -> dict[str, Any]:
        """Run one command in a tab: its result."""
        self.commands[name].put(command)
        return self.wait_for(lambda r: r["name"] == name and r["kind"] == "done")["data"]


class BobPage:
    """Another user's page, over a plain websockets client."""

    def __init__(self, live: LiveServer) -> None:
        self._connect = connect(live.ws_url + "/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
                                additional_headers=[("Authorization",
                                                     f"Bearer {TOKENS['bob']}")],
                                open_timeout=TIMEOUT, close_timeout=TIMEOUT)
        self.ws = self._connect.__enter__()
        self.ids = 0

    def ok(self, name: str, **data: Any) -> Any:
        self.ids += 1
        self.ws.send("WSX://" + json.dumps({"id": self.ids, "path": f"/_spa/{name}",
                                            "data": data}))
        text = self.ws.recv(timeout=TIMEOUT)
        assert isinstance(text, str)
        frame = json.loads(text[6:])
        assert frame.get("id") == self.ids and frame["status"] == 200, frame
        return json.loads(frame["data"])

    def close(self) -> None:
        self._connect.__exit__(None, None, None)


@contextmanager
def chromium(profile: Path, url: str) -> Iterator[Callable[[str], None]]:
    """Headless Chromium showing ``url``; yields a function opening another tab (through the
    DevTools HTTP endpoint: more URLs on the command line open no tab when headless)."""
    assert CHROMIUM is not None
    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def open_tab(tab_url: str) -> None:
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it took there
        deadline = time.monotonic() + TIMEOUT
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline, "Chromium wrote no DevToolsActivePort"
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        answer = httpx.put(f"http://127.0.0.1:{port}/json/new?{tab_url}", timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text

    try:
        yield open_tab
    finally:
        browser.terminate()
        try:
            browser.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(TIMEOUT)


def serve(tmp_path: Path) -> tuple[AsgiServer, Probe]:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {
        "auth": {"public": ["/probe/*"], "bearer": {
            user: {"token": TOKENS[user], "tags": ["user"]} for user in ("alice", "bob")}},
        "wsx": {"heartbeat_interval": 0},
        "spa": {"cookie_secret": "test-secret-0123456789"}}})
    probe = Probe()
    server.mount("/probe", probe)
    return server, probe


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed "
                    "(Debian package 'chromium': apt-get install -y chromium)")
def test_two_tabs_a_reload_and_refusals(tmp_path: Path) -> None:
    server, probe = serve(tmp_path)
    with LiveServer(server) as live:
        bob = BobPage(live)
        try:
            bob_page = bob.ok("register")
            bob.ok("set", level="page", path="secret", value="bob's")
            with chromium(tmp_path / "profile", f"{live.url}/probe/tab?name=a") as open_tab:
                run_the_tabs(probe, bob_page, lambda: open_tab(f"{live.url}/probe/tab?name=b"))
            # nothing crossed: bob's page is still his, its data intact
            assert bob.ok("whoami")["page_id"] == bob_page["page_id"]
            assert bob.ok("get", level="page", path="secret") == "bob's"
        finally:
            bob.close()


def run_the_tabs(probe: Probe, bob_page: dict[str, Any], open_b: Callable[[], None]) -> None:
    a = probe.wait_for(lambda r: r["name"] == "a" and r["kind"] == "ready")["data"]
    open_b()  # once tab a has the connection cookie, so that tab b presents it too
    b = probe.wait_for(lambda r: r["name"] == "b" and r["kind"] == "ready")["data"]
    # one browser: one connection (the cookie), one user, a page and a session per tab
    assert a["user_id"] == b["user_id"] == "alice"
    assert a["connection_id"] == b["connection_id"]
    assert a["page_id"] != b["page_id"] and a["session_id"] != b["session_id"]
    assert a["resumed"] is False and a["master"] is True

    # a user-level change made in tab a reaches both tabs
    assert probe.send("a", op="set", level="user", path="prefs.theme", value="dark") \
        ["result"]["size"] > 0
    for name in ("a", "b"):
        change = probe.wait_for(lambda r, n=name: r["name"] == n and r["kind"] == "change")
        assert change["data"] == ["user", "prefs.theme", "dark"]
    assert probe.send("b", op="get", level="user", path="prefs")["result"] == {"theme": "dark"}

    # a token the server refuses: a clear error, to ready() and to the error listeners
    assert probe.send("a", op="badtoken")["result"] == {
        "refused": ["auth_required", 401], "heard": [["auth_required", 401]]}

    # a reload keeps the page: the same id, resumed, its page-level data still there
    probe.send("a", op="set", level="page", path="draft", value="half-written")
    assert probe.send("a", op="reload")["result"] == "reloading"
    again = probe.wait_for(lambda r: r["name"] == "a" and r["kind"] == "ready")
    assert again["loads"] == 2
    assert again["data"]["page_id"] == a["page_id"] and again["data"]["resumed"] is True
    assert again["data"]["session_id"] == a["session_id"]
    assert probe.send("a", op="get", level="page", path="draft")["result"] == "half-written"
    # the reloaded tab is subscribed again: a change from tab b reaches it
    probe.send("b", op="set", level="user", path="prefs.lang", value="it")
    for name in ("a", "b"):
        change = probe.wait_for(lambda r, n=name: r["name"] == n and r["kind"] == "change")
        assert change["data"] == ["user", "prefs.lang", "it"]

    # tab b presents tab a's page id (as a duplicated tab does): a is live, so after
    # inUseWait b takes a new page and says so (reset); tab a keeps its page
    probe.send("b", op="forge", page_id=a["page_id"])
    reset = probe.wait_for(lambda r: r["name"] == "b" and r["kind"] == "reset")
    assert reset["data"] == a["page_id"]
    fresh = probe.wait_for(lambda r: r["name"] == "b" and r["kind"] == "ready")["data"]
    assert fresh["page_id"] not in (a["page_id"], b["page_id"])
    assert fresh["resumed"] is False and fresh["connection_id"] == a["connection_id"]
    assert probe.send("a", op="get", level="page", path="draft")["result"] == "half-written"

    # tab b presents bob's page id (a forged id): refused, surfaced as a SpaError
    probe.send("b", op="forge", page_id=bob_page["page_id"])
    refusal = probe.wait_for(lambda r: r["name"] == "b" and r["kind"] == "refused")
    assert refusal["data"] == [True, "spa_foreign", 403]
    error = probe.wait_for(lambda r: r["name"] == "b" and r["kind"] == "error")
    assert error["data"] == [True, "spa_foreign", 403]

    # a tampered connection cookie: tab a's reconnect is refused, surfaced as a SpaError
    assert probe.send("a", op="tamper")["result"] == "kicked"
    error = probe.wait_for(lambda r: r["name"] == "a" and r["kind"] == "error")
    assert error["data"] == [True, "spa_bad_cookie", 401]
