"""Calls run in the reader until they wait, answers are sent at once when nothing is queued.

What must hold whichever way a call runs: a call that waits keeps one task of its own (its
``current_task``, an ``asyncio.timeout`` inside it), each call has its own context, the
connection keeps reading while calls wait, an answer never overtakes a frame queued before it,
and an answer whose send has to wait is finished by the writer, in order, or dropped cleanly
when the connection ends. The encoders' fast paths write exactly what the reference encoders
write.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import gc
import json
from collections import deque
from decimal import Decimal
from typing import Any

import pytest
from genro_tytx import to_tytx
from wsx_helpers import TIMEOUT, make

from genro_asgi import AsgiApplication, route
from genro_asgi.testing import AsyncTestClient
from genro_asgi_wsx import jsonrpc as jsonrpc_module
from genro_asgi_wsx import publish
from genro_asgi_wsx.codec import (
    _ENCODER,
    parse_json,
    plain_json,
    tytx_json_fragment,
    tytx_text,
)
from genro_asgi_wsx.errors import WsxError
from genro_asgi_wsx.jsonrpc import _result_text
from genro_asgi_wsx.wsx_protocol import WsxProtocol

marker: contextvars.ContextVar[str] = contextvars.ContextVar("wsx_test_marker", default="unset")


class Probe(AsgiApplication):
    @route()
    async def same_task(self) -> bool:
        task = asyncio.current_task()
        async with asyncio.timeout(TIMEOUT):
            await asyncio.sleep(0)
        return asyncio.current_task() is task

    @route()
    async def times_out(self) -> str:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(TIMEOUT)
        return "not reached"

    @route()
    async def set_marker(self, value: str) -> str:
        marker.set(value)
        return marker.get()

    @route()
    async def get_marker(self) -> str:
        return marker.get()

    @route()
    async def set_marker_and_wait(self, value: str) -> str:
        marker.set(value)
        await asyncio.sleep(0.01)
        return marker.get()

    @route()
    async def notify_self(self, channel: str) -> bool:
        await publish(self.server, channel, {"n": 1})
        return True

    @route()
    async def hello(self) -> str:
        return "hello"


def server_with_probe(tmp_path: Any) -> Any:
    server = make(tmp_path)
    server.mount("/probe", Probe())
    return server


async def exchange(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send_text("WSX://" + json.dumps(message))
    return await receive(ws)


async def receive(ws: Any) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.receive_text(), TIMEOUT)
    assert frame.startswith("WSX://"), frame
    return json.loads(frame[6:])  # type: ignore[no-any-return]


async def test_a_waiting_call_keeps_its_own_task_and_timeout(tmp_path: Any) -> None:
    async with AsyncTestClient(server_with_probe(tmp_path)) as client, \
            client.websocket_connect("/_wsx") as ws:
        answer = await exchange(ws, {"id": 1, "path": "/probe/same_task"})
        assert answer["status"] == 200 and json.loads(answer["data"]) is True
        # a timeout inside a handler cancels that call, never the connection's reader
        failed = await exchange(ws, {"id": 2, "path": "/probe/times_out"})
        assert failed["status"] == 500 and failed["error"]["code"] == "internal_error"
        answer = await exchange(ws, {"id": 3, "path": "/probe/hello"})
        assert answer == {"id": 3, "status": 200, "data": '"hello"'}


async def test_each_call_has_its_own_context(tmp_path: Any) -> None:
    async with AsyncTestClient(server_with_probe(tmp_path)) as client, \
            client.websocket_connect("/_wsx") as ws:
        for n, path in enumerate(["/probe/set_marker", "/probe/set_marker_and_wait"]):
            answer = await exchange(ws, {"id": n, "path": path, "data": {"value": f"v{n}"}})
            assert json.loads(answer["data"]) == f"v{n}"
            seen = await exchange(ws, {"id": 10 + n, "path": "/probe/get_marker"})
            assert json.loads(seen["data"]) == "unset"


async def test_an_answer_never_overtakes_an_event_queued_before_it(tmp_path: Any) -> None:
    async with AsyncTestClient(server_with_probe(tmp_path)) as client, \
            client.websocket_connect("/_wsx") as ws:
        subscribed = await exchange(ws, {"id": 1, "type": "subscribe", "channel": "mine"})
        assert subscribed["status"] == 200
        for n in range(2, 6):
            await ws.send_text("WSX://" + json.dumps(
                {"id": n, "path": "/probe/notify_self", "data": {"channel": "mine"}}))
            event, answer = await receive(ws), await receive(ws)
            assert event["type"] == "event" and json.loads(event["data"]) == {"n": 1}
            assert answer["id"] == n and answer["status"] == 200


class GatedSocket:
    """A raw ASGI client whose ``send`` waits at a gate for chosen answers."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: deque[str] = deque()
        self.gate = asyncio.Event()
        self.hold = 0  # how many answers to hold at the gate
        self.held = asyncio.Event()
        self.accepted = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            self.accepted.set()
        elif message["type"] == "websocket.send":
            if self.hold:
                self.hold -= 1
                self.held.set()
                await self.gate.wait()
            self.frames.append(message["text"])

    def call(self, n: int) -> None:
        self.inbox.put_nowait({"type": "websocket.receive",
                               "text": f'WSX://{{"id":{n},"path":"/probe/hello"}}'})


def ws_scope() -> dict[str, Any]:
    return {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": "/_wsx",
            "raw_path": b"/_wsx", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80), "subprotocols": ["wsx"]}


async def until(condition: Any) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)
    await asyncio.wait_for(poll(), TIMEOUT)


async def test_an_answer_whose_send_waits_is_finished_in_order(tmp_path: Any) -> None:
    server = server_with_probe(tmp_path)
    async with AsyncTestClient(server):
        sock = GatedSocket()
        app = asyncio.create_task(server(ws_scope(), sock.receive, sock.send))
        sock.inbox.put_nowait({"type": "websocket.connect"})
        await asyncio.wait_for(sock.accepted.wait(), TIMEOUT)
        sock.hold = 1
        sock.call(1)  # its answer starts at once and waits at the gate
        await asyncio.wait_for(sock.held.wait(), TIMEOUT)
        for n in (2, 3):
            sock.call(n)  # answered while the first send waits: queued behind it
        conn = next(iter(server.plugins.get("wsx").connections))
        await until(lambda: conn.queue.qsize() == 2)  # the writer holds the first answer
        assert not sock.frames
        sock.gate.set()
        await until(lambda: len(sock.frames) == 3)
        assert [json.loads(f[6:])["id"] for f in sock.frames] == [1, 2, 3]
        sock.call(4)  # nothing queued any more: sent at once again
        await until(lambda: len(sock.frames) == 4)
        sock.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(app, TIMEOUT)
    assert len(server.envelopes) == 0


async def test_a_waiting_answer_is_dropped_cleanly_when_the_client_leaves(
        tmp_path: Any) -> None:
    server = server_with_probe(tmp_path)
    async with AsyncTestClient(server):
        sock = GatedSocket()
        app = asyncio.create_task(server(ws_scope(), sock.receive, sock.send))
        sock.inbox.put_nowait({"type": "websocket.connect"})
        await asyncio.wait_for(sock.accepted.wait(), TIMEOUT)
        sock.hold = 2
        sock.call(1)
        await asyncio.wait_for(sock.held.wait(), TIMEOUT)
        sock.call(2)
        sock.inbox.put_nowait({"type": "websocket.disconnect", "code": 1001})
        await asyncio.wait_for(app, TIMEOUT)  # ends although the send never completes
        assert not sock.frames
        assert len(server.plugins.get("wsx").connections) == 0
    assert len(server.envelopes) == 0


VALUES = ["héllo \u2028 \"q\" \\ \n\x00", "", 0, -5, 10**30, True, False, None, 1.5,
          {"a": [1, "x", None], "é": {"b": 2.25}}, [], {}, (1, 2),
          {"p": Decimal("1.50"), "d": datetime.date(2025, 1, 15)}]


@pytest.mark.parametrize("value", VALUES)
def test_fast_encoders_write_what_the_reference_encoders_write(value: Any) -> None:
    assert plain_json(value) == _ENCODER.encode(value)
    typed = to_tytx(value)
    assert tytx_text(value) == (typed if isinstance(typed, str) else typed.decode())
    expected = tytx_text({"v": value})
    fragment, has_types = tytx_json_fragment(value)
    assert has_types == expected.endswith("}::JS")
    assert '{"v":' + fragment + "}" == expected.removesuffix("::JS")


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("rid", [7, "r-é", None])
def test_answers_are_the_text_of_their_dicts(value: Any, rid: Any) -> None:
    class Recorder:
        def reply(self, frame: str) -> None:
            self.frame = frame

    conn = Recorder()
    WsxProtocol(conn).answer(rid if rid is not None else 1, value)  # type: ignore[arg-type]
    wsx_id = rid if rid is not None else 1
    assert conn.frame == "WSX://" + json.dumps(
        {"id": wsx_id, "status": 200, "data": tytx_text(value)},
        ensure_ascii=False, separators=(",", ":"))
    for typed in (False, True):
        text, has_types = _result_text(rid, value, typed)
        response = {"jsonrpc": "2.0", "result": value, "id": rid}
        if typed:
            assert (text, has_types) == tytx_json_fragment(response)
        else:
            assert (text, has_types) == (plain_json(response), False)


