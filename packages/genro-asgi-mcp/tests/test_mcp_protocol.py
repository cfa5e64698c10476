"""The MCP methods and tool calls, in process: initialize, ping, tools/list, tools/call, the
results and the tool errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp_helpers import ADMIN, USER, RawMcp, Shop, auth_config, message

from genro_asgi import AsgiApplication, PluginError, route


@pytest.fixture
def mcp(make_server, make_client) -> Any:
    def factory(token: str | None = USER, auth: dict[str, Any] | None = None,
                **options: Any) -> RawMcp:
        server = make_server({"plugins": {"auth": auth or auth_config(), "mcp": options}})
        server.mount("/shop", Shop())
        client = RawMcp(make_client(server), token=token)
        client.start()
        return client

    return factory


def names(reply: dict[str, Any]) -> list[str]:
    return sorted(tool["name"] for tool in reply["result"]["tools"])


def text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


def test_initialize_negotiates_and_announces_tools(make_server, make_client) -> None:
    server = make_server({"plugins": {"mcp": {"name": "shop", "version": "9.1",
                                              "instructions": "Use shop.get."}}})
    server.mount("/shop", Shop())
    client = RawMcp(make_client(server))
    result = client.start()
    assert result == {"protocolVersion": "2025-11-25",
                      "capabilities": {"tools": {"listChanged": False}},
                      "serverInfo": {"name": "shop", "version": "9.1"},
                      "instructions": "Use shop.get."}
    older = RawMcp(client.http)
    assert older.start("2025-06-18")["protocolVersion"] == "2025-06-18"
    # a version this server does not speak: it answers with its newest, the client decides
    newer = RawMcp(client.http)
    assert newer.start("2099-01-01")["protocolVersion"] == "2025-11-25"
    assert client.call("ping") == {"jsonrpc": "2.0", "id": 1, "result": {}}


def test_tools_list_shows_what_the_identity_may_call(mcp) -> None:
    expected = ["shop.as_response", "shop.big", "shop.boom", "shop.count", "shop.echo", "shop.get",
                "shop.missing", "shop.nan", "shop.stall", "shop.whoami"]
    assert names(mcp(token=USER).call("tools/list")) == expected
    assert names(mcp(token=None).call("tools/list")) == expected
    assert names(mcp(token=ADMIN).call("tools/list")) == sorted([*expected, "restock"])


def test_tool_definitions(mcp) -> None:
    tools = {tool["name"]: tool for tool in mcp(token=ADMIN).call("tools/list")["result"]["tools"]}
    get = tools["shop.get"]
    assert get["description"] == "Get an item by id."
    assert get["inputSchema"] == {
        "type": "object",
        "properties": {"item_id": {"type": "integer"},
                       "day": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}],
                               "default": None}},
        "required": ["item_id"], "additionalProperties": False}
    assert get["outputSchema"]["type"] == "object"
    assert get["outputSchema"]["required"] == ["id", "price"]
    assert "annotations" not in get  # GET and POST: nothing to say
    count = tools["shop.count"]
    assert count["annotations"] == {"readOnlyHint": True}  # GET only
    assert count["outputSchema"] == {"type": "object", "required": ["result"], "properties": {
        "result": {"type": "array", "items": {"type": "integer"}}}}
    assert tools["restock"]["title"] == "Restock"
    assert tools["shop.echo"]["inputSchema"]["additionalProperties"] is True
    assert "outputSchema" not in tools["shop.echo"]  # -> Any
    assert tools["shop.whoami"]["inputSchema"]["properties"] == {}  # the Request is not an input


def test_call_with_typed_arguments(mcp) -> None:
    client = mcp()
    result = client.tool("shop.get", {"item_id": 7, "day": "2025-01-02"})
    assert result["isError"] is False
    assert result["structuredContent"] == {"id": 7, "price": "1.50", "day": "2025-01-02"}
    assert json.loads(text(result)) == result["structuredContent"]
    # strings are coerced exactly as an HTTP query string would be
    assert client.tool("shop.get", {"item_id": "8"})["structuredContent"]["id"] == 8
    assert client.tool("shop.count", {"n": 2})["structuredContent"] == {"result": [0, 1]}
    assert client.tool("shop.count")["structuredContent"] == {"result": [0, 1, 2]}
    assert client.tool("shop.echo", {"a": 1})["structuredContent"] == {"a": 1}
    assert client.tool("shop.echo", {})["structuredContent"] == {}
    assert client.call("tools/call", {"name": "shop.count"})["result"][
        "structuredContent"] == {"result": [0, 1, 2]}  # no arguments at all
    with_meta = client.call("tools/call", {"name": "shop.count", "arguments": {"n": 1},
                                           "_meta": {"progressToken": "t1"}})
    assert with_meta["result"]["structuredContent"] == {"result": [0]}
    assert client.tool("shop.as_response")["structuredContent"] == {"ok": True}


def test_bad_arguments_are_tool_errors(mcp) -> None:
    client = mcp()
    result = client.tool("shop.get", {"item_id": "seven"})
    assert result["isError"] is True
    assert text(result).startswith("400 Bad Request: parameter 'item_id': Input should be a "
                                   "valid integer")
    assert "structuredContent" not in result
    assert text(client.tool("shop.get", {})) == \
        "400 Bad Request: missing required parameter 'item_id'"
    assert text(client.tool("shop.get", {"item_id": 1, "colour": "red"})).startswith(
        "400 Bad Request: unexpected parameter 'colour'")
    # a float that would become a 309-digit integer: held to the server's number limits
    huge = client.tool("shop.get", {"item_id": 1e308})
    assert huge["isError"] is True and text(huge).startswith("400 Bad Request: parameter "
                                                             "'item_id'")


def test_the_route_rule_applies_as_over_http(mcp) -> None:
    refused = mcp(token=USER).tool("restock", {"pid": "p1", "quantity": 2})
    assert refused["isError"] is True
    assert text(refused) == "403 Forbidden: /shop/restock requires 'admin'"
    anonymous = mcp(token=None).tool("restock", {"pid": "p1", "quantity": 2})
    assert text(anonymous) == "401 Unauthorized: restock needs an authenticated caller"
    # refused before the arguments are looked at, as the core does for HTTP
    assert mcp(token=USER).tool("restock", {"quantity": "many"})["isError"] is True
    assert text(mcp(token=USER).tool("restock", {"quantity": "many"})).startswith("403")
    granted = mcp(token=ADMIN).tool("restock", {"pid": "p1", "quantity": 2})
    assert granted["structuredContent"] == {"pid": "p1", "quantity": 2}


def test_handler_failures_never_carry_a_traceback(make_server, make_client, caplog) -> None:
    server = make_server({"plugins": {"errors": {"show_traceback": True}, "mcp": {}}})
    server.mount("/shop", Shop())
    client = RawMcp(make_client(server))
    client.start()
    result = client.tool("shop.boom")
    assert result["isError"] is True
    error_id = text(result).removeprefix("500 Internal Server Error (error_id ").rstrip(")")
    assert len(error_id) == 8
    assert "secret" not in json.dumps(result) and "Traceback" not in json.dumps(result)
    logged = [record for record in caplog.records if error_id in record.getMessage()]
    assert "POST /shop/boom -> 500 RuntimeError: secret internals" in logged[0].getMessage()
    assert logged[0].exc_info is not None  # the traceback is in the server's log only
    assert text(client.tool("shop.missing", {"pid": "p9"})) == "404 Not Found: no product p9"
    nan = client.tool("shop.nan")
    assert nan["isError"] is True and "JSON cannot carry" in text(nan)


def test_the_handler_gets_a_request_for_the_call(mcp) -> None:
    assert mcp(token=USER).tool("shop.whoami")["structuredContent"] == {
        "path": "/shop/whoami", "id": "usr"}
    assert mcp(token=None).tool("shop.whoami")["structuredContent"] == {
        "path": "/shop/whoami", "id": None}


def test_result_size_and_call_time_are_bounded(mcp) -> None:
    client = mcp(max_result_size=1000, call_timeout=0.05)
    assert client.tool("shop.big", {"size": 900})["isError"] is False
    too_big = client.tool("shop.big", {"size": 2000})
    assert too_big["isError"] is True
    assert text(too_big) == "shop.big: the result of 2002 bytes is over the limit of 1000 bytes"
    stalled = client.tool("shop.stall")  # waits forever: cancelled at call_timeout
    assert stalled == {"content": [{"type": "text", "text": "shop.stall: no result within "
                                    "0.05 s"}], "isError": True}


def test_protocol_errors(mcp) -> None:
    client = mcp()
    unknown = client.call("tools/call", {"name": "nope", "arguments": {}})
    assert unknown["error"] == {"code": -32602, "message": "unknown tool: 'nope'"}
    assert client.call("tools/call", {"arguments": {}})["error"]["code"] == -32602
    assert client.call("tools/call", {"name": "shop.get", "arguments": [1]})["error"][
        "code"] == -32602
    assert client.call("tools/list", {"cursor": "abc"})["error"]["code"] == -32602
    assert client.call("resources/list")["error"] == {
        "code": -32601, "message": "method not found: 'resources/list'"}
    assert len(client.call("x" * 500)["error"]["message"]) < 150  # the echo is bounded
    bad_init = client.post(message("initialize", {"protocolVersion": 1}))
    assert bad_init.status_code == 200 and bad_init.json()["error"]["code"] == -32602


def test_structured_content_only_from_2025_06_18(make_server, make_client) -> None:
    server = make_server({"plugins": {"mcp": {}}})
    server.mount("/shop", Shop())
    client = RawMcp(make_client(server))
    client.start("2025-03-26")
    result = client.tool("shop.count", {"n": 1})
    assert result == {"content": [{"type": "text", "text": "[0]"}], "isError": False}
    tools = {tool["name"]: tool for tool in client.call("tools/list")["result"]["tools"]}
    assert "outputSchema" not in tools["shop.count"]
    assert "inputSchema" in tools["shop.count"]


def test_tools_from_config_patterns(make_server, make_client) -> None:
    class Plain(AsgiApplication):
        @route()
        def one(self) -> int:
            return 1

        @route()
        def two(self) -> int:
            return 2

    server = make_server({"plugins": {"mcp": {"tools": ["/plain/t*", "/plain/one"]}}})
    server.mount("/plain", Plain())
    client = RawMcp(make_client(server))
    client.start()
    assert names(client.call("tools/list")) == ["plain.one", "plain.two"]
    assert client.tool("plain.two")["structuredContent"] == {"result": 2}


def test_apps_mounted_later_join_the_catalog(make_server, make_client) -> None:
    server = make_server({"plugins": {"mcp": {}}})
    client = RawMcp(make_client(server))
    client.start()
    assert names(client.call("tools/list")) == []
    server.mount("/shop", Shop())
    assert "shop.get" in names(client.call("tools/list"))


def test_a_pattern_matching_nothing_stops_the_server(make_server, make_client) -> None:
    server = make_server({"plugins": {"mcp": {"tools": ["/nowhere/*"]}}})
    with pytest.raises(RuntimeError, match=r"'/nowhere/\*' matches no route"):
        make_client(server)


def test_two_routes_with_one_tool_name_stop_the_server(make_server, make_client) -> None:
    class Twins(AsgiApplication):
        @route(meta_mcp={"name": "same"})
        def a(self) -> int:
            return 1

        @route(meta_mcp={"name": "same"})
        def b(self) -> int:
            return 2

    server = make_server({"plugins": {"mcp": {}}})
    server.mount("/twins", Twins())
    with pytest.raises(RuntimeError, match="routes /twins/a and /twins/b are both the tool"):
        make_client(server)


def test_invalid_options_name_the_key(make_server) -> None:
    with pytest.raises(PluginError, match=r"plugins\.mcp\.path"):
        make_server({"plugins": {"mcp": {"path": "mcp"}}})
    with pytest.raises(PluginError, match=r"plugins\.mcp\.tools"):
        make_server({"plugins": {"mcp": {"tools": ["shop/get"]}}})
    with pytest.raises(PluginError, match=r"plugins\.mcp\.max_sessions"):
        make_server({"plugins": {"mcp": {"max_sessions": 0}}})
    with pytest.raises(PluginError, match=r"plugins\.mcp\.colour"):
        make_server({"plugins": {"mcp": {"colour": "red"}}})
