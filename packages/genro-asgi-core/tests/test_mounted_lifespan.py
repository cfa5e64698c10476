"""A mounted ASGI app's own lifespan runs with the server's: startup, state, failures, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genro_asgi import AsgiApplication, AsgiServer, StartupError, route
from genro_asgi.testing import AsyncTestClient, LiveServer


class LifespanApp:
    """A raw ASGI app that records its lifespan events and answers with its request state."""

    def __init__(self, events: list[str], name: str, *, fail_startup: str | None = None,
                 hang_shutdown: bool = False, fail_shutdown: bool = False) -> None:
        self.events = events
        self.name = name
        self.fail_startup = fail_startup
        self.hang_shutdown = hang_shutdown
        self.fail_shutdown = fail_shutdown

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(f"{self.name}:{message['type']}")
                if message["type"] == "lifespan.startup":
                    if self.fail_startup is not None:
                        await send({"type": "lifespan.startup.failed",
                                    "message": self.fail_startup})
                        return
                    scope["state"]["pool"] = f"{self.name}-pool"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    if self.hang_shutdown:
                        await asyncio.Event().wait()
                    if self.fail_shutdown:
                        await send({"type": "lifespan.shutdown.failed", "message": "disk full"})
                    else:
                        await send({"type": "lifespan.shutdown.complete"})
                    return
        state = scope.get("state", {})
        body = json.dumps({"state": state, "same_dict": state is scope.get("state")}).encode()
        state["written_by_a_request"] = True  # must not leak into the next request
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


async def no_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that supports only HTTP, as the ASGI spec expects: it raises for lifespan."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope {scope['type']!r}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"plain"})


async def waits_for_its_own_messages(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that ignores the scope type and reads until the end of a request body that
    never comes: without a guard it would hold the server's startup forever."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message["type"] == "http.request" and not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"waited"})


class StartsBothWays(LifespanApp):
    """An ASGI app that also has an on_startup/on_shutdown pair (called before its lifespan)."""

    def on_startup(self) -> None:
        self.events.append(f"{self.name}:on_startup")

    def on_shutdown(self) -> None:
        self.events.append(f"{self.name}:on_shutdown")


async def careless(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that never looks at the scope type: it answers a lifespan scope with HTTP."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"careless"})


class Site(AsgiApplication):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def on_startup(self) -> None:
        self.events.append("site:on_startup")

    def on_shutdown(self) -> None:
        self.events.append("site:on_shutdown")

    @route()
    def hello(self) -> str:
        return "hello"


async def test_startup_and_shutdown_in_mount_order_and_back(make_server: Any) -> None:
    events: list[str] = []
    server = make_server()
    server.mount("/site", Site(events))
    server.mount("/first", LifespanApp(events, "first"))
    server.mount("/second", LifespanApp(events, "second"))
    async with AsyncTestClient(server) as client:
        assert events == ["site:on_startup", "first:lifespan.startup",
                          "second:lifespan.startup"]
        assert (await client.get("/site/hello")).text == "hello"
        events.clear()
    assert events == ["second:lifespan.shutdown", "first:lifespan.shutdown",
                      "site:on_shutdown"]


async def test_the_apps_lifespan_state_reaches_its_requests_as_a_copy(make_server: Any) -> None:
    events: list[str] = []
    server = make_server()
    server.mount("/first", LifespanApp(events, "first"))
    server.mount("/second", LifespanApp(events, "second"))
    async with AsyncTestClient(server) as client:
        for _ in range(2):  # a request writing into its state leaves the next one's alone
            answer = (await client.get("/first/x")).json()
            assert answer["state"] == {"pool": "first-pool"}
        assert (await client.get("/second/")).json()["state"] == {"pool": "second-pool"}


async def test_apps_without_lifespan_support_are_left_alone(
        make_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = make_server()
    server.mount("/plain", no_lifespan)
    server.mount("/careless", careless)
    server.mount("/waiting", waits_for_its_own_messages)
    with caplog.at_level(logging.WARNING):
        async with asyncio.timeout(5), AsyncTestClient(server) as client:
            assert (await client.get("/plain/a")).text == "plain"
            assert (await client.get("/careless/a")).text == "careless"
            assert (await client.get("/waiting/a")).text == "waited"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_failed_startup_fails_the_server_and_rolls_back(make_server: Any) -> None:
    events: list[str] = []
    server = make_server()
    server.mount("/site", Site(events))
    server.mount("/first", LifespanApp(events, "first"))
    server.mount("/broken", LifespanApp(events, "broken", fail_startup="no database"))
    server.mount("/never", LifespanApp(events, "never"))
    with pytest.raises(StartupError, match="mounted application 'broken': no database"):
        await server.startup()
    assert events == ["site:on_startup", "first:lifespan.startup", "broken:lifespan.startup",
                      "first:lifespan.shutdown", "site:on_shutdown"]
    assert not server.started


async def test_a_failed_lifespan_still_rolls_back_the_apps_own_on_startup(
        make_server: Any) -> None:
    events: list[str] = []
    server = make_server()
    server.mount("/both", StartsBothWays(events, "both", fail_startup="no cache"))
    with pytest.raises(StartupError, match="'both': no cache"):
        await server.startup()
    assert events == ["both:on_startup", "both:lifespan.startup", "both:on_shutdown"]


async def test_cancelling_the_shutdown_is_not_swallowed(make_server: Any) -> None:
    """The app answers, then takes its time to return: a cancellation of the server's
    shutdown in that moment reaches the caller."""
    async def slow_to_return(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        await asyncio.sleep(0.8)

    server = make_server()
    server.mount("/slow", slow_to_return)
    await server.startup()
    shutdown = asyncio.create_task(server.shutdown())
    await asyncio.sleep(0.2)
    shutdown.cancel()
    with pytest.raises(asyncio.CancelledError):
        await shutdown
    assert shutdown.cancelled()


async def test_a_shutdown_that_hangs_is_cut_at_the_shutdown_timeout_or_one_second(
        make_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    server = make_server(shutdown_timeout=0.2)
    server.mount("/stuck", LifespanApp(events, "stuck", hang_shutdown=True))
    server.mount("/sad", LifespanApp(events, "sad", fail_shutdown=True))
    server.mount("/fine", LifespanApp(events, "fine"))
    await server.startup()
    with caplog.at_level(logging.ERROR, logger="genro_asgi.lifespan"):
        await asyncio.wait_for(server.shutdown(), 5)
    assert events[-3:] == ["fine:lifespan.shutdown", "sad:lifespan.shutdown",
                           "stuck:lifespan.shutdown"]
    assert "'sad' failed its lifespan shutdown: disk full" in caplog.text
    assert "'stuck' did not finish its lifespan shutdown in 1.0s" in caplog.text  # the floor
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("lifespan ")]


async def test_shutdown_timeout_zero_still_lets_a_cleanup_await(make_server: Any) -> None:
    cleaned: list[str] = []

    async def tidy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.sleep(0.01)  # closing a pool, flushing a client...
        cleaned.append("done")
        await send({"type": "lifespan.shutdown.complete"})

    server = make_server(shutdown_timeout=0)
    server.mount("/tidy", tidy)
    await server.startup()
    await server.shutdown()
    assert cleaned == ["done"]


async def test_lifespan_false_never_sends_it(make_server: Any) -> None:
    events: list[str] = []
    server = make_server()
    server.mount("/quiet", LifespanApp(events, "quiet"), lifespan=False)
    async with AsyncTestClient(server) as client:
        assert (await client.get("/quiet/")).json()["state"] == {}
    assert events == []


async def test_lifespan_from_config(tmp_path: Path) -> None:
    """``apps.<name>.lifespan`` in config.yaml: on by default, ``false`` opts out."""
    events: list[str] = []
    module = tmp_path / "lifespan_config_apps.py"
    module.write_text("")  # the apps are set on it below
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        apps_module = importlib.import_module("lifespan_config_apps")
        apps_module.on = LifespanApp(events, "on")  # type: ignore[attr-defined]
        apps_module.off = LifespanApp(events, "off")  # type: ignore[attr-defined]
        server = AsgiServer(tmp_path, config={"apps": {
            "on": {"module": "lifespan_config_apps:on"},
            "off": {"module": "lifespan_config_apps:off", "lifespan": False}}}, environ={})
        async with AsyncTestClient(server):
            pass
        assert events == ["on:lifespan.startup", "on:lifespan.shutdown"]
        with pytest.raises(Exception, match=r"apps\.on\.lifespan"):
            AsgiServer(tmp_path, config={"apps": {
                "on": {"module": "lifespan_config_apps:on", "lifespan": "maybe"}}}, environ={})
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lifespan_config_apps", None)


async def test_a_server_can_start_again_after_a_shutdown(make_server: Any) -> None:
    events: list[str] = []
    server = make_server()
    server.mount("/again", LifespanApp(events, "again"))
    for _ in range(2):
        async with AsyncTestClient(server) as client:
            assert (await client.get("/again/")).json()["state"] == {"pool": "again-pool"}
    assert events == ["again:lifespan.startup", "again:lifespan.shutdown"] * 2


def test_a_starlette_app_with_a_lifespan_over_uvicorn(tmp_path: Path) -> None:
    """The peer this is for: a Starlette app's lifespan context and its state, mounted under
    a genro-asgi server served by a real uvicorn."""
    starlette = pytest.importorskip("starlette.applications")
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        events.append("starlette:up")
        yield {"greeting": "hello from the lifespan"}
        events.append("starlette:down")

    async def hello(request: Any) -> Any:
        return JSONResponse({"greeting": request.state.greeting,
                             "root_path": request.scope["root_path"]})

    legacy = starlette.Starlette(routes=[Route("/hello", hello)], lifespan=lifespan)
    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/legacy", legacy)
    with LiveServer(server) as live:
        assert events == ["starlette:up"]
        answer = httpx.get(live.url + "/legacy/hello", timeout=10).json()
        assert answer == {"greeting": "hello from the lifespan", "root_path": "/legacy"}
    assert events == ["starlette:up", "starlette:down"]
