"""Lifecycle: lifespan startup/shutdown order, startup failures, graceful shutdown, the watchdog.

Slow requests are held on an asyncio.Event the test controls, and time is moved by hand (old
``created_at`` on envelopes, a fake clock for the drain deadline): nothing here depends on how
fast the machine is.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import types
from collections.abc import Callable
from typing import Any

import pytest

from genro_asgi import AsgiServer, StartupError
from genro_asgi import server as server_module
from genro_asgi.testing import AsyncTestClient, TestClient

MakeServer = Callable[..., AsgiServer]

SAFETY = 10  # seconds: only a guard against a hung test, never an assertion

LIFECYCLE = """
class Recorder(Plugin):
    @hookimpl
    async def genro_asgi_startup(self, server):
        await asyncio.sleep(0)
        record(server, ("start", self.config["label"]))

    @hookimpl
    def genro_asgi_shutdown(self, server):
        record(server, ("stop", self.config["label"]))


class FailingShutdown(Plugin):
    @hookimpl
    def genro_asgi_shutdown(self, server):
        raise RuntimeError("cannot close the pool")


class Tracked(AsgiApplication):
    async def on_startup(self):
        await asyncio.sleep(0)
        if self.config.get("fail"):
            raise OSError("port in use")
        record(self.server, ("app start", self.name))

    def on_shutdown(self):
        if self.config.get("fail_shutdown"):
            raise RuntimeError("app shutdown broke")
        record(self.server, ("app stop", self.name))


class Slow(AsgiApplication):
    def __init__(self, **config):
        super().__init__(**config)
        self.state.entered = None
        self.state.release = None

    @route()
    async def slow(self):
        self.state.entered.set()
        await self.state.release.wait()
        record(self.server, "slow request finished")
        return "done"

    @route()
    async def hello(self):
        return "hello"


class Stuck(Plugin):
    @hookimpl
    def genro_asgi_envelope_stuck(self, server, envelope, level):
        record(server, (level, envelope.path))
        event = getattr(server.state, "stuck_event", None)
        if event is not None:
            event.set()


SEEN = []


class StuckNoServer(Plugin):
    @hookimpl
    def genro_asgi_envelope_stuck(self, envelope, level):
        SEEN.append((level, envelope.path))


class StuckBroken(Plugin):
    @hookimpl
    def genro_asgi_envelope_stuck(self, server, envelope, level):
        raise RuntimeError("stuck observer broke")
