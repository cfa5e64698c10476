"""Helpers for the cross-package end-to-end tests: run the real ``genro-asgi`` CLI as a process."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from genro_asgi.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo"
STARTUP_LIMIT = 30.0  # seconds: a guard against a hung start, never an assertion


class ServerProcess:
    """``genro-asgi serve`` in a subprocess on a free loopback port."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "genro_asgi", "serve", str(directory), "--port",
             str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_ready(self, path: str = "/health") -> None:
        deadline = time.monotonic() + STARTUP_LIMIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                httpx.get(self.url + path, timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {STARTUP_LIMIT}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stdout.read() if self.process.stdout else ""


@pytest.fixture(scope="session", autouse=True)
def demo_debug_secret() -> None:
    """What `make serve` does first: the demo's debug plugin reads its secret from this file."""
    secret = DEMO / ".debug-secret"
    if not secret.exists():
        old = os.umask(0o077)
        try:
            secret.write_text(secrets.token_hex(32) + "\n")
        finally:
            os.umask(old)


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def factory(directory: Path = DEMO, *extra: str, ready_path: str = "/health") -> ServerProcess:
        server = ServerProcess(directory, *extra)
        started.append(server)
        server.wait_ready(ready_path)
        return server

    yield factory
    for server in started:
        server.stop(signal.SIGKILL if server.process.poll() is None else signal.SIGTERM)
