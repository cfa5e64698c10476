"""Instructions per request, counted by valgrind's callgrind: a noise-free companion to timing.

Timings on a shared 2-CPU machine move by tens of percent with the neighbours' load; the
number of instructions a request executes does not.

- In-process: every framework's request loop runs once under ``valgrind --tool=callgrind``,
  which dumps its counters each time the child calls ``os.getppid()`` (CPython's
  ``os_getppid`` C function), as the child does between phases: each dump holds exactly one
  (framework, endpoint) loop.
- Through uvicorn (``--server``): each framework's uvicorn runs under callgrind; after a
  warm-up the counters are zeroed (``callgrind_control -z``), wrk sends requests for a few
  seconds, the counters are dumped (``callgrind_control -d``) and divided by the number of
  requests wrk completed. User-space instructions of the whole server process (uvicorn,
  uvloop, httptools and the app), i.e. the server CPU per request without the kernel.

Run from the repository root (needs the Debian package ``valgrind``)::

    .venv/bin/python bench/instructions.py [--requests 2000] [--server] [--json PATH]

or as part of the suite with ``bench/run.py --instructions``.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.apps import ENDPOINTS, FRAMEWORKS, Framework  # noqa: E402
from bench.inprocess import (  # noqa: E402
    Lifespan,
    _null_app,
    _receive,
    _send,
    check_response,
    http_scope,
    load_app,
)
from bench.through_uvicorn import (  # noqa: E402
    Pinning,
    UvicornServer,
    parse_wrk,
    wrk_header_args,
)

WARMUP = 300
TIMEOUT_S = 1800
HARNESS = ("harness", "hello")


async def _child(requests: int) -> list[tuple[str, str]]:
    """Inside valgrind: warm every loop up, then run each one between two dump markers."""
    apps = {fw.key: load_app(fw.target) for fw in FRAMEWORKS}
    lifespans = [Lifespan(app) for app in apps.values()]
    phases: list[tuple[str, str, Any]] = [(*HARNESS, _null_app)]
    for key, app in apps.items():
        for endpoint, _ in ENDPOINTS:
            phases.append((key, endpoint, app))
    scopes = {endpoint: http_scope(path) for endpoint, path in ENDPOINTS}
    for lifespan in lifespans:
        await lifespan.start()
    try:
        for key, endpoint, app in phases:
            if key != HARNESS[0]:
                await check_response(app, endpoint, dict(ENDPOINTS)[endpoint])
            for _ in range(WARMUP):
                await app(scopes[endpoint].copy(), _receive, _send)
        os.getppid()  # dump: everything up to here (imports, startup, warm-up)
        for _, endpoint, app in phases:
            scope = scopes[endpoint]
            for _ in range(requests):
                await app(scope.copy(), _receive, _send)
            os.getppid()  # dump: this phase alone
    finally:
        for lifespan in reversed(lifespans):
            await lifespan.stop()
    return [(key, endpoint) for key, endpoint, _ in phases]


@dataclass
class InstructionResult:
    requests: int
    per_request: dict[str, dict[str, float]] = field(default_factory=dict)
    harness: float = 0.0

    def net(self, framework: str, endpoint: str) -> float:
        return self.per_request[framework][endpoint] - self.harness

    def to_json(self, net: bool = True) -> dict[str, Any]:
        """``net``: in-process figures, less the harness; otherwise whole-server figures."""
        table: dict[str, Any] = {}
        for key, per_endpoint in self.per_request.items():
            table[key] = {}
            for endpoint in per_endpoint:
                value = self.net(key, endpoint) if net else per_endpoint[endpoint]
                bare_row = self.per_request.get("bare", {})
                bare = (self.net("bare", endpoint) if net else bare_row.get(endpoint)) \
                    if endpoint in bare_row else None
                table[key][endpoint] = {
                    "instructions_per_request": per_endpoint[endpoint],
                    "net_of_harness" if net else "whole_server": value,
                    "ratio_to_bare": value / bare if bare else None,
                }
        return {"requests": self.requests, "harness_per_request": self.harness if net else None,
                "tool": "valgrind --tool=callgrind (Ir)", "results": table}


def run_instructions(requests: int = 2000) -> InstructionResult:
    """Run the child under callgrind and read one dump per phase."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory(prefix="genro-asgi-bench-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        command = [
            "valgrind", "--tool=callgrind", "--dump-before=os_getppid*",
            f"--callgrind-out-file={out}", sys.executable, str(Path(__file__).resolve()),
            "--child", "--requests", str(requests),
        ]
        completed = subprocess.run(command, capture_output=True, text=True, check=False,
                                   cwd=REPO_ROOT, timeout=TIMEOUT_S)
        if completed.returncode != 0:
            raise RuntimeError(f"callgrind run failed:\n{completed.stderr[-3000:]}")
        match = re.search(r"^PHASES (.*)$", completed.stdout, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"child printed no phase list:\n{completed.stdout[-2000:]}")
        phases: list[list[str]] = json.loads(match.group(1))
        dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        totals = []
        for dump in dumps:
            summary = re.search(r"^summary:\s+(\d+)", dump.read_text(), re.MULTILINE)
            if summary is not None:
                totals.append(int(summary.group(1)))
        if len(totals) < len(phases) + 1:
            raise RuntimeError(f"expected {len(phases) + 1} callgrind dumps, got {len(totals)}: "
                               "is os_getppid the C symbol of this Python's os.getppid?")
    result = InstructionResult(requests)
    for (key, endpoint), total in zip(phases, totals[1:], strict=False):
        per_request = total / requests
        if (key, endpoint) == HARNESS:
            result.harness = per_request
        else:
            result.per_request.setdefault(key, {})[endpoint] = per_request
    return result


