"""Worker footprint side by side (issue 18): import time and idle RSS of one uvicorn worker.

- Import time: each statement runs in N fresh interpreters, timed inside the child around the
  statement alone (interpreter start-up excluded), wall and CPU (``process_time``); rounds are
  interleaved across rows and the median is reported, with the modules the statement loaded.
  The third-party libraries genro-asgi depends on are measured alone too.
- Idle RSS: one uvicorn worker per app on a free loopback port (uvloop; bare ASGI and
  Starlette through ``uvicorn.run`` with httptools, genro-asgi through ``AsgiServer.run()``,
  i.e. its own HTTP protocol), read from ``/proc/<pid>/status`` (VmRSS, and RssAnon: the
  private part) after start-up and again after a warm-up of requests; median of fresh
  processes over the rounds. Rows: bare ASGI, Starlette, genro-asgi core only
  (``bench/apps/genro_app.py``) and the demo (``examples/demo``: every plugin on, copied to a
  temporary directory with its own debug secret).
- ``--base REV`` adds the genro-asgi rows of another commit (a git worktree, its packages
  first on ``PYTHONPATH``), so before and after are side by side in one run.
- Children run with cached bytecode, as a deployed worker does (``bench/bytecode.py``: the
  sources are compiled first, and ``PYTHONDONTWRITEBYTECODE`` is not passed on).
- ``--importtime``: ``python -X importtime`` of an app's imports (``from genro_asgi import
  AsgiApplication, AsgiServer, route``), the slowest modules by cumulative time.

Nothing here compares a figure with a threshold. Run from the repository root::

    .venv/bin/python bench/footprint.py [--imports 15] [--rounds 3] [--base REV] [--importtime]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.bytecode import deployed_env, precompile  # noqa: E402
from bench.through_uvicorn import HOST, free_port  # noqa: E402

STARTUP_TIMEOUT = 60.0
WARMUP_REQUESTS = 200
SETTLE_SECONDS = 1.0  # after the warm-up, before RSS is read (lets the loop go idle)

# (key, label, statement)
IMPORTS: tuple[tuple[str, str, str], ...] = (
    ("starlette", "Starlette (an app's imports)",
     "from starlette.applications import Starlette; from starlette.routing import Route; "
     "from starlette.responses import JSONResponse"),
    ("uvicorn", "uvicorn (every worker loads it)", "import uvicorn"),
    ("genro", "import genro_asgi", "import genro_asgi"),
    ("genro_app", "genro-asgi (an app's imports)",
     "from genro_asgi import AsgiApplication, AsgiServer, route"),
    ("genro_routes", "genro_routes alone", "import genro_routes"),
    ("pydantic", "pydantic alone", "import pydantic"),
    ("genro_toolbox", "genro_toolbox alone", "import genro_toolbox"),
    ("genro_tytx", "genro_tytx alone", "import genro_tytx"),
    ("yaml", "yaml alone", "import yaml"),
)
REFERENCE_IMPORT = "starlette"
PER_TREE = ("genro", "genro_app")  # measured on --base too; the libraries are the same

IMPORT_CHILD = textwrap.dedent("""
    import time, sys
    wall, cpu = time.perf_counter(), time.process_time()
    exec(sys.argv[1])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(wall, cpu, len(sys.modules))
""")

# one worker; SIGUSR1 writes the names of the modules it has loaded to argv[5]
SERVER_CHILD = textwrap.dedent("""
    import importlib, signal, sys

    kind, target, host, port, report, preload = sys.argv[1:7]

    def dump_modules(signum, frame):
        with open(report, "w") as stream:
            stream.write("\\n".join(sorted(sys.modules)))

    signal.signal(signal.SIGUSR1, dump_modules)
    exec(preload)
    if kind == "asgi":
        import uvicorn
        module, _, attr = target.partition(":")
        app = getattr(importlib.import_module(module), attr)
        uvicorn.run(app, host=host, port=int(port), loop="uvloop", http="httptools",
                    lifespan="on", log_level="warning", access_log=False)
    else:
        if kind == "genro_dir":
            sys.path.insert(0, target)
            from genro_asgi import AsgiServer
            server = AsgiServer(target)
        else:
            module, _, attr = target.partition(":")
            server = getattr(importlib.import_module(module), attr)
        server.run(host=host, port=int(port), log_level="warning", access_log=False,
                   loop="uvloop")
