"""Subscriptions, wildcards, fan-out, the publish and authorize hooks, executor task events."""

from __future__ import annotations

import datetime
import json
import time
from contextlib import ExitStack
from decimal import Decimal
from typing import Any

import pytest
from genro_tytx import from_tytx, to_tytx
from wsx_helpers import TIMEOUT, make, open_ws, recv_wsx, rpc, serving, wsx

from genro_asgi import AsgiApplication, Plugin, hookimpl, hookspec, route

pytestmark = pytest.mark.e2e


class ExecutorSpecs:
    @hookspec
    def genro_asgi_executor_task_event(self, server: Any, event: dict[str, Any]) -> None:
        """The executor's hook, as genro-asgi-executor declares it."""


class FakeExecutor(Plugin):
    """Announces task events exactly as the executor does, without importing wsx."""

    hookspecs = ExecutorSpecs

    @hookimpl
    def genro_asgi_mount(self) -> dict[str, Any]:
        return {"/jobs": Jobs()}


class Jobs(AsgiApplication):
    @route()
    async def progress(self, task_id: str, progress: float) -> bool:
        event = {"task_id": task_id, "name": "export", "pool": "default", "state": "running",
                 "progress": progress, "message": None, "at": 1.0, "kind": "progress"}
        await self.server.plugins.call("genro_asgi_executor_task_event", strict=False,
                                       server=self.server, event=event)
        return True


class Gatekeeper(Plugin):
    """Refuses ``vault.*`` unless the identity... there is none here, so always."""

    @hookimpl
    async def genro_asgi_wsx_authorize_channel(self, channel: str) -> bool | None:
        if channel.startswith("broken"):
            raise RuntimeError("authorizer bug")
        return False if channel.startswith("vault") else None


def subscribe(ws: Any, channel: str, msg_id: Any = "sub") -> str:
    answer = wsx(ws, {"id": msg_id, "type": "subscribe", "channel": channel})
    assert answer["status"] == 200, answer
    data = json.loads(answer["data"])
    assert data["channel"] == channel
    return data["subscription"]  # type: ignore[no-any-return]


def publish_via_call(ws: Any, channel: str, value: Any) -> None:
    answer = wsx(ws, {"id": "pub", "path": "/shop/notify",
                      "data": to_tytx({"channel": channel, "value": value})})
    assert answer["status"] == 200, answer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = make(tmp_path_factory.mktemp("pubsub"), {"channel_auth": {"staff.>": "admin"}},
                  plugins={"executor_stub": {"module": f"{__name__}:FakeExecutor"},
                           "gate": {"module": f"{__name__}:Gatekeeper"}})
    with serving(server) as live:
        live.app_server = server
        yield live


def test_exact_and_wildcard_subscriptions(live: Any) -> None:
    with open_ws(live) as ws, open_ws(live) as publisher:
        star = subscribe(ws, "orders.*", 1)
        rest = subscribe(ws, "orders.>", 2)
        exact = subscribe(ws, "orders.42", 3)
        publish_via_call(publisher, "orders.42", {"qty": 3})
        events = [recv_wsx(ws) for _ in range(3)]
        assert {e["subscription"] for e in events} == {star, rest, exact}
        assert all(e["type"] == "event" and e["channel"] == "orders.42" for e in events)
        assert all(json.loads(e["data"]) == {"qty": 3} for e in events)
        publish_via_call(publisher, "orders.42.lines", 1)
        deeper = recv_wsx(ws)
        assert deeper["subscription"] == rest and deeper["channel"] == "orders.42.lines"
        publish_via_call(publisher, "invoices.1", 1)  # matches nothing here
        assert wsx(ws, {"id": "probe", "path": "/shop/hello"})["id"] == "probe"


