"""Handler parameters: bound from path, query and body (JSON, form, TYTX), coerced to their
annotations, with 400/415 answers that name what was wrong."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, Optional

import pytest

from genro_asgi import AsgiApplication, Request, route
from genro_asgi.binding import Binder


class Typed(AsgiApplication):
    @route()
    def coerce(
        self,
        i: int = 0,
        f: float = 0.0,
        b: bool = False,
        d: Decimal = Decimal("0"),
        day: datetime.date | None = None,
        at: datetime.datetime | None = None,
        ids: list[int] | None = None,
        maybe: Optional[int] = None,  # noqa: UP045
        s: str = "",
        untyped: Any = None,
    ) -> dict[str, Any]:
        return {
            "i": [i, type(i).__name__], "f": [f, type(f).__name__], "b": [b, type(b).__name__],
            "d": [str(d), type(d).__name__], "day": [str(day), type(day).__name__],
            "at": [str(at), type(at).__name__], "ids": ids, "maybe": maybe,
            "s": [s, type(s).__name__], "untyped": untyped,
        }

    @route()
    def order(self, sku: str, qty: int, note: str = "") -> dict[str, Any]:
        return {"sku": sku, "qty": qty, "note": note}

    @route()
    def nothing(self) -> str:
        return "nothing"

    @route()
    def anything(self, **kwargs: Any) -> dict[str, Any]:
        return {"kwargs": kwargs}

    @route()
    def mixed(self, first: int, **rest: Any) -> dict[str, Any]:
        return {"first": first, "rest": rest}

    @route()
    def tags(self, tag: list[str] | None = None) -> dict[str, Any]:
        return {"tag": tag}

    @route()
    def with_request(self, request: Request, n: int = 1) -> dict[str, Any]:
        return {"n": n, "ct": request.content_type}

    @route()
    def files(self, request: Request, root: str = "", *parts: str) -> dict[str, Any]:
        return {"root": root, "parts": list(parts), "method": request.method}


@pytest.fixture
def client(make_server: Any, make_client: Any) -> Any:
    server = make_server()
    server.mount("/b", Typed())
    return make_client(server)


def error_message(response: Any) -> str:
    message: str = response.json()["error"]["message"]
    return message


EXPECTED = {
    "i": [42, "int"], "f": [1.5, "float"], "b": [True, "bool"], "d": ["10.25", "Decimal"],
    "day": ["2025-01-15", "date"], "at": ["2025-01-15 10:30:00", "datetime"],
    "ids": [1, 2, 3], "maybe": 7, "s": ["123", "str"], "untyped": "u",
}


def test_query_values_are_coerced(client: Any) -> None:
    response = client.get("/b/coerce", params=[
        ("i", "42"), ("f", "1.5"), ("b", "true"), ("d", "10.25"), ("day", "2025-01-15"),
        ("at", "2025-01-15T10:30:00"), ("ids", "1"), ("ids", "2"), ("ids", "3"),
        ("maybe", "7"), ("s", "123"), ("untyped", "u"),
    ])
    assert response.status_code == 200
    assert response.json() == EXPECTED


def test_json_body_values_are_coerced(client: Any) -> None:
    response = client.post("/b/coerce", json={
        "i": 42, "f": "1.5", "b": "yes", "d": "10.25", "day": "2025-01-15",
        "at": "2025-01-15T10:30:00", "ids": ["1", 2, "3"], "maybe": "7", "s": "123",
        "untyped": "u",
    })
    assert response.status_code == 200
    assert response.json() == EXPECTED


def test_urlencoded_form_values_are_coerced(client: Any) -> None:
    response = client.post("/b/coerce", data={
        "i": "42", "f": "1.5", "b": "on", "d": "10.25", "day": "2025-01-15",
        "at": "2025-01-15T10:30:00", "maybe": "7", "s": "123", "untyped": "u",
    })
    assert response.status_code == 200
    expected = dict(EXPECTED, ids=None)
    assert response.json() == expected


def test_tytx_body_values_arrive_typed(client: Any) -> None:
    body = ('{"i":42,"f":1.5,"b":true,"d":"10.25::N","day":"2025-01-15::D",'
            '"at":"2025-01-15T10:30:00.000Z::DHZ","ids":[1,2,3],"maybe":7,"s":"123",'
            '"untyped":"u"}::JS')
    response = client.post("/b/coerce", content=body,
                           headers={"Content-Type": "application/vnd.tytx+json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.tytx+json"
    from genro_tytx import from_tytx

    result = from_tytx(response.text, "json")
    assert result["d"] == ["10.25", "Decimal"]
    assert result["day"] == ["2025-01-15", "date"]
    assert result["at"] == ["2025-01-15 10:30:00+00:00", "datetime"]
    assert result["ids"] == [1, 2, 3]


def test_defaults_apply_when_values_are_absent(client: Any) -> None:
    result = client.get("/b/coerce").json()
    assert result["i"] == [0, "int"]
    assert result["day"] == ["None", "NoneType"]
    assert result["ids"] is None


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("1", True), ("on", True), ("yes", True),
    ("false", False), ("0", False), ("off", False), ("no", False),
])
def test_bool_spellings(client: Any, value: str, expected: bool) -> None:
    assert client.get(f"/b/coerce?b={value}").json()["b"] == [expected, "bool"]


def test_a_single_value_for_a_list_parameter_is_a_list(client: Any) -> None:
    assert client.get("/b/coerce?ids=5").json()["ids"] == [5]
    assert client.get("/b/tags?tag=a&tag=b").json() == {"tag": ["a", "b"]}


def test_the_last_repeated_value_wins_for_a_scalar(client: Any) -> None:
    assert client.get("/b/coerce?i=1&i=2").json()["i"] == [2, "int"]


def test_missing_required_parameter_is_named(client: Any) -> None:
    response = client.get("/b/order?sku=A1")
    assert response.status_code == 400
    assert error_message(response) == "missing required parameter 'qty'"
    response = client.post("/b/order", json={"qty": 1})
    assert response.status_code == 400
    assert "'sku'" in error_message(response)


@pytest.mark.parametrize(("query", "name"), [
    ("i=abc", "i"), ("f=x", "f"), ("b=maybe", "b"), ("d=1.2.3", "d"), ("day=2025-13-01", "day"),
    ("at=yesterday", "at"), ("ids=1&ids=x", "ids"), ("maybe=nope", "maybe"),
])
def test_wrong_type_is_a_bad_request_naming_the_parameter(client: Any, query: str,
                                                          name: str) -> None:
    response = client.get(f"/b/coerce?{query}")
    assert response.status_code == 400
    # a list item or a model field is named by its path: 'ids.1', 'item.price'
    assert error_message(response).startswith(f"parameter '{name}")


def test_wrong_type_in_a_json_body(client: Any) -> None:
    response = client.post("/b/order", json={"sku": "A", "qty": "many"})
    assert response.status_code == 400
    assert error_message(response).startswith("parameter 'qty': ")


def test_unexpected_parameter_lists_the_accepted_ones(client: Any) -> None:
    response = client.get("/b/order?sku=A&qty=1&colour=red")
    assert response.status_code == 400
    assert error_message(response) == "unexpected parameter 'colour' (accepted: note, qty, sku)"
    response = client.post("/b/nothing", json={"x": 1})
    assert response.status_code == 400
    assert error_message(response) == "unexpected parameter 'x' (accepted: none)"
    assert client.get("/b/nothing?x=1").status_code == 400


def test_kwargs_handlers_accept_anything(client: Any) -> None:
    response = client.post("/b/anything?a=1&b=", json={"c": [1, 2], "d": {"e": None}})
    assert response.status_code == 200
    assert response.json() == {"kwargs": {"a": "1", "b": "", "c": [1, 2], "d": {"e": None}}}
    mixed = client.get("/b/mixed/5?extra=x")
    assert mixed.json() == {"first": 5, "rest": {"extra": "x"}}


def test_the_same_parameter_in_query_and_body_is_refused(client: Any) -> None:
    response = client.post("/b/order?qty=1", json={"sku": "A", "qty": 2})
    assert response.status_code == 400
    assert error_message(response) == "parameter 'qty' given twice (in the query and the body)"
    path_and_query = client.get("/b/order/A?sku=B&qty=1")
    assert path_and_query.status_code == 400
    assert "given twice (in the path and the query)" in error_message(path_and_query)


def test_multipart_fields_bind_and_an_unexpected_file_is_400(client: Any) -> None:
    # multipart/form-data is read since the [multipart] extra (test_multipart.py has the rest)
    response = client.post("/b/order", data={"sku": "A", "qty": "1"},
                           files={"note": (None, b"n")})
    assert response.json() == {"sku": "A", "qty": 1, "note": "n"}
    response = client.post("/b/order", data={"sku": "A", "qty": "1"},
                           files={"upload": ("a.txt", b"hello", "text/plain")})
    assert response.status_code == 400
    assert "unexpected parameter 'upload'" in error_message(response)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "image/png",
                                          "application/octet-stream"])
def test_unknown_content_type_is_unsupported(client: Any, content_type: str) -> None:
    response = client.post("/b/order", content=b'{"sku": "A", "qty": 1}',
                           headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert repr(content_type) in error_message(response)


@pytest.mark.parametrize("body", [b"[1, 2, 3]", b'"sku"', b"12", b"true", b"null"])
def test_a_json_body_that_is_not_an_object_is_a_bad_request(client: Any, body: bytes) -> None:
    response = client.post("/b/anything", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "object of named parameters" in error_message(response)


def test_malformed_json_body_is_a_bad_request(client: Any) -> None:
    response = client.post("/b/order", content=b'{"sku": "A", ',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_message(response).startswith("malformed JSON body")


def test_an_empty_body_binds_nothing(client: Any) -> None:
    response = client.post("/b/order?sku=A&qty=2", content=b"",
                           headers={"Content-Type": "application/json"})
    assert response.json() == {"sku": "A", "qty": 2, "note": ""}


def test_get_bodies_are_not_bound(client: Any) -> None:
    response = client.request("GET", "/b/order?sku=A&qty=2", content=b'{"note": "x"}',
                              headers={"Content-Type": "application/json"})
    assert response.json() == {"sku": "A", "qty": 2, "note": ""}


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_body_methods_bind_their_body(make_server: Any, make_client: Any,
                                            method: str) -> None:
    class Bodies(AsgiApplication):
        @route(methods=["PUT", "PATCH", "DELETE"])
        def item(self, sku: str, qty: int) -> dict[str, Any]:
            return {"sku": sku, "qty": qty}

    server = make_server()
    server.mount("/m", Bodies())
    client = make_client(server)
    response = client.request(method, "/m/item", json={"sku": "S", "qty": "4"})
    assert response.json() == {"sku": "S", "qty": 4}


def test_request_parameter_and_body(client: Any) -> None:
    response = client.post("/b/with_request", json={"n": "3"})
    assert response.json() == {"n": 3, "ct": "application/json"}


def test_a_request_only_handler_reads_a_raw_body(make_server: Any, make_client: Any) -> None:
    class Upload(AsgiApplication):
        @route(methods=["POST"])
        async def raw(self, request: Request) -> dict[str, Any]:
            body = await request.body()
            return {"size": len(body), "type": request.content_type}

        @route(methods=["POST"])
        async def named(self, request: Request, name: str = "") -> dict[str, Any]:
            return {"name": name}

    server = make_server()
    server.mount("/u", Upload())
    client = make_client(server)
    response = client.post("/u/raw", content=b"\x00\x01binary",
                           headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.json() == {"size": 8, "type": "application/octet-stream"}
    assert client.post("/u/raw", content=b"[1]").json() == {"size": 3, "type": ""}
    # as soon as the handler declares parameters, the body is bound to them again
    assert client.post("/u/named", json={"name": "n"}).json() == {"name": "n"}
    refused = client.post("/u/named", content=b"\x00",
                          headers={"Content-Type": "application/octet-stream"})
    assert refused.status_code == 415


@pytest.mark.parametrize(("path", "expected"), [
    ("/b/files", {"root": "", "parts": []}),
    ("/b/files/docs", {"root": "docs", "parts": []}),
    ("/b/files/docs/a/b.txt", {"root": "docs", "parts": ["a", "b.txt"]}),
])
def test_trailing_segments_fill_args_beside_the_request(client: Any, path: str,
                                                        expected: dict[str, Any]) -> None:
    """The Request before ``*parts`` goes by position too: never a 'multiple values' 500."""
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.json() == {**expected, "method": "GET"}


def test_bind_mapping_fills_args_beside_the_connection() -> None:
    def handler(request: Request, root: str = "", *parts: str) -> None:
        return None

    binder = Binder(handler)
    connection = object()
    args, kwargs = binder.bind_mapping({}, ["docs", "a", "b"], connection)
    assert args == (connection, "docs", "a", "b") and kwargs == {}


def test_binder_compiles_the_signature_once() -> None:
    def handler(a: int, request: Request, b: str = "x", *args: Any, **kw: Any) -> None:
        return None

    binder = Binder(handler)
    assert [p.name for p in binder.params] == ["a", "b"]
    assert binder.request_param == "request"
    assert binder.accepts_args and binder.accepts_kwargs
    assert not binder.takes_nothing
    assert binder.by_name["a"].required and not binder.by_name["b"].required
    assert binder.by_name["b"].adapter is None  # str costs nothing

    def bare() -> None:
        return None

    assert Binder(bare).takes_nothing
