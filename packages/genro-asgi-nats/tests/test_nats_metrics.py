"""NATS metrics through the metrics plugin's collectors hook, scraped from a real server."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx
import pytest
from nats_helpers import TIMEOUT, event, notify, open_ws, raw_publish, subscribe
from remote_helpers import Jobs, app_dir, call

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer
from genro_asgi_nats.testing import NatsServer

pytestmark = pytest.mark.e2e


def value(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def scrape(live: LiveServer) -> str:
    return httpx.get(f"{live.url}/metrics", timeout=TIMEOUT).text


def eventually(live: LiveServer, name: str, expected: float) -> str:
    deadline = time.monotonic() + TIMEOUT
    while True:
        text = scrape(live)
        if value(text, name) == expected or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_connection_traffic_drops_and_remote_pools(tmp_path: Path,
                                                   nats_server: NatsServer) -> None:
    directory = app_dir(tmp_path, "app", nats_server.url)
    config = directory / "config.yaml"
    config.write_text(config.read_text() + "  metrics: {}\n"
                      "  wsx: {broker: 'genro_asgi_nats:NatsBroker', heartbeat_interval: 0}\n")
    sys.path.insert(0, str(directory))
    server = AsgiServer(directory, environ={})
    server.mount("/jobs", Jobs())
    from nats_helpers import Pub
    server.mount("/pub", Pub())
    with LiveServer(server) as live, open_ws(live) as ws:
        text = scrape(live)
        assert value(text, "nats_connected") == 1.0
        assert value(text, 'nats_connection_state{state="connected"}') == 1.0
        sub = subscribe(ws, "m.>")
        notify(live, "m.1", 1)
        assert event(ws) == (sub, "m.1", 1)
        raw_publish(nats_server.url, [("rt.wsx.m.x", b"junk"), ("rt.wsx.m.y", b"GX1 a:1 {")])
        text = eventually(live, 'nats_dropped_messages_total{reason="garbage"}', 1.0)
        assert value(text, 'nats_messages_total{direction="out"}') == 1.0
        assert value(text, 'nats_messages_total{direction="in"}') == 3.0
        assert value(text, 'nats_dropped_messages_total{reason="foreign"}') == 1.0
        assert value(text, 'nats_dropped_messages_total{reason="garbage"}') == 1.0

        call(live, "submit", job="add", args=[1, 2])  # no worker: it waits in the queue
        text = eventually(live, 'nats_remote_jobs_submitted_total{pool="gpu"}', 1.0)
        assert value(text, 'nats_remote_jobs_submitted_total{pool="gpu"}') == 1.0
        assert value(text, 'nats_remote_redeliveries_total{pool="gpu"}') == 0.0
        assert value(text, 'executor_pool_pending{pool="gpu"}') == 1.0

        nats_server.stop()
        text = eventually(live, "nats_connected", 0.0)
        assert value(text, "nats_connected") == 0.0
        assert value(text, "nats_disconnects_total") == 1.0
        nats_server.start()
        text = eventually(live, "nats_reconnects_total", 1.0)
        assert value(text, "nats_reconnects_total") == 1.0
        assert value(text, "nats_connected") == 1.0
        text = eventually(live, 'nats_remote_queue_jobs{pool="gpu",state="waiting"}', 1.0)
        assert value(text, 'nats_remote_queue_jobs{pool="gpu",state="waiting"}') == 1.0
