"""The executor's task API called over WSX and JSON-RPC (the wsx plugin), on a real uvicorn.

Every route the WSX endpoint can reach must work there or answer a clear 4xx: the task API
lists and shows tasks (as GET), cancels them (as POST, or a call without a method on the
cancel path), answers 405/404/409 as error frames, and checks its ``auth_rule`` per call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from genro_tytx import from_tytx
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiApplication, AsgiServer, Request, route
from genro_asgi.testing import LiveServer
from genro_asgi_executor import current_task, executor_of

pytestmark = pytest.mark.e2e

TIMEOUT = 20.0  # a guard against a hang, never an assertion about speed
OPS, GUEST = "ops-token-0123456789", "guest-token-0123456789"
RELEASE = threading.Event()


def hold() -> str:
    """A thread job that runs until released or cancelled."""
    task = current_task()
    while not RELEASE.wait(0.005):
        if task is not None and task.cancelled:
            return "stopped"
    return "released"


def add(a: int, b: int) -> int:
    return a + b


class Jobs(AsgiApplication):
    @route(methods=["POST"])
    async def start(self, kind: str = "add") -> str:
        executor = executor_of(self.server)
        if kind == "hold":
            return await executor.submit(hold, pool="io", name="hold")
        return await executor.submit(add, 40, 2, pool="io", name="add")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = AsgiServer(tmp_path_factory.mktemp("tasks_wsx"), environ={}, config={"plugins": {
        "auth": {"anonymous": True,
                 "bearer": {"ops": {"token": OPS, "tags": ["ops"]},
                            "guest": {"token": GUEST, "tags": ["guest"]}}},
        "executor": {"pools": {"io": {"kind": "thread", "workers": 2}}, "auth_rule": "ops",
                     "access": "open"},
        # anonymous connections may call (public routes), so /_tasks must refuse them itself
        "wsx": {"heartbeat_interval": 0, "require_identity": False},
    }})
    server.mount("/jobs", Jobs())
    with LiveServer(server) as running:
        yield running


def open_ws(live: LiveServer, token: str | None, protocol: str = "wsx") -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return connect(live.ws_url + "/_wsx", subprotocols=[protocol],  # type: ignore[list-item]
                   additional_headers=headers, open_timeout=TIMEOUT, close_timeout=TIMEOUT)


def call(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    ws.send("WSX://" + json.dumps(message))
    frame = ws.recv(timeout=TIMEOUT)
    assert isinstance(frame, str) and frame.startswith("WSX://"), frame
    answer: dict[str, Any] = json.loads(frame[6:])
    assert answer.get("id") == message.get("id"), answer
    return answer


def data(answer: dict[str, Any]) -> Any:
    assert answer["status"] == 200, answer
    return from_tytx(answer["data"], "json")


def rpc(ws: ClientConnection, method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        message["params"] = params
    ws.send(json.dumps(message))
    answer: dict[str, Any] = json.loads(ws.recv(timeout=TIMEOUT))
    return answer


def until_state(ws: ClientConnection, task_id: str, state: str) -> dict[str, Any]:
    for attempt in range(int(TIMEOUT / 0.02)):
        view: dict[str, Any] = data(call(ws, {"id": f"s{attempt}", "path": f"/_tasks/{task_id}"}))
        if view["state"] == state:
            return view
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} never reached {state}")


def test_list_show_and_cancel_over_wsx(live: LiveServer) -> None:
    RELEASE.clear()
    try:
        _list_show_and_cancel(live)
    finally:
        RELEASE.set()  # a failed assertion must not leave a job holding the shutdown


def _list_show_and_cancel(live: LiveServer) -> None:
    with open_ws(live, OPS) as ws:
        done_id = data(call(ws, {"id": 1, "method": "POST", "path": "/jobs/start"}))
        view = until_state(ws, done_id, "done")
        assert view["result"] == 42 and view["name"] == "add"
        # the list, as an object (not a JSON document in a string), filters included
        listed = data(call(ws, {"id": 2, "path": "/_tasks", "data": {"state": "done"}}))
        assert listed["count"] >= 1 and done_id in [t["task_id"] for t in listed["tasks"]]
        assert all("result" not in t for t in listed["tasks"])  # summaries
        as_get = data(call(ws, {"id": 3, "method": "GET", "path": f"/_tasks/{done_id}"}))
        assert as_get["task_id"] == done_id
        # cancel: POST, or no method on the cancel path; GET there is a 405
        held = data(call(ws, {"id": 4, "method": "POST", "path": "/jobs/start",
                              "data": {"kind": "hold"}}))
        until_state(ws, held, "running")
        wrong = call(ws, {"id": 5, "method": "GET", "path": f"/_tasks/{held}/cancel"})
        assert wrong["status"] == 405 and "GET is not allowed" in wrong["error"]["message"]
        cancelled = data(call(ws, {"id": 6, "path": f"/_tasks/{held}/cancel"}))
        assert cancelled["state"] == "cancelled"
        again = call(ws, {"id": 7, "method": "POST", "path": f"/_tasks/{held}/cancel"})
        assert again["status"] == 409 and "already finished" in again["error"]["message"]
        post_show = call(ws, {"id": 8, "method": "POST", "path": f"/_tasks/{done_id}"})
        assert post_show["status"] == 405
        missing = call(ws, {"id": 9, "path": "/_tasks/no-such-task"})
        assert missing["status"] == 404 and "no task" in missing["error"]["message"]
        bad = call(ws, {"id": 10, "path": "/_tasks", "data": {"state": "sleeping"}})
        assert bad["status"] == 400 and "state must be among" in bad["error"]["message"]


def test_task_api_over_json_rpc(live: LiveServer) -> None:
    with open_ws(live, OPS, protocol="jsonrpc") as ws:
        answer = rpc(ws, "_tasks", {"limit": 5})
        assert "result" in answer, answer
        assert isinstance(answer["result"], dict) and "tasks" in answer["result"]
        missing = rpc(ws, "_tasks/nope")
        assert missing["error"]["data"]["status"] == 404, missing


@pytest.mark.parametrize("protocol", ["wsx", "jsonrpc"])
def test_the_auth_rule_comes_before_the_parameters_over_wsx(live: LiveServer,
                                                            protocol: str) -> None:
    """As over HTTP: a caller the rule refuses gets 401/403 whatever it sent, its parameters
    never bound nor coerced (not a 400 for them)."""
    hostile = {"limit": "many", "state": "x" * 1000, "unexpected": 1}
    for token, status in ((None, 401), (GUEST, 403)):
        with open_ws(live, token, protocol) as ws:
            if protocol == "wsx":
                answer = call(ws, {"id": 1, "path": "/_tasks", "data": hostile})
                assert answer["status"] == status, answer
                typed = call(ws, {"id": 2, "path": "/_tasks",
                                  "data": '{"limit": "1E+999999999::N"}::JS'})
                assert typed["status"] == status, typed
            else:
                answer = rpc(ws, "_tasks", hostile)
                assert answer["error"]["data"]["status"] == status, answer
    with open_ws(live, OPS) as ws:  # admitted: the same parameters are checked
        answer = call(ws, {"id": 1, "path": "/_tasks", "data": hostile})
        assert answer["status"] == 400 and answer["error"]["code"] == "invalid_params"


class OwnedJobs(AsgiApplication):
    @route(methods=["POST"])
    async def start(self, request: Request) -> str:
        return await executor_of(self.server).submit(hold, pool="io", name="hold",
                                                     owner=request.identity)


def test_task_owners_over_wsx(tmp_path: Path) -> None:
    """access: owner (the default) over WSX: the connection's identity owns what it starts;
    another identity does not see it nor cancel it (404), an admin does."""
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {
        "auth": {"anonymous": True,
                 "bearer": {"ops": {"token": OPS, "tags": ["ops"]},
                            "guest": {"token": GUEST, "tags": ["guest"]}}},
        "executor": {"pools": {"io": {"kind": "thread", "workers": 2}}, "admin_rule": "ops"},
        "wsx": {"heartbeat_interval": 0, "require_identity": False},
    }})
    server.mount("/jobs", OwnedJobs())
    RELEASE.clear()
    try:
        with LiveServer(server) as live, open_ws(live, GUEST) as guest, \
                open_ws(live, None) as anonymous, open_ws(live, OPS) as ops:
            mine = data(call(guest, {"id": 1, "path": "/jobs/start"}))
            listed = data(call(guest, {"id": 2, "path": "/_tasks"}))["tasks"]
            assert [task["task_id"] for task in listed] == [mine]
            assert data(call(anonymous, {"id": 3, "path": "/_tasks"}))["tasks"] == []
            hidden = call(anonymous, {"id": 4, "path": f"/_tasks/{mine}/cancel"})
            assert hidden["status"] == 404, hidden
            cancelled = data(call(ops, {"id": 5, "path": f"/_tasks/{mine}/cancel"}))
            assert cancelled["state"] == "cancelled" and cancelled["owner"] == "bearer:guest"
    finally:
        RELEASE.set()