def test_typed_event_data(live: Any) -> None:
    with open_ws(live) as ws:
        subscribe(ws, "prices.eur")
        wsx_answer = wsx(ws, {"id": 1, "path": "/shop/notify", "data":
                              '{"channel":"prices.eur","value":{"p":"100.50::N",'
                              '"d":"2025-01-15::D"}}::JS'})
        frames = [wsx_answer, recv_wsx(ws)]
        event = next(f for f in frames if f.get("type") == "event")
        assert from_tytx(event["data"]) == {"p": Decimal("100.50"),
                                            "d": datetime.date(2025, 1, 15)}


def test_unsubscribe_stops_events_and_disconnect_cleans_up(live: Any) -> None:
    plugin = live.app_server.plugins.get("wsx")
    broker = plugin.broker
    deadline = time.monotonic() + TIMEOUT
    while plugin.connections:  # an earlier test's socket may still be closing on the server
        assert time.monotonic() < deadline, "connections left open"
        time.sleep(0.01)
    before = broker.subscription_count
    with open_ws(live) as ws:
        sid = subscribe(ws, "news.today")
        assert broker.subscription_count == before + 1
        answer = wsx(ws, {"id": 2, "type": "unsubscribe", "subscription": sid})
        assert json.loads(answer["data"]) == {"subscription": sid}
        publish_via_call(ws, "news.today", "x")  # the answer comes, no event before it
        subscribe(ws, "news.tomorrow")
    deadline = time.monotonic() + TIMEOUT
    while broker.subscription_count != before:
        assert time.monotonic() < deadline, "subscriptions left behind"
        time.sleep(0.01)


def test_fan_out_to_many_connections(live: Any) -> None:
    with ExitStack() as stack:
        sockets = [stack.enter_context(open_ws(live)) for _ in range(5)]
        publisher = stack.enter_context(open_ws(live))
        for ws in sockets:
            subscribe(ws, "room.1")
        publish_via_call(publisher, "room.1", "hi")
        for ws in sockets:
            event = recv_wsx(ws)
            assert event["type"] == "event" and json.loads(event["data"]) == "hi"


def test_jsonrpc_subscriptions_and_typed_pushes(live: Any) -> None:
    with open_ws(live, "jsonrpc", path="/_wsx?tytx=json") as ws, open_ws(live) as publisher:
        sid = rpc(ws, {"jsonrpc": "2.0", "method": "wsx.subscribe",
                       "params": {"channel": "ticks.*"}, "id": 1})["result"]
        assert isinstance(sid, str)
        publish_via_call(publisher, "ticks.eur", {"p": Decimal("1.25")})
        frame = ws.recv(timeout=TIMEOUT)
        assert frame.endswith("::JS")
        push = from_tytx(frame)
        assert push["method"] == "wsx.event" and "id" not in push
        assert push["params"] == {"subscription": sid, "channel": "ticks.eur",
                                  "data": {"p": Decimal("1.25")}}
        assert rpc(ws, {"jsonrpc": "2.0", "method": "wsx.unsubscribe", "params": [sid],
                        "id": 2})["result"] is True
        again = rpc(ws, {"jsonrpc": "2.0", "method": "wsx.unsubscribe", "params": [sid],
                         "id": 3})
        assert again["error"]["code"] == -32006


def test_jsonrpc_plain_pushes_without_tytx(live: Any) -> None:
    with open_ws(live, "jsonrpc") as ws, open_ws(live) as publisher:
        sid = rpc(ws, {"jsonrpc": "2.0", "method": "wsx.subscribe", "params": ["t.1"],
                       "id": 1})["result"]
        publish_via_call(publisher, "t.1", {"p": Decimal("1.25")})
        push = json.loads(ws.recv(timeout=TIMEOUT))
        assert push["params"] == {"subscription": sid, "channel": "t.1", "data": {"p": "1.25"}}
        bad = rpc(ws, {"jsonrpc": "2.0", "method": "wsx.subscribe", "params": ["a b"], "id": 2})
        assert bad["error"]["code"] == -32005


