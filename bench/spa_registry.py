"""genro-asgi-spa: the registry and delivery, memory backend and NATS backend side by side.

In process (one ``AsgiServer`` with wsx + spa, started through the project's test client; the
pages are the manager's own ``register`` calls on stand-in sockets that count what they are
pushed, so the figures are the registry's and the backend's, not WSX's):

- **register**: 10,000 pages (2,000 anonymous users x 5 pages, one connection each): time per
  page, and Python heap per page (``tracemalloc``, in a second run so the tracing does not
  slow the timed one);
- **user delivery**: ``send("user", ...)`` to one user with 5 pages among those 10,000: us per
  delivery until the 5 sockets were pushed (the NATS backend serves its own process's pages
  directly, then sends once to NATS for the others);
- **fan-out**: one ``set_data`` at user level reaching 1,000 subscribed pages of one user: ms
  per change (the NATS backend's includes the tree's compare-and-set on JetStream).

Across processes (``genro-asgi serve`` processes and ``websockets`` clients from this one; the
memory variant is one server, the NATS variant two on one nats-server):

- **latency**: a page calls ``/_spa/send`` (to its user) with a ``time.monotonic_ns()`` stamp;
  another page of the user (on the other process for NATS) computes now - stamp on receipt;
  one at a time: p50 / p99;
- **fan-out**: 1,000 pages of one user subscribed to ``prefs`` (NATS: 500 per process), a page
  sets ``prefs.n`` ``--burst`` times; deliveries/s until the last page got the last change.

Run from the repository root: ``.venv/bin/python bench/spa_registry.py [--rounds 3]``. The
machine is shared (2 cores; the client, the servers and nats-server share them): read ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import wait_for_quiet
from bench.served import ServedProcess
from genro_asgi import AsgiServer
from genro_asgi.testing import AsyncTestClient
from genro_asgi_nats.testing import NatsServer

SECRET = "bench-cookie-secret-0123456789-abcdef"
LIMITS = {"max_pages_per_user": 2000, "max_pages_per_connection": 2000,
          "max_sessions_per_user": 2000, "change_rate": 1e6, "change_burst": 1_000_000,
          "user_change_rate": 1e6, "user_change_burst": 1_000_000, "grace_period": 60.0,
          # every round's anonymous users stay in the NATS bucket (the cluster's count)
          "max_anonymous_users": 1_000_000}


class Socket:
    """A page's socket as the manager sees it: counts pushes, keeps its close callback."""

    __slots__ = ("callbacks", "pushed")

    def __init__(self) -> None:
        self.pushed = 0
        self.callbacks: list[Callable[[Any], Any]] = []

    def push_event(self, subscription: str, publication: Any) -> bool:
        self.pushed += 1
        return True

    def on_close(self, callback: Callable[[Any], Any]) -> None:
        self.callbacks.append(callback)


def spa_config(nats_url: str | None) -> dict[str, Any]:
    plugins: dict[str, Any] = {"wsx": {"heartbeat_interval": 0},
                               "spa": {"allow_anonymous": True, "cookie_secret": SECRET,
                                       **LIMITS}}
    if nats_url:
        plugins["nats"] = {"servers": [nats_url], "subject_prefix": "benchspa"}
        plugins["spa"]["backend"] = "genro_asgi_nats:NatsSpaBackend"
    return {"logging": {"level": "WARNING"}, "plugins": plugins}


