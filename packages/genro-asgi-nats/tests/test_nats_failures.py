"""Bad input on our subjects, refused publications, NATS unreachable, NATS restarted."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats_helpers import TIMEOUT, event, make, notify, open_ws, raw_publish, recv, subscribe

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer, TestClient, free_port
from genro_asgi_nats import NatsBroker
from genro_asgi_nats.codec import encode
from genro_asgi_nats.testing import NatsServer

pytestmark = pytest.mark.e2e


def stats(live: LiveServer) -> Any:
    return live.server.config.app.plugins.get("nats").link.stats


def test_garbage_foreign_and_oversized_messages_are_dropped_and_logged(
        tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "genro_asgi_nats")
    server = make(tmp_path, nats_server.url, nats={"max_message_size": 2048})
    with LiveServer(server) as live, open_ws(live) as ws:
        sub = subscribe(ws, "in.>")
        big = encode("x:1", "y" * 4096)
        raw_publish(nats_server.url, [
            ("genro.wsx.in.a", b"hello from another app"),            # foreign
            ("genro.wsx.in.b", b"GX1 x:1 {not json"),                 # garbage
            ("genro.wsx.in.c", b"GX1 x:2 \xff\xfe"),                  # not UTF-8
            ("genro.wsx.in.d", b"GX1 " + b"x" * 200),                 # no id
            ("genro.wsx.in.e", b"GX1 x:3 " + b"[" * 500 + b"]" * 500),  # too deep
            ("genro.wsx.in.g", big),                                  # oversized
            ("genro.wsx.in.$bad", encode("x:5", 1)),                  # not a wsx channel
            ("genro.wsx.in.ok", encode("x:6", {"fine": True})),       # ours, well formed
        ])
        assert event(ws) == (sub, "in.ok", {"fine": True})
        counts = stats(live).dropped
        assert counts["foreign"] == 2 and counts["oversized"] == 1
        assert counts["garbage"] == 4
        # the server is alive and keeps delivering
        notify(live, "in.after", 1)
        assert event(ws) == (sub, "in.after", 1)
    logged = " ".join(r.getMessage() for r in caplog.records)
    for reason in ("foreign", "garbage", "oversized"):
        assert f"({reason}: " in logged


def test_a_publication_nats_cannot_carry_is_refused_to_its_publisher(
        tmp_path: Path, nats_server: NatsServer) -> None:
    server = make(tmp_path, nats_server.url, nats={"max_message_size": 2048})
    with LiveServer(server) as live, open_ws(live) as ws:
        sub = subscribe(ws, "big")
        answer = httpx.post(f"{live.url}/pub/checked", timeout=TIMEOUT,
                            json={"channel": "big", "value": "z" * 5000})
        assert answer.status_code == 400
        assert "max_message_size" in answer.text
        answer = httpx.post(f"{live.url}/pub/checked", timeout=TIMEOUT,
                            content=b'{"channel": "big", "value": "\\ud800"}',
                            headers={"Content-Type": "application/json"})
        assert answer.status_code == 400  # refused by the core (lone surrogate) first
        notify(live, "big", "small")
        assert event(ws) == (sub, "big", "small")  # nothing of the refused ones arrived


async def test_non_finite_and_unknown_values_raise_publish_error(
        tmp_path: Path, nats_server: NatsServer) -> None:
    from genro_asgi_wsx import PublishError

    server = make(tmp_path, nats_server.url)
    await server.plugins.call("genro_asgi_startup", server=server)
    try:
        broker = server.plugins.get("wsx").broker
        assert isinstance(broker, NatsBroker)
        for bad in (float("nan"), {"o": object()}, "\ud800"):
            with pytest.raises(PublishError, match="cannot be encoded"):
                await broker.publish("x", bad)
        assert broker.link.stats.messages_out == 0
    finally:
        await server.plugins.call("genro_asgi_shutdown", server=server, reverse=True)


def test_nats_unreachable_at_startup_names_the_option(tmp_path: Path) -> None:
    port = free_port()
    server = make(tmp_path, f"nats://127.0.0.1:{port}", nats={"connect_timeout": 1})
    with pytest.raises(RuntimeError) as info, TestClient(server):
        pass
    text = str(info.value)
    assert "plugins.nats.servers" in text and f"127.0.0.1:{port}" in text
    assert "required: false" in text


def test_degraded_start_serves_locally_then_joins_nats(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "genro_asgi_nats")
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    degraded = make(tmp_path, url, name="a", nats={"required": False})
    with LiveServer(degraded) as a, open_ws(a) as on_a:
        link = a.server.config.app.plugins.get("nats").link
        assert link.state == "degraded"
        assert any("RUNNING DEGRADED" in r.getMessage() for r in caplog.records)
        sub_a = subscribe(on_a, "news.*")
        notify(a, "news.1", "local")  # no NATS: this process still serves its own clients
        assert event(on_a) == (sub_a, "news.1", "local")
        with NatsServer(port=port) as nats_server:
            deadline = time.monotonic() + TIMEOUT
            while link.state != "connected" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert link.state == "connected"
            with LiveServer(make(tmp_path, nats_server.url, name="b")) as b:
                notify(b, "news.2", "from b")  # a's subscription was made on NATS when it came
                assert event(on_a) == (sub_a, "news.2", "from b")


def test_nats_down_long_enough_is_a_503_then_publishing_resumes(
        tmp_path: Path, nats_server: NatsServer) -> None:
    server = make(tmp_path, nats_server.url, nats={"pending_size": 64 * 1024})
    value = "v" * 16 * 1024
    with LiveServer(server) as live, httpx.Client(timeout=TIMEOUT) as http:
        assert http.post(f"{live.url}/pub/notify", json={"channel": "c", "value": 1}
                         ).status_code == 200
        nats_server.stop()
        statuses = []
        for _ in range(10):  # 10 x 16 KiB cannot fit a 64 KiB buffer
            answer = http.post(f"{live.url}/pub/notify", json={"channel": "c", "value": value})
            statuses.append(answer.status_code)
            if answer.status_code != 200:
                break
        assert statuses[-1] == 503 and set(statuses[:-1]) <= {200}
        assert answer.headers["retry-after"] == "1"
        assert "NATS is unreachable" in answer.text
        nats_server.start()
        with open_ws(live) as ws:
            sub = subscribe(ws, "c")  # subscribing waits for the reconnection (bounded)
            deadline = time.monotonic() + TIMEOUT
            while http.post(f"{live.url}/pub/notify", json={"channel": "c", "value": 2}
                            ).status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            frames = [event(ws)]
            while frames[-1][2] != 2:
                frames.append(event(ws))
            assert frames[-1] == (sub, "c", 2)


def test_the_broker_needs_the_nats_plugin(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {
        "wsx": {"broker": "genro_asgi_nats:NatsBroker"}}})
    with pytest.raises(RuntimeError, match="needs the nats plugin"), TestClient(server):
        pass


def test_nats_restarted_mid_traffic(tmp_path: Path, nats_server: NatsServer) -> None:
    """Publishers keep going while nats-server restarts: both processes reconnect, delivery
    resumes, and what arrives arrives once and in order (core NATS is at-most-once: what
    was published while a subscriber was away may be missing, never duplicated)."""
    with LiveServer(make(tmp_path, nats_server.url, name="a")) as a, \
            LiveServer(make(tmp_path, nats_server.url, name="b")) as b, open_ws(b) as on_b:
        sub = subscribe(on_b, "tick")
        stop = threading.Event()
        sent: list[int] = []
        errors: list[str] = []

        def publisher() -> None:
            with httpx.Client(timeout=TIMEOUT) as http:
                n = 0
                while not stop.is_set():
                    answer = http.post(f"{a.url}/pub/notify", json={"channel": "tick",
                                                                    "value": n})
                    if answer.status_code == 200:
                        sent.append(n)
                    else:
                        errors.append(answer.text)
                    n += 1
                    time.sleep(0.005)

        thread = threading.Thread(target=publisher, daemon=True)
        thread.start()
        try:
            assert event(on_b)[0] == sub  # traffic flows
            nats_server.restart()
            restarted = time.monotonic()
            published_before = sent[-1]
            received: list[int] = []
            # delivery resumes: wait (bounded by recv's timeout) for a tick published after
            while not received or received[-1] <= published_before:
                received.append(event_value(recv(on_b)))
            resumed_after = time.monotonic() - restarted
        finally:
            stop.set()
            thread.join(TIMEOUT)
        assert received == sorted(set(received))  # once each, in order
        assert errors == []  # publishers never saw an error: the client buffered
        links = [live.server.config.app.plugins.get("nats").link for live in (a, b)]
        # the client calls its reconnected callback in a task of its own: it may come a
        # moment after the first messages flow again
        deadline = time.monotonic() + TIMEOUT
        while not all(link.state == "connected" and link.stats.reconnects >= 1
                      for link in links) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(link.state == "connected" and link.stats.reconnects >= 1 for link in links)
        print(f"delivery resumed {resumed_after:.2f}s after the restart")


def event_value(frame: dict[str, Any]) -> int:
    from genro_tytx import from_tytx

    assert frame["type"] == "event", frame
    return int(from_tytx(frame["data"]))
