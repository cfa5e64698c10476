"""The same benchmark app on two commits, side by side in one run: what a change cost per request.

The suite's genro app (``bench/apps/genro_app.py``: core + errors, ``GET /hello`` and
``GET /json``) is run from the working tree ("head") and from a git worktree of ``--base``
("base"), each in its own child processes with that tree's packages first on ``PYTHONPATH``.
Reported, base vs head with the ratio head/base, medians of interleaved rounds:

- in-process: µs per request, the ASGI callable driven directly (no server, no socket);
- through uvicorn: the server's CPU µs per request (``/proc``), each tree served as
  ``AsgiServer.run()`` would serve it (its ``uvicorn_options()``: the head's HTTP protocol
  with read deadlines, the base's stock one), loaded by a small asyncio client over kept-alive
  connections;
- with ``--instructions`` (valgrind): instructions per request, in-process and for the whole
  uvicorn server (deterministic to about 1%: the figure to trust on a shared machine).

Run from the repository root::

    .venv/bin/python bench/before_after.py --base 9c5d818 [--rounds 7] [--instructions]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.through_uvicorn import HOST, cpu_seconds, free_port  # noqa: E402

PATHS = {"hello": "/hello", "json": "/json"}
CONNECTIONS = 8

# a child measuring the in-process cost: prints {"hello": µs, "json": µs}
INPROCESS_CHILD = textwrap.dedent("""
    import asyncio, gc, json, sys, time
    from bench.apps.genro_app import app
    from bench.inprocess import Lifespan, _receive, _send, http_scope

    async def main(requests):
        lifespan = Lifespan(app)
        await lifespan.start()
        out = {}
        for name, path in (("hello", "/hello"), ("json", "/json")):
            scope = http_scope(path)
            for _ in range(2000):
                await app(scope.copy(), _receive, _send)
            gc.collect(); gc.disable()
            start = time.perf_counter_ns()
            for _ in range(requests):
                await app(scope.copy(), _receive, _send)
            out[name] = (time.perf_counter_ns() - start) / requests / 1000
            gc.enable()
        await lifespan.stop()
        print(json.dumps(out))

    asyncio.run(main(int(sys.argv[1])))
""")

# the same loop for callgrind: run N requests of one path, nothing else
INSTRUCTIONS_CHILD = textwrap.dedent("""
    import asyncio, sys
    from bench.apps.genro_app import app
    from bench.inprocess import Lifespan, _receive, _send, http_scope

    async def main(path, requests):
        lifespan = Lifespan(app)
        await lifespan.start()
        scope = http_scope(path)
        for _ in range(requests):
            await app(scope.copy(), _receive, _send)
        await lifespan.stop()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
""")

# a server as AsgiServer.run() would configure uvicorn for this tree
SERVER_CHILD = textwrap.dedent("""
    import sys, uvicorn
    from bench.apps.genro_app import server
    options = server.uvicorn_options()
    for key in ("workers", "reload"):
        options.pop(key, None)
    options.update(host=sys.argv[1], port=int(sys.argv[2]), log_level="warning",
                   access_log=False, loop="uvloop")
    uvicorn.Server(uvicorn.Config(server, **options)).run()
