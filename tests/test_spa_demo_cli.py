"""The demo (`make serve`) with a page open, inspected with `genro-asgi spa` as the comment in
its config.yaml says: the admin token sees the users, the member token is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from .conftest import DEMO

pytestmark = pytest.mark.e2e
TIMEOUT = 30.0  # a guard against a hang, never an assertion about speed


def spa_command(url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genro_asgi", "spa", str(DEMO), *args, "--url", url],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
        env={**os.environ, "GENRO_ASGI_SPA_TOKEN": token})


def test_the_demo_lists_its_pages(serve) -> None:
    server = serve()
    ws_url = server.url.replace("http://", "ws://") + "/_wsx"
    with connect(ws_url, subprotocols=["wsx"],  # type: ignore[list-item]
                 additional_headers=[("Authorization", "Bearer demo-user-token-change-me")],
                 open_timeout=TIMEOUT) as ws:
        ws.send('WSX://{"id":1,"path":"/_spa/register","data":{"info":{"title":"demo"}}}')
        frame = json.loads(str(ws.recv(timeout=TIMEOUT))[6:])
        assert frame["status"] == 200, frame
        page = json.loads(frame["data"])
        admin = spa_command(server.url, "demo-admin-token-change-me", "pages", "--json")
        assert admin.returncode == 0, admin.stderr
        [listed] = json.loads(admin.stdout)["pages"]
        assert listed["page_id"] == page["page_id"] and listed["user_id"] == "demo-user"
        member = spa_command(server.url, "demo-user-token-change-me", "users")
        assert member.returncode == 1 and ": 403 " in member.stderr
