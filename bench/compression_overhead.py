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
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import wait_for_quiet

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


class Sink:
    """A ``send`` that keeps only what a check needs: status, coding and body size."""

    def __init__(self) -> None:
        self.status = 0
        self.coding: bytes | None = None
        self.size = 0

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.coding = dict(message["headers"]).get(b"content-encoding")
        elif message["type"] == "http.response.body":
            self.size += len(message.get("body", b""))


async def receive() -> dict[str, Any]:
    await asyncio.sleep(3600)  # only a streaming response listens (for a disconnect)
    return {"type": "http.disconnect"}


async def request_once(app: Any, base: dict[str, Any]) -> Sink:
    sink = Sink()
    await app(dict(base), receive, sink)
    return sink


async def time_app(app: Any, base: dict[str, Any], requests: int) -> float:
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(requests):
            await app(dict(base), receive, Sink())
        return (time.perf_counter() - started) / requests * 1e6
    finally:
        gc.enable()


class Lifespan:
    """The ASGI lifespan of one app: ``await start()`` ... ``await stop()``."""

    def __init__(self, app: Any) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                               "state": {}}, self.inbox.get, self.outbox.put))

    async def start(self) -> None:
        await self.inbox.put({"type": "lifespan.startup"})
        await self.outbox.get()

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        await self.task


async def main(rounds: int, requests: int) -> None:
    apps = {name: make() for name, make in APPS.items()}
    lifespans = [Lifespan(app) for app in apps.values()]
    for running in lifespans:
        await running.start()
    print(f"{'scenario':28} {'app':18} {'status':>6} {'coding':>6} {'bytes':>6}")
    for label, (path, accept) in SCENARIOS.items():
        for name, app in apps.items():
            sink = await request_once(app, scope(path, accept))
            print(f"{label:28} {name:18} {sink.status:>6} "
                  f"{(sink.coding or b'-').decode():>6} {sink.size:>6}")
    figures: dict[tuple[str, str], list[float]] = {}
    busy = 0
    for _ in range(rounds):
        if not wait_for_quiet():
            busy += 1
        for label, (path, accept) in SCENARIOS.items():
            base = scope(path, accept)
            for name, app in apps.items():
                await time_app(app, base, requests // 10)  # warm up
                figures.setdefault((label, name), []).append(
                    await time_app(app, base, requests))
    median = {key: statistics.median(values) for key, values in figures.items()}
    print(f"\nmedians of {rounds} rounds x {requests} requests, us/request "
          f"({busy} rounds started on a busy machine)")
    print(f"{'scenario':28} {'genro off':>10} {'genro on':>10} {'added':>8}   "
          f"{'starlette':>10} {'st. gzip':>10} {'added':>8}")
    for label in SCENARIOS:
        g0, g1 = median[(label, "genro off")], median[(label, "genro compression")]
        s0, s1 = median[(label, "starlette")], median[(label, "starlette gzip")]
        print(f"{label:28} {g0:10.2f} {g1:10.2f} {g1 - g0:8.2f}   "
              f"{s0:10.2f} {s1:10.2f} {s1 - s0:8.2f}")
    for running in lifespans:
        await running.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.requests))