""")

# modules worth watching: each one is named in the report when a genro-asgi worker loaded it
# (email and importlib.metadata come with genro_routes, whose __version__ reads the metadata)
OPTIONAL_MODULES = ("yaml", "packaging", "python_multipart", "email", "http.cookies",
                    "importlib.metadata", "h11", "xml.etree.ElementTree", "genro_tytx",
                    "genro_asgi.builtin.cors", "genro_asgi.builtin.auth",
                    "genro_asgi.builtin.compression", "genro_asgi.multipart",
                    "genro_asgi.staticfiles", "genro_asgi.websocket", "genro_asgi.cli")


@dataclass(frozen=True)
class Tree:
    """A source tree: the working tree (head) or a worktree of ``--base``."""

    label: str
    root: Path

    def env(self) -> dict[str, str]:
        """The children's environment: this tree's sources first, bytecode cached (as a
        deployed worker has it, see bench/bytecode.py)."""
        sources = sorted(str(p) for p in (self.root / "packages").glob("*/src"))
        return deployed_env({**os.environ,
                             "PYTHONPATH": os.pathsep.join([*sources, str(REPO_ROOT)])})


@dataclass(frozen=True)
class Worker:
    """One uvicorn worker to measure: how the child serves it, and the paths to warm up."""

    key: str
    label: str
    kind: str  # asgi | genro | genro_dir
    target: str
    paths: tuple[str, ...]
    tree: Tree
    preload: str = "pass"  # run in the worker before the app is imported


# -- import time ---------------------------------------------------------------------------


def measure_imports(trees: list[Tree], runs: int) -> dict[str, dict[str, float]]:
    rows = [(key if tree.label == "head" else f"{key}@{tree.label}", stmt, tree)
            for key, _, stmt in IMPORTS for tree in trees
            if tree.label == "head" or key in PER_TREE]
    samples: dict[str, list[tuple[float, float, int]]] = {key: [] for key, _, _ in rows}
    with tempfile.TemporaryDirectory(prefix="genro-asgi-footprint-") as cwd:
        for _key, stmt, tree in rows:  # compile .pyc files first; not timed
            _import_child(stmt, tree, cwd)
        for _ in range(runs):
            for key, stmt, tree in rows:
                samples[key].append(_import_child(stmt, tree, cwd))
    return {key: {"wall_s": statistics.median(s[0] for s in got),
                  "cpu_s": statistics.median(s[1] for s in got),
                  "modules": float(got[0][2])} for key, got in samples.items()}


def _import_child(stmt: str, tree: Tree, cwd: str) -> tuple[float, float, int]:
    done = subprocess.run([sys.executable, "-c", IMPORT_CHILD, stmt], cwd=cwd, env=tree.env(),
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{stmt!r} failed:\n{done.stderr[-2000:]}")
    wall, cpu, modules = done.stdout.split()
    return float(wall), float(cpu), int(modules)


def report_imports(figures: dict[str, dict[str, float]]) -> None:
    reference = figures[REFERENCE_IMPORT]
    labels = {key: label for key, label, _ in IMPORTS}
    print("\nImport time in a fresh interpreter (median; ratio = wall / Starlette's wall)")
    print(f"  {'statement':<40}{'wall ms':>9}{'cpu ms':>9}{'ratio':>8}{'modules':>9}")
    for key, row in figures.items():
        base_key, _, tree = key.partition("@")
        label = labels[base_key] + (f" [{tree}]" if tree else "")
        print(f"  {label:<40}{row['wall_s'] * 1000:>9.1f}{row['cpu_s'] * 1000:>9.1f}"
              f"{row['wall_s'] / reference['wall_s']:>8.2f}{int(row['modules']):>9}")


def print_importtime(top: int) -> None:
    statement = dict((key, stmt) for key, _, stmt in IMPORTS)["genro_app"]
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                          capture_output=True, text=True, timeout=120, check=True,
                          env=deployed_env())
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            rows.append((int(match.group(2)), int(match.group(1)), match.group(4)))
    print(f"\n-X importtime, {statement}: the {top} largest cumulative (us)")
    for cumulative, own, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cumulative:>9,} {own:>9,}  {name}")


# -- idle RSS ------------------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    status: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            status[name] = int(value.split()[0])
    return status


def _get(port: int, path: str, connection: http.client.HTTPConnection | None = None) -> None:
    conn = connection or http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: status {response.status}")
    finally:
        if connection is None:
            conn.close()


def measure_worker(worker: Worker, log_dir: Path) -> dict[str, float]:
    port = free_port()
    report = log_dir / f"modules-{worker.key}.txt"
    log_path = log_dir / f"{worker.key}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER_CHILD, worker.kind, worker.target, HOST, str(port),
             str(report), worker.preload],
            cwd=REPO_ROOT, env=worker.tree.env(), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_ready(process, port, worker.paths[0], log_path)
            time.sleep(SETTLE_SECONDS)
            started = _proc_status(process.pid)
            connection = http.client.HTTPConnection(HOST, port, timeout=10)
            try:
                for number in range(WARMUP_REQUESTS):
                    _get(port, worker.paths[number % len(worker.paths)], connection)
            finally:
                connection.close()
            time.sleep(SETTLE_SECONDS)
            warm = _proc_status(process.pid)
            report.unlink(missing_ok=True)
            process.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while not report.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            _get(port, worker.paths[0])  # wakes a loop that waits in C for its next event
            while not report.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.1)
            modules = report.read_text().split() if report.exists() else []
        finally:
            _stop(process)
    return {"start_kib": started["VmRSS"], "rss_kib": warm["VmRSS"],
            "anon_kib": warm["RssAnon"], "modules": float(len(modules)),
            **{f"has:{name}": float(name in modules) for name in OPTIONAL_MODULES}}


def _wait_ready(process: subprocess.Popen[bytes], port: int, path: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log.read_text()[-3000:]}")
        try:
            _get(port, path)
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    raise RuntimeError(f"worker not ready after {STARTUP_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(20)
    except ProcessLookupError:
        pass


def demo_copy(tree: Tree, into: Path) -> Path:
    """The tree's demo in a temporary directory, with a fresh debug secret (as make serve)."""
    target = into / f"demo-{tree.label}"
    shutil.copytree(tree.root / "examples" / "demo", target,
                    ignore=shutil.ignore_patterns("__pycache__", ".debug-secret"))
    secret = target / ".debug-secret"
    secret.write_text(secrets.token_hex(32))
    secret.chmod(0o600)
    return target


