"""The wsx browser client (``client.js``) in headless Chromium resumes a subscription with
history after a reconnect: the event published while it was away is replayed."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from nats_helpers import TIMEOUT, make

from genro_asgi import AsgiApplication, route
from genro_asgi.testing import LiveServer
from genro_asgi_nats.testing import NatsServer
from genro_asgi_wsx import publish

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html><meta charset="utf-8"><title>resume</title><script type="module">
import { WsxClient } from "/_wsx/client.js";
const report = (body) => fetch("/probe/result", {method: "POST",
  headers: {"content-type": "application/json"}, body: JSON.stringify({report: body})});
try {
  const client = new WsxClient("/_wsx", { minDelay: 50, maxDelay: 200 });
  await client.connected();
  const seen = [];
  const gaps = [];
  let arrived;
  let waiting = new Promise((resolve) => { arrived = resolve; });
  await client.subscribe("chat.room", (data) => {
    seen.push(data);
      if (seen.length === 1 || seen.length === 3) arrived();
  }, { onGap: (channel) => gaps.push(channel) });
  await client.call("/probe/say", { value: "one" });
  await waiting;
  waiting = new Promise((resolve) => { arrived = resolve; });
  const reopened = new Promise((resolve) => client.on("open", resolve));
  // over HTTP: a call on the socket being dropped would be cancelled with it
  await fetch("/probe/kick_and_say", {method: "POST",
    headers: {"content-type": "application/json"}, body: JSON.stringify({value: "two"})});
  await reopened;
  await client.call("/probe/say", { value: "three" });
  await waiting;
  client.close();
  await report({ seen, gaps });
} catch (error) {
  await report({ failed: String(error && error.stack || error) });
}
</script>"""


class Probe(AsgiApplication):
    def __init__(self) -> None:
        super().__init__()
        self.result: dict[str, Any] | None = None
        self.done = threading.Event()

    @route(methods=["GET"], media_type="text/html")
    def index(self) -> str:
        return PAGE

    @route(methods=["POST"])
    def result(self, report: dict[str, Any]) -> str:
        self.result = report
        self.done.set()
        return "ok"

    @route()
    async def say(self, value: str) -> bool:
        await publish(self.server, "chat.room", value)
        return True

    @route()
    async def kick_and_say(self, value: str) -> bool:
        """Drop every socket, then publish while the client is away."""
        await self.server.plugins.get("wsx").close_all(1001)
        await publish(self.server, "chat.room", value)
        return True


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed "
                    "(Debian package 'chromium': apt-get install -y chromium)")
def test_the_browser_client_resumes(tmp_path: Path, nats_server: NatsServer) -> None:
    server = make(tmp_path, nats_server.url, wsx={"broker_options": {
        "history": {"chat.>": {"size": 10, "ttl": 60}}}})
    probe = Probe()
    server.mount("/probe", probe)
    with LiveServer(server) as live:
        browser = subprocess.Popen(
            [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
             "--remote-debugging-port=0", f"{live.url}/probe"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert probe.done.wait(TIMEOUT * 3), "the page never reported"
        finally:
            browser.terminate()
            try:
                browser.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait(TIMEOUT)
    result = probe.result
    assert result is not None and "failed" not in result, json.dumps(result)
    assert result["seen"] == ["one", "two", "three"]  # "two" was published while away
    assert result["gaps"] == []
