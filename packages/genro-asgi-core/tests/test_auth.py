"""The auth table: every backend right / wrong / missing, 401 vs 403, public paths and a custom
backend plugin, run twice: in-process (TestClient) and through a real uvicorn (httpx).

Each row names the request (path, headers), the expected status, and either who the handler saw
(identity id and backend) or what the ``WWW-Authenticate`` header of a 401 must contain. A 403
never carries a challenge: the client is known, only not allowed.
"""

from __future__ import annotations

import base64
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest

from genro_asgi import (
    AsgiApplication,
    AsgiServer,
    Identity,
    Plugin,
    Request,
    Unauthorized,
    hookimpl,
    route,
)
from genro_asgi.builtin.auth import hash_password
from genro_asgi.connection import Connection
from genro_asgi.testing import LiveServer, TestClient

JWT_SECRET = "table-jwt-secret-" * 3
NOW = int(time.time())
ADMIN_TOKEN = "tok-admin-0123456789"
READER_TOKEN = "tok-reader-0123456789"
SERVICE_KEY = "key-service-0123456789"


class Api(AsgiApplication):
    @route()
    def whoami(self, request: Request) -> dict[str, Any]:
        return {"identity": request.identity.summary() if request.identity else None}

    @route(auth="admin")
    def admin(self, request: Request) -> dict[str, Any]:
        return self.whoami(request)

    @route(auth="admin|ops")
    def ops(self, request: Request) -> dict[str, Any]:
        return self.whoami(request)

    @route()
    def public(self, request: Request) -> dict[str, Any]:
        return self.whoami(request)

    @route()
    def index(self, request: Request, section: str = "home") -> dict[str, Any]:
        """Not public: reachable as /api/<section>, so also as /api/open (see the rows)."""
        return self.whoami(request)

    @route()
    def files(self, request: Request, name: str = "") -> dict[str, Any]:
        """Public through ``/api/files/*``, with the file name as a trailing segment."""
        return self.whoami(request)


class TicketBackend(Plugin):
    """A custom backend: ``X-Ticket: good-<name>`` identifies <name>; ``bad-...`` is refused."""

    @hookimpl
    async def genro_asgi_identify(self, server: AsgiServer,
                                  connection: Connection) -> Identity | None:
        ticket = connection.headers.get("x-ticket")
        if ticket is None:
            return None
        if ticket.startswith("good-"):
            return Identity.of(ticket[5:], ["admin"], "ticket")
        raise Unauthorized(detail="ticket refused")


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def jwt_token(secret: str = JWT_SECRET, **claims: Any) -> dict[str, str]:
    payload = {"sub": "jane", "aud": "api", "exp": NOW + 3600, **claims}
    return bearer(jwt.encode({k: v for k, v in payload.items() if v is not None}, secret,
                             "HS256"))


@dataclass
class Row:
    id: str
    path: str
    headers: dict[str, str] | list[tuple[str, str]]
    status: int
    identity: tuple[str, str] | None = None
    """(id, backend) the handler saw, for a 2xx."""
    challenge: list[str] = field(default_factory=list)
    """Substrings of WWW-Authenticate, for a 401."""


ALL = ['Bearer realm="genro-asgi"', 'Basic realm="genro-asgi", charset="UTF-8"',
       'ApiKey realm="genro-asgi", header="X-Service-Key"']
INVALID = ['Bearer realm="genro-asgi", error="invalid_token"']

