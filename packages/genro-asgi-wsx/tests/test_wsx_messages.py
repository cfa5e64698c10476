"""Error messages for hostile input speak the client's language: no Python internals (no
``sys.set_int_max_str_digits``, no "maximum recursion depth", no ``int()`` wording), over a
real uvicorn for both subprotocols, plus the two documented closes and refusals (1007 for
invalid UTF-8, 401 for an anonymous subscription under ``channel_auth``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from wsx_helpers import close_code, make, open_ws, recv_wsx, rpc, serving, wsx

from genro_asgi_wsx.codec import parse_json, parse_tytx
from genro_asgi_wsx.errors import WsxError

pytestmark = pytest.mark.e2e

INTERNALS = ("sys.", "set_int_max_str_digits", "recursion", "Exceeds the limit",
             "invalid literal", "base 10", "<class", "Error", "Traceback", "could not convert",
             "isoformat", "Only base64")
HUGE_INT = "9" * 5000  # over Python's 4300-digit conversion limit
DEEP = "[" * 5000 + "]" * 5000  # past Python's decoder recursion limit


def assert_clean(message: str) -> None:
    for word in INTERNALS:
        assert word not in message, f"{word!r} in {message!r}"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = make(tmp_path_factory.mktemp("messages"),
                  {"channel_auth": {"staff.>": "staff"}, "max_protocol_errors": 1000})
    with serving(server) as live:
        yield live


# (frame after WSX://, the message expected): malformed frames, answered without an id
WSX_FRAMES = [
    ('{"id":1,"path":"/shop/hello","n":' + HUGE_INT + "}",
     "invalid JSON: integer longer than 4300 digits"),
    ('{"id":1,"path":"/shop/hello","n":' + DEEP + "}",
     "invalid JSON: nested deeper than 128 levels"),
    ('{"id":1,"path":', "invalid JSON: Expecting value at line 1, column 16"),
    ('{"id":NaN}', "invalid JSON: NaN is not valid JSON"),
]

# (TYTX data string, message): answered with the call's id
TYTX_DATA = [
    ('{"name":"' + HUGE_INT + '::L"}::JS', "malformed TYTX: integer longer than 4300 digits"),
    ('{"name":' + DEEP + "}::JS", "malformed TYTX: invalid JSON: nested deeper than 128 levels"),
    ('{"name":"a' + "::QS" * 3000 + '"}::JS', "malformed TYTX: nested deeper than 128 levels"),
    ('{"name":"abc::L"}::JS', "malformed TYTX: 'abc' is not a valid integer (::L)"),
    ('{"name":"abc::R"}::JS', "malformed TYTX: 'abc' is not a valid float (::R)"),
    ('{"name":"2025-13-01::D"}::JS', "malformed TYTX: '2025-13-01' is not a valid date (::D)"),
    ('{"name":"noon::H"}::JS', "malformed TYTX: 'noon' is not a valid time (::H)"),
    ('{"name":"x::DHZ"}::JS', "malformed TYTX: 'x' is not a valid datetime (::DHZ)"),
    ('{"name":"!!::RAW"}::JS', "malformed TYTX: '!!' is not a valid base64 value (::RAW)"),
    ('{"name":"' + "x" * 60 + '::N"}::JS',
     "malformed TYTX: '" + "x" * 37 + "...' is not a valid decimal (::N)"),
    ('{"name":"a=1&b::QS"}::JS', "malformed TYTX: 'a=1&b' is not a valid query string (::QS)"),
    (HUGE_INT + "::L", "malformed TYTX: integer longer than 4300 digits"),
    ('"{"name":' + DEEP + '}::JS"', "malformed TYTX: invalid JSON: nested deeper than 128 levels"),
]


@pytest.mark.parametrize(("frame", "message"), WSX_FRAMES)
def test_wsx_frame_parse_errors_are_clean(live: Any, frame: str, message: str) -> None:
    with open_ws(live) as ws:
        ws.send("WSX://" + frame)
        answer = recv_wsx(ws)
        assert answer == {"type": "error", "status": 400,
                          "error": {"code": "parse_error", "message": message}}
        assert_clean(answer["error"]["message"])
        assert wsx(ws, {"id": 2, "path": "/shop/hello"})["status"] == 200  # still usable


@pytest.mark.parametrize(("data", "message"), TYTX_DATA)
def test_wsx_tytx_data_errors_are_clean(live: Any, data: str, message: str) -> None:
    with open_ws(live) as ws:
        answer = wsx(ws, {"id": "d", "path": "/shop/hello", "data": data})
        assert answer == {"id": "d", "status": 400,
                          "error": {"code": "parse_error", "message": message}}
        assert_clean(message)
        answer = wsx(ws, {"id": "q", "path": "/shop/hello", "data": {},
                          "query": {"name": HUGE_INT + "::L"}})
        assert answer["error"]["message"] == "malformed TYTX: integer longer than 4300 digits"


@pytest.mark.parametrize(("frame", "detail"), [
    ('{"jsonrpc":"2.0","method":"shop.hello","id":' + HUGE_INT + "}",
     "invalid JSON: integer longer than 4300 digits"),
    ('{"jsonrpc":"2.0","method":"shop.hello","params":' + DEEP + ',"id":1}',
     "invalid JSON: nested deeper than 128 levels"),
    ('{"jsonrpc":"2.0","method":"shop.hello","params":{"name":"' + HUGE_INT + '::L"},"id":1}::JS',
     "malformed TYTX: integer longer than 4300 digits"),
    ('{"jsonrpc":"2.0","method":"shop.hello","params":' + DEEP + ',"id":1}::JS',
     "malformed TYTX: invalid JSON: nested deeper than 128 levels"),
    ('{"jsonrpc":"2.0","method":"shop.hello","params":{"name":"abc::L"},"id":1}::JS',
     "malformed TYTX: 'abc' is not a valid integer (::L)"),
    ('{"jsonrpc":"2.0",', "invalid JSON: Expecting property name enclosed in double quotes at "
                          "line 1, column 18"),
])
def test_jsonrpc_parse_errors_are_clean(live: Any, frame: str, detail: str) -> None:
    with open_ws(live, "jsonrpc") as ws:
        answer = rpc(ws, frame)
        assert answer == {"jsonrpc": "2.0", "id": None, "error": {
            "code": -32700, "message": "Parse error",
            "data": {"status": 400, "detail": detail}}}
        assert_clean(detail)


def test_jsonrpc_invalid_request_and_params_messages_are_clean(live: Any) -> None:
    with open_ws(live, "jsonrpc") as ws:
        answers = [
            rpc(ws, "[]"),
            rpc(ws, '{"jsonrpc":"2.0","method":7,"id":1}'),
            rpc(ws, '{"jsonrpc":"1.0","method":"shop.hello","id":1}'),
            rpc(ws, '{"jsonrpc":"2.0","method":"shop.hello","params":"x","id":1}'),
            rpc(ws, '{"jsonrpc":"2.0","method":"shop.item","params":{"item_id":"abc"},"id":1}'),
            rpc(ws, '{"jsonrpc":"2.0","method":"shop.item","params":{"item_id":"'
                + HUGE_INT + '"},"id":1}'),
            rpc(ws, '{"jsonrpc":"2.0","method":"shop.item","params":{"item_id":' + "9" * 4000
                + '},"id":1}'),
            rpc(ws, '"a string"'),
        ]
        codes = [answer["error"]["code"] for answer in answers]
        assert codes == [-32600, -32600, -32600, -32600, -32602, -32602, -32602, -32600]
        for answer in answers:
            assert_clean(json.dumps(answer["error"]))


def test_invalid_utf8_closes_1007(live: Any) -> None:
    for protocol in ("wsx", "jsonrpc"):
        with open_ws(live, protocol) as ws:
            ws.send(b'WSX://{"id":1,"path":"/shop/hello\xff"}', text=True)
            assert close_code(ws) == 1007


def test_anonymous_subscribe_under_channel_auth_is_401(live: Any) -> None:
    with open_ws(live) as ws:
        answer = wsx(ws, {"id": 1, "type": "subscribe", "channel": "staff.news"})
        assert answer == {"id": 1, "status": 401, "error": {
            "code": "unauthenticated", "message": "this channel needs an identity"}}
        assert wsx(ws, {"id": 2, "type": "subscribe", "channel": "public.news"})["status"] == 200
    with open_ws(live, "jsonrpc") as ws:
        answer = rpc(ws, {"jsonrpc": "2.0", "method": "wsx.subscribe",
                          "params": {"channel": "staff.>"}, "id": 1})
        assert answer["error"]["code"] == -32001 and answer["error"]["data"]["status"] == 401


def test_decoders_name_the_limit_in_process() -> None:
    with pytest.raises(WsxError, match=r"^invalid JSON: nested deeper than 7 levels$"):
        parse_json(DEEP, max_depth=7)
    with pytest.raises(WsxError, match=r"^invalid JSON: nested too deeply$"):
        parse_json(DEEP)
    with pytest.raises(WsxError, match=r"^malformed TYTX: invalid JSON: nested deeper than 9"):
        parse_tytx(DEEP + "::JS", 9)
    assert parse_tytx('"plain text"') == "plain text"  # genro-tytx: not JSON-like, a string
    assert parse_tytx('"1.5::N"') == parse_tytx("1.5::N")
