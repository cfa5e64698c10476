"""TYTX over HTTP: negotiation, typed params in, typed responses out, and malformed input as 400."""

from __future__ import annotations

import datetime
import importlib.util
from decimal import Decimal
from typing import Any

import pytest
from genro_tytx import from_tytx, to_tytx

from genro_asgi import AsgiApplication, BadRequest, UnsupportedMediaType, route
from genro_asgi import tytx as tytx_module

HAS_MSGPACK = importlib.util.find_spec("msgpack") is not None
TYTX_JSON = "application/vnd.tytx+json"


class Ledger(AsgiApplication):
    @route()
    def entry(self, amount: Decimal, day: datetime.date,
              at: datetime.datetime | None = None) -> dict[str, Any]:
        return {"amount": amount, "day": day, "at": at, "types": [
            type(amount).__name__, type(day).__name__, type(at).__name__]}

    @route()
    def echo(self, **values: Any) -> dict[str, Any]:
        return {"values": values, "types": {k: type(v).__name__ for k, v in values.items()}}

    @route()
    def text(self, s: str = "") -> dict[str, Any]:
        return {"s": s, "type": type(s).__name__}

    @route()
    def plain(self) -> dict[str, Any]:
        return {"price": Decimal("9.99"), "day": datetime.date(2025, 6, 1)}

    @route()
    def not_finite(self, which: str) -> Any:
        return {"value": float(which)} if which != "text" else {"value": "NaN", "x": "Infinity"}

    @route()
    def raw(self) -> bytes:
        return b"\x01\x02"


@pytest.fixture
def client(make_server: Any, make_client: Any) -> Any:
    server = make_server()
    server.mount("/l", Ledger())
    return make_client(server)


def message(response: Any) -> str:
    text: str = response.json()["error"]["message"]
    return text


TYPED = {"amount": Decimal("100.50"), "day": datetime.date(2025, 1, 15),
         "at": datetime.datetime(2025, 1, 15, 10, 30, 5, 123000, tzinfo=datetime.UTC)}


