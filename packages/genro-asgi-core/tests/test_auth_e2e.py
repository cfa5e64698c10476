"""The auth plugin end to end: WebSocket handshakes, the hash-password CLI, secrets from the
environment, custom backend plugins by dotted path, public paths, route rules (also with
genro-routes' own auth plugin plugged), identities on request and envelope, failure logs,
hostile input, the basic cache, and the server-side API (identify, find_route, invoke).

Tests marked ``e2e`` run a real uvicorn; the others drive the server in-process.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from genro_asgi import (
    AsgiApplication,
    AsgiServer,
    ConfigError,
    Forbidden,
    GenroAsgiError,
    Identity,
    Request,
    Unauthorized,
    WebSocket,
    WebSocketDisconnect,
    route,
)
from genro_asgi.builtin.auth import hash_password
from genro_asgi.builtin.auth.passwords import PasswordHash
from genro_asgi.testing import LiveServer, TestClient
from genro_asgi.types import Receive, Scope, Send

MakeServer = Callable[..., AsgiServer]
TOKEN = "tok-e2e-0123456789"
GUEST_TOKEN = "tok-guest-0123456789"
OPS_TOKEN = "tok-ops-0123456789"
JWT_SECRET = "e2e-jwt-secret-" * 3


class Api(AsgiApplication):
    @route()
    def whoami(self, request: Request) -> dict[str, Any]:
        identity = request.identity
        return {"id": identity.id if identity else None,
                "envelope": request.envelope.identity is identity if request.envelope else None}

    @route(auth="admin|ops")
    def admin_or_ops(self) -> str:
        return "admin or ops"

    @route(auth="admin&!guest")
    def admin_not_guest(self) -> str:
        return "admin, not guest"

    @route(auth="admin")
    def item(self, item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @route()
    def index(self) -> str:
        return "index"


class Plugged(AsgiApplication):
    """Plugs genro-routes' own auth plugin: its lookups then need the caller's tags."""

    def __init__(self) -> None:
        super().__init__()
        self.route.plug("auth")

    @route()
    def open(self) -> str:
        return "open"

    @route(auth="admin")
    def secret(self) -> str:
        return "secret"

    @route(auth="admin|ops")
    async def either(self, request: Request) -> dict[str, Any]:
        assert request.identity is not None
        return {"id": request.identity.id}


class BadRule(AsgiApplication):
    @route(auth="admin&|ops")
    def broken(self) -> str:
        return "never"


async def ws_whoami(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept and report the identity the handshake established."""
    ws = WebSocket(scope, receive, send)
    await ws.accept()
    identity = ws.identity
    await ws.send_json(identity.summary() if identity else None)
    await ws.close()


def tokens(**extra: Any) -> dict[str, Any]:
    return {"bearer": {"admin": {"token": TOKEN, "tags": ["admin"]},
                       "guest": {"token": GUEST_TOKEN, "tags": ["admin", "guest"]},
                       "ops": {"token": OPS_TOKEN, "tags": ["ops"]}}, **extra}


