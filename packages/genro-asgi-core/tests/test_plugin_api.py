"""The API docs/plugins.md offers plugin authors: server.request(), render_uncaught_error(),
auth_challenge. The plugin shown there is taken from the page and run, in process and over
uvicorn."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genro_asgi import AsgiApplication, AsgiServer, Request, route
from genro_asgi.testing import LiveServer, TestClient

DOCS = Path(__file__).resolve().parents[3] / "docs" / "plugins.md"
MODULE = "genro_asgi_docs_plugin_api"


@pytest.fixture(scope="module", autouse=True)
def docs_plugin() -> Iterator[types.ModuleType]:
    """The JsonOnly plugin, as docs/plugins.md writes it."""
    section = DOCS.read_text().split("### API for plugins", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    module = types.ModuleType(MODULE)
    exec(compile(code.group(1), str(DOCS), "exec"), module.__dict__)
    sys.modules[MODULE] = module
    yield module
    del sys.modules[MODULE]


class Echo(AsgiApplication):
    @route(methods=["POST"])
    async def echo(self, request: Request) -> dict[str, Any]:
        return {"got": await request.json()}


def make(tmp_path: Path, **plugins: Any) -> AsgiServer:
    server = AsgiServer(tmp_path, environ={}, config={
        "server": {"max_body_size": 64},
        "plugins": {"jsononly": {"module": f"{MODULE}:JsonOnly"}, **plugins}})
    server.mount("/api", Echo())
    return server


def test_the_docs_middleware(tmp_path: Path) -> None:
    with TestClient(make(tmp_path)) as client:
        assert client.post("/api/echo", json={"a": 1}).json() == {"got": {"a": 1}}
        refused = client.post("/api/echo", json=[1, 2], headers={"X-Request-ID": "r-9"})
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["message"] == "the body must be a JSON object"
        assert error["request_id"] == "r-9" and error["error_id"]
        malformed = client.post("/api/echo", content=b"{nope",
                                headers={"content-type": "application/json"})
        assert malformed.status_code == 400
        # server.request() holds the middleware to server.max_body_size (64), where
        # Request(scope, receive) would have read up to 1 MiB
        big = client.post("/api/echo", json={"a": "x" * 100})
        assert big.status_code == 413


def test_request_before_and_after_build(tmp_path: Path) -> None:
    server = make(tmp_path)
    request = server.request({"type": "http", "method": "GET", "path": "/", "headers": []},
                             lambda: None)  # type: ignore[arg-type, return-value]
    assert request.max_body_size == 64
    assert request.number_limits is server.number_limits


def test_auth_challenge(tmp_path: Path) -> None:
    assert make(tmp_path).auth_challenge is None
    server = make(tmp_path, auth={"anonymous": True,
                                  "bearer": {"ops": {"token": "ops-token-123456"}}})
    assert server.auth_challenge == 'Bearer realm="genro-asgi"'


def test_over_uvicorn(tmp_path: Path) -> None:
    with LiveServer(make(tmp_path)) as live, \
            httpx.Client(base_url=live.url, timeout=30) as client:
        assert client.post("/api/echo", json={"a": 1}).json() == {"got": {"a": 1}}
        assert client.post("/api/echo", json=[1]).status_code == 400
        assert client.post("/api/echo", json={"a": "x" * 100}).status_code == 413
