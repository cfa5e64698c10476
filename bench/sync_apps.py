"""The apps of ``bench/sync_handlers.py``: ``GET /hello`` and ``GET /json`` served by ``def``
handlers (and their ``async def`` references), one attribute per variant.

Each attribute is built when it is first read (module ``__getattr__``) and imports only its own
framework, so a uvicorn process serving ``bench.sync_apps:starlette_def`` never loads genro-asgi
and its idle RSS is Starlette's alone.

| attribute | what it is |
|---|---|
| ``genro_async`` | genro-asgi, ``async def`` handlers (the reference) |
| ``genro_def`` | genro-asgi, ``def`` handlers in the server's sync pool (the default) |
| ``genro_inline`` | genro-asgi, ``def`` handlers with ``@route(inline=True)`` |
| ``genro_to_thread`` | genro-asgi, ``async def`` awaiting ``asyncio.to_thread(def)``: the |
| | cost of a ``def`` handler before the pool (smartasync did this) |
| ``starlette_def`` | Starlette, ``def`` endpoints (its threadpool, anyio) |
| ``fastapi_async`` | FastAPI, ``async def`` path operations (text, and a dict as JSON) |
| ``fastapi_def`` | FastAPI, ``def`` path operations (its threadpool) |
| ``genro_plugins`` | genro-asgi ``async def`` with cors, auth, compression and metrics on: every |
| | request carries ``REQUEST_HEADERS`` (Origin, a bearer token, Accept-Encoding), |
| | so CORS checks and echoes the origin, auth checks the token and compression |
| | negotiates (the bodies are below its minimum size, as most API answers) |
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

from bench.apps import HELLO_PATH, HELLO_TEXT, JSON_PATH, JSON_PAYLOAD

VARIANTS = ("genro_async", "genro_def", "genro_inline", "genro_to_thread", "genro_plugins",
            "starlette_def", "fastapi_async", "fastapi_def")
ORIGIN = "https://app.example"
TOKEN = "bench-token-0123456789"
# what every request of the side-by-side run carries (bench/sync_handlers.py)
REQUEST_HEADERS = (("Origin", ORIGIN), ("Authorization", f"Bearer {TOKEN}"),
                   ("Accept-Encoding", "gzip"))
PLUGINS: dict[str, Any] = {
    "cors": {"allow_origins": [ORIGIN], "allow_credentials": True},
    "auth": {"bearer": {"bench": {"token": TOKEN, "tags": ["user"]}}},
    "compression": {},
    "metrics": {},
}


def _hello() -> str:
    return HELLO_TEXT


def _json() -> dict[str, Any]:
    return JSON_PAYLOAD


def _genro(variant: str) -> Any:
    from genro_asgi import AsgiApplication, AsgiServer, route

    if variant in ("genro_async", "genro_plugins"):
        class App(AsgiApplication):
            @route()
            async def hello(self) -> str:
                return _hello()

            @route()
            async def json(self) -> dict[str, Any]:
                return _json()
    elif variant == "genro_def":
        class App(AsgiApplication):  # type: ignore[no-redef]
            @route()
            def hello(self) -> str:
                return _hello()

            @route()
            def json(self) -> dict[str, Any]:
                return _json()
    elif variant == "genro_inline":
        class App(AsgiApplication):  # type: ignore[no-redef]
            @route(inline=True)
            def hello(self) -> str:
                return _hello()

            @route(inline=True)
            def json(self) -> dict[str, Any]:
                return _json()
    else:
        class App(AsgiApplication):  # type: ignore[no-redef]
            @route()
            async def hello(self) -> str:
                return await asyncio.to_thread(_hello)

            @route()
            async def json(self) -> dict[str, Any]:
                return await asyncio.to_thread(_json)

    directory = tempfile.mkdtemp(prefix="genro-asgi-bench-sync-")
    config: dict[str, Any] = {"logging": {"access_log": False}}
    if variant == "genro_plugins":
        config["plugins"] = PLUGINS
    server = AsgiServer(directory, config=config, environ={})
    server.mount("/", App())
    return server


def _starlette_def() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(_hello())

    def json_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(_json())

    return Starlette(routes=[Route(HELLO_PATH, hello, methods=["GET"]),
                             Route(JSON_PATH, json_endpoint, methods=["GET"])])


def _fastapi(variant: str) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()
    if variant == "fastapi_async":
        @app.get(HELLO_PATH, response_class=PlainTextResponse)
        async def hello() -> str:
            return _hello()

        @app.get(JSON_PATH)
        async def json_endpoint() -> dict[str, Any]:
            return _json()
    else:
        @app.get(HELLO_PATH, response_class=PlainTextResponse)
        def hello() -> str:  # type: ignore[misc]
            return _hello()

        @app.get(JSON_PATH)
        def json_endpoint() -> dict[str, Any]:  # type: ignore[misc]
            return _json()
    return app


def __getattr__(name: str) -> Any:
    if name == "starlette_def":
        return _starlette_def()
    if name in ("fastapi_async", "fastapi_def"):
        return _fastapi(name)
    if name in VARIANTS:
        return _genro(name)
    raise AttributeError(name)
