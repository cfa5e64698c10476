"""Where genro-asgi's in-process request time goes: a layer breakdown and a cProfile listing.

Run from the repository root::

    .venv/bin/python bench/profile_genro.py                  # hello, breakdown + profile
    .venv/bin/python bench/profile_genro.py --endpoint json --top 40

The breakdown times the request path layer by layer (whole server callable, without the
server's ``__call__``, without the envelope middleware, the dispatcher's pieces alone), each
the median of several rounds with the gc disabled, so the difference between two lines is
what one layer costs. The steps are interleaved round by round and each round starts when
the machine is quiet. The cProfile listing (sorted by own time) names the functions; its
absolute figures are inflated by the profiler's per-call overhead, so read it for shares and
call counts, and the breakdown for microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.apps import HELLO_PATH, JSON_PATH  # noqa: E402
from bench.apps.genro_app import server  # noqa: E402
from bench.inprocess import (  # noqa: E402
    Lifespan,
    _receive,
    _send,
    check_response,
    http_scope,
    time_app,
)
from bench.machine import wait_for_quiet  # noqa: E402

Step = Callable[[], Awaitable[Any]]


async def _time_step(step: Step, iterations: int, rounds: int) -> float:
    """Median CPU us per call of an argument-less coroutine function (this thread's CPU time,
    so that other processes on a shared machine do not count)."""
    import gc
    import time

    results = []
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = time.thread_time_ns()
            for _ in range(iterations):
                await step()
            results.append((time.thread_time_ns() - start) / iterations / 1000.0)
        finally:
            gc.enable()
    return statistics.median(results)


async def breakdown(endpoint: str, iterations: int,
                    rounds: int) -> list[tuple[str, float | str]]:
    """Each layer of the request path timed alone; internals that moved are reported as such.

    The core is young and its internals change: a step whose hooks are gone is listed with
    the reason instead of a figure, and the public layers (server, built app) always work.
    """
    from genro_asgi.response import render_result

    path = HELLO_PATH if endpoint == "hello" else JSON_PATH
    scope = http_scope(path)
    app = server.build()
    dispatcher: Any = getattr(server, "_dispatcher", None)
    table: dict[str, Any] = getattr(dispatcher, "table", {}) or {}
    route: Any = table.get(path) or table.get(path.strip("/"))
    registry = server.envelopes

    async def null(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def harness() -> None:
        await null(scope.copy(), _receive, _send)

    async def whole() -> None:
        await server(scope.copy(), _receive, _send)

    async def built_app() -> None:
        await app(scope.copy(), _receive, _send)

    async def dispatch_only() -> None:
        await dispatcher(scope.copy(), _receive, _send)

    async def handler_only() -> None:
        await route.call()

    async def render_only() -> None:
        render_result(result_value, None, route.media_type)

    async def response_send() -> None:
        await render_result(result_value, None, route.media_type)(scope, _receive, _send)

    async def envelope_open_close() -> None:
        registry.close(registry.open(scope))

    steps: list[tuple[str, Step]] = [
        ("harness: scope copy + await of a no-op app", harness),
        ("AsgiServer.__call__ (everything)", whole),
        ("server.build() app: EnvelopeMiddleware and below", built_app),
        ("Dispatcher.__call__ alone (no envelope)", dispatch_only),
        ("  handler coroutine alone (route.call)", handler_only),
        ("  render_result alone", render_only),
        ("  render_result + Response.__call__ (2 sends)", response_send),
        ("  EnvelopeRegistry.open + close", envelope_open_close),
    ]
    result_value: Any = await route.call() if route is not None else None
    usable: list[tuple[str, Step]] = []
    out: dict[str, float | str] = {}
    for label, step in steps:
        try:
            await step()
            usable.append((label, step))
        except Exception as exc:  # internals moved: say so, keep going
            out[label] = f"skipped ({type(exc).__name__}: {exc})"[:90]
    samples: dict[str, list[float]] = {label: [] for label, _ in usable}
    for _ in range(rounds):  # interleaved, like the suite, so a noisy moment hits every step
        wait_for_quiet()
        for label, step in usable:
            samples[label].append(await _time_step(step, iterations, 1))
    for label, values in samples.items():
        out[label] = statistics.median(values)
    return [(label, out[label]) for label, _ in steps]


async def main_async(args: argparse.Namespace) -> None:
    path = HELLO_PATH if args.endpoint == "hello" else JSON_PATH
    lifespan = Lifespan(server)
    await lifespan.start()
    try:
        await check_response(server, args.endpoint, path)
        await time_app(server, http_scope(path), 2000)
        print(f"genro-asgi in-process GET {path}: layer breakdown "
              f"(median of {args.rounds} x {args.requests} calls, CPU us/call)")
        for label, us in await breakdown(args.endpoint, args.requests, args.rounds):
            figure = f"{us:7.2f}" if isinstance(us, float) else us
            print(f"  {label:<50} {figure}")
        profiler = cProfile.Profile()
        scope = http_scope(path)
        profiler.enable()
        for _ in range(args.requests):
            await server(scope.copy(), _receive, _send)
        profiler.disable()
        print(f"\ncProfile of {args.requests} requests (sorted by {args.sort}; "
              "times include profiler overhead)")
        stats = pstats.Stats(profiler)
        stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    finally:
        await lifespan.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--endpoint", choices=("hello", "json"), default="hello")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="pstats sort key (default tottime)")
    args = parser.parse_args(argv)
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
