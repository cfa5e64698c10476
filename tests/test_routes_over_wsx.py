"""Plugin routes written for HTTP, called over WSX on a real uvicorn: they work there or answer
a clear 4xx, never a success that hides an error.

The metrics scrape is a route that returns a ``Response`` with its status (403 for an identity
without the rule's tags): over WSX that status must reach the client as an error frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from genro_tytx import from_tytx
from websockets.sync.client import connect

from genro_asgi import AsgiApplication, AsgiServer, Request, route
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e

TIMEOUT = 20.0  # a guard against a hang, never an assertion about speed
OPS, DEV = "ops-token-0123456789", "dev-token-0123456789"


class Echo(AsgiApplication):
    @route(methods=["GET", "POST"])
    def how(self, request: Request) -> dict[str, Any]:
        """What a handler written for HTTP reads from its Request."""
        identity = request.identity
        return {"method": request.method, "path": request.path, "type": request.scope["type"],
                "identity": identity.id if identity is not None else None,
                "envelope_route": request.envelope.route if request.envelope else None}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    pytest.importorskip("genro_asgi_metrics")
    server = AsgiServer(tmp_path_factory.mktemp("routes_wsx"), environ={}, config={"plugins": {
        "auth": {"bearer": {"ops": {"token": OPS, "tags": ["ops"]},
                            "dev": {"token": DEV, "tags": ["dev"]}}},
        "metrics": {"auth_rule": "ops"},
        "wsx": {"heartbeat_interval": 0},
    }})
    server.mount("/echo", Echo())
    with LiveServer(server) as running:
        yield running


def calls(live: LiveServer, token: str, *messages: dict[str, Any]) -> list[dict[str, Any]]:
    answers = []
    with connect(live.ws_url + "/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
                 additional_headers={"Authorization": f"Bearer {token}"},
                 open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        for message in messages:
            ws.send("WSX://" + json.dumps(message))
            frame = ws.recv(timeout=TIMEOUT)
            assert isinstance(frame, str) and frame.startswith("WSX://"), frame
            answers.append(json.loads(frame[6:]))
    return answers


def test_the_metrics_scrape_over_wsx(live: LiveServer) -> None:
    (scrape,) = calls(live, OPS, {"id": 1, "path": "/metrics"})
    assert scrape["status"] == 200 and "# TYPE http_requests_total" in from_tytx(
        scrape["data"], "json")
    forbidden, post = calls(live, DEV, {"id": 1, "path": "/metrics"},
                            {"id": 2, "method": "POST", "path": "/metrics"})
    # before: a 200 whose data was the text "Forbidden"
    assert forbidden["status"] == 403 and "data" not in forbidden, forbidden
    assert forbidden["error"]["message"] == "Forbidden"
    assert post["status"] == 405


def test_a_handler_taking_a_request_gets_the_call(live: LiveServer) -> None:
    plain, posted = calls(live, OPS, {"id": 1, "path": "/echo/how"},
                          {"id": 2, "method": "POST", "path": "/echo/how"})
    assert from_tytx(plain["data"], "json") == {
        "method": "CALL", "path": "/echo/how", "type": "wsx", "identity": "ops",
        "envelope_route": "/echo/how"}
    assert from_tytx(posted["data"], "json")["method"] == "POST"
