"""Graceful shutdown: a SIGTERM to a real ``genro-asgi serve`` lets in-flight WSX and JSON-RPC
calls finish and answer before the sockets close with 1012; calls sent after the signal are
refused with ``shutting_down`` / -32007."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi.testing import AsyncTestClient, WebSocketDisconnect, free_port

pytestmark = pytest.mark.e2e

GUARD = 30.0  # seconds: a guard against a hang, never an assertion about speed
CALLS = 8  # slow calls in flight on each connection when the signal arrives
SLOW = 2.0  # seconds each slow call takes

APP = """\
import asyncio
from genro_asgi import AsgiApplication, route


class Slow(AsgiApplication):
    started = 0

    @route()
    def health(self) -> str:
        return "ok"

    @route()
    def started_calls(self) -> int:
        return Slow.started

    @route()
    async def slow(self, n: int, seconds: float) -> dict:
        Slow.started += 1
        await asyncio.sleep(seconds)
        return {"n": n, "done": True}
"""


class Served:
    """``genro-asgi serve DIR`` in a subprocess on a free loopback port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "genro_asgi", "serve", str(directory), "--port",
             str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # a background job inherits SIGINT ignored: the server gets the default
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                httpx.get(self.url + "/app/health", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not answer in time")

    def started_calls(self) -> int:
        return int(httpx.get(self.url + "/app/started_calls", timeout=GUARD).json())

    def wait_exit(self) -> int:
        try:
            return self.process.wait(GUARD)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stdout.read() if self.process.stdout else ""


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    shutdown_timeout = getattr(request, "param", 15)
    (tmp_path / "slow_app.py").write_text(APP)
    (tmp_path / "config.yaml").write_text(
        f"server: {{shutdown_timeout: {shutdown_timeout}}}\n"
        "plugins:\n  wsx: {heartbeat_interval: 0}\n"
        "apps:\n  app: {module: 'slow_app:Slow'}\n")
    server = Served(tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def open_ws(served: Served, protocol: str) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{served.port}/_wsx", subprotocols=[protocol],  # type: ignore[list-item]
                   open_timeout=GUARD, close_timeout=GUARD)


def frames_until_close(ws: ClientConnection) -> tuple[list[Any], int | None]:
    """Every frame the server sends until it closes, parsed, and its close code."""
    frames: list[Any] = []
    try:
        while True:
            frame = ws.recv(timeout=GUARD)
            assert isinstance(frame, str)
            frames.append(json.loads(frame[6:] if frame.startswith("WSX://") else frame))
    except ConnectionClosed as exc:
        return frames, exc.rcvd.code if exc.rcvd is not None else None


def until_refused(ws: ClientConnection, send: Any, refused: Any) -> list[Any]:
    """Send a quick call and read until its answer, again until one is ``refused``; the
    other frames read meanwhile (answers of the slow calls)."""
    others: list[Any] = []
    deadline = time.monotonic() + GUARD
    probe = 0
    while time.monotonic() < deadline:
        probe += 1
        probe_id = f"probe-{probe}"
        send(probe_id)
        while True:
            raw = ws.recv(timeout=GUARD)
            assert isinstance(raw, str)
            frame = json.loads(raw[6:] if raw.startswith("WSX://") else raw)
            if frame.get("id") != probe_id:
                others.append(frame)
                continue
            if refused(frame):
                return others
            break
        time.sleep(0.02)
    raise AssertionError("no call was refused after the signal")


def test_sigterm_lets_in_flight_wsx_and_jsonrpc_calls_answer(served: Served) -> None:
    with open_ws(served, "wsx") as wsx_ws, open_ws(served, "jsonrpc") as rpc_ws:
        for n in range(CALLS):
            wsx_ws.send("WSX://" + json.dumps({"id": n, "path": "/app/slow",
                                               "data": {"n": n, "seconds": SLOW}}))
            rpc_ws.send(json.dumps({"jsonrpc": "2.0", "method": "app.slow", "id": n,
                                    "params": {"n": n, "seconds": SLOW}}))
        deadline = time.monotonic() + GUARD
        while served.started_calls() < 2 * CALLS:  # every call is in its handler
            assert time.monotonic() < deadline, "the slow calls did not start"
            time.sleep(0.05)
        served.process.send_signal(signal.SIGTERM)

        # after the signal a new call is refused (and the slow ones are still running)
        wsx_seen = until_refused(
            wsx_ws,
            lambda pid: wsx_ws.send("WSX://" + json.dumps({"id": pid, "path": "/app/health"})),
            lambda frame: frame.get("status") == 503
            and frame["error"]["code"] == "shutting_down")
        rpc_seen = until_refused(
            rpc_ws,
            lambda pid: rpc_ws.send(json.dumps({"jsonrpc": "2.0", "method": "app.health",
                                                "id": pid})),
            lambda frame: frame.get("error", {}).get("code") == -32007)

        wsx_rest, wsx_code = frames_until_close(wsx_ws)
        rpc_rest, rpc_code = frames_until_close(rpc_ws)

    wsx_answers = {f["id"]: f for f in wsx_seen + wsx_rest if isinstance(f.get("id"), int)}
    assert sorted(wsx_answers) == list(range(CALLS))
    for n, frame in wsx_answers.items():
        assert frame["status"] == 200, frame
        assert json.loads(frame["data"]) == {"n": n, "done": True}
    rpc_answers = {f["id"]: f for f in rpc_seen + rpc_rest if isinstance(f.get("id"), int)}
    assert sorted(rpc_answers) == list(range(CALLS))
    for n, frame in rpc_answers.items():
        assert frame["result"] == {"n": n, "done": True}, frame
    assert wsx_code == 1012 and rpc_code == 1012
    assert served.wait_exit() in (0, -signal.SIGTERM)


@pytest.mark.parametrize("served", [600], indirect=True)  # a drain far longer than GUARD
def test_a_second_ctrl_c_cuts_the_drain(served: Served) -> None:
    with open_ws(served, "wsx") as ws:
        ws.send("WSX://" + json.dumps({"id": 1, "path": "/app/slow",
                                       "data": {"n": 1, "seconds": 600}}))
        deadline = time.monotonic() + GUARD
        while served.started_calls() < 1:
            assert time.monotonic() < deadline, "the slow call did not start"
            time.sleep(0.05)
        served.process.send_signal(signal.SIGINT)
        until_refused(
            ws, lambda pid: ws.send("WSX://" + json.dumps({"id": pid, "path": "/app/health"})),
            lambda frame: frame.get("status") == 503)
        served.process.send_signal(signal.SIGINT)  # forced: the drain is cut, not waited for
        frames, code = frames_until_close(ws)
    assert frames == [] and code == 1012  # the slow call went unanswered
    served.wait_exit()  # within GUARD, not after the 600 s drain


def test_sigterm_with_idle_connections_closes_them_with_1012(served: Served) -> None:
    with open_ws(served, "wsx") as ws:
        ws.send('WSX://{"id":1,"path":"/app/health"}')
        assert json.loads(ws.recv(timeout=GUARD)[6:])["status"] == 200  # type: ignore[index]
        served.process.send_signal(signal.SIGTERM)
        frames, code = frames_until_close(ws)
    assert frames == [] and code == 1012
    assert served.wait_exit() in (0, -signal.SIGTERM)


# -- in process: the lifespan shutdown (any ASGI server) and the drain hook ------------------


class Gated(AsgiApplication):
    """Calls that wait for the test to open a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = 0
        self.gate = asyncio.Event()

    @route()
    async def wait(self, n: int) -> int:
        self.entered += 1
        await self.gate.wait()
        return n

    @route()
    def quick(self) -> str:
        return "ok"


def gated_server(tmp_path: Path, shutdown_timeout: float = 15) -> tuple[AsgiServer, Gated]:
    server = AsgiServer(tmp_path, environ={}, config={
        "server": {"shutdown_timeout": shutdown_timeout},
        "plugins": {"wsx": {"heartbeat_interval": 0}}})
    app = Gated()
    server.mount("/g", app)
    return server, app


async def until(condition: Any) -> None:
    async with asyncio.timeout(GUARD):
        while not condition():
            await asyncio.sleep(0.01)


async def test_lifespan_shutdown_answers_calls_in_flight_then_closes_1001(
        tmp_path: Path) -> None:
    server, app = gated_server(tmp_path)
    client = AsyncTestClient(server)
    await client.__aenter__()
    try:
        async with client.websocket_connect("/_wsx", subprotocols=["wsx"]) as ws, \
                client.websocket_connect("/_wsx", subprotocols=["jsonrpc"]) as rpc:
            await ws.send_text('WSX://{"id":1,"path":"/g/wait","data":{"n":1}}')
            await rpc.send_text('{"jsonrpc":"2.0","method":"g.wait","params":[2],"id":2}')
            await until(lambda: app.entered == 2)
            stopping = asyncio.ensure_future(client.shutdown())
            await until(lambda: server.draining)

            await ws.send_text('WSX://{"id":"late","path":"/g/quick"}')
            refused = json.loads((await ws.receive_text())[6:])
            assert refused == {"id": "late", "status": 503, "error": {
                "code": "shutting_down", "message": "the server is shutting down"}}
            await ws.send_text('WSX://{"id":"sub","type":"subscribe","channel":"a.b"}')
            refused = json.loads((await ws.receive_text())[6:])
            assert refused["status"] == 503 and refused["error"]["code"] == "shutting_down"
            await rpc.send_text('{"jsonrpc":"2.0","method":"g.quick","id":"late"}')
            refused = json.loads(await rpc.receive_text())
            assert refused["error"]["code"] == -32007 and refused["id"] == "late"
            assert not stopping.done()  # still waiting for the two calls

            app.gate.set()
            assert await ws.receive_text() == 'WSX://{"id":1,"status":200,"data":"1"}'
            assert json.loads(await rpc.receive_text()) == {
                "jsonrpc": "2.0", "result": 2, "id": 2}
            for socket in (ws, rpc):
                with pytest.raises(WebSocketDisconnect) as closed:
                    await asyncio.wait_for(socket.receive(), GUARD)
                assert closed.value.code == 1001
            await asyncio.wait_for(stopping, GUARD)
        assert len(server.plugins.get("wsx").connections) == 0
    finally:
        await client.__aexit__(None, None, None)


async def test_drain_hook_cancels_calls_still_running_at_the_deadline(tmp_path: Path) -> None:
    server, app = gated_server(tmp_path)
    client = AsyncTestClient(server)
    await client.__aenter__()
    try:
        async with client.websocket_connect("/_wsx", subprotocols=["wsx"]) as ws:
            await ws.send_text('WSX://{"id":1,"path":"/g/wait","data":{"n":1}}')
            await until(lambda: app.entered == 1)
            server.draining = True  # what the signal does, then the hook with its timeout
            await asyncio.wait_for(server.plugins.get("wsx").genro_asgi_drain(0.1), GUARD)
            with pytest.raises(WebSocketDisconnect) as closed:
                await asyncio.wait_for(ws.receive(), GUARD)
            assert closed.value.code == 1012
        assert len(server.envelopes) == 0
    finally:
        await client.__aexit__(None, None, None)


async def test_drain_connections_runs_the_drain_hook(tmp_path: Path) -> None:
    server, app = gated_server(tmp_path, shutdown_timeout=15)
    client = AsyncTestClient(server)
    await client.__aenter__()
    try:
        async with client.websocket_connect("/_wsx", subprotocols=["wsx"]) as ws:
            await ws.send_text('WSX://{"id":1,"path":"/g/wait","data":{"n":7}}')
            await until(lambda: app.entered == 1)
            draining = asyncio.ensure_future(server.drain_connections())
            await until(lambda: server.draining)
            app.gate.set()
            assert await ws.receive_text() == 'WSX://{"id":1,"status":200,"data":"7"}'
            with pytest.raises(WebSocketDisconnect) as closed:
                await asyncio.wait_for(ws.receive(), GUARD)
            assert closed.value.code == 1012
            await asyncio.wait_for(draining, GUARD)
    finally:
        await client.__aexit__(None, None, None)
