"""The Streamable HTTP transport, in process: sessions, headers, limits and hostile input."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from mcp_helpers import ADMIN, JSON_HEADERS, USER, RawMcp, Shop, auth_config, initialize, message

from genro_asgi import AsgiServer
from genro_asgi.testing import AsyncTestClient, TestClient


@pytest.fixture
def server(make_server) -> AsgiServer:
    built: AsgiServer = make_server({"plugins": {"auth": auth_config(), "mcp": {
        "max_body_size": 4096, "max_sessions": 3, "allowed_origins": ["https://app.example"]}}})
    built.mount("/shop", Shop())
    return built


@pytest.fixture
def http(server, make_client) -> Any:
    return make_client(server)


def rpc_error(response: Any, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


def test_a_session_from_initialize_to_delete(http) -> None:
    client = RawMcp(http, token=USER)
    client.start()
    assert len(client.session or "") >= 32
    assert client.call("ping")["result"] == {}
    deleted = http.delete("/mcp", headers={"Mcp-Session-Id": client.session,
                                           "Authorization": f"Bearer {USER}"})
    assert deleted.status_code == 204
    assert rpc_error(client.post(message("ping")), 404, -32600) == \
        "unknown or expired session: initialize a new one"
    again = http.delete("/mcp", headers={"Mcp-Session-Id": client.session,
                                         "Authorization": f"Bearer {USER}"})
    assert rpc_error(again, 404, -32600) == "unknown or expired session"
    assert rpc_error(http.delete("/mcp"), 400, -32600) == "missing Mcp-Session-Id header"


def test_requests_need_a_session(http) -> None:
    client = RawMcp(http)
    assert rpc_error(client.post(message("tools/list")), 400, -32600).startswith(
        "missing Mcp-Session-Id header")
    assert rpc_error(client.post(message("tools/list"), **{"Mcp-Session-Id": "forged"}), 404,
                     -32600).startswith("unknown or expired session")
    assert rpc_error(client.post(message("ping"), **{"Mcp-Session-Id": "x" * 5000}), 404,
                     -32600).startswith("unknown or expired session")


def test_a_session_belongs_to_the_identity_that_opened_it(http) -> None:
    user = RawMcp(http, token=USER)
    user.start()
    thief = RawMcp(http, token=ADMIN)
    thief.session, thief.version = user.session, user.version
    assert rpc_error(thief.post(message("tools/list")), 404, -32600).startswith("unknown")
    anonymous = RawMcp(http)
    anonymous.session, anonymous.version = user.session, user.version
    assert rpc_error(anonymous.post(message("tools/list")), 404, -32600).startswith("unknown")
    assert user.call("ping")["result"] == {}  # still the owner's


def test_sessions_are_bounded_in_count(http) -> None:
    clients = [RawMcp(http) for _ in range(3)]
    for client in clients:
        client.start()
    refused = RawMcp(http).post(initialize())
    assert rpc_error(refused, 503, -32600) == "too many MCP sessions are open; try again later"
    assert refused.headers["retry-after"] == "5"
    http.delete("/mcp", headers={"Mcp-Session-Id": clients[0].session})
    RawMcp(http).start()  # a place freed by the DELETE


def test_sessions_expire_when_idle(server, http) -> None:
    now = [1000.0]
    sessions = server.plugins.get("mcp").sessions
    sessions.clock = lambda: now[0]
    first, second = RawMcp(http), RawMcp(http)
    first.start()
    second.start()
    now[0] += 599
    assert first.call("ping")["result"] == {}  # used: its idle time starts again
    now[0] += 2  # second idle for 601 s, over the default 600
    assert rpc_error(second.post(message("ping")), 404, -32600).startswith("unknown or expired")
    assert first.call("ping")["result"] == {}
    assert len(sessions) == 1


def test_protocol_version_header(http) -> None:
    client = RawMcp(http)
    # the official SDK's probe of a newer, initialize-less protocol: refused so that it falls
    # back to initialize
    probe = client.post(message("server/discover"), **{"MCP-Protocol-Version": "2026-07-28"})
    assert rpc_error(probe, 400, -32022) == "unsupported MCP-Protocol-Version '2026-07-28'"
    assert probe.json()["error"]["data"] == {
        "supported": ["2025-03-26", "2025-06-18", "2025-11-25"], "requested": "2026-07-28"}
    client.start()
    assert rpc_error(client.post(message("ping"), **{"MCP-Protocol-Version": "bogus"}), 400,
                     -32022).startswith("unsupported MCP-Protocol-Version")
    assert rpc_error(client.post(message("ping"), **{"MCP-Protocol-Version": "2025-06-18"}),
                     400, -32600) == \
        "MCP-Protocol-Version 2025-06-18 is not the session's 2025-11-25"
    # absent: the session's version
    headers = {**JSON_HEADERS, "Mcp-Session-Id": client.session}
    assert http.post("/mcp", json=message("ping"), headers=headers).json()["result"] == {}


@pytest.mark.parametrize(("body", "status", "code", "text"), [
    (b"{not json", 400, -32700, "malformed JSON body"),
    (b'{"a": 1', 400, -32700, "malformed JSON body"),
    (b"\xff\xfe", 400, -32700, "malformed JSON body"),
    (b"[" * 2000 + b"]" * 2000, 400, -32700, "nested too deeply"),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","x":' + b"9" * 200 + b"}", 400, -32700,
     "integer longer than"),
    (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', 400, -32600, "batches are not supported"),
    (b'"ping"', 400, -32600, "one JSON-RPC message"),
    (b"null", 400, -32600, "one JSON-RPC message"),
    (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', 400, -32600, "must be \"2.0\""),
    (b'{"id":1,"method":"ping"}', 400, -32600, "must be \"2.0\""),
    (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', 400, -32600, "id must be"),
    (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', 400, -32600, "id must be"),
    (b'{"jsonrpc":"2.0","id":"' + b"i" * 300 + b'","method":"ping"}', 400, -32600, "id must be"),
    (b'{"jsonrpc":"2.0","id":1,"method":7}', 400, -32600, "method must be a string"),
    (b'{"jsonrpc":"2.0","id":1}', 400, -32600, "needs a method"),
    (b'{"jsonrpc":"2.0","method":"initialize"}', 400, -32600, "initialize must be a request"),
    (b'{"jsonrpc":"2.0","method":"notifications/x","params":[1]}', 400, -32600,
     "params must be an object"),
])
def test_malformed_messages(http, body: bytes, status: int, code: int, text: str) -> None:
    response = http.post("/mcp", content=body, headers=JSON_HEADERS)
    assert text in rpc_error(response, status, code)


def test_params_that_are_not_an_object_are_answered_for_the_id(http) -> None:
    client = RawMcp(http)
    client.start()
    reply = client.post({"jsonrpc": "2.0", "id": "a", "method": "tools/list", "params": [1]})
    assert reply.status_code == 200
    assert reply.json() == {"jsonrpc": "2.0", "id": "a",
                            "error": {"code": -32602, "message": "params must be an object"}}


def test_body_size_is_bounded(http) -> None:
    client = RawMcp(http)
    client.start()
    big = client.post(message("tools/call", {"name": "shop.echo",
                                             "arguments": {"pad": "x" * 5000}}))
    assert rpc_error(big, 413, -32600) == "request body is larger than the limit of 4096 bytes"
    assert client.tool("shop.echo", {"pad": "x" * 3000})["isError"] is False


def test_content_negotiation(http) -> None:
    body = initialize()
    assert rpc_error(http.post("/mcp", json=body, headers={"Accept": "text/html"}), 406,
                     -32600) == "Accept must include application/json"
    assert rpc_error(http.post("/mcp", content=b"{}", headers={
        "Content-Type": "text/plain"}), 415, -32600) == "Content-Type must be application/json"
    assert http.post("/mcp", json=body, headers={"Accept": "*/*"}).status_code == 200
    assert http.post("/mcp", json=body).status_code == 200  # no Accept at all


def test_repeated_transport_headers_are_refused(http) -> None:
    client = RawMcp(http)
    client.start()
    headers = [*JSON_HEADERS.items(), ("Mcp-Session-Id", client.session or ""),
               ("Mcp-Session-Id", "another")]
    response = http.post("/mcp", json=message("ping"), headers=headers)
    assert rpc_error(response, 400, -32600).endswith("is sent more than once")


def test_origins(http) -> None:
    evil = http.post("/mcp", json=initialize(), headers={**JSON_HEADERS,
                                                         "Origin": "http://evil.example"})
    assert rpc_error(evil, 403, -32600) == "origin 'http://evil.example' is not allowed"
    allowed = http.post("/mcp", json=initialize(), headers={**JSON_HEADERS,
                                                            "Origin": "https://app.example"})
    assert allowed.status_code == 200


def test_notifications_and_responses_are_accepted(http) -> None:
    client = RawMcp(http)
    client.start()
    for body in (message("notifications/cancelled", {"requestId": 1}, id=None),
                 message("notifications/whatever", id=None),
                 {"jsonrpc": "2.0", "id": 5, "result": {}},
                 {"jsonrpc": "2.0", "id": 5, "error": {"code": 1, "message": "no"}}):
        response = client.post(body)
        assert response.status_code == 202 and response.content == b""


def test_other_http_methods_and_paths(http) -> None:
    get = http.get("/mcp", headers={"Accept": "text/event-stream"})
    assert get.status_code == 405
    assert get.headers["allow"] == "DELETE, POST"
    assert http.put("/mcp", json={}).status_code == 405
    admin = {"Authorization": f"Bearer {ADMIN}"}  # /mcp is public, /mcp/extra is not
    assert http.post("/mcp/extra", json=initialize(), headers=admin).status_code == 404
    assert http.post("/mcp?x=1", json=initialize()).status_code == 400


def test_the_endpoint_needs_a_credential_unless_public(make_server, make_client) -> None:
    server = make_server({"plugins": {"auth": auth_config(public=False), "mcp": {}}})
    server.mount("/shop", Shop())
    http = make_client(server)
    refused = http.post("/mcp", json=initialize(), headers=JSON_HEADERS)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="genro-asgi"'
    RawMcp(http, token=USER).start()


def test_two_servers_do_not_share_sessions_or_tools(make_server, make_client, tmp_path) -> None:
    first = make_server({"plugins": {"mcp": {}}})
    first.mount("/shop", Shop())
    second = AsgiServer(tmp_path, config={"plugins": {"mcp": {"max_sessions": 1}}}, environ={})
    one, two = RawMcp(make_client(first)), RawMcp(make_client(second))
    one.start()
    two.start()
    assert two.call("tools/list")["result"]["tools"] == []
    two.session = one.session
    assert two.post(message("ping")).status_code == 404
    assert first.plugins.get("mcp").sessions is not second.plugins.get("mcp").sessions


def test_a_dropped_server_leaves_nothing_behind(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"mcp": {}}}, environ={})
    server.mount("/shop", Shop())
    with TestClient(server) as http:
        client = RawMcp(http)
        client.start()
        assert client.tool("shop.count", {"n": 1})["isError"] is False
    dropped = weakref.ref(server)
    plugin = weakref.ref(server.plugins.get("mcp"))
    del server, http, client
    gc.collect()
    assert dropped() is None and plugin() is None


async def test_calls_in_flight_are_bounded_and_cancellable(make_server) -> None:
    server = make_server({"plugins": {"mcp": {"max_calls_per_session": 2}}})
    server.mount("/shop", Shop())
    async with AsyncTestClient(server) as http:
        opened = await http.post("/mcp", json=initialize(), headers=JSON_HEADERS)
        headers = {**JSON_HEADERS, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
        session = server.plugins.get("mcp").sessions.get(opened.headers["mcp-session-id"], None)

        async def stall(request_id: str) -> Any:
            return await http.post("/mcp", headers=headers, json=message(
                "tools/call", {"name": "shop.stall"}, id=request_id))

        async def in_flight(count: int) -> None:
            for _ in range(3000):  # a bound against a hang, not a timing assertion
                if len(session.calls) == count:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"{len(session.calls)} calls in flight, not {count}")

        first = asyncio.create_task(stall("s1"))
        await in_flight(1)
        duplicate = await stall("s1")
        assert duplicate.json()["error"]["message"] == \
            "a call with the id 's1' is already in flight in this session"
        second = asyncio.create_task(stall("s2"))
        await in_flight(2)
        third = await stall("s3")
        assert third.json() == {"jsonrpc": "2.0", "id": "s3", "error": {
            "code": -32600, "message": "2 calls of this session are in flight: wait for one "
                                       "to end"}}

        cancelled = await http.post("/mcp", headers=headers, json=message(
            "notifications/cancelled", {"requestId": "s1", "reason": "user"}, id=None))
        assert cancelled.status_code == 202
        assert (await first).json() == {"jsonrpc": "2.0", "id": "s1", "error": {
            "code": -32600, "message": "the call was cancelled by the client"}}
        await in_flight(1)

        # ending the session cancels what it still runs
        assert (await http.delete("/mcp", headers=headers)).status_code == 204
        assert (await second).json()["error"]["message"] == \
            "the call was cancelled by the client"
