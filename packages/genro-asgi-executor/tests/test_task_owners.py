"""access: owner (the default): a task belongs to the identity that submitted it.

Its owner (and admin_rule) list, show and cancel it; anyone else gets a 404 as for an unknown
task. A task without an owner (submitted anonymously) is shown to whoever has its id, never
listed but to admins, and cancelled by admins only (403). The owner survives a restart with
the SQLite store, which an older store file gains a column for.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import executor_jobs as jobs
import httpx
import pytest
from executor_helpers import HANG_GUARD

from genro_asgi import AsgiApplication, AsgiServer, Identity, Request, route
from genro_asgi.testing import LiveServer, TestClient
from genro_asgi_executor import executor_of
from genro_asgi_executor.records import TaskRecord
from genro_asgi_executor.store import SqliteTaskStore

TOKENS = {"alice": "alice-token-123456", "bob": "bob-token-1234567", "root": "root-token-123456"}


def bearer(who: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"} if who else {}


class Work(AsgiApplication):
    @route(methods=["POST"])
    async def hold(self, request: Request, flag: str) -> dict[str, Any]:
        """A task that waits (cancellably) until ``flag`` exists, owned by the caller."""
        task_id = await executor_of(self.server).submit(
            jobs.wait_for_file, flag, 0, pool="io", owner=request.identity)
        return {"task_id": task_id}


def make(tmp_path: Path, **executor: Any) -> AsgiServer:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {
        "auth": {"anonymous": True, "bearer": {
            "alice": {"token": TOKENS["alice"], "tags": ["member"]},
            "bob": {"token": TOKENS["bob"], "tags": ["member"]},
            "root": {"token": TOKENS["root"], "tags": ["admin"]}}},
        "executor": {"pools": {"io": {"kind": "thread", "workers": 4}}, "admin_rule": "admin",
                     "shutdown_timeout": 0.5,
                     **executor},
    }})
    server.mount("/work", Work())
    return server


def submit(client: Any, who: str | None, flag: Path) -> str:
    answer = client.post("/work/hold", json={"flag": str(flag)}, headers=bearer(who))
    assert answer.status_code == 200, answer.text
    return answer.json()["task_id"]  # type: ignore[no-any-return]


def listed(client: Any, who: str | None) -> set[str]:
    answer = client.get("/_tasks", headers=bearer(who))
    assert answer.status_code == 200
    return {task["task_id"] for task in answer.json()["tasks"]}


def test_owners_see_and_cancel_their_own(tmp_path: Path) -> None:
    flag = tmp_path / "never"
    with TestClient(make(tmp_path)) as client:
        mine = submit(client, "alice", flag)
        anon = submit(client, None, flag)
        assert listed(client, "alice") == {mine}
        assert listed(client, "bob") == set()
        assert listed(client, None) == set()
        assert listed(client, "root") == {mine, anon}

        shown = client.get(f"/_tasks/{mine}", headers=bearer("alice")).json()
        assert shown["owner"] == "bearer:alice"
        assert client.get(f"/_tasks/{mine}", headers=bearer("root")).status_code == 200
        for who in ("bob", None):  # someone else's task is unknown to them
            other = client.get(f"/_tasks/{mine}", headers=bearer(who))
            assert other.status_code == 404
            assert other.json()["error"]["message"] == f"no task {mine!r}"
            assert client.post(f"/_tasks/{mine}/cancel",
                               headers=bearer(who)).status_code == 404
        cancelled = client.post(f"/_tasks/{mine}/cancel", headers=bearer("alice"))
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"


def test_ownerless_tasks_are_shown_by_id_and_cancelled_by_admins(tmp_path: Path) -> None:
    flag = tmp_path / "never"
    with TestClient(make(tmp_path)) as client:
        anon = submit(client, None, flag)
        for who in (None, "alice"):
            assert client.get(f"/_tasks/{anon}", headers=bearer(who)).json()["owner"] is None
            refused = client.post(f"/_tasks/{anon}/cancel", headers=bearer(who))
            assert refused.status_code == 403
            assert "only an admin may cancel it" in refused.json()["error"]["message"]
        assert client.get(f"/_tasks/{anon}").json()["state"] in ("pending", "running")
        done = client.post(f"/_tasks/{anon}/cancel", headers=bearer("root"))
        assert done.status_code == 200 and done.json()["state"] == "cancelled"


def test_admins_cancel_anyones(tmp_path: Path) -> None:
    with TestClient(make(tmp_path)) as client:
        task = submit(client, "bob", tmp_path / "never")
        assert client.post(f"/_tasks/{task}/cancel", headers=bearer("root")).status_code == 200


def test_without_admin_rule_nobody_sees_all(tmp_path: Path) -> None:
    with TestClient(make(tmp_path, admin_rule=None)) as client:
        task = submit(client, None, tmp_path / "never")
        assert listed(client, "root") == set()
        assert client.post(f"/_tasks/{task}/cancel", headers=bearer("root")).status_code == 403
        executor_of(client.app).tasks.cancel(task)


def test_open_access_is_the_old_behaviour(tmp_path: Path) -> None:
    with TestClient(make(tmp_path, access="open")) as client:
        task = submit(client, "alice", tmp_path / "never")
        assert listed(client, None) == {task}
        assert client.post(f"/_tasks/{task}/cancel").status_code == 200


def test_bad_options_and_owner(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="access"):
        make(tmp_path, access="everyone")
    with pytest.raises(Exception, match="invalid tag rule"):
        make(tmp_path, admin_rule="admin and (")

    async def check() -> None:
        server = make(tmp_path)
        await server.startup()
        try:
            with pytest.raises(TypeError, match="owner must be an Identity"):
                await executor_of(server).submit(jobs.add, 1, owner="alice")
            task = await executor_of(server).submit(
                jobs.add, 1, owner=Identity.of("ann", backend=""))
            assert executor_of(server).tasks.status(task).owner == "ann"
        finally:
            await server.shutdown()

    import asyncio

    asyncio.run(check())


def test_the_sqlite_store_keeps_owners_and_upgrades_old_files(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # a store file written before tasks had owners
        db.execute("CREATE TABLE tasks (task_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                   "pool TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL, "
                   "started_at REAL, finished_at REAL, progress REAL, message TEXT, "
                   "timeout REAL, error TEXT, traceback TEXT, result TEXT, result_error TEXT)")
        db.execute("INSERT INTO tasks (task_id, name, pool, state, created_at) "
                   "VALUES ('old', 'n', 'io', 'done', 1.0)")
    db.close()
    store = SqliteTaskStore(path)
    (old,) = store.load()
    assert old.task_id == "old" and old.owner is None
    store.save(TaskRecord("new", "n", "io", state="done", owner="bearer:alice"))
    store.close()
    owners = {r.task_id: r.owner for r in SqliteTaskStore(path).load()}
    assert owners == {"old": None, "new": "bearer:alice"}


def test_over_uvicorn(tmp_path: Path) -> None:
    flag = tmp_path / "never"
    with LiveServer(make(tmp_path)) as live, \
            httpx.Client(base_url=live.url, timeout=HANG_GUARD) as client:
        mine = submit(client, "alice", flag)
        anon = submit(client, None, flag)
        assert listed(client, "bob") == set()
        assert client.get(f"/_tasks/{mine}", headers=bearer("bob")).status_code == 404
        assert client.post(f"/_tasks/{mine}/cancel", headers=bearer("bob")).status_code == 404
        assert client.post(f"/_tasks/{anon}/cancel").status_code == 403
        assert client.post(f"/_tasks/{mine}/cancel", headers=bearer("alice")).status_code == 200
        assert client.post(f"/_tasks/{anon}/cancel", headers=bearer("root")).status_code == 200
        assert listed(client, "root") == {mine, anon}