""")


class Tree:
    def __init__(self, label: str, root: Path) -> None:
        self.label = label
        self.root = root
        sources = sorted(str(p) for p in (root / "packages").glob("*/src"))
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sources, str(REPO_ROOT)]),
                    "PYTHONDONTWRITEBYTECODE": "1"}

    def python(self, code: str, *args: str, wrapper: list[str] | None = None,
               timeout: float = 600) -> str:
        completed = subprocess.run([*(wrapper or []), sys.executable, "-c", code, *args],
                                   cwd=REPO_ROOT, env=self.env, capture_output=True, text=True,
                                   timeout=timeout, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"{self.label}: child failed:\n{completed.stderr[-3000:]}")
        return completed.stdout


async def _load(port: int, requests: int, path: str) -> None:
    """``requests`` GETs over CONNECTIONS kept-alive connections, each answer read whole."""
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()

    async def one_connection(count: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for _ in range(count):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
        finally:
            writer.close()

    share = max(1, requests // CONNECTIONS)
    await asyncio.gather(*(one_connection(share) for _ in range(CONNECTIONS)))


class ServerProcess:
    def __init__(self, tree: Tree, wrapper: list[str] | None = None) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [*(wrapper or []), sys.executable, "-c", SERVER_CHILD, HOST, str(self.port)],
            cwd=REPO_ROOT, env=tree.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read()[-2000:]!r}")  # type: ignore[union-attr]
            try:
                asyncio.run(_load(self.port, CONNECTIONS, "/hello"))
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server not ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def inprocess(trees: list[Tree], rounds: int, requests: int) -> dict[str, dict[str, float]]:
    samples: dict[str, dict[str, list[float]]] = {t.label: {"hello": [], "json": []}
                                                  for t in trees}
    for _ in range(rounds):
        for tree in trees:
            figures = json.loads(tree.python(INPROCESS_CHILD, str(requests)))
            for name, value in figures.items():
                samples[tree.label][name].append(value)
    return {label: {name: _median(v) for name, v in by.items()} for label, by in samples.items()}


def through_uvicorn(trees: list[Tree], rounds: int, requests: int) -> dict[str, dict[str, float]]:
    servers = {tree.label: ServerProcess(tree) for tree in trees}
    samples: dict[str, dict[str, list[float]]] = {t.label: {"hello": [], "json": []}
                                                  for t in trees}
    try:
        for server in servers.values():
            server.wait_ready(60)
        for _ in range(rounds):
            for label, server in servers.items():
                for name, path in PATHS.items():
                    asyncio.run(_load(server.port, 500, path))  # warm-up
                    before = cpu_seconds(server.process.pid)
                    asyncio.run(_load(server.port, requests, path))
                    used = cpu_seconds(server.process.pid) - before
                    sent = (requests // CONNECTIONS) * CONNECTIONS
                    samples[label][name].append(used / sent * 1e6)
    finally:
        for server in servers.values():
            server.stop()
    return {label: {name: _median(v) for name, v in by.items()} for label, by in samples.items()}


def _callgrind_total(out: Path) -> int:
    text = out.read_text()
    found = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE) or \
        re.search(r"^totals:\s+(\d+)", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no totals in {out}")
    return int(found.group(1))


def instructions_inprocess(trees: list[Tree], small: int, large: int,
                           tmp: Path) -> dict[str, dict[str, float]]:
    """Per request: (instructions of ``large`` requests - of ``small``) / (large - small),
    so imports and startup cancel out."""
    result: dict[str, dict[str, float]] = {}
    for tree in trees:
        for name, path in PATHS.items():
            totals = []
            for count in (small, large):
                out = tmp / f"{tree.label}-{name}-{count}.out"
                tree.python(INSTRUCTIONS_CHILD, path, str(count),
                            wrapper=["valgrind", "--tool=callgrind", "--quiet",
                                     f"--callgrind-out-file={out}"], timeout=1800)
                totals.append(_callgrind_total(out))
            result.setdefault(tree.label, {})[name] = (totals[1] - totals[0]) / (large - small)
    return result


def instructions_server(trees: list[Tree], requests: int, tmp: Path) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = {}
    for tree in trees:
        out = tmp / f"server-{tree.label}.out"
        server = ServerProcess(tree, wrapper=["valgrind", "--tool=callgrind", "--quiet",
                                              f"--callgrind-out-file={out}"])
        try:
            server.wait_ready(300)
            for name, path in PATHS.items():
                asyncio.run(_load(server.port, 500, path))
                dumps_before = len(list(tmp.glob(f"server-{tree.label}.out.*")))
                subprocess.run(["callgrind_control", "-z", str(server.process.pid)],
                               capture_output=True, check=True, timeout=120)
                asyncio.run(_load(server.port, requests, path))
                subprocess.run(["callgrind_control", "-d", str(server.process.pid)],
                               capture_output=True, check=True, timeout=120)
                dump = Path(f"{out}.{dumps_before + 1}")
                sent = (requests // CONNECTIONS) * CONNECTIONS
                result.setdefault(tree.label, {})[name] = _callgrind_total(dump) / sent
        finally:
            server.stop()
    return result


def _report(title: str, unit: str, figures: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"  {'endpoint':<8} {'base':>12} {'head':>12} {'head/base':>10}")
    for name in PATHS:
        base, head = figures["base"][name], figures["head"][name]
        print(f"  {name:<8} {base:>12,.2f} {head:>12,.2f} {head / base:>10.3f}   ({unit})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", required=True, help="the commit to compare with (git rev)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20000,
                        help="requests per measurement (in-process and through uvicorn)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions under valgrind (a few minutes)")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="genro-asgi-before-after-") as tmp_name:
        tmp = Path(tmp_name)
        worktree = tmp / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.base],
                       cwd=REPO_ROOT, check=True, capture_output=True)
        try:
            trees = [Tree("base", worktree), Tree("head", REPO_ROOT)]
            rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, check=True).stdout.strip()
            print(f"base = {args.base}, head = working tree at {rev}")
            if not args.skip_timing:
                _report("in-process, µs per request (median of rounds)", "µs",
                        inprocess(trees, args.rounds, args.requests))
                _report("through uvicorn, server CPU µs per request (median of rounds)", "µs",
                        through_uvicorn(trees, args.rounds, args.requests))
            if args.instructions:
                if shutil.which("valgrind") is None:
                    raise RuntimeError("valgrind is not installed (Debian package valgrind)")
                _report("in-process, instructions per request", "instr",
                        instructions_inprocess(trees, 1000, 3000, tmp))
                _report("whole uvicorn server, instructions per request", "instr",
                        instructions_server(trees, 2000, tmp))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)],
                           cwd=REPO_ROOT, check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