ROWS = [
    # bearer: static tokens
    Row("bearer-right", "/api/admin", bearer(ADMIN_TOKEN), 200, ("ci", "bearer")),
    Row("bearer-scheme-any-case", "/api/admin", {"authorization": f"bEaReR {ADMIN_TOKEN}"},
        200, ("ci", "bearer")),
    Row("bearer-no-tag", "/api/admin", bearer(READER_TOKEN), 403),
    Row("bearer-no-rule", "/api/whoami", bearer(READER_TOKEN), 200, ("reader", "bearer")),
    Row("bearer-wrong", "/api/whoami", bearer("tok-admin-0123456788"), 401,
        challenge=[*INVALID, 'error_description="unknown bearer token"']),
    Row("bearer-prefix-of-right", "/api/whoami", bearer(ADMIN_TOKEN[:-1]), 401,
        challenge=INVALID),
    Row("bearer-empty", "/api/whoami", {"authorization": "Bearer"}, 401, challenge=ALL),
    Row("missing", "/api/whoami", {}, 401, challenge=ALL),
    Row("missing-guarded", "/api/admin", {}, 401, challenge=ALL),
    # basic: users with password hashes
    Row("basic-right", "/api/admin", basic("alice", "wonderland"), 200, ("alice", "basic")),
    Row("basic-non-ascii", "/api/whoami", basic("jürgen", "pässwörd"), 200,
        ("jürgen", "basic")),
    Row("basic-no-tag", "/api/admin", basic("bob", "builder"), 403),
    Row("basic-wrong-password", "/api/whoami", basic("alice", "Wonderland"), 401,
        challenge=ALL),
    Row("basic-unknown-user", "/api/whoami", basic("mallory", "wonderland"), 401,
        challenge=ALL),
    Row("basic-empty-password", "/api/whoami", basic("alice", ""), 401, challenge=ALL),
    # api_key: its header is configurable
    Row("api-key-right", "/api/whoami", {"x-service-key": SERVICE_KEY}, 200,
        ("svc", "api_key")),
    Row("api-key-no-tag", "/api/admin", {"x-service-key": SERVICE_KEY}, 403),
    Row("api-key-ops-rule", "/api/ops", {"x-service-key": SERVICE_KEY}, 403),
    Row("api-key-wrong", "/api/whoami", {"x-service-key": SERVICE_KEY + "x"}, 401,
        challenge=ALL),
    Row("api-key-default-header-ignored", "/api/whoami", {"x-api-key": SERVICE_KEY}, 401,
        challenge=ALL),
    # jwt
    Row("jwt-right", "/api/admin", jwt_token(tags=["admin"]), 200, ("jane", "jwt")),
    Row("jwt-scope-string", "/api/ops", jwt_token(tags="read ops"), 200, ("jane", "jwt")),
    Row("jwt-no-tag", "/api/admin", jwt_token(tags=["ops"]), 403),
    Row("jwt-expired", "/api/whoami", jwt_token(exp=NOW - 3600), 401,
        challenge=[*INVALID, 'error_description="token expired"']),
    Row("jwt-wrong-aud", "/api/whoami", jwt_token(aud="other"), 401,
        challenge=['error_description="token audience not accepted"']),
    Row("jwt-no-aud", "/api/whoami", jwt_token(aud=None), 401,
        challenge=["lacks the 'aud' claim"]),
    Row("jwt-wrong-secret", "/api/whoami", jwt_token(secret="x" * 40), 401,
        challenge=['error_description="token signature does not verify"']),
    Row("jwt-garbage", "/api/whoami", bearer("aaa.bbb.ccc"), 401,
        challenge=['error_description="malformed token"']),
    # public paths: no credential is fine, a credential is still checked
    Row("public-anonymous", "/api/public", {}, 200, None),
    Row("public-with-right", "/api/public", bearer(READER_TOKEN), 200, ("reader", "bearer")),
    Row("public-with-wrong", "/api/public", bearer("tok-wrong-0123456789"), 401,
        challenge=INVALID),
    Row("public-with-wrong-basic", "/api/public", basic("alice", "nope"), 401,
        challenge=ALL),
    Row("public-not-a-prefix", "/api/publicity", {}, 401, challenge=ALL),
    Row("public-trailing-slash", "/api/public/", {}, 200, None),
    Row("public-prefix-route-with-segment", "/api/files/report", {}, 200, None),
    Row("public-prefix-root", "/api/files", {}, 200, None),
    # /api/open/* is public but no route is: the /api index (not public) would serve these
    Row("public-prefix-never-reaches-parent", "/api/open", {}, 401, challenge=ALL),
    Row("public-prefix-never-reaches-parent-deeper", "/api/open/x", {}, 401, challenge=ALL),
    Row("parent-route-itself", "/api", {}, 401, challenge=ALL),
    # two credentials of one kind: refused, never one reader taking each
    Row("two-authorization-headers", "/api/public",
        [("authorization", "Bearer junk"), ("authorization", basic("alice", "x")["authorization"])],
        400),
    Row("two-api-keys", "/api/whoami",
        [("x-service-key", SERVICE_KEY), ("x-service-key", "other")], 400),
    # the custom backend plugin (genro_asgi_identify)
    Row("custom-right", "/api/admin", {"x-ticket": "good-carol"}, 200, ("carol", "ticket")),
    Row("custom-refused", "/api/whoami", {"x-ticket": "bad-carol"}, 401, challenge=ALL),
    Row("custom-after-backends", "/api/whoami",
        {"x-ticket": "good-carol", **bearer(READER_TOKEN)}, 200, ("reader", "bearer")),
    Row("unknown-scheme", "/api/whoami", {"authorization": "Digest username=x"}, 401,
        challenge=ALL),
    Row("unknown-scheme-custom-backend", "/api/whoami",
        {"authorization": "Digest username=x", "x-ticket": "good-dan"}, 200, ("dan", "ticket")),
]


