"""Signals sent to the server's whole process group (systemd, a terminal's Ctrl-C) reach the
pool's worker processes too: they must leave the decision to the server, which drains them.

A real ``genro-asgi serve`` runs in its own session, so ``killpg`` hits it and its workers
(and the forkserver) as systemd or a terminal would, and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from executor_helpers import HANG_GUARD, pid_alive

from genro_asgi.testing import free_port
from genro_asgi_executor import SqliteTaskStore

pytestmark = pytest.mark.e2e

TESTS = Path(__file__).resolve().parent


def _config(directory: Path) -> None:
    (directory / "config.yaml").write_text(textwrap.dedent("""
        server: {host: 127.0.0.1, shutdown_timeout: 60}
        logging: {level: WARNING}
        plugins:
          executor:
            pools: {io: {kind: thread, workers: 1}, cpu: {kind: process, workers: 1}}
            shutdown_timeout: 60
            store: sqlite
        apps:
          jobs: {module: "executor_apps:JobsApp"}
    """))


def _serve(directory: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS),
                                                       os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "genro_asgi", "serve", str(directory), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True)  # its own process group: killpg reaches it and its children


def _wait_ready(process: subprocess.Popen[str], port: int) -> str:
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + HANG_GUARD
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{process.stdout.read()}")  # type: ignore[union-attr]
        try:
            httpx.get(url + "/jobs/hello", timeout=1.0)
            return url
        except httpx.TransportError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)


def _wait_for_progress(client: httpx.Client, task_id: str) -> None:
    """Until the job reports progress: its worker is up and running it."""
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        body = client.get(f"/_tasks/{task_id}").json()
        if body["state"] == "running" and body["progress"]:
            return
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} never reported progress")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return True
    return False


def _forkserver_of(pid: int) -> int:
    """The pid of the forkserver the server ``pid`` started."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"multiprocessing.forkserver" in cmdline:
            return int(entry.name)
    raise AssertionError(f"no forkserver under pid {pid}")


def _wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_group_signal_drains_a_running_process_job(tmp_path: Path, sig: int) -> None:
    _config(tmp_path)
    flag = tmp_path / "flag"
    port = free_port()
    process = _serve(tmp_path, port)
    try:
        url = _wait_ready(process, port)
        with httpx.Client(base_url=url, timeout=HANG_GUARD) as client:
            task_id = client.post("/jobs/crunch", json={"flag": str(flag)}).json()["task_id"]
            _wait_for_progress(client, task_id)
        forkserver = _forkserver_of(process.pid)
        os.killpg(process.pid, sig)
        # the server stops listening once it starts shutting down; the job is still running
        _wait_until(lambda: _refused(port), "the server to stop listening")
        assert process.poll() is None, "the server did not wait for its running job"
        # the forkserver leaves the signal to the server too (replacement workers, exit codes)
        assert pid_alive(forkserver), "the forkserver died of the group signal"
        flag.write_text("stop")  # now the job may finish: the server drains it, then exits
        process.wait(HANG_GUARD)
        _wait_until(lambda: not pid_alive(forkserver), "the forkserver to end with the server")
        output = process.stdout.read()  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # uvicorn re-raises the signal it caught once it is done: the exit status says which
    assert process.returncode in (0, -sig), output
    stored = {r.task_id: r for r in SqliteTaskStore(tmp_path / "tasks.sqlite3").load()}
    record = stored[task_id]
    assert record.state == "done", (record.state, record.error, output)
    assert isinstance(record.result, dict) and record.result["rounds"] >= 1
    assert "WorkerCrashed" not in output


def test_a_worker_does_not_outlive_its_server(tmp_path: Path) -> None:
    """Workers ignore the group's signals, so they must notice on their own when the server
    is gone (SIGKILL, or a signal uvicorn does not handle): even mid-job, silent, they end."""
    _config(tmp_path)
    pid_file = tmp_path / "pid"
    port = free_port()
    process = _serve(tmp_path, port)
    worker = 0
    try:
        url = _wait_ready(process, port)
        with httpx.Client(base_url=url, timeout=HANG_GUARD) as client:
            answer = client.post("/jobs/forever", json={"pid_file": str(pid_file)})
            assert answer.status_code == 200, answer.text
        _wait_until(pid_file.exists, "the job to start")
        worker = int(pid_file.read_text())
        os.kill(process.pid, signal.SIGKILL)  # the server only: no drain, no pipe closed
        process.wait(HANG_GUARD)
        _wait_until(lambda: not pid_alive(worker), "the orphaned worker to exit")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.wait()


NEVER_CLOSED = """
import asyncio, sys
from pathlib import Path
import executor_jobs as jobs
from genro_asgi import AsgiServer
from genro_asgi_executor import executor_of

async def main() -> None:
    server = AsgiServer(Path(sys.argv[1]), environ={}, config={"plugins": {"executor": {
        "pools": {"cpu": {"kind": "process", "workers": 1}}}}})
    await server.startup()
    print(await executor_of(server).run_process(jobs.add, 40, 2), flush=True)
    # no shutdown: the pool is never closed and its worker is alive at exit

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_process_with_a_pool_never_closed_still_exits(tmp_path: Path) -> None:
    """multiprocessing terminates (SIGTERM) then joins its children at exit: workers that
    ignore SIGTERM must not make that join wait forever."""
    script = tmp_path / "never_closed.py"
    script.write_text(NEVER_CLOSED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env,
                              capture_output=True, text=True, timeout=HANG_GUARD)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the process did not exit: {exc.stdout!r} {exc.stderr!r}") from None
    assert done.returncode == 0 and done.stdout.strip() == "42", done
