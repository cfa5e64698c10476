"""The ``wsx`` subprotocol over a real uvicorn: calls, typed values, errors, events."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from genro_tytx import from_tytx, to_tytx
from wsx_helpers import make, open_ws, recv_wsx, serving, wsx

from genro_asgi import Plugin, hookimpl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = make(tmp_path_factory.mktemp("wsx"))
    with serving(server) as live:
        yield live


@pytest.fixture
def ws(live: Any) -> Any:
    with open_ws(live, "wsx") as ws:
        yield ws


def test_default_subprotocol_without_offer(live: Any) -> None:
    with open_ws(live, None) as ws:
        assert ws.subprotocol is None
        assert wsx(ws, {"id": 1, "path": "/shop/hello"})["data"] == '"hello world"'


def test_unknown_subprotocol_is_refused(live: Any) -> None:
    with pytest.raises(Exception, match="403"):
        open_ws(live, "mqtt")


def test_wrong_path_under_the_endpoint_is_refused(live: Any) -> None:
    with pytest.raises(Exception, match="403"):
        open_ws(live, "wsx", path="/_wsx/other")


def test_the_same_handler_answers_http_and_wsx(live: Any, ws: Any) -> None:
    over_http = httpx.get(live.url + "/shop/hello", params={"name": "ada"}).text
    answer = wsx(ws, {"id": "a", "method": "GET", "path": "/shop/hello",
                      "data": {"name": "ada"}})
    assert answer == {"id": "a", "status": 200, "data": json.dumps(over_http)}


def test_typed_values_round_trip(ws: Any) -> None:
    data = to_tytx({"qty": 3, "price": Decimal("1.50"), "day": datetime.date(2025, 1, 15)})
    answer = wsx(ws, {"id": 2, "path": "/shop/quote", "data": data})
    assert answer["status"] == 200
    assert answer["data"].endswith("::JS")
    value = from_tytx(answer["data"])
    assert value["total"] == Decimal("4.50")
    assert value["day"] == datetime.date(2025, 1, 15)
    assert value["at"] == datetime.time(9, 15)
    assert value["stamp"] == datetime.datetime(2025, 1, 15, 10, 30, tzinfo=datetime.UTC)


def test_plain_json_data_and_query_and_path_segments(ws: Any) -> None:
    assert wsx(ws, {"id": 1, "path": "/shop/item/7"})["data"] == '{"id":7}'
    assert wsx(ws, {"id": 2, "path": "/shop/item", "query": {"item_id": "8::L"}})["data"] == \
        '{"id":8}'
    twice = wsx(ws, {"id": 3, "path": "/shop/item", "data": {"item_id": 1},
                     "query": {"item_id": "2"}})
    assert twice["status"] == 400 and twice["error"]["code"] == "invalid_params"


def test_event_without_id_is_handled_never_answered(live: Any, ws: Any) -> None:
    ws.send('WSX://{"path":"/shop/notify","data":{"channel":"ignored.x"}}')
    ws.send('WSX://{"path":"/shop/nope"}')  # a failing event is silent too
    assert wsx(ws, {"id": "next", "path": "/shop/hello"})["id"] == "next"


@pytest.mark.parametrize(("message", "status", "code"), [
    ({"id": 1, "path": "/shop/nope"}, 404, "not_found"),
    ({"id": 1, "path": "/shop/item/1/2"}, 404, "not_found"),
    ({"id": 1, "path": "/shop/item", "data": {"item_id": "x"}}, 400, "invalid_params"),
    ({"id": 1, "path": "/shop/item"}, 400, "invalid_params"),
    ({"id": 1, "path": "/shop/item", "data": {"item_id": 1, "x": 2}}, 400, "invalid_params"),
    ({"id": 1, "path": "/shop/item", "data": [1]}, 400, "invalid_params"),
    ({"id": 1, "path": "/shop/item", "data": "[1]"}, 400, "invalid_params"),
    ({"id": 1, "path": "/shop/item", "data": "{\"item_id\": \"x::N\"}"}, 400, "parse_error"),
    ({"id": 1, "path": "/shop/item", "data": "{broken"}, 400, "parse_error"),
    ({"id": 1, "path": "/shop/item/101"}, 404, "handler_error"),
    ({"id": 1, "path": "/shop/check", "data": {"value": "v"}}, 400, "handler_error"),
    ({"id": 1, "path": "/shop/only_get", "method": "POST"}, 405, "method_not_allowed"),
    ({"id": 1, "path": "/shop/admin_only"}, 401, "unauthenticated"),
    ({"id": 1}, 400, "invalid_request"),
    ({"id": 1, "path": 5}, 400, "invalid_request"),
    ({"id": 1, "path": "/" + "x" * 5000}, 400, "invalid_request"),
    ({"id": 1, "path": "/shop/hello", "method": 7}, 400, "invalid_request"),
    ({"id": 1, "type": "teleport"}, 400, "invalid_request"),
    ({"id": 1, "type": "subscribe"}, 400, "invalid_request"),
    ({"id": 1, "type": "subscribe", "channel": "bad channel"}, 400, "invalid_channel"),
    ({"id": 1, "type": "subscribe", "channel": "a.>.b"}, 400, "invalid_channel"),
    ({"id": 1, "type": "unsubscribe", "subscription": "s99"}, 404, "unknown_subscription"),
])
def test_errors(ws: Any, message: dict[str, Any], status: int, code: str) -> None:
    answer = wsx(ws, message)
    assert answer["id"] == 1
    assert answer["status"] == status
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]


def test_method_not_allowed_names_the_path_called_and_the_allowed_methods(ws: Any) -> None:
    answer = wsx(ws, {"id": 1, "path": "/shop/only_get", "method": "DELETE"})
    assert answer["error"] == {"code": "method_not_allowed", "allow": ["GET", "HEAD"],
                               "message": "DELETE is not allowed on '/shop/only_get'"}


def test_internal_error_leaks_nothing(ws: Any) -> None:
    answer = wsx(ws, {"id": 1, "path": "/shop/boom"})
    assert answer["status"] == 500
    assert answer["error"]["code"] == "internal_error"
    assert "secret" not in json.dumps(answer)
    assert len(answer["error"]["error_id"]) == 8
    unencodable = wsx(ws, {"id": 2, "path": "/shop/odd"})
    assert unencodable["status"] == 500


@pytest.mark.parametrize("which", ["nan", "inf", "-inf"])
def test_a_non_finite_result_is_an_error_not_invalid_json(ws: Any, which: str) -> None:
    """genro-tytx writes NaN / Infinity as bare tokens that no JSON parser reads: the client
    would lose the whole frame. They are an encoding error, as in plain JSON."""
    ws.send("WSX://" + json.dumps({"id": 3, "path": "/shop/not_finite",
                                   "data": {"which": which}}))
    frame = ws.recv(timeout=10)
    answer = json.loads(frame[len("WSX://"):])  # the frame itself is valid JSON
    assert answer["status"] == 500 and answer["error"]["message"] == (
        "the result cannot be encoded")
    assert wsx(ws, {"id": 4, "path": "/shop/hello"})["status"] == 200


@pytest.mark.parametrize("frame", [
    "hello", "WSX://", "WSX://{", "WSX://[1,2]", "WSX://null", "WSX://\"text\"",
    "WSX://{\"a\":NaN}", "WSX://" + "[" * 100_000, "WSX://{\"id\":1e999999}",
    "WSX://{\"id\":" + "9" * 5000 + "}",
])
def test_malformed_frames_get_a_protocol_error_and_the_socket_stays(ws: Any, frame: str) -> None:
    ws.send(frame)
    answer = recv_wsx(ws)
    assert answer["type"] == "error"
    assert answer["error"]["code"] in ("parse_error", "invalid_request")
    assert wsx(ws, {"id": "ok", "path": "/shop/hello"})["status"] == 200


def test_binary_frame_and_bad_ids(ws: Any) -> None:
    ws.send(b"\x00\x01binary")
    assert recv_wsx(ws)["error"]["code"] == "parse_error"
    for bad_id in (True, 1.5, [1], {"a": 1}, "x" * 200):
        answer = wsx(ws, {"id": bad_id, "path": "/shop/hello"})
        assert answer["type"] == "error" and answer["error"]["code"] == "invalid_request"


def test_ping_pong(ws: Any) -> None:
    assert wsx(ws, {"type": "ping"}) == {"type": "pong"}
    assert wsx(ws, {"type": "ping", "id": 4}) == {"type": "pong", "id": 4}


def test_unknown_fields_of_older_clients_are_ignored(ws: Any, live: Any) -> None:
    answer = wsx(ws, {"id": 1, "method": "POST", "path": "/shop/hello",
                      "headers": {"x-request-id": "trace-1", "accept-language": "it"},
                      "cookies": {"a": "b"}, "data": "{\"name\":\"bob\"}"})
    assert answer == {"id": 1, "status": 200, "data": '"hello bob"'}


def test_client_js_is_served(live: Any) -> None:
    response = httpx.get(live.url + "/_wsx/client.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "export" in response.text
    assert httpx.get(live.url + "/_wsx/other.js").status_code == 404
    assert httpx.post(live.url + "/_wsx/client.js").status_code == 405


class Recorder(Plugin):
    """Records every closed envelope, as the metrics and errors plugins see them."""

    def __init__(self, server: Any, config: Any) -> None:
        super().__init__(server, config)
        self.closed: list[tuple[str, str | None, int | None, str]] = []

    @hookimpl
    def genro_asgi_envelope_closed(self, envelope: Any) -> None:
        self.closed.append((envelope.scope_type, envelope.route, envelope.status,
                            envelope.request_id))


def test_envelope_per_call_reaches_observers(tmp_path: Any) -> None:
    server = make(tmp_path, plugins={"rec": {"module": f"{__name__}:Recorder"}})
    with serving(server) as live, open_ws(live) as ws:
        wsx(ws, {"id": 1, "path": "/shop/hello", "headers": {"x-request-id": "trace-9"}})
        wsx(ws, {"id": 2, "path": "/shop/item/500"})
    calls = [c for c in server.plugins.get("rec").closed if c[0] == "wsx"]
    assert ("wsx", "/shop/hello", 200, "trace-9") in calls
    assert any(c[1] == "/shop/item" and c[2] == 404 for c in calls)
    assert len(server.envelopes) == 0
