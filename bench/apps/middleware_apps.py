"""The apps of bench/middleware_plugins.py: CORS + auth + compression on and off, genro-asgi
and Starlette, each answering ``GET /hello`` (13 bytes of text, below every compression
threshold) and ``GET /data`` (about 2 KB of JSON, compressed when the client accepts gzip).

Every request of the benchmark carries ``Origin``, ``Authorization: Bearer`` and
``Accept-Encoding: gzip``, so each middleware does its real work: the origin is checked and
echoed, the token is compared and the identity set, the larger body is gzipped.
"""

from __future__ import annotations

import tempfile
from typing import Any

from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
    requires,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from genro_asgi import AsgiApplication, AsgiServer, route

ORIGIN = "https://app.example"
TOKEN = "bench-token-0123456789"
HELLO = "Hello, world!"
DATA: dict[str, Any] = {"items": [{"id": i, "name": f"widget {i}", "price": 9.5 + i,
                                   "tags": ["red", "large"]} for i in range(30)]}
REQUEST_HEADERS = {"Origin": ORIGIN, "Authorization": f"Bearer {TOKEN}",
                   "Accept-Encoding": "gzip"}


class BenchApp(AsgiApplication):
    @route()
    async def hello(self) -> str:
        return HELLO

    @route()
    async def data(self) -> dict[str, Any]:
        return DATA


def _genro(plugins: dict[str, Any]) -> AsgiServer:
    server = AsgiServer(tempfile.mkdtemp(prefix="genro-asgi-bench-"), environ={}, config={
        "logging": {"access_log": False, "level": "WARNING"}, "plugins": plugins})
    server.mount("/", BenchApp())
    return server


genro_core = _genro({})
genro_mw = _genro({
    "cors": {"allow_origins": [ORIGIN], "allow_credentials": True},
    "auth": {"bearer": {"bench": {"token": TOKEN, "tags": ["user"]}}},
    "compression": {},
})


class BearerBackend(AuthenticationBackend):
    """Starlette's equivalent of the auth plugin's static bearer token."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        header = conn.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token != TOKEN:
            raise AuthenticationError("invalid token")
        return AuthCredentials(["authenticated", "user"]), SimpleUser("bench")


@requires("authenticated")
async def s_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(HELLO)


@requires("authenticated")
async def s_data(request: Request) -> JSONResponse:
    return JSONResponse(DATA)


async def s_hello_open(request: Request) -> PlainTextResponse:
    return PlainTextResponse(HELLO)


async def s_data_open(request: Request) -> JSONResponse:
    return JSONResponse(DATA)


starlette_core = Starlette(routes=[Route("/hello", s_hello_open), Route("/data", s_data_open)])
starlette_mw = Starlette(
    routes=[Route("/hello", s_hello), Route("/data", s_data)],
    middleware=[
        Middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_credentials=True),
        Middleware(AuthenticationMiddleware, backend=BearerBackend()),
        Middleware(GZipMiddleware, minimum_size=500),
    ],
)
