"""Cost of the mcp plugin (genro-asgi-mcp), side by side with the official SDK's server.

1. Routes the plugin does not serve: ``GET /hello`` and ``GET /json`` on genro-asgi with the
   plugin off and on (ten routes exposed as tools), driven in-process, rounds interleaved,
   medians in microseconds per request and the ratio on/off. The plugin adds no middleware
   and no per-request observer (printed), so the expected difference is noise.
2. One tool call, three ways: the route over plain HTTP (``POST /shop/get`` with a JSON body),
   the same route as an MCP tool (``POST /mcp`` ``tools/call`` in a session), and the same
   function as a tool of the official ``mcp`` SDK's ``MCPServer`` (Starlette, stateless, JSON
   responses), each driven in-process with the same body bytes per request.
3. Building the tool catalog of a 500-route site (done once, at startup).

With ``--instructions``, part 1 is also counted under valgrind's callgrind (instructions per
request, net of the harness): deterministic, unlike wall time on a shared machine.

Run from the repository root: ``.venv/bin/python bench/mcp_overhead.py [--rounds 7]
[--instructions]``.
The suite only reports; nothing here compares a figure with a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inprocess import Lifespan
from bench.machine import wait_for_quiet
from bench.side_by_side import Sink

MCP_HEADERS = [(b"content-type", b"application/json"),
               (b"accept", b"application/json, text/event-stream"),
               (b"mcp-protocol-version", b"2025-11-25")]


def genro_server(plugins: dict[str, Any]) -> Any:
    from genro_asgi import AsgiApplication, AsgiServer, route

    class Site(AsgiApplication):
        @route(methods=["GET"])
        async def hello(self) -> str:
            return "Hello, world!"

        @route(methods=["GET"])
        async def json(self) -> dict[str, Any]:
            return {"id": 1, "name": "widget", "tags": ["a", "b"], "price": 9.5}

    class Shop(AsgiApplication):
        @route(meta_mcp=True)
        async def get(self, item_id: int) -> dict[str, Any]:
            return {"id": item_id, "name": "widget", "price": 9.5}

    for number in range(9):  # nine more tools, so that the catalog is not trivial
        setattr(Shop, f"tool{number}", route(f"tool{number}", meta_mcp=True)(
            lambda self, x: x))

    server = AsgiServer(tempfile.mkdtemp(prefix="genro-mcp-bench-"), environ={},
                        config={"logging": {"access_log": False, "level": "WARNING"},
                                "plugins": plugins})
    server.mount("/", Site())
    server.mount("/shop", Shop())
    return server


def sdk_server() -> Any:
    from mcp.server.mcpserver import MCPServer

    sdk = MCPServer("bench", log_level="WARNING")
    logging.getLogger("mcp").setLevel(logging.WARNING)  # it logs every request at INFO

    @sdk.tool(name="shop.get")
    async def get(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget", "price": 9.5}

    return sdk.streamable_http_app(json_response=True, stateless_http=True)


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
            "method": method, "root_path": "", "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": [(b"host", b"127.0.0.1:8000"), *headers],
            "state": {}}


class Case:
    """One request to one app: a scope and the body sent with it."""

    def __init__(self, app: Any, base: dict[str, Any], body: bytes = b"") -> None:
        self.app = app
        self.base = base
        self.body = body
        if body:
            base["headers"] = [*base["headers"], (b"content-length", b"%d" % len(body))]

    async def once(self) -> Sink:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        sink = Sink()
        await self.app(dict(self.base), receive, sink)
        return sink

    async def time(self, requests: int) -> float:
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            for _ in range(requests):
                await self.once()
            return (time.perf_counter() - started) / requests * 1e6
        finally:
            gc.enable()


async def measure(cases: dict[str, Case], rounds: int, requests: int) -> dict[str, float]:
    figures: dict[str, list[float]] = {}
    busy = 0
    for _ in range(rounds):
        if not wait_for_quiet():
            busy += 1
        for name, case in cases.items():
            await case.time(max(requests // 10, 1))  # warm up
            figures.setdefault(name, []).append(await case.time(requests))
    print(f"  medians of {rounds} rounds x {requests} requests ({busy} rounds started on a "
          "busy machine)")
    return {name: statistics.median(values) for name, values in figures.items()}


async def open_session(server: Any) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"}}}).encode()
    headers: list[tuple[bytes, bytes]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers.extend(message["headers"])

    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    await server(scope("POST", "/mcp", MCP_HEADERS[:2]), receive, send)
    return dict(headers)[b"mcp-session-id"]


async def untouched_routes(rounds: int, requests: int) -> None:
    off, on = genro_server({}), genro_server({"mcp": {}})
    lifespans = [Lifespan(off), Lifespan(on)]
    for running in lifespans:
        await running.start()
    plugin = on.plugins.get("mcp")
    print("1. routes the plugin does not serve (in-process, us/request)")
    print(f"  tools exposed: {len(plugin.protocol.catalog.tools)}; middleware chain: "
          f"{type(off._app.app).__name__} off, {type(on._app.app).__name__} on; per-request "
          f"observers: {len(on.compiled.envelope_opened) + len(on.compiled.envelope_closed)}")
    cases = {}
    for path in ("/hello", "/json"):
        cases[f"GET {path} off"] = Case(off, scope("GET", path, [(b"accept", b"*/*")]))
        cases[f"GET {path} on"] = Case(on, scope("GET", path, [(b"accept", b"*/*")]))
    for case in cases.values():
        assert (await case.once()).status == 200
    median = await measure(cases, rounds, requests)
    print(f"  {'request':12} {'mcp off':>9} {'mcp on':>9} {'added':>7} {'on/off':>7}")
    for path in ("/hello", "/json"):
        a, b = median[f"GET {path} off"], median[f"GET {path} on"]
        print(f"  GET {path:8} {a:9.2f} {b:9.2f} {b - a:7.2f} {b / a:7.3f}")
    for running in lifespans:
        await running.stop()


async def one_call(rounds: int, requests: int) -> None:
    cases, lifespans = await call_cases()
    print("\n2. one tool call (in-process, us/call)")
    median = await measure(cases, rounds, requests)
    base = median["genro mcp"]
    for name, value in median.items():
        print(f"  {name:14} {value:9.2f}   {value / base:6.2f}x genro mcp")
    for running in lifespans:
        await running.stop()


def catalog_build(routes: int) -> None:
    from genro_asgi import AsgiApplication, AsgiServer, route
    from genro_asgi_mcp.tools import build_catalog

    namespace: dict[str, Any] = {}
    for number in range(routes):
        def handler(self: Any, item_id: int, day: str = "", limit: int = 10) -> dict[str, Any]:
            return {}
        namespace[f"r{number}"] = route(f"r{number}", meta_mcp=True)(handler)
    Big = type("Big", (AsgiApplication,), namespace)
    server = AsgiServer(tempfile.mkdtemp(prefix="genro-mcp-bench-"), environ={},
                        config={"plugins": {"mcp": {}}})
    server.mount("/big", Big())
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        catalog = build_catalog(server, [], "/mcp")
        timings.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        listed = catalog.listing("2025-11-25", None)
        timings[-1] += (time.perf_counter() - started) * 1000
    print(f"\n3. tool catalog of {len(listed)} routes (built and shaped for one protocol "
          f"version): median {statistics.median(timings):.1f} ms, min {min(timings):.1f} ms")


PHASES = [(f"GET {path} {state}", path, state) for path in ("/hello", "/json")
          for state in ("off", "on")]
CALLS = ("HTTP route", "genro mcp", "SDK MCPServer")


async def call_cases() -> tuple[dict[str, Case], list[Any]]:
    """The three ways of one call (part 2), their apps started."""
    server = genro_server({"mcp": {}})
    sdk = sdk_server()
    lifespans = [Lifespan(server), Lifespan(sdk)]
    for running in lifespans:
        await running.start()
    session = await open_session(server)
    call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "shop.get", "arguments": {"item_id": 7}}}).encode()
    cases = {
        "HTTP route": Case(server, scope("POST", "/shop/get",
                                         [(b"content-type", b"application/json")]),
                           b'{"item_id": 7}'),
        "genro mcp": Case(server, scope("POST", "/mcp",
                                        [*MCP_HEADERS, (b"mcp-session-id", session)]), call),
        "SDK MCPServer": Case(sdk, scope("POST", "/mcp", MCP_HEADERS), call),
    }
    for name, case in cases.items():
        sink = await case.once()
        assert sink.status == 200, (name, sink.status)
    return cases, lifespans


async def _null(scope: Any, receive: Any, send: Any) -> None:
    await receive()


async def _child(requests: int) -> None:
    """Inside valgrind: warm up, then run each loop between two dump markers."""
    from bench.inprocess import _null_app, _receive, _send, http_scope

    servers = {"off": genro_server({}), "on": genro_server({"mcp": {}})}
    lifespans = [Lifespan(app) for app in servers.values()]
    for running in lifespans:
        await running.start()
    cases, started = await call_cases()
    lifespans.extend(started)
    loops: list[tuple[str, Any]] = [("harness", lambda: _null_app(http_scope("/"), _receive,
                                                                  _send))]
    for name, path, state in PHASES:
        base = http_scope(path)
        loops.append((name, lambda app=servers[state], base=base: app(base.copy(), _receive,
                                                                      _send)))
    loops.append(("call harness", Case(_null, scope("POST", "/", []), b"{}").once))
    loops.extend((name, cases[name].once) for name in CALLS)
    for _, run in loops:
        for _ in range(100):
            await run()
    os.getppid()  # dump: imports, startup, warm-up
    for _, run in loops:
        for _ in range(requests):
            await run()
        os.getppid()  # dump: this loop alone
    for running in lifespans:
        await running.stop()


def instructions(requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="genro-mcp-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        completed = subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-before=os_getppid*",
             f"--callgrind-out-file={out}", sys.executable, str(Path(__file__).resolve()),
             "--child", "--requests", str(requests)],
            capture_output=True, text=True, check=False,
            cwd=Path(__file__).resolve().parents[1], timeout=3600)
        if completed.returncode != 0:
            raise RuntimeError(f"callgrind run failed:\n{completed.stderr[-3000:]}")
        totals = []
        for dump in sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:])):
            summary = re.search(r"^summary:\s+(\d+)", dump.read_text(), re.MULTILINE)
            if summary is not None:
                totals.append(int(summary.group(1)) / requests)
    harness, *rest = totals[1:]
    counted = {name: value - harness for (name, _, _), value in zip(PHASES, rest, strict=False)}
    call_harness, *calls = rest[len(PHASES):]
    print("\n1b. instructions per request (callgrind, net of the harness)")
    print(f"  {'request':12} {'mcp off':>9} {'mcp on':>9} {'added':>7} {'on/off':>7}")
    for path in ("/hello", "/json"):
        a, b = counted[f"GET {path} off"], counted[f"GET {path} on"]
        print(f"  GET {path:8} {a:9.0f} {b:9.0f} {b - a:7.0f} {b / a:7.4f}")
    print("\n2b. instructions per call (callgrind, net of the harness)")
    figures = {name: value - call_harness for name, value in zip(CALLS, calls, strict=True)}
    for name, value in figures.items():
        print(f"  {name:14} {value:9.0f}   {value / figures['genro mcp']:6.2f}x genro mcp")


async def main(rounds: int, requests: int) -> None:
    await untouched_routes(rounds, requests)
    await one_call(rounds, max(requests // 5, 100))
    catalog_build(500)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--instructions", action="store_true",
                        help="also count part 1 under callgrind (needs valgrind)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.requests))
    else:
        asyncio.run(main(args.rounds, args.requests))
        if args.instructions:
            instructions(500)
