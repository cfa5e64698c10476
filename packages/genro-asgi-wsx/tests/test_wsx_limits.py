"""Limits, heartbeat, deadlines and shutdown: each ends in its documented close code."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from wsx_helpers import TIMEOUT, close_code, make, open_ws, recv_wsx, rpc, serving, wsx

from genro_asgi.testing import AsyncTestClient, LiveServer, WebSocketDisconnect

pytestmark = pytest.mark.e2e


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_message_too_big_closes_1009(tmp_path: Any) -> None:
    with serving(make(tmp_path, {"max_message_size": 1024})) as live, open_ws(live) as ws:
        assert wsx(ws, {"id": 1, "path": "/shop/hello", "data": {"name": "x" * 900}})
        ws.send("WSX://" + json.dumps({"id": 2, "path": "/shop/hello",
                                       "data": {"name": "é" * 600}}))  # 1200+ bytes
        assert close_code(ws) == 1009


def test_in_flight_limit_and_cancellation_on_disconnect(tmp_path: Any) -> None:
    server = make(tmp_path, {"max_in_flight": 2})
    shop = server.apps["shop"]
    with serving(server) as live:
        with open_ws(live) as ws:
            ws.send('WSX://{"id":1,"path":"/shop/slow"}')
            ws.send('WSX://{"id":2,"path":"/shop/slow"}')
            wait_for(lambda: getattr(shop.state, "slow_started", 0) == 2)
            refused = wsx(ws, {"id": 3, "path": "/shop/hello"})
            assert refused["status"] == 429 and refused["error"]["code"] == "too_many_calls"
            # a call with more than id and path is refused the same way
            refused = wsx(ws, {"id": 4, "path": "/shop/hello", "data": {"name": "ada"}})
            assert refused["status"] == 429 and refused["error"]["code"] == "too_many_calls"
        wait_for(lambda: getattr(shop.state, "slow_cancelled", 0) == 2)
        wait_for(lambda: len(server.envelopes) == 0)


def test_jsonrpc_in_flight_limit(tmp_path: Any) -> None:
    server = make(tmp_path, {"max_in_flight": 1})
    shop = server.apps["shop"]
    with serving(server) as live, open_ws(live, "jsonrpc") as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "shop.slow", "id": 1}))
        wait_for(lambda: getattr(shop.state, "slow_started", 0) == 1)
        answer = rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "id": 2})
        assert answer["error"]["code"] == -32003 and answer["id"] == 2
        batch = rpc(ws, [{"jsonrpc": "2.0", "method": "get_data", "id": 3}])
        assert batch[0]["error"]["code"] == -32003


def test_subscription_limit(tmp_path: Any) -> None:
    with serving(make(tmp_path, {"max_subscriptions": 2})) as live, open_ws(live) as ws:
        for index in range(2):
            assert wsx(ws, {"id": index, "type": "subscribe", "channel": f"c.{index}"})[
                "status"] == 200
        refused = wsx(ws, {"id": 9, "type": "subscribe", "channel": "c.9"})
        assert refused["status"] == 429
        assert refused["error"]["code"] == "too_many_subscriptions"


def test_batch_limit(tmp_path: Any) -> None:
    with serving(make(tmp_path, {"max_batch": 3})) as live, open_ws(live, "jsonrpc") as ws:
        item = {"jsonrpc": "2.0", "method": "get_data", "id": 1}
        assert len(rpc(ws, [item] * 3)) == 3
        answer = rpc(ws, [item] * 4)
        assert answer["error"]["code"] == -32600 and answer["id"] is None
        assert "at most 3" in answer["error"]["data"]["detail"]


def deep_list(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def notify_params(value: str) -> str:
    """The JSON text of ``shop.notify``'s arguments, with ``value`` as given."""
    return '{"channel":"deep","value":' + value + "}"


