"""Request data structures: Headers, QueryParams, URL, Address and State."""

from __future__ import annotations

from typing import Any

import pytest

from genro_asgi import URL, Address, Headers, QueryParams, Request, State


def http_scope(**overrides: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http", "method": "GET", "scheme": "http", "path": "/", "root_path": "",
        "query_string": b"", "headers": [], "client": ("10.0.0.7", 51234),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(overrides)
    return scope


# -- Headers ---------------------------------------------------------------------------------


def test_headers_are_case_insensitive() -> None:
    headers = Headers([(b"content-type", b"text/plain"), (b"x-token", b"abc")])
    assert headers["Content-Type"] == "text/plain"
    assert headers["CONTENT-TYPE"] == "text/plain"
    assert headers.get("X-Token") == "abc"
    assert "X-TOKEN" in headers
    assert "x-missing" not in headers
    assert headers.get("x-missing") is None
    with pytest.raises(KeyError):
        headers["x-missing"]


def test_headers_accept_mixed_case_raw_names() -> None:
    # ASGI servers send lower-case names, but a hand-made scope may not.
    headers = Headers([(b"X-Custom", b"1")])
    assert headers["x-custom"] == "1"
    assert headers.getlist("X-CUSTOM") == ["1"]


def test_repeated_headers_are_joined_and_getlist_keeps_each_value() -> None:
    raw = [(b"accept", b"text/html"), (b"x-forwarded-for", b"1.1.1.1"),
           (b"accept", b"application/json"), (b"x-forwarded-for", b"2.2.2.2")]
    headers = Headers(raw)
    assert headers["accept"] == "text/html, application/json"
    assert headers.getlist("Accept") == ["text/html", "application/json"]
    assert headers.getlist("x-forwarded-for") == ["1.1.1.1", "2.2.2.2"]
    assert headers.getlist("x-none") == []
    # a mapping over the distinct (lower-cased) names
    assert len(headers) == 2
    assert sorted(headers) == ["accept", "x-forwarded-for"]
    assert headers.raw == raw


def test_headers_from_scope_and_non_string_membership() -> None:
    headers = Headers(scope=http_scope(headers=[(b"host", b"example.com")]))
    assert headers["host"] == "example.com"
    assert 42 not in headers
    assert len(Headers()) == 0
    assert Headers(scope=http_scope(headers=None)).get("host") is None


def test_headers_decode_latin1_values() -> None:
    headers = Headers([(b"x-name", "caf\xe9".encode("latin-1"))])
    assert headers["x-name"] == "caf\xe9"


# -- QueryParams -----------------------------------------------------------------------------


def test_query_params_last_value_wins_and_getlist_keeps_all() -> None:
    params = QueryParams("a=1&b=2&a=3")
    assert params["a"] == "3"
    assert params["b"] == "2"
    assert params.getlist("a") == ["1", "3"]
    assert params.getlist("zzz") == []
    assert len(params) == 2
    assert list(params) == ["a", "b"]
    assert params.multi_items() == [("a", "1"), ("b", "2"), ("a", "3")]


def test_query_params_keep_blank_values() -> None:
    params = QueryParams("empty=&flag&x=1")
    assert params["empty"] == ""
    assert params["flag"] == ""
    assert "flag" in params
    assert params["x"] == "1"


def test_query_params_decode_percent_and_plus() -> None:
    params = QueryParams(b"name=Jane+Doe&city=M%C3%BCnchen&amp=a%26b")
    assert params["name"] == "Jane Doe"
    assert params["amp"] == "a&b"
    # bytes are read as latin-1 first, as the raw ASGI query string is; percent escapes then
    # decode as UTF-8.
    assert params["city"] == "M\xfcnchen"


def test_query_params_from_pairs() -> None:
    params = QueryParams([("a", "1"), ("a", "2")])
    assert params["a"] == "2"
    assert params.getlist("a") == ["1", "2"]
    assert QueryParams() == {}


def test_query_params_refuse_too_many_fields() -> None:
    with pytest.raises(ValueError):
        QueryParams("&".join(f"k{i}=v" for i in range(1001)))


# -- URL -------------------------------------------------------------------------------------


def test_url_from_scope_uses_host_header_and_query() -> None:
    url = URL(scope=http_scope(path="/shop/list", query_string=b"limit=5&q=a%20b",
                               headers=[(b"host", b"shop.example:8080")]))
    assert url.scheme == "http"
    assert url.hostname == "shop.example"
    assert url.port == 8080
    assert url.path == "/shop/list"
    assert url.query == "limit=5&q=a%20b"
    assert url.netloc == "shop.example:8080"
    assert str(url) == "http://shop.example:8080/shop/list?limit=5&q=a%20b"


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        ("http", b"example.com:80", "http://example.com/"),
        ("https", b"example.com:443", "https://example.com/"),
        ("https", b"example.com:80", "https://example.com:80/"),
        ("http", b"example.com", "http://example.com/"),
        ("http", b"[::1]:8000", "http://[::1]:8000/"),
    ],
)
def test_url_omits_the_default_port(scheme: str, host: bytes, expected: str) -> None:
    url = URL(scope=http_scope(scheme=scheme, headers=[(b"host", host)]))
    assert str(url) == expected


