"""Handler parameters: bound from path segments, query string and body, coerced to annotations.

The binder for each handler is built once, when the route table compiles. Coercion uses a
pydantic TypeAdapter per annotated parameter in lax mode ("42" -> 42, "2025-01-02" -> date);
a plain ``str`` or unannotated parameter costs nothing. Every number is held to the server's
NumberLimits before and after coercion (see numbers.py): a 400 naming the parameter, never a
conversion that runs for minutes on the event loop.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .exceptions import BadRequest, NotFound
from .numbers import DEFAULT_LIMITS, NumberLimits, NumberOutOfRange
from .request import MultipartValues, Request
from .uploads import UploadFile

_MULTI_ORIGINS = (list, tuple, set, frozenset, Sequence)


class Param:
    __slots__ = ("adapter", "default", "expects_str", "limits", "multi", "name", "positional",
                 "required", "upload")

    def __init__(self, parameter: inspect.Parameter, annotation: Any,
                 limits: NumberLimits = DEFAULT_LIMITS) -> None:
        self.name = parameter.name
        self.limits = limits
        self.required = parameter.default is inspect.Parameter.empty
        self.default = parameter.default
        self.positional = parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        self.adapter: TypeAdapter[Any] | None = None
        # str needs no adapter for path and query text, only a type check for body values
        self.expects_str = annotation is str
        # "one" for an UploadFile parameter, "many" for list[UploadFile] (optional or not)
        self.upload = _upload_kind(annotation)
        if annotation not in (inspect.Parameter.empty, str, Any) and self.upload is None:
            self.adapter = TypeAdapter(annotation)
        self.multi = _is_multi(annotation)

    def coerce(self, value: Any) -> Any:
        if self.upload is not None:
            return self._upload(value)
        if isinstance(value, MultipartValues) and not self.multi:
            raise BadRequest(detail=f"parameter {self.name!r} given more than once")
        if isinstance(value, UploadFile) and self.adapter is not None:
            raise BadRequest(detail=f"parameter {self.name!r}: a file was sent, "
                             "a value expected")
        if type(value) is not str:  # decoded numbers, before any converter sees them
            check_numbers(self.limits, self.name, value)
        if self.adapter is None:
            if self.expects_str and not isinstance(value, str):
                raise BadRequest(
                    detail=f"parameter {self.name!r}: Input should be a valid string"
                )
            return value
        try:
            result = self.adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join([self.name, *(str(part) for part in first["loc"])])
            raise BadRequest(detail=f"parameter {where!r}: {first['msg']}") from None
        # what the text became: "1E+999999999" is a valid Decimal, "9"*4000 a valid int
        check_numbers(self.limits, self.name, result)
        return result

    def _upload(self, value: Any) -> Any:
        values = list(value) if isinstance(value, MultipartValues) else [value]
        if not all(isinstance(item, UploadFile) for item in values):
            raise BadRequest(detail=f"parameter {self.name!r} must be a file upload "
                             "(a multipart/form-data part with a filename)")
        if self.upload == "many":
            return values
        if len(values) > 1:
            raise BadRequest(detail=f"parameter {self.name!r}: one file expected, "
                             f"got {len(values)}")
        return values[0]


_UPLOAD_TEXTS = {"UploadFile": "one", "UploadFile|None": "one", "Optional[UploadFile]": "one",
                 "list[UploadFile]": "many", "list[UploadFile]|None": "many"}


def _upload_kind(annotation: Any) -> str | None:
    if isinstance(annotation, str):  # a hint get_type_hints could not resolve (a local import)
        return _UPLOAD_TEXTS.get(annotation.replace(" ", "").replace("genro_asgi.", ""))
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation is UploadFile:
        return "one"
    if typing.get_origin(annotation) in (list, Sequence) and \
            typing.get_args(annotation) == (UploadFile,):
        return "many"
    return None


def check_numbers(limits: NumberLimits, name: str, value: Any) -> None:
    """400 naming the parameter when a number in ``value`` is out of bounds or not finite."""
    try:
        limits.check(value)
    except NumberOutOfRange as exc:
        raise BadRequest(detail=f"parameter {name!r}: {exc}") from None


def _is_multi(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_multi(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return origin in _MULTI_ORIGINS or annotation in (list, tuple, set, frozenset)


class Binder:
    """Turns a request into the keyword arguments of one handler."""

    __slots__ = ("accepts_args", "accepts_kwargs", "by_name", "call_order", "limits", "params",
                 "positional", "request_param")

    def __init__(self, func: Callable[..., Any], limits: NumberLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception:  # unresolvable forward references: fall back to no coercion
            hints = {}
        self.params: list[Param] = []
        self.request_param: str | None = None
        self.accepts_args = False
        self.accepts_kwargs = False
        # names passed by position when trailing segments fill ``*args`` (the Request's too,
        # when it comes before ``*args``): keywords would clash with those positions
        self.call_order: list[str] = []
        for parameter in signature.parameters.values():
            if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                  inspect.Parameter.POSITIONAL_OR_KEYWORD):
                self.call_order.append(parameter.name)
            annotation = hints.get(parameter.name, parameter.annotation)
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                self.accepts_args = True
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                self.accepts_kwargs = True
            elif inspect.isclass(annotation) and issubclass(annotation, Request):
                self.request_param = parameter.name
            else:
                self.params.append(Param(parameter, annotation, limits))
        self.by_name = {p.name: p for p in self.params}
        self.positional = [p for p in self.params if p.positional]

    @property
    def takes_nothing(self) -> bool:
        return (not self.params and not self.accepts_kwargs and not self.accepts_args
                and self.request_param is None)

    async def bind(
        self, request: Request, segments: list[str], with_body: bool, tytx: bool
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        extra_args: tuple[Any, ...] = ()
        if segments:
            if len(segments) > len(self.positional) and not self.accepts_args:
                raise NotFound(detail=f"no route for {request.path!r}")
            for param, segment in zip(self.positional, segments, strict=False):
                values[param.name] = segment
                sources[param.name] = "path"
            extra_args = tuple(segments[len(self.positional):])
        query = request.scope.get("query_string")
        if query:
            query_params = request.query_params
            for name in query_params:
                spec = self.by_name.get(name)
                value: Any = query_params.getlist(name) if spec is not None and spec.multi \
                    else query_params[name]
                if tytx:
                    value = _hydrate(value)
                self._put(values, sources, name, value, "query", spec)
        # a handler whose only parameter is the Request reads the body itself (raw uploads)
        if with_body and (self.params or self.accepts_kwargs or self.request_param is None):
            for name, value in (await request.body_params()).items():
                spec = self.by_name.get(name)
                if spec is not None and spec.multi and isinstance(value, str | UploadFile) \
                        and request.content_type == "multipart/form-data":
                    value = MultipartValues([value])  # a list parameter given once
                self._put(values, sources, name, value, "body", spec)
        return self._arguments(values, extra_args, request)

    def bind_mapping(
        self, data: Mapping[str, Any], segments: Sequence[str] = (), connection: Any = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments from already-decoded values (a WSX or JSON-RPC call), coerced as HTTP's.

        A handler that takes the Request gets ``connection``: what the transport passes
        (WSX passes a Request made for the call: its method, path, envelope and identity), or
        None when there is none.
        """
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        if len(segments) > len(self.positional) and not self.accepts_args:
            raise NotFound(detail="no route for this path (too many segments)")
        for param, segment in zip(self.positional, segments, strict=False):
            values[param.name] = segment
            sources[param.name] = "path"
        extra_args = tuple(segments[len(self.positional):])
        for name, value in data.items():
            if not isinstance(name, str):
                raise BadRequest(detail=f"parameter names must be strings, got {name!r}")
            self._put(values, sources, name, value, "data", self.by_name.get(name))
        return self._arguments(values, extra_args, connection)

    def _arguments(self, values: dict[str, Any], extra_args: tuple[Any, ...],
                   request: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Coerce the gathered values, check the required ones, place the positional ones."""
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            spec = self.by_name.get(name)
            if spec is not None:
                kwargs[name] = spec.coerce(value)
            else:  # taken by **kwargs as it came: its numbers are still bounded
                if type(value) is not str:
                    check_numbers(self.limits, name, value)
                kwargs[name] = value
        for param in self.params:
            if param.required and param.name not in kwargs:
                raise BadRequest(detail=f"missing required parameter {param.name!r}")
        if self.request_param is not None:
            kwargs[self.request_param] = request
        if extra_args:
            args = tuple(kwargs.pop(name) for name in self.call_order) + extra_args
            return args, kwargs
        return (), kwargs

    def _put(self, values: dict[str, Any], sources: dict[str, str], name: str, value: Any,
             source: str, param: Param | None) -> None:
        if param is None and not self.accepts_kwargs:
            accepted = ", ".join(sorted(self.by_name)) or "none"
            raise BadRequest(detail=f"unexpected parameter {name!r} (accepted: {accepted})")
        if name in sources:
            raise BadRequest(
                detail=f"parameter {name!r} given twice (in the {sources[name]} and the {source})"
            )
        values[name] = value
        sources[name] = source


def _hydrate(value: Any) -> Any:
    from .tytx import decode_text

    if isinstance(value, list):
        return [decode_text(v) for v in value]
    return decode_text(value)

