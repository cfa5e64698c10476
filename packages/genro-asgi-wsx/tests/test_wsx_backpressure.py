"""Backpressure over a real uvicorn: byte and frame budgets, shared payloads, fair delivery.

A client that reads keeps every event of a burst; one that does not read is closed with 4000
once its backlog passes ``max_queued_bytes`` or ``outbound_queue``, and the server's memory is
bounded by those budgets, not by how much was published.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from raw_ws import RawWs
from websockets.sync.client import ClientConnection
from wsx_flood import make_flood_server, vm_kib
from wsx_helpers import TIMEOUT, make, open_ws, recv_wsx, rpc, serving, wsx

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent


def read_events(ws: ClientConnection, count: int, protocol: str = "wsx") -> list[int]:
    """The ``n`` of the next ``count`` events (answers and pings in between are skipped)."""
    seen: list[int] = []
    while len(seen) < count:
        frame = ws.recv(timeout=TIMEOUT)
        assert isinstance(frame, str)
        if protocol == "wsx":
            message = json.loads(frame[6:])
            if message.get("type") == "event":
                seen.append(json.loads(message["data"])["n"])
        else:
            message = json.loads(frame)
            if message.get("method") == "wsx.event":
                seen.append(message["params"]["data"]["n"])
    return seen


@pytest.mark.parametrize("protocol", ["wsx", "jsonrpc"])
def test_a_reading_subscriber_gets_a_whole_burst(tmp_path: Any, protocol: str) -> None:
    """1,500 events published in one loop (more than ``outbound_queue``): ``publish`` lets the
    subscriber's writer run, so a client that reads gets them all and stays connected."""
    with serving(make(tmp_path)) as live, open_ws(live, protocol) as reader, \
            open_ws(live) as publisher:
        if protocol == "wsx":
            assert wsx(reader, {"id": 1, "type": "subscribe", "channel": "burst"})["status"] == 200
        else:
            subscribed = rpc(reader, {"jsonrpc": "2.0", "method": "wsx.subscribe",
                                      "params": ["burst"], "id": 1})
            assert subscribed["result"] == "s1"
        publisher.send('WSX://{"id":2,"path":"/shop/flood",'
                       '"data":{"channel":"burst","count":1500}}')
        assert read_events(reader, 1500, protocol) == list(range(1500))
        assert recv_wsx(publisher) == {"id": 2, "status": 200, "data": "1500"}
        if protocol == "wsx":
            assert wsx(reader, {"id": 3, "type": "ping"}) == {"type": "pong", "id": 3}
        else:
            assert rpc(reader, {"jsonrpc": "2.0", "method": "wsx.ping", "id": 3})[
                "result"] == "pong"


def test_the_frame_budget_closes_a_client_that_does_not_read(tmp_path: Any) -> None:
    """``outbound_queue`` frames waiting while the client reads nothing: 4000, and the
    publisher and a reading subscriber carry on."""
    # close_timeout: the close frame waits for the stalled client to read it, after the flood
    server = make_flood_server(tmp_path, {"outbound_queue": 5, "close_timeout": 60})
    with serving(server) as live, open_ws(live) as reader, open_ws(live) as publisher:
        stalled = RawWs(live.host, live.port)
        try:
            assert stalled.wsx({"id": 1, "type": "subscribe", "channel": "big"})["status"] == 200
            assert wsx(reader, {"id": 1, "type": "subscribe", "channel": "big"})["status"] == 200
            # 32 KiB events in batches of 4 the reader reads before the next: the stalled
            # client's kernel buffers fill first, then its 5 queued frames
            for batch in range(100):
                publisher.send("WSX://" + json.dumps({
                    "id": batch, "path": "/flood/big",
                    "data": {"channel": "big", "count": 4, "size": 32768, "start": batch * 4}}))
                assert read_events(reader, 4) == list(range(batch * 4, batch * 4 + 4))
                assert recv_wsx(publisher)["status"] == 200
            code, _ = stalled.read_until_closed()
            assert code == 4000
        finally:
            stalled.close()
        assert wsx(reader, {"id": 2, "type": "ping"}) == {"type": "pong", "id": 2}
    assert server.plugins.get("wsx").broker.subscription_count == 0


