"""What the error chain costs: the answers the envelope gives itself, decorated by the plugin
middleware, next to a normal request through the same middleware.

The app is bench/apps/middleware_apps.py's genro-asgi with cors + auth + compression and a
fourth, outermost middleware that raises on ``/boom``; every request carries Origin,
Authorization and Accept-Encoding. Measured in process (the ASGI callable driven directly), in
CPU microseconds per request (process time: less disturbed by a busy machine), medians of
interleaved rounds:

- ``GET /hello``: the request path, which the error chain does not touch;
- a header flood: the envelope's 431 (through the error chain when there is one);
- ``GET /boom``: the outermost middleware raises and the envelope answers 500 (through the
  error chain, where that middleware is skipped and cors and compression decorate).

Run it on two trees to see what a change costs, e.g. the tree before the error chain::

    git archive fa4cd00~1 packages/genro-asgi-core/src | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base/packages/genro-asgi-core/src .venv/bin/python bench/error_chain.py
    .venv/bin/python bench/error_chain.py

Measured when the error chain came in (3 pairs of runs, 7 rounds x 2000 requests, a busy
shared machine; both trees with the same working copy of the other packages): GET /hello 7.1-7.3
vs 6.6-6.8 us (unchanged: no per-request work was added); 431 47.1-48.9 vs 56.2-56.5 us (x1.17:
cors and compression now decorate it); the middleware's 500 15.5-16.6 vs 21.9-22.1 us (x1.35).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.apps.middleware_apps import REQUEST_HEADERS, _genro  # noqa: E402
from bench.inprocess import Lifespan, http_scope  # noqa: E402
from genro_asgi import Plugin, hookimpl  # noqa: E402
from genro_asgi.types import ASGIApp, Receive, Scope, Send  # noqa: E402

HEADERS = [(k.lower().encode(), v.encode()) for k, v in REQUEST_HEADERS.items()]
FLOOD = [(f"x-flood-{i}".encode(), b"1") for i in range(120)]  # over max_header_count (100)


class Boom(Plugin):
    """A middleware that raises on /boom."""

    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        def factory(app: ASGIApp) -> ASGIApp:
            async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] == "http" and scope["path"] == "/boom":
                    raise RuntimeError("bench")
                await app(scope, receive, send)
            return middleware
        return factory


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def measure(app: Any, scope: dict[str, Any], requests: int) -> tuple[float, int]:
    status = 0

    async def send(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    for _ in range(200):
        await app(dict(scope), _receive, send)
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        for _ in range(requests):
            await app(dict(scope), _receive, send)
        elapsed = time.process_time() - started
    finally:
        gc.enable()
    return elapsed / requests * 1e6, status


async def main(rounds: int, requests: int) -> None:
    logging.disable(logging.CRITICAL)  # the 500s log their traceback: not what is measured
    from bench.apps.middleware_apps import TOKEN

    app = _genro({"cors": {"allow_origins": ["https://app.example"]},
                  "auth": {"bearer": {"bench": {"token": TOKEN}}},
                  "compression": {},
                  # outermost: its 500 is answered by the envelope, not by cors
                  "boom": {"module": f"{__name__}:Boom", "order": 1}})
    cases: dict[str, dict[str, Any]] = {}
    hello = http_scope("/hello")
    hello["headers"] = [*hello["headers"], *HEADERS]
    cases["GET /hello (200)"] = hello
    flood = http_scope("/hello")
    flood["headers"] = [*flood["headers"], *HEADERS, *FLOOD]
    cases["header flood (431)"] = flood
    boom = http_scope("/boom")
    boom["headers"] = [*boom["headers"], *HEADERS]
    cases["middleware raises (500)"] = boom
    lifespan = Lifespan(app)
    await lifespan.start()
    results: dict[str, list[float]] = {name: [] for name in cases}
    statuses: dict[str, int] = {}
    try:
        for _ in range(rounds):
            for name, scope in cases.items():
                micros, statuses[name] = await measure(app, scope, requests)
                results[name].append(micros)
    finally:
        await lifespan.stop()
    import genro_asgi.server as server_module

    tree = "error chain" if hasattr(server_module, "ErrorChainLayer") else "no error chain"
    print(f"{tree} ({Path(server_module.__file__).parent}), cors + auth + compression + a "
          f"raising middleware; median of {rounds} rounds x {requests} requests")
    for name, values in results.items():
        print(f"  {name:26} {statistics.median(values):8.1f} us  (status {statuses[name]})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.requests))
