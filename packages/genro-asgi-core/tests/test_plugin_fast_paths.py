"""The per-request fast paths of the cors, auth and compression plugins (issue 18's trims):
each shortcut still gives the answer the careful path gives.

- auth answers without a coroutine of its own when the credential needs no waiting, with one
  header comparison per header when no API key is configured; basic and the identify hook
  still go through the slow path;
- cors scans the response headers by their first byte; responses with headers as a tuple,
  without headers, or with a name it cannot index go through the careful merge;
- compression decides on the start message without a coroutine of its own.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, AsgiServer, Request, route
from genro_asgi.builtin.auth import hash_password
from genro_asgi.testing import TestClient
from genro_asgi.types import Receive, Scope, Send

ORIGIN = "https://app.example"
TOKEN = "fast-path-token-0123456789"
BIG = {"items": [{"id": i, "name": f"widget {i}", "tags": ["red", "large"]} for i in range(40)]}


class Api(AsgiApplication):
    @route()
    def whoami(self, request: Request) -> dict[str, Any]:
        identity = request.identity
        return {"id": identity.id if identity else None,
                "backend": identity.backend if identity else None}

    @route()
    async def small(self) -> str:
        return "Hello, world!"

    @route()
    async def big(self) -> dict[str, Any]:
        return BIG


def raw_app(headers: Any) -> Any:
    """A mounted ASGI app answering 200 with ``headers`` as given (any iterable, or none)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start: dict[str, Any] = {"type": "http.response.start", "status": 200}
        if headers is not None:
            start["headers"] = headers
        await send(start)
        await send({"type": "http.response.body", "body": b"raw"})

    return app


def make_server(tmp_path: Path, plugins: dict[str, Any]) -> AsgiServer:
    server = AsgiServer(tmp_path, config={"plugins": plugins}, environ={})
    server.mount("/api", Api())
    server.mount("/tuple", raw_app(((b"content-type", b"text/plain"),)))
    server.mount("/none", raw_app(None))
    server.mount("/empty-name", raw_app([(b"", b"odd"), (b"content-type", b"text/plain")]))
    server.mount("/vary", raw_app([(b"Vary", b"Accept-Language"),
                                   (b"Access-Control-Allow-Origin", b"https://evil.example")]))
    return server


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- auth -----------------------------------------------------------------------------------------

BEARER_ONLY = {"auth": {"bearer": {"ci": {"token": TOKEN}}}}


def test_bearer_without_api_keys_identifies(tmp_path: Path) -> None:
    with TestClient(make_server(tmp_path, BEARER_ONLY)) as client:
        response = client.get("/api/whoami", headers={"authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        assert response.json() == {"id": "ci", "backend": "bearer"}


def test_two_authorization_headers_without_api_keys_are_refused(tmp_path: Path) -> None:
    # the loop that compares only Authorization still refuses a second one
    with TestClient(make_server(tmp_path, BEARER_ONLY)) as client:
        response = client.get("/api/whoami", headers=[("authorization", f"Bearer {TOKEN}"),
                                                      ("authorization", "Bearer other")])
        assert response.status_code == 400
        assert "more than one Authorization header" in response.json()["error"]["message"]


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong-token-0123456789"},
                                     {"x-api-key": TOKEN}])
def test_no_or_wrong_credential_without_api_keys_is_401(tmp_path: Path,
                                                        headers: dict[str, str]) -> None:
    with TestClient(make_server(tmp_path, BEARER_ONLY)) as client:
        response = client.get("/api/whoami", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_basic_goes_through_the_slow_path(tmp_path: Path) -> None:
    plugins = {"auth": {"basic": {"alice": {"password_hash": hash_password("wonderland",
                                                                           1000)}}}}
    with TestClient(make_server(tmp_path, plugins)) as client:
        right = client.get("/api/whoami", headers={"authorization": basic("alice", "wonderland")})
        assert right.status_code == 200
        assert right.json() == {"id": "alice", "backend": "basic"}
        wrong = client.get("/api/whoami", headers={"authorization": basic("alice", "nope")})
        assert wrong.status_code == 401
        assert client.get("/api/whoami").status_code == 401


# -- cors -----------------------------------------------------------------------------------------

CORS = {"cors": {"allow_origins": [ORIGIN], "allow_credentials": True}}


@pytest.mark.parametrize("path", ["/api/small", "/tuple", "/none", "/empty-name"])
def test_cors_headers_on_every_shape_of_response_headers(tmp_path: Path, path: str) -> None:
    with TestClient(make_server(tmp_path, CORS)) as client:
        response = client.get(path, headers={"origin": ORIGIN})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers.get_list("vary") == ["Origin"]


def test_cors_without_origin_adds_only_vary(tmp_path: Path) -> None:
    with TestClient(make_server(tmp_path, CORS)) as client:
        response = client.get("/api/small")
        assert response.headers.get_list("vary") == ["Origin"]
        assert "access-control-allow-origin" not in response.headers


def test_cors_merges_the_apps_vary_and_replaces_its_cors_headers(tmp_path: Path) -> None:
    with TestClient(make_server(tmp_path, CORS)) as client:
        response = client.get("/vary", headers={"origin": ORIGIN})
        assert response.headers.get_list("vary") == ["Accept-Language, Origin"]
        assert response.headers.get_list("access-control-allow-origin") == [ORIGIN]


# -- compression ----------------------------------------------------------------------------------

COMPRESSION = {"compression": {}}


def test_small_response_is_untouched(tmp_path: Path) -> None:
    # below minimum_size by its Content-Length: never compressed, so it does not vary either
    with TestClient(make_server(tmp_path, COMPRESSION)) as client:
        response = client.get("/api/small", headers={"accept-encoding": "gzip"})
        assert response.content == b"Hello, world!"
        assert "content-encoding" not in response.headers
        assert "vary" not in response.headers
        assert response.headers["content-length"] == "13"


def test_large_response_is_compressed(tmp_path: Path) -> None:
    with TestClient(make_server(tmp_path, COMPRESSION)) as client:
        response = client.get("/api/big", headers={"accept-encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "Accept-Encoding"
        assert response.json() == BIG  # httpx decodes the gzip body
        assert int(response.headers["content-length"]) < len(json.dumps(BIG)) // 2


@pytest.mark.parametrize("headers", [{"accept-encoding": ""}, {"accept-encoding": "identity"},
                                     {"accept-encoding": "gzip;q=0"}])
def test_no_accepted_coding_sends_the_body_as_it_is(tmp_path: Path,
                                                    headers: dict[str, str]) -> None:
    with TestClient(make_server(tmp_path, COMPRESSION)) as client:
        response = client.get("/api/big", headers=headers)
        assert "content-encoding" not in response.headers
        assert json.loads(response.content) == BIG
        assert response.headers["vary"] == "Accept-Encoding"


@pytest.mark.parametrize("path", ["/tuple", "/none"])
def test_compression_passes_raw_start_messages(tmp_path: Path, path: str) -> None:
    with TestClient(make_server(tmp_path, COMPRESSION)) as client:
        response = client.get(path, headers={"accept-encoding": "gzip"})
        assert response.status_code == 200
        assert response.content == b"raw"
        assert "content-encoding" not in response.headers
