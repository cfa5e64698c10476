"""Cost of the compression plugin, side by side with Starlette's GZipMiddleware.

The same endpoints served four ways: genro-asgi with the plugin off and on, Starlette without
and with ``GZipMiddleware(minimum_size=500, compresslevel=6)`` (the plugin's defaults). Each app
is driven in-process (no socket), rounds interleaved across the four, medians reported in
microseconds per request, and the cost each middleware adds (on - off) side by side:

- ``hello, no Accept-Encoding``: the fast path (nothing offered is accepted);
- ``hello, gzip accepted``: 13 bytes, below ``minimum_size``;
- ``page 2.7 KB, gzip`` / ``page 2.7 KB, br``: a complete body compressed in one go (br: genro
  only, Starlette has no brotli);
- ``stream 8 x 1 KB, gzip``: a streaming response compressed chunk by chunk.

Run from the repository root: ``.venv/bin/python bench/compression_overhead.py [--rounds 7]``.
The suite only reports; nothing here compares a figure with a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inprocess import Lifespan
from bench.side_by_side import compare, request_once

PAGE = ("<p>The quick brown fox jumps over the lazy dog, again and again.</p>\n" * 40).encode()
CHUNK = PAGE[:1024]

SCENARIOS: dict[str, tuple[str, bytes | None]] = {
    "hello, no Accept-Encoding": ("/hello", None),
    "hello, gzip accepted": ("/hello", b"gzip, deflate, br"),
    "page 2.7 KB, gzip": ("/page", b"gzip"),
    "page 2.7 KB, br": ("/page", b"br"),
    "stream 8 x 1 KB, gzip": ("/stream", b"gzip"),
}


async def _chunks() -> AsyncIterator[bytes]:
    for _ in range(8):
        yield CHUNK


def genro_app(plugins: dict[str, Any]) -> Any:
    from genro_asgi import AsgiApplication, AsgiServer, Response, StreamingResponse, route

    class Site(AsgiApplication):
        @route()
        async def hello(self) -> str:
            return "Hello, world!"

        @route()
        async def page(self) -> Response:
            return Response(PAGE, media_type="text/html")

        @route()
        async def stream(self) -> StreamingResponse:
            return StreamingResponse(_chunks(), media_type="text/html")

    server = AsgiServer(tempfile.mkdtemp(prefix="genro-compression-bench-"), environ={},
                        config={"logging": {"access_log": False, "level": "WARNING"},
                                "plugins": plugins})
    server.mount("/", Site())
    return server


def starlette_app(gzip: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.responses import HTMLResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def hello(request: Any) -> Any:
        return PlainTextResponse("Hello, world!")

    async def page(request: Any) -> Any:
        return HTMLResponse(PAGE)

    async def stream(request: Any) -> Any:
        return StreamingResponse(_chunks(), media_type="text/html")

    middleware = [Middleware(GZipMiddleware, minimum_size=500, compresslevel=6)] if gzip else []
    return Starlette(routes=[Route("/hello", hello), Route("/page", page),
                             Route("/stream", stream)], middleware=middleware)


APPS = {
    "genro off": lambda: genro_app({}),
    "genro compression": lambda: genro_app({"compression": {}}),
    "starlette": lambda: starlette_app(False),
    "starlette gzip": lambda: starlette_app(True),
}


def scope(path: str, accept: bytes | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000")]
    if accept is not None:
        headers.append((b"accept-encoding", accept))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
            "method": "GET", "root_path": "", "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": headers, "state": {}}


async def main(rounds: int, requests: int) -> None:
    apps = {name: make() for name, make in APPS.items()}
    lifespans = [Lifespan(app) for app in apps.values()]
    for running in lifespans:
        await running.start()
    print(f"{'scenario':28} {'app':18} {'status':>6} {'coding':>6} {'bytes':>6}")
    scopes = {label: scope(path, accept) for label, (path, accept) in SCENARIOS.items()}
    for label, base in scopes.items():
        for name, app in apps.items():
            sink = await request_once(app, base)
            print(f"{label:28} {name:18} {sink.status:>6} "
                  f"{(sink.coding or b'-').decode():>6} {sink.size:>6}")
    await compare(apps, scopes, rounds, requests,
                  ("genro off", "genro compression", "starlette", "starlette gzip"), "st. gzip")
    for running in lifespans:
        await running.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.requests))