async def in_process(root: Path, nats_url: str | None, users: int, per_user: int,
                     fan: int, reps: int, trace: bool) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(dir=root))
    server = AsgiServer(directory, config=spa_config(nats_url), environ={})
    result: dict[str, float] = {}
    async with AsyncTestClient(server):
        manager = server.plugins.get("spa").manager  # type: ignore[union-attr]
        total = users * per_user
        sockets = [Socket() for _ in range(total)]
        gc.collect()
        if trace:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
        started, cpu = time.perf_counter(), time.process_time()
        first: list[dict[str, Any]] = []
        index = 0
        for _ in range(users):
            answer = await manager.register(sockets[index], None, None)
            first.append(answer)
            index += 1
            for _ in range(per_user - 1):
                await manager.register(sockets[index], None, answer["connection_token"])
                index += 1
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if trace:
            gc.collect()
            result["bytes_per_page"] = (tracemalloc.get_traced_memory()[0] - before) / total
            tracemalloc.stop()
            return result
        result["register_us"] = elapsed / total * 1e6
        result["register_cpu_us"] = cpu / total * 1e6
        # a delivery to one user with per_user pages among them all
        target = first[users // 2]
        mine = sockets[(users // 2) * per_user:(users // 2 + 1) * per_user]
        samples = []
        for n in range(reps + 20):
            t0 = time.perf_counter()
            await manager.send("user", target["user_id"], "bench", n)
            while sum(s.pushed for s in mine) < (n + 1) * per_user:
                await asyncio.sleep(0)
            if n >= 20:
                samples.append((time.perf_counter() - t0) * 1e6)
        result["user_delivery_us"] = statistics.median(samples)
        # a change fanned out to `fan` subscribed pages of one user
        fan_sockets = [Socket() for _ in range(fan)]
        owner = await manager.register(fan_sockets[0], None, None)
        for sock in fan_sockets[1:]:
            await manager.register(sock, None, owner["connection_token"])
        for sock in fan_sockets:
            context = manager.page_of(sock)
            await manager.subscribe(context, "user", "prefs")
        times = []
        for n in range(max(3, reps // 20)):
            t0 = time.perf_counter()
            await manager.set_data("user", owner["user_id"], "prefs.n", n)
            while sum(s.pushed for s in fan_sockets) < (n + 1) * fan:
                await asyncio.sleep(0)
            times.append((time.perf_counter() - t0) * 1e3)
        result["fanout_ms"] = statistics.median(times)
    return result


# -- across processes ------------------------------------------------------------------------

APP = '''
from genro_asgi import AsgiApplication, route


class Health(AsgiApplication):
    @route()
    async def health(self):
        return "ok"
'''


def serve_site(root: Path, name: str, nats_url: str | None) -> ServedProcess:
    """This benchmark's site in ``root / name``, served by one `genro-asgi serve` process
    (the memory backend when ``nats_url`` is None)."""
    directory = root / name
    directory.mkdir()
    (directory / "healthapp.py").write_text(APP)
    config = spa_config(nats_url)
    config["apps"] = {"app": {"module": "healthapp:Health"}}
    (directory / "config.yaml").write_text(json.dumps(config))
    return ServedProcess(directory, "/app/health")


class Page:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    @classmethod
    async def open(cls, server: ServedProcess,
                   token: str | None = None) -> tuple[Page, dict[str, Any]]:
        page = cls(await websockets.connect(server.ws, subprotocols=["wsx"],  # type: ignore[list-item]
                                            max_queue=None))
        info = await page.call("register", **({"connection": token} if token else {}))
        return page, info

    async def call(self, name: str, **data: Any) -> Any:
        self.next_id += 1
        ident = self.next_id
        await self.ws.send("WSX://" + json.dumps({"id": ident, "path": f"/_spa/{name}",
                                                  "data": data}))
        while True:
            frame = json.loads((await self.ws.recv())[6:])
            if frame.get("id") == ident:
                assert frame["status"] == 200, frame
                return json.loads(frame["data"]) if isinstance(frame["data"], str) else None

    async def send_only(self, name: str, **data: Any) -> None:
        self.next_id += 1
        await self.ws.send("WSX://" + json.dumps({"id": self.next_id, "path": f"/_spa/{name}",
                                                  "data": data}))

    async def event(self) -> dict[str, Any]:
        while True:
            frame = json.loads((await self.ws.recv())[6:])
            if frame.get("type") == "event":
                return json.loads(frame["data"])  # type: ignore[no-any-return]


async def latency(sender_server: ServedProcess, receiver_server: ServedProcess,
                  count: int) -> list[float]:
    sender, info = await Page.open(sender_server)
    receiver, _ = await Page.open(receiver_server, info["connection_token"])
    await asyncio.sleep(0.3)  # the pages are in every replica
    samples: list[float] = []
    for n in range(count + 50):
        await sender.send_only("send", to="user", topic="lat", data={"t": time.monotonic_ns()})
        data = await asyncio.wait_for(receiver.event(), 30)
        if n >= 50:
            samples.append((time.monotonic_ns() - data["data"]["t"]) / 1e6)
    await sender.ws.close()
    await receiver.ws.close()
    return samples


async def fan_out(group: list[ServedProcess], pages: int, burst: int) -> float:
    writer, info = await Page.open(group[0])
    readers = []
    for index in range(pages):
        page, _ = await Page.open(group[index % len(group)], info["connection_token"])
        await page.call("subscribe", level="user", path="prefs")
        readers.append(page)
    left = [pages * burst]
    done = asyncio.Event()

    async def drain(page: Page) -> None:
        for _ in range(burst):
            await page.event()
            left[0] -= 1
        if left[0] == 0:
            done.set()

    tasks = [asyncio.create_task(drain(p)) for p in readers]
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    for n in range(burst):
        await writer.call("set", level="user", path="prefs.n", value=n)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await asyncio.gather(*tasks)
    await asyncio.gather(*(p.ws.close() for p in [writer, *readers]))
    await asyncio.sleep(0.3)
    return pages * burst / elapsed


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--per-user", type=int, default=5)
    parser.add_argument("--fan", type=int, default=1000, help="pages a change fans out to")
    parser.add_argument("--reps", type=int, default=200, help="deliveries timed per round")
    parser.add_argument("--samples", type=int, default=500, help="latency samples per round")
    parser.add_argument("--burst", type=int, default=10, help="changes per fan-out round")
    parser.add_argument("--in-process-only", action="store_true")
    args = parser.parse_args()
    keys = ("register_us", "register_cpu_us", "bytes_per_page", "user_delivery_us",
            "fanout_ms", "p50", "p99", "fanout_rate")
    results: dict[str, dict[str, list[float]]] = {v: {k: [] for k in keys}
                                                  for v in ("memory", "nats")}
    busy = 0
    with tempfile.TemporaryDirectory() as tmp, NatsServer() as nats:
        root = Path(tmp)
        for round_no in range(args.rounds):
            for variant in ("memory", "nats"):
                url = nats.url if variant == "nats" else None
                busy += not wait_for_quiet()
                got = asyncio.run(in_process(root, url, args.users, args.per_user, args.fan,
                                             args.reps, trace=False))
                got.update(asyncio.run(in_process(root, url, args.users, args.per_user,
                                                  args.fan, args.reps, trace=True)))
                for key, value in got.items():
                    results[variant][key].append(value)
                print(f"round {round_no + 1} {variant:6} in process: register "
                      f"{got['register_us']:.0f} us/page ({got['register_cpu_us']:.0f} CPU), "
                      f"{got['bytes_per_page']:.0f} B/page, "
                      f"user delivery {got['user_delivery_us']:.0f} us, fan-out "
                      f"{got['fanout_ms']:.2f} ms", flush=True)
        if not args.in_process_only:
            servers = {"memory": [serve_site(root, "mem", None)],
                       "nats": [serve_site(root, "a", nats.url),
                                serve_site(root, "b", nats.url)]}
            try:
                for round_no in range(args.rounds):
                    for variant in ("memory", "nats"):
                        group = servers[variant]
                        busy += not wait_for_quiet()
                        samples = asyncio.run(latency(group[0], group[-1], args.samples))
                        rate = asyncio.run(fan_out(group, args.fan, args.burst))
                        results[variant]["p50"].append(pct(samples, 0.5))
                        results[variant]["p99"].append(pct(samples, 0.99))
                        results[variant]["fanout_rate"].append(rate)
                        print(f"round {round_no + 1} {variant:6} across: p50 "
                              f"{pct(samples, .5):.2f} ms, p99 {pct(samples, .99):.2f} ms, "
                              f"fan-out {rate:,.0f} deliveries/s", flush=True)
            finally:
                for group in servers.values():
                    for server in group:
                        server.stop()
    med = {v: {k: statistics.median(x) for k, x in r.items() if x} for v, r in results.items()}
    print(f"\nmedians of {args.rounds} rounds ({os.cpu_count()} cpus; {busy} started on a busy "
          f"machine; {args.users * args.per_user:,} pages in process, fan-out to {args.fan})")
    print(f"{'':44}{'memory':>12}{'nats':>12}{'nats/memory':>13}")
    for key, label in (("register_us", "register one page, in process (us)"),
                       ("register_cpu_us", "  of which CPU of this process (us)"),
                       ("bytes_per_page", "heap per registered page (bytes)"),
                       ("user_delivery_us", "delivery to a user's 5 pages (us)"),
                       ("fanout_ms", f"one change to {args.fan} pages, in process (ms)"),
                       ("p50", "send -> other process's page p50 (ms)"),
                       ("p99", "send -> other process's page p99 (ms)"),
                       ("fanout_rate", f"fan-out to {args.fan} pages (deliveries/s)")):
        if key in med["memory"] and key in med["nats"]:
            a, b = med["memory"][key], med["nats"][key]
            print(f"{label:44}{a:>12,.1f}{b:>12,.1f}{b / a:>13.2f}")


if __name__ == "__main__":
    main()
