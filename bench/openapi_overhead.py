"""Cost of the openapi plugin: per request on the routes it does not serve, and the document's
generation for a 500-route site.

1. Per request: ``GET /hello`` (text) and ``GET /nope`` (a 404) served four ways, in-process
   (no socket), rounds interleaved, medians in microseconds: genro-asgi with the plugin off and
   on, and Starlette without and with a schema route (``SchemaGenerator``'s
   ``OpenAPIResponse`` at ``/openapi.json``), its nearest equivalent. The plugin adds two
   entries to the core's route table and no middleware or observer, so "added" should be noise.
2. Generation: a server with 500 routes (50 applications x 10 handlers mixing query scalars,
   Decimal, dates, lists, pydantic models in bodies, path parameters and auth rules) is built,
   then the document is generated as startup does (the first build in the process: pydantic's
   schema generation for every parameter) and again (warm), and encoded to JSON.
3. ``--instructions``: the in-process loops of part 1 (genro-asgi off and on) under valgrind's
   callgrind, instructions per request net of the harness: deterministic to about 1%, so the
   figure to trust on a busy machine (needs valgrind).

Run from the repository root: ``.venv/bin/python bench/openapi_overhead.py [--rounds 7]``.
The suite only reports; nothing here compares a figure with a threshold.

No ``from __future__ import annotations`` here: the bench's models are local classes, and a
handler's annotations must be the classes themselves for the core (and the document) to use
them.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inprocess import Lifespan
from bench.side_by_side import compare, request_once

ROUTES_PER_APP = 10


def genro_app(plugins: dict[str, Any]) -> Any:
    from genro_asgi import AsgiApplication, AsgiServer, route

    class Site(AsgiApplication):
        @route(methods=["GET"])
        async def hello(self) -> str:
            return "Hello, world!"

    server = AsgiServer(tempfile.mkdtemp(prefix="genro-openapi-bench-"), environ={},
                        config={"logging": {"access_log": False, "level": "WARNING"},
                                "plugins": plugins})
    server.mount("/", Site())
    return server


def starlette_app(schema: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.schemas import SchemaGenerator

    async def hello(request: Any) -> Any:
        """responses: {200: {description: text}}"""
        return PlainTextResponse("Hello, world!")

    routes = [Route("/hello", hello)]
    if schema:
        generator = SchemaGenerator({"openapi": "3.0.0",
                                     "info": {"title": "bench", "version": "1"}})

        async def openapi(request: Any) -> Any:
            return generator.OpenAPIResponse(request=request)

        routes.append(Route("/openapi.json", openapi, include_in_schema=False))
    return Starlette(routes=routes)


APPS = {
    "genro off": lambda: genro_app({}),
    "genro openapi": lambda: genro_app({"openapi": {}}),
    "starlette": lambda: starlette_app(False),
    "starlette schema": lambda: starlette_app(True),
}


def scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
            "method": "GET", "root_path": "", "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": [(b"host", b"127.0.0.1:8000")], "state": {}}


async def per_request(rounds: int, requests: int) -> None:
    apps = {name: make() for name, make in APPS.items()}
    lifespans = [Lifespan(app) for app in apps.values()]
    for running in lifespans:
        await running.start()
    scopes = {"GET /hello": scope("/hello"), "GET /nope (404)": scope("/nope")}
    for label, base in scopes.items():
        statuses = [(await request_once(app, base)).status for app in apps.values()]
        print(f"{label:18} statuses {statuses}")
    await compare(apps, scopes, rounds, requests,
                  ("genro off", "genro openapi", "starlette", "starlette schema"), "st.schema")
    for running in lifespans:
        await running.stop()


WARMUP = 200
CALLGRIND_TIMEOUT = 900.0


async def _callgrind_child(requests: int) -> None:
    """Inside valgrind: warm each (app, path) up, then run each loop between dump markers."""
    from bench.inprocess import _null_app, _receive, _send

    apps = {"genro off": genro_app({}), "genro openapi": genro_app({"openapi": {}})}
    lifespans = [Lifespan(app) for app in apps.values()]
    for running in lifespans:
        await running.start()
    phases = [("harness", "/hello", _null_app)] + [
        (name, path, app) for path in ("/hello", "/nope") for name, app in apps.items()]
    for _, path, app in phases:
        for _ in range(WARMUP):
            await app(scope(path), _receive, _send)
    os.getppid()  # dump: imports, startup, warm-up
    for _, path, app in phases:
        base = scope(path)
        for _ in range(requests):
            await app(dict(base), _receive, _send)
        os.getppid()  # dump: this loop alone
    for running in lifespans:
        await running.stop()
    print("PHASES " + json.dumps([f"{name} GET {path}" for name, path, _ in phases]))


def instructions(requests: int) -> None:
    if shutil.which("valgrind") is None:
        print("\n--instructions: valgrind is not installed (apt-get install -y valgrind)")
        return
    with tempfile.TemporaryDirectory(prefix="genro-openapi-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        completed = subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-before=os_getppid*",
             f"--callgrind-out-file={out}", sys.executable, str(Path(__file__).resolve()),
             "--callgrind-child", "--requests", str(requests)],
            capture_output=True, text=True, check=False, timeout=CALLGRIND_TIMEOUT,
            cwd=Path(__file__).resolve().parents[1])
        match = re.search(r"^PHASES (.*)$", completed.stdout, re.MULTILINE)
        if completed.returncode != 0 or match is None:
            raise RuntimeError(f"callgrind run failed:\n{completed.stderr[-3000:]}")
        totals = []
        for dump in sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:])):
            summary = re.search(r"^summary:\s+(\d+)", dump.read_text(), re.MULTILINE)
            if summary is not None:
                totals.append(int(summary.group(1)) / requests)
    per_phase = dict(zip(json.loads(match.group(1)), totals[1:], strict=True))
    harness = per_phase.pop("harness GET /hello")
    print(f"\ninstructions per request, in-process, callgrind ({requests} requests per loop, "
          "net of the harness)")
    for path in ("/hello", "/nope"):
        off = per_phase[f"genro off GET {path}"] - harness
        on = per_phase[f"genro openapi GET {path}"] - harness
        print(f"  GET {path:7} off {off:10,.0f}   openapi {on:10,.0f}   added {on - off:+8,.0f}"
              f"   ratio {on / off:.4f}")


def big_site(apps: int) -> Any:
    """A server with ``apps`` x 10 routes of every common shape."""
    from pydantic import BaseModel

    from genro_asgi import AsgiApplication, AsgiServer, route

    def make_app(index: int) -> Any:
        class Line(BaseModel):
            sku: str
            quantity: int
            price: Decimal

        class Order(BaseModel):
            lines: list[Line]
            note: str | None = None

        Line.__name__ = f"Line{index}"
        Order.__name__ = f"Order{index}"

        class App(AsgiApplication):
            """One of the bench's applications."""

            @route(methods=["GET"])
            def items(self, limit: int = 10, offset: int = 0, q: str | None = None) -> list[str]:
                return []

            @route(methods=["GET"])
            def item(self, sku: str, detail: bool = False) -> dict[str, Any]:
                """A path parameter."""
                return {}

            @route(methods=["GET"])
            def priced(self, max_price: Decimal | None = None, since: date | None = None
                       ) -> dict[str, Decimal]:
                return {}

            @route(methods=["GET"])
            def tagged(self, tags: list[str]) -> list[str]:
                return tags

            @route(methods=["POST"])
            def order(self, order: Order) -> Order:
                return order

            @route(methods=["POST"], auth="admin")
            def restock(self, sku: str, quantity: int) -> dict[str, int]:
                return {}

            @route(methods=["PUT", "PATCH"])
            def update(self, sku: str, price: Decimal, note: str = "") -> None:
                return None

            @route(methods=["DELETE"], auth="admin|ops")
            def remove(self, sku: str) -> None:
                return None

            @route(methods=["GET"])
            def page(self) -> str:
                return ""

            @route(methods=["GET", "POST"])
            def search(self, **params: str) -> dict[str, Any]:
                return {}

        return App()

    server = AsgiServer(tempfile.mkdtemp(prefix="genro-openapi-bench-"), environ={},
                        config={"logging": {"level": "WARNING"}, "plugins": {
                            "auth": {"bearer": {"ci": {"token": "bench-token-123",
                                                       "tags": ["admin"]}}},
                            "openapi": {}}})
    for index in range(apps):
        server.mount(f"/app{index}", make_app(index))
    return server


