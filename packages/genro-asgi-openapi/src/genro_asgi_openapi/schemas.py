"""JSON Schemas for parameters and results, placed under ``components/schemas``.

genro-routes' ``nodes()`` describes a handler's params and result when its app plugged the
``pydantic`` plugin; otherwise the same pydantic machinery is run here on the handler's
signature (the core's binder already holds a TypeAdapter per annotated parameter). Either way
pydantic's ``$defs`` are hoisted into the document's components, renamed on a clash.
"""

from __future__ import annotations

import copy
import inspect
import math
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from genro_asgi import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)

Schema = dict[str, Any]
_DEFS_PREFIX = "#/$defs/"
_COMPONENTS_PREFIX = "#/components/schemas/"
_SIMPLE_DEFAULTS = (str, int, float, bool, type(None))


class Components:
    """The ``components/schemas`` of one document being built."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def place(self, schema: Schema) -> Schema:
        """``schema`` with its ``$defs`` moved here and its references pointed at them."""
        schema = copy.deepcopy(schema)
        defs: dict[str, Schema] = schema.pop("$defs", {}) or {}
        renames: dict[str, str] = {}
        for name, definition in defs.items():
            target = name
            suffix = 2
            # the same name for a different model (two apps each with their own ``Item``)
            while target in self.schemas and self.schemas[target] != _retarget(definition, {}):
                target = f"{name}_{suffix}"
                suffix += 1
            renames[name] = target
        for name, definition in defs.items():
            self.schemas.setdefault(renames[name], _retarget(definition, renames))
        placed: Schema = _retarget(schema, renames)
        return placed


def _retarget(node: Any, renames: dict[str, str]) -> Any:
    """A copy of ``node`` whose ``#/$defs/X`` references point into the components."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_DEFS_PREFIX):
                name = value[len(_DEFS_PREFIX):]
                out[key] = _COMPONENTS_PREFIX + renames.get(name, name)
            else:
                out[key] = _retarget(value, renames)
        return out
    if isinstance(node, list):
        return [_retarget(item, renames) for item in node]
    return node


def without_null(schema: Schema) -> Schema:
    """A query or path value is text: ``null`` cannot be sent, leaving it out means the
    default. Drops the null branch of an ``anyOf``."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) != len(options):
            rest = {key: value for key, value in schema.items() if key != "anyOf"}
            if rest.get("default", 0) is None:
                rest.pop("default")
            return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}
    return schema


# A Decimal as text, as the core accepts it within its default number limits (100 significant
# digits, exponent within 400): pydantic's schema says only "a number or a string"
DECIMAL_TEXT: Schema = {"type": "string",
                        "pattern": r"^[+-]?(\d{1,50}(\.\d{0,50})?|\.\d{1,50})([eE][+-]?\d{1,2})?$"}


def decimal_text(node: Any) -> Any:
    """``node`` with each Decimal's ``anyOf: [number, string]`` given the string's pattern
    (for parameters: what the server accepts, not what it answers)."""
    if isinstance(node, dict):
        out = {key: decimal_text(value) for key, value in node.items()}
        options = out.get("anyOf")
        if isinstance(options, list) and {"type": "number"} in options \
                and {"type": "string"} in options:
            out["anyOf"] = [DECIMAL_TEXT if option == {"type": "string"} else option
                            for option in options]
        return out
    if isinstance(node, list):
        return [decimal_text(item) for item in node]
    return node


def simple_default(value: Any) -> tuple[bool, Any]:
    """(True, value) when a parameter's default can be written in the document as is."""
    if value is inspect.Parameter.empty or not isinstance(value, _SIMPLE_DEFAULTS):
        return False, None
    if isinstance(value, float) and not math.isfinite(value):  # no JSON form
        return False, None
    return True, value


# Response classes a handler may declare as its return type, and what they send
_RESPONSE_TYPES: tuple[tuple[type[Response], str, Schema], ...] = (
    (HTMLResponse, "text/html", {"type": "string"}),
    (PlainTextResponse, "text/plain", {"type": "string"}),
    (JSONResponse, "application/json", {}),
)


