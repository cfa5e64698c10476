"""The side-by-side run of issue 18: ``def`` handlers (genro-asgi's sync pool and inline
option), ``async def`` and all four plugins on, against a bare ASGI callable, Starlette and
FastAPI (each async and ``def``), plus the old ``asyncio.to_thread`` hop.

Every request of every row carries the same headers (``bench.sync_apps.REQUEST_HEADERS``:
Origin, a bearer token, Accept-Encoding: gzip), so the row with cors, auth, compression and
metrics on does their real work and every server parses the same request.

- In-process: µs per request (median of interleaved rounds, ``bench/inprocess.py``'s harness).
- Through uvicorn: one uvicorn per app (1 worker, uvloop, httptools), ``wrk -t1 -c64
  --latency``, runs interleaved round by round; requests/s (median), p50/p99, the server's CPU
  per request, and its RSS (VmRSS) when idle after startup and after the load.
- ``--instructions``: callgrind instructions per request of each whole uvicorn server (all
  its threads), the noise-free figure on a shared machine.

Nothing here compares a figure with a threshold; it prints the ratios the issue's goals are
read against. Run from the repository root::

    .venv/bin/python bench/sync_handlers.py [--rounds 3] [--duration 5] [--instructions]
    .venv/bin/python bench/sync_handlers.py --inprocess-only | --uvicorn-only | --instructions-only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.apps import ENDPOINTS, Framework  # noqa: E402
from bench.inprocess import run_inprocess  # noqa: E402
from bench.sync_apps import REQUEST_HEADERS  # noqa: E402
from bench.through_uvicorn import UvicornServer, WrkRun, choose_pinning, run_wrk  # noqa: E402

_ROWS = (
    ("bare", "bench.apps.bare_app:app", "bare ASGI callable"),
    ("starlette", "bench.apps.starlette_app:app", "Starlette async"),
    ("starlette_def", "bench.sync_apps:starlette_def", "Starlette def (threadpool)"),
    ("fastapi_async", "bench.sync_apps:fastapi_async", "FastAPI async"),
    ("fastapi_def", "bench.sync_apps:fastapi_def", "FastAPI def (threadpool)"),
    ("genro_async", "bench.sync_apps:genro_async", "genro async def"),
    ("genro_def", "bench.sync_apps:genro_def", "genro def (sync pool)"),
    ("genro_inline", "bench.sync_apps:genro_inline", "genro def inline"),
    ("genro_plugins", "bench.sync_apps:genro_plugins", "genro async, 4 plugins on"),
    ("genro_to_thread", "bench.sync_apps:genro_to_thread", "genro def via to_thread (old)"),
)
FRAMEWORKS: tuple[Framework, ...] = tuple(
    Framework(key, target, label, REQUEST_HEADERS) for key, target, label in _ROWS)
LABELS = {fw.key: fw.label for fw in FRAMEWORKS}
# what each row is read against in the goals: in-process, a def path against
# Starlette's threadpool path, an async one against Starlette async
INPROCESS_REFERENCE = {"genro_async": "starlette", "genro_inline": "starlette",
                       "genro_def": "starlette_def", "genro_to_thread": "starlette_def",
                       "fastapi_async": "starlette", "fastapi_def": "starlette_def",
                       "genro_plugins": "genro_async"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def report_inprocess(medians: dict[str, dict[str, float]]) -> dict[str, Any]:
    print("\nIn-process, us per request (median of rounds; lower is better)")
    print(f"{'app':<30}{'hello':>9}{'json':>9}   reference     ratio hello / json")
    table: dict[str, Any] = {}
    for key, per in medians.items():
        ref = INPROCESS_REFERENCE.get(key)
        ratios = [per[e] / medians[ref][e] for e, _ in ENDPOINTS] if ref else []
        text = f"{ref:<13} {ratios[0]:.2f} / {ratios[1]:.2f}" if ref else ""
        print(f"{LABELS[key]:<30}{per['hello']:>9.2f}{per['json']:>9.2f}   {text}")
        table[key] = {"us": per, "reference": ref, "ratio_to_reference": ratios}
    return table


def run_uvicorn(rounds: int, duration_s: int, warmup_s: int, connections: int,
                pin: bool) -> dict[str, Any]:
    pinning = choose_pinning(pin)
    print(f"\nThrough uvicorn: wrk -t1 -c{connections}, {rounds} rounds of {duration_s}s, "
          f"{pinning.describe()}")
    servers: list[UvicornServer] = []
    runs: dict[str, dict[str, list[WrkRun]]] = {}
    rss: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="genro-asgi-bench-sync-") as log_dir:
        try:
            for framework in FRAMEWORKS:
                server = UvicornServer(framework, pinning, Path(log_dir))
                servers.append(server)
                server.start()
            for server in servers:
                server.wait_ready()
                rss[server.framework.key] = {"idle_kib": rss_kib(server.pid)}
                runs[server.framework.key] = {endpoint: [] for endpoint, _ in ENDPOINTS}
                for _, path in ENDPOINTS:
                    run_wrk(server, path, pinning, threads=1, connections=connections,
                            duration_s=warmup_s)
            for round_no in range(1, rounds + 1):
                for server in servers:
                    for endpoint, path in ENDPOINTS:
                        run = run_wrk(server, path, pinning, threads=1,
                                      connections=connections, duration_s=duration_s,
                                      quiet=True)
                        runs[server.framework.key][endpoint].append(run)
                        print(f"  round {round_no}/{rounds} {server.framework.key:<16}"
                              f"{endpoint:<6}{run.requests_per_s:>9.0f} req/s  p99 "
                              f"{run.p99_ms:6.2f} ms  other load {run.other_cpu_share:4.0%}  "
                              f"errors {run.errors}")
            for server in servers:
                rss[server.framework.key]["loaded_kib"] = rss_kib(server.pid)
        finally:
            for server in servers:
                server.stop()
    return report_uvicorn(runs, rss)


def report_uvicorn(runs: dict[str, dict[str, list[WrkRun]]],
                   rss: dict[str, dict[str, int]]) -> dict[str, Any]:
    def med(key: str, endpoint: str, attribute: str) -> float:
        return statistics.median(float(getattr(r, attribute)) for r in runs[key][endpoint])

    print("\nThrough uvicorn (medians): req/s, ratio to bare, p50/p99 ms, server CPU us/request, "
          "RSS MiB idle/loaded")
    table: dict[str, Any] = {}
    for key in runs:
        cells = ""
        table[key] = {"rss_kib": rss[key]}
        for endpoint, _ in ENDPOINTS:
            rps = med(key, endpoint, "requests_per_s")
            entry = {"requests_per_s": rps,
                     "ratio_to_bare": rps / med("bare", endpoint, "requests_per_s"),
                     "p50_ms": med(key, endpoint, "p50_ms"),
                     "p99_ms": med(key, endpoint, "p99_ms"),
                     "server_cpu_us": med(key, endpoint, "server_cpu_us_per_request"),
                     "errors": sum(r.errors for r in runs[key][endpoint]),
                     "busy_runs": sum(not r.started_quiet for r in runs[key][endpoint])}
            table[key][endpoint] = entry
            cells += (f"  {endpoint} {rps:>7.0f} {entry['ratio_to_bare']:.2f}x "
                      f"{entry['p50_ms']:5.2f}/{entry['p99_ms']:6.2f} "
                      f"{entry['server_cpu_us']:6.1f}us")
        idle, loaded = rss[key]["idle_kib"] / 1024, rss[key].get("loaded_kib", 0) / 1024
        cells += f"  RSS {idle:.1f}/{loaded:.1f}"
        print(f"{LABELS[key]:<30}{cells}")
    return table


def report_goals(results: dict[str, Any]) -> None:
    """The issue's goals, each with the figures of this run it is read against."""
    print("\nAgainst the issue's goals (this run):")
    uvicorn = results.get("uvicorn")
    instructions = results.get("instructions")
    inprocess = results.get("inprocess")
    for index, (endpoint, _) in enumerate(ENDPOINTS):
        print(f"  {endpoint}:")
        if uvicorn is not None:
            pool, asynchronous = uvicorn["genro_def"][endpoint], uvicorn["genro_async"][endpoint]
            inline = uvicorn["genro_inline"][endpoint]["requests_per_s"]
            plugins = uvicorn["genro_plugins"][endpoint]["ratio_to_bare"]
            print(f"    def (pool) {pool['ratio_to_bare']:.2f}x bare req/s (goal >= 0.8), p99 "
                  f"{pool['p99_ms'] / asynchronous['p99_ms']:.2f}x the async handler's "
                  "(goal <= 2)")
            print(f"    def inline {inline / asynchronous['requests_per_s']:.3f}x async req/s "
                  "(goal within 5%)")
            print(f"    4 plugins on {plugins:.2f}x bare req/s (goal >= 0.85)")
        if instructions is not None:
            bare = instructions["bare"][endpoint]
            print("    instructions bare/this: " + ", ".join(
                f"{key} {bare / instructions[key][endpoint]:.2f}"
                for key in ("genro_async", "genro_def", "genro_inline", "genro_plugins")))
        if inprocess is not None:
            print("    in-process: " + ", ".join(
                f"{key} {inprocess[key]['ratio_to_reference'][index]:.2f}x {ref}"
                for key, ref in (("genro_async", "starlette"), ("genro_def", "starlette_def")))
                + " (goal <= 0.5)")
    if uvicorn is not None:
        idle = {key: uvicorn[key]["rss_kib"]["idle_kib"] for key in uvicorn}
        print(f"  idle RSS: genro async {idle['genro_async'] / idle['starlette']:.2f}x, 4 plugins "
              f"{idle['genro_plugins'] / idle['starlette']:.2f}x Starlette's (goal <= 1.2)")


def run_instructions(duration_s: int) -> dict[str, Any]:
    from bench.instructions import report_server_instructions, run_server_instructions

    result = run_server_instructions(FRAMEWORKS, duration_s=duration_s)
    report_server_instructions(result, LABELS)
    return result.per_request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=3000, help="in-process requests/round")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--inprocess-only", action="store_true")
    parser.add_argument("--uvicorn-only", action="store_true")
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--instructions-only", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    results: dict[str, Any] = {}
    if args.instructions_only:
        args.inprocess_only = args.uvicorn_only = args.instructions = True
    if not args.uvicorn_only:
        measured = run_inprocess(FRAMEWORKS, rounds=max(args.rounds, 3),
                                 iterations=args.iterations, warmup=500)
        medians = {key: {e: measured.median(key, e) for e, _ in ENDPOINTS}
                   for key in measured.samples}
        results["inprocess"] = report_inprocess(medians)
    if not args.inprocess_only and not args.instructions_only:
        results["uvicorn"] = run_uvicorn(args.rounds, args.duration, args.warmup,
                                         args.connections, not args.no_pin)
    if args.instructions:
        results["instructions"] = run_instructions(max(args.duration, 4))
    report_goals(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
