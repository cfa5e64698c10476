"""The sync pool over a real uvicorn on a loopback port, with httpx: a full pool answers 503
with Retry-After, an inline handler runs on the serving loop's thread, and shutting the server
down stops the pool's threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e

SAFETY = 20.0  # seconds: a guard against a hang, never an assertion about speed


class Held(AsgiApplication):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    @route()
    def hold(self) -> str:
        self.entered.set()
        if not self.release.wait(SAFETY):
            raise RuntimeError("never released")
        return "released"

    @route()
    def pooled(self) -> str:
        return threading.current_thread().name

    @route(inline=True)
    def inline(self) -> str:
        return threading.current_thread().name

    @route()
    async def loop(self) -> str:
        return threading.current_thread().name


def test_pool_saturation_inline_and_shutdown_over_uvicorn(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"server": {
        "sync_workers": 1, "sync_queue": 0, "sync_retry_after": 3}})
    app = Held()
    server.mount("/h", app)
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=SAFETY) as client, \
            ThreadPoolExecutor(1) as background:
        loop_thread = client.get("/h/loop").text
        assert client.get("/h/inline").text == loop_thread
        assert client.get("/h/pooled").text.startswith(f"genro-sync-{server.boot_id}-")
        threads = server.sync.pool.threads
        assert threads

        holding = background.submit(httpx.get, live.url + "/h/hold", timeout=SAFETY)
        assert app.entered.wait(SAFETY)
        refused = client.get("/h/pooled")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"
        assert client.get("/h/inline").status_code == 200  # the loop still serves
        app.release.set()
        assert holding.result(SAFETY).text == "released"
        assert client.get("/h/pooled").status_code == 200
    assert server.sync.pool.closed
    for thread in threads:
        thread.join(SAFETY)
    assert not any(thread.is_alive() for thread in threads)