def generation(apps: int, repeats: int) -> None:
    from genro_asgi_openapi import build_document
    from genro_asgi_openapi.plugin import encode

    started = time.perf_counter()
    server = big_site(apps)
    built = time.perf_counter() - started
    plugin = server.plugins.get("openapi")
    own = {id(r) for key, r in server.routes.items() if key.startswith(("/openapi.json", "/docs"))}
    routes = len({id(r) for r in server.routes.values()} - own)
    started, cpu = time.perf_counter(), time.thread_time()
    document = plugin.document()  # what genro_asgi_startup does: build and encode, once
    cold, cold_cpu = time.perf_counter() - started, time.thread_time() - cpu
    warm, warm_cpu, encoded = [], [], []
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.thread_time()
        document = build_document(server, plugin.config, plugin.own_apps)
        warm.append(time.perf_counter() - started)
        warm_cpu.append(time.thread_time() - cpu)
        started = time.perf_counter()
        body = encode(document)
        encoded.append(time.perf_counter() - started)
    operations = sum(len(item) for item in document["paths"].values())
    print(f"\n{routes} routes ({len(document['paths'])} paths, {operations} operations, "
          f"{len(body) / 1024:.0f} KiB encoded); server built in {built * 1000:.0f} ms")
    print(f"document at startup (first build in the process + encoding): {cold * 1000:7.1f} ms "
          f"wall, {cold_cpu * 1000:7.1f} ms CPU")
    print(f"document again, median of {repeats}:                        "
          f"{statistics.median(warm) * 1000:7.1f} ms wall, "
          f"{statistics.median(warm_cpu) * 1000:7.1f} ms CPU (min {min(warm_cpu) * 1000:.1f})")
    print(f"JSON encoding alone, median:                               "
          f"{statistics.median(encoded) * 1000:7.1f} ms")
    print(f"per route at startup: {cold / routes * 1e6:.0f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--apps", type=int, default=50, help="x 10 routes (default 50)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-requests", action="store_true")
    parser.add_argument("--instructions", action="store_true",
                        help="also count per-request instructions under callgrind")
    parser.add_argument("--callgrind-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.callgrind_child:
        asyncio.run(_callgrind_child(args.requests))
        sys.exit(0)
    if args.instructions:
        instructions(args.requests)
    if not args.skip_requests:
        asyncio.run(per_request(args.rounds, args.requests))
    generation(args.apps, args.repeats)