@pytest.mark.parametrize("headers", [
    {"X-TYTX-Transport": "json"},
    {"Content-Type": TYTX_JSON},
    {"Content-Type": f"{TYTX_JSON}; charset=utf-8"},
    {"X-TYTX-Transport": "JSON", "Content-Type": "application/json"},
])
def test_typed_params_in_and_typed_response_out(client: Any, headers: dict[str, str]) -> None:
    body = to_tytx(TYPED)
    assert isinstance(body, str)
    response = client.post("/l/entry", content=body.encode(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == TYTX_JSON
    result = from_tytx(response.text, "json")
    assert result == {**TYPED, "types": ["Decimal", "date", "datetime"]}


def test_the_transport_header_makes_a_get_typed(client: Any) -> None:
    response = client.get("/l/plain", headers={"X-TYTX-Transport": "json"})
    assert response.headers["content-type"] == TYTX_JSON
    assert from_tytx(response.text, "json") == {"price": Decimal("9.99"),
                                                "day": datetime.date(2025, 6, 1)}
    plain = client.get("/l/plain")
    assert plain.headers["content-type"] == "application/json"
    assert plain.json() == {"price": "9.99", "day": "2025-06-01"}


def test_bytes_stay_bytes_in_tytx_mode(client: Any) -> None:
    response = client.get("/l/raw", headers={"X-TYTX-Transport": "json"})
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"\x01\x02"


def test_typed_query_values_in_tytx_mode(client: Any) -> None:
    response = client.get("/l/echo?amount=1.50::N&day=2025-02-03::D&n=7::L&plain=x",
                          headers={"X-TYTX-Transport": "json"})
    assert response.status_code == 200
    result = from_tytx(response.text, "json")
    assert result["values"] == {"amount": Decimal("1.50"), "day": datetime.date(2025, 2, 3),
                                "n": 7, "plain": "x"}
    assert result["types"] == {"amount": "Decimal", "day": "date", "n": "int", "plain": "str"}


def test_typed_query_values_coerce_to_the_annotation(client: Any) -> None:
    response = client.get("/l/entry?amount=2.5::N&day=2025-02-03::D",
                          headers={"X-TYTX-Transport": "json"})
    assert from_tytx(response.text, "json")["types"] == ["Decimal", "date", "NoneType"]


def test_without_tytx_mode_suffixed_strings_stay_strings(client: Any) -> None:
    query = client.get("/l/echo?day=2025-01-01::D&n=5::L")
    assert query.json() == {"values": {"day": "2025-01-01::D", "n": "5::L"},
                            "types": {"day": "str", "n": "str"}}
    body = client.post("/l/text", json={"s": "hello::N"})
    assert body.json() == {"s": "hello::N", "type": "str"}


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"amount": "1::N", "day": ', "malformed TYTX json body: not valid JSON"),
    (b"[[[", "malformed TYTX json body"),
    (b'{"amount":"hello::N","day":"2025-01-01::D"}::JS', "invalid decimal value"),
    (b'{"amount":"1::N","day":"2025-13-01::D"}::JS', "month must be in 1..12"),
    (b'{"amount":"1::N","day":"2025-02-30::D"}', "day is out of range"),
    (b'{"amount":"1::N","day":"\xff\xfe::D"}::JS', "TYTX body is not valid UTF-8"),
    (b'"just a string"', "object of named parameters"),
    (b"[1, 2]", "object of named parameters"),
    (b"42", "object of named parameters"),
    (b"[" * 100_000, "malformed TYTX json body"),
])
def test_malformed_tytx_bodies_are_bad_requests(client: Any, body: bytes, expected: str) -> None:
    response = client.post("/l/entry", content=body, headers={"X-TYTX-Transport": "json"})
    assert response.status_code == 400, response.text
    assert expected in message(response)
    assert response.json()["error"]["error_id"]


@pytest.mark.parametrize("query", ["amount=hello::N&day=2025-01-01::D",
                                   "amount=1::N&day=2025-13-01::D",
                                   "amount=1::N&day=x::DHZ"])
def test_malformed_tytx_query_values_are_bad_requests(client: Any, query: str) -> None:
    response = client.get(f"/l/entry?{query}", headers={"X-TYTX-Transport": "json"})
    assert response.status_code == 400
    assert message(response).startswith("malformed TYTX value")


@pytest.mark.parametrize("value", ["yaml", "protobuf", "", "json, xml"])
def test_unknown_transport_header_is_a_bad_request(client: Any, value: str) -> None:
    response = client.post("/l/echo", content=b"{}", headers={"X-TYTX-Transport": value})
    assert response.status_code == 400
    assert "X-TYTX-Transport must be one of json, msgpack, xml" in message(response)


def test_tytx_errors_are_never_500_on_a_get(client: Any) -> None:
    response = client.get("/l/plain", headers={"X-TYTX-Transport": "bogus"})
    assert response.status_code == 400


@pytest.mark.skipif(HAS_MSGPACK, reason="msgpack is installed: the 415 branch does not apply")
@pytest.mark.parametrize("headers", [{"X-TYTX-Transport": "msgpack"},
                                     {"Content-Type": "application/vnd.tytx+msgpack"}])
def test_msgpack_without_msgpack_is_unsupported(client: Any, headers: dict[str, str]) -> None:
    posted = client.post("/l/echo", content=b"\x81\xa1a\x01", headers=headers)
    assert posted.status_code == 415
    assert "msgpack" in message(posted)
    # refused before the handler runs, also when there is no body to decode
    fetched = client.get("/l/plain", headers=headers)
    assert fetched.status_code == 415


@pytest.mark.skipif(not HAS_MSGPACK, reason="msgpack is not installed: only the 415 branch "
                    "(test_msgpack_without_msgpack_is_unsupported) applies")
