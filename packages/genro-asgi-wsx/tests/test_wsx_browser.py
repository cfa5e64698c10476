"""The browser client (``<path>/client.js``) in headless Chromium against a real uvicorn.

Needs Debian's ``chromium`` package; skipped with the reason when it is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from wsx_helpers import TIMEOUT, make, serving

from genro_asgi import AsgiApplication, Request, route
from genro_asgi_wsx import Publication

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html><meta charset="utf-8"><title>wsx</title><script type="module">
import { WsxClient, Decimal, WsxDate, WsxError } from "/_wsx/client.js";
const report = (body) => fetch("/probe/result", {method: "POST",
  headers: {"content-type": "application/json"}, body: JSON.stringify({report: body})});
try {
  const out = {};
  const client = new WsxClient("/_wsx", { minDelay: 50, maxDelay: 200 });
  let opens = 0;
  const prepared = [];
  client.prepare(async (call) => {
    // before connected() resolves and before the open listeners: a call goes through
    prepared.push([opens, await call("/shop/hello", { name: "prepare" })]);
  });
  client.on("open", () => { opens += 1; });
  await client.connected();
  out.hello = await client.call("/shop/hello", { name: "browser" });
  const quote = await client.call("/shop/quote",
      { qty: 3, price: new Decimal("1.50"), day: new WsxDate(2025, 1, 15) });
  out.total = quote.total instanceof Decimal ? quote.total.text : null;
  out.day = quote.day instanceof WsxDate ? String(quote.day) : null;
  out.stamp = quote.stamp instanceof Date ? quote.stamp.toISOString() : null;
  const events = [];
  let arrived;
  const next = () => new Promise((resolve) => { arrived = resolve; });
  let waiting = next();
  await client.subscribe("orders.*", (data, channel) => {
    events.push([channel, data.p instanceof Decimal ? data.p.text : data.p]);
    arrived();
  });
  await client.call("/shop/notify", { channel: "orders.7", value: { p: new Decimal("2.5") } });
  await waiting;
  try { await client.call("/shop/item/101"); } catch (error) {
    out.error = [error instanceof WsxError, error.status, error.code];
  }
  waiting = next();
  const reopened = new Promise((resolve) => client.on("open", resolve));
  await client.call("/probe/kick").catch(() => null);
  await reopened;
  await client.call("/shop/notify", { channel: "orders.8", value: { p: 1 } });
  await waiting;
  out.events = events;
  out.opens = opens;
  out.prepared = prepared;
  // events of a subscription the server named itself (push_event), on the new socket too
  const pushed = [];
  let pushedArrived;
  const pushWait = new Promise((resolve) => { pushedArrived = resolve; });
  client.listen("srv", (data, channel) => { pushed.push([channel, data]); pushedArrived(); });
  await client.call("/probe/push", { value: new Decimal("7.5") });
  await pushWait;
  out.pushed = pushed.map(([channel, data]) =>
    [channel, data instanceof Decimal ? data.text : data]);
  client.close();
  // closed for good: callers get an error, never a promise that hangs
  out.afterClose = await client.call("/shop/hello").then(() => "answered", (e) => e.code);
  // a refused token ends the client too (this server does not close the socket for it)
  const refused = new WsxClient("/_wsx", { token: "not-a-token", minDelay: 50 });
  out.refused = await refused.connected().then(() => "open", (e) => [e.status, e.code]);
  out.refusedCall = await refused.call("/shop/hello").then(() => "answered", (e) => e.status);
  // a preparer the server refuses (a status) ends the client with that error
  const unprepared = new WsxClient("/_wsx", { minDelay: 50 });
  unprepared.prepare((call) => call("/shop/item/101"));
  out.unprepared = await unprepared.connected().then(() => "open", (e) => [e.status, e.code]);
  await report(out);
} catch (error) {
  await report({ failed: String(error && error.stack || error) });
}
</script>"""


class Probe(AsgiApplication):
    """Serves the page, collects its report, and drops every WSX socket on demand."""

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
    async def push(self, request: Request, value: Any) -> bool:
        """An event for the calling connection alone, under a server-chosen subscription."""
        request.scope["wsx.connection"].push_event("srv", Publication("pushed.one", value))
        return True

    @route()
    async def kick(self) -> str:
        await self.server.plugins.get("wsx").close_all(1001)
        return "kicked"


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed "
                    "(Debian package 'chromium': apt-get install -y chromium)")
def test_browser_client(tmp_path: Path) -> None:
    server = make(tmp_path)
    probe = Probe()
    server.mount("/probe", probe)
    with serving(server) as live:
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
    assert result["hello"] == "hello browser"
    assert result["total"] == "4.50" and result["day"] == "2025-01-15"
    assert result["stamp"] == "2025-01-15T10:30:00.000Z"
    assert result["error"] == [True, 404, "handler_error"]
    # the subscription survived the reconnect: the second event came on the new socket
    assert result["events"] == [["orders.7", "2.5"], ["orders.8", 1]]
    assert result["opens"] >= 2
    # the preparer ran on each socket before the open listeners (opens was still 0, then 1)
    assert result["prepared"][:2] == [[0, "hello prepare"], [1, "hello prepare"]]
    assert result["unprepared"] == [404, "handler_error"]
    assert result["pushed"] == [["pushed.one", "7.5"]]
    assert result["afterClose"] == "closed"
    assert result["refused"] == [401, "auth_required"] and result["refusedCall"] == 401
