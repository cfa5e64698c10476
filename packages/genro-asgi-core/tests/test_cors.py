"""The built-in ``cors`` plugin: config validation, the conformance table (in-process and against
a real uvicorn), WebSocket origin checks, hostile input and cooperation with the envelope.

The table runs every case through the project's TestClient and through httpx against uvicorn;
the WebSocket handshake over a real socket is in test_cors_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from genro_asgi import (
    AsgiApplication,
    AsgiServer,
    PlainTextResponse,
    PluginError,
    WebSocket,
    WebSocketDisconnect,
    route,
)
from genro_asgi.builtin.cors import CorsConfig, CorsPlugin, CorsPolicy
from genro_asgi.builtin.cors.middleware import add_cors_headers
from genro_asgi.testing import LiveServer, TestClient
from genro_asgi.types import Receive, Scope, Send

APP = "https://app.example"
OTHER = "https://evil.example"

POLICIES: dict[str, dict[str, Any]] = {
    "list": {"allow_origins": [APP, "http://localhost:3000"],
             "allow_methods": ["GET", "POST", "PUT"], "allow_headers": ["X-Token"],
             "expose_headers": ["X-Total"], "max_age": 123},
    "creds": {"allow_origins": [APP], "allow_origin_regex": r"https://[a-z]+\.preview\.example",
              "allow_credentials": True, "allow_methods": ["*"], "allow_headers": ["*"]},
    "star": {"allow_origins": ["*"], "allow_headers": ["x-token"],
             "expose_headers": ["x-total"]},
    "closed": {},
}


class Shop(AsgiApplication):
    @route(methods=["GET"])
    def hello(self) -> str:
        return "hello"

    @route(methods=["GET", "OPTIONS"])
    def items(self) -> str:
        return "route reached"

    @route(methods=["GET"])
    def varied(self) -> PlainTextResponse:
        # the app sets its own (wrong) CORS header and a Vary: the plugin owns CORS
        return PlainTextResponse("varied", headers={
            "Vary": "Accept-Encoding", "Access-Control-Allow-Origin": OTHER})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    ws = WebSocket(scope, receive, send)
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(f"echo:{text}")


def build(directory: Path, options: dict[str, Any] | None,
          plugins: dict[str, Any] | None = None) -> AsgiServer:
    configured = dict(plugins or {})
    if options is not None:
        configured["cors"] = options
    server = AsgiServer(directory, config={"plugins": configured}, environ={})
    server.mount("/", Shop())
    server.mount("/ws", echo)
    return server


# -- the conformance table -------------------------------------------------------------------

ABSENT = None
PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


@dataclass(frozen=True)
class Case:
    id: str
    policy: str
    method: str
    path: str
    headers: dict[str, str]
    status: int
    expect: dict[str, str | None] = field(default_factory=dict)
    body: str | None = None


def preflight(origin: str, method: str, headers: str | None = None) -> dict[str, str]:
    sent = {"origin": origin, "access-control-request-method": method}
    if headers is not None:
        sent["access-control-request-headers"] = headers
    return sent


CASES = [
    # simple requests
    Case("simple-no-origin", "list", "GET", "/hello", {}, 200,
         {"vary": "Origin", "access-control-allow-origin": ABSENT}, "hello"),
    Case("simple-allowed", "list", "GET", "/hello", {"origin": APP}, 200,
         {"access-control-allow-origin": APP, "access-control-expose-headers": "x-total",
          "vary": "Origin", "access-control-allow-credentials": ABSENT}, "hello"),
    Case("simple-allowed-second-origin", "list", "GET", "/hello",
         {"origin": "http://localhost:3000"}, 200,
         {"access-control-allow-origin": "http://localhost:3000"}),
    Case("simple-denied-keeps-status", "list", "GET", "/hello", {"origin": OTHER}, 200,
         {"access-control-allow-origin": ABSENT, "access-control-expose-headers": ABSENT,
          "vary": "Origin"}, "hello"),
    Case("simple-denied-trailing-slash", "list", "GET", "/hello", {"origin": APP + "/"}, 200,
         {"access-control-allow-origin": ABSENT}),
    Case("simple-denied-other-port", "list", "GET", "/hello", {"origin": APP + ":8443"}, 200,
         {"access-control-allow-origin": ABSENT}),
    Case("simple-denied-other-scheme", "list", "GET", "/hello",
         {"origin": "http://app.example"}, 200, {"access-control-allow-origin": ABSENT}),
    Case("simple-post-allowed", "list", "POST", "/hello", {"origin": APP}, 405,
         {"access-control-allow-origin": APP, "vary": "Origin"}),
    Case("error-response-has-cors", "list", "GET", "/missing", {"origin": APP}, 404,
         {"access-control-allow-origin": APP, "vary": "Origin"}),
    Case("head-allowed", "list", "HEAD", "/hello", {"origin": APP}, 200,
         {"access-control-allow-origin": APP}),
    # preflights
    Case("preflight-allowed", "list", "OPTIONS", "/hello", preflight(APP, "PUT", "X-Token"),
         204, {"access-control-allow-origin": APP,
               "access-control-allow-methods": "GET, POST, PUT",
               "access-control-allow-headers":
                   "accept, accept-language, content-language, content-type, x-token",
               "access-control-max-age": "123", "vary": PREFLIGHT_VARY,
               "access-control-allow-credentials": ABSENT, "content-length": ABSENT}, ""),
    Case("preflight-no-request-headers", "list", "OPTIONS", "/hello", preflight(APP, "POST"),
         204, {"access-control-allow-origin": APP, "access-control-allow-headers": ABSENT}),
    Case("preflight-safelisted-header", "list", "OPTIONS", "/hello",
         preflight(APP, "POST", "content-type, Accept"), 204,
         {"access-control-allow-origin": APP}),
    Case("preflight-never-reaches-route", "list", "OPTIONS", "/items", preflight(APP, "GET"),
         204, {"access-control-allow-origin": APP}, ""),
    Case("preflight-on-unknown-path", "list", "OPTIONS", "/missing", preflight(APP, "GET"),
         204, {"access-control-allow-origin": APP}),
    Case("preflight-denied-origin", "list", "OPTIONS", "/hello", preflight(OTHER, "GET"), 403,
         {"access-control-allow-origin": ABSENT, "access-control-allow-methods": ABSENT,
          "vary": ABSENT, "content-type": "text/plain; charset=utf-8"},
         "origin 'https://evil.example' is not allowed"),
    Case("preflight-denied-method", "list", "OPTIONS", "/hello", preflight(APP, "DELETE"), 403,
         {"access-control-allow-origin": ABSENT}, "method 'DELETE' is not allowed"),
    Case("preflight-denied-lowercase-method", "list", "OPTIONS", "/hello",
         preflight(APP, "put"), 403, {"access-control-allow-origin": ABSENT}, "method 'put'"),
    Case("preflight-denied-header", "list", "OPTIONS", "/hello",
         preflight(APP, "PUT", "x-token, X-Other"), 403,
         {"access-control-allow-origin": ABSENT}, "header 'x-other' is not allowed"),
    # not preflights: they reach the route
    Case("options-without-acrm", "list", "OPTIONS", "/items", {"origin": APP}, 200,
         {"access-control-allow-origin": APP, "vary": "Origin"}, "route reached"),
    Case("options-without-origin", "list", "OPTIONS", "/items",
         {"access-control-request-method": "PUT"}, 200,
         {"access-control-allow-origin": ABSENT, "vary": "Origin"}, "route reached"),
    Case("options-without-acrm-not-routed", "list", "OPTIONS", "/hello", {"origin": APP}, 405,
         {"access-control-allow-origin": APP}),
    # credentials, regex, '*' methods and headers echoed
    Case("creds-simple", "creds", "GET", "/hello", {"origin": APP}, 200,
         {"access-control-allow-origin": APP, "access-control-allow-credentials": "true",
          "vary": "Origin"}),
    Case("creds-regex-match", "creds", "GET", "/hello",
         {"origin": "https://feature.preview.example"}, 200,
         {"access-control-allow-origin": "https://feature.preview.example",
          "access-control-allow-credentials": "true"}),
    Case("creds-regex-is-a-full-match", "creds", "GET", "/hello",
         {"origin": "https://feature.preview.example.evil.com"}, 200,
         {"access-control-allow-origin": ABSENT, "access-control-allow-credentials": ABSENT,
          "vary": "Origin"}),
    Case("creds-preflight-echoes", "creds", "OPTIONS", "/hello",
         preflight("https://pr.preview.example", "PATCH", "X-Any, Authorization"), 204,
         {"access-control-allow-origin": "https://pr.preview.example",
          "access-control-allow-methods": "PATCH",
          "access-control-allow-headers": "x-any, authorization",
          "access-control-allow-credentials": "true", "access-control-max-age": "600"}),
    Case("creds-preflight-denied", "creds", "OPTIONS", "/hello", preflight(OTHER, "GET"), 403,
         {"access-control-allow-credentials": ABSENT}),
    # '*' origins without credentials: the same answer for everyone, so no Vary
    Case("star-no-origin", "star", "GET", "/hello", {}, 200,
         {"access-control-allow-origin": "*", "access-control-expose-headers": "x-total",
          "vary": ABSENT}),
    Case("star-any-origin", "star", "GET", "/hello", {"origin": OTHER}, 200,
         {"access-control-allow-origin": "*", "vary": ABSENT}),
    Case("star-preflight", "star", "OPTIONS", "/hello", preflight(OTHER, "GET", "x-token"), 204,
         {"access-control-allow-origin": "*", "access-control-allow-methods": "GET, HEAD, POST",
          "access-control-allow-headers":
              "accept, accept-language, content-language, content-type, x-token"}),
    Case("star-safelisted-method-not-listed", "list", "OPTIONS", "/hello",
         preflight(APP, "HEAD"), 204, {"access-control-allow-methods": "GET, POST, PUT"}),
    Case("star-preflight-authorization-not-covered", "star", "OPTIONS", "/hello",
         preflight(OTHER, "GET", "authorization"), 403, {}, "header 'authorization'"),
    # the defaults allow no origin at all
    Case("closed-simple", "closed", "GET", "/hello", {"origin": APP}, 200,
         {"access-control-allow-origin": ABSENT, "vary": "Origin"}),
    Case("closed-preflight", "closed", "OPTIONS", "/hello", preflight(APP, "GET"), 403),
    # Vary is merged, the app's own Access-Control-* headers are replaced
    Case("vary-merged", "list", "GET", "/varied", {"origin": APP}, 200,
         {"vary": "Accept-Encoding, Origin", "access-control-allow-origin": APP}),
    Case("vary-merged-denied", "list", "GET", "/varied", {"origin": OTHER}, 200,
         {"vary": "Accept-Encoding, Origin", "access-control-allow-origin": ABSENT}),
    Case("vary-untouched-star", "star", "GET", "/varied", {"origin": APP}, 200,
         {"vary": "Accept-Encoding", "access-control-allow-origin": "*"}),
]


def build_all(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AsgiServer]:
    """One server per policy (a server runs its lifespan on one event loop only)."""
    return {name: build(tmp_path_factory.mktemp(name), options)
            for name, options in POLICIES.items()}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AsgiServer]:
    return build_all(tmp_path_factory)


@pytest.fixture(scope="module")
def in_process(servers: dict[str, AsgiServer]) -> Iterator[dict[str, TestClient]]:
    clients = {name: TestClient(server).__enter__() for name, server in servers.items()}
    yield clients
    for client in clients.values():
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def over_uvicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, httpx.Client]]:
    lives = {name: LiveServer(server).start()
             for name, server in build_all(tmp_path_factory).items()}
    clients = {name: httpx.Client(base_url=live.url, timeout=10) for name, live in lives.items()}
    yield clients
    for client in clients.values():
        client.close()
    for live in lives.values():
        live.stop()


def check(response: httpx.Response, case: Case) -> None:
    assert response.status_code == case.status, response.text
    for name, expected in case.expect.items():
        assert response.headers.get(name) == expected, (name, dict(response.headers))
    if case.body is not None:
        if case.body == "":
            assert response.content == b""
        else:
            assert case.body in response.text
    if case.status == 403 and case.method == "OPTIONS":
        assert not [k for k in response.headers if k.startswith("access-control-")]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance_in_process(case: Case, in_process: dict[str, httpx.Client]) -> None:
    check(in_process[case.policy].request(case.method, case.path, headers=case.headers), case)


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance_over_uvicorn(case: Case, over_uvicorn: dict[str, httpx.Client]) -> None:
    check(over_uvicorn[case.policy].request(case.method, case.path, headers=case.headers), case)


# -- WebSocket handshakes, in-process (over uvicorn: test_cors_e2e.py) ------------------------

WS_CASES = [
    ("no-origin", "list", None, True),
    ("allowed", "list", APP, True),
    ("denied", "list", OTHER, False),
    ("regex", "creds", "https://x.preview.example", True),
    ("same-origin", "list", "http://testserver", True),
    ("same-origin-other-scheme", "list", "https://testserver", False),
    ("same-origin-other-port", "list", "http://testserver:8080", False),
    ("star", "star", OTHER, True),
    ("closed-denied", "closed", APP, False),
    ("closed-same-origin", "closed", "http://testserver", True),
]


@pytest.mark.parametrize(("policy", "origin", "accepted"), [c[1:] for c in WS_CASES],
                         ids=[c[0] for c in WS_CASES])
def test_websocket_origin_in_process(policy: str, origin: str | None, accepted: bool,
                                     in_process: dict[str, TestClient]) -> None:
    headers = [("origin", origin)] if origin is not None else []
    client = in_process[policy]
    if accepted:
        with client.websocket_connect("/ws", headers=headers) as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "echo:hi"
    else:
        with pytest.raises(WebSocketDisconnect) as info, \
                client.websocket_connect("/ws", headers=headers):
            pass
        assert info.value.code == 1008


def test_websocket_same_origin_can_be_turned_off(tmp_path: Path) -> None:
    server = build(tmp_path, {"allow_origins": [APP], "websocket_same_origin": False})
    with TestClient(server) as client:
        with pytest.raises(WebSocketDisconnect), \
                client.websocket_connect("/ws", headers=[("origin", "http://testserver")]):
            pass
        with client.websocket_connect("/ws", headers=[("origin", APP)]) as ws:
            ws.send_text("x")
            assert ws.receive_text() == "echo:x"


# -- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "key", "message"), [
    ({"allow_origins": ["https://app.example/"]}, "allow_origins.0", "trailing slash"),
    ({"allow_origins": ["https://app.example/api"]}, "allow_origins.0", "no path"),
    ({"allow_origins": ["https://app.example?x=1"]}, "allow_origins.0", "no path, query"),
    ({"allow_origins": ["app.example"]}, "allow_origins.0", "scheme://host"),
    ({"allow_origins": ["https://*.example.com"]}, "allow_origins.0", "allow_origin_regex"),
    ({"allow_origins": ["https://user@app.example"]}, "allow_origins.0", "no user"),
    ({"allow_origins": ["https://app.example:99999"]}, "allow_origins.0", "port"),
    ({"allow_origins": ["https://"]}, "allow_origins.0", "host"),
    ({"allow_origins": ["null"]}, "allow_origins.0", "scheme://host"),
    ({"allow_origins": "https://app.example"}, "allow_origins", "valid list"),
    ({"allow_origin_regex": "https://(unclosed"}, "allow_origin_regex",
     "invalid regular expression"),
    ({"allow_origins": ["*"], "allow_credentials": True}, "allow_credentials",
     "cannot be combined with '*'"),
    ({"allow_origins": [APP], "allow_credentials": True, "expose_headers": ["*"]},
     "expose_headers", "not a wildcard"),
    ({"allow_methods": ["GET", "BAD METHOD"]}, "allow_methods.1", "not a valid method"),
    ({"allow_headers": ["x-ok", "bad:header"]}, "allow_headers.1", "not a valid header"),
    ({"max_age": -1}, "max_age", "greater than or equal to 0"),
    ({"allow_origin": [APP]}, "allow_origin", "Extra inputs are not permitted"),
])
def test_config_errors_name_the_option(tmp_path: Path, options: dict[str, Any], key: str,
                                       message: str) -> None:
    with pytest.raises(PluginError) as info:
        build(tmp_path, options)
    text = str(info.value)
    assert f"plugins.cors.{key}:" in text
    assert message in text


def test_config_is_normalised() -> None:
    config = CorsConfig.model_validate({
        "allow_origins": ["HTTPS://App.Example:443", "http://Localhost:80", "http://[::1]:8000",
                          "https://app.example"],
        "allow_methods": ["get", "Patch"], "allow_headers": ["X-Token", "*"],
        "expose_headers": ["X-Total"],
    })
    assert config.allow_origins == ["https://app.example", "http://localhost",
                                    "http://[::1]:8000"]
    assert config.allow_methods == ["GET", "PATCH"]
    assert config.allow_headers == ["x-token", "*"]
    assert config.expose_headers == ["x-total"]
    defaults = CorsConfig()
    assert (defaults.allow_origins, defaults.allow_methods, defaults.allow_headers,
            defaults.allow_credentials, defaults.expose_headers, defaults.max_age) == \
        ([], ["GET", "HEAD", "POST"], [], False, [], 600)


def test_enabled_only_when_named(tmp_path: Path) -> None:
    server = build(tmp_path, None)
    assert "cors" in server.plugins.installed
    assert server.plugins.get("cors") is None
    with TestClient(server) as client:
        response = client.get("/hello", headers={"origin": APP})
        assert "vary" not in response.headers
        assert "access-control-allow-origin" not in response.headers
        assert client.options("/hello", headers=preflight(APP, "GET")).status_code == 405
    (tmp_path / "on").mkdir()
    enabled = build(tmp_path / "on", {"allow_origins": [APP]})
    assert isinstance(enabled.plugins.get("cors"), CorsPlugin)


def test_origin_allowed_for_other_plugins(tmp_path: Path) -> None:
    server = build(tmp_path, POLICIES["creds"])
    cors = server.plugins.get("cors")
    assert cors.origin_allowed(APP)
    assert cors.origin_allowed("https://abc.preview.example")
    assert not cors.origin_allowed("https://abc.preview.example:1")
    assert not cors.origin_allowed(OTHER)
    assert not cors.origin_allowed("https://\u2603.example")  # not latin-1: not a header
    assert not cors.origin_allowed("")


def test_cors_is_outside_unordered_plugins(tmp_path: Path, write_module: Any) -> None:
    module = write_module('''
        class Inner(Plugin):
            @hookimpl
            def genro_asgi_middleware(self):
                def factory(app):
                    return app
                return factory
    ''')
    server = build(tmp_path, {"allow_origins": [APP]},
                   {"aaa": {"module": f"{module}:Inner"}})
    order = [impl.plugin_name for impl in server.plugins.ordered_impls("genro_asgi_middleware")]
    assert order == ["cors", "aaa"]


# -- cooperation with the envelope and with inner middleware -----------------------------------

RECORDER = '''
    class Recorder(Plugin):
        @hookimpl
        def genro_asgi_envelope_closed(self, server, envelope):
            record(server, (envelope.method, envelope.status, type(envelope.error).__name__))
'''


def test_envelope_status_is_tracked(tmp_path: Path, write_module: Any) -> None:
    module = write_module(RECORDER)
    server = build(tmp_path, {"allow_origins": [APP]},
                   {"recorder": {"module": f"{module}:Recorder"}})
    with TestClient(server) as client:
        client.options("/hello", headers=preflight(APP, "GET"))
        client.options("/hello", headers=preflight(OTHER, "GET"))
        client.get("/hello", headers={"origin": OTHER})
        client.get("/missing", headers={"origin": APP})
        with pytest.raises(WebSocketDisconnect), \
                client.websocket_connect("/ws", headers=[("origin", OTHER)]):
            pass
    assert server.state.calls == [("OPTIONS", 204, "NoneType"), ("OPTIONS", 403, "NoneType"),
                                  ("GET", 200, "NoneType"), ("GET", 404, "NotFound"),
                                  ("WS", 403, "NoneType")]


def test_errors_raised_by_inner_middleware_carry_cors(tmp_path: Path,
                                                      write_module: Any) -> None:
    module = write_module(RECORDER, '''
        from genro_asgi import Unauthorized

        class Gate(Plugin):
            @hookimpl
            def genro_asgi_middleware(self):
                def factory(app):
                    async def gate(scope, receive, send):
                        if scope["path"] == "/denied":
                            raise Unauthorized(detail="no credential")
                        if scope["path"] == "/broken":
                            raise RuntimeError("boom")
                        await app(scope, receive, send)
                    return gate
                return factory
    ''')
    server = build(tmp_path, {"allow_origins": [APP]},
                   {"gate": {"module": f"{module}:Gate"},
                    "recorder": {"module": f"{module}:Recorder"}})
    with TestClient(server) as client:
        denied = client.get("/denied", headers={"origin": APP})
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == APP
        assert denied.json()["error"]["message"] == "no credential"
        broken = client.get("/broken", headers={"origin": APP})
        assert broken.status_code == 500
        assert broken.headers["access-control-allow-origin"] == APP
        assert client.options("/denied", headers=preflight(APP, "GET")).status_code == 204
    assert server.state.calls == [("GET", 401, "Unauthorized"), ("GET", 500, "RuntimeError"),
                                  ("OPTIONS", 204, "NoneType")]


def test_preflight_is_answered_before_auth(tmp_path: Path) -> None:
    server = build(tmp_path, {"allow_origins": [APP], "allow_headers": ["authorization"]},
                   {"auth": {"bearer": {"ci": {"token": "s3cret-token-42", "tags": ["admin"]}}}})
    with TestClient(server) as client:
        answer = client.options("/hello", headers=preflight(APP, "GET", "authorization"))
        assert answer.status_code == 204
        refused = client.get("/hello", headers={"origin": APP})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == APP
        ok = client.get("/hello",
                        headers={"origin": APP, "authorization": "Bearer s3cret-token-42"})
        assert (ok.status_code, ok.text) == (200, "hello")
        assert ok.headers["access-control-allow-origin"] == APP


def test_two_servers_do_not_share_a_policy(tmp_path: Path) -> None:
    one = build(tmp_path, {"allow_origins": [APP]})
    (tmp_path / "two").mkdir()
    two = build(tmp_path / "two", {"allow_origins": [OTHER]})
    assert one.plugins.get("cors").origin_allowed(APP)
    assert not two.plugins.get("cors").origin_allowed(APP)


# -- hostile input ----------------------------------------------------------------------------

@pytest.fixture
def raw(tmp_path_factory: pytest.TempPathFactory,
        asgi_call: Callable[..., Any]) -> Callable[..., Any]:
    servers = build_all(tmp_path_factory)

    def call(policy: str, method: str, headers: list[tuple[bytes, bytes]],
             path: str = "/hello") -> Any:
        return asyncio.run(asgi_call(servers[policy], path, method=method, headers=headers))

    return call


@pytest.mark.parametrize("policy", ["list", "creds", "star", "closed"])
@pytest.mark.parametrize("origin", [
    b"https://" + b"a" * 12_000 + b".preview.example",
    b"https://\xc3\xa9t\xe9.example",
    b"\x00\x01\x7f",
    b"",
    b"null",
    b" https://app.example ",
])
def test_hostile_origins_never_fail(raw: Callable[..., Any], policy: str,
                                    origin: bytes) -> None:
    simple = raw(policy, "GET", [(b"origin", origin)])
    assert simple.status == 200
    assert simple.header("access-control-allow-origin") in (None, "*")
    answer = raw(policy, "OPTIONS", [(b"origin", origin),
                                     (b"access-control-request-method", b"GET")])
    assert answer.status in (204, 403)
    assert len(answer.body) < 300
    if answer.status == 204:
        assert policy == "star" and answer.header("access-control-allow-origin") == "*"


@pytest.mark.parametrize(("method", "requested", "reason"), [
    (b"G E T", [], "method 'G E T'"),
    (b"\xff\xfe", [], "method"),
    (b"", [], "method ''"),
    (b"GET", [b"x-" + b"a" * 5000 + b" y"], "..."),
    (b"GET", [b"x-ok, bad header"], "header 'bad header'"),
    (b"GET", [b"\xff"], "header '\xff'"),
    (b"GET", [b",".join(b"x-h%d" % i for i in range(1000))], "more than 100 request headers"),
    (b"GET", [b"x-h%d, x-i%d" % (i, i) for i in range(60)], "more than 100 request headers"),
])
def test_hostile_preflights_are_403(raw: Callable[..., Any], method: bytes,
                                    requested: list[bytes], reason: str) -> None:
    headers = [(b"origin", b"https://x.preview.example"),
               (b"access-control-request-method", method),
               *[(b"access-control-request-headers", value) for value in requested]]
    answer = raw("creds", "OPTIONS", headers)
    assert answer.status == 403
    assert reason in answer.body.decode()
    assert len(answer.body) < 300
    assert not [k for k, _ in answer.headers if k.startswith(b"access-control-")]


def test_request_header_lines_are_combined(raw: Callable[..., Any]) -> None:
    answer = raw("list", "OPTIONS", [(b"origin", APP.encode()),
                                     (b"access-control-request-method", b"PUT"),
                                     (b"access-control-request-headers", b"x-token,,"),
                                     (b"access-control-request-headers", b" content-type ")])
    assert answer.status == 204
    duplicated = raw("creds", "OPTIONS", [(b"origin", APP.encode()),
                                          (b"access-control-request-method", b"GET"),
                                          (b"access-control-request-headers", b"x-a, X-A"),
                                          (b"access-control-request-headers", b"x-b")])
    assert duplicated.header("access-control-allow-headers") == "x-a, x-b"


def test_first_origin_header_wins(raw: Callable[..., Any]) -> None:
    answer = raw("list", "GET", [(b"origin", OTHER.encode()), (b"origin", APP.encode())])
    assert answer.header("access-control-allow-origin") is None


def test_regex_cache_stays_bounded(tmp_path: Path) -> None:
    policy = CorsPolicy(CorsConfig(allow_origin_regex=r"https://[a-z]+\.example"))
    for i in range(5000):
        assert not policy.allows(b"https://h%d.other" % i)
    assert len(policy._regex_seen) <= 1024
    assert policy.allows(b"https://ok.example")
    assert not policy.allows(b"https://ok.example" + b"x" * 2000)


# -- response header merging ------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "vary", "expected"), [
    ([], True, [(b"vary", b"Origin")]),
    ([(b"vary", b"Accept")], True, [(b"vary", b"Accept, Origin")]),
    ([(b"Vary", b"origin")], True, [(b"Vary", b"origin")]),
    ([(b"vary", b"*")], True, [(b"vary", b"*")]),
    ([(b"vary", b"")], True, [(b"vary", b"Origin")]),
    ([(b"vary", b"Accept"), (b"vary", b"Origin")], True,
     [(b"vary", b"Accept"), (b"vary", b"Origin")]),
    ([(b"vary", b"Accept")], False, [(b"vary", b"Accept")]),
    ([(b"Access-Control-Allow-Origin", b"*"), (b"x-a", b"1")], False, [(b"x-a", b"1")]),
])
def test_add_cors_headers(headers: list[tuple[bytes, bytes]], vary: bool,
                          expected: list[tuple[bytes, bytes]]) -> None:
    assert add_cors_headers(headers, [], vary) == expected
    extra = [(b"access-control-allow-origin", b"https://a.example")]
    assert add_cors_headers(headers, extra, vary) == [*expected, *extra]


# -- policy details ---------------------------------------------------------------------------

@pytest.mark.parametrize(("methods", "credentials", "asked", "answered"), [
    (["PUT", "GET"], False, b"PUT", b"GET, PUT"),
    (["PUT"], True, b"GET", b"PUT"),  # GET is safelisted: allowed, the list stays the config's
    ([], False, b"POST", b"POST"),  # nothing configured: name the safelisted method asked for
    (["*"], False, b"PATCH", b"*"),
    (["*"], True, b"PATCH", b"PATCH"),  # with credentials '*' is no wildcard: echo
])
def test_allow_methods_answer(methods: list[str], credentials: bool, asked: bytes,
                              answered: bytes) -> None:
    policy = CorsPolicy(CorsConfig(allow_origins=[APP], allow_methods=methods,
                                   allow_credentials=credentials))
    answer = policy.preflight(APP.encode(), asked, [])
    assert answer.status == 204
    assert dict(answer.headers)[b"access-control-allow-methods"] == answered


def test_star_origin_ignores_the_regex_and_never_varies() -> None:
    policy = CorsPolicy(CorsConfig(allow_origins=["*", APP], allow_origin_regex="nothing"))
    assert policy.regex is None and policy.allows(b"https://anyone.example")
    assert not policy.vary
    assert policy.static_headers == [(b"access-control-allow-origin", b"*")]


@pytest.mark.parametrize(("origin", "scheme", "host", "same"), [
    (b"http://example.com", "ws", b"example.com", True),
    (b"https://example.com", "wss", b"Example.COM", True),
    (b"https://example.com", "wss", b"example.com:443", True),
    (b"http://example.com:8000", "ws", b"example.com:8000", True),
    (b"http://example.com", "wss", b"example.com", False),
    (b"https://example.com", "ws", b"example.com", False),
    (b"http://example.com:8001", "ws", b"example.com:8000", False),
    (b"http://example.com.evil", "ws", b"example.com", False),
    (b"http://example.com", "ws", None, False),
])
def test_same_origin(origin: bytes, scheme: str, host: bytes | None, same: bool) -> None:
    policy = CorsPolicy(CorsConfig())
    assert policy.same_origin(origin, scheme, host) is same