def auth_server(make_server: MakeServer, auth: dict[str, Any],
                plugins: dict[str, Any] | None = None, **kwargs: Any) -> AsgiServer:
    server = make_server({"plugins": {"auth": auth, **(plugins or {})}}, **kwargs)
    server.mount("/api", Api())
    server.mount("/ws", ws_whoami)
    return server


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def basic(user: str, password: str | bytes) -> dict[str, str]:
    raw = password if isinstance(password, bytes) else password.encode()
    return {"authorization": "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()}


# -- WebSocket handshakes through a real uvicorn ------------------------------------------------


@pytest.mark.e2e
def test_websocket_handshake_needs_a_credential(make_server: MakeServer) -> None:
    """uvicorn offers ``websocket.http.response``: the refusal is a real HTTP 401."""
    server = auth_server(make_server, tokens())

    async def refused(url: str, headers: dict[str, str]) -> Any:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(url, additional_headers=headers, open_timeout=10):
                pass
        return info.value.response

    async def accepted(url: str) -> Any:
        async with websockets.connect(url, additional_headers=bearer(TOKEN),
                                      open_timeout=10) as conn:
            return await asyncio.wait_for(conn.recv(), 10)

    with LiveServer(server) as live:
        url = f"{live.ws_url}/ws"
        missing = asyncio.run(refused(url, {}))
        wrong = asyncio.run(refused(url, bearer("tok-wrong-0123456789")))
        answer = asyncio.run(accepted(url))
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="genro-asgi"'
    assert b'"authentication required"' in missing.body
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert TOKEN not in wrong.body.decode()
    assert answer == '{"id":"admin","tags":["admin"],"backend":"bearer"}'


def test_websocket_handshake_in_process_is_closed_1008(make_server: MakeServer) -> None:
    """Without the denial-response extension the handshake is refused with a close (1008)."""
    server = auth_server(make_server, tokens())
    with TestClient(server) as client:
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws"):
            pass
        assert info.value.code == 1008
        with client.websocket_connect("/ws", headers=[("authorization", f"Bearer {TOKEN}")]) \
                as ws:
            assert json.loads(ws.receive_text())["id"] == "admin"


def test_websocket_close_reason_fits_a_close_frame(write_module: Any,
                                                  make_server: MakeServer) -> None:
    """A close frame's reason holds 123 bytes of UTF-8: a long non-ASCII detail is cut by bytes
    (cutting 120 characters would leave up to 480 bytes)."""
    module = write_module('''
        from genro_asgi import Unauthorized

        class Wordy(Plugin):
            @hookimpl
            def genro_asgi_identify(self, connection):
                raise Unauthorized(detail="accès refusé " * 40)
    ''')
    server = auth_server(make_server, tokens(), {"wordy": {"module": f"{module}:Wordy"}})
    with TestClient(server) as client, pytest.raises(WebSocketDisconnect) as info, \
            client.websocket_connect("/ws"):
        pass
    assert info.value.code == 1008
    reason = info.value.reason.encode("utf-8")
    assert 100 < len(reason) <= 123
    assert ("accès refusé " * 40).encode("utf-8").startswith(reason)


def test_off_unless_named(make_server: MakeServer) -> None:
    server = make_server({})
    server.mount("/api", Api())
    assert "auth" in server.plugins.installed
    assert server.plugins.get("auth") is None
    with TestClient(server) as client:
        response = client.get("/api/whoami")
        assert response.json() == {"id": None, "envelope": True}
        assert "www-authenticate" not in response.headers
        # a route rule still needs an identity, which nothing can give without the plugin
        assert client.get("/api/admin_or_ops").status_code == 401


# -- the hash-password CLI ----------------------------------------------------------------------


def run_cli(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genro_asgi", "hash-password", *args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.e2e
def test_hash_password_cli_produces_a_working_hash(make_server: MakeServer) -> None:
    done = run_cli("--stdin", "--iterations", "1000", stdin="correct horse ✓\nignored\n")
    assert done.returncode == 0, done.stderr
    stored = done.stdout.strip()
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert "correct horse" not in done.stdout + done.stderr
    server = auth_server(make_server, {"basic": {"ann": {"password_hash": stored}}})
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        assert client.get("/api/whoami", headers=basic("ann", "correct horse ✓")).json()["id"] \
            == "ann"
        assert client.get("/api/whoami", headers=basic("ann", "correct horse")).status_code \
            == 401


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("--stdin",), "\n", "empty password"),
    (("--stdin", "--iterations", "0"), "pw\n", "iterations must be between"),
])
def test_hash_password_cli_errors(args: tuple[str, ...], stdin: str, message: str) -> None:
    done = run_cli(*args, stdin=stdin)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


# -- secrets from the environment ---------------------------------------------------------------


