"""WSX framework cost per call in-process: the server's ASGI callable driven with a fake socket.

No uvicorn and no socket: each variant of ``bench/wsx_bench.py`` (the bare ``echo`` mounted on
the same server, ``wsx`` and ``jsonrpc`` calling ``/bench/hello``) gets a websocket scope, a
``receive`` that hands over the next frame once the previous answer was sent, and a ``send``
that records the answer. Round trips are sequential per connection (``--connections`` of them
run at once), so what is left per round trip is the framework's own work plus a small,
identical harness cost. The server cost uvicorn adds (framing, the socket, its tasks) is not
here: it is the same for every variant, see wsx_bench.py for the whole-server ratio.

- timing (default): CPU µs per round trip (``thread_time``), median of interleaved rounds;
- ``--callgrind``: the loops under ``valgrind --tool=callgrind``, instructions per round trip
  (deterministic to about 1%: the figures to compare across commits on a shared machine);
The loop is uvloop when installed, as in the uvicorn bench.

- ``--profile NAME``: cProfile of one variant, top functions by own time;
- ``--server-callgrind``: the whole uvicorn server of wsx_bench.py under callgrind, driven by
  real ``websockets`` clients from this process: counters zeroed after a warm-up, dumped after
  the variant's round trips, instructions per round trip (uvicorn and the app; no kernel time).

Run from the repository root: ``.venv/bin/python bench/wsx_inprocess.py [--calls 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
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

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.inprocess import Lifespan  # noqa: E402
from bench.wsx_bench import APP_MODULE, VARIANTS, free_port  # noqa: E402

WARMUP = 300


class FakeSocket:
    """One client: frames go in one at a time, each answer releases the next frame."""

    def __init__(self, app: Any, path: str, subprotocol: str | None) -> None:
        self.app = app
        self.scope = {
            "type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "scheme": "ws", "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000), "root_path": "", "path": path,
            "raw_path": path.encode("ascii"), "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8000"), (b"connection", b"Upgrade"),
                        (b"upgrade", b"websocket")],
            "subprotocols": [subprotocol] if subprotocol else [], "state": {},
        }
        self.inbox: collections.deque[dict[str, Any]] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.answer: asyncio.Future[dict[str, Any]] | None = None
        self.accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None

    def _push(self, message: dict[str, Any]) -> None:
        self.inbox.append(message)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        while not self.inbox:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.inbox.popleft()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            answer = self.answer
            if answer is not None and not answer.done():
                answer.set_result(message)
        elif kind == "websocket.accept":
            self.accepted.set_result(None)
        elif kind == "websocket.close" and not self.accepted.done():
            self.accepted.set_exception(RuntimeError(f"handshake refused: {message}"))

    async def open(self) -> None:
        self.task = asyncio.create_task(self.app(self.scope, self.receive, self.send))
        self._push({"type": "websocket.connect"})
        await self.accepted

    async def round_trip(self, text: str) -> dict[str, Any]:
        self.answer = asyncio.get_running_loop().create_future()
        self._push({"type": "websocket.receive", "text": text})
        return await self.answer

    async def close(self) -> None:
        self._push({"type": "websocket.disconnect", "code": 1000})
        assert self.task is not None
        await self.task


async def drive(sockets: list[FakeSocket], frame: Any, calls: int) -> None:
    """``calls`` round trips on each socket, the sockets concurrently."""
    async def one(sock: FakeSocket) -> None:
        for n in range(calls):
            await sock.round_trip(frame(n))

    if len(sockets) == 1:
        await one(sockets[0])
    else:
        await asyncio.gather(*(one(sock) for sock in sockets))


def load_server() -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(APP_MODULE), "wsx_bench_app", "exec"), namespace)
    return namespace["app"]


async def open_all(app: Any, connections: int) -> dict[str, list[FakeSocket]]:
    """Per variant, ``connections`` open sockets, each answer checked once."""
    opened: dict[str, list[FakeSocket]] = {}
    for name, (path, subprotocol, frame) in VARIANTS.items():
        socks = [FakeSocket(app, path, subprotocol) for _ in range(connections)]
        for sock in socks:
            await sock.open()
        answer = await socks[0].round_trip(frame(1))  # type: ignore[no-untyped-call]
        text = answer["text"]
        if name != "echo" and "Hello, world!" not in text:
            raise RuntimeError(f"{name}: unexpected answer {text!r}")
        opened[name] = socks
    return opened


async def timing(args: argparse.Namespace) -> dict[str, Any]:
    app = load_server()
    lifespan = Lifespan(app)
    await lifespan.start()
    try:
        opened = await open_all(app, args.connections)
        for name, (_, _, frame) in VARIANTS.items():
            await drive(opened[name], frame, WARMUP)
        cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
        total = args.calls * args.connections
        for _ in range(args.rounds):
            for name, (_, _, frame) in VARIANTS.items():
                gc.collect()
                if not args.gc:
                    gc.disable()
                start = time.thread_time_ns()
                await drive(opened[name], frame, args.calls)
                cpu[name].append((time.thread_time_ns() - start) / total / 1e3)
                gc.enable()
        for socks in opened.values():
            for sock in socks:
                await sock.close()
    finally:
        await lifespan.stop()
    echo = statistics.median(cpu["echo"])
    return {name: {"cpu_us_per_round_trip": round(statistics.median(values), 2),
                   "min_max": [round(min(values), 2), round(max(values), 2)],
                   "over_echo_us": round(statistics.median(values) - echo, 2)}
            for name, values in cpu.items()}


async def child(args: argparse.Namespace) -> None:
    """Inside callgrind: every loop between two ``os.getppid()`` dump markers."""
    app = load_server()
    lifespan = Lifespan(app)
    await lifespan.start()
    try:
        opened = await open_all(app, args.connections)
        for name, (_, _, frame) in VARIANTS.items():
            await drive(opened[name], frame, WARMUP)
        os.getppid()
        for name, (_, _, frame) in VARIANTS.items():
            await drive(opened[name], frame, args.calls)
            os.getppid()
        for socks in opened.values():
            for sock in socks:
                await sock.close()
    finally:
        await lifespan.stop()
    print("PHASES " + json.dumps(list(VARIANTS)))


def callgrind(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed")
    with tempfile.TemporaryDirectory(prefix="wsx-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        command = ["valgrind", "--tool=callgrind", "--dump-before=os_getppid*",
                   f"--callgrind-out-file={out}", sys.executable, str(Path(__file__).resolve()),
                   "--child", "--calls", str(args.calls), "--connections", str(args.connections)]
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              cwd=REPO_ROOT, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"callgrind run failed:\n{done.stderr[-3000:]}")
        match = re.search(r"^PHASES (.*)$", done.stdout, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no phase list:\n{done.stdout[-2000:]}")
        phases = json.loads(match.group(1))
        dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        totals = [int(m.group(1)) for d in dumps
                  if (m := re.search(r"^summary:\s+(\d+)", d.read_text(), re.MULTILINE))]
    total_calls = args.calls * args.connections
    per_call = {name: total / total_calls for name, total in zip(phases, totals[1:], strict=False)}
    echo = per_call["echo"]
    return {name: {"instructions_per_round_trip": round(value),
                   "over_echo": round(value - echo)} for name, value in per_call.items()}


async def _client_trips(url: str, subprotocol: str | None, frame: Any, connections: int,
                        calls: int, opened: Any = None, done: Any = None) -> None:
    """``calls`` round trips on each of ``connections`` sockets; ``opened()`` runs once all are
    open and ``done()`` before they close, so the counted window holds round trips only."""
    import websockets

    protocols = [subprotocol] if subprotocol else None
    sockets = [await websockets.connect(url, subprotocols=protocols)  # type: ignore[arg-type]
               for _ in range(connections)]

    async def one(ws: Any) -> None:
        for n in range(calls):
            await ws.send(frame(n))
            await ws.recv()

    try:
        if opened is not None:
            await asyncio.to_thread(opened)
        await asyncio.gather(*(one(ws) for ws in sockets))
        if done is not None:
            await asyncio.to_thread(done)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


def _latest_summary(directory: Path, seen: int) -> tuple[int, int]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        dumps = sorted(directory.glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        if len(dumps) > seen:
            match = re.search(r"^summary:\s+(\d+)", dumps[-1].read_text(), re.MULTILINE)
            if match:
                return int(match.group(1)), len(dumps)
        time.sleep(0.5)
    raise RuntimeError("callgrind wrote no dump")


def server_callgrind(args: argparse.Namespace) -> dict[str, Any]:
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian package valgrind)")
    with tempfile.TemporaryDirectory(prefix="wsx-cgs-") as tmp:
        directory = Path(tmp)
        (directory / "wsx_bench_app.py").write_text(textwrap.dedent(APP_MODULE))
        port = free_port()
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                   sys.executable, "-m", "uvicorn", "wsx_bench_app:app", "--host", "127.0.0.1",
                   "--port", str(port), "--loop", "uvloop", "--no-access-log",
                   "--log-level", "warning"]
        process = subprocess.Popen(command, cwd=tmp, env={**os.environ, "PYTHONPATH": tmp},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("uvicorn did not start under callgrind") from None
                    time.sleep(1)
            per_trip: dict[str, float] = {}
            seen = 0
            for name, (path, subprotocol, frame) in VARIANTS.items():
                url = f"ws://127.0.0.1:{port}{path}"
                asyncio.run(_client_trips(url, subprotocol, frame, args.connections, WARMUP))

                def control(option: str) -> None:
                    subprocess.run(["callgrind_control", option, str(process.pid)], check=True,
                                   capture_output=True, timeout=120)

                # counters zeroed once the connections are open and dumped before they close:
                # handshakes and closes stay out of the per-round-trip figure
                asyncio.run(_client_trips(url, subprotocol, frame, args.connections, args.calls,
                                          opened=lambda: control("-z"),
                                          done=lambda: control("-d")))
                total, seen = _latest_summary(directory, seen)
                per_trip[name] = total / (args.calls * args.connections)
        finally:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    echo = per_trip["echo"]
    return {name: {"instructions_per_round_trip": round(value),
                   "ratio_to_echo": round(value / echo, 3)} for name, value in per_trip.items()}


async def profile(args: argparse.Namespace) -> None:
    import cProfile
    import pstats

    app = load_server()
    lifespan = Lifespan(app)
    await lifespan.start()
    try:
        opened = await open_all(app, args.connections)
        _, _, frame = VARIANTS[args.profile]
        socks = opened[args.profile]
        await drive(socks, frame, WARMUP)
        profiler = cProfile.Profile()
        profiler.enable()
        await drive(socks, frame, args.calls)
        profiler.disable()
        for sockets in opened.values():
            for sock in sockets:
                await sock.close()
    finally:
        await lifespan.stop()
    stats = pstats.Stats(profiler).sort_stats(args.sort)
    stats.print_stats(40)


def run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # the stdlib loop, as uvicorn would without uvloop
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="round trips per connection")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gc", action="store_true", help="leave the gc on while timing")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--server-callgrind", action="store_true")
    parser.add_argument("--profile", choices=list(VARIANTS))
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run(child(args))
    elif args.server_callgrind:
        print(json.dumps({"connections": args.connections, "calls": args.calls,
                          "results": server_callgrind(args)}, indent=2))
    elif args.callgrind:
        print(json.dumps({"connections": args.connections, "calls": args.calls,
                          "results": callgrind(args)}, indent=2))
    elif args.profile:
        run(profile(args))
    else:
        print(json.dumps({"connections": args.connections, "calls": args.calls,
                          "results": run(timing(args))}, indent=2))


if __name__ == "__main__":
    main()
