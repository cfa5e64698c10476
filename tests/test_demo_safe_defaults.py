"""The demo teaches safe defaults, checked on the real server (`genro-asgi serve`, httpx).

- A task belongs to whoever started it: an anonymous client can follow its job but not cancel
  it, nor anybody else's; a user cancels only its own; the admin token cancels any.
- `genro-asgi routes` shows the methods each path of the task API really answers.
- The shop's upload route takes a multipart file (admin only), and the OpenAPI document says so.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest
import yaml

from .conftest import DEMO

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer demo-admin-token-change-me"}
USER = {"Authorization": "Bearer demo-user-token-change-me"}
ANON: dict[str, str] = {}
TIMEOUT = 30.0  # a guard against a hang, never an assertion


def crunch(client: httpx.Client, headers: dict[str, str]) -> str:
    # the most rounds the demo allows: the job is still running when it is cancelled
    started = client.post("/crunch", params={"rounds": 20_000_000}, headers=headers)
    assert started.status_code == 200, started.text
    return started.json()["task_id"]  # type: ignore[no-any-return]


def listed(client: httpx.Client, headers: dict[str, str]) -> set[str]:
    answer = client.get("/_tasks", headers=headers)
    assert answer.status_code == 200
    return {task["task_id"] for task in answer.json()["tasks"]}


def test_only_the_owner_or_an_admin_cancels_a_task(serve: Any) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        anonymous = crunch(client, ANON)
        users = crunch(client, USER)
        try:
            # the anonymous job: shown to whoever has its id, cancelled by nobody but admins
            shown = client.get(f"/_tasks/{anonymous}")
            assert shown.status_code == 200 and shown.json()["owner"] is None
            for who in (ANON, USER):
                refused = client.post(f"/_tasks/{anonymous}/cancel", headers=who)
                assert refused.status_code == 403
                assert "only an admin may cancel it" in refused.json()["error"]["message"]
            # the user's job: unknown to anybody else
            for path in (f"/_tasks/{users}", f"/_tasks/{users}/cancel"):
                method = "POST" if path.endswith("cancel") else "GET"
                assert client.request(method, path).status_code == 404
            assert listed(client, ANON) == set()
            assert listed(client, USER) == {users}
            assert client.get(f"/_tasks/{users}", headers=USER).json()["owner"] == \
                "bearer:demo-user"
            mine = client.post(f"/_tasks/{users}/cancel", headers=USER)
            assert mine.status_code == 200 and mine.json()["state"] == "cancelled"
            assert {anonymous, users} <= listed(client, ADMIN)
        finally:
            for task in (anonymous, users):  # no job left crunching after the test
                client.post(f"/_tasks/{task}/cancel", headers=ADMIN)
        assert client.get(f"/_tasks/{anonymous}").json()["state"] == "cancelled"
    server.stop(signal.SIGTERM)  # a clean shutdown: the process pool stops with it


def test_routes_list_the_methods_the_task_api_answers(serve: Any) -> None:
    routes = subprocess.run([sys.executable, "-m", "genro_asgi", "routes", str(DEMO), "--json"],
                            capture_output=True, text=True, check=True, timeout=120)
    rows = {row["path"]: row["methods"] for row in json.loads(routes.stdout)}
    assert rows["/_tasks"] == ["GET", "HEAD"]
    assert rows["/_tasks/{task_id}"] == ["GET", "HEAD"]
    assert rows["/_tasks/{task_id}/cancel"] == ["POST"]
    assert not any("TRACE" in methods for methods in rows.values())
    assert "/shop/upload_image/{pid}" in rows  # the file is not a path parameter
    server = serve()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for path in ("/_tasks", "/_tasks/{task_id}", "/_tasks/{task_id}/cancel"):
            url = path.replace("{task_id}", "no-such-task")
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "TRACE"):
                status = client.request(method, url, headers=ADMIN).status_code
                assert (status != 405) == (method in rows[path]), (method, path, status)


def test_the_upload_route(serve: Any) -> None:
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
    upload = {"image": ("../../etc/cup.png", image, "image/png")}
    server = serve()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        done = client.post("/shop/upload_image", data={"pid": "p1"}, files=upload,
                           headers=ADMIN)
        assert done.status_code == 200, done.text
        assert done.json() == {"pid": "p1", "filename": "cup.png", "content_type": "image/png",
                               "size": len(image), "sha256": hashlib.sha256(image).hexdigest()}
        assert client.post("/shop/upload_image", data={"pid": "p1"},
                           files=upload).status_code == 401
        assert client.post("/shop/upload_image", data={"pid": "p1"}, files=upload,
                           headers=USER).status_code == 403
        missing = client.post("/shop/upload_image", data={"pid": "nope"}, files=upload,
                              headers=ADMIN)
        assert missing.status_code == 404
        as_json = client.post("/shop/upload_image", json={"pid": "p1", "image": "x"},
                              headers=ADMIN)
        assert as_json.status_code == 400
        assert "must be a file upload" in as_json.json()["error"]["message"]
        no_file = client.post("/shop/upload_image", data={"pid": "p1"},
                              files={"other": ("a", b"1")}, headers=ADMIN)
        assert no_file.status_code == 400

        body = client.get("/openapi.json").json()["paths"]["/shop/upload_image"]["post"]
        content = body["requestBody"]["content"]
        assert list(content) == ["multipart/form-data"]
        assert content["multipart/form-data"]["schema"]["properties"]["image"]["format"] == \
            "binary"
        # the MCP tools are named one by one in config.yaml: the upload route is not among them
        # (a tool cannot send a file; named there it would stop the server)
        tools = yaml.safe_load((DEMO / "config.yaml").read_text())["plugins"]["mcp"]["tools"]
        assert "/shop/upload_image" not in tools
