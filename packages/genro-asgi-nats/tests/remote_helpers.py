"""Remote pool helpers: an application directory with jobs, a server, and worker processes
started with the real ``genro-asgi worker`` command."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
from genro_tytx import from_tytx, to_tytx

from genro_asgi import AsgiApplication, AsgiServer, BadRequest, route
from genro_asgi.testing import LiveServer
from genro_asgi_executor import executor_of

TIMEOUT = 30.0  # a guard against a hang, never an assertion about speed

JOBS = '''
"""Jobs of the test application: registered by name in config.yaml."""
import datetime
import os
import time
from pathlib import Path

from genro_asgi_executor import TaskCancelled, current_task, report_progress


def add(a, b):
    return a + b


def typed(price, day):
    return {"total": price * 2, "next": day + datetime.timedelta(days=1)}


def noop():
    return None


def steps(n):
    for i in range(n):
        report_progress((i + 1) / n, f"step {i + 1}")
        time.sleep(0.02)
    return n


def fail(text):
    raise ValueError(text)


def wait_for_cancel(limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if current_task().cancelled:
            raise TaskCancelled("stopped as asked")
        time.sleep(0.01)
    return "never cancelled"


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def die_once(marker):
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(3)
    return f"survived after {path.read_text()} died"


def always_die():
    os._exit(4)


def unsendable():
    return {"o": object()}
'''

JOB_NAMES = ["add", "typed", "noop", "steps", "fail", "wait_for_cancel", "sleep", "die_once",
             "always_die", "unsendable"]


def app_dir(root: Path, name: str, nats_url: str, **options: Any) -> Path:
    """An application directory: config.yaml (nats, executor with a remote pool) + jobs."""
    directory = root / name
    directory.mkdir()
    (directory / "remote_jobs.py").write_text(JOBS)
    jobs = ", ".join(f"{j}: 'remote_jobs:{j}'" for j in JOB_NAMES)
    extra = ", ".join(f"{k}: {v}" for k, v in options.items())
    (directory / "config.yaml").write_text(textwrap.dedent(f"""
        plugins:
          nats: {{servers: ["{nats_url}"], subject_prefix: rt,
                  reconnect_wait: 0.05, reconnect_wait_max: 0.25}}
          executor:
            pools:
              io: {{kind: thread}}
              gpu: {{kind: remote, workers: 2,
                     options: {{jobs: {{{jobs}}}{', ' + extra if extra else ''}}}}}
    """))
    return directory


def copy_app(directory: Path, other: Path) -> Path:
    """The same application in another directory (as on another machine)."""
    shutil.copytree(directory, other)
    return other


class Jobs(AsgiApplication):
    @route()
    async def submit(self, job: str, args: list[Any] | None = None,
                     kwargs: dict[str, Any] | None = None,
                     timeout: float | None = None) -> str:
        executor = executor_of(self.server)
        try:
            return await executor.submit(job, *(args or []), pool="gpu", name=job,
                                         timeout=timeout, **(kwargs or {}))
        except (TypeError, ValueError) as exc:  # what an application does: the caller's 400
            raise BadRequest(detail=str(exc)) from None

    @route()
    async def outcome(self, task_id: str) -> dict[str, Any]:
        tasks = executor_of(self.server).tasks
        assert tasks is not None
        try:
            return {"ok": True, "result": await tasks.result(task_id, timeout=TIMEOUT)}
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                    "cause": str(exc.__cause__) if exc.__cause__ else ""}

    @route()
    async def cancel(self, task_id: str) -> bool:
        tasks = executor_of(self.server).tasks
        assert tasks is not None
        return tasks.cancel(task_id)

    @route()
    async def status(self, task_id: str) -> dict[str, Any]:
        tasks = executor_of(self.server).tasks
        assert tasks is not None
        record = tasks.status(task_id)
        return {"state": record.state, "progress": record.progress, "message": record.message}


def server_for(directory: Path) -> AsgiServer:
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    server = AsgiServer(directory, environ={})
    server.mount("/jobs", Jobs())
    return server


def call(live: LiveServer, method: str, **params: Any) -> Any:
    answer = httpx.post(f"{live.url}/jobs/{method}", content=to_tytx(params),
                        headers={"Content-Type": "application/vnd.tytx+json",
                                 "X-TYTX-Transport": "json"}, timeout=TIMEOUT + 10)
    assert answer.status_code == 200, answer.text
    return from_tytx(answer.text, "json")


class WorkerProcess:
    """``genro-asgi worker DIR --pool gpu`` as a child process."""

    def __init__(self, directory: Path, *extra: str, cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "genro_asgi", "worker", str(directory), "--pool", "gpu",
             *extra], cwd=cwd or directory.parent, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"worker never printed {text!r}; saw {self.seen}"
                                     ) from None
            self.seen.append(line)
            if text in line:
                return line

    def ready(self) -> WorkerProcess:
        self.wait_for("worker ")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode
