"""Channel history and recovery (JetStream): a client that reconnects, to any process, with
the offset of the last event it saw gets what it missed, or is told the gap is too old."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from genro_tytx import from_tytx
from nats_helpers import make, notify, open_ws, recv

from genro_asgi import PluginError
from genro_asgi.testing import LiveServer
from genro_asgi_nats.testing import NatsServer

pytestmark = pytest.mark.e2e
HISTORY = {"history": {"chat.>": {"size": 5, "ttl": 60}}}


@pytest.fixture
def pair(tmp_path: Path, nats_server: NatsServer) -> Iterator[tuple[LiveServer, LiveServer]]:
    wsx = {"broker_options": HISTORY}
    with LiveServer(make(tmp_path, nats_server.url, name="a", wsx=wsx)) as a, \
            LiveServer(make(tmp_path, nats_server.url, name="b", wsx=wsx)) as b:
        yield a, b


def subscribe(ws: Any, channel: str, since: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "subscribe", "id": 1, "channel": channel}
    if since is not None:
        message["since"] = since
    ws.send("WSX://" + json.dumps(message))
    answer = recv(ws)
    return answer


def data_of(answer: dict[str, Any]) -> Any:
    assert answer["status"] == 200, answer
    return from_tytx(answer["data"])


def events(ws: Any, count: int) -> list[tuple[str | None, Any]]:
    got = []
    for _ in range(count):
        frame = recv(ws)
        assert frame["type"] == "event", frame
        got.append((frame.get("offset"), from_tytx(frame["data"])))
    return got


def test_reconnect_to_another_process_and_recover(pair: tuple[LiveServer, LiveServer]) -> None:
    a, b = pair
    with open_ws(b) as ws:
        assert "recovered" not in data_of(subscribe(ws, "chat.room1"))
        for n in (1, 2, 3):
            notify(a, "chat.room1", n)
        seen = events(ws, 3)
        assert [value for _, value in seen] == [1, 2, 3]
        assert all(offset for offset, _ in seen)  # history channels carry offsets
        last = seen[-1][0]
    for n in (4, 5):  # missed while away
        notify(a, "chat.room1", n)
    with open_ws(a) as ws:  # back, on the other process
        answer = data_of(subscribe(ws, "chat.room1", since=last))
        assert answer["recovered"] is True
        notify(b, "chat.room1", 6)  # live, after the recovered ones
        got = events(ws, 3)
        assert [value for _, value in got] == [4, 5, 6]
        assert len({offset for offset, _ in got}) == 3


def test_a_gap_too_old_or_unknown_is_said(pair: tuple[LiveServer, LiveServer]) -> None:
    a, b = pair
    with open_ws(b) as ws:
        data_of(subscribe(ws, "chat.room2"))
        notify(a, "chat.room2", 0)
        first = events(ws, 1)[0][0]
    for n in range(1, 8):  # size 5: the event after `first` is gone
        notify(a, "chat.room2", n)
    with open_ws(a) as ws:
        assert data_of(subscribe(ws, "chat.room2", since=first))["recovered"] is False
        notify(a, "chat.room2", "live")
        assert events(ws, 1)[0][1] == "live"  # nothing recovered, live goes on
    with open_ws(a) as ws:
        assert data_of(subscribe(ws, "chat.room2", since="nobody:1"))["recovered"] is False
        assert data_of(subscribe(ws, "news", since=first))["recovered"] is False  # no history
        notify(a, "news", 1)
        offset, value = events(ws, 1)[0]
        assert value == 1 and offset is None  # outside history: no offset


def test_nothing_missed_is_recovered_true_and_empty(pair: tuple[LiveServer, LiveServer]) -> None:
    a, _ = pair
    with open_ws(a) as ws:
        data_of(subscribe(ws, "chat.room3"))
        notify(a, "chat.room3", "x")
        last = events(ws, 1)[0][0]
    with open_ws(a) as ws:
        assert data_of(subscribe(ws, "chat.room3", since=last))["recovered"] is True
        notify(a, "chat.room3", "y")
        assert [v for _, v in events(ws, 1)] == ["y"]


def test_bad_since_is_an_invalid_request(pair: tuple[LiveServer, LiveServer]) -> None:
    a, _ = pair
    with open_ws(a) as ws:
        for since in (42, "", "x" * 129):
            answer = subscribe(ws, "chat.x", since=since)
            assert answer["status"] == 400 and answer["error"]["code"] == "invalid_request"


def test_json_rpc_subscribe_with_since(pair: tuple[LiveServer, LiveServer]) -> None:
    from websockets.sync.client import connect

    a, b = pair
    url = a.ws_url + "/_wsx"
    with connect(url, subprotocols=["jsonrpc"], open_timeout=15) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "wsx.subscribe",
                            "params": {"channel": "chat.rpc"}}))
        assert json.loads(ws.recv(timeout=15))["result"] == "s1"
        notify(b, "chat.rpc", 1)
        event = json.loads(ws.recv(timeout=15))
        assert event["method"] == "wsx.event" and event["params"]["data"] == 1
        last = event["params"]["offset"]
    notify(b, "chat.rpc", 2)
    with connect(url, subprotocols=["jsonrpc"], open_timeout=15) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "wsx.subscribe",
                            "params": {"channel": "chat.rpc", "since": last}}))
        assert json.loads(ws.recv(timeout=15))["result"] == {"subscription": "s1",
                                                             "recovered": True}
        assert json.loads(ws.recv(timeout=15))["params"]["data"] == 2


@pytest.mark.parametrize(("history", "message"), [
    ({"chat.>": {"size": 5, "ttl": 60}, "chat.room.*": {"size": 1, "ttl": 1}}, "overlaps"),
    ({"chat.>": {"size": 0, "ttl": 60}}, "size"),
    ({"chat..x": {"size": 1, "ttl": 60}}, "history"),
])
def test_bad_history_options(tmp_path: Path, history: dict[str, Any], message: str) -> None:
    with pytest.raises((PluginError, Exception), match=message):
        make(tmp_path, "nats://127.0.0.1:1", wsx={"broker_options": {"history": history}})
