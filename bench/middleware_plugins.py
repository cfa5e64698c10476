"""Cost of the built-in cors + auth + compression plugins, side by side with Starlette's
CORSMiddleware + AuthenticationMiddleware (a bearer backend, routes under ``@requires``) +
GZipMiddleware. The apps are in bench/apps/middleware_apps.py.

Four apps (genro-asgi core only, genro-asgi with the three plugins, Starlette bare, Starlette
with the three middleware), two endpoints (``/hello``: 13 bytes, never compressed; ``/data``:
~2 KB of JSON, gzipped), every request with Origin + Authorization + Accept-Encoding: gzip.

- in-process: the ASGI callable driven directly, microseconds per request;
- through uvicorn (uvloop, httptools, one worker) loaded by ``wrk``: requests/s, with uvicorn
  pinned to one CPU and wrk to the other when possible.

Rounds are interleaved across apps and medians reported, with each framework's on/off ratio.
Run from the repository root: ``.venv/bin/python bench/middleware_plugins.py [--rounds 5]``.
Every server started here is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.apps.middleware_apps import REQUEST_HEADERS  # noqa: E402
from bench.inprocess import Lifespan, http_scope  # noqa: E402
from bench.through_uvicorn import choose_pinning, free_port, parse_wrk  # noqa: E402

APPS = ("genro_core", "genro_mw", "starlette_core", "starlette_mw")
LABELS = {"genro_core": "genro-asgi core", "genro_mw": "genro-asgi + cors/auth/compression",
          "starlette_core": "Starlette", "starlette_mw": "Starlette + CORS/Auth/GZip"}
PATHS = ("/hello", "/data")
HEADERS = [(k.lower().encode(), v.encode()) for k, v in REQUEST_HEADERS.items()]


# -- in-process --------------------------------------------------------------------------------

async def _time(app: Any, path: str, requests: int) -> float:
    base = http_scope(path)
    base["headers"] = [*base["headers"], *HEADERS]
    message = {"type": "http.request", "body": b"", "more_body": False}
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            status.append(msg["status"])

    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(requests):
            await app(dict(base), receive, send)
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    if set(status) != {200}:
        raise RuntimeError(f"{path}: unexpected statuses {sorted(set(status))}")
    return elapsed / requests * 1e6


async def in_process(rounds: int, requests: int) -> dict[tuple[str, str], float]:
    from bench.apps import middleware_apps

    apps = {name: getattr(middleware_apps, name) for name in APPS}
    lifespans = {name: Lifespan(app) for name, app in apps.items()}
    for lifespan in lifespans.values():
        await lifespan.start()
    try:
        for app in apps.values():
            for path in PATHS:
                await _time(app, path, max(200, requests // 10))  # warm up, and check 200s
        figures: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for name, app in apps.items():
                for path in PATHS:
                    figures.setdefault((name, path), []).append(
                        await _time(app, path, requests))
    finally:
        for lifespan in lifespans.values():
            await lifespan.stop()
    return {key: statistics.median(values) for key, values in figures.items()}


# -- through uvicorn -------------------------------------------------------------------------

def _start(name: str, pin: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [*pin, sys.executable, "-m", "uvicorn", f"bench.apps.middleware_apps:{name}",
         "--app-dir", str(REPO_ROOT), "--host", "127.0.0.1", "--port", str(port),
         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
         "warning", "--lifespan", "on"],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name}: uvicorn exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/data", headers=REQUEST_HEADERS)
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status != 200:
                raise RuntimeError(f"{name}: /data answered {response.status}")
            return process, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name}: not ready after 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        except ProcessLookupError:
            pass


def through_uvicorn(rounds: int, duration: int) -> dict[tuple[str, str], float]:
    pinning = choose_pinning()
    server_pin = pinning.prefix(pinning.server_cpu)
    wrk_pin = pinning.prefix(pinning.wrk_cpu)
    header_args = [arg for k, v in REQUEST_HEADERS.items() for arg in ("-H", f"{k}: {v}")]
    started: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    figures: dict[tuple[str, str], list[float]] = {}
    try:
        for name in APPS:
            started[name] = _start(name, server_pin)
        for round_no in range(rounds + 1):  # round 0 warms up and is discarded
            for name, (_, port) in started.items():
                for path in PATHS:
                    seconds = 1 if round_no == 0 else duration
                    command = [*wrk_pin, "wrk", "-t1", "-c32", f"-d{seconds}s", "--latency",
                               *header_args, f"http://127.0.0.1:{port}{path}"]
                    done = subprocess.run(command, capture_output=True, text=True, check=True,
                                          timeout=duration + 60)
                    rps, _, _, _, errors = parse_wrk(done.stdout)
                    if errors:
                        raise RuntimeError(f"{name}{path}: wrk saw {errors} errors")
                    if round_no:
                        figures.setdefault((name, path), []).append(rps)
    finally:
        for process, _ in started.values():
            _stop(process)
    return {key: statistics.median(values) for key, values in figures.items()}


def report(title: str, figures: dict[tuple[str, str], float], unit: str,
           higher_is_better: bool) -> None:
    print(f"\n{title} ({unit}, medians)")
    print(f"{'app':<40}" + "".join(f"{p:>12}" for p in PATHS) + "   plugins on / off")
    for name in APPS:
        row = f"{LABELS[name]:<40}" + "".join(f"{figures[(name, p)]:>12.2f}" for p in PATHS)
        if name.endswith("_mw"):
            base = name.replace("_mw", "_core")
            ratios = [figures[(name, p)] / figures[(base, p)] for p in PATHS]
            row += "   " + ", ".join(f"{r:.2f}x" for r in ratios)
        print(row)
    better = "genro-asgi / Starlette" if higher_is_better else "Starlette / genro-asgi"
    for path in PATHS:
        genro, star = figures[("genro_mw", path)], figures[("starlette_mw", path)]
        ratio = genro / star if higher_is_better else star / genro
        print(f"  {path}: with the three middleware, {better} = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--inprocess-only", action="store_true")
    args = parser.parse_args()
    report("in-process", asyncio.run(in_process(args.rounds, args.requests)), "µs/request",
           higher_is_better=False)
    if not args.inprocess_only:
        report("through uvicorn + wrk", through_uvicorn(args.rounds, args.duration), "req/s",
               higher_is_better=True)


if __name__ == "__main__":
    main()