def test_env_secrets(make_server: MakeServer) -> None:
    auth = {"bearer": {"ci": {"token": {"$env": "CI_TOKEN"}, "tags": ["admin"]}},
            "basic": {"ann": {"password_hash": {"$env": "ANN_HASH"}}},
            "jwt": {"secret": {"$env": "JWT_SECRET"}}}
    environ = {"CI_TOKEN": TOKEN, "ANN_HASH": hash_password("pw", 1000),
               "JWT_SECRET": JWT_SECRET}
    server = auth_server(make_server, auth, environ=environ)
    dumped = str(server.config.dump())
    assert TOKEN not in dumped and JWT_SECRET not in dumped and "pbkdf2" not in dumped
    token = jwt.encode({"sub": "joe", "exp": int(time.time()) + 60}, JWT_SECRET, "HS256")
    with TestClient(server) as client:
        assert client.get("/api/whoami", headers=bearer(TOKEN)).json()["id"] == "ci"
        assert client.get("/api/whoami", headers=basic("ann", "pw")).json()["id"] == "ann"
        assert client.get("/api/whoami", headers=bearer(token)).json()["id"] == "joe"


@pytest.mark.e2e
def test_env_secrets_through_uvicorn(make_server: MakeServer) -> None:
    server = auth_server(make_server, {"bearer": {"ci": {"token": {"$env": "CI_TOKEN"}}}},
                         environ={"CI_TOKEN": TOKEN})
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        assert client.get("/api/whoami", headers=bearer(TOKEN)).json()["id"] == "ci"
        assert client.get("/api/whoami", headers=bearer("{$env: CI_TOKEN}")).status_code == 401


def test_env_secret_missing_names_the_key(make_server: MakeServer) -> None:
    with pytest.raises(GenroAsgiError) as info:
        auth_server(make_server, {"bearer": {"ci": {"token": {"$env": "NOT_SET"}}}})
    assert "plugins.auth.bearer.ci.token" in str(info.value)
    assert "NOT_SET" in str(info.value)


# -- custom backends: genro_asgi_identify by dotted path ----------------------------------------


BACKENDS = '''
from genro_asgi import Identity, Unauthorized


class SyncTicket(Plugin):
    @hookimpl
    def genro_asgi_identify(self, connection):
        ticket = connection.headers.get("x-ticket")
        if ticket == "sync-ok":
            return Identity.of("sync-user", ["admin"], "ticket")
        return None


class AsyncTicket(Plugin):
    @hookimpl
    async def genro_asgi_identify(self, server, connection):
        await asyncio.sleep(0)
        ticket = connection.headers.get("x-async-ticket")
        if ticket is None:
            return None
        if ticket.startswith("async-"):
            return Identity.of(ticket, [], "ticket")
        raise Unauthorized(detail="ticket refused")


class NotAnIdentity(Plugin):
    @hookimpl
    def genro_asgi_identify(self, connection):
        return {"id": "eve"} if "x-ticket" in connection.headers else None


class Crashing(Plugin):
    @hookimpl
    def genro_asgi_identify(self, connection):
        raise RuntimeError("backend down")
'''


@pytest.mark.e2e
def test_custom_backends_sync_and_async(write_module: Any, make_server: MakeServer) -> None:
    module = write_module(BACKENDS, stem="backends")
    server = auth_server(make_server, tokens(),
                         {f"{module}:SyncTicket": {},
                          "async_ticket": {"module": f"{module}:AsyncTicket"}})
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        def get(path: str, header: str, ticket: str) -> httpx.Response:
            return client.get(path, headers={header: ticket})

        assert get("/api/whoami", "x-ticket", "sync-ok").json()["id"] == "sync-user"
        assert get("/api/admin_or_ops", "x-ticket", "sync-ok").text == "admin or ops"
        assert get("/api/whoami", "x-ticket", "unknown").status_code == 401  # sync: None
        assert get("/api/whoami", "x-async-ticket", "async-42").json()["id"] == "async-42"
        assert get("/api/admin_or_ops", "x-async-ticket", "async-42").status_code == 403
        refused = get("/api/whoami", "x-async-ticket", "forged")
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == "ticket refused"
        assert "WWW-Authenticate" in refused.headers
        # configured backends come first: a bearer token wins over the ticket
        both = client.get("/api/whoami", headers={"x-async-ticket": "forged", **bearer(TOKEN)})
        assert both.json()["id"] == "admin"
        # the first plugin (by name: async_ticket) that raises ends the search
        both = client.get("/api/whoami", headers={"x-async-ticket": "forged",
                                                  "x-ticket": "sync-ok"})
        assert both.status_code == 401


