"""Instance isolation: servers leave nothing behind, and two servers never see each other.

The leak test builds, starts, serves, stops and drops two batches of servers (each with the
errors plugin, a class plugin with hooks and a mounted app), keeping only weak references: every
one must be collectable, and the memory traced across the second batch (the first one warmed
every cache) must come back to where it started. The bound is
calibrated against what live servers actually weigh, so a leak of one server per iteration
cannot hide under it.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiServer
from genro_asgi.testing import AsyncTestClient

MakeServer = Callable[..., AsgiServer]
BATCH = 200
SAFETY = 10  # seconds: a guard against a hung test, never an assertion

MODULE = """
class Audit(Plugin):
    '''A class plugin touching every kind of hook, holding per-server state.'''

    def __init__(self, server, config):
        super().__init__(server, config)
        self.seen = []

    @hookimpl
    def genro_asgi_configure(self, server):
        server.state.configured_by = self.config.get("label", "audit")

    @hookimpl
    async def genro_asgi_startup(self, server):
        server.state.audit_started = self.config.get("label", "audit")

    @hookimpl
    def genro_asgi_shutdown(self, server):
        server.state.audit_stopped = True

    @hookimpl
    def genro_asgi_middleware(self, server):
        label = self.config.get("label", "audit").encode()

        def factory(app):
            async def middleware(scope, receive, send):
                async def tagged(message):
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message.get("headers", []), (b"x-audit", label)]
                    await send(message)
                await app(scope, receive, tagged)
            return middleware
        return factory

    @hookimpl
    def genro_asgi_envelope_closed(self, envelope):
        self.seen.append(envelope.path)


class Other(Plugin):
    @hookimpl
    async def genro_asgi_startup(self, server):
        server.state.other_started = True


class Shop(AsgiApplication):
    def __init__(self, **config):
        super().__init__(**config)
        self.entered = None
        self.release = None

    @route()
    async def hello(self):
        return {"app": self.name, "port": self.server.settings.server.port}

    @route()
    async def slow(self):
        self.entered.set()
        await self.release.wait()
        return "slow"
