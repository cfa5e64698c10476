"""A burst of deliveries to a page that reads is never a slow-consumer close: the publisher
yields to the event loop when a page has a backlog, as WSX's broker does (real uvicorn)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spa_helpers import make_server
from websockets.sync.client import connect

from genro_asgi import AsgiApplication, route
from genro_asgi.testing import LiveServer
from genro_asgi_spa import spa_of

TIMEOUT = 10.0  # a guard against a hang, never an assertion about speed
BURST = 1500  # more than wsx's outbound_queue (1000 frames)


class Burst(AsgiApplication):
    @route()
    async def burst(self, page_id: str, count: int) -> int:
        spa = spa_of(self.server)
        for n in range(count):
            await spa.send("page", page_id, "n", {"n": n})
        return count


def test_a_burst_reaches_a_page_that_reads(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"allow_anonymous": True}, auth=False)
    server.mount("/b", Burst())
    with LiveServer(server) as live, connect(live.ws_url + "/_wsx",
                                             open_timeout=TIMEOUT) as ws:
        def send(msg_id: int, path: str, data: dict[str, Any]) -> None:
            ws.send("WSX://" + json.dumps({"id": msg_id, "path": path, "data": data}))

        send(1, "/_spa/register", {})
        info = json.loads(json.loads(str(ws.recv(timeout=TIMEOUT))[6:])["data"])
        send(2, "/b/burst", {"page_id": info["page_id"], "count": BURST})
        seen, answered = [], False
        while len(seen) < BURST or not answered:
            frame = json.loads(str(ws.recv(timeout=TIMEOUT))[6:])
            if frame.get("type") == "event":
                seen.append(json.loads(frame["data"])["data"]["n"])
            else:
                assert frame == {"id": 2, "status": 200, "data": str(BURST)}, frame
                answered = True
        assert seen == list(range(BURST))  # all of them, in order, and the socket is open