@pytest.mark.parametrize(("plugin", "message"), [
    ("NotAnIdentity", "must return an Identity or None, not dict"),
    ("Crashing", "failed in genro_asgi_identify: RuntimeError('backend down')"),
])
def test_custom_backend_errors_are_clear(write_module: Any, make_server: MakeServer,
                                         caplog: pytest.LogCaptureFixture, plugin: str,
                                         message: str) -> None:
    module = write_module(BACKENDS, stem="backends")
    server = auth_server(make_server, tokens(), {"ticket": {"module": f"{module}:{plugin}"}})
    with TestClient(server) as client, caplog.at_level(logging.ERROR):
        response = client.get("/api/whoami", headers={"x-ticket": "t"})
        assert response.status_code == 500
        assert "eve" not in response.text
        # the hook is consulted only when no configured backend took the request
        assert client.get("/api/whoami", headers=bearer(TOKEN)).status_code == 200
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
    assert "'ticket'" in logged and message in logged


# -- public paths and anonymous -----------------------------------------------------------------


class Static(AsgiApplication):
    @route()
    def index(self) -> str:
        return "static index"

    @route()
    def x(self) -> str:
        return "static x"


@pytest.mark.parametrize(("path", "status"), [
    ("/health", 200), ("/health/deep", 401),
    ("/static", 200), ("/static/", 200), ("/static/x", 200), ("/static/x/y", 404),
    ("/staticx", 401), ("/staticx/index", 401), ("/api/whoami", 401),
])
def test_public_paths_exact_and_prefix(make_server: MakeServer, path: str, status: int) -> None:
    server = auth_server(make_server, tokens(public=["/health", "/static/*"]))
    server.mount("/health", Static())
    server.mount("/static", Static())
    server.mount("/staticx", Static())
    with TestClient(server) as client:
        assert client.get(path).status_code == status


def test_public_path_still_checks_a_credential(make_server: MakeServer) -> None:
    server = auth_server(make_server, tokens(public=["/api/*"]))
    with TestClient(server) as client:
        assert client.get("/api/whoami").json()["id"] is None
        assert client.get("/api/whoami", headers=bearer(TOKEN)).json()["id"] == "admin"
        assert client.get("/api/whoami", headers=bearer("tok-wrong-0123456789")).status_code \
            == 401
        # a public path does not lift a route's rule
        denied = client.get("/api/admin_or_ops")
        assert denied.status_code == 401 and "WWW-Authenticate" in denied.headers


def test_anonymous_true(make_server: MakeServer) -> None:
    server = auth_server(make_server, tokens(anonymous=True))
    with TestClient(server) as client:
        assert client.get("/api/whoami").json() == {"id": None, "envelope": True}
        assert client.get("/api/").text == "index"
        guarded = client.get("/api/admin_or_ops")
        assert guarded.status_code == 401
        assert guarded.headers["WWW-Authenticate"] == 'Bearer realm="genro-asgi"'
        assert client.get("/api/whoami", headers=bearer("tok-wrong-0123456789")).status_code \
            == 401
        assert client.get("/api/admin_or_ops", headers=bearer(TOKEN)).status_code == 200


# -- route rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(("token", "or_status", "not_guest_status"), [
    (TOKEN, 200, 200),        # admin
    (OPS_TOKEN, 200, 403),    # ops
    (GUEST_TOKEN, 200, 403),  # admin + guest
])
def test_route_rules(make_server: MakeServer, token: str, or_status: int,
                     not_guest_status: int) -> None:
    server = auth_server(make_server, tokens())
    with TestClient(server) as client:
        assert client.get("/api/admin_or_ops", headers=bearer(token)).status_code == or_status
        denied = client.get("/api/admin_not_guest", headers=bearer(token))
        assert denied.status_code == not_guest_status
        if not_guest_status == 403:
            assert "WWW-Authenticate" not in denied.headers
            assert "admin&!guest" in denied.json()["error"]["message"]


