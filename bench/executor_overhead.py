"""The executor plugin side by side with what it replaces.

- event-loop latency while 8 CPU jobs run: a ticker asks for 1 ms sleeps and records how late
  it wakes, while 8 CPU jobs run through the executor's process pool, versus the same jobs
  called inline on the loop (what a handler does without an executor), and an idle loop;
- submit overhead per task: ``submit`` + ``result`` of a no-op task, ``run_blocking`` of a
  no-op, versus a bare ``loop.run_in_executor`` on a ThreadPoolExecutor (sequential calls);
- event-loop latency while 3 process jobs with a 64 MiB argument are handed over:
  ``run_process`` versus ``ProcessPoolExecutor`` (which pickles and sends in its own thread);
- jobs/second for tiny jobs, 2,000 at once (``gather``): ``run_blocking`` vs
  ``run_in_executor`` (threads), ``run_process`` vs ``ProcessPoolExecutor`` (processes), and
  ``submit`` of tasks.

Rounds are interleaved and medians reported, with ratios to the peer. Run from the repository
root (the machine is shared: read ratios, not absolute figures)::

    .venv/bin/python bench/executor_overhead.py [--rounds 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

CPU_JOBS = 8
LARGE_JOBS = 3
LARGE_DATA = b"x" * (64 << 20)  # sent to a worker: a pickled payload of the same size
CPU_N = 300_000
TINY = 2_000
SEQUENTIAL = 500


def burn(n: int = CPU_N) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def size_of(data: bytes) -> int:
    return len(data)


def noop(x: int = 0) -> int:
    return x


async def ticker(stop: asyncio.Event, late: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        await asyncio.sleep(0.001)
        late.append((loop.time() - asked - 0.001) * 1000)


async def latency(mode: str, executor: Any, processes: ProcessPoolExecutor) -> dict[str, float]:
    stop, late = asyncio.Event(), []
    tick = asyncio.create_task(ticker(stop, late))
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    if mode == "executor":
        await asyncio.gather(*[executor.run_process(burn) for _ in range(CPU_JOBS)])
    elif mode == "large":
        for _ in range(LARGE_JOBS):
            await executor.run_process(size_of, LARGE_DATA)
    elif mode == "large-peer":
        loop = asyncio.get_running_loop()
        for _ in range(LARGE_JOBS):
            await loop.run_in_executor(processes, size_of, LARGE_DATA)
    elif mode == "inline":
        for _ in range(CPU_JOBS):
            burn()
            await asyncio.sleep(0)
    else:
        await asyncio.sleep(0.3)
    elapsed = time.perf_counter() - started
    stop.set()
    await tick
    late.sort()
    return {"p50_ms": late[len(late) // 2], "p99_ms": late[int(len(late) * 0.99)],
            "max_ms": late[-1], "wall_s": elapsed}


async def per_call(kind: str, executor: Any, threads: ThreadPoolExecutor) -> float:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    for i in range(SEQUENTIAL):
        if kind == "run_in_executor":
            await loop.run_in_executor(threads, noop, i)
        elif kind == "run_blocking":
            await executor.run_blocking(noop, i)
        else:
            await executor.tasks.result(await executor.submit(noop, i))
    return (time.perf_counter() - started) / SEQUENTIAL * 1e6


async def throughput(kind: str, executor: Any, threads: ThreadPoolExecutor,
                     processes: ProcessPoolExecutor) -> float:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    if kind == "run_in_executor/thread":
        await asyncio.gather(*[loop.run_in_executor(threads, noop, i) for i in range(TINY)])
    elif kind == "run_blocking":
        await asyncio.gather(*[executor.run_blocking(noop, i) for i in range(TINY)])
    elif kind == "ProcessPoolExecutor":
        await asyncio.gather(*[loop.run_in_executor(processes, noop, i) for i in range(TINY)])
    elif kind == "run_process":
        await asyncio.gather(*[executor.run_process(noop, i) for i in range(TINY)])
    else:
        ids = [await executor.submit(noop, i) for i in range(TINY)]
        for task_id in ids:
            await executor.tasks.result(task_id)
    return TINY / (time.perf_counter() - started)


async def main(rounds: int) -> dict[str, Any]:
    from genro_asgi import AsgiServer
    from genro_asgi_executor import executor_of

    server = AsgiServer(tempfile.mkdtemp(prefix="executor-bench-"), environ={}, config={
        "logging": {"level": "WARNING"},
        "plugins": {"executor": {"retention": 3600, "max_records": 100_000, "pools": {
            "io": {"kind": "thread", "workers": 4},
            "cpu": {"kind": "process", "workers": 2}}}}})
    await server.startup()
    executor = executor_of(server)
    threads = ThreadPoolExecutor(4)
    processes = ProcessPoolExecutor(2, mp_context=get_context("forkserver"))
    await executor.run_process(noop)  # workers up before measuring
    await asyncio.gather(*[asyncio.get_running_loop().run_in_executor(processes, noop)
                           for _ in range(4)])
    lat: dict[str, list[dict[str, float]]] = {"idle": [], "executor": [], "inline": [],
                                              "large": [], "large-peer": []}
    calls: dict[str, list[float]] = {"run_in_executor": [], "run_blocking": [], "submit": []}
    rates: dict[str, list[float]] = {k: [] for k in (
        "run_in_executor/thread", "run_blocking", "ProcessPoolExecutor", "run_process",
        "submit")}
    try:
        for _ in range(rounds):
            for mode in lat:
                lat[mode].append(await latency(mode, executor, processes))
            for kind in calls:
                calls[kind].append(await per_call(kind, executor, threads))
            for kind in rates:
                rates[kind].append(await throughput(kind, executor, threads, processes))
                executor.tasks.purge(now=time.time() + 7200)
    finally:
        threads.shutdown()
        processes.shutdown()
        await server.shutdown()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    out: dict[str, Any] = {"latency": {m: {k: med([r[k] for r in rs]) for k in rs[0]}
                                       for m, rs in lat.items()},
                           "per_call_us": {k: med(v) for k, v in calls.items()},
                           "jobs_per_s": {k: med(v) for k, v in rates.items()}}
    print(f"event-loop lateness of a 1 ms ticker while {CPU_JOBS} CPU jobs run "
          f"(median of {rounds} rounds):")
    for mode, row in out["latency"].items():
        if mode == "large":
            print(f"event-loop lateness while {LARGE_JOBS} process jobs with a "
                  f"{len(LARGE_DATA) >> 20} MiB argument are handed over:")
        print(f"  {mode:10s} p50 {row['p50_ms']:8.2f} ms  p99 {row['p99_ms']:8.2f} ms  "
              f"max {row['max_ms']:8.2f} ms  wall {row['wall_s']:.2f} s")
    base = out["per_call_us"]["run_in_executor"]
    print(f"sequential call of a no-op ({SEQUENTIAL} calls), us per call:")
    for kind, value in out["per_call_us"].items():
        print(f"  {kind:16s} {value:8.1f} us  x{value / base:.2f} of run_in_executor")
    print(f"tiny jobs, {TINY} at once, jobs/s:")
    for kind, value in out["jobs_per_s"].items():
        peer = out["jobs_per_s"]["ProcessPoolExecutor" if kind == "run_process"
                                 else "run_in_executor/thread"]
        print(f"  {kind:24s} {value:10.0f}/s  x{value / peer:.2f} of the peer")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(main(args.rounds))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