def return_annotation(func: Callable[..., Any]) -> Any:
    """The handler's return annotation, resolved; ``Parameter.empty`` when there is none."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable annotations: nothing is known about the result
        hints = {}
    return hints.get("return", inspect.Parameter.empty)


def fixed_content(annotation: Any, media_type: str | None) -> tuple[dict[str, Schema] | None, bool]:
    """The 200 response's content when no schema needs generating, else None; and whether a
    TYTX client gets TYTX (not for a Response or bytes, which go out as they are)."""
    if inspect.isclass(annotation) and issubclass(annotation, Response):
        for kind, media, schema in _RESPONSE_TYPES:
            if issubclass(annotation, kind):
                return {media: {"schema": schema}}, False
        if issubclass(annotation, StreamingResponse) or annotation.media_type is None:
            return {"*/*": {"schema": {}}}, False
        return {annotation.media_type: {"schema": {}}}, False
    if annotation is bytes:
        return {media_type or "application/octet-stream":
                {"schema": {"type": "string", "format": "binary"}}}, False
    if annotation is inspect.Parameter.empty or annotation is Any:
        # any Python value: JSON for most, text for a str, a Response of its own choosing
        return {media_type or "*/*": {"schema": {}}}, True
    if annotation is str:
        return {media_type or "text/plain": {"schema": {"type": "string"}}}, True
    if media_type is not None and not (media_type == "application/json"
                                       or media_type.endswith("+json")):
        return {media_type: {"schema": {}}}, True
    return None, True


class SchemaBatch:
    """Schemas asked for while a document is prepared, generated by pydantic in one pass.

    One ``GenerateJsonSchema`` for the whole document instead of one per value: its setup
    dominates the cost of a small schema, and one pass also names every model once.
    """

    def __init__(self) -> None:
        self._inputs: list[tuple[Any, typing.Literal["validation", "serialization"],
                                 TypeAdapter[Any]]] = []
        self._adapters: dict[Any, TypeAdapter[Any] | None] = {}
        # (annotation, mode) -> the key first asked for it, and the keys that share it: the
        # same ``int`` or ``Decimal | None`` on a hundred routes is generated once
        self._first: dict[tuple[Any, str], Any] = {}
        self._aliases: dict[Any, Any] = {}

    def adapter_for(self, annotation: Any) -> TypeAdapter[Any] | None:
        """A TypeAdapter for a result annotation, one per distinct annotation."""
        try:
            return self._adapters[annotation]
        except KeyError:
            pass
        except TypeError:  # an unhashable annotation: not cached
            return _adapter(annotation)
        adapter = self._adapters[annotation] = _adapter(annotation)
        return adapter

    def ask(self, key: Any, adapter: TypeAdapter[Any],
            mode: typing.Literal["validation", "serialization"]) -> None:
        # an annotation naming a type that cannot be resolved (a forward reference to a
        # local class) describes nothing, and would fail the whole batch: left as anything
        if not getattr(adapter, "pydantic_complete", True):
            return
        annotation = getattr(adapter, "_type", None)  # what the adapter was built for
        try:
            first = self._first.setdefault((annotation, mode), key)
        except TypeError:  # unhashable: generated on its own
            first = key
        if annotation is not None and first != key:
            self._aliases[key] = first
            return
        self._inputs.append((key, mode, adapter))

    def generate(self) -> tuple[dict[Any, Schema], dict[str, Schema]]:
        """Every schema asked for by key, and the model definitions they refer to."""
        if not self._inputs:
            return {}, {}
        try:
            by_key, top = TypeAdapter.json_schemas(self._inputs, ref_template=_COMPONENTS_PREFIX
                                                   + "{model}")
        except Exception:  # one value pydantic cannot describe: ask one by one
            return self._one_by_one()
        schemas = {key: schema for (key, _mode), schema in by_key.items()}
        return self._with_aliases(schemas), top.get("$defs", {})

    def _with_aliases(self, schemas: dict[Any, Schema]) -> dict[Any, Schema]:
        for key, first in self._aliases.items():
            if first in schemas:
                schemas[key] = schemas[first]
        return schemas

    def __len__(self) -> int:
        return len(self._inputs)

    def _one_by_one(self) -> tuple[dict[Any, Schema], dict[str, Schema]]:
        schemas: dict[Any, Schema] = {}
        components = Components()
        for key, mode, adapter in self._inputs:
            try:
                schemas[key] = components.place(adapter.json_schema(mode=mode))
            except Exception:  # an arbitrary class has no JSON Schema: anything
                schemas[key] = {}
        return self._with_aliases(schemas), components.schemas


def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(annotation)
    except Exception:
        return None
