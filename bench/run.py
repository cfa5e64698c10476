"""genro-asgi benchmark suite: a bare ASGI callable, Starlette and genro-asgi side by side.

Run from the repository root::

    .venv/bin/python bench/run.py              # full run (in-process, then through uvicorn)
    .venv/bin/python bench/run.py --quick      # smoke run with short durations
    .venv/bin/python bench/run.py --inprocess-only | --uvicorn-only
    .venv/bin/python bench/run.py --json out.json
    .venv/bin/python bench/run.py --instructions   # + instruction counts (needs valgrind)

Results are printed as tables and written as JSON to ``--json PATH`` or, by default, to
``bench/results/<timestamp>.json`` (git-ignored). The suite only reports: nothing in it
compares a figure with a threshold.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.apps import ENDPOINTS, FRAMEWORKS  # noqa: E402
from bench.inprocess import InProcessResult, run_inprocess  # noqa: E402
from bench.instructions import (  # noqa: E402
    report_instructions,
    report_server_instructions,
    run_instructions,
    run_server_instructions,
)
from bench.through_uvicorn import UvicornResult, run_uvicorn  # noqa: E402

RESULTS_DIR = REPO_ROOT / "bench" / "results"
LABELS = {fw.key: fw.label for fw in FRAMEWORKS}

FULL = {"rounds": 7, "iterations": 20_000, "warmup": 2_000,
        "uv_rounds": 5, "duration": 5, "uv_warmup": 2}
QUICK = {"rounds": 3, "iterations": 2_000, "warmup": 200,
         "uv_rounds": 2, "duration": 1, "uv_warmup": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short durations (smoke run)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--inprocess-only", action="store_true",
                      help="only the in-process framework cost")
    only.add_argument("--uvicorn-only", action="store_true", help="only the uvicorn + wrk runs")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write results here (default: bench/results/<timestamp>.json)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="rounds for both parts (default: 7 in-process, 5 uvicorn; quick 3, 2)")
    parser.add_argument("--duration", type=int, metavar="S",
                        help="seconds per wrk run (default 5, quick 1)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per request under valgrind (callgrind), "
                        "in-process and through uvicorn")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin uvicorn and wrk to separate CPUs with taskset")
    return parser.parse_args(argv)


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                    strict=True)))


def print_table(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(title)
    print(_row(header, widths))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(_row(row, widths))
    for note in notes:
        print(f"  {note}")


def report_inprocess(result: InProcessResult) -> None:
    header = ["framework"]
    for endpoint, _ in ENDPOINTS:
        header += [f"{endpoint} us/req", "min-max", "x bare", "CPU us", "x bare"]
    rows = []
    for key in result.samples:
        row = [LABELS[key]]
        for endpoint, _ in ENDPOINTS:
            values = result.samples[key][endpoint]
            median = result.median(key, endpoint)
            ratio = median / result.median("bare", endpoint) if "bare" in result.samples else 0
            cpu = result.cpu_median(key, endpoint)
            cpu_ratio = cpu / result.cpu_median("bare", endpoint) if "bare" in result.samples else 0
            row += [f"{median:.2f}", f"{min(values):.2f}-{max(values):.2f}", f"{ratio:.2f}",
                    f"{cpu:.2f}", f"{cpu_ratio:.2f}"]
        rows.append(row)
    harness = sorted(result.harness_us)[len(result.harness_us) // 2]
    print_table(
        f"In-process framework cost (median of {result.rounds} interleaved rounds x "
        f"{result.iterations} requests; {result.loop} loop; gc disabled while timing)",
        header, rows,
        [f"harness overhead (scope copy + await of a no-op app): {harness:.2f} us/req, "
         "included in every figure above",
         "us/req: wall clock (perf_counter_ns); CPU us: this thread's CPU time "
         "(thread_time_ns), which leaves out time the CPU spent on other processes",
         f"rounds that started while other processes kept the machine busy: "
         f"{result.busy_rounds} of {result.rounds}",
         "design budget: genro-asgi core+errors hello <= 6 us"],
    )


def report_uvicorn(result: UvicornResult) -> None:
    for endpoint, path in ENDPOINTS:
        header = ["framework", "req/s", "x bare", "p50 ms", "p99 ms", "srv CPU",
                  "srv us/req", "x bare (CPU)", "other load", "errors"]
        rows = []
        has_bare = "bare" in result.runs
        for key, per_endpoint in result.runs.items():
            rps = result.median(key, endpoint, "requests_per_s")
            cpu_us = result.median(key, endpoint, "server_cpu_us_per_request")
            ratio = rps / result.median("bare", endpoint, "requests_per_s") if has_bare else 0
            cpu_ratio = (result.median("bare", endpoint, "server_cpu_us_per_request") / cpu_us
                         if has_bare else 0)
            rows.append([
                LABELS[key], f"{rps:,.0f}", f"{ratio:.2f}",
                f"{result.median(key, endpoint, 'p50_ms'):.2f}",
                f"{result.median(key, endpoint, 'p99_ms'):.2f}",
                f"{result.median(key, endpoint, 'server_cpu_share'):.0%}",
                f"{cpu_us:.1f}", f"{cpu_ratio:.2f}",
                f"{result.median(key, endpoint, 'other_cpu_share'):.0%}",
                str(sum(r.errors for r in per_endpoint[endpoint])),
            ])
        print_table(
            f"Through uvicorn: GET {path} (median of {result.rounds} interleaved rounds, "
            f"wrk -t{result.threads} -c{result.connections} -d{result.duration_s}s)",
            header, rows, [],
        )
    print(f"  {result.pinning}")
    print("  srv CPU: the uvicorn process's CPU time / wall time during the run; srv us/req: its "
          "CPU time per request; x bare (CPU): bare's CPU per request / this one's")
    print("  other load: CPU used meanwhile by every other process on the machine (100% = one "
          "CPU); when it is high, the run shared the machine and its figures are noisy")
    all_runs = [run for per_endpoint in result.runs.values() for runs in per_endpoint.values()
                for run in runs]
    busy = sum(not run.started_quiet for run in all_runs)
    print(f"  runs that started while other processes kept the machine busy: {busy} of "
          f"{len(all_runs)}")
    print("  design budget: genro-asgi core+errors >= 0.70 of bare's requests/s per server core")


def environment() -> dict[str, Any]:
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("genro-asgi-core", "starlette", "uvicorn", "uvloop", "httptools",
                 "genro-routes", "pydantic"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0], "implementation": platform.python_implementation(),
        "platform": platform.platform(), "cpu": cpu_model, "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)), "versions": versions,
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: servers get stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    settings = dict(QUICK if args.quick else FULL)
    if args.rounds is not None:
        settings["rounds"] = settings["uv_rounds"] = max(1, args.rounds)
    if args.duration is not None:
        settings["duration"] = max(1, args.duration)
    env = environment()
    print(f"genro-asgi bench ({'quick' if args.quick else 'full'}): Python {env['python']}, "
          f"{env['cpus']} CPUs ({env['cpu']}), "
          + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    output: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full", "environment": env,
    }
    if not args.uvicorn_only:
        print("\nIn-process runs ...")
        inprocess = run_inprocess(FRAMEWORKS, rounds=settings["rounds"],
                                  iterations=settings["iterations"], warmup=settings["warmup"])
        output["inprocess"] = inprocess.to_json()
        report_inprocess(inprocess)
    if args.instructions and not args.uvicorn_only:
        print("\nInstruction counts under callgrind (about a minute) ...")
        instructions = run_instructions(200 if args.quick else 2000)
        output["instructions"] = instructions.to_json()
        report_instructions(instructions, LABELS)
    if args.instructions and not args.inprocess_only:
        print("\nuvicorn servers under callgrind, one at a time (a few minutes) ...")
        server_instructions = run_server_instructions(duration_s=2 if args.quick else 8)
        output["uvicorn_instructions"] = server_instructions.to_json(net=False)
        report_server_instructions(server_instructions, LABELS)
    if not args.inprocess_only:
        print("\nThrough uvicorn ...")
        uvicorn = run_uvicorn(FRAMEWORKS, rounds=settings["uv_rounds"],
                              duration_s=settings["duration"], warmup_s=settings["uv_warmup"],
                              connections=args.connections, pin=not args.no_pin)
        output["uvicorn"] = uvicorn.to_json()
        report_uvicorn(uvicorn)
    path = args.json
    if path is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS_DIR / f"{stamp}{'-quick' if args.quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(output, indent=2, default=str) + "\n")
    print(f"\nresults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
