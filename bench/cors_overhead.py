"""Cost of the cors plugin, side by side with Starlette's CORSMiddleware.

The same endpoint (``GET /hello``, text) served four ways: genro-asgi with the plugin off and
on, Starlette without and with ``CORSMiddleware`` configured alike (one allowed origin,
credentials, one allowed and one exposed header). Each app is driven in-process (no socket),
rounds interleaved across the four, medians reported in microseconds per request, and the cost
each middleware adds (on - off) side by side:

- ``GET, no Origin``: same-origin and non-browser traffic (genro adds ``Vary: Origin``);
- ``GET, allowed Origin``: a cross-origin read (ACAO, ACAC, ACEH, Vary);
- ``GET, refused Origin``: the response goes out without CORS headers;
- ``preflight, allowed``: OPTIONS answered by the middleware (204 / Starlette 200);
- ``preflight, refused``: a method that is not allowed (403 / Starlette 400).

For the preflights the "off" column is the app answering an OPTIONS itself (405), so "added"
there is not a middleware cost; read the "on" columns side by side.

Run from the repository root: ``.venv/bin/python bench/cors_overhead.py [--rounds 7]``.
The suite only reports; nothing here compares a figure with a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inprocess import Lifespan
from bench.side_by_side import compare, request_once

ORIGIN = "https://app.example"
OPTIONS = {"allow_origins": [ORIGIN], "allow_methods": ["GET", "POST", "PUT"],
           "allow_headers": ["x-token"], "allow_credentials": True,
           "expose_headers": ["x-total"]}
PREFLIGHT = [(b"origin", ORIGIN.encode()), (b"access-control-request-method", b"PUT"),
             (b"access-control-request-headers", b"x-token")]

SCENARIOS: dict[str, tuple[str, list[tuple[bytes, bytes]]]] = {
    "GET, no Origin": ("GET", []),
    "GET, allowed Origin": ("GET", [(b"origin", ORIGIN.encode())]),
    "GET, refused Origin": ("GET", [(b"origin", b"https://evil.example")]),
    "preflight, allowed": ("OPTIONS", PREFLIGHT),
    "preflight, refused": ("OPTIONS", [(b"origin", ORIGIN.encode()),
                                       (b"access-control-request-method", b"DELETE")]),
}


def genro_app(plugins: dict[str, Any]) -> Any:
    from genro_asgi import AsgiApplication, AsgiServer, route

    class Site(AsgiApplication):
        @route(methods=["GET"])
        async def hello(self) -> str:
            return "Hello, world!"

    server = AsgiServer(tempfile.mkdtemp(prefix="genro-cors-bench-"), environ={},
                        config={"logging": {"access_log": False, "level": "WARNING"},
                                "plugins": plugins})
    server.mount("/", Site())
    return server


def starlette_app(cors: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> Any:
        return PlainTextResponse("Hello, world!")

    middleware = [Middleware(CORSMiddleware, **OPTIONS)] if cors else []
    return Starlette(routes=[Route("/hello", hello)], middleware=middleware)


APPS = {
    "genro off": lambda: genro_app({}),
    "genro cors": lambda: genro_app({"cors": OPTIONS}),
    "starlette": lambda: starlette_app(False),
    "starlette cors": lambda: starlette_app(True),
}


def scope(method: str, extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*"),
               *extra]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
            "method": method, "root_path": "", "path": "/hello", "raw_path": b"/hello",
            "query_string": b"", "headers": headers, "state": {}}


async def main(rounds: int, requests: int) -> None:
    apps = {name: make() for name, make in APPS.items()}
    lifespans = [Lifespan(app) for app in apps.values()]
    for running in lifespans:
        await running.start()
    print(f"{'scenario':24} {'app':16} {'status':>6}")
    scopes = {label: scope(method, extra) for label, (method, extra) in SCENARIOS.items()}
    for label, base in scopes.items():
        for name, app in apps.items():
            sink = await request_once(app, base)
            print(f"{label:24} {name:16} {sink.status:>6}")
    await compare(apps, scopes, rounds, requests,
                  ("genro off", "genro cors", "starlette", "starlette cors"), "st. cors")
    for running in lifespans:
        await running.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.requests))
