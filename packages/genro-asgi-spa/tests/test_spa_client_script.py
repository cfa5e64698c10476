"""``<path>/client.js`` in process: served without a credential, with this server's wsx and
spa paths written in, GET and HEAD only."""

from __future__ import annotations

from pathlib import Path

import pytest
from spa_helpers import make_server

from genro_asgi.testing import AsyncTestClient
from genro_asgi_spa import client_script


async def test_served_with_the_default_paths_and_no_credential(tmp_path: Path) -> None:
    server = make_server(tmp_path)  # the auth plugin is on
    async with AsyncTestClient(server) as client:
        answer = await client.get("/_spa/client.js")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.text == client_script.client_source()  # the defaults: nothing to change
        assert 'import { WsxClient } from "/_wsx/client.js";' in answer.text
        head = await client.head("/_spa/client.js")
        assert head.status_code == 200 and head.content == b""
        assert (await client.post("/_spa/client.js")).status_code == 405
        # the module it imports is served without a credential too
        assert (await client.get("/_wsx/client.js")).status_code == 200


async def test_other_paths_are_written_in(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"path": "/app/spa"}, wsx={"path": "/live"})
    async with AsyncTestClient(server) as client:
        text = (await client.get("/app/spa/client.js")).text
        assert 'import { WsxClient } from "/live/client.js";' in text
        assert 'from "/_wsx' not in text and 'wsx = "/_wsx"' not in text
        assert 'base = "/app/spa"' in text and 'wsx = "/live"' in text
        assert (await client.get("/live/client.js")).status_code == 200


def test_a_file_without_its_markers_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_script, "client_source", lambda: "export const x = 1;\n")
    with pytest.raises(RuntimeError, match="no longer contains"):
        client_script.render_client("/_wsx", "/_spa")