def test_jsonrpc_typed_request_frame_is_answered_typed(live: Any) -> None:
    with open_ws(live, "jsonrpc") as ws:
        ws.send('{"jsonrpc":"2.0","method":"shop.quote","params":{"qty":2,"price":"2.50::N",'
                '"day":"2025-01-02::D"},"id":1}::JS')
        frame = ws.recv(timeout=TIMEOUT)
        assert frame.endswith("::JS")
        assert from_tytx(frame)["result"]["total"] == Decimal("5.00")
        ws.send('{"jsonrpc":"2.0","method":"shop.quote","params":{"price":"x::N"},"id":1}::JS')
        assert json.loads(ws.recv(timeout=TIMEOUT))["error"]["code"] == -32700


def test_executor_task_events_reach_tasks_channel(live: Any) -> None:
    with open_ws(live) as ws:
        sid = subscribe(ws, "tasks.T1")
        answer = wsx(ws, {"id": 1, "path": "/jobs/progress",
                          "data": {"task_id": "T1", "progress": 0.5}})
        frames = [answer, recv_wsx(ws)]
        event = next(f for f in frames if f.get("type") == "event")
        assert event["subscription"] == sid and event["channel"] == "tasks.T1"
        data = json.loads(event["data"])
        assert data["task_id"] == "T1" and data["progress"] == 0.5 and data["state"] == "running"


def test_authorize_hook_and_channel_rules(live: Any) -> None:
    with open_ws(live) as ws:
        refused = wsx(ws, {"id": 1, "type": "subscribe", "channel": "vault.gold"})
        assert refused["status"] == 403 and refused["error"]["code"] == "forbidden"
        staff = wsx(ws, {"id": 2, "type": "subscribe", "channel": "staff.*"})
        assert staff["status"] == 401 and staff["error"]["code"] == "unauthenticated"
        everything = wsx(ws, {"id": 3, "type": "subscribe", "channel": ">"})
        assert everything["status"] == 401  # '>' overlaps the staff rule
        assert wsx(ws, {"id": 4, "type": "subscribe", "channel": "public.*"})["status"] == 200
        # an authorizer that raises refuses (fails closed) and leaks nothing of its error
        broken = wsx(ws, {"id": 5, "type": "subscribe", "channel": "broken.x"})
        assert broken["status"] == 403 and broken["error"]["code"] == "forbidden"
        assert "authorizer bug" not in json.dumps(broken)
        assert wsx(ws, {"id": 6, "type": "ping"}).get("type") == "pong"


async def test_publish_hook_is_a_no_op_without_wsx(tmp_path: Any) -> None:
    from genro_asgi import AsgiServer
    from genro_asgi_wsx import publish

    server = AsgiServer(tmp_path, config={}, environ={})
    await publish(server, "any.channel", {"x": 1})  # nothing implements it: nothing happens


async def test_plugin_publish_rejects_bad_channels(tmp_path: Any) -> None:
    server = make(tmp_path)
    with pytest.raises(ValueError, match="wildcards"):
        await server.plugins.get("wsx").publish("orders.*", 1)


def test_a_broker_named_in_config_carries_the_publications(tmp_path: Any) -> None:
    server = make(tmp_path, {"broker": "wsx_helpers:RecordingBroker",
                             "broker_options": {"label": "test"}})
    broker = server.plugins.get("wsx").broker
    with serving(server) as live, open_ws(live) as ws:
        subscribe(ws, "orders.*", 1)
        ws.send("WSX://" + json.dumps({"id": 2, "path": "/shop/notify",
                                       "data": {"channel": "orders.7", "value": 42}}))
        frames = [recv_wsx(ws), recv_wsx(ws)]  # the event may come before the answer
        (event,) = [f for f in frames if f.get("type") == "event"]
        (answer,) = [f for f in frames if f.get("id") == 2]
        assert answer["status"] == 200
        assert event["channel"] == "orders.7" and event["data"] == "42"
    assert broker.log == ["start", ("orders.7", 42), "close"]
