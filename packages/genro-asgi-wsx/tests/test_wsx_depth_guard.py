"""The per-frame depth check is skipped for frames of at most ``2 * max_depth`` characters (no
plain JSON that short nests deeper): the shortest frames one level too deep are still refused,
and the deepest allowed ones still pass, for both subprotocols (in process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi.testing import TestClient

DEPTH = 6


class Echo(AsgiApplication):
    @route()
    async def echo(self, value: Any = None) -> Any:
        return value


@pytest.fixture
def client(tmp_path: Path) -> Any:
    server = AsgiServer(tmp_path, environ={}, config={
        "plugins": {"wsx": {"heartbeat_interval": 0, "max_depth": DEPTH}}})
    server.mount("/e", Echo())
    with TestClient(server) as client:
        yield client


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels  # the shortest JSON text this deep


def test_jsonrpc_shortest_too_deep_batch_is_refused(client: Any) -> None:
    # a batch array one level too deep, in exactly 2 * (DEPTH + 1) characters
    frame = nested(DEPTH + 1)
    assert len(frame) == 2 * DEPTH + 2
    with client.websocket_connect("/_wsx", subprotocols=["jsonrpc"]) as ws:
        ws.send_text(frame)
        error = json.loads(ws.receive_text())["error"]
        assert error["code"] == -32700
        assert f"nested deeper than {DEPTH} levels" in error["data"]["detail"]


@pytest.mark.parametrize("levels", [DEPTH - 2, DEPTH - 1])
def test_jsonrpc_params_at_and_over_the_limit(client: Any, levels: int) -> None:
    # request object > params array > value: levels + 2 in all
    frame = json.dumps({"jsonrpc": "2.0", "method": "e.echo", "id": 1,
                        "params": [json.loads(nested(levels))]}, separators=(",", ":"))
    with client.websocket_connect("/_wsx", subprotocols=["jsonrpc"]) as ws:
        ws.send_text(frame)
        answer = json.loads(ws.receive_text())
    if levels + 2 <= DEPTH:
        assert answer["result"] == json.loads(nested(levels))
    else:
        assert answer["error"]["code"] == -32700


def test_wsx_shortest_frames_at_and_over_the_limit(client: Any) -> None:
    with client.websocket_connect("/_wsx", subprotocols=["wsx"]) as ws:
        ws.send_text("WSX://" + nested(DEPTH + 1))
        refused = json.loads(ws.receive_text()[6:])
        assert refused["error"] == {"code": "parse_error",
                                    "message": f"nested deeper than {DEPTH} levels"}
        ws.send_text("WSX://" + nested(DEPTH))  # deep enough, but not an object
        refused = json.loads(ws.receive_text()[6:])
        assert refused["error"] == {"code": "parse_error",
                                    "message": "a wsx frame holds a JSON object"}