def test_route_rule_with_path_argument(make_server: MakeServer) -> None:
    server = auth_server(make_server, tokens())
    with TestClient(server) as client:
        assert client.get("/api/item/7", headers=bearer(TOKEN)).json() == {"item": 7}
        assert client.get("/api/item/7", headers=bearer(OPS_TOKEN)).status_code == 403
        assert client.get("/api/item/7?item_id=8", headers=bearer(OPS_TOKEN)).status_code \
            == 403


def test_invalid_rule_is_a_config_error_at_startup(make_server: MakeServer) -> None:
    server = make_server({})
    with pytest.raises(ConfigError, match=r"route /bad/broken: invalid auth rule 'admin&\|ops'"):
        server.mount("/bad", BadRule())
        server.build()


@pytest.mark.e2e
def test_genro_routes_auth_plugin_plugged(make_server: MakeServer) -> None:
    server = auth_server(make_server, tokens())
    server.mount("/plugged", Plugged())
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        def get(path: str, token: str | None = None) -> httpx.Response:
            return client.get(path, headers=bearer(token) if token else {})

        assert get("/plugged/open", OPS_TOKEN).text == "open"
        assert get("/plugged/secret", TOKEN).text == "secret"
        assert get("/plugged/secret", OPS_TOKEN).status_code == 403
        assert get("/plugged/secret").status_code == 401
        assert get("/plugged/either", OPS_TOKEN).json() == {"id": "ops"}
        assert get("/plugged/either", TOKEN).json() == {"id": "admin"}
        # the per-tag-set node cache answers the same on the second call
        assert get("/plugged/either", OPS_TOKEN).json() == {"id": "ops"}
        assert get("/plugged/secret", OPS_TOKEN).status_code == 403


# -- identity on request and envelope -----------------------------------------------------------


CAPTURE = '''
class Capture(Plugin):
    @hookimpl
    def genro_asgi_envelope_closed(self, server, envelope):
        record(server, (envelope.path, envelope.status, envelope.identity))
'''


def test_identity_on_request_and_envelope(write_module: Any, make_server: MakeServer) -> None:
    module = write_module(CAPTURE, stem="capture")
    server = auth_server(make_server, tokens(), {"capture": {"module": f"{module}:Capture"}})
    with TestClient(server) as client:
        assert client.get("/api/whoami", headers=bearer(TOKEN)).json() == \
            {"id": "admin", "envelope": True}
        client.get("/api/whoami")
        client.get("/api/admin_or_ops", headers=bearer(GUEST_TOKEN))
        client.get("/api/admin_not_guest", headers=bearer(GUEST_TOKEN))
        with client.websocket_connect("/ws", headers=[("authorization", f"Bearer {OPS_TOKEN}")]) \
                as ws:
            ws.receive_text()
    seen = [(path, status, identity.id if identity else None)
            for path, status, identity in server.state.calls]
    assert seen[:4] == [("/api/whoami", 200, "admin"), ("/api/whoami", 401, None),
                        ("/api/admin_or_ops", 200, "guest"),
                        ("/api/admin_not_guest", 403, "guest")]
    assert seen[4][0] == "/ws" and seen[4][2] == "ops"
    assert isinstance(server.state.calls[0][2], Identity)


# -- failed attempts are logged, never with the secret ------------------------------------------


def test_failures_logged_without_secrets(make_server: MakeServer,
                                         caplog: pytest.LogCaptureFixture) -> None:
    password = "P4ssw0rd-never-logged"
    wrong_key = "key-never-logged-0123"
    wrong_token = "tok-never-logged-0123"
    auth = tokens(basic={"ann": {"password_hash": hash_password(password, 1000)}},
                  api_key={"keys": {"svc": {"key": "key-right-0123456789"}}},
                  jwt={"secret": JWT_SECRET})
    server = auth_server(make_server, auth)
    expired = jwt.encode({"sub": "joe", "exp": int(time.time()) - 60}, JWT_SECRET, "HS256")
    with TestClient(server) as client, caplog.at_level(logging.WARNING, logger="genro_asgi.auth"):
        for headers in (bearer(wrong_token), basic("ann", password + "x"),
                        {"x-api-key": wrong_key}, bearer(expired)):
            assert client.get("/api/whoami", headers=headers).status_code == 401
    failures = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("authentication failed")]
    assert len(failures) == 4
    assert "backend=bearer" in failures[0] and "reason=unknown bearer token" in failures[0]
    assert "backend=basic subject='ann'" in failures[1]
    assert "backend=api_key" in failures[2]
    assert "backend=jwt" in failures[3] and "token expired" in failures[3]
    assert all("client=127.0.0.1 path='/api/whoami'" in f for f in failures)
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (password, wrong_key, wrong_token, expired, JWT_SECRET):
        assert secret not in everything