def test_the_byte_budget_closes_a_client_that_does_not_read(tmp_path: Any) -> None:
    """Far fewer frames than ``outbound_queue``, but more bytes than ``max_queued_bytes``:
    4000. Every connection's backlog stays within its byte budget plus one frame."""
    budget = 256 * 1024
    server = make_flood_server(tmp_path, {"max_queued_bytes": budget, "close_timeout": 60})
    plugin = server.plugins.get("wsx")
    peak = [0]
    watching = threading.Event()

    def watch() -> None:  # samples the backlog of every connection while the flood runs
        while not watching.wait(0.001):
            for conn in list(plugin.connections):
                peak[0] = max(peak[0], conn.queued_bytes)

    with serving(server) as live, open_ws(live) as reader, open_ws(live) as publisher:
        stalled = RawWs(live.host, live.port)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            assert stalled.wsx({"id": 1, "type": "subscribe", "channel": "big"})["status"] == 200
            assert wsx(reader, {"id": 1, "type": "subscribe", "channel": "big"})["status"] == 200
            for batch in range(75):  # 300 events of 32 KiB: about 10 MB, 300 frames
                publisher.send("WSX://" + json.dumps({
                    "id": batch, "path": "/flood/big",
                    "data": {"channel": "big", "count": 4, "size": 32768, "start": batch * 4}}))
                assert read_events(reader, 4) == list(range(batch * 4, batch * 4 + 4))
                assert recv_wsx(publisher)["status"] == 200
            code, frames = stalled.read_until_closed()
            assert code == 4000 and frames < 300
        finally:
            watching.set()
            watcher.join(TIMEOUT)
            stalled.close()
        assert wsx(reader, {"id": 2, "type": "ping"}) == {"type": "pong", "id": 2}
    assert peak[0] <= budget + 33 * 1024  # sampled: the budget, or one frame into an empty queue


def test_slow_consumers_leave_server_memory_bounded(tmp_path: Any) -> None:
    """Six clients that never read and 1,200 events of 40 KB (48 MB each) with one reader:
    the server's peak RSS grows by a few budgets (one payload is shared by every subscriber),
    not by the published volume (it was 1,000 frames per connection, each its own copy)."""
    process = subprocess.Popen([sys.executable, str(HERE / "wsx_flood.py"), str(tmp_path)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               cwd=HERE)
    stalled: list[RawWs] = []
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        assert ready[:1] == ["ready"], ready
        port = int(ready[1])
        url = f"ws://127.0.0.1:{port}/_wsx"
        from websockets.sync.client import connect

        with connect(url, subprotocols=["wsx"], open_timeout=TIMEOUT,  # type: ignore[list-item]
                     compression=None, max_size=None) as reader, \
                connect(url, subprotocols=["wsx"],  # type: ignore[list-item]
                        open_timeout=TIMEOUT) as publisher:
            for _ in range(6):
                client = RawWs("127.0.0.1", port)
                stalled.append(client)
                assert client.wsx({"id": 1, "type": "subscribe", "channel": "big"})[
                    "status"] == 200
            assert wsx(reader, {"id": 1, "type": "subscribe", "channel": "big"})["status"] == 200
            assert wsx(publisher, {"id": 0, "path": "/shop/hello"})["status"] == 200
            before = vm_kib(process.pid, "VmHWM")
            for batch in range(24):  # batches the reader reads before asking for the next
                publisher.send("WSX://" + json.dumps({
                    "id": batch, "path": "/flood/big",
                    "data": {"channel": "big", "count": 50, "size": 40000, "start": batch * 50}}))
                assert read_events(reader, 50) == list(range(batch * 50, batch * 50 + 50))
                assert recv_wsx(publisher)["status"] == 200
            grown_mib = (vm_kib(process.pid, "VmHWM") - before) / 1024
        for client in stalled:
            code, frames = client.read_until_closed()
            assert code in (4000, None) and frames < 1200  # closed (after close_timeout, the
            # socket may end without the close frame it could not take)
        print(f"peak RSS grew by {grown_mib:.1f} MiB")
        assert grown_mib < 40, f"peak RSS grew by {grown_mib:.1f} MiB"
    finally:
        for client in stalled:
            client.close()
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()



def test_a_client_that_does_not_read_its_close_frame_is_dropped(tmp_path: Any) -> None:
    """After 4000 the close frame waits for a client that never reads: ``close_timeout``
    bounds the wait, then the connection is gone from the server (it waited forever)."""
    server = make_flood_server(tmp_path, {"max_queued_bytes": 64 * 1024, "close_timeout": 0.5})
    plugin = server.plugins.get("wsx")
    with serving(server) as live, open_ws(live) as publisher:
        stalled = RawWs(live.host, live.port)
        try:
            assert stalled.wsx({"id": 1, "type": "subscribe", "channel": "big"})["status"] == 200
            assert len(plugin.connections) == 2
            # far more than the socket buffers and the budget take: the close comes first
            for batch in range(40):
                assert wsx(publisher, {"id": batch, "path": "/flood/big", "data": {
                    "channel": "big", "count": 8, "size": 32768}})["status"] == 200
                if len(plugin.connections) == 1:
                    break
            deadline = time.monotonic() + TIMEOUT
            while len(plugin.connections) != 1:  # only the publisher is left
                assert time.monotonic() < deadline, "the stalled connection was never dropped"
                time.sleep(0.01)
            assert plugin.broker.subscription_count == 0
        finally:
            stalled.close()
