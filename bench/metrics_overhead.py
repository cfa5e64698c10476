"""Cost of the metrics plugin: the same hello-world served with metrics off and on.

Two measures, each in interleaved rounds (off, on, on with the WebSocket message middleware,
then again) reporting medians and the on/off ratio (the goal is a cost under 5%):

- in-process: the ASGI callable driven directly (no socket), microseconds per GET;
- through uvicorn: one uvicorn process per variant, loaded by ``wrk`` over loopback, requests/s
  (uvicorn pinned to one CPU and wrk to another when ``taskset`` and two CPUs are available).

Run from the repository root: ``.venv/bin/python bench/metrics_overhead.py [--rounds 5]``.
Every server started here is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "off": {},
    "on": {"metrics": {}},
    "on, websocket: true": {"metrics": {"websocket": True}},
}

APP_MODULE = '''
import json, os, tempfile
from genro_asgi import AsgiApplication, AsgiServer, route


class Hello(AsgiApplication):
    @route()
    async def hello(self):
        return "Hello, world!"


server = AsgiServer(tempfile.mkdtemp(prefix="genro-metrics-bench-"), environ={}, config={
    "logging": {"access_log": False, "level": "WARNING"},
    "plugins": json.loads(os.environ["BENCH_PLUGINS"]),
})
server.mount("/", Hello())
app = server
'''


# -- in-process ----------------------------------------------------------------------------------

def _scope() -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
            "method": "GET", "root_path": "", "path": "/hello", "raw_path": b"/hello",
            "query_string": b"", "headers": [(b"host", b"127.0.0.1:8000")], "state": {}}


async def _build(plugins: dict[str, Any]) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from genro_asgi import AsgiApplication, AsgiServer, route

    class Hello(AsgiApplication):
        @route()
        async def hello(self) -> str:
            return "Hello, world!"

    server = AsgiServer(tempfile.mkdtemp(prefix="genro-metrics-bench-"), environ={},
                        config={"logging": {"access_log": False, "level": "WARNING"},
                                "plugins": plugins})
    server.mount("/", Hello())
    await server.startup()
    return server


async def _time(app: Any, requests: int) -> float:
    base = _scope()
    message = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(_: Any) -> None:
        return None

    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(requests):
            await app(dict(base), receive, send)
        return (time.perf_counter() - started) / requests * 1e6
    finally:
        gc.enable()


async def in_process(rounds: int, requests: int) -> dict[str, float]:
    servers = {name: await _build(plugins) for name, plugins in VARIANTS.items()}
    for server in servers.values():
        await _time(server, 2000)  # warm up
    figures: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(rounds):
        for name, server in servers.items():
            figures[name].append(await _time(server, requests))
    for server in servers.values():
        await server.shutdown()
    return {name: statistics.median(values) for name, values in figures.items()}


# -- through uvicorn -------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pinning() -> tuple[list[str], list[str]]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if shutil.which("taskset") and len(cpus) >= 2:
        return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]
    return [], []


def _start(directory: Path, plugins: dict[str, Any], pin: list[str]) -> tuple[Any, int]:
    import json

    port = _free_port()
    process = subprocess.Popen(
        [*pin, sys.executable, "-m", "uvicorn", "bench_metrics_app:app", "--app-dir",
         str(directory), "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env={**os.environ, "BENCH_PLUGINS": json.dumps(plugins)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("uvicorn did not start")


def _wrk(port: int, pin: list[str], seconds: int) -> float:
    out = subprocess.run(
        [*pin, "wrk", "-t1", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{port}/hello"],
        capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    return float(match.group(1))


def through_uvicorn(rounds: int, seconds: int) -> dict[str, float] | None:
    if shutil.which("wrk") is None:
        return None
    server_pin, wrk_pin = _pinning()
    directory = Path(tempfile.mkdtemp(prefix="genro-metrics-bench-"))
    (directory / "bench_metrics_app.py").write_text(textwrap.dedent(APP_MODULE))
    processes: dict[str, tuple[Any, int]] = {}
    try:
        for name, plugins in VARIANTS.items():
            processes[name] = _start(directory, plugins, server_pin)
        for _, port in processes.values():
            _wrk(port, wrk_pin, 1)  # warm up
        figures: dict[str, list[float]] = {name: [] for name in processes}
        for _ in range(rounds):
            for name, (_, port) in processes.items():
                figures[name].append(_wrk(port, wrk_pin, seconds))
        return {name: statistics.median(values) for name, values in figures.items()}
    finally:
        for process, _ in processes.values():
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20000, help="per in-process round")
    parser.add_argument("--seconds", type=int, default=3, help="per wrk run")
    parser.add_argument("--skip-uvicorn", action="store_true")
    args = parser.parse_args()

    inproc = asyncio.run(in_process(args.rounds, args.requests))
    print(f"in-process, us per GET /hello (median of {args.rounds} interleaved rounds)")
    for name, us in inproc.items():
        print(f"  metrics {name:<22} {us:8.2f} us  ratio {us / inproc['off']:.3f}"
              f"  (+{us - inproc['off']:.2f} us)")
    if args.skip_uvicorn:
        return
    rps = through_uvicorn(args.rounds, args.seconds)
    if rps is None:
        print("through uvicorn: skipped (wrk not found)")
        return
    print(f"through uvicorn + wrk, requests/s (median of {args.rounds} interleaved rounds)")
    for name, value in rps.items():
        print(f"  metrics {name:<22} {value:10.0f} req/s  ratio {value / rps['off']:.3f}"
              f"  (cost {100 * (1 - value / rps['off']):.1f}%)")


if __name__ == "__main__":
    main()
