"""Fuzzing the MCP endpoint (genro-asgi-mcp) with Hypothesis, in process.

Properties, for any input: never a 500, every answer with a body is a JSON-RPC message, a
tool call ends as a result or a tool error (never a traceback in it), and the session keeps
working afterwards. Bounded here (``make test``); GENRO_FUZZ_PROFILE=long runs many more
examples, as the fuzz suite in tests/fuzz does.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi.testing import TestClient

EXAMPLES = 2000 if os.environ.get("GENRO_FUZZ_PROFILE") == "long" else 80
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class Kinds(AsgiApplication):
    """One tool per kind of parameter, each answering what it was given."""

    @route(meta_mcp=True)
    def scalars(self, i: int = 0, f: float = 0.0, d: Decimal = Decimal(0), flag: bool = False,
                s: str = "", day: datetime.date | None = None) -> dict[str, Any]:
        return {"i": i, "f": f, "d": d, "flag": flag, "s": s, "day": day}

    @route(meta_mcp=True)
    def lists(self, ids: list[int] | None = None, tags: list[str] | None = None) -> list[Any]:
        return [ids, tags]

    @route(meta_mcp=True)
    def loose(self, **values: Any) -> Any:
        return values

    @route(meta_mcp=True)
    def needs(self, pid: int, when: datetime.datetime) -> str:
        return f"{pid} {when.isoformat()}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)
names = st.sampled_from(["kinds.scalars", "kinds.lists", "kinds.loose", "kinds.needs"]) \
    | st.text(max_size=30)
arguments = st.dictionaries(
    st.sampled_from(["i", "f", "d", "flag", "s", "day", "ids", "tags", "pid", "when"])
    | st.text(max_size=8), json_values, max_size=5)
methods = st.sampled_from(["initialize", "ping", "tools/list", "tools/call", "resources/list",
                           "notifications/initialized", "server/discover"]) | st.text(max_size=20)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    server = AsgiServer(tmp_path_factory.mktemp("fuzz-mcp"), environ={},
                        config={"plugins": {"mcp": {"max_sessions": 10_000}}})
    server.mount("/kinds", Kinds())
    with TestClient(server) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def session(client: TestClient) -> dict[str, str]:
    reply = client.post("/mcp", headers=HEADERS, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "fuzz", "version": "1"}}})
    return {**HEADERS, "Mcp-Session-Id": reply.headers["mcp-session-id"]}


def check(response: httpx.Response) -> Any:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code in (202, 204):
        assert not response.content
        return None
    body = response.json()
    assert body["jsonrpc"] == "2.0" and ("result" in body) != ("error" in body)
    assert "Traceback" not in response.text
    return body


def still_serving(client: TestClient, session: dict[str, str]) -> None:
    reply = client.post("/mcp", headers=session, json={"jsonrpc": "2.0", "id": "p",
                                                        "method": "ping"})
    assert reply.status_code == 200 and reply.json()["result"] == {}


@FUZZ
@given(body=json_values)
def test_any_json_body(client: TestClient, session: dict[str, str], body: Any) -> None:
    check(client.post("/mcp", headers=session, content=json.dumps(body).encode()))
    still_serving(client, session)


@FUZZ
@given(body=st.binary(max_size=200))
def test_any_bytes(client: TestClient, session: dict[str, str], body: bytes) -> None:
    check(client.post("/mcp", headers=session, content=body))


@FUZZ
@given(method=methods, params=json_values, request_id=json_values)
def test_any_message(client: TestClient, session: dict[str, str], method: str, params: Any,
                     request_id: Any) -> None:
    check(client.post("/mcp", headers=session, json={"jsonrpc": "2.0", "id": request_id,
                                                     "method": method, "params": params}))
    still_serving(client, session)


@FUZZ
@given(name=names, args=arguments)
def test_any_tool_call(client: TestClient, session: dict[str, str], name: str,
                       args: dict[str, Any]) -> None:
    body = check(client.post("/mcp", headers=session, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": name, "arguments": args}}))
    assert body is not None
    if "result" in body:
        result = body["result"]
        assert isinstance(result["isError"], bool)
        assert result["content"][0]["type"] == "text"
        if result["isError"]:
            assert result["content"][0]["text"][:3].isdigit() or "within" in \
                result["content"][0]["text"]
    else:
        assert body["error"]["code"] == -32602


@FUZZ
@given(session_id=header_text, version=header_text, origin=header_text)
def test_any_transport_headers(client: TestClient, session: dict[str, str], session_id: str,
                               version: str, origin: str) -> None:
    headers = {**HEADERS, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": version}
    if origin:
        headers["Origin"] = origin
    check(client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1,
                                                     "method": "tools/list"}))
    check(client.delete("/mcp", headers=headers))
    still_serving(client, session)