def test_nesting_limit_wsx(tmp_path: Any) -> None:
    """``max_depth`` bounds the frame and a TYTX ``data`` string; deeper is a parse error, the
    connection stays usable, and what is within the limit reaches a subscriber intact."""
    server = make(tmp_path, {"max_depth": 12})
    with serving(server) as live, open_ws(live) as ws, open_ws(live) as reader:
        assert wsx(reader, {"id": 1, "type": "subscribe", "channel": "deep"})["status"] == 200
        # frame {} > data {} > value: 10 lists leave the frame at the limit of 12
        ws.send('WSX://{"id":1,"path":"/shop/notify","data":' + notify_params(deep_list(10)) + "}")
        assert recv_wsx(ws) == {"id": 1, "status": 200, "data": "true"}
        event = recv_wsx(reader)
        assert event["type"] == "event" and json.loads(event["data"]) == json.loads(
            deep_list(10))
        ws.send('WSX://{"id":2,"path":"/shop/notify","data":' + notify_params(deep_list(11)) + "}")
        refused = recv_wsx(ws)
        assert refused["type"] == "error" and refused["status"] == 400
        assert refused["error"] == {"code": "parse_error",
                                    "message": "nested deeper than 12 levels"}
        # the same depth inside a TYTX data string: refused after hydration, with its id
        typed = notify_params(deep_list(12, '"1.5::N"')) + "::JS"
        refused = wsx(ws, {"id": 3, "path": "/shop/notify", "data": typed})
        assert refused["id"] == 3 and refused["error"]["code"] == "parse_error"
        typed = notify_params(deep_list(11, '"1.5::N"')) + "::JS"
        assert wsx(ws, {"id": 4, "path": "/shop/notify", "data": typed})["status"] == 200
        assert recv_wsx(reader)["data"].endswith("::JS")
        # a typed query value is bounded the same way
        refused = wsx(ws, {"id": 5, "path": "/shop/notify", "data": {"channel": "deep"},
                           "query": {"value": deep_list(13, '"1::L"') + "::JS"}})
        assert refused["id"] == 5 and refused["error"]["code"] == "parse_error"
        # typed strings that hydrate into nested lists, no bracket in the text
        for where in ("data", "query"):
            chain = '"a' + "::QS" * 13 + '"'
            message: dict[str, Any] = {"id": 7, "path": "/shop/notify",
                                       "data": {"channel": "deep"}}
            if where == "data":
                message["data"] = '{"channel":"deep","value":' + chain + "}::JS"
            else:
                message["query"] = {"value": chain[1:-1]}
            refused = wsx(ws, message)
            assert refused["error"] == {"code": "parse_error",
                                        "message": "nested deeper than 12 levels"}, where
        assert wsx(ws, {"id": 6, "path": "/shop/hello"})["status"] == 200
    assert len(server.envelopes) == 0


def test_nesting_limit_default_and_jsonrpc(tmp_path: Any) -> None:
    """The default limit (128) refuses a value Python's decoder would still accept (about 990
    levels), so an answer or event can always be encoded again."""
    with serving(make(tmp_path)) as live, open_ws(live, "jsonrpc") as ws:
        request = '{"jsonrpc":"2.0","method":"shop.notify","params":{"channel":"c","value":%s},' \
                  '"id":1}'
        assert rpc(ws, request % deep_list(126))["result"] is True  # {} > {} > 126 lists
        for depth in (127, 950):
            answer = rpc(ws, request % deep_list(depth))
            assert answer["error"]["code"] == -32700 and answer["id"] is None
            assert answer["error"]["data"]["detail"] == "nested deeper than 128 levels"
        typed = request % deep_list(127, '"1.5::N"') + "::JS"
        assert rpc(ws, typed)["error"]["code"] == -32700
        assert rpc(ws, request % deep_list(126, '"1.5::N"') + "::JS")["result"] is True
        # the batch array is one more level
        assert rpc(ws, "[" + request % deep_list(125) + "]")[0]["result"] is True
        assert rpc(ws, "[" + request % deep_list(126) + "]")["error"]["code"] == -32700
        assert rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "id": 2})["id"] == 2