def test_url_without_host_header_falls_back_to_server() -> None:
    url = URL(scope=http_scope(server=("10.1.2.3", 9000)))
    assert (url.hostname, url.port) == ("10.1.2.3", 9000)
    assert str(url) == "http://10.1.2.3:9000/"


def test_url_without_host_or_server_is_the_path() -> None:
    url = URL(scope=http_scope(path="/p", server=None, query_string=b"x=1"))
    assert url.hostname == ""
    assert url.port is None
    assert str(url) == "/p?x=1"


def test_url_includes_root_path() -> None:
    url = URL(scope=http_scope(root_path="/mounted", path="/inner",
                               headers=[(b"host", b"h")]))
    assert url.path == "/mounted/inner"
    assert str(url) == "http://h/mounted/inner"


def test_url_from_string_equality_and_hash() -> None:
    url = URL("https://example.com:443/a/b?x=1#frag")
    assert (url.scheme, url.hostname, url.port) == ("https", "example.com", 443)
    assert (url.path, url.query, url.fragment) == ("/a/b", "x=1", "frag")
    assert str(url) == "https://example.com/a/b?x=1#frag"
    assert url == "https://example.com/a/b?x=1#frag"
    assert url == URL("https://example.com/a/b?x=1#frag")
    assert hash(url) == hash(URL("https://example.com/a/b?x=1#frag"))
    assert url != URL("https://example.com/a/c")
    assert repr(url) == "URL('https://example.com/a/b?x=1#frag')"


def test_request_url_is_built_from_its_scope() -> None:
    scope = http_scope(path="/x", query_string=b"a=1", headers=[(b"host", b"api.local:81")])
    assert str(Request(scope, _never_receive).url) == "http://api.local:81/x?a=1"


# -- Address and State -----------------------------------------------------------------------


def test_address_is_a_named_pair() -> None:
    address = Address("127.0.0.1", 5000)
    host, port = address
    assert (host, port) == ("127.0.0.1", 5000)
    assert address.host == "127.0.0.1"
    assert address.port == 5000
    assert address == ("127.0.0.1", 5000)


def test_request_client_is_an_address_or_none() -> None:
    assert Request(http_scope(), _never_receive).client == Address("10.0.0.7", 51234)
    assert Request(http_scope(client=None), _never_receive).client is None


def test_state_is_an_attribute_bag() -> None:
    state = State(user="ann", count=1)
    assert state.user == "ann"
    state.count += 1
    state.extra = [1]
    assert state.count == 2
    assert vars(state) == {"user": "ann", "count": 2, "extra": [1]}
    assert "user" in repr(state)
    with pytest.raises(AttributeError):
        state.missing  # noqa: B018
    assert not hasattr(State(), "user")  # separate instances share nothing


def test_request_state_wraps_the_scope_state_once() -> None:
    scope = http_scope(state={"db": "conn"})
    request = Request(scope, _never_receive)
    state = request.state
    assert isinstance(state, State)
    assert state.db == "conn"
    state.user = "bob"
    # the State replaces the plain dict in the scope, so later readers see the same object
    assert scope["state"] is state
    assert Request(scope, _never_receive).state.user == "bob"


async def _never_receive() -> dict[str, Any]:
    raise AssertionError("the body must not be read")
