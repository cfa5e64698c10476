"""JSON Schemas of tools: their input from the handler's binder, their output from the return
annotation.

The input schema describes exactly what the core binds (genro_asgi.binding.Binder): one
property per parameter, typed by the pydantic adapter the binder coerces with, required when
the parameter has no default, extra properties only for a handler taking ``**kwargs``.

Every schema of a catalog comes from one pydantic generator run (``TypeAdapter.json_schemas``):
setting a generator up costs far more than one simple schema, so a 500-route catalog is built
in one pass, not a thousand. Each tool then carries only the ``$defs`` it refers to.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode
from pydantic_core import PydanticSerializationError, to_jsonable_python

from genro_asgi import Response
from genro_asgi.binding import Binder

REF_TEMPLATE = "#/$defs/{model}"
_REF_PREFIX = "#/$defs/"
_NONE = object()

Schemas = tuple[dict[str, Any], dict[str, Any] | None, bool | None]
"""(input schema, output schema or None, wrap): see ``output_schema``."""


def tool_schemas(handlers: Sequence[tuple[Binder, Callable[..., Any]]]) -> list[Schemas]:
    """The schemas of each (binder, handler), in one generator run when possible.

    Parameters and results with the same annotation (``int``, a model used twice) are
    generated once.
    """
    adapters: dict[Any, TypeAdapter[Any] | None] = {}
    inputs: dict[Any, tuple[Any, JsonSchemaMode, TypeAdapter[Any]]] = {}
    keys: list[tuple[dict[str, Any], Any]] = []  # per handler: param name -> key, output key
    for index, (binder, func) in enumerate(handlers):
        hints = _hints(func)
        params: dict[str, Any] = {}
        for param in binder.params:
            if param.adapter is not None:
                key = _key("in", hints.get(param.name, _NONE), (index, param.name))
                inputs.setdefault(key, (key, "validation", param.adapter))
                params[param.name] = key
        output_key = None
        adapter = _output_adapter(hints.get("return", _NONE), adapters)
        if adapter is not None:
            output_key = _key("out", hints.get("return"), (index, None))
            inputs.setdefault(output_key, (output_key, "serialization", adapter))
        keys.append((params, output_key))
    try:
        generated, defs = TypeAdapter.json_schemas(list(inputs.values()),
                                                   ref_template=REF_TEMPLATE)
    except Exception:  # a type without a JSON Schema: each handler on its own, to find it
        if len(handlers) == 1:
            raise
        return [_alone(binder, func) for binder, func in handlers]
    definitions = defs.get("$defs", {})
    schemas: dict[Any, dict[str, Any]] = {key: value for (key, _), value in generated.items()}
    return [_assemble(binder, params, output_key, schemas, definitions)
            for (binder, _), (params, output_key) in zip(handlers, keys, strict=True)]


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable forward references: the binder does not coerce either
        return {}


def _key(kind: str, annotation: Any, unique: Any) -> Any:
    """What identifies a schema: the annotation when it is hashable, else its place."""
    if annotation is _NONE:
        return (kind, unique)
    try:
        hash(annotation)
    except TypeError:
        return (kind, unique)
    return (kind, "annotation", annotation)


def _alone(binder: Binder, func: Callable[..., Any]) -> Schemas:
    try:
        return tool_schemas([(binder, func)])[0]
    except Exception:
        return tool_schemas([(binder, _untyped)])[0]


def _untyped() -> Any: ...


def _output_adapter(annotation: Any,
                    adapters: dict[Any, TypeAdapter[Any] | None]) -> TypeAdapter[Any] | None:
    """The adapter of a return annotation, or None when there is no usable one."""
    if annotation is _NONE or annotation is Any or (
            isinstance(annotation, type) and issubclass(annotation, Response)):
        return None
    try:
        known = adapters.get(annotation, _NONE)
    except TypeError:  # an unhashable annotation: not shared
        known = _NONE
    if known is not _NONE:
        return known  # type: ignore[return-value]
    try:
        adapter: TypeAdapter[Any] | None = TypeAdapter(annotation)
    except Exception:  # not a type pydantic can describe
        adapter = None
    with contextlib.suppress(TypeError):  # an unhashable annotation is not shared
        adapters[annotation] = adapter
    return adapter


def _assemble(binder: Binder, params: dict[str, Any], output_key: Any,
              schemas: dict[Any, dict[str, Any]], definitions: dict[str, Any]) -> Schemas:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in binder.params:
        if param.upload is not None:
            continue  # an optional file: a tool cannot send one (see tools.uploads)
        if param.adapter is not None:
            schema = dict(schemas[params[param.name]])
        else:
            schema = {"type": "string"} if param.expects_str else {}
        if param.required:
            required.append(param.name)
        else:
            default = _json_default(param.default)
            if default is not _NONE:
                schema["default"] = default
        properties[param.name] = schema
    inputs: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        inputs["required"] = required
    inputs["additionalProperties"] = binder.accepts_kwargs
    _attach_definitions(inputs, definitions)
    if output_key is None:
        return inputs, None, None
    output = dict(schemas[output_key])
    ref = output.get("$ref")
    if len(output) == 1 and isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        # a model: its definition is the schema (the batch put it under $defs)
        output = dict(definitions.get(ref[len(_REF_PREFIX):], output))
    if output.get("type") == "object":
        wrap = False
    else:  # MCP's structured content is an object: anything else goes in {"result": ...}
        output = {"type": "object", "properties": {"result": output}, "required": ["result"]}
        wrap = True
    _attach_definitions(output, definitions)
    return inputs, output, wrap


def _attach_definitions(schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    """Give ``schema`` the ``$defs`` it refers to, directly or through other definitions."""
    needed: dict[str, Any] = {}
    pending = list(_refs(schema))
    while pending:
        name = pending.pop()
        if name in needed or name not in definitions:
            continue
        needed[name] = definitions[name]
        pending.extend(_refs(definitions[name]))
    if needed:
        schema["$defs"] = dict(sorted(needed.items()))


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            yield ref[len(_REF_PREFIX):]
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _json_default(value: Any) -> Any:
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        return _NONE
