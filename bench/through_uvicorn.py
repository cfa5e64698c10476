"""Through uvicorn: each framework served by a real uvicorn process, loaded by ``wrk``.

One uvicorn per framework (one worker, uvloop, httptools, no access log, log level warning)
listens on a free loopback port. When ``taskset`` is available and the machine has at least
two CPUs, every server is pinned to one CPU and wrk to another, so that requests/s is the
throughput of one server core and wrk never steals it. The server's own CPU time (from
/proc) is read around every run, which gives the server CPU cost per request as well.
Every endpoint is warmed up first; the timed runs are interleaved across frameworks round by
round, each one starting when the machine is quiet (bounded wait, see bench.machine), and the
medians are reported. Every server this
module starts is stopped in ``finally`` (and by an ``atexit`` guard), SIGTERM then SIGKILL.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.apps import ENDPOINTS, HELLO_TEXT, JSON_PAYLOAD, Framework
from bench.bytecode import deployed_env, precompile
from bench.machine import CLK_TCK, machine_busy_seconds, wait_for_quiet

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@dataclass
class Pinning:
    """Which CPUs the servers and wrk run on (empty: not pinned)."""

    server_cpu: str = ""
    wrk_cpu: str = ""

    @property
    def active(self) -> bool:
        return bool(self.server_cpu and self.wrk_cpu)

    def describe(self) -> str:
        if not self.active:
            return "not pinned (--no-pin, taskset missing or fewer than 2 CPUs available)"
        return (f"uvicorn pinned to CPU {self.server_cpu}, wrk to CPU {self.wrk_cpu} "
                "(taskset -c); req/s is the throughput of one server core")

    def prefix(self, cpu: str) -> list[str]:
        return ["taskset", "-c", cpu] if self.active else []


def choose_pinning(enabled: bool = True) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or shutil.which("taskset") is None or len(cpus) < 2:
        return Pinning()
    return Pinning(server_cpu=str(cpus[0]), wrk_cpu=str(cpus[1]))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class UvicornServer:
    """One uvicorn subprocess serving ``framework.target`` on a loopback port."""

    def __init__(self, framework: Framework, pinning: Pinning, log_dir: Path, *,
                 wrapper: list[str] | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT) -> None:
        self.framework = framework
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.log_path = log_dir / f"uvicorn-{framework.key}.log"
        self.command = [
            *pinning.prefix(pinning.server_cpu), *(wrapper or []),
            sys.executable, "-m", "uvicorn", framework.target,
            "--app-dir", str(REPO_ROOT),
            "--host", HOST, "--port", str(self.port),
            "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning", "--lifespan", "on",
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def start(self) -> None:
        precompile([REPO_ROOT])  # a deployed worker's bytecode (bench/bytecode.py)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, env=deployed_env(),
        )

    def wait_ready(self) -> None:
        """Poll until both endpoints answer correctly; raise with the server log otherwise."""
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.framework.key}: uvicorn exited early:\n{self.log()}")
            try:
                for endpoint, path in ENDPOINTS:
                    check_http(HOST, self.port, endpoint, path, self.framework.headers)
                return
            except (OSError, http.client.HTTPException) as exc:
                last_error = exc
                time.sleep(0.1)
        raise RuntimeError(f"{self.framework.key}: not ready after {self.startup_timeout}s "
                           f"({last_error!r}):\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None


def check_http(host: str, port: int, endpoint: str, path: str,
               headers: tuple[tuple[str, str], ...] = ()) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        # no Accept-Encoding unless the framework's headers ask for one: a gzipped body would
        # not compare equal
        connection.request("GET", path, headers={k: v for k, v in headers
                                                 if k.lower() != "accept-encoding"})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: status {response.status}")
    ok = body == HELLO_TEXT.encode() if endpoint == "hello" else json.loads(body) == JSON_PAYLOAD
    if not ok:
        raise RuntimeError(f"GET {path}: unexpected body {body[:200]!r}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"cannot parse wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class WrkRun:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_cpu_s: float
    wrk_cpu_s: float
    other_cpu_s: float
    wall_s: float
    started_quiet: bool = True

    @property
    def server_cpu_share(self) -> float:
        return self.server_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def other_cpu_share(self) -> float:
        """CPU used by everything else on the machine, in CPUs (1.0 = one whole CPU)."""
        return self.other_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def server_cpu_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6 if self.requests else float("nan")


def parse_wrk(output: str) -> tuple[float, float, float, int, int]:
    """(requests/s, p50 ms, p99 ms, requests, errors) from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1)), errors


def wrk_header_args(headers: tuple[tuple[str, str], ...]) -> list[str]:
    """``-H 'name: value'`` for each header every request carries."""
    return [arg for name, value in headers for arg in ("-H", f"{name}: {value}")]


