"""genro-asgi-spa: a flood of anonymous first pages, in process, and what the server holds.

One ``AsgiServer`` with wsx + spa (``allow_anonymous``, memory backend, the default limits but
``--cap``), started through the project's test client; ``--visitors`` anonymous visitors
register one page each on a stand-in socket (the manager's own ``register``, so the figures are
the registry's, not WSX's) and each stores ``--bytes`` at connection level. Printed: the time
per accepted and per refused register, the users and trees held, and the Python heap held
after the flood (``tracemalloc``, in a second run so the tracing does not slow the timed one).

Without ``max_anonymous_users`` (genro-asgi-spa before it, or ``--cap`` past ``--visitors``)
every visitor is held; with it, the flood stops at the cap and the rest cost a refusal.

Run from the repository root: ``.venv/bin/python bench/spa_anonymous_flood.py [--rounds 3]``.
The machine is shared: read ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import wait_for_quiet
from genro_asgi import AsgiServer
from genro_asgi.testing import AsyncTestClient
from genro_asgi_spa import SpaError, spa_of


class Socket:
    """A page's socket as the manager sees it."""

    def push_event(self, subscription: str, publication: Any) -> bool:
        return True

    def on_close(self, callback: Callable[[Any], Any]) -> None:
        return None


async def flood(visitors: int, cap: int | None, size: int, trace: bool) -> dict[str, float]:
    spa_options: dict[str, Any] = {"allow_anonymous": True,
                                   "cookie_secret": "bench-cookie-secret-0123456789-abcdef"}
    if cap is not None:
        spa_options["max_anonymous_users"] = cap
    with tempfile.TemporaryDirectory() as tmp:
        server = AsgiServer(Path(tmp), environ={}, config={
            "logging": {"level": "ERROR"},
            "plugins": {"wsx": {"heartbeat_interval": 0}, "spa": spa_options}})
        async with AsyncTestClient(server):
            spa = spa_of(server)
            sockets = [Socket() for _ in range(visitors)]
            gc.collect()
            if trace:
                tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0] if trace else 0
            accepted: list[float] = []
            refused: list[float] = []
            for sock in sockets:
                started = time.perf_counter()
                try:
                    answer = await spa.register(sock, None, None)
                except SpaError:
                    refused.append(time.perf_counter() - started)
                    continue
                context = spa.page_of(sock)
                assert context is not None
                await context.set("connection", "blob", "x" * size)
                accepted.append(time.perf_counter() - started)
                assert answer["user_id"].startswith("anon:")
            result = {"accepted": len(accepted), "refused": len(refused),
                      "users": len(await spa.backend.users()),
                      "data_bytes": float(await spa.backend.data_total() or 0)}
            if trace:
                gc.collect()
                result["heap_mb"] = (tracemalloc.get_traced_memory()[0] - before) / 1e6
                tracemalloc.stop()
            else:
                result["accepted_us"] = statistics.median(accepted) * 1e6 if accepted else 0
                result["refused_us"] = statistics.median(refused) * 1e6 if refused else 0
            return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--visitors", type=int, default=20_000)
    parser.add_argument("--cap", type=int, default=None,
                        help="max_anonymous_users (default: the plugin's default)")
    parser.add_argument("--bytes", type=int, default=1000, help="connection data per visitor")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    for round_no in range(args.rounds):
        wait_for_quiet()
        got = asyncio.run(flood(args.visitors, args.cap, args.bytes, trace=False))
        got.update(asyncio.run(flood(args.visitors, args.cap, args.bytes, trace=True)))
        for key, value in got.items():
            rows.setdefault(key, []).append(value)
        print(f"round {round_no + 1}: accepted {got['accepted']:.0f} "
              f"({got['accepted_us']:.0f} us each, with its set), refused {got['refused']:.0f} "
              f"({got['refused_us']:.0f} us each); held: {got['users']:.0f} users, "
              f"{got['data_bytes'] / 1e6:.1f} MB of data, {got['heap_mb']:.1f} MB of heap",
              flush=True)
    print(f"\nmedians of {args.rounds} rounds ({args.visitors:,} anonymous visitors)")
    for key, value in rows.items():
        print(f"  {key:12} {statistics.median(value):>14,.1f}")


if __name__ == "__main__":
    main()
