"""The write path over a real uvicorn: what cannot be encoded versus a client that is gone.

A lone UTF-16 surrogate (``"\\ud800"``, a valid JSON escape) is not valid UTF-8. Sent by a
client (in an id, ``data``, a TYTX string, JSON-RPC params) it is refused as a parse error, as
the core refuses it in HTTP bodies; made by the server (a result, a publication) it is a value
that cannot be encoded. Such a value (``inf``, an object, nesting too deep, a lone surrogate) is
an internal error logged with an ``error_id`` that the answer carries; a publication of one is
refused to the publisher before any subscriber sees it. Nothing of it drops a connection.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from wsx_helpers import make, open_ws, recv_wsx, rpc, serving, wsx

from genro_asgi import AsgiApplication, BadRequest, route
from genro_asgi.wellformed import LONE_SURROGATE
from genro_asgi_wsx import publish

pytestmark = pytest.mark.e2e

LONE = "a\ud800b\udc00c"  # a high and a low surrogate, each unpaired
EMOJI = "\U0001f600"  # json.dumps writes it as a surrogate pair: valid, and accepted


class Values(AsgiApplication):
    @route()
    def echo(self, value: Any = None) -> Any:
        return {"value": value}

    @route()
    def lone_text(self) -> str:
        return LONE

    @route()
    def lone_dict(self) -> Any:
        return {"text": LONE}

    @route()
    def refuse(self) -> None:
        raise BadRequest(detail=f"refused: {LONE}")

    @route()
    def refuse_oddly(self) -> None:
        detail: Any = {"field": object()}  # not a str: nothing can write it
        raise BadRequest(detail=detail)

    @route()
    def deep(self, levels: int = 5000) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = [value]
        return value

    @route()
    async def emit(self, channel: str, kind: str) -> bool:
        values: dict[str, Any] = {"lone": {"text": LONE}, "inf": {"x": float("inf")},
                                  "object": {"x": object()}, "fine": {"n": 1}}
        await publish(self.server, channel, values[kind])
        return True


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = make(tmp_path_factory.mktemp("wsx"))
    server.mount("/values", Values())
    with serving(server) as live:
        yield live


def raw(message: dict[str, Any]) -> str:
    """A wsx frame as a Python client writes it (``ensure_ascii``: surrogates as escapes)."""
    return "WSX://" + json.dumps(message)


def test_lone_surrogates_from_the_client_are_parse_errors(live: Any) -> None:
    refused = {"type": "error", "status": 400,
               "error": {"code": "parse_error", "message": LONE_SURROGATE}}
    with open_ws(live) as ws:
        ws.send(raw({"id": LONE, "path": "/values/echo"}))  # in the frame: no id to echo
        assert recv_wsx(ws) == refused
        ws.send(raw({"id": 2, "path": "/values/echo", "data": {"value": [LONE]}}))
        assert recv_wsx(ws) == refused
        # inside TYTX text (a JSON string in the frame): refused with the message's id
        for message in ({"data": json.dumps({"value": LONE})},
                        {"data": json.dumps({"value": [LONE]}) + "::JS"},
                        {"query": {"value": json.dumps([LONE]) + "::JS"}}):
            failed = wsx(ws, {"id": 3, "path": "/values/echo", **message})
            assert failed == {"id": 3, **{k: v for k, v in refused.items() if k != "type"}}
        # a surrogate pair (an emoji, escaped) is fine, in the frame and in TYTX text
        answer = wsx(ws, {"id": 4, "path": "/values/echo", "data": {"value": EMOJI}})
        assert json.loads(answer["data"]) == {"value": EMOJI}
        answer = wsx(ws, {"id": 5, "path": "/values/echo",
                          "data": json.dumps({"value": EMOJI})})
        assert json.loads(answer["data"]) == {"value": EMOJI}
        assert wsx(ws, {"id": 6, "type": "ping"}) == {"type": "pong", "id": 6}


def test_lone_surrogates_from_a_jsonrpc_client_are_parse_errors(live: Any) -> None:
    with open_ws(live, "jsonrpc") as ws:
        for request in ({"jsonrpc": "2.0", "method": "values.echo", "id": LONE},
                        {"jsonrpc": "2.0", "method": "values.echo", "params": {"value": LONE},
                         "id": 1}):
            answer = rpc(ws, request)
            assert answer["id"] is None and answer["error"]["code"] == -32700
            assert answer["error"]["data"]["detail"] == LONE_SURROGATE
        typed = json.dumps({"jsonrpc": "2.0", "method": "values.echo",
                            "params": {"value": LONE}, "id": 2}) + "::JS"
        assert rpc(ws, typed)["error"]["code"] == -32700
        answer = rpc(ws, {"jsonrpc": "2.0", "method": "values.echo", "params": {"value": EMOJI},
                          "id": 3})
        assert answer == {"jsonrpc": "2.0", "result": {"value": EMOJI}, "id": 3}


def test_an_error_message_holding_a_lone_surrogate_is_still_sent(live: Any) -> None:
    """The last line of defence: a frame the checks above do not cover (an error built from a
    handler's text) is sent with the surrogate escaped, never failing the send."""
    with open_ws(live) as ws:
        failed = wsx(ws, {"id": 1, "path": "/values/refuse"})
        assert failed["error"] == {"code": "handler_error", "message": f"refused: {LONE}"}
        assert wsx(ws, {"id": 2, "type": "ping"}) == {"type": "pong", "id": 2}
    with open_ws(live, "jsonrpc") as ws:
        answer = rpc(ws, {"jsonrpc": "2.0", "method": "values.refuse", "id": 1})
        assert answer["error"]["data"]["detail"] == f"refused: {LONE}"
        assert rpc(ws, {"jsonrpc": "2.0", "method": "wsx.ping", "id": 2})["result"] == "pong"


def error_ids(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR and "error_id=" in record.getMessage()]


@pytest.mark.parametrize("path", ["/shop/not_finite?inf", "/shop/odd", "/values/deep",
                                  "/values/lone_text", "/values/lone_dict",
                                  "/values/refuse_oddly"])
def test_an_unencodable_result_is_an_internal_error_with_an_error_id(
        live: Any, caplog: pytest.LogCaptureFixture, path: str) -> None:
    route_path, _, which = path.partition("?")
    data = {"which": which} if which else None
    with open_ws(live) as ws:
        answer = wsx(ws, {"id": 1, "path": route_path, "data": data})
        assert answer["id"] == 1 and answer["status"] == 500
        error = answer["error"]
        assert error["code"] == "internal_error" and error["error_id"]
        assert any(f"error_id={error['error_id']}" in message for message in error_ids(caplog))
        assert wsx(ws, {"id": 2, "path": "/shop/hello"})["status"] == 200


@pytest.mark.parametrize("method", ["shop.not_finite", "shop.odd", "values.deep",
                                    "values.lone_text", "values.lone_dict",
                                    "values.refuse_oddly"])
def test_an_unencodable_jsonrpc_result_carries_an_error_id(
        live: Any, caplog: pytest.LogCaptureFixture, method: str) -> None:
    params = {"which": "inf"} if method == "shop.not_finite" else {}
    with open_ws(live, "jsonrpc") as ws:
        answer = rpc(ws, {"jsonrpc": "2.0", "method": method, "params": params, "id": 7})
        assert answer["id"] == 7 and answer["error"]["code"] == -32603
        error_id = answer["error"]["data"]["error_id"]
        assert any(f"error_id={error_id}" in message for message in error_ids(caplog))
        batch = rpc(ws, [{"jsonrpc": "2.0", "method": method, "params": params, "id": 8},
                         {"jsonrpc": "2.0", "method": "get_data", "id": 9}])
        by_id = {item["id"]: item for item in batch}
        assert by_id[8]["error"]["data"]["error_id"] and by_id[9]["result"] == ["hello", 5]


@pytest.mark.parametrize("kind", ["inf", "object", "lone"])
def test_an_unencodable_publication_is_refused_before_any_subscriber_sees_it(
        live: Any, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    with open_ws(live) as first, open_ws(live, "jsonrpc") as second, \
            open_ws(live) as publisher:
        assert wsx(first, {"id": 1, "type": "subscribe", "channel": "nums"})["status"] == 200
        assert rpc(second, {"jsonrpc": "2.0", "method": "wsx.subscribe",
                            "params": ["nums"], "id": 1})["result"] == "s1"
        refused = wsx(publisher, {"id": 1, "path": "/values/emit",
                                  "data": {"channel": "nums", "kind": kind}})
        assert refused["status"] == 500 and refused["error"]["code"] == "internal_error"
        error_id = refused["error"]["error_id"]
        logged = [m for m in error_ids(caplog) if f"error_id={error_id}" in m]
        assert logged and "cannot publish on 'nums'" in logged[0]
        # nobody got it, nobody was dropped: the next publication is the first event each sees
        assert wsx(publisher, {"id": 2, "path": "/values/emit",
                               "data": {"channel": "nums", "kind": "fine"}})["status"] == 200
        event = recv_wsx(first)
        assert event["type"] == "event" and json.loads(event["data"]) == {"n": 1}
        assert json.loads(second.recv(timeout=10))["params"]["data"] == {"n": 1}