def run_wrk(server: UvicornServer, path: str, pinning: Pinning, *, threads: int,
            connections: int, duration_s: int, quiet: bool = False) -> WrkRun:
    """One wrk run; with ``quiet``, first wait (bounded) for the machine to be idle."""
    started_quiet = wait_for_quiet() if quiet else True
    command = [
        *pinning.prefix(pinning.wrk_cpu), "wrk", f"-t{threads}", f"-c{connections}",
        f"-d{duration_s}s", "--latency", *wrk_header_args(server.framework.headers),
        server.url(path),
    ]
    cpu_before, wrk_before, busy_before = (server.cpu_seconds(), children_cpu_seconds(),
                                           machine_busy_seconds())
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, check=False,
                               timeout=duration_s + 60)
    wall = time.monotonic() - started
    cpu = server.cpu_seconds() - cpu_before
    wrk_cpu = children_cpu_seconds() - wrk_before
    other = max(0.0, machine_busy_seconds() - busy_before - cpu - wrk_cpu)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stderr}")
    rps, p50, p99, requests, errors = parse_wrk(completed.stdout)
    return WrkRun(rps, p50, p99, requests, errors, cpu, wrk_cpu, other, wall, started_quiet)


@dataclass
class UvicornResult:
    rounds: int
    duration_s: int
    warmup_s: int
    threads: int
    connections: int
    pinning: str
    runs: dict[str, dict[str, list[WrkRun]]] = field(default_factory=dict)

    def median(self, framework: str, endpoint: str, attribute: str) -> float:
        values = [float(getattr(r, attribute)) for r in self.runs[framework][endpoint]]
        return statistics.median(values)

    def to_json(self) -> dict[str, Any]:
        table: dict[str, Any] = {}
        for key, per_endpoint in self.runs.items():
            table[key] = {}
            for endpoint, runs in per_endpoint.items():
                rps = self.median(key, endpoint, "requests_per_s")
                cpu_us = self.median(key, endpoint, "server_cpu_us_per_request")
                bare_rps = self.median("bare", endpoint, "requests_per_s") \
                    if "bare" in self.runs else None
                bare_cpu = self.median("bare", endpoint, "server_cpu_us_per_request") \
                    if "bare" in self.runs else None
                table[key][endpoint] = {
                    "median_requests_per_s": rps,
                    "ratio_to_bare": rps / bare_rps if bare_rps else None,
                    "median_p50_ms": self.median(key, endpoint, "p50_ms"),
                    "median_p99_ms": self.median(key, endpoint, "p99_ms"),
                    "median_server_cpu_us_per_request": cpu_us,
                    "cpu_efficiency_ratio_to_bare": bare_cpu / cpu_us if bare_cpu else None,
                    "median_server_cpu_share": self.median(key, endpoint, "server_cpu_share"),
                    "median_other_cpu_share": self.median(key, endpoint, "other_cpu_share"),
                    "errors": sum(r.errors for r in runs),
                    "runs_started_on_a_busy_machine": sum(not r.started_quiet for r in runs),
                    "rounds": [r.__dict__ for r in runs],
                }
        return {
            "rounds": self.rounds, "duration_s": self.duration_s, "warmup_s": self.warmup_s,
            "wrk": f"-t{self.threads} -c{self.connections} --latency",
            "uvicorn": "1 worker, --loop uvloop --http httptools --no-access-log "
                       "--log-level warning --lifespan on",
            "pinning": self.pinning, "results": table,
        }


def run_uvicorn(frameworks: tuple[Framework, ...], *, rounds: int, duration_s: int,
                warmup_s: int, threads: int = 1, connections: int = 32, pin: bool = True,
                progress: Callable[[str], None] = print) -> UvicornResult:
    """Start one server per framework, warm each endpoint, then interleave timed wrk runs."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get update && apt-get install -y wrk")
    pinning = choose_pinning(pin)
    result = UvicornResult(rounds, duration_s, warmup_s, threads, connections,
                           pinning.describe())
    servers: list[UvicornServer] = []
    atexit.register(_stop_all, servers)
    with tempfile.TemporaryDirectory(prefix="genro-asgi-bench-logs-") as log_dir:
        try:
            for framework in frameworks:
                server = UvicornServer(framework, pinning, Path(log_dir))
                servers.append(server)
                server.start()
            for server in servers:
                server.wait_ready()
                progress(f"  {server.framework.key}: uvicorn ready on port {server.port}")
            for server in servers:
                result.runs[server.framework.key] = {endpoint: [] for endpoint, _ in ENDPOINTS}
                for _, path in ENDPOINTS:
                    run_wrk(server, path, pinning, threads=threads, connections=connections,
                            duration_s=warmup_s)
            for round_no in range(1, rounds + 1):
                for server in servers:
                    for endpoint, path in ENDPOINTS:
                        run = run_wrk(server, path, pinning, threads=threads,
                                      connections=connections, duration_s=duration_s,
                                      quiet=True)
                        result.runs[server.framework.key][endpoint].append(run)
                        progress(f"  round {round_no}/{rounds} {server.framework.key:<14} "
                                 f"{endpoint:<5} {run.requests_per_s:>10.0f} req/s  "
                                 f"p99 {run.p99_ms:6.2f} ms  server CPU "
                                 f"{run.server_cpu_share:4.0%}  other load "
                                 f"{run.other_cpu_share:4.0%}  errors {run.errors}")
        finally:
            _stop_all(servers)
            atexit.unregister(_stop_all)
    return result


def _stop_all(servers: list[UvicornServer]) -> None:
    for server in servers:
        server.stop()
