"""The official ``mcp`` client SDK against a real uvicorn, and raw hostile HTTP on the wire."""

from __future__ import annotations

import asyncio
import json
import socket
import warnings
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_helpers import ADMIN, JSON_HEADERS, USER, RawMcp, Shop, auth_config, initialize, message

pytestmark = pytest.mark.e2e


def raw_status(live: Any, request: bytes) -> int:
    """The status a request written byte for byte gets (httpx will not send a lying
    Content-Length)."""
    with socket.create_connection((live.host, live.port), timeout=30) as sock:
        sock.sendall(request)
        head = sock.recv(4096)
    return int(head.split(b" ", 2)[1])


@pytest.fixture
def live(make_server, live_server) -> Any:
    server = make_server({"plugins": {"auth": auth_config(public=False),
                                      "mcp": {"max_body_size": 65536}}})
    server.mount("/shop", Shop())
    return live_server(server)


def sdk_client(url: str, token: str | None, mode: str = "auto") -> tuple[Client, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(url + "/mcp", http_client=http), mode=mode), http


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_sdk_lists_and_calls_tools(live, mode: str) -> None:
    client, http = sdk_client(live.url, USER, mode)
    async with http, client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None and client.server_info.name == "genro-asgi"
        listed = await client.list_tools()
        tools = {tool.name: tool for tool in listed.tools}
        assert "shop.get" in tools and "restock" not in tools  # a user may not restock
        assert tools["shop.count"].annotations is not None
        assert tools["shop.count"].annotations.read_only_hint is True

        # typed arguments; the SDK checks the structured result against the output schema
        result = await client.call_tool("shop.get", {"item_id": 7, "day": "2025-01-02"})
        assert result.is_error is False
        assert result.structured_content == {"id": 7, "price": "1.50", "day": "2025-01-02"}
        assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
        counted = await client.call_tool("shop.count", {"n": 2})
        assert counted.structured_content == {"result": [0, 1]}

        bad = await client.call_tool("shop.get", {"item_id": "seven"})
        assert bad.is_error is True
        assert bad.content[0].text.startswith(  # type: ignore[union-attr]
            "400 Bad Request: parameter 'item_id'")

        refused = await client.call_tool("restock", {"pid": "p1", "quantity": 1})
        assert refused.is_error is True
        assert refused.content[0].text == \
            "403 Forbidden: /shop/restock requires 'admin'"  # type: ignore[union-attr]

        crashed = await client.call_tool("shop.boom", {})
        assert crashed.is_error is True
        assert "secret" not in crashed.content[0].text  # type: ignore[union-attr]

        with pytest.raises(MCPError, match="unknown tool: 'nope'"):
            await client.call_tool("nope", {})
        with warnings.catch_warnings():  # "removed as of 2026-07-28": this is 2025-11-25
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.send_ping()
    # the SDK ends its session with a DELETE on the way out
    assert len(live.server.config.app.plugins.get("mcp").sessions) == 0


async def test_the_admin_may_restock(live) -> None:
    client, http = sdk_client(live.url, ADMIN)
    async with http, client:
        assert "restock" in {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("restock", {"pid": "p1", "quantity": 3})
        assert result.is_error is False
        assert result.structured_content == {"pid": "p1", "quantity": 3}


async def test_a_call_the_sdk_gives_up_on_is_cancelled_on_the_server(live) -> None:
    sessions = live.server.config.app.plugins.get("mcp").sessions
    client, http = sdk_client(live.url, USER, "legacy")
    async with http, client:
        # the handler never returns: the SDK stops waiting and sends notifications/cancelled
        with pytest.raises(MCPError):
            await client.call_tool("shop.stall", {}, read_timeout_seconds=0.5)
        session = next(iter(sessions._sessions.values()))
        for _ in range(3000):  # a bound against a hang, not a timing assertion
            if not session.calls:
                break
            await asyncio.sleep(0.01)
        assert session.calls == {}
        assert (await client.call_tool("shop.count", {"n": 1})).is_error is False


async def test_the_sdk_without_a_credential_is_refused(live) -> None:
    client, http = sdk_client(live.url, None, "legacy")
    async with http:
        with pytest.raises(ExceptionGroup) as refused:
            async with client:
                pass
    # the HTTP 401 of the auth plugin, as the SDK reports it
    assert refused.group_contains(MCPError, match="Server returned an error response", depth=2)
    assert len(live.server.config.app.plugins.get("mcp").sessions) == 0


def test_hostile_http_on_the_wire(live) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        client = RawMcp(http, token=USER)
        auth = {"Authorization": f"Bearer {USER}"}
        headers = {**JSON_HEADERS, **auth}

        malformed = http.post("/mcp", content=b'{"jsonrpc": "2.0", "id": 1, "method"',
                              headers=headers)
        assert malformed.status_code == 400
        assert malformed.json()["error"]["code"] == -32700

        assert raw_status(live, b"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                          + USER.encode() + b"\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100000000\r\n\r\n{}") == 413

        oversized = http.post("/mcp", content=b" " * 70000 + b"{}", headers=headers)
        assert oversized.status_code == 413
        assert oversized.json()["error"]["message"] == \
            "request body is larger than the limit of 65536 bytes"

        wrong_version = http.post("/mcp", json=initialize(), headers={
            **headers, "MCP-Protocol-Version": "1999-01-01"})
        assert wrong_version.status_code == 400
        assert wrong_version.json()["error"]["code"] == -32022

        unknown = http.post("/mcp", json=message("tools/list"), headers={
            **headers, "Mcp-Session-Id": "0" * 43})
        assert unknown.status_code == 404

        client.start()
        assert client.call("ping")["result"] == {}
        result = client.tool("shop.get", {"item_id": 3})
        assert result["structuredContent"]["id"] == 3

        get = http.get("/mcp", headers={**auth, "Accept": "text/event-stream",
                                        "Mcp-Session-Id": client.session or ""})
        assert get.status_code == 405
