"""In-process framework cost: each ASGI callable driven directly, with no server and no socket.

Every app gets the same prebuilt HTTP scope (shaped like uvicorn's, copied per request because
frameworks write into it), a ``receive`` that returns an empty body and a ``send`` that drops
the message. Lifespan startup runs first (genro-asgi compiles its request path there), each
response is checked once, then the apps are timed in rounds interleaved across frameworks;
the figure reported is the median of the rounds. Each round starts when the machine is quiet
(bounded wait). The garbage collector is collected and then
disabled for the duration of each timed loop, and re-enabled right after it.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from bench.apps import ENDPOINTS, HELLO_TEXT, JSON_PAYLOAD, Framework
from bench.machine import wait_for_quiet

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

_REQUEST_MESSAGE: Message = {"type": "http.request", "body": b"", "more_body": False}
LIFESPAN_TIMEOUT = 30.0


def load_app(target: str) -> ASGIApp:
    """Import ``module:attribute``, the same string uvicorn is given."""
    module_name, _, attribute = target.partition(":")
    app: ASGIApp = getattr(importlib.import_module(module_name), attribute)
    return app


def http_scope(path: str, headers: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """A GET scope with the keys and headers uvicorn + httptools would send for a wrk request
    (``headers``: more request headers, after Host)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"),
                    *((name.lower().encode("latin-1"), value.encode("latin-1"))
                      for name, value in headers)],
        "state": {},
    }


async def _receive() -> Message:
    return _REQUEST_MESSAGE


async def _send(message: Message) -> None:
    return None


async def _null_app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    return None


