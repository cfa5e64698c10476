"""Genro wire interop over a real uvicorn: every form genro-tytx 0.16 writes is accepted as
``data`` (and as a typed ``query`` value or a JSON-RPC frame), answers read back with
genro-tytx's own ``from_tytx``, and ``"method": "WSK"`` (Genro's legacy clients) means
whatever method the route takes."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

import pytest
from genro_tytx import from_tytx, to_tytx
from wsx_helpers import open_ws, rpc, serving, wsx

from genro_asgi import AsgiApplication, AsgiServer, route

pytestmark = pytest.mark.e2e

DAY = datetime.date(2025, 1, 15)
STAMP = datetime.datetime(2025, 1, 15, 10, 30, tzinfo=datetime.UTC)
TYPED = {"qty": 3, "price": Decimal("1.50"), "day": DAY}
PLAIN = {"qty": 3, "price": "1.50", "day": "2025-01-15"}  # bound and coerced as over HTTP
# results whose text form differs most: typed and plain containers, typed scalars, numbers,
# and strings a json-transport reader could take for JSON or that hold quotes and escapes
RESULTS: dict[str, Any] = {
    "typed": {"total": Decimal("4.50"), "day": DAY, "at": datetime.time(9, 15),
              "stamp": STAMP, "rows": [[Decimal("1.1")], {"d": DAY}]},
    "plain": {"a": 1, "b": [1, "x", None, True]},
    "list": [1, 2, 3],
    "decimal": Decimal("3.14"),
    "date": DAY,
    "int": 42,
    "float": 1.5,
    "true": True,
    "none": None,
    "empty": "",
    "word": "hello",
    "quotes": 'he said "hi" \\ and left',
    "looks_like_json": "42",
    "unicode": "caffè ☕",
}


class Interop(AsgiApplication):
    @route()
    def quote(self, qty: int, price: Decimal, day: datetime.date) -> dict[str, Any]:
        return {"total": price * qty, "day": day, "types": [type(price).__name__,
                                                             type(day).__name__]}

    @route()
    def value(self, kind: str) -> Any:
        return RESULTS[kind]

    @route(methods=["GET"])
    def only_get(self) -> str:
        return "got"

    @route(methods=["POST"])
    def only_post(self, n: int = 0) -> int:
        return n + 1


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = AsgiServer(tmp_path_factory.mktemp("interop"), environ={},
                        config={"plugins": {"wsx": {"heartbeat_interval": 0}}})
    server.mount("/ix", Interop())
    with serving(server) as live:
        yield live


@pytest.fixture
def ws(live: Any) -> Any:
    with open_ws(live, "wsx") as ws:
        yield ws


def text_of(value: Any, transport: str | None = None, **options: Any) -> str:
    text = to_tytx(value, transport, **options)  # type: ignore[arg-type]
    assert isinstance(text, str)
    return text


# every form genro-tytx writes for a call's arguments, as genro-tytx 0.16.4 writes it
DATA_FORMS = {
    "default, typed": (text_of(TYPED), '{"qty":3,"price":"1.50::N","day":"2025-01-15::D"}::JS'),
    "default, plain": (text_of(PLAIN), '{"qty":3,"price":"1.50","day":"2025-01-15"}'),
    "json transport, typed": (text_of(TYPED, "json"),
                              '"{"qty":3,"price":"1.50::N","day":"2025-01-15::D"}::JS"'),
    "json transport, plain": (text_of(PLAIN, "json"),
                              '"{"qty":3,"price":"1.50","day":"2025-01-15"}"'),
    "query string": (text_of(TYPED, qs=True), "qty=3::L&price=1.50::N&day=2025-01-15::D::QS"),
}


@pytest.mark.parametrize("form", DATA_FORMS)
def test_every_form_genro_tytx_writes_is_accepted_as_data(ws: Any, form: str) -> None:
    text, expected_text = DATA_FORMS[form]
    assert text == expected_text  # what genro-tytx writes has not changed under us
    answer = wsx(ws, {"id": 1, "path": "/ix/quote", "data": text})
    assert answer["status"] == 200, answer
    transport = "json" if form.startswith("json") else None
    value = from_tytx(answer["data"], transport)
    assert value == {"total": Decimal("4.50"), "day": DAY, "types": ["Decimal", "date"]}


def test_data_as_a_json_object_is_taken_as_is(ws: Any) -> None:
    answer = wsx(ws, {"id": 1, "path": "/ix/quote", "data": PLAIN})
    assert from_tytx(answer["data"])["total"] == Decimal("4.50")


@pytest.mark.parametrize("transport", [None, "json"])
def test_typed_scalars_in_query_in_either_form(ws: Any, transport: str | None) -> None:
    query = {"qty": text_of(3, transport, _force_suffix=True),
             "price": text_of(Decimal("1.50"), transport),
             "day": text_of(DAY, transport)}
    if transport == "json":
        assert query == {"qty": '"3::L"', "price": '"1.50::N"', "day": '"2025-01-15::D"'}
    answer = wsx(ws, {"id": 1, "path": "/ix/quote", "query": query})
    assert answer["status"] == 200, answer
    assert from_tytx(answer["data"])["total"] == Decimal("4.50")


@pytest.mark.parametrize("kind", RESULTS)
def test_answers_read_back_with_from_tytx(ws: Any, kind: str) -> None:
    """A call in the json transport's form is answered in it: ``from_tytx(data, "json")``
    gives every value back. A call in the default form is answered in the default form."""
    expected = RESULTS[kind]
    quoted = wsx(ws, {"id": 1, "method": "WSK", "path": "/ix/value",
                      "data": text_of({"kind": kind}, "json")})
    assert quoted["status"] == 200, quoted
    assert quoted["data"] == text_of(expected, "json")
    assert from_tytx(quoted["data"], "json") == expected
    plain = wsx(ws, {"id": 2, "path": "/ix/value", "data": text_of({"kind": kind})})
    assert plain["data"] == text_of(expected)
    assert from_tytx(plain["data"]) == expected
    if isinstance(expected, (dict, list)) or kind in ("decimal", "date", "int", "none"):
        # containers and typed scalars read the same with either transport
        assert from_tytx(plain["data"], "json") == expected


def test_malformed_quoted_forms_are_parse_errors_with_the_id(ws: Any) -> None:
    for data, message in [
        ('"{"qty":3,::JS"', "malformed TYTX: invalid JSON: Expecting property name enclosed in "
                            "double quotes at line 1, column 10"),
        ('"{"price":"x::N"}::JS"', "malformed TYTX: 'x' is not a valid decimal (::N)"),
        ('"[1,2"', "malformed TYTX: invalid JSON: Expecting ',' delimiter at line 1, column 5"),
    ]:
        answer = wsx(ws, {"id": "m", "path": "/ix/quote", "data": data})
        assert answer == {"id": "m", "status": 400,
                          "error": {"code": "parse_error", "message": message}}
    # a quoted text that is not JSON-like is a plain string, as genro-tytx reads it
    answer = wsx(ws, {"id": "s", "path": "/ix/quote", "data": '"hello"'})
    assert answer["status"] == 400 and answer["error"]["code"] == "invalid_params"


@pytest.mark.parametrize("path", ["/ix/only_get", "/ix/only_post", "/ix/value"])
def test_wsk_method_takes_whatever_the_route_takes(ws: Any, path: str) -> None:
    data = {"kind": "int"} if path == "/ix/value" else {}
    for method in ("WSK", "wsk"):
        answer = wsx(ws, {"id": 1, "method": method, "path": path,
                          "data": text_of(data, "json")})
        assert answer["status"] == 200, answer


def test_other_methods_are_still_checked(ws: Any) -> None:
    refused = wsx(ws, {"id": 1, "method": "POST", "path": "/ix/only_get"})
    assert refused["status"] == 405 and refused["error"]["allow"] == ["GET", "HEAD"]
    refused = wsx(ws, {"id": 2, "method": "GET", "path": "/ix/only_post"})
    assert refused["status"] == 405 and refused["error"]["allow"] == ["POST"]
    refused = wsx(ws, {"id": 3, "method": 7, "path": "/ix/only_post"})
    assert refused["status"] == 400 and refused["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("transport", [None, "json"])
def test_jsonrpc_frames_in_every_tytx_form(live: Any, transport: str | None) -> None:
    request = {"jsonrpc": "2.0", "method": "ix.quote", "id": 1, "params": TYPED}
    with open_ws(live, "jsonrpc") as ws:
        ws.send(text_of(request, transport))
        answer = ws.recv(timeout=10)
        assert isinstance(answer, str) and answer.endswith("::JS")
        for reader in (None, "json"):
            assert from_tytx(answer, reader)["result"] == {
                "total": Decimal("4.50"), "day": DAY, "types": ["Decimal", "date"]}
        # a plain request in the quoted form is TYTX too: typed answer
        ws.send(text_of({"jsonrpc": "2.0", "method": "ix.value", "id": 2,
                         "params": {"kind": "decimal"}}, "json"))
        answer = ws.recv(timeout=10)
        assert isinstance(answer, str)
        assert from_tytx(answer, "json") == {"jsonrpc": "2.0", "result": Decimal("3.14"),
                                             "id": 2}
        # malformed: -32700, a clean message
        broken = rpc(ws, '"{"jsonrpc":"2.0","method":"ix.value","params":{"kind":"x::L"}}::JS"')
        assert broken["error"]["code"] == -32700
        assert broken["error"]["data"]["detail"] == \
            "malformed TYTX: 'x' is not a valid integer (::L)"
        # a plain request on the same connection is still answered in plain JSON
        assert rpc(ws, json.dumps({"jsonrpc": "2.0", "method": "ix.value",
                                   "params": {"kind": "decimal"}, "id": 3})) == {
            "jsonrpc": "2.0", "result": "3.14", "id": 3}


def test_jsonrpc_batch_in_the_quoted_form(live: Any) -> None:
    batch = [{"jsonrpc": "2.0", "method": "ix.value", "id": n, "params": {"kind": kind}}
             for n, kind in enumerate(["decimal", "quotes", "none"])]
    with open_ws(live, "jsonrpc") as ws:
        ws.send(text_of(batch, "json"))
        answer = ws.recv(timeout=10)
        assert isinstance(answer, str)
        results = {item["id"]: item["result"] for item in from_tytx(answer, "json")}
        assert results == {0: Decimal("3.14"), 1: RESULTS["quotes"], 2: None}