# -- hostile input ------------------------------------------------------------------------------


def hostile_server(make_server: MakeServer) -> AsgiServer:
    auth = tokens(basic={"ann": {"password_hash": hash_password("pw", 1000)}},
                  api_key={"keys": {"svc": {"key": "key-right-0123456789"}}},
                  jwt={"secret": JWT_SECRET})
    return auth_server(make_server, auth)


HOSTILE = [
    ("non-utf8-basic", [(b"authorization", b"Basic " + base64.b64encode(b"ann:\xff\xfe"))], 401),
    ("basic-no-colon", [(b"authorization", b"Basic " + base64.b64encode(b"annpw"))], 401),
    ("basic-invalid-base64", [(b"authorization", b"Basic !!!not-base64!!!")], 401),
    ("basic-empty", [(b"authorization", b"Basic")], 401),
    ("basic-only-colon", [(b"authorization", b"Basic " + base64.b64encode(b":"))], 401),
    ("bearer-no-token", [(b"authorization", b"Bearer")], 401),
    ("bearer-spaces", [(b"authorization", b"Bearer     ")], 401),
    ("bearer-non-ascii", [(b"authorization", b"Bearer \xff\xfe.\x00\x01.\x80")], 401),
    ("bearer-three-dots-garbage", [(b"authorization", b"Bearer a.b.c")], 401),
    ("unknown-scheme", [(b"authorization", b"Negotiate YIIJ")], 401),
    ("scheme-only-space", [(b"authorization", b" ")], 401),
    ("empty-authorization", [(b"authorization", b"")], 401),
    ("empty-api-key", [(b"x-api-key", b"")], 401),
    ("binary-api-key", [(b"x-api-key", b"\x00\xff")], 401),
    ("two-authorizations", [(b"authorization", b"Bearer " + TOKEN.encode()),
                            (b"authorization", b"Bearer nope-0123456789")], 400),
    ("huge-authorization", [(b"authorization", b"Bearer " + b"a" * 20_000)], 431),
    ("huge-basic", [(b"authorization", b"Basic " + base64.b64encode(b"a:" + b"b" * 13_000))],
     431),
    ("many-headers", [(f"x-h{i}".encode(), b"v") for i in range(150)], 431),
]


@pytest.mark.parametrize(("headers", "status"), [(h, s) for _, h, s in HOSTILE],
                         ids=[name for name, _, _ in HOSTILE])
async def test_hostile_input_in_process(make_server: MakeServer, asgi_call: Any,
                                        headers: list[tuple[bytes, bytes]], status: int) -> None:
    server = hostile_server(make_server)
    server.build()
    response = await asgi_call(server, "/api/whoami", headers=headers)
    assert response.status == status
    if status == 401:
        assert response.header("www-authenticate")


@pytest.mark.e2e
def test_hostile_input_through_uvicorn(make_server: MakeServer) -> None:
    server = hostile_server(make_server)
    sendable = [(name, h, s) for name, h, s in HOSTILE
                if all(b"\x00" not in v and not v.endswith(b" ") for _, v in h)]
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        for name, headers, status in sendable:
            response = client.get("/api/whoami", headers=headers)
            assert response.status_code == status, name
        assert client.get("/api/whoami", headers=bearer(TOKEN)).json()["id"] == "admin"


# -- the basic cache and the decoy --------------------------------------------------------------