"""


@pytest.fixture
def module(write_module: Any) -> str:
    return write_module(MODULE, stem="isolation")


async def call(server: AsgiServer, path: str) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"x-request-id", b"leak")],
             "scheme": "http", "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    await server(scope, receive, send)
    return status


async def run_batch(tmp_path: Path, config: dict[str, Any], count: int) -> list[weakref.ref[Any]]:
    """Build, start, serve, stop and drop ``count`` servers; return weak references only."""
    refs: list[weakref.ref[Any]] = []
    for _ in range(count):
        server = AsgiServer(tmp_path, config=config, environ={})
        await server.startup()
        assert await call(server, "/shop/hello") == 200
        assert await call(server, "/missing") == 404  # the errors plugin renders it
        await server.shutdown()
        refs += [weakref.ref(server), weakref.ref(server.plugins.get("audit")),
                 weakref.ref(server.plugins.get("errors")), weakref.ref(server.apps["shop"]),
                 weakref.ref(server.plugins), weakref.ref(server.router)]
        del server
    return refs


async def test_dropped_servers_leave_nothing_behind(module: str, tmp_path: Path) -> None:
    config = {"apps": {"shop": {"module": f"{module}:Shop"}},
              "plugins": {"audit": {"module": f"{module}:Audit", "label": "x"}}}
    refs = await run_batch(tmp_path, config, BATCH)  # also warms every cache
    gc.collect()
    alive = [ref() for ref in refs if ref() is not None]
    assert alive == [], f"{len(alive)} objects survived their server"
    del refs, alive

    tracemalloc.start()  # only the second batch is traced: tracing is slow
    try:
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        refs = await run_batch(tmp_path, config, BATCH)
        gc.collect()
        assert all(ref() is None for ref in refs)
        del refs
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - baseline

        # calibrate: what do live servers weigh?
        before = tracemalloc.get_traced_memory()[0]
        held = [AsgiServer(tmp_path, config=config, environ={}) for _ in range(20)]
        for server in held:
            server.build()
        per_server = (tracemalloc.get_traced_memory()[0] - before) / len(held)
        del held, server
    finally:
        tracemalloc.stop()
    assert per_server > 5_000  # the calibration measured something real
    # a batch leaking even a tenth of its servers would grow by BATCH / 10 * per_server
    assert growth < BATCH / 10 * per_server, (
        f"memory grew by {growth} bytes over {BATCH} servers ({per_server:.0f} per server)")


def test_plugin_outliving_its_server_says_so(module: str, tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"audit": {"module": f"{module}:Audit"}}},
                        environ={})
    plugin = server.plugins.get("audit")
    assert plugin.server is server
    del server
    gc.collect()
    with pytest.raises(RuntimeError, match="server this plugin belonged to is gone"):
        plugin.server  # noqa: B018


async def test_two_servers_do_not_see_each_other(module: str, tmp_path: Path) -> None:
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    dir_a.mkdir()
    dir_b.mkdir()
    a = AsgiServer(dir_a, environ={}, config={
        "server": {"port": 8101}, "logging": {"trace_hooks": True},
        "apps": {"shop": {"module": f"{module}:Shop"}},
        "plugins": {"audit": {"module": f"{module}:Audit", "label": "A"}},
    })
    b = AsgiServer(dir_b, environ={}, config={
        "server": {"port": 8102},
        "apps": {"blog": {"module": f"{module}:Shop"}},
        "plugins": {"other": {"module": f"{module}:Other"}},
    })
    # plugins and config
    assert list(a.plugins.names()) == ["errors", "audit"]
    assert list(b.plugins.names()) == ["errors", "other"]
    assert b.plugins.get("audit") is None and a.plugins.get("other") is None
    assert a.plugins.get("errors") is not b.plugins.get("errors")
    assert a.plugins.pm is not b.plugins.pm
    assert (a.settings.server.port, b.settings.server.port) == (8101, 8102)
    assert (a.plugins.trace, b.plugins.trace) == (True, False)
    assert a.server_dir != b.server_dir
    # compiled per-request hooks
    assert [name for name, _ in a.compiled.envelope_closed] == ["audit"]
    assert b.compiled.envelope_closed == ()
    # state
    assert a.state.configured_by == "A"
    assert not hasattr(b.state, "configured_by")

    shop = a.apps["shop"]
    shop.entered, shop.release = asyncio.Event(), asyncio.Event()
    async with AsyncTestClient(a) as client_a, AsyncTestClient(b) as client_b:
        assert a.state.audit_started == "A" and not hasattr(a.state, "other_started")
        assert b.state.other_started is True and not hasattr(b.state, "audit_started")
        # routes and middleware
        hello_a = await client_a.get("/shop/hello")
        assert hello_a.json() == {"app": "shop", "port": 8101}
        assert hello_a.headers["x-audit"] == "A"
        hello_b = await client_b.get("/blog/hello")
        assert hello_b.json() == {"app": "blog", "port": 8102}
        assert "x-audit" not in hello_b.headers
        assert (await client_a.get("/blog/hello")).status_code == 404
        assert (await client_b.get("/shop/hello")).status_code == 404
        # envelope registries: a request in flight on A is invisible to B
        slow = asyncio.create_task(client_a.get("/shop/slow"))
        await asyncio.wait_for(shop.entered.wait(), SAFETY)
        assert len(a.envelopes) == 1 and len(b.envelopes) == 0
        assert (await client_b.get("/blog/hello")).status_code == 200
        assert len(a.envelopes) == 1
        shop.release.set()
        assert (await asyncio.wait_for(slow, SAFETY)).text == "slow"
        # A's observer saw only A's requests
        assert a.plugins.get("audit").seen == ["/shop/hello", "/blog/hello", "/shop/slow"]
        # stopping A leaves B serving
        await client_a.shutdown()
        assert a.state.audit_stopped is True and a.draining is True
        assert b.draining is False
        assert (await client_b.get("/blog/hello")).status_code == 200


def test_same_plugin_in_two_servers_keeps_separate_config_and_state(
        module: str, make_server: MakeServer, make_client: Any) -> None:
    one = make_server({"plugins": {"audit": {"module": f"{module}:Audit", "label": "one"}},
                       "apps": {"shop": {"module": f"{module}:Shop"}}})
    two = make_server({"plugins": {"audit": {"module": f"{module}:Audit", "label": "two"}},
                       "apps": {"shop": {"module": f"{module}:Shop"}}})
    audit_one, audit_two = one.plugins.get("audit"), two.plugins.get("audit")
    assert audit_one is not audit_two
    assert (audit_one.config["label"], audit_two.config["label"]) == ("one", "two")
    assert one.apps["shop"] is not two.apps["shop"]
    make_client(one).get("/shop/hello")
    response = make_client(two).get("/shop/hello")
    assert response.headers["x-audit"] == "two"
    assert audit_one.seen == ["/shop/hello"]
    assert audit_two.seen == ["/shop/hello"]
    assert (one.state.audit_started, two.state.audit_started) == ("one", "two")