class Lifespan:
    """Drive the ASGI lifespan protocol of one app: ``await start()`` ... ``await stop()``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await self.app(scope, self.inbox.get, self.outbox.put)

    async def _exchange(self, kind: str) -> None:
        await self.inbox.put({"type": f"lifespan.{kind}"})
        reply = await asyncio.wait_for(self.outbox.get(), LIFESPAN_TIMEOUT)
        if reply["type"] != f"lifespan.{kind}.complete":
            raise RuntimeError(f"lifespan {kind} failed: {reply}")

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())
        await self._exchange("startup")

    async def stop(self) -> None:
        if self.task is None:
            return
        await self._exchange("shutdown")
        await asyncio.wait_for(self.task, LIFESPAN_TIMEOUT)
        self.task = None


async def check_response(app: ASGIApp, endpoint: str, path: str,
                         headers: tuple[tuple[str, str], ...] = ()) -> None:
    """One request with a recording ``send``: status 200 and the expected body, or raise
    (without Accept-Encoding: a compressed body would not compare equal)."""
    messages: list[Message] = []

    async def record(message: Message) -> None:
        messages.append(message)

    await app(dict(http_scope(path, tuple((k, v) for k, v in headers
                                          if k.lower() != "accept-encoding"))),
              _receive, record)
    start = next((m for m in messages if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    if start is None or start["status"] != 200:
        raise RuntimeError(f"{path}: expected status 200, got {start and start['status']}")
    ok = body == HELLO_TEXT.encode() if endpoint == "hello" else json.loads(body) == JSON_PAYLOAD
    if not ok:
        raise RuntimeError(f"{path}: unexpected body {body[:200]!r}")


async def time_app(app: ASGIApp, scope: dict[str, Any], iterations: int) -> tuple[float, float]:
    """(wall, CPU) microseconds per request over ``iterations`` sequential requests.

    Wall time is ``perf_counter_ns``; CPU time is this thread's (``thread_time_ns``), which
    leaves out the moments another process had the CPU. The gc is off while timing.
    """
    receive, send = _receive, _send
    gc.collect()
    gc.disable()
    try:
        cpu_start = time.thread_time_ns()
        start = time.perf_counter_ns()
        for _ in range(iterations):
            await app(scope.copy(), receive, send)
        elapsed = time.perf_counter_ns() - start
        cpu = time.thread_time_ns() - cpu_start
    finally:
        gc.enable()
    return elapsed / iterations / 1000.0, cpu / iterations / 1000.0


@dataclass
class InProcessResult:
    """Per (framework, endpoint): the us/request of every round; the median is the figure."""

    rounds: int
    iterations: int
    loop: str
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cpu_samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    harness_us: list[float] = field(default_factory=list)
    busy_rounds: int = 0

    def median(self, framework: str, endpoint: str) -> float:
        return statistics.median(self.samples[framework][endpoint])

    def cpu_median(self, framework: str, endpoint: str) -> float:
        return statistics.median(self.cpu_samples[framework][endpoint])

    def to_json(self) -> dict[str, Any]:
        bare = self.samples.get("bare", {})
        table: dict[str, Any] = {}
        for key, per_endpoint in self.samples.items():
            table[key] = {}
            for endpoint, values in per_endpoint.items():
                med = statistics.median(values)
                ratio = med / statistics.median(bare[endpoint]) if endpoint in bare else None
                cpu = self.cpu_samples[key][endpoint]
                cpu_ratio = (statistics.median(cpu) / self.cpu_median("bare", endpoint)
                             if endpoint in bare else None)
                table[key][endpoint] = {
                    "median_us": med, "min_us": min(values), "max_us": max(values),
                    "ratio_to_bare": ratio, "rounds_us": values,
                    "median_cpu_us": statistics.median(cpu), "cpu_ratio_to_bare": cpu_ratio,
                    "rounds_cpu_us": cpu,
                }
        return {
            "rounds": self.rounds, "iterations_per_round": self.iterations, "loop": self.loop,
            "gc": "collected then disabled during each timed loop",
            "rounds_started_on_a_busy_machine": self.busy_rounds,
            "harness_overhead_us": statistics.median(self.harness_us) if self.harness_us else None,
            "results": table,
        }


async def _measure(frameworks: tuple[Framework, ...], rounds: int, iterations: int,
                   warmup: int, loop_name: str,
                   progress: Callable[[str], None]) -> InProcessResult:
    apps = {fw.key: load_app(fw.target) for fw in frameworks}
    lifespans = [Lifespan(app) for app in apps.values()]
    result = InProcessResult(rounds=rounds, iterations=iterations, loop=loop_name)
    try:
        for lifespan in lifespans:
            await lifespan.start()
        scopes = {endpoint: http_scope(path) for endpoint, path in ENDPOINTS}
        headers = {fw.key: fw.headers for fw in frameworks}
        framework_scopes = {fw.key: {endpoint: http_scope(path, fw.headers)
                                     for endpoint, path in ENDPOINTS} for fw in frameworks}
        for key, app in apps.items():
            result.samples[key] = {endpoint: [] for endpoint, _ in ENDPOINTS}
            result.cpu_samples[key] = {endpoint: [] for endpoint, _ in ENDPOINTS}
            for endpoint, path in ENDPOINTS:
                await check_response(app, endpoint, path, headers[key])
                await time_app(app, framework_scopes[key][endpoint], warmup)
        for round_no in range(1, rounds + 1):
            if not wait_for_quiet():
                result.busy_rounds += 1
            result.harness_us.append((await time_app(_null_app, scopes["hello"], iterations))[0])
            for key, app in apps.items():
                for endpoint, _ in ENDPOINTS:
                    us, cpu_us = await time_app(app, framework_scopes[key][endpoint],
                                                iterations)
                    result.samples[key][endpoint].append(us)
                    result.cpu_samples[key][endpoint].append(cpu_us)
            summary = "  ".join(
                f"{key}={result.samples[key]['hello'][-1]:.2f}" for key in apps
            )
            progress(f"  in-process round {round_no}/{rounds}: hello us/req {summary}")
    finally:
        for lifespan in reversed(lifespans):
            await lifespan.stop()
    return result


def run_inprocess(frameworks: tuple[Framework, ...], *, rounds: int, iterations: int,
                  warmup: int, progress: Callable[[str], None] = print) -> InProcessResult:
    """Run the whole in-process measurement inside one event loop (uvloop when installed)."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop

        loop_factory, loop_name = uvloop.new_event_loop, "uvloop"
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        loop_factory, loop_name = None, "asyncio"
    coro: Coroutine[Any, Any, InProcessResult] = _measure(
        frameworks, rounds, iterations, warmup, loop_name, progress
    )
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)