@pytest.fixture
def count_verify(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = PasswordHash.verify

    def counting(self: PasswordHash, password: str, rounds: int = 0) -> bool:
        calls.append(password)
        return original(self, password, rounds)

    monkeypatch.setattr(PasswordHash, "verify", counting)
    return calls


def test_basic_cache_skips_reverification(make_server: MakeServer,
                                          count_verify: list[str]) -> None:
    server = auth_server(make_server, {"basic": {
        "ann": {"password_hash": hash_password("pw", 1000)},
        "bob": {"password_hash": hash_password("pw2", 1000)}}})
    with TestClient(server) as client:
        for _ in range(3):
            assert client.get("/api/whoami", headers=basic("ann", "pw")).json()["id"] == "ann"
        assert count_verify == ["pw"]
        # a wrong password is never cached, and does not evict or reuse the right one
        for _ in range(2):
            assert client.get("/api/whoami", headers=basic("ann", "pX")).status_code == 401
        assert count_verify == ["pw", "pX", "pX"]
        assert client.get("/api/whoami", headers=basic("bob", "pw")).status_code == 401
        assert client.get("/api/whoami", headers=basic("bob", "pw2")).json()["id"] == "bob"
        assert client.get("/api/whoami", headers=basic("ann", "pw")).json()["id"] == "ann"
        assert count_verify == ["pw", "pX", "pX", "pw", "pw2"]


def test_basic_cache_is_bounded(make_server: MakeServer, count_verify: list[str]) -> None:
    server = auth_server(make_server, {"basic_cache_size": 1, "basic": {
        "ann": {"password_hash": hash_password("pw", 1000)},
        "bob": {"password_hash": hash_password("pw2", 1000)}}})
    with TestClient(server) as client:
        for user, password in [("ann", "pw"), ("bob", "pw2"), ("ann", "pw"), ("ann", "pw")]:
            assert client.get("/api/whoami", headers=basic(user, password)).status_code == 200
    assert count_verify == ["pw", "pw2", "pw"]


def test_basic_cache_off(make_server: MakeServer, count_verify: list[str]) -> None:
    server = auth_server(make_server, {"basic_cache_size": 0, "basic": {
        "ann": {"password_hash": hash_password("pw", 1000)}}})
    with TestClient(server) as client:
        for _ in range(2):
            assert client.get("/api/whoami", headers=basic("ann", "pw")).status_code == 200
    assert count_verify == ["pw", "pw"]


def test_unknown_user_costs_a_decoy_verification(make_server: MakeServer,
                                                 count_verify: list[str]) -> None:
    server = auth_server(make_server, {"basic": {
        "ann": {"password_hash": hash_password("pw", 1000)}}})
    decoy = server.authenticator._decoy  # type: ignore[union-attr]
    assert decoy.iterations == 1000  # as slow as the slowest real user
    with TestClient(server) as client:
        assert client.get("/api/whoami", headers=basic("mallory", "pw")).status_code == 401
        assert client.get("/api/whoami", headers=basic("mallory", "pw")).status_code == 401
    assert count_verify == ["pw", "pw"]  # verified (against the decoy), never cached


# -- the server-side API: identify, find_route, invoke ------------------------------------------


def scope_with(headers: dict[str, str]) -> Scope:
    return {"type": "http", "path": "/x", "client": ("10.0.0.1", 1),
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}


async def test_server_identify(make_server: MakeServer) -> None:
    server = auth_server(make_server, tokens())
    assert await server.identify(scope_with({})) is None
    identity = await server.identify(scope_with(bearer(TOKEN)))
    assert identity == Identity("admin", frozenset({"admin"}), "bearer")
    with pytest.raises(Unauthorized) as info:
        await server.identify(scope_with(bearer("tok-wrong-0123456789")))
    assert info.value.status_code == 401
    assert 'error="invalid_token"' in info.value.headers["WWW-Authenticate"]
    from genro_asgi.connection import Connection

    assert (await server.identify(Connection(scope_with(bearer(OPS_TOKEN))))).id == "ops"


async def test_server_identify_without_the_plugin(make_server: MakeServer) -> None:
    server = make_server({})
    assert server.authenticator is None and server.auth_challenge is None
    assert await server.identify(scope_with(bearer(TOKEN))) is None


async def test_server_identify_consults_hooks(write_module: Any,
                                              make_server: MakeServer) -> None:
    module = write_module(BACKENDS, stem="backends")
    server = auth_server(make_server, tokens(), {"t": {"module": f"{module}:AsyncTicket"}})
    server.build()
    assert (await server.identify(scope_with({"x-async-ticket": "async-1"}))).id == "async-1"
    with pytest.raises(Unauthorized):
        await server.identify(scope_with({"x-async-ticket": "nope"}))


async def test_find_route_and_invoke(make_server: MakeServer) -> None:
    server = auth_server(make_server, tokens())
    found = server.find_route("/api/admin_or_ops")
    assert found is not None
    compiled, segments = found
    assert (compiled.path, compiled.auth_rule, segments) == ("/api/admin_or_ops", "admin|ops", [])
    ops = Identity.of("o", ["ops"])
    assert await compiled.invoke(ops, (), {}) == "admin or ops"
    with pytest.raises(Unauthorized):
        await compiled.invoke(None, (), {})
    with pytest.raises(Forbidden, match=r"requires 'admin\|ops'"):
        await compiled.invoke(Identity.of("g", ["guest"]), (), {})

    item, segments = server.find_route("/api/item/41")  # type: ignore[misc]
    assert (item.path, segments) == ("/api/item", ["41"])
    args, kwargs = item.binder.bind_mapping({}, segments)
    assert await item.invoke(Identity.of("a", ["admin"]), args, kwargs) == {"item": 41}
    with pytest.raises(Forbidden):
        await item.invoke(ops, args, kwargs)

    open_route, _ = server.find_route("/api/whoami")  # type: ignore[misc]
    assert open_route.auth_rule is None
    open_route.authorize(None)  # no rule: anyone
    assert server.find_route("/api/admin_or_ops/extra")[1] == ["extra"]  # type: ignore[index]
    assert server.find_route("/nowhere/at/all") is None


async def test_invoke_with_genro_routes_plugin(make_server: MakeServer) -> None:
    server = make_server({})
    server.mount("/plugged", Plugged())
    secret, _ = server.find_route("/plugged/secret")  # type: ignore[misc]
    assert secret.auth_rule == "admin"
    assert await secret.invoke(Identity.of("a", ["admin", "x"]), (), {}) == "secret"
    with pytest.raises(Forbidden):
        await secret.invoke(Identity.of("o", ["ops"]), (), {})
    opened, _ = server.find_route("/plugged/open")  # type: ignore[misc]
    assert await opened.invoke(None, (), {}) == "open"
    assert await opened.invoke(Identity.of("o", ["ops"]), (), {}) == "open"


async def test_basic_verifications_past_the_cap_are_503(make_server: MakeServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """One verification running and one waiting fill the cap: a third request that needs a
    verification is a 503 with Retry-After, and the two admitted still answer once freed."""
    import threading

    from genro_asgi.testing import AsyncTestClient

    release = threading.Event()
    original = PasswordHash.verify

    def blocked(self: PasswordHash, password: str, rounds: int = 0) -> bool:
        release.wait(10)
        return original(self, password, rounds)

    monkeypatch.setattr(PasswordHash, "verify", blocked)
    server = auth_server(make_server, {"max_concurrent_hashes": 1, "max_waiting_hashes": 1,
                                       "basic": {"ann": {"password_hash":
                                                         hash_password("pw", 1000)}}})
    authenticator = server.authenticator  # type: ignore[union-attr]
    async with AsyncTestClient(server) as client:
        first = asyncio.ensure_future(client.get("/api/whoami", headers=basic("ann", "pw")))
        second = asyncio.ensure_future(client.get("/api/whoami", headers=basic("ann", "bad")))
        for _ in range(200):
            if authenticator._hash_load == 2:
                break
            await asyncio.sleep(0.01)
        assert authenticator._hash_load == 2
        refused = await client.get("/api/whoami", headers=basic("mallory", "guess"))
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "too many password verifications" in refused.text
        # a request without basic credentials is not held up by the cap
        assert (await client.get("/api/whoami")).status_code == 401
        release.set()
        assert (await first).json()["id"] == "ann"
        assert (await second).status_code == 401
        assert authenticator._hash_load == 0
        assert (await client.get("/api/whoami", headers=basic("ann", "pw"))).status_code == 200
    assert len(server.envelopes) == 0

