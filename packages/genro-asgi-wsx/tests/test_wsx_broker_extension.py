"""The extension points of a network broker: ``Broker.bind(server)``, and ``publish()`` passing
the broker's HTTPException through (a 503 when its server is unreachable)."""

from __future__ import annotations

import sys
import types
import weakref
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, AsgiServer, ServiceUnavailable, route
from genro_asgi.testing import TestClient
from genro_asgi_wsx import MemoryBroker, publish


class UnavailableBroker(MemoryBroker):
    async def publish(self, channel: str, data: Any) -> None:
        raise ServiceUnavailable(detail="the broker's server is unreachable")


class BindingBroker(MemoryBroker):
    """Records the server it is bound to, and when, relative to start()."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.server_ref: Any = None

    def bind(self, server: AsgiServer) -> None:
        self.server_ref = weakref.ref(server)
        self.events.append("bind")

    async def start(self) -> None:
        self.events.append("start")


@pytest.fixture
def broker_module(monkeypatch: pytest.MonkeyPatch) -> str:
    module = types.ModuleType("bind_broker_mod")
    module.BindingBroker = BindingBroker  # type: ignore[attr-defined]
    module.UnavailableBroker = UnavailableBroker  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bind_broker_mod", module)
    return "bind_broker_mod:BindingBroker"


def test_bind_is_called_once_with_the_server_before_start(tmp_path: Path,
                                                          broker_module: str) -> None:
    servers = [AsgiServer(tmp_path, environ={}, config={"plugins": {"wsx": {
        "broker": broker_module, "heartbeat_interval": 0}}}) for _ in range(2)]
    brokers = [s.plugins.get("wsx").broker for s in servers]
    assert brokers[0] is not brokers[1]
    for server, broker in zip(servers, brokers, strict=True):
        assert isinstance(broker, BindingBroker)
        assert broker.events == ["bind"]
        assert broker.server_ref() is server  # each broker sees its own server only
    with TestClient(servers[0]):
        assert brokers[0].events == ["bind", "start"]
    assert brokers[1].events == ["bind"]


async def test_the_default_bind_does_nothing(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, environ={}, config={})
    broker = MemoryBroker()
    assert broker.bind(server) is None
    await broker.publish("a.b", 1)  # still a working broker


class Publisher(AsgiApplication):
    @route()
    async def notify(self) -> bool:
        await publish(self.server, "a.b", 1)
        return True


def test_publish_passes_a_broker_http_exception_through(tmp_path: Path,
                                                        broker_module: str) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {"wsx": {
        "broker": broker_module.replace("BindingBroker", "UnavailableBroker"),
        "heartbeat_interval": 0}}})
    server.mount("/pub", Publisher())
    with TestClient(server) as client:
        answer = client.post("/pub/notify")
    assert answer.status_code == 503  # not a 500 wrapped in a PluginError
    assert "unreachable" in answer.text


def test_since_on_a_broker_without_history_recovers_nothing(tmp_path: Path) -> None:
    """``subscribe`` with ``since`` (a client resuming): the memory broker keeps no history,
    so the answer says ``recovered: false`` and events carry no offset."""
    from genro_tytx import from_tytx
    from wsx_helpers import make, open_ws, recv_wsx, serving, wsx

    server = make(tmp_path)
    with serving(server) as live, open_ws(live) as ws:
        answer = wsx(ws, {"type": "subscribe", "id": 1, "channel": "a.b", "since": "x:1"})
        assert from_tytx(answer["data"]) == {"subscription": "s1", "channel": "a.b",
                                             "recovered": False}
        plain = wsx(ws, {"type": "subscribe", "id": 2, "channel": "a.c"})
        assert "recovered" not in from_tytx(plain["data"])
        bad = wsx(ws, {"type": "subscribe", "id": 3, "channel": "a.d", "since": 7})
        assert bad["status"] == 400 and bad["error"]["code"] == "invalid_request"
        frames = [wsx(ws, {"id": 4, "path": "/shop/notify",
                           "data": {"channel": "a.b", "value": 1}}), recv_wsx(ws)]
        event = next(f for f in frames if f.get("type") == "event")
        assert event["channel"] == "a.b" and "offset" not in event
