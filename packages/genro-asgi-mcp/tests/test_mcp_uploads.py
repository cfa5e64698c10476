"""Upload routes and MCP tools: a tool call carries JSON arguments, never a file.

A route that needs a file cannot be a tool: named in ``tools`` or opted in with ``meta_mcp`` it
is a ConfigError at startup; caught by a wider pattern it is left out (logged). An optional
file parameter is left out of the tool's input schema, and the call gets its default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp_helpers import RawMcp

from genro_asgi import AsgiApplication, AsgiServer, ConfigError, UploadFile, route
from genro_asgi.testing import LiveServer, TestClient
from genro_asgi_mcp.tools import build_catalog


class Media(AsgiApplication):
    @route(methods=["POST"])
    async def attach(self, pid: str, image: UploadFile) -> dict[str, Any]:
        return {"pid": pid, "size": image.size}

    @route(methods=["POST"])
    async def label(self, text: str, image: UploadFile | None = None) -> dict[str, Any]:
        """Label a product, with an optional picture."""
        return {"text": text, "image": None if image is None else image.filename}


class OptedIn(AsgiApplication):
    @route(methods=["POST"], meta_mcp=True)
    async def attach(self, image: UploadFile) -> int:
        return image.size


def make(tmp_path: Path, tools: list[str], app: AsgiApplication | None = None) -> AsgiServer:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {"mcp": {"tools": tools}}})
    server.mount("/media", app or Media())
    return server


def tools_of(client: Any) -> dict[str, dict[str, Any]]:
    mcp = RawMcp(client)
    mcp.start()
    return {tool["name"]: tool for tool in mcp.call("tools/list")["result"]["tools"]}


def test_a_route_needing_a_file_named_as_a_tool_stops_the_server(tmp_path: Path) -> None:
    server = make(tmp_path, ["/media/attach"])
    with pytest.raises(RuntimeError, match=r"route /media/attach cannot be an MCP tool: it "
                                           r"needs the file upload\(s\) image"), \
            TestClient(server) as client:
        tools_of(client)
    with pytest.raises(ConfigError, match="cannot be an MCP tool"):
        build_catalog(server, ["/media/attach"], "/mcp")


def test_opting_in_a_route_needing_a_file_stops_the_server(tmp_path: Path) -> None:
    server = make(tmp_path, [], OptedIn())
    with pytest.raises(ConfigError, match="route /media/attach cannot be an MCP tool"):
        build_catalog(server, [], "/mcp")


def test_a_pattern_leaves_it_out_and_an_optional_file_is_not_an_argument(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = make(tmp_path, ["/media/*"])
    with caplog.at_level(logging.INFO, "genro_asgi_mcp.tools"), \
            TestClient(server) as client:
        tools = tools_of(client)
        assert set(tools) == {"media.label"}
        schema = tools["media.label"]["inputSchema"]
        assert set(schema["properties"]) == {"text"}
        assert schema["additionalProperties"] is False
        mcp = RawMcp(client)
        mcp.start()
        called = mcp.tool("media.label", {"text": "hello"})
        assert called["structuredContent"] == {"text": "hello", "image": None}
        sneaked = mcp.tool("media.label", {"text": "x", "image": "/etc/passwd"})
        assert sneaked["isError"] is True
    assert "/media/attach is not a tool: it needs the file upload(s) image" in caplog.text


def test_over_uvicorn(tmp_path: Path) -> None:
    with LiveServer(make(tmp_path, ["/media/*"])) as live, \
            httpx.Client(base_url=live.url, timeout=30) as http:
        tools = tools_of(http)
        assert set(tools) == {"media.label"}
        mcp = RawMcp(http)
        mcp.start()
        assert mcp.tool("media.label", {"text": "hi"})["structuredContent"] == {
            "text": "hi", "image": None}
        # the route itself still takes the file over HTTP
        sent = http.post("/media/attach", data={"pid": "p1"},
                         files={"image": ("a.png", b"12345", "image/png")})
        assert sent.json() == {"pid": "p1", "size": 5}