def workers_for(trees: list[Tree], tmp: Path) -> list[Worker]:
    head = trees[0]
    workers = [
        Worker("bare", "bare ASGI", "asgi", "bench.apps.bare_app:app", ("/hello", "/json"),
               head),
        Worker("starlette", "Starlette", "asgi", "bench.apps.starlette_app:app",
               ("/hello", "/json"), head),
        # the floor under genro-asgi: the libraries it cannot do without, loaded and unused
        Worker("bare_routes", "bare ASGI + import genro_routes", "asgi",
               "bench.apps.bare_app:app", ("/hello", "/json"), head,
               preload="import genro_routes"),
    ]
    for tree in trees:
        suffix = "" if tree.label == "head" else f" [{tree.label}]"
        tag = "" if tree.label == "head" else f"@{tree.label}"
        workers.append(Worker(f"genro{tag}", f"genro-asgi core{suffix}", "genro",
                              "bench.apps.genro_app:server", ("/hello", "/json"), tree))
        workers.append(Worker(f"demo{tag}", f"genro-asgi demo, every plugin{suffix}",
                              "genro_dir", str(demo_copy(tree, tmp)),
                              ("/hello", "/shop/products"), tree))
    return workers


def measure_rss(workers: list[Worker], rounds: int, tmp: Path) -> dict[str, dict[str, float]]:
    samples: dict[str, list[dict[str, float]]] = {w.key: [] for w in workers}
    for round_no in range(1, rounds + 1):
        for worker in workers:
            figures = measure_worker(worker, tmp)
            samples[worker.key].append(figures)
            print(f"  round {round_no}/{rounds} {worker.key:<14} "
                  f"RSS {figures['rss_kib'] / 1024:6.1f} MiB")
    return {key: {name: statistics.median(s[name] for s in got) for name in got[0]}
            for key, got in samples.items()}


def report_rss(workers: list[Worker], figures: dict[str, dict[str, float]]) -> None:
    reference = figures["starlette"]["rss_kib"]
    bare = figures["bare"]["rss_kib"]
    print(f"\nIdle RSS of one uvicorn worker, MiB (median; after start-up, and after "
          f"{WARMUP_REQUESTS} requests)")
    print(f"  {'worker':<38}{'start':>7}{'warm':>7}{'anon':>7}{'÷ Starlette':>13}"
          f"{'÷ bare':>8}{'modules':>9}")
    for worker in workers:
        row = figures[worker.key]
        print(f"  {worker.label:<38}{row['start_kib'] / 1024:>7.1f}{row['rss_kib'] / 1024:>7.1f}"
              f"{row['anon_kib'] / 1024:>7.1f}{row['rss_kib'] / reference:>13.2f}"
              f"{row['rss_kib'] / bare:>8.2f}{int(row['modules']):>9}")
    print("\n  optional modules loaded by each genro-asgi worker:")
    for worker in workers:
        if worker.kind == "asgi":
            continue
        loaded = [name for name in OPTIONAL_MODULES if figures[worker.key][f"has:{name}"]]
        print(f"  {worker.label:<38}{', '.join(loaded) or '-'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--imports", type=int, default=15,
                        help="fresh interpreters per import statement")
    parser.add_argument("--rounds", type=int, default=3, help="fresh workers per app")
    parser.add_argument("--base", help="also measure genro-asgi at this git revision")
    parser.add_argument("--importtime", action="store_true",
                        help="print -X importtime of an app's imports")
    parser.add_argument("--skip-imports", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args(argv)
    if args.imports < 1 or args.rounds < 1:
        parser.error("--imports and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="genro-asgi-footprint-") as tmp_name:
        tmp = Path(tmp_name)
        trees = [Tree("head", REPO_ROOT)]
        if args.base:
            worktree = tmp / "base"
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.base],
                           cwd=REPO_ROOT, check=True, capture_output=True)
            trees.append(Tree("base", worktree))
        try:
            rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, check=True).stdout.strip()
            print(f"head = working tree at {rev}" + (f", base = {args.base}" if args.base
                                                      else ""))
            precompile(tree.root for tree in trees)
            if not args.skip_imports:
                report_imports(measure_imports(trees, args.imports))
            if args.importtime:
                print_importtime(30)
            if not args.skip_rss:
                workers = workers_for(trees, tmp)
                print(f"\nIdle RSS: {args.rounds} rounds")
                report_rss(workers, measure_rss(workers, args.rounds, tmp))
        finally:
            if args.base:
                subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "base")],
                               cwd=REPO_ROOT, check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