def test_too_many_malformed_frames_close_1002(tmp_path: Any) -> None:
    with serving(make(tmp_path, {"max_protocol_errors": 3})) as live, open_ws(live) as ws:
        ws.send("nope")
        ws.send("WSX://{}")  # a good frame resets the count
        for _ in range(3):
            ws.send("nope")
        assert close_code(ws) == 1002


def test_heartbeat_keeps_a_live_client_and_drops_a_silent_one(tmp_path: Any) -> None:
    server = make(tmp_path, {"heartbeat_interval": 0.05, "heartbeat_timeout": 0.2})
    with serving(server) as live:
        with open_ws(live) as ws:
            for _ in range(3):
                assert recv_wsx(ws) == {"type": "ping"}
                ws.send('WSX://{"type":"pong"}')
            assert wsx(ws, {"id": 1, "path": "/shop/hello"})["status"] == 200
        with open_ws(live, "jsonrpc") as ws:
            assert json.loads(ws.recv(timeout=TIMEOUT)) == {"jsonrpc": "2.0",
                                                            "method": "wsx.ping"}
            ws.send('{"jsonrpc":"2.0","method":"wsx.pong"}')
            assert json.loads(ws.recv(timeout=TIMEOUT))["method"] == "wsx.ping"
        with open_ws(live) as silent:
            assert close_code(silent) == 4002


def test_auth_deadline_closes_4001(tmp_path: Any) -> None:
    server = make(tmp_path, {"require_identity": True, "auth_deadline": 0.1})
    with serving(server) as live, open_ws(live) as ws:
        answer = wsx(ws, {"id": 1, "path": "/shop/hello"})
        assert answer["status"] == 401 and answer["error"]["code"] == "auth_required"
        assert close_code(ws) == 4001


def test_max_connections_and_draining_close_1013(tmp_path: Any) -> None:
    server = make(tmp_path, {"max_connections": 1})
    with serving(server) as live, open_ws(live) as first:
        with open_ws(live) as second:
            assert close_code(second) == 1013
        assert wsx(first, {"id": 1, "path": "/shop/hello"})["status"] == 200


async def test_shutdown_closes_1001_and_cancels_calls(tmp_path: Any) -> None:
    server = make(tmp_path)
    # the lifespan shutdown lets calls run for shutdown_timeout (test_wsx_shutdown.py), then
    # cancels them: the 30 s call outlives a short one
    server.settings.server.shutdown_timeout = 0.2
    shop = server.apps["shop"]
    client = AsyncTestClient(server)
    await client.__aenter__()
    try:
        async with client.websocket_connect("/_wsx") as ws:
            await ws.send_text('WSX://{"id":1,"path":"/shop/slow"}')
            while getattr(shop.state, "slow_started", 0) < 1:
                await asyncio.sleep(0.01)
            await asyncio.wait_for(client.shutdown(), TIMEOUT)
            with pytest.raises(WebSocketDisconnect) as closed:
                await asyncio.wait_for(ws.receive(), TIMEOUT)
            assert closed.value.code == 1001
        assert shop.state.slow_cancelled == 1
        assert len(server.plugins.get("wsx").connections) == 0
    finally:
        await client.__aexit__(None, None, None)


def test_uvicorn_shutdown_ends_every_connection(tmp_path: Any) -> None:
    server = make(tmp_path)
    shop = server.apps["shop"]
    live = LiveServer(server).start()
    try:
        with open_ws(live) as ws:
            ws.send('WSX://{"id":1,"path":"/shop/slow"}')
            wait_for(lambda: getattr(shop.state, "slow_started", 0) == 1)
            live.stop()
            # uvicorn closes open sockets itself (1012) before the lifespan shutdown (1001)
            assert close_code(ws) in (1001, 1012)
    finally:
        live.stop()
    assert shop.state.slow_cancelled == 1
    assert len(server.envelopes) == 0


def test_jsonrpc_message_too_big_closes_1009(tmp_path: Any) -> None:
    with serving(make(tmp_path, {"max_message_size": 1024})) as live, \
            open_ws(live, "jsonrpc") as ws:
        ws.send(b"\x00" * 2000)  # binary frames count too
        assert close_code(ws) == 1009