def test_msgpack_round_trip(client: Any) -> None:
    body = to_tytx(TYPED, "msgpack")
    response = client.post("/l/entry", content=body,
                           headers={"Content-Type": "application/vnd.tytx+msgpack"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.tytx+msgpack"
    result = from_tytx(response.content, "msgpack")
    assert result["amount"] == TYPED["amount"]
    assert result["types"] == ["Decimal", "date", "datetime"]
    broken = client.post("/l/entry", content=b"\xc1\xc1",
                         headers={"X-TYTX-Transport": "msgpack"})
    assert broken.status_code == 400


def test_transport_negotiation_unit() -> None:
    negotiate = tytx_module.transport_from_headers
    assert negotiate([]) is None
    assert negotiate([(b"content-type", b"application/json")]) is None
    assert negotiate([(b"x-tytx-transport", b"json")]) == "json"
    assert negotiate([(b"content-type", b"application/vnd.tytx+json")]) == "json"
    assert negotiate([(b"content-type", b"application/vnd.tytx+xml")]) == "xml"
    with pytest.raises(BadRequest):
        negotiate([(b"x-tytx-transport", b"csv")])
    if not HAS_MSGPACK:
        with pytest.raises(UnsupportedMediaType):
            negotiate([(b"x-tytx-transport", b"msgpack")])


def test_decode_text_unit() -> None:
    assert tytx_module.decode_text("plain") == "plain"
    assert tytx_module.decode_text("2025-01-02::D") == datetime.date(2025, 1, 2)
    assert tytx_module.decode_text("3.10::N") == Decimal("3.10")
    with pytest.raises(BadRequest, match="invalid decimal value"):
        tytx_module.decode_text("abc::N")


def test_decode_unit_refuses_non_json_text() -> None:
    assert tytx_module.decode(b'{"a":"1::N"}', "json") == {"a": Decimal("1")}
    with pytest.raises(BadRequest, match="not valid JSON"):
        tytx_module.decode(b"{oops", "json")
    with pytest.raises(BadRequest, match="UTF-8"):
        tytx_module.decode(b"\xff", "json")


@pytest.mark.parametrize("which", ["nan", "inf", "-inf"])
def test_a_non_finite_result_is_a_500_in_tytx_as_in_json(client: Any, which: str) -> None:
    """genro-tytx writes NaN / Infinity as bare tokens that no JSON parser reads: like the
    plain JSON encoder, the response refuses them (a handler bug), instead of sending a body
    the client cannot parse."""
    for headers in ({}, {"X-TYTX-Transport": "json"}):
        response = client.get("/l/not_finite", params={"which": which}, headers=headers)
        assert response.status_code == 500, (headers, response.text)


def test_the_words_nan_and_infinity_in_strings_are_fine(client: Any) -> None:
    response = client.get("/l/not_finite", params={"which": "text"},
                          headers={"X-TYTX-Transport": "json"})
    assert response.status_code == 200
    assert tytx_module.decode(response.content, "json") == {"value": "NaN", "x": "Infinity"}


def test_non_finite_floats_are_refused_in_every_text_transport() -> None:
    for transport in ("json", "xml"):
        with pytest.raises(ValueError, match="not JSON compliant"):
            tytx_module.encode({"a": {"b": float("nan")}}, transport)  # type: ignore[arg-type]
        assert tytx_module.decode(tytx_module.encode(  # type: ignore[arg-type]
            {"a": "NaN"}, transport), transport) == {"a": "NaN"}  # type: ignore[arg-type]


def test_check_finite_unit() -> None:
    for text in ("NaN", "-Infinity", '{"a":[1,NaN]}', '{"p":"1.5::N","x":Infinity}::JS'):
        with pytest.raises(ValueError, match="not JSON compliant"):
            tytx_module.check_finite(text)
    for text in ('"NaN"', '{"a":"Infinity"}', '{"p":"NaN::N"}::JS', "NaN::N", "1.5"):
        tytx_module.check_finite(text)
