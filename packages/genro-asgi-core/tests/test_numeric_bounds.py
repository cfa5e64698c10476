"""Numeric bombs: every number a request carries is bounded before anything converts it.

A TYTX Decimal ``1E+999999999`` bound to an ``int`` used to compute a billion-digit integer on
the event loop, freezing every client; ``inf``/``nan`` and overflowing Decimals were 500s.
Each case is a 400 naming the parameter, in every transport (query, JSON, TYTX, form, path),
and the loop keeps answering other clients meanwhile.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from genro_tytx import from_tytx

from genro_asgi import AsgiApplication, AsgiServer, Request, route
from genro_asgi.exceptions import ConfigError
from genro_asgi.numbers import NumberLimits, NumberOutOfRange, describe_decode_error
from genro_asgi.testing import LiveServer

TYTX = {"X-TYTX-Transport": "json"}
BOMB = "1E+999999999::N"


class Numbers(AsgiApplication):
    @route()
    def count(self, limit: int = 10) -> dict[str, int]:
        return {"limit": limit}

    @route()
    def ratio(self, x: float = 1.0) -> dict[str, float]:
        return {"x": x}

    @route()
    def double(self, d: Decimal) -> dict[str, Decimal]:
        return {"d": d * 2}

    @route()
    def anything(self, v: Any = None) -> dict[str, str]:
        return {"type": type(v).__name__}

    @route()
    def loose(self, **values: Any) -> dict[str, list[str]]:
        return {"keys": sorted(values)}

    @route()
    def many(self, ids: list[int]) -> dict[str, int]:
        return {"n": len(ids)}

    @route(name="item")
    def item(self, pid: int) -> dict[str, int]:
        return {"pid": pid}

    @route(methods=["POST"])
    def order(self, qty: int, price: Decimal) -> dict[str, Any]:
        return {"total": price * qty}


# -- the limits themselves ---------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    0, -1, 10**99, -(10**99), 1.5, -0.0, 1e308, Decimal("1E+400"), Decimal("1E-400"),
    Decimal("1" * 100), "x" * 10_000, True, None, [1, {"a": Decimal("2.5")}], (1, 2), {3},
])
def test_values_within_the_default_limits(value: Any) -> None:
    NumberLimits().check(value)


@pytest.mark.parametrize(("value", "message"), [
    (10**100, "integer longer than 100 digits"),
    (-(10**100), "integer longer than 100 digits"),
    (float("inf"), "not finite"),
    (float("-inf"), "not finite"),
    (float("nan"), "not finite"),
    (Decimal("NaN"), "not finite"),
    (Decimal("sNaN"), "not finite"),
    (Decimal("-Infinity"), "not finite"),
    (Decimal("1E+401"), "exponent out of range"),
    (Decimal("1E-401"), "exponent out of range"),
    (Decimal("1E+999999999"), "exponent out of range"),
    (Decimal("1" * 101), "more than 100 digits"),
    ([1, [2, {"deep": Decimal("1E+999999")}]], "exponent out of range"),
])
def test_values_over_the_limits(value: Any, message: str) -> None:
    with pytest.raises(NumberOutOfRange, match=message):
        NumberLimits().check(value)


def test_custom_limits_and_their_validation() -> None:
    limits = NumberLimits(max_digits=5, max_exponent=10)
    limits.check(99_999)
    with pytest.raises(NumberOutOfRange):
        limits.check(100_000)
    with pytest.raises(NumberOutOfRange):
        limits.check(Decimal("1E+11"))
    with pytest.raises(ValueError):
        NumberLimits(max_digits=0)


def test_decoder_errors_described_without_python_internals() -> None:
    try:
        int("9" * (sys.get_int_max_str_digits() + 1))
    except ValueError as exc:
        message = describe_decode_error(exc)
    assert message is not None and "set_int_max_str_digits" not in message
    assert message.startswith("integer longer than")
    assert describe_decode_error(RecursionError("maximum recursion depth exceeded")) == \
        "nested too deeply"
    assert describe_decode_error(ValueError("something else")) is None


# -- in process, every transport ---------------------------------------------------------------

@pytest.fixture
def client(make_server: Any, make_client: Any) -> Any:
    server = make_server()
    server.mount("/n", Numbers())
    return make_client(server)


def _refused(response: httpx.Response, param: str, words: str) -> None:
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert f"parameter {param!r}" in message and words in message, message


@pytest.mark.parametrize(("url", "headers", "param", "words"), [
    ("/n/count?limit=1E%2B999999999%3A%3AN", TYTX, "limit", "exponent out of range"),
    ("/n/count?limit=1E%2B5000%3A%3AN", TYTX, "limit", "exponent out of range"),
    ("/n/count?limit=" + "9" * 1000 + "%3A%3AN", TYTX, "limit", "more than 100 digits"),
    ("/n/count?limit=" + "9" * 200, {}, "limit", "integer longer than 100 digits"),
    ("/n/ratio?x=inf", {}, "x", "not finite"),
    ("/n/ratio?x=nan", {}, "x", "not finite"),
    ("/n/ratio?x=-Infinity", {}, "x", "not finite"),
    ("/n/ratio?x=1E%2B999999999", {}, "x", "not finite"),
    ("/n/ratio?x=inf%3A%3AR", TYTX, "x", "not finite"),
    ("/n/double?d=1E%2B999999999", {}, "d", "exponent out of range"),
    ("/n/double?d=NaN", {}, "d", "finite"),
    ("/n/anything?v=1E%2B999999999%3A%3AN", TYTX, "v", "exponent out of range"),
    ("/n/loose?v=1E%2B999999999%3A%3AN", TYTX, "v", "exponent out of range"),
    ("/n/many?ids=1&ids=1E%2B999999999%3A%3AN", TYTX, "ids", "exponent out of range"),
    ("/n/item/1E%2B999999999", {}, "pid", ""),
])
def test_query_and_path_numbers_are_bounded(client: Any, url: str, headers: dict[str, str],
                                            param: str, words: str) -> None:
    _refused(client.get(url, headers=headers), param, words)


def test_path_segment_bomb_is_a_400_without_conversion(client: Any) -> None:
    response = client.get("/n/item/" + "9" * 5000)
    assert response.status_code == 400
    assert "pid" in response.json()["error"]["message"]


@pytest.mark.parametrize(("body", "headers", "param", "words"), [
    (b'{"qty": 1e999, "price": 1}', {"content-type": "application/json"}, "qty", "not finite"),
    (b'{"qty": 1, "price": 1e999}', {"content-type": "application/json"}, "price", "not finite"),
    (b'{"qty": 1, "price": "1E+999999999"}', {"content-type": "application/json"}, "price",
     "exponent out of range"),
    (b'{"qty":"1E+999999999::N","price":"1::N"}::JS', TYTX, "qty", "exponent out of range"),
    (b'{"qty":2,"price":"1E+999999999::N"}::JS', TYTX, "price", "exponent out of range"),
    (b'{"qty":2,"price":"NaN::N"}::JS', TYTX, "price", "not finite"),
    (b"qty=1&price=1E%2B999999999", {"content-type": "application/x-www-form-urlencoded"},
     "price", "exponent out of range"),
])
def test_body_numbers_are_bounded(client: Any, body: bytes, headers: dict[str, str],
                                  param: str, words: str) -> None:
    # refused where it is found: by the body's decoder (JSON floats, typed Decimals) or by
    # the binder (a string that coerces to a huge Decimal)
    response = client.post("/n/order", content=body, headers=headers)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert words in message, message
    assert f"parameter {param!r}" in message or message.startswith("malformed"), message


@pytest.mark.parametrize(("body", "headers"), [
    (b'{"qty": ' + b"9" * 5000 + b', "price": 1}', {"content-type": "application/json"}),
    (b'{"qty":"' + b"9" * 5000 + b'::L","price":"1::N"}::JS', TYTX),
])
def test_over_long_integer_literals_get_a_clean_message(client: Any, body: bytes,
                                                       headers: dict[str, str]) -> None:
    response = client.post("/n/order", content=body, headers=headers)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "integer longer than" in message
    assert "sys." not in message and "set_int_max_str_digits" not in message


def test_numbers_within_bounds_still_work(client: Any) -> None:
    assert client.get("/n/count?limit=" + "9" * 18).json() == {"limit": int("9" * 18)}
    assert client.get("/n/ratio?x=1e300").json() == {"x": 1e300}
    assert client.get("/n/double?d=1.5E%2B10").json() == {"d": "3.0E+10"}
    response = client.post("/n/order", content=b'{"qty":"3::L","price":"1.25::N"}::JS',
                           headers=TYTX)
    assert response.status_code == 200
    assert from_tytx(response.text, "json") == {"total": Decimal("3.75")}


def test_limits_come_from_config(make_server: Any, make_client: Any) -> None:
    server = make_server({"server": {"max_number_digits": 3, "max_number_exponent": 5}})
    server.mount("/n", Numbers())
    client = make_client(server)
    assert client.get("/n/count?limit=999").json() == {"limit": 999}
    _refused(client.get("/n/count?limit=1000"), "limit", "longer than 3 digits")
    _refused(client.get("/n/double?d=1E%2B6"), "d", "at most 5")
    assert server.number_limits == NumberLimits(3, 5)


@pytest.mark.parametrize("bad", [{"max_number_digits": 0}, {"max_number_exponent": -1},
                                 {"max_number_digits": "many"}])
def test_bad_limits_are_config_errors(make_server: Any, bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="max_number"):
        make_server({"server": bad})


# -- end to end: the loop keeps serving while bombs arrive -------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = AsgiServer(Path(tmp_path_factory.mktemp("numbers")), config={}, environ={})
    server.mount("/n", Numbers())
    with LiveServer(server) as live_server:
        yield live_server


@pytest.mark.e2e
def test_bombs_never_stall_other_clients(live: LiveServer) -> None:
    bombs = [
        ("/n/count?limit=1E%2B999999999%3A%3AN", TYTX),
        ("/n/count?limit=" + "1" * 6000 + "%3A%3AN", TYTX),  # a 6000-digit Decimal
        ("/n/anything?v=1E%2B999999999%3A%3AN", TYTX),
        ("/n/ratio?x=1E%2B999999999", {}),
    ]
    answers: list[int] = []
    errors: list[BaseException] = []

    def attacker() -> None:
        try:
            with httpx.Client(base_url=live.url, timeout=30) as http:
                for _ in range(5):
                    for url, headers in bombs:
                        answers.append(http.get(url, headers=headers).status_code)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=attacker) for _ in range(2)]
    for thread in threads:
        thread.start()
    with httpx.Client(base_url=live.url, timeout=30) as http:
        for n in range(20):
            assert http.get(f"/n/count?limit={n}").json() == {"limit": n}
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    assert not errors, errors
    assert answers == [400] * (2 * 5 * len(bombs))


@pytest.mark.e2e
def test_bomb_in_a_json_body_over_uvicorn(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        response = http.post("/n/order", content=b'{"qty":"1E+999999999::N","price":"1::N"}::JS',
                             headers=TYTX)
        assert response.status_code == 400
        assert "exponent out of range" in response.json()["error"]["message"]
        assert http.post("/n/order", json={"qty": 2, "price": "1.5"}).status_code == 200


class RawReader(AsgiApplication):
    """Handlers that decode the body themselves: the same bounds hold there."""

    @route(methods=["POST"])
    async def as_json(self, request: Request) -> Any:
        return await request.json()

    @route(methods=["POST"])
    async def as_tytx(self, request: Request) -> Any:
        return await request.tytx()


@pytest.mark.parametrize(("path", "body", "headers", "words"), [
    ("/r/as_json", b'{"a": 1e310}', {}, "not finite"),
    ("/r/as_json", b'[1, -1E999]', {}, "not finite"),
    ("/r/as_json", b'{"a": ' + b"7" * 200 + b"}", {}, "longer than 100 digits"),
    ("/r/as_json", b'{"a": NaN}', {}, "NaN"),
    ("/r/as_tytx", b'{"a":"1E+999999999::N"}::JS', TYTX, "exponent out of range"),
    ("/r/as_tytx", b'{"a":"inf::R"}::JS', TYTX, "not finite"),
    ("/r/as_tytx", b'{"a":"' + b"1" * 300 + b'::N"}::JS', TYTX, "more than 100 digits"),
])
def test_request_decoders_bound_numbers(make_server: Any, make_client: Any, path: str,
                                        body: bytes, headers: dict[str, str],
                                        words: str) -> None:
    server = make_server()
    server.mount("/r", RawReader())
    response = make_client(server).post(path, content=body,
                                        headers={"content-type": "application/json",
                                                 **headers})
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]["message"]


def test_request_decoders_pass_ordinary_numbers(make_server: Any, make_client: Any) -> None:
    server = make_server()
    server.mount("/r", RawReader())
    client = make_client(server)
    body = b'{"a": 1.5e10, "b": [1, 2.5, -3e-5], "when": "2025-01-02"}'
    assert client.post("/r/as_json", content=body,
                       headers={"content-type": "application/json"}).json() == {
        "a": 1.5e10, "b": [1, 2.5, -3e-5], "when": "2025-01-02"}
