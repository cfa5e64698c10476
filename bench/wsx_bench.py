"""WSX round trips and fan-out, side by side with a bare ASGI WebSocket echo on the same uvicorn.

One uvicorn process (1 worker, uvloop, no access log) serves a genro-asgi server with the wsx
plugin and a plain ASGI echo mounted at ``/echo``. The load comes from this process with the
``websockets`` asyncio client. Variants, in interleaved rounds, medians reported:

- ``echo``: the bare ASGI endpoint sends back every text frame;
- ``wsx``: ``WSX://{"id","path":"/bench/hello"}`` answered by an async route handler;
- ``jsonrpc``: ``{"jsonrpc":"2.0","method":"bench.hello","id":n}``, the same handler.

Each is run on 1 connection (sequential round trips) and on 50 (each sequential, all at once).
Reported: round trips/s and the **server CPU per round trip** (user+system time of the uvicorn
process from /proc, divided by the round trips), with the ratio to the echo: the budget in
the architecture page is WSX <= 1.3x the echo's server CPU. Then a publish fan-out: 1000
subscribers on one channel, a handler publishes, time until every subscriber has the event.

Run from the repository root: ``.venv/bin/python bench/wsx_bench.py [--rounds 5] [--seconds 2]``.
The machine is shared: read ratios, not absolute figures. The server is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

import websockets

APP_MODULE = '''
import tempfile
from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi_wsx import publish


class Bench(AsgiApplication):
    @route()
    async def hello(self):
        return "Hello, world!"

    @route()
    async def fan(self, n: int = 0):
        await publish(self.server, "fan.out", {"n": n})
        return True


async def echo(scope, receive, send):
    message = await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text")})


server = AsgiServer(tempfile.mkdtemp(prefix="genro-wsx-bench-"), environ={}, config={
    "logging": {"access_log": False, "level": "WARNING"},
    "watchdog": {"enabled": False},
    "plugins": {"wsx": {"heartbeat_interval": 0, "max_in_flight": 64, "outbound_queue": 10000}},
})
server.mount("/bench", Bench())
server.mount("/echo", echo)
app = server
'''

VARIANTS = {
    "echo": ("/echo", None, lambda n: f"ping {n}"),
    "wsx": ("/_wsx", "wsx", lambda n: f'WSX://{{"id":{n},"path":"/bench/hello"}}'),
    "jsonrpc": ("/_wsx", "jsonrpc",
                lambda n: f'{{"jsonrpc":"2.0","method":"bench.hello","id":{n}}}'),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def round_trips(url: str, subprotocol: str | None, frame: Any, connections: int,
                      seconds: float) -> int:
    """Sequential round trips on each connection for ``seconds``; the total count."""
    protocols = [subprotocol] if subprotocol else None
    sockets = [await websockets.connect(url, subprotocols=protocols, max_size=None)
               for _ in range(connections)]
    stop = time.perf_counter() + seconds

    async def drive(ws: Any) -> int:
        count = 0
        while time.perf_counter() < stop:
            await ws.send(frame(count))
            await ws.recv()
            count += 1
        return count

    try:
        return sum(await asyncio.gather(*(drive(ws) for ws in sockets)))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def fan_out(base: str, subscribers: int, publications: int) -> list[float]:
    """Seconds from each publish call until all ``subscribers`` have the event."""
    sockets = []
    for _ in range(subscribers):
        ws = await websockets.connect(base + "/_wsx", subprotocols=["wsx"], max_size=None)
        await ws.send('WSX://{"id":1,"type":"subscribe","channel":"fan.out"}')
        await ws.recv()
        sockets.append(ws)
    publisher = await websockets.connect(base + "/_wsx", subprotocols=["wsx"])
    timings = []
    try:
        for n in range(publications):
            started = time.perf_counter()
            await publisher.send(f'WSX://{{"id":{n},"path":"/bench/fan","data":{{"n":{n}}}}}')
            await asyncio.gather(*(ws.recv() for ws in sockets))
            timings.append(time.perf_counter() - started)
            await publisher.recv()
    finally:
        await asyncio.gather(*(ws.close() for ws in [*sockets, publisher]))
    return timings


def start_server(workdir: Path, port: int, pin: bool) -> subprocess.Popen[bytes]:
    (workdir / "wsx_bench_app.py").write_text(textwrap.dedent(APP_MODULE))
    command = [sys.executable, "-m", "uvicorn", "wsx_bench_app:app", "--host", "127.0.0.1",
               "--port", str(port), "--loop", "uvloop", "--no-access-log",
               "--log-level", "warning", "--ws-max-size", "16777216"]
    if pin:
        command = ["taskset", "-c", "0", *command]
    process = subprocess.Popen(command, cwd=workdir, env={**os.environ, "PYTHONPATH": str(workdir)})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("uvicorn did not start")


async def run(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    base = f"ws://127.0.0.1:{port}"
    results: dict[str, Any] = {}
    for connections in (1, 50):
        rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for name, (path, subprotocol, frame) in VARIANTS.items():
                cpu_before, wall = cpu_seconds(pid), time.perf_counter()
                count = await round_trips(base + path, subprotocol, frame, connections,
                                          args.seconds)
                elapsed = time.perf_counter() - wall
                rates[name].append(count / elapsed)
                cpu[name].append((cpu_seconds(pid) - cpu_before) / count * 1e6)
        echo_cpu = statistics.median(cpu["echo"])
        results[f"{connections} connection(s)"] = {
            name: {"round_trips_per_s": round(statistics.median(rates[name])),
                   "server_cpu_us_per_round_trip": round(statistics.median(cpu[name]), 1),
                   "cpu_ratio_to_echo": round(statistics.median(cpu[name]) / echo_cpu, 2)}
            for name in VARIANTS}
    timings = await fan_out(base, args.subscribers, args.publications)
    results["fan_out"] = {"subscribers": args.subscribers,
                          "median_ms_until_all_received": round(statistics.median(timings) * 1e3,
                                                                1),
                          "deliveries_per_s": round(args.subscribers / statistics.median(timings))}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--publications", type=int, default=20)
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    if pin:
        os.sched_setaffinity(0, {1})
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wsx-bench-") as workdir:
        process = start_server(Path(workdir), port, pin)
        try:
            results = asyncio.run(run(args, port, process.pid))
        finally:
            process.terminate()
            process.wait(10)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
