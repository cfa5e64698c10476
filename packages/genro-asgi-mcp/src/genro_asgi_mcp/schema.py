"""JSON Schemas of a tool: its input from the handler's binder, its output from the return
annotation.

The input schema describes exactly what the core binds (genro_asgi.binding.Binder): one
property per parameter, typed by the pydantic adapter the binder coerces with, required when
the parameter has no default, extra properties only for a handler taking ``**kwargs``. Model
definitions shared by several parameters are gathered under one ``$defs``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter
from pydantic.errors import PydanticUserError
from pydantic.json_schema import JsonSchemaMode
from pydantic_core import PydanticSerializationError, to_jsonable_python

from genro_asgi import Response
from genro_asgi.binding import Binder

REF_TEMPLATE = "#/$defs/{model}"
_NO_SCHEMA = object()


def input_schema(binder: Binder) -> dict[str, Any]:
    """The ``inputSchema`` of a tool whose handler has this binder."""
    mode: JsonSchemaMode = "validation"
    typed = [(param.name, mode, param.adapter) for param in binder.params
             if param.adapter is not None]
    schemas: dict[Any, Any] = {}
    definitions: dict[str, Any] = {}
    if typed:
        schemas, defs = TypeAdapter.json_schemas(typed, ref_template=REF_TEMPLATE)
        definitions = defs.get("$defs", {})
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in binder.params:
        if param.adapter is not None:
            schema = dict(schemas[(param.name, "validation")])
        else:
            schema = {"type": "string"} if param.expects_str else {}
        if param.required:
            required.append(param.name)
        else:
            default = _json_default(param.default)
            if default is not _NO_SCHEMA:
                schema["default"] = default
        properties[param.name] = schema
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    result["additionalProperties"] = binder.accepts_kwargs
    if definitions:
        result["$defs"] = definitions
    return result


def _json_default(value: Any) -> Any:
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        return _NO_SCHEMA


def output_schema(func: Callable[..., Any]) -> tuple[dict[str, Any] | None, bool | None]:
    """The ``outputSchema`` of a handler and whether its result is wrapped as ``{"result": x}``.

    MCP wants structured content to be an object: a result typed as an object (a model, a
    dict, a TypedDict) is sent as it is; any other typed result is wrapped. Without a usable
    annotation there is no schema, and the wrapping is decided per result (None).
    """
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable forward references: no schema
        return None, None
    annotation = hints.get("return", _NO_SCHEMA)
    if annotation is _NO_SCHEMA or annotation is Any:
        return None, None
    if isinstance(annotation, type) and issubclass(annotation, Response):
        return None, None
    try:
        schema = TypeAdapter(annotation).json_schema(mode="serialization",
                                                     ref_template=REF_TEMPLATE)
    except (PydanticUserError, TypeError, ValueError):
        return None, None
    if schema.get("type") == "object":
        return schema, False
    definitions = schema.pop("$defs", None)
    wrapped: dict[str, Any] = {"type": "object", "properties": {"result": schema},
                               "required": ["result"]}
    if definitions:
        wrapped["$defs"] = definitions
    return wrapped, True
