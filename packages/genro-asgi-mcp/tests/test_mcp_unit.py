"""Schemas, tool names and the session store, without a server."""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import BaseModel

from genro_asgi import Identity, Request, Response
from genro_asgi.binding import Binder
from genro_asgi_mcp.schema import tool_schemas
from genro_asgi_mcp.sessions import SessionStore
from genro_asgi_mcp.tools import tool_name


class Point(BaseModel):
    x: int
    y: int


class Segment(BaseModel):
    start: Point
    end: Point


def input_schema(binder: Binder) -> dict[str, Any]:
    return tool_schemas([(binder, binder_only)])[0][0]


def binder_only() -> Any: ...


def output_schema(func: Any) -> tuple[dict[str, Any] | None, bool | None]:
    _, output, wrap = tool_schemas([(Binder(func), func)])[0]
    return output, wrap


def test_input_schema_gathers_model_definitions() -> None:
    def draw(segment: Segment, origin: Point, label, request: Request,
             colour: str = "red", when: datetime.date = datetime.date(2025, 1, 2),
             opaque: object = object()) -> None: ...

    schema = input_schema(Binder(draw))
    assert schema["required"] == ["segment", "origin", "label"]
    assert schema["properties"]["segment"] == {"$ref": "#/$defs/Segment"}
    assert schema["properties"]["origin"] == {"$ref": "#/$defs/Point"}
    assert sorted(schema["$defs"]) == ["Point", "Segment"]
    assert schema["$defs"]["Segment"]["properties"]["start"] == {"$ref": "#/$defs/Point"}
    assert schema["properties"]["label"] == {}  # unannotated: anything
    assert schema["properties"]["colour"] == {"type": "string", "default": "red"}
    assert schema["properties"]["when"]["default"] == "2025-01-02"
    assert "default" not in schema["properties"]["opaque"]  # not JSON: no default shown
    assert schema["additionalProperties"] is False


def test_input_schema_of_a_handler_without_parameters() -> None:
    def nothing() -> None: ...

    def anything(**values: Any) -> None: ...

    assert input_schema(Binder(nothing)) == {"type": "object", "properties": {},
                                             "additionalProperties": False}
    assert input_schema(Binder(anything))["additionalProperties"] is True


def test_output_schema_wraps_what_is_not_an_object() -> None:
    def model() -> Segment: ...

    def mapping() -> dict[str, int]: ...

    def number() -> int: ...

    def maybe() -> Point | None: ...

    def unknown(): ...

    def response() -> Response: ...

    def dangling() -> "Nowhere": ...  # type: ignore[name-defined]  # noqa: F821, UP037

    schema, wrap = output_schema(model)
    assert wrap is False and schema is not None and schema["title"] == "Segment"
    assert output_schema(mapping) == ({"type": "object", "additionalProperties":
                                       {"type": "integer"}}, False)
    assert output_schema(number) == ({"type": "object", "properties": {
        "result": {"type": "integer"}}, "required": ["result"]}, True)
    schema, wrap = output_schema(maybe)
    assert wrap is True and schema is not None and "Point" in schema["$defs"]
    for func in (unknown, response, dangling):
        assert output_schema(func) == (None, None)


def test_tool_names() -> None:
    assert tool_name("/shop/products") == "shop.products"
    assert tool_name("/my shop/ünïcode") == "my_shop._n_code"
    assert len(tool_name("/" + "a" * 300)) == 128


def test_session_store_limits_and_owners() -> None:
    now = [0.0]
    store = SessionStore(max_sessions=2, idle_timeout=10, clock=lambda: now[0])
    alice = Identity.of("alice", ["user"], backend="bearer")
    first = store.open("2025-11-25", alice, "client")
    second = store.open("2025-11-25", None, "x" * 1000)
    assert first is not None and second is not None
    assert len(second.client_name) == 200
    assert store.open("2025-11-25", None, "c") is None  # full
    assert store.get(first.id, alice) is first
    assert store.get(first.id, Identity.of("alice", ["user"], backend="basic")) is None
    assert store.get(first.id, None) is None
    assert store.get(second.id, None) is second
    now[0] = 10.5  # first was used at 0, second at 0: both idle past 10 s
    assert store.get(first.id, alice) is None
    assert len(store) == 0
    third = store.open("2025-11-25", None, "c")
    assert third is not None and store.close(third.id, None) and not store.close(third.id, None)
