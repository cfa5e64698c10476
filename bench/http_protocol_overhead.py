"""Cost of genro-asgi's HTTP protocol (read deadlines, bounded head) against uvicorn's own.

The suite's genro app (``bench/apps/genro_app.py``) is served by uvicorn twice: with
``--http httptools`` (stock) and with ``--http genro_asgi.http_protocol:HttpToolsProtocol`` (what
``AsgiServer.run()`` uses). A small asyncio client (no wrk needed) sends ``GET /hello`` over
kept-alive connections. Reported, stock vs genro, interleaved rounds, medians:

- the server's CPU time per request (``/proc``), and requests/s (the client may be the
  bottleneck: read the CPU column); the order alternates round by round, since on this
  machine whichever server runs second in a round measures several percent slower;
- with ``--instructions``: user-space instructions per request of each whole server under
  valgrind's callgrind (deterministic, the figure to trust on a shared machine).

Run from the repository root::

    .venv/bin/python bench/http_protocol_overhead.py [--rounds 5] [--requests 20000]
        [--instructions] [--skip-timing]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.through_uvicorn import HOST, cpu_seconds, free_port  # noqa: E402

VARIANTS = {"stock": "httptools", "genro": "genro_asgi.http_protocol:HttpToolsProtocol"}
REQUEST = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"
CONNECTIONS = 8


class Server:
    def __init__(self, http: str, wrapper: list[str] | None = None) -> None:
        self.port = free_port()
        command = [*(wrapper or []), sys.executable, "-m", "uvicorn",
                   "bench.apps.genro_app:app", "--app-dir", str(REPO_ROOT), "--host", HOST,
                   "--port", str(self.port), "--loop", "uvloop", "--http", http,
                   "--no-access-log", "--log-level", "warning", "--lifespan", "on"]
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                asyncio.run(load(self.port, 1, 1))
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _client(port: int, requests: int) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for _ in range(requests):
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
    finally:
        writer.close()


async def load(port: int, connections: int, per_connection: int) -> None:
    await asyncio.gather(*(_client(port, per_connection) for _ in range(connections)))


def timed_round(server: Server, requests: int) -> tuple[float, float]:
    """(server CPU microseconds per request, requests/s)."""
    per_connection = requests // CONNECTIONS
    cpu = cpu_seconds(server.process.pid)
    start = time.perf_counter()
    asyncio.run(load(server.port, CONNECTIONS, per_connection))
    elapsed = time.perf_counter() - start
    done = per_connection * CONNECTIONS
    return (cpu_seconds(server.process.pid) - cpu) / done * 1e6, done / elapsed


def timing(rounds: int, requests: int) -> None:
    servers = {key: Server(http) for key, http in VARIANTS.items()}
    try:
        for server in servers.values():
            server.wait_ready(60)
            timed_round(server, 2000)  # warm-up
        results: dict[str, list[tuple[float, float]]] = {key: [] for key in servers}
        for round_number in range(rounds):
            order = list(servers.items())
            if round_number % 2:  # the second server of a round runs slower: alternate
                order.reverse()
            for key, server in order:
                results[key].append(timed_round(server, requests))
    finally:
        for server in servers.values():
            server.stop()
    print(f"GET /hello, {rounds} rounds x {requests} requests, {CONNECTIONS} connections")
    print(f"{'protocol':<8} {'server CPU us/request':>22} {'requests/s':>12}")
    medians = {}
    for key, values in results.items():
        cpu = statistics.median(v[0] for v in values)
        rate = statistics.median(v[1] for v in values)
        medians[key] = cpu
        print(f"{key:<8} {cpu:>22.1f} {rate:>12.0f}")
    print(f"genro/stock CPU per request: {medians['genro'] / medians['stock']:.3f}")


def instructions(requests: int) -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed")
    per_request = {}
    with tempfile.TemporaryDirectory(prefix="genro-asgi-bench-proto-") as tmp:
        for key, http in VARIANTS.items():
            out = Path(tmp) / f"{key}.out"
            server = Server(http, ["valgrind", "--tool=callgrind",
                                   f"--callgrind-out-file={out}"])
            try:
                server.wait_ready(300)
                asyncio.run(load(server.port, CONNECTIONS, 200))  # warm-up
                subprocess.run(["callgrind_control", "-z", str(server.process.pid)],
                               check=True, capture_output=True)
                asyncio.run(load(server.port, CONNECTIONS, requests // CONNECTIONS))
                subprocess.run(["callgrind_control", "-d", str(server.process.pid)],
                               check=True, capture_output=True)
                dump = sorted(Path(tmp).glob(f"{key}.out.*"))[-1]
                match = re.search(r"^summary:\s+(\d+)", dump.read_text(), re.MULTILINE)
                assert match is not None
                per_request[key] = int(match.group(1)) / (requests // CONNECTIONS * CONNECTIONS)
            finally:
                server.stop()
    for key, value in per_request.items():
        print(f"{key:<8} {value:>12,.0f} instructions/request (whole server, user space)")
    print(f"genro/stock instructions: {per_request['genro'] / per_request['stock']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    if not args.skip_timing:
        timing(args.rounds, args.requests)
    if args.instructions:
        instructions(min(args.requests, 4000))


if __name__ == "__main__":
    main()
