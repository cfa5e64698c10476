"""A ``genro-asgi serve`` process for the benchmarks that need whole servers (several
processes on one nats-server): started on a free loopback port, ready once a health path
answers, stopped with SIGTERM (SIGKILL after 20 s)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from genro_asgi.testing import free_port

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class ServedProcess:
    """``genro-asgi serve directory`` in a subprocess; ``health`` is a path that answers
    once it serves."""

    def __init__(self, directory: Path, health: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/_wsx"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "genro_asgi", "serve", str(directory), "--port",
             str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                httpx.get(self.url + health, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"server {directory.name} did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
