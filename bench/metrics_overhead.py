"""Cost of the metrics plugin: the bench's genro-asgi app served with metrics off and on.

The variants are the suite's genro app (``bench/apps/genro_app.py``: ``GET /hello``, ``GET
/json``) with the plugins below, each built on demand as ``bench.metrics_overhead:app_<key>``
so that uvicorn imports it by string like any other benchmarked app. Four measures, each
reported as on/off ratios:

- ``--instructions``: the in-process request loops under valgrind's callgrind, one counter
  dump per variant (deterministic: the figure to compare on a shared machine); ``--path``
  requests another path (``/nowhere``: a 404), ``--refused`` turns the auth plugin on in every
  variant and sends no credential (a 401 answered before the dispatcher);
- ``--server-instructions``: each whole uvicorn server under callgrind, loaded by wrk (user-space
  instructions per request of uvicorn + uvloop + httptools + the app);
- in-process: the ASGI callable driven directly (no socket), us per GET, interleaved rounds;
- through uvicorn: one uvicorn per variant, loaded by ``wrk`` over loopback, requests/s and the
  server's CPU time per request, interleaved rounds (see ``bench/through_uvicorn.py``).

Run from the repository root::

    .venv/bin/python bench/metrics_overhead.py [--rounds 5] [--instructions]
        [--path /hello] [--refused]
        [--server-instructions] [--skip-timing | --skip-inprocess | --skip-uvicorn]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.apps import Framework  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "off": {},
    "on": {"metrics": {}},  # the defaults: WebSocket message counting on
    "on_no_ws": {"metrics": {"websocket": False}},
}
LABELS = {"off": "metrics off", "on": "metrics on (defaults)",
          "on_no_ws": "metrics on, websocket: false"}
FRAMEWORKS = tuple(Framework(key, f"bench.metrics_overhead:app_{key}", LABELS[key])
                   for key in VARIANTS)
CALLGRIND_TIMEOUT = 1800
WARMUP = 300
REFUSING = {"auth": {"bearer": {"bench": {"token": "bench-token-0123456789", "tags": []}}}}
_apps: dict[str, Any] = {}


def build_app(plugins: dict[str, Any]) -> Any:
    """The suite's genro app (core + errors, access log off) with ``plugins`` enabled."""
    from bench.apps.genro_app import BenchApp
    from genro_asgi import AsgiServer

    server = AsgiServer(tempfile.mkdtemp(prefix="genro-metrics-bench-"), environ={},
                        config={"logging": {"access_log": False, "level": "WARNING"},
                                "plugins": plugins})
    server.mount("/", BenchApp())
    return server


def __getattr__(name: str) -> Any:
    """``app_<variant>``: built on first access (uvicorn imports ``module:app_on``)."""
    key = name.removeprefix("app_")
    if name.startswith("app_") and key in VARIANTS:
        if key not in _apps:
            _apps[key] = build_app(VARIANTS[key])
        return _apps[key]
    raise AttributeError(name)


# -- instructions, in-process -------------------------------------------------------------------

async def _child(requests: int, path: str, refused: bool) -> list[str]:
    """Inside valgrind: warm every variant up, then run each loop between two dump markers."""
    from bench.inprocess import Lifespan, _null_app, _receive, _send, http_scope

    extra = REFUSING if refused else {}
    apps = {key: build_app({**extra, **plugins}) for key, plugins in VARIANTS.items()}
    lifespans = [Lifespan(app) for app in apps.values()]
    phases: list[tuple[str, Any]] = [("harness", _null_app), *apps.items()]
    scope = http_scope(path)
    for lifespan in lifespans:
        await lifespan.start()
    try:
        for _, app in phases:
            for _ in range(WARMUP):
                await app(scope.copy(), _receive, _send)
        os.getppid()  # dump: imports, startup, warm-up
        for _, app in phases:
            for _ in range(requests):
                await app(scope.copy(), _receive, _send)
            os.getppid()  # dump: this phase alone
    finally:
        for lifespan in reversed(lifespans):
            await lifespan.stop()
    return [key for key, _ in phases]


