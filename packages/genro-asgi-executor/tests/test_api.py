"""The task HTTP API and the route helpers, in process (the project's TestClient)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from executor_apps import BadPoolApp, JobsApp, ProcessPoolApp
from executor_helpers import HANG_GUARD, POOLS

from genro_asgi import AsgiServer, StartupError
from genro_asgi.testing import AsyncTestClient
from genro_asgi_executor import executor_of

TINY = {**POOLS, "tiny": {"kind": "thread", "workers": 1, "max_pending": 1, "retry_after": 9}}


def make(tmp_path: Path, **options: Any) -> AsgiServer:
    # these tests are about the API itself: every caller sees every task (access: owner has
    # its own tests, test_task_owners.py)
    plugins: dict[str, Any] = {"executor": {"pools": TINY, "access": "open", **options}}
    if "auth_rule" in options:
        plugins["identity"] = {"module": "executor_apps:HeaderIdentity"}
    server = AsgiServer(tmp_path, config={"plugins": plugins}, environ={})
    server.mount("/jobs", JobsApp())
    return server


async def wait_state(client: httpx.AsyncClient, task_id: str, *states: str) -> dict[str, Any]:
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        body = (await client.get(f"/_tasks/{task_id}")).json()
        if body["state"] in states:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"task {task_id} never reached {states}")


async def test_list_get_and_filters(tmp_path: Path) -> None:
    async with AsyncTestClient(make(tmp_path)) as client:
        added = (await client.post("/jobs/add", json={"a": 2, "b": 3})).json()["task_id"]
        failed = (await client.post("/jobs/fail")).json()["task_id"]
        done = await wait_state(client, added, "done")
        assert done["result"] == 5 and done["pool"] == "io" and done["name"] == "add"
        bad = await wait_state(client, failed, "failed")
        assert bad["error"] == "ValueError: api" and "traceback" not in bad and "result" not in bad
        listed = (await client.get("/_tasks")).json()
        assert listed["count"] == 2
        assert [t["task_id"] for t in listed["tasks"]] == [failed, added]
        assert all("result" not in t for t in listed["tasks"])  # a list is a summary
        full = (await client.get("/_tasks", params={"results": "true"})).json()
        assert [t.get("result") for t in full["tasks"]] == [None, 5]
        refused = await client.get(f"/_tasks/{added}", params={"results": "true"})
        assert refused.status_code == 400  # a single task always has its result
        assert (await client.get("/_tasks", params={"results": "maybe"})).status_code == 400
        only = (await client.get("/_tasks", params={"state": "failed,cancelled"})).json()
        assert [t["task_id"] for t in only["tasks"]] == [failed]
        by_name = (await client.get("/_tasks", params={"name": "add", "pool": "io"})).json()
        assert [t["task_id"] for t in by_name["tasks"]] == [added]
        assert (await client.get("/_tasks", params={"limit": 1})).json()["count"] == 1
        assert (await client.head("/_tasks")).status_code == 200


async def test_bad_requests_are_4xx(tmp_path: Path) -> None:
    async with AsyncTestClient(make(tmp_path)) as client:
        added = (await client.post("/jobs/add", json={"a": 1})).json()["task_id"]
        await wait_state(client, added, "done")
        cases = [
            ("GET", "/_tasks?state=exploded", 400),
            ("GET", "/_tasks?state=,", 400),
            ("GET", "/_tasks?limit=0", 400),
            ("GET", "/_tasks?limit=100000", 400),
            ("GET", "/_tasks?limit=ten", 400),
            ("GET", "/_tasks?pool=gpu", 400),
            ("GET", "/_tasks?sort=desc", 400),
            ("GET", f"/_tasks/{added}?state=done", 400),
            ("GET", "/_tasks/unknown-id", 404),
            ("GET", "/_tasks/" + "x" * 5000, 404),
            ("GET", "/_tasks/%00%ff", 404),
            ("POST", "/_tasks/unknown-id/cancel", 404),
            ("GET", f"/_tasks/{added}/cancel", 405),
            ("POST", f"/_tasks/{added}", 405),
            ("POST", "/_tasks", 405),
            ("DELETE", f"/_tasks/{added}", 405),
            ("DELETE", "/_tasks", 405),
            ("PUT", f"/_tasks/{added}/cancel", 405),
            ("PATCH", f"/_tasks/{added}", 405),
            ("OPTIONS", "/_tasks", 405),
            ("TRACE", f"/_tasks/{added}/cancel", 405),
            ("GET", f"/_tasks/{added}/other", 404),
            ("GET", f"/_tasks/{added}/cancel/more", 404),
            ("POST", f"/_tasks/{added}/cancel", 409),
        ]
        for method, url, status in cases:
            response = await client.request(method, url)
            assert response.status_code == status, (method, url, response.text)
            assert response.json()["error"]["status"] == status
            if status == 405:  # the methods of the path asked, and that path named
                allowed = "POST" if url.endswith("/cancel") else "GET, HEAD"
                assert response.headers["allow"] == allowed, (method, url)
                assert response.json()["error"]["message"] == (
                    f"{method} is not allowed on {url!r}")


async def test_cancel_over_http(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    async with AsyncTestClient(make(tmp_path)) as client:
        task_id = (await client.post("/jobs/crunch", json={"flag": str(flag)})).json()["task_id"]
        await wait_state(client, task_id, "running")
        response = await client.post(f"/_tasks/{task_id}/cancel")
        assert response.status_code == 200
        assert response.json()["state"] == "cancelled"
        assert (await client.post(f"/_tasks/{task_id}/cancel")).status_code == 409


async def test_typed_results_as_json_or_tytx(tmp_path: Path) -> None:
    async with AsyncTestClient(make(tmp_path)) as client:
        task_id = (await client.post("/jobs/typed")).json()["task_id"]
        plain = await wait_state(client, task_id, "done")
        assert plain["result"] == {"total": "12.50", "items": [1, 2]}
        typed = await client.get(f"/_tasks/{task_id}", headers={"X-TYTX-Transport": "json"})
        assert typed.headers["content-type"].startswith("application/vnd.tytx+json")
        assert '"12.50::N"' in typed.text
        lock_id = (await client.post("/jobs/lock")).json()["task_id"]
        unencodable = await wait_state(client, lock_id, "done")
        assert unencodable["result"] is None
        assert "cannot be encoded" in unencodable["result_error"]


async def test_a_result_too_deep_to_encode_is_not_a_500(tmp_path: Path) -> None:
    async with AsyncTestClient(make(tmp_path)) as client:
        good = (await client.post("/jobs/add", json={"a": 4})).json()["task_id"]
        deep = (await client.post("/jobs/deep")).json()["task_id"]
        await wait_state(client, good, "done")
        await wait_state(client, deep, "done")
        for headers in ({}, {"X-TYTX-Transport": "json"}):
            one = await client.get(f"/_tasks/{deep}", headers=headers)
            assert one.status_code == 200, (headers, one.text[:200])
            listed = await client.get("/_tasks?results=true", headers=headers)
            assert listed.status_code == 200
        body = (await client.get("/_tasks?results=true")).json()
        results = {t["task_id"]: (t["result"], t.get("result_error")) for t in body["tasks"]}
        assert results[good] == (4, None)  # only the task at fault loses its result
        assert results[deep][0] is None and "cannot be encoded" in results[deep][1]


async def test_a_full_pool_answers_503_with_retry_after(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    async with AsyncTestClient(make(tmp_path)) as client:
        first = (await client.post("/jobs/hold", json={"flag": str(flag)})).json()["task_id"]
        await wait_state(client, first, "running")
        assert (await client.post("/jobs/hold", json={"flag": str(flag)})).status_code == 200
        refused = await client.post("/jobs/hold", json={"flag": str(flag)})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "9"
        assert "is full" in refused.json()["error"]["message"]
        flag.write_text("go")
        await wait_state(client, first, "done")


async def test_tracebacks_only_when_exposed(tmp_path: Path) -> None:
    async with AsyncTestClient(make(tmp_path, expose_tracebacks=True)) as client:
        failed = (await client.post("/jobs/fail")).json()["task_id"]
        body = await wait_state(client, failed, "failed")
        assert "in boom" in body["traceback"]


async def test_auth_rule_401_403_200(tmp_path: Path) -> None:
    async with AsyncTestClient(make(tmp_path, auth_rule="admin|ops")) as client:
        assert (await client.get("/_tasks")).status_code == 401
        assert (await client.get("/_tasks", headers={"x-test-tags": "guest"})).status_code == 403
        ok = await client.get("/_tasks", headers={"x-test-tags": "guest,ops"})
        assert ok.status_code == 200
        assert (await client.post("/_tasks/x/cancel")).status_code == 401


async def test_the_auth_rule_is_checked_before_any_parameter(tmp_path: Path) -> None:
    """A caller the rule refuses gets 401/403 whatever it sent: the parameters are not bound
    (nor coerced, nor their body read) before the rule is checked."""
    broken = b"{"  # a JSON body the binder would refuse
    as_json = {"content-type": "application/json"}
    async with AsyncTestClient(make(tmp_path, auth_rule="ops")) as client:
        for url in ("/_tasks?limit=abc", "/_tasks?bogus=1", "/_tasks?results=maybe",
                    "/_tasks?limit=1E%2B999999999::N"):
            assert (await client.get(url)).status_code == 401, url
            guest = await client.get(url, headers={"x-test-tags": "guest"})
            assert guest.status_code == 403, url
        assert (await client.post("/_tasks/x/cancel", content=broken, headers=as_json)
                ).status_code == 401
        # the same parameters from a caller the rule admits: the binder's 400
        ops = {"x-test-tags": "ops"}
        refused = await client.get("/_tasks?limit=abc", headers=ops)
        assert refused.status_code == 400 and "limit" in refused.text
        assert (await client.post("/_tasks/x/cancel", content=broken,
                                  headers={**as_json, **ops})).status_code == 400


async def test_the_auth_plugin_guards_the_api(tmp_path: Path) -> None:
    """The real auth plugin, not a stand-in: /_tasks is a guarded path like any other, and
    ``auth_rule`` then checks the identity it established."""
    tokens = {"ops": {"token": "ops-token-0123", "tags": ["ops"]},
              "guest": {"token": "guest-token-0123", "tags": ["guest"]}}

    def bearer(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    for auth, rule, guest_status in (({"bearer": tokens}, None, 200),
                                     ({"bearer": tokens}, "ops", 403),
                                     ({"bearer": tokens, "anonymous": True}, "ops", 403)):
        server = AsgiServer(tmp_path, environ={}, config={"plugins": {
            "auth": auth, "executor": {"pools": TINY, "auth_rule": rule, "access": "open"}}})
        server.mount("/jobs", JobsApp())
        async with AsyncTestClient(server) as client:
            assert (await client.get("/_tasks")).status_code == 401, (auth, rule)
            assert (await client.post("/_tasks/x/cancel")).status_code == 401
            assert (await client.get("/_tasks", headers=bearer("wrong-token-0123"))
                    ).status_code == 401
            assert (await client.get("/_tasks", headers=bearer("guest-token-0123"))
                    ).status_code == guest_status
            ok = await client.get("/_tasks", headers=bearer("ops-token-0123"))
            assert ok.status_code == 200 and ok.json()["count"] == 0


async def test_no_api_when_path_is_none(tmp_path: Path) -> None:
    async with AsyncTestClient(make(tmp_path, path=None)) as client:
        assert (await client.get("/_tasks")).status_code == 404


async def test_in_pool_runs_the_handler_in_a_pool_thread(tmp_path: Path) -> None:
    async with AsyncTestClient(make(tmp_path)) as client:
        answer = (await client.get("/jobs/blocking", params={"x": "7"})).json()
        assert answer == {"x": 7, "thread": answer["thread"], "app": "JobsApp"}
        assert answer["thread"].startswith("pool-io")
        assert (await client.get("/jobs/blocking", params={"x": "seven"})).status_code == 400
        assert (await client.get("/jobs/blocking")).status_code == 400


@pytest.mark.parametrize(("app", "message"), [
    (BadPoolApp, r"in_pool\('gpu'\) names no pool"),
    (ProcessPoolApp, r"in_pool\('cpu'\) needs a thread pool"),
])
async def test_in_pool_is_checked_at_startup(tmp_path: Path, app: type, message: str) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"executor": {"pools": POOLS}}},
                        environ={})
    server.mount("/bad", app())
    with pytest.raises(StartupError, match=message):
        await server.startup()


def test_in_pool_refuses_async_handlers() -> None:
    from genro_asgi_executor import in_pool

    with pytest.raises(TypeError, match="async"):
        @in_pool("io")
        async def handler(self: object) -> None: ...
    with pytest.raises(TypeError, match="pool name"):
        in_pool("")


async def test_executor_of_without_the_plugin(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, config={}, environ={})
    with pytest.raises(RuntimeError, match="executor plugin is not enabled"):
        executor_of(server)
    server.mount("/jobs", JobsApp())
    async with AsyncTestClient(server) as client:
        assert (await client.get("/jobs/blocking", params={"x": 1})).status_code == 500


async def test_before_startup_the_pools_are_closed(tmp_path: Path) -> None:
    from genro_asgi_executor import ExecutorClosed

    executor = executor_of(make(tmp_path))
    with pytest.raises(ExecutorClosed):
        await executor.run_blocking(print)
    with pytest.raises(ExecutorClosed):
        await executor.submit(print)