SERVER_STARTUP_TIMEOUT = 300.0
SERVER_STOP_TIMEOUT = 60.0


def _callgrind_control(option: str, pid: int) -> None:
    completed = subprocess.run(["callgrind_control", option, str(pid)], capture_output=True,
                               text=True, check=False, timeout=120)
    if completed.returncode != 0:
        raise RuntimeError(f"callgrind_control {option} failed: {completed.stderr}")


def _wrk_count(url: str, duration_s: int, headers: tuple[tuple[str, str], ...] = ()) -> int:
    completed = subprocess.run(["wrk", "-t1", "-c4", f"-d{duration_s}s", "--latency",
                                *wrk_header_args(headers), url],
                               capture_output=True, text=True, check=False,
                               timeout=duration_s + 120)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed: {completed.stderr}")
    _, _, _, requests, errors = parse_wrk(completed.stdout)
    if errors:
        raise RuntimeError(f"wrk saw {errors} errors against {url}")
    return requests


def run_server_instructions(frameworks: tuple[Framework, ...] = FRAMEWORKS,
                            duration_s: int = 8,
                            progress: Any = print) -> InstructionResult:
    """Instructions per request of whole uvicorn servers (one at a time, under callgrind)."""
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian packages valgrind, wrk)")
    result = InstructionResult(requests=0)
    with tempfile.TemporaryDirectory(prefix="genro-asgi-bench-cgu-") as tmp:
        for framework in frameworks:
            out = Path(tmp) / f"{framework.key}.out"
            server = UvicornServer(
                framework, Pinning(), Path(tmp),
                wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"],
                startup_timeout=SERVER_STARTUP_TIMEOUT,
            )
            try:
                server.start()
                server.wait_ready()
                for endpoint, path in ENDPOINTS:
                    _wrk_count(server.url(path), 2, framework.headers)  # warm-up
                    before = len(list(Path(tmp).glob(f"{framework.key}.out.*")))
                    _callgrind_control("-z", server.pid)
                    requests = _wrk_count(server.url(path), duration_s, framework.headers)
                    _callgrind_control("-d", server.pid)
                    dump = Path(f"{out}.{before + 1}")
                    summary = re.search(r"^summary:\s+(\d+)", dump.read_text(), re.MULTILINE)
                    if summary is None:
                        raise RuntimeError(f"no summary in {dump}")
                    per_request = int(summary.group(1)) / requests
                    result.per_request.setdefault(framework.key, {})[endpoint] = per_request
                    result.requests += requests
                    progress(f"  {framework.key:<14} {endpoint:<5} {per_request:>10,.0f} "
                             f"instructions/request over {requests} requests")
            finally:
                server.stop(SERVER_STOP_TIMEOUT)
    return result


def report_server_instructions(result: InstructionResult, labels: dict[str, str]) -> None:
    print("\nInstructions per request through uvicorn (callgrind over the whole server process, "
          "user space; wrk -c4)")
    header = f"{'framework':<24}" + "".join(
        f"{endpoint + ' instr':>14}{'bare/this':>11}" for endpoint, _ in ENDPOINTS
    )
    print(header)
    print("-" * len(header))
    for key in result.per_request:
        cells = ""
        for endpoint, _ in ENDPOINTS:
            value = result.per_request[key][endpoint]
            bare = result.per_request.get("bare", {}).get(endpoint, value)
            cells += f"{value:>14,.0f}{bare / value:>11.2f}"
        print(f"{labels.get(key, key):<24}{cells}")
    print("  bare/this: the requests per server core this framework would reach relative to the "
          "bare callable if instructions were time (the budget's >= 0.70)")


def report_instructions(result: InstructionResult, labels: dict[str, str]) -> None:
    print(f"\nInstructions per request in-process (callgrind, {result.requests} requests per "
          "loop; net of the harness's own "
          f"{result.harness:,.0f})")
    header = f"{'framework':<24}" + "".join(
        f"{endpoint + ' instr':>14}{'x bare':>8}" for endpoint, _ in ENDPOINTS
    )
    print(header)
    print("-" * len(header))
    for key in result.per_request:
        cells = ""
        for endpoint, _ in ENDPOINTS:
            net = result.net(key, endpoint)
            bare = result.net("bare", endpoint) if "bare" in result.per_request else net
            cells += f"{net:>14,.0f}{net / bare:>8.2f}"
        print(f"{labels.get(key, key):<24}{cells}")
    print("  deterministic: unaffected by other processes; read ratios, not absolute speed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per loop")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument("--server", action="store_true",
                        help="also count whole uvicorn servers (a few minutes)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        phases = asyncio.run(_child(args.requests))
        print("PHASES " + json.dumps(phases), flush=True)
        return 0
    labels = {fw.key: fw.label for fw in FRAMEWORKS}
    result = run_instructions(args.requests)
    report_instructions(result, labels)
    output: dict[str, Any] = {"inprocess": result.to_json()}
    if args.server:
        print("\nuvicorn servers under callgrind, one at a time ...")
        server_result = run_server_instructions()
        report_server_instructions(server_result, labels)
        output["uvicorn"] = server_result.to_json(net=False)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(output, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