def instructions_in_process(requests: int, path: str = "/hello",
                             refused: bool = False) -> dict[str, float]:
    """Instructions per ``GET path`` of each variant, net of the harness's own."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory(prefix="genro-metrics-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        completed = subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-before=os_getppid*",
             f"--callgrind-out-file={out}", sys.executable, str(Path(__file__).resolve()),
             "--child", "--requests", str(requests), "--path", path,
             *(["--refused"] if refused else [])],
            capture_output=True, text=True, check=False, cwd=REPO_ROOT,
            timeout=CALLGRIND_TIMEOUT)
        match = re.search(r"^PHASES (.*)$", completed.stdout, re.MULTILINE)
        if completed.returncode != 0 or match is None:
            raise RuntimeError(f"callgrind run failed:\n{completed.stderr[-3000:]}")
        phases: list[str] = json.loads(match.group(1))
        totals = []
        for dump in sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:])):
            summary = re.search(r"^summary:\s+(\d+)", dump.read_text(), re.MULTILINE)
            if summary is not None:
                totals.append(int(summary.group(1)) / requests)
    per_phase = dict(zip(phases, totals[1:], strict=True))
    harness = per_phase.pop("harness")
    return {key: value - harness for key, value in per_phase.items()}


# -- reporting ----------------------------------------------------------------------------------

def _report(title: str, figures: dict[str, float], unit: str, higher_is_better: bool) -> None:
    print(title)
    off = figures["off"]
    for key, value in figures.items():
        cost = (1 - value / off) if higher_is_better else (value / off - 1)
        print(f"  {LABELS[key]:<30} {value:>12,.2f} {unit:<14} ratio {value / off:6.3f}  "
              f"cost {100 * cost:+6.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20000, help="per in-process round")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests per loop under callgrind")
    parser.add_argument("--instructions", action="store_true",
                        help="count in-process instructions under callgrind (deterministic)")
    parser.add_argument("--path", default="/hello", help="the path --instructions requests")
    parser.add_argument("--refused", action="store_true",
                        help="--instructions with the auth plugin on and no credential (401)")
    parser.add_argument("--server-instructions", action="store_true",
                        help="count whole-server instructions under callgrind (a few minutes)")
    parser.add_argument("--skip-timing", action="store_true",
                        help="only the instruction counts")
    parser.add_argument("--skip-uvicorn", action="store_true")
    parser.add_argument("--skip-inprocess", action="store_true")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("PHASES " + json.dumps(asyncio.run(_child(args.requests, args.path,
                                                        args.refused))), flush=True)
        return 0
    output: dict[str, Any] = {}
    if args.instructions:
        counted = instructions_in_process(args.requests, args.path, args.refused)
        output["instructions_in_process"] = counted
        _report(f"in-process instructions per GET {args.path}"
                f"{' refused by auth (401)' if args.refused else ''} (callgrind, net of the "
                "harness; deterministic)", counted, "instr", higher_is_better=False)
    if args.server_instructions:
        from bench.instructions import run_server_instructions

        whole = run_server_instructions(FRAMEWORKS, progress=lambda line: None)
        for endpoint in ("hello", "json"):
            figures = {key: whole.per_request[key][endpoint] for key in VARIANTS}
            output.setdefault("instructions_whole_server", {})[endpoint] = figures
            _report(f"whole uvicorn server, instructions per GET /{endpoint} (callgrind, "
                    "user space)", figures, "instr", higher_is_better=False)
    if args.skip_timing:
        _write(args.json, output)
        return 0
    if not args.skip_inprocess:
        from bench.inprocess import run_inprocess

        inproc = run_inprocess(FRAMEWORKS, rounds=args.rounds, iterations=args.iterations,
                               warmup=2000, progress=lambda line: None)
        output["in_process_us"] = inproc.to_json()
        for endpoint in ("hello", "json"):
            _report(f"in-process, us per GET /{endpoint} (median of {args.rounds} interleaved "
                    "rounds; shared machine)",
                    {key: inproc.median(key, endpoint) for key in VARIANTS}, "us",
                    higher_is_better=False)
    if not args.skip_uvicorn:
        from bench.through_uvicorn import run_uvicorn

        served = run_uvicorn(FRAMEWORKS, rounds=args.rounds, duration_s=args.duration,
                             warmup_s=1, progress=lambda line: None)
        output["through_uvicorn"] = served.to_json()
        print(f"through uvicorn + wrk ({served.pinning})")
        for endpoint in ("hello", "json"):
            _report(f"requests/s, GET /{endpoint} (median of {args.rounds} interleaved rounds)",
                    {key: served.median(key, endpoint, "requests_per_s") for key in VARIANTS},
                    "req/s", higher_is_better=True)
            _report(f"server CPU per request, GET /{endpoint} (median)",
                    {key: served.median(key, endpoint, "server_cpu_us_per_request")
                     for key in VARIANTS}, "us", higher_is_better=False)
    _write(args.json, output)
    return 0


def _write(path: Path | None, output: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(output, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
