"""In-process "what does this middleware add" harness, shared by the per-plugin benchmarks.

Four apps (genro-asgi with the plugin off and on, Starlette without and with its equivalent
middleware) are driven directly (no socket) on a set of scenarios, rounds interleaved across
apps, and the medians printed with the cost each middleware adds (on - off) side by side.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from typing import Any

from bench.machine import wait_for_quiet


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
    """Microseconds per request over ``requests`` requests, with the GC paused."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(requests):
            await app(dict(base), receive, Sink())
        return (time.perf_counter() - started) / requests * 1e6
    finally:
        gc.enable()


async def compare(apps: dict[str, Any], scopes: dict[str, dict[str, Any]], rounds: int,
                  requests: int, names: tuple[str, str, str, str], what: str) -> None:
    """Time every (scenario, app) in interleaved rounds and print the medians.

    ``names``: the keys of ``apps`` for genro off, genro on, Starlette off, Starlette on;
    ``what``: the short name of Starlette's middleware, for the column header.
    """
    figures: dict[tuple[str, str], list[float]] = {}
    busy = 0
    for _ in range(rounds):
        if not wait_for_quiet():
            busy += 1
        for label, base in scopes.items():
            for name, app in apps.items():
                await time_app(app, base, requests // 10)  # warm up
                figures.setdefault((label, name), []).append(
                    await time_app(app, base, requests))
    median = {key: statistics.median(values) for key, values in figures.items()}
    width = max(len(label) for label in scopes) + 2
    print(f"\nmedians of {rounds} rounds x {requests} requests, us/request "
          f"({busy} rounds started on a busy machine)")
    print(f"{'scenario':{width}} {'genro off':>10} {'genro on':>10} {'added':>8}   "
          f"{'starlette':>10} {what:>10} {'added':>8}")
    genro_off, genro_on, star_off, star_on = names
    for label in scopes:
        g0, g1 = median[(label, genro_off)], median[(label, genro_on)]
        s0, s1 = median[(label, star_off)], median[(label, star_on)]
        print(f"{label:{width}} {g0:10.2f} {g1:10.2f} {g1 - g0:8.2f}   "
              f"{s0:10.2f} {s1:10.2f} {s1 - s0:8.2f}")
