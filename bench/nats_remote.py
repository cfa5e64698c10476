"""Remote executor jobs (``kind: remote`` over NATS JetStream) side by side with the local
process pool.

One in-process genro-asgi server (lifespan started, driven through the executor's API, no
HTTP) with two pools: ``cpu`` (kind process, 2 workers) and ``far`` (kind remote, served by 2
``genro-asgi worker`` processes with ``--concurrency`` jobs each) on one nats-server. Tasks go
through the TaskManager in both cases (``submit`` then ``result``). Measured, in interleaved
rounds, medians:

- **round trip**: a no-op task submitted and awaited, one at a time: p50 / p99;
- **throughput**: ``--jobs`` tiny tasks (``x + 1``) submitted at once, jobs/s until the last
  result.

Run from the repository root: ``.venv/bin/python bench/nats_remote.py [--rounds 3]``. The
machine is shared (2 cores: the server, the workers and nats-server share them): read ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from genro_asgi import AsgiServer
from genro_asgi.testing import AsyncTestClient
from genro_asgi_executor import executor_of
from genro_asgi_nats.testing import NatsServer

JOBS = '''
def noop():
    return None


def tiny(x):
    return x + 1
'''


def write_app(root: Path, nats_url: str, concurrency: int) -> Path:
    directory = root / "app"
    directory.mkdir()
    (directory / "benchjobs.py").write_text(JOBS)
    (directory / "config.yaml").write_text(
        "logging: {level: WARNING}\nplugins:\n"
        f'  nats: {{servers: ["{nats_url}"], subject_prefix: benchjobs}}\n'
        "  executor:\n    path: ~\n    pools:\n"
        "      io: {kind: thread}\n"
        "      cpu: {kind: process, workers: 2}\n"
        f"      far: {{kind: remote, workers: {concurrency}, options: "
        "{jobs: {noop: 'benchjobs:noop', tiny: 'benchjobs:tiny'}}}\n")
    return directory


async def round_trips(server: AsgiServer, pool: str, job: Any, count: int) -> list[float]:
    executor = executor_of(server)
    samples = []
    for n in range(count + 20):
        started = time.perf_counter()
        task_id = await executor.submit(job, pool=pool)
        await executor.tasks.result(task_id, timeout=60)
        if n >= 20:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


async def throughput(server: AsgiServer, pool: str, job: Any, count: int) -> float:
    executor = executor_of(server)
    started = time.perf_counter()
    task_ids = await asyncio.gather(*(executor.submit(job, n, pool=pool) for n in range(count)))
    results = await asyncio.gather(*(executor.tasks.result(t, timeout=300) for t in task_ids))
    elapsed = time.perf_counter() - started
    assert results == [n + 1 for n in range(count)]
    return count / elapsed


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(directory: Path, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    import benchjobs  # type: ignore[import-not-found]

    server = AsgiServer(directory, environ={})
    results: dict[str, dict[str, list[float]]] = {
        pool: {"p50": [], "p99": [], "rate": []} for pool in ("cpu", "far")}
    async with AsyncTestClient(server):
        for pool in ("cpu", "far"):  # warm-up: worker processes up, queue and consumer made
            await throughput(server, pool, benchjobs.tiny, 50)
        for round_no in range(args.rounds):
            for pool in ("cpu", "far"):
                samples = await round_trips(server, pool, benchjobs.noop, args.samples)
                rate = await throughput(server, pool, benchjobs.tiny, args.jobs)
                results[pool]["p50"].append(pct(samples, 0.5))
                results[pool]["p99"].append(pct(samples, 0.99))
                results[pool]["rate"].append(rate)
                print(f"round {round_no + 1} {pool}: round trip p50 {pct(samples, .5):.2f} ms "
                      f"p99 {pct(samples, .99):.2f} ms, {rate:,.0f} jobs/s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200, help="round trips per round")
    parser.add_argument("--jobs", type=int, default=2000, help="tiny jobs per round")
    parser.add_argument("--concurrency", type=int, default=16, help="jobs per worker at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, NatsServer() as nats:
        directory = write_app(Path(tmp), nats.url, args.concurrency)
        sys.path.insert(0, str(directory))
        workers = [subprocess.Popen(
            [sys.executable, "-m", "genro_asgi", "worker", str(directory), "--pool", "far"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        try:
            for worker in workers:
                assert worker.stdout is not None and "pool 'far'" in worker.stdout.readline()
            results = asyncio.run(run(directory, args))
        finally:
            for worker in workers:
                worker.terminate()
                try:
                    out, _ = worker.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    out, _ = worker.communicate()
                print(out.strip(), flush=True)
    med = {p: {k: statistics.median(v) for k, v in r.items()} for p, r in results.items()}
    print(f"\nmedians of {args.rounds} rounds ({os.cpu_count()} cpus; {args.samples} round "
          f"trips, {args.jobs} tiny jobs; 2 local processes vs 2 remote workers x "
          f"{args.concurrency})")
    print(f"{'':26}{'process pool':>16}{'remote (NATS)':>16}{'remote/process':>16}")
    for key, label in (("p50", "no-op round trip p50 ms"), ("p99", "no-op round trip p99 ms"),
                       ("rate", "tiny jobs/s")):
        a, b = med["cpu"][key], med["far"][key]
        print(f"{label:26}{a:>16,.2f}{b:>16,.2f}{b / a:>16.2f}")


if __name__ == "__main__":
    main()
