"""Every example of the JSON-RPC 2.0 specification (section 7), over a real uvicorn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wsx_helpers import TIMEOUT, make, open_ws, rpc, serving

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = make(tmp_path_factory.mktemp("spec"))
    with serving(server) as live:
        live.spec = server.apps["root"]
        yield live


@pytest.fixture
def ws(live: Any) -> Any:
    with open_ws(live, "jsonrpc") as ws:
        assert ws.subprotocol == "jsonrpc"
        yield ws


def test_positional_parameters(ws: Any) -> None:
    assert rpc(ws, {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}) == \
        {"jsonrpc": "2.0", "result": 19, "id": 1}
    assert rpc(ws, {"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}) == \
        {"jsonrpc": "2.0", "result": -19, "id": 2}


def test_named_parameters(ws: Any) -> None:
    assert rpc(ws, {"jsonrpc": "2.0", "method": "subtract",
                    "params": {"subtrahend": 23, "minuend": 42}, "id": 3}) == \
        {"jsonrpc": "2.0", "result": 19, "id": 3}
    assert rpc(ws, {"jsonrpc": "2.0", "method": "subtract",
                    "params": {"minuend": 42, "subtrahend": 23}, "id": 4}) == \
        {"jsonrpc": "2.0", "result": 19, "id": 4}


def test_notifications_are_never_answered(ws: Any, live: Any) -> None:
    ws.send(json.dumps({"jsonrpc": "2.0", "method": "update", "params": [1, 2, 3, 4, 5]}))
    ws.send(json.dumps({"jsonrpc": "2.0", "method": "foobar"}))  # unknown: still silent
    # the next frame is the answer to this request: the notifications produced nothing
    assert rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "id": "after"}) == \
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "after"}
    assert ("update", (1, 2, 3, 4, 5)) in live.spec.notified


def test_non_existent_method(ws: Any) -> None:
    answer = rpc(ws, {"jsonrpc": "2.0", "method": "foobar", "id": "1"})
    assert answer["id"] == "1"
    assert answer["error"]["code"] == -32601
    assert answer["error"]["message"] == "Method not found"


def test_invalid_json(ws: Any) -> None:
    answer = rpc(ws, '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert answer["id"] is None
    assert answer["error"]["code"] == -32700
    assert answer["error"]["message"] == "Parse error"


def test_invalid_request_object(ws: Any) -> None:
    answer = rpc(ws, {"jsonrpc": "2.0", "method": 1, "params": "bar"})
    assert answer["id"] is None
    assert answer["error"]["code"] == -32600
    assert answer["error"]["message"] == "Invalid Request"


def test_batch_invalid_json(ws: Any) -> None:
    answer = rpc(ws, '[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n'
                     '  {"jsonrpc": "2.0", "method"\n]')
    assert answer["id"] is None
    assert answer["error"]["code"] == -32700


def test_empty_array(ws: Any) -> None:
    answer = rpc(ws, [])
    assert isinstance(answer, dict)
    assert answer["id"] is None
    assert answer["error"]["code"] == -32600


def test_invalid_batch_but_not_empty(ws: Any) -> None:
    answer = rpc(ws, [1])
    assert isinstance(answer, list) and len(answer) == 1
    assert answer[0]["id"] is None and answer[0]["error"]["code"] == -32600


def test_invalid_batch(ws: Any) -> None:
    answer = rpc(ws, [1, 2, 3])
    assert len(answer) == 3
    assert all(a["id"] is None and a["error"]["code"] == -32600 for a in answer)


def test_mixed_batch(ws: Any) -> None:
    answer = rpc(ws, [
        {"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"},
    ])
    by_id: dict[Any, list[dict[str, Any]]] = {}
    for item in answer:
        by_id.setdefault(item["id"], []).append(item)
    assert len(answer) == 5
    assert by_id["1"][0]["result"] == 7
    assert by_id["2"][0]["result"] == 19
    assert by_id[None][0]["error"]["code"] == -32600
    assert by_id["5"][0]["error"]["code"] == -32601
    assert by_id["9"][0]["result"] == ["hello", 5]


def test_all_notification_batch_gets_nothing(ws: Any, live: Any) -> None:
    ws.send(json.dumps([
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1, 2, 4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
    ]))
    assert rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "id": 10})["id"] == 10
    assert ("notify_sum", (1, 2, 4)) in live.spec.notified


def test_ids_of_every_allowed_type_are_echoed(ws: Any) -> None:
    for rid in ("abc", 7, 2.5, None, ""):
        answer = rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "id": rid})
        assert answer == {"jsonrpc": "2.0", "result": ["hello", 5], "id": rid}


@pytest.mark.parametrize("payload", [
    {"jsonrpc": "2.0", "method": "get_data", "id": True},
    {"jsonrpc": "2.0", "method": "get_data", "id": {"a": 1}},
    {"jsonrpc": "2.0", "method": "get_data", "id": [1]},
    {"jsonrpc": "1.0", "method": "get_data", "id": 1},
    {"method": "get_data", "id": 1},
    {"jsonrpc": "2.0", "method": "", "id": 1},
    {"jsonrpc": "2.0", "method": "get_data", "params": 5, "id": 1},
    {"jsonrpc": "2.0", "method": "get_data", "params": None, "id": 1},
    "null", "42", '"text"', "true",
])
def test_invalid_requests(ws: Any, payload: Any) -> None:
    answer = rpc(ws, payload)
    assert answer["error"]["code"] == -32600
    assert answer["id"] in (None, 1)


def test_params_reach_the_handler_whatever_the_other_members(ws: Any) -> None:
    # members the spec does not define are ignored, with or without params; an id the fast
    # check does not take (null, a float) still passes the params on
    for extra in ({"extra": 1}, {"extra": 1, "params": [42, 23]}):
        answer = rpc(ws, {"jsonrpc": "2.0", "method": "subtract", "id": 1,
                          **{"params": [42, 23], **extra}})
        assert answer == {"jsonrpc": "2.0", "result": 19, "id": 1}
    answer = rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "extra": True, "id": 2})
    assert answer == {"jsonrpc": "2.0", "result": ["hello", 5], "id": 2}
    for rid in (None, 2.5):
        answer = rpc(ws, {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23],
                          "id": rid})
        assert answer == {"jsonrpc": "2.0", "result": 19, "id": rid}


def test_invalid_params(ws: Any) -> None:
    for params in ([1], [1, 2, 3], {"minuend": 1}, {"minuend": "x", "subtrahend": 1},
                   {"minuend": 1, "subtrahend": 2, "bogus": 3}):
        answer = rpc(ws, {"jsonrpc": "2.0", "method": "subtract", "params": params, "id": 1})
        assert answer["error"]["code"] == -32602, params
        assert answer["error"]["data"]["detail"]


def test_reserved_rpc_methods(ws: Any) -> None:
    answer = rpc(ws, {"jsonrpc": "2.0", "method": "rpc.discover", "id": 1})
    assert answer["error"]["code"] == -32601


def test_connection_survives_every_error(ws: Any) -> None:
    for bad in ("{", "[1", "", " ", "\u0000", "[]", "[[]]"):
        ws.send(bad)
        json.loads(ws.recv(timeout=TIMEOUT))
    assert rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "id": 1})["result"] == ["hello", 5]


def test_dotted_and_slashed_methods_reach_the_same_route(ws: Any) -> None:
    dotted = rpc(ws, {"jsonrpc": "2.0", "method": "shop.hello", "params": ["ada"], "id": 1})
    slashed = rpc(ws, {"jsonrpc": "2.0", "method": "/shop/hello", "params": {"name": "ada"},
                       "id": 2})
    assert dotted["result"] == slashed["result"] == "hello ada"


def test_server_errors_use_the_documented_range(ws: Any, tmp_path: Path) -> None:
    handler = rpc(ws, {"jsonrpc": "2.0", "method": "shop.item", "params": [101], "id": 1})
    assert handler["error"]["code"] == -32000
    assert handler["error"]["data"] == {"status": 404, "detail": "no item 101"}
    internal = rpc(ws, {"jsonrpc": "2.0", "method": "shop.boom", "id": 2})
    assert internal["error"]["code"] == -32603
    assert "secret" not in json.dumps(internal)
    assert set(internal["error"]["data"]) == {"status", "error_id"}
    auth = rpc(ws, {"jsonrpc": "2.0", "method": "shop.admin_only", "id": 3})
    assert auth["error"]["code"] == -32001


@pytest.mark.parametrize("frame", [
    '{"jsonrpc":"2.0","method":"get_data","id":1e999}',  # parses as inf: no JSON echoes it
    '[{"jsonrpc":"2.0","method":"get_data","id":-1e999}]',
    '{"jsonrpc":"2.0","method":"get_data","id":"1e999::R"}::JS',
])
def test_non_finite_ids_are_invalid_requests(ws: Any, frame: str) -> None:
    ws.send(frame)
    answer = json.loads(ws.recv(timeout=TIMEOUT))
    answer = answer[0] if isinstance(answer, list) else answer
    assert answer["error"]["code"] == -32600 and answer["id"] is None
    assert rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "id": 1})["result"] == ["hello", 5]


def test_hostile_frames_get_errors_and_the_socket_stays(ws: Any) -> None:
    for frame, code in [(b"\x00binary", -32700), ("[" * 100_000, -32700),
                        ('{"jsonrpc":"2.0","method":"x","id":1}::JS' + "[" * 50_000, -32700),
                        ('{"jsonrpc":"2.0","method":"get_data","id":' + "9" * 5000 + "}",
                         -32700)]:
        ws.send(frame)
        answer = json.loads(ws.recv(timeout=TIMEOUT))
        assert answer["error"]["code"] == code and answer["id"] is None, frame[:40]
    # an unknown TYTX type is not a type: the string reaches the handler as it is
    ws.send('{"jsonrpc":"2.0","method":"shop.hello","params":{"name":"x::ZZ"},"id":1}::JS')
    assert json.loads(ws.recv(timeout=TIMEOUT))["result"] == "hello x::ZZ"
    assert rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "id": 2})["result"] == ["hello", 5]