@pytest.mark.parametrize("text", ['{"a":1}', ' {"a":1} ', '{"a":1} x', "", "[1,", "NaN",
                                  '{"a":' * 3000, '"\\ud800"', "12"])
def test_parse_json_from_an_offset_is_parse_json_of_the_rest(text: str) -> None:
    def outcome(call: Any) -> Any:
        try:
            return call()
        except WsxError as exc:
            return ("error", exc.message)
        except (ValueError, RecursionError):
            return ("error", None)

    assert outcome(lambda: parse_json("WSX://" + text, 6)) == outcome(lambda: parse_json(text))
    reference = outcome(lambda: json.loads(text))
    if isinstance(reference, tuple) or text.strip() == "NaN":
        assert outcome(lambda: parse_json(text))[0] == "error"
    else:
        assert parse_json(text) == reference


async def test_a_mount_after_the_first_call_is_seen_by_open_connections(tmp_path: Any) -> None:
    server = make(tmp_path)
    async with AsyncTestClient(server) as client, client.websocket_connect("/_wsx") as ws:
        missing = await exchange(ws, {"id": 1, "path": "/probe/hello"})
        assert missing["status"] == 404 and missing["error"]["code"] == "not_found"
        server.mount("/probe", Probe())  # the core replaces its route table
        answer = await exchange(ws, {"id": 2, "path": "/probe/hello"})
        assert answer == {"id": 2, "status": 200, "data": '"hello"'}


async def test_jsonrpc_method_paths_are_remembered_within_bounds(tmp_path: Any) -> None:
    server = server_with_probe(tmp_path)
    long_name = "probe." + "x" * (jsonrpc_module._CACHED_METHOD + 1)
    remembered = server.plugins.get("wsx").runner.route_paths  # per server, never global
    async with AsyncTestClient(server) as client, \
            client.websocket_connect("/_wsx", subprotocols=["jsonrpc"]) as ws:
        for n in range(3):  # the first call works the path out, the others reuse it
            await ws.send_text(json.dumps({"jsonrpc": "2.0", "method": "probe.hello", "id": n}))
            answer = json.loads(await asyncio.wait_for(ws.receive_text(), TIMEOUT))
            assert answer == {"jsonrpc": "2.0", "result": "hello", "id": n}
        assert remembered["probe.hello"] == "/probe/hello"
        for method in ("wsx.ping", long_name):
            await ws.send_text(json.dumps({"jsonrpc": "2.0", "method": method, "id": 9}))
            await asyncio.wait_for(ws.receive_text(), TIMEOUT)
        assert "wsx.ping" not in remembered  # never a route
        assert long_name not in remembered  # too long to keep
    assert len(remembered) <= jsonrpc_module._CACHED_METHODS


async def test_a_call_leaves_no_reference_cycle_behind(tmp_path: Any) -> None:
    server = server_with_probe(tmp_path)
    async with AsyncTestClient(server) as client, client.websocket_connect("/_wsx") as ws:
        await exchange(ws, {"id": 1, "path": "/probe/hello"})
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for n in range(5):
                answer = await exchange(ws, {"id": n, "path": "/probe/hello"})
                assert answer["status"] == 200
            gc.collect()
            left = [o for o in gc.garbage if type(o).__name__ == "Envelope"]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert left == []  # the scope -> envelope link is dropped when the call ends


async def test_a_bug_in_a_frame_or_a_call_never_ends_the_connection(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The protocols catch every error a client can cause; should one slip through (a server
    bug), the reader logs it and keeps serving instead of dying silently."""
    original = WsxProtocol.handle

    async def broken_call() -> None:
        raise RuntimeError("a bug in a call")

    def handle(self: WsxProtocol, text: str | None, data: bytes | None) -> None:
        if text == "WSX://bug-in-handle":
            raise RuntimeError("a bug in handle")
        if text == "WSX://bug-in-call":
            self.conn.spawn(broken_call())
            return
        original(self, text, data)

    monkeypatch.setattr(WsxProtocol, "handle", handle)
    async with AsyncTestClient(server_with_probe(tmp_path)) as client, \
            client.websocket_connect("/_wsx") as ws:
        for frame in ("WSX://bug-in-handle", "WSX://bug-in-call"):
            await ws.send_text(frame)
            answer = await exchange(ws, {"id": 1, "path": "/probe/hello"})
            assert answer == {"id": 1, "status": 200, "data": '"hello"'}