"""


def calls(server: AsgiServer) -> list[Any]:
    return list(getattr(server.state, "calls", []))


@pytest.fixture
def lifecycle(write_module: Any) -> str:
    return write_module(LIFECYCLE, stem="lifecycle")


# -- order --------------------------------------------------------------------------------------


def test_startup_and_shutdown_order(lifecycle: str, make_server: MakeServer) -> None:
    server = make_server({
        "plugins": {"b_plugin": {"module": f"{lifecycle}:Recorder", "label": "b"},
                    "a_plugin": {"module": f"{lifecycle}:Recorder", "label": "a"}},
        "apps": {"zeta": {"module": f"{lifecycle}:Tracked"},  # config order, not name order
                 "alpha": {"module": f"{lifecycle}:Tracked"}},
    })
    with TestClient(server):
        assert server.started is True
        assert calls(server) == [("start", "a"), ("start", "b"),
                                 ("app start", "zeta"), ("app start", "alpha")]
    assert calls(server)[4:] == [("app stop", "alpha"), ("app stop", "zeta"),
                                 ("stop", "b"), ("stop", "a")]
    assert server.started is False


def test_failing_app_startup_names_the_app_and_rolls_back(lifecycle: str,
                                                           make_server: MakeServer) -> None:
    server = make_server({
        "plugins": {"p": {"module": f"{lifecycle}:Recorder", "label": "p"}},
        "apps": {"zeta": {"module": f"{lifecycle}:Tracked"},
                 "alpha": {"module": f"{lifecycle}:Tracked", "fail": True},
                 "omega": {"module": f"{lifecycle}:Tracked"}},
    })
    with (pytest.raises(RuntimeError, match=r"startup failed in application 'alpha'.*port in use"),
          TestClient(server)):
        pytest.fail("the client must not start")  # pragma: no cover
    assert calls(server) == [("start", "p"), ("app start", "zeta"),
                             ("app stop", "zeta"), ("stop", "p")]
    assert server.started is False


async def test_failing_app_startup_is_a_startup_error(lifecycle: str, make_server: MakeServer
                                                       ) -> None:
    server = make_server({"apps": {"shop": {"module": f"{lifecycle}:Tracked", "fail": True}}})
    with pytest.raises(StartupError, match=r"application 'shop'"):
        await server.startup()
    assert server.watchdog._task is None


def test_failing_plugin_startup_through_test_client(write_module: Any, make_server: MakeServer
                                                     ) -> None:
    mod = write_module("""
        class Boom(Plugin):
            @hookimpl
            def genro_asgi_startup(self):
                raise LookupError("no license")
    """)
    server = make_server({"plugins": {"boom": {"module": f"{mod}:Boom"}}})
    client = TestClient(server)
    with (pytest.raises(RuntimeError, match=r"startup failed in plugin 'boom'.*no license"),
          client):
        pytest.fail("the client must not start")  # pragma: no cover
    # the client that failed to start closed its event loop and its connection pool
    assert client._loop.is_closed()
    assert client.is_closed


async def test_lifespan_messages(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("""
        class Boom(Plugin):
            @hookimpl
            def genro_asgi_startup(self):
                raise LookupError("no license")
    """)
    for config, expected in (({}, "lifespan.startup.complete"),
                             ({"plugins": {"boom": {"module": f"{mod}:Boom"}}},
                              "lifespan.startup.failed")):
        server = make_server(config)
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        task = asyncio.create_task(server({"type": "lifespan"}, inbox.get, outbox.put))
        await inbox.put({"type": "lifespan.startup"})
        message = await asyncio.wait_for(outbox.get(), SAFETY)
        assert message["type"] == expected
        if expected.endswith("failed"):
            assert "boom" in message["message"]
        else:
            await inbox.put({"type": "lifespan.shutdown"})
            assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await asyncio.wait_for(task, SAFETY)


def test_failing_shutdown_hooks_are_logged_and_the_rest_still_runs(
        lifecycle: str, make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    server = make_server({
        "plugins": {"a": {"module": f"{lifecycle}:Recorder", "label": "a"},
                    "b_broken": {"module": f"{lifecycle}:FailingShutdown"}},
        "apps": {"one": {"module": f"{lifecycle}:Tracked"},
                 "two": {"module": f"{lifecycle}:Tracked", "fail_shutdown": True}},
    })
    with caplog.at_level(logging.ERROR), TestClient(server):
        pass  # a failing shutdown hook must not make the lifespan fail
    assert ("app stop", "one") in calls(server)
    assert calls(server)[-1] == ("stop", "a")
    messages = [r.getMessage() for r in caplog.records]
    assert "plugin 'b_broken' failed in genro_asgi_shutdown" in messages
    assert "application 'two' failed in on_shutdown" in messages


# -- graceful shutdown --------------------------------------------------------------------------


async def wait_for(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), SAFETY)


async def test_shutdown_drains_in_flight_requests(lifecycle: str, make_server: MakeServer
                                                  ) -> None:
    server = make_server({
        "plugins": {"p": {"module": f"{lifecycle}:Recorder", "label": "p"}},
        "apps": {"api": {"module": f"{lifecycle}:Slow"}},
    })
    app = server.apps["api"]
    app.state.entered, app.state.release = asyncio.Event(), asyncio.Event()
    async with AsyncTestClient(server) as client:
        slow = asyncio.create_task(client.get("/api/slow"))
        await asyncio.wait_for(app.state.entered.wait(), SAFETY)
        assert server.envelopes.count("http") == 1

        stopping = asyncio.create_task(client.shutdown())
        await wait_for(lambda: server.draining)

        late = await client.get("/api/hello")
        assert late.status_code == 503
        assert late.headers["retry-after"] == "5"
        assert "shutting down" in late.json()["error"]["message"]

        for _ in range(20):  # give shutdown every chance to (wrongly) finish
            await asyncio.sleep(0)
        assert not stopping.done()
        assert ("stop", "p") not in calls(server)

        app.state.release.set()
        response = await asyncio.wait_for(slow, SAFETY)
        assert response.status_code == 200
        assert response.text == "done"
        await asyncio.wait_for(stopping, SAFETY)
    # the plugin stopped only after the in-flight request had finished
    assert calls(server)[-2:] == ["slow request finished", ("stop", "p")]
    assert len(server.envelopes) == 0
    assert server.started is False


async def test_shutdown_timeout_bounds_the_wait(lifecycle: str, make_server: MakeServer,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    server = make_server({
        "server": {"shutdown_timeout": 25},
        "plugins": {"p": {"module": f"{lifecycle}:Recorder", "label": "p"}},
        "apps": {"api": {"module": f"{lifecycle}:Slow"}},
    })
    clock = iter(range(0, 10_000, 10))  # every reading of the clock is 10 s later
    monkeypatch.setattr(server_module, "time",
                        types.SimpleNamespace(monotonic=lambda: float(next(clock))))
    app = server.apps["api"]
    app.state.entered, app.state.release = asyncio.Event(), asyncio.Event()
    async with AsyncTestClient(server) as client:
        slow = asyncio.create_task(client.get("/api/slow"))
        await asyncio.wait_for(app.state.entered.wait(), SAFETY)
        with caplog.at_level(logging.WARNING, logger="genro_asgi.server"):
            await asyncio.wait_for(client.shutdown(), SAFETY)  # returns with the request held
        assert not slow.done()
        assert calls(server) == [("start", "p"), ("stop", "p")]
        assert any("1 request(s) still in flight after 25.0s" in r.getMessage()
                   for r in caplog.records)
        app.state.release.set()
        assert (await asyncio.wait_for(slow, SAFETY)).status_code == 200
    assert len(server.envelopes) == 0


async def test_zero_shutdown_timeout_does_not_wait(lifecycle: str, make_server: MakeServer
                                                   ) -> None:
    server = make_server({"server": {"shutdown_timeout": 0},
                          "apps": {"api": {"module": f"{lifecycle}:Slow"}}})
    app = server.apps["api"]
    app.state.entered, app.state.release = asyncio.Event(), asyncio.Event()
    async with AsyncTestClient(server) as client:
        slow = asyncio.create_task(client.get("/api/slow"))
        await asyncio.wait_for(app.state.entered.wait(), SAFETY)
        await asyncio.wait_for(client.shutdown(), SAFETY)
        assert not slow.done()
        app.state.release.set()
        assert (await asyncio.wait_for(slow, SAFETY)).status_code == 200


def test_startup_after_shutdown_serves_again(lifecycle: str, make_server: MakeServer) -> None:
    server = make_server({"apps": {"api": {"module": f"{lifecycle}:Slow"}}})
    with TestClient(server) as client:
        assert client.get("/api/hello").status_code == 200
    assert server.draining is True
    with TestClient(server) as client:
        assert server.draining is False
        assert client.get("/api/hello").status_code == 200


# -- watchdog -----------------------------------------------------------------------------------


def http_scope(path: str) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "headers": [],
            "client": ("127.0.0.1", 1)}


def test_watchdog_reports_each_level_once(lifecycle: str, make_server: MakeServer,
                                          caplog: pytest.LogCaptureFixture) -> None:
    server = make_server({"watchdog": {"timeout": 1, "critical": 2, "interval": 1000},
                          "plugins": {"stuck": {"module": f"{lifecycle}:Stuck"}}})
    young = server.envelopes.open(http_scope("/young"))
    old = server.envelopes.open(http_scope("/old"))
    old.created_at -= 1.5  # older than timeout, younger than critical
    with caplog.at_level(logging.WARNING, logger="genro_asgi.watchdog"):
        assert server.watchdog.check() == [(old, "warning")]
        assert server.watchdog.check() == []  # reported once
        old.created_at -= 1.0  # now older than critical
        assert server.watchdog.check() == [(old, "critical")]
        assert server.watchdog.check() == []
    assert calls(server) == [("warning", "/old"), ("critical", "/old")]
    records = [(r.levelname, r.getMessage()) for r in caplog.records
               if r.name == "genro_asgi.watchdog"]
    assert [level for level, _ in records] == ["WARNING", "CRITICAL"]
    assert all(old.request_id in message and "GET /old" in message for _, message in records)
    assert young.stuck_level == 0


def test_stuck_impl_without_server_argument(lifecycle: str, make_server: MakeServer) -> None:
    server = make_server({"watchdog": {"timeout": 1, "critical": 2},
                          "plugins": {"quiet": {"module": f"{lifecycle}:StuckNoServer"}}})
    envelope = server.envelopes.open(http_scope("/slow"))
    envelope.created_at -= 1.5
    assert server.watchdog.check() == [(envelope, "warning")]
    assert importlib.import_module(lifecycle).SEEN == [("warning", "/slow")]


def test_watchdog_jumping_straight_to_critical(lifecycle: str, make_server: MakeServer) -> None:
    server = make_server({"watchdog": {"timeout": 1, "critical": 2},
                          "plugins": {"stuck": {"module": f"{lifecycle}:Stuck"}}})
    ancient = server.envelopes.open(http_scope("/ancient"))
    ancient.created_at -= 100
    assert server.watchdog.check() == [(ancient, "critical")]
    assert server.watchdog.check() == []
    assert calls(server) == [("critical", "/ancient")]


def test_watchdog_ignores_closed_envelopes(lifecycle: str, make_server: MakeServer) -> None:
    server = make_server({"watchdog": {"timeout": 1, "critical": 2},
                          "plugins": {"stuck": {"module": f"{lifecycle}:Stuck"}}})
    envelope = server.envelopes.open(http_scope("/done"))
    envelope.created_at -= 100
    server.envelopes.close(envelope)
    assert server.watchdog.check() == []
    assert calls(server) == []


def test_failing_stuck_observer_is_logged(lifecycle: str, make_server: MakeServer,
                                          caplog: pytest.LogCaptureFixture) -> None:
    server = make_server({"watchdog": {"timeout": 1, "critical": 2},
                          "plugins": {"a_broken": {"module": f"{lifecycle}:StuckBroken"},
                                      "b_stuck": {"module": f"{lifecycle}:Stuck"}}})
    envelope = server.envelopes.open(http_scope("/slow"))
    envelope.created_at -= 1.5
    with caplog.at_level(logging.ERROR, logger="genro_asgi.watchdog"):
        assert server.watchdog.check() == [(envelope, "warning")]
    assert "plugin 'a_broken' failed in genro_asgi_envelope_stuck" in [
        r.getMessage() for r in caplog.records]
    assert calls(server) == [("warning", "/slow")]  # the next observer still ran


async def test_watchdog_task_finds_a_stuck_request(lifecycle: str, make_server: MakeServer
                                                   ) -> None:
    server = make_server({"watchdog": {"timeout": 30, "critical": 60, "interval": 0.01},
                          "plugins": {"stuck": {"module": f"{lifecycle}:Stuck"}},
                          "apps": {"api": {"module": f"{lifecycle}:Slow"}}})
    app = server.apps["api"]
    app.state.entered, app.state.release = asyncio.Event(), asyncio.Event()
    server.state.stuck_event = asyncio.Event()
    async with AsyncTestClient(server) as client:
        assert server.watchdog._task is not None
        slow = asyncio.create_task(client.get("/api/slow"))
        await asyncio.wait_for(app.state.entered.wait(), SAFETY)
        (envelope,) = list(server.envelopes)
        envelope.created_at -= 45  # the request has been "running" for 45 s
        await asyncio.wait_for(server.state.stuck_event.wait(), SAFETY)
        assert calls(server) == [("warning", "/api/slow")]
        app.state.release.set()
        assert (await asyncio.wait_for(slow, SAFETY)).status_code == 200
    assert server.watchdog._task is None


async def test_disabled_watchdog_starts_no_task(make_server: MakeServer) -> None:
    server = make_server({"watchdog": {"enabled": False}})
    async with AsyncTestClient(server):
        assert server.started is True
        assert server.watchdog._task is None