@pytest.fixture(scope="module")
def ticket_module() -> Iterator[str]:
    """The custom backend as an importable module, named by dotted path in the config."""
    name = f"auth_table_{uuid.uuid4().hex[:8]}"
    module = types.ModuleType(name)
    module.TicketBackend = TicketBackend  # type: ignore[attr-defined]
    sys.modules[name] = module
    yield name
    sys.modules.pop(name, None)


def build_server(directory: Any, ticket_module: str) -> AsgiServer:
    config = {"plugins": {
        "auth": {
            "public": ["/api/public", "/api/open/*", "/api/files/*"],
            "bearer": {"ci": {"token": ADMIN_TOKEN, "tags": ["admin"]},
                       "reader": {"token": READER_TOKEN}},
            "basic": {"alice": {"password_hash": hash_password("wonderland", 1000),
                                "tags": ["admin"]},
                      "bob": {"password_hash": hash_password("builder", 1000)},
                      "jürgen": {"password_hash": hash_password("pässwörd", 1000)}},
            "api_key": {"header": "X-Service-Key", "keys": {"svc": {"key": SERVICE_KEY}}},
            "jwt": {"secret": JWT_SECRET, "audience": "api"},
        },
        f"{ticket_module}:TicketBackend": {},
    }}
    server = AsgiServer(directory, config=config, environ={})
    server.mount("/api", Api())
    return server


Fetch = Callable[[str, dict[str, str]], httpx.Response]


@pytest.fixture(scope="module",
                params=["in-process", pytest.param("uvicorn", marks=pytest.mark.e2e)])
def fetch(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          ticket_module: str) -> Iterator[Fetch]:
    """GET through the in-process TestClient or httpx against a real uvicorn."""
    server = build_server(tmp_path_factory.mktemp("auth"), ticket_module)
    if request.param == "in-process":
        with TestClient(server) as client:
            yield lambda path, headers: client.get(path, headers=headers)
    else:
        with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=10) as client:
            yield lambda path, headers: client.get(path, headers=headers)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_auth_table(fetch: Fetch, row: Row) -> None:
    response = fetch(row.path, row.headers)
    assert response.status_code == row.status, response.text
    challenge = response.headers.get("www-authenticate")
    if row.status == 200:
        body = response.json()
        seen = body["identity"]
        assert (None if seen is None else (seen["id"], seen["backend"])) == row.identity
        assert challenge is None
    elif row.status == 401:
        assert challenge is not None
        for part in row.challenge:
            assert part in challenge
        assert response.json()["error"]["status"] == 401
    else:
        assert row.status in (400, 403)
        assert challenge is None
        assert response.json()["error"]["status"] == row.status
    for secret in (ADMIN_TOKEN, READER_TOKEN, SERVICE_KEY, "wonderland", "builder"):
        assert secret not in response.text


def test_identity_tags_reach_the_handler(fetch: Fetch) -> None:
    body = fetch("/api/whoami", jwt_token(tags=["b", "a"])).json()
    assert body["identity"] == {"id": "jane", "tags": ["a", "b"], "backend": "jwt"}
    body = fetch("/api/whoami", basic("alice", "wonderland")).json()
    assert body["identity"] == {"id": "alice", "tags": ["admin"], "backend": "basic"}
