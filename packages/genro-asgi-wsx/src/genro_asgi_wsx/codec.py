"""Decoding client text safely and encoding values as TYTX text or plain JSON.

Every decoder here turns malformed, hostile or too-deep input into a ``WsxError`` with a short
message for the client (never Python's own wording: no ``sys.set_int_max_str_digits``, no
"maximum recursion depth"); nothing a client sends can raise anything else.

TYTX text is taken in every form genro-tytx writes (``to_tytx(value)`` and
``to_tytx(value, "json")``): plain JSON, JSON marked ``::JS``, either between the two quotes of
the json transport, typed scalars (``"1.5::N"``) and the ``::QS`` query-string form.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from decimal import Decimal
from json import encoder as _json_encoder
from json.encoder import encode_basestring
from typing import Any

from genro_tytx import SUFFIX_TO_TYPE, to_tytx

from genro_asgi.numbers import describe_decode_error
from genro_asgi.tytx import check_finite

from . import errors as E
from .errors import WsxError

TYTX_MARK = "::JS"


class _Refused(ValueError):
    """A JSON token refused on purpose (NaN, Infinity): its message is for the client."""


def _no_constants(name: str) -> Any:
    raise _Refused(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


# one JSON value from ``text[start:]`` and where it ends; raises on anything else (the
# subprotocols try it first, inline, and take parse_json() for the verdict when it fails)
scan_json: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_SCAN = scan_json


def parse_json(text: str, start: int = 0, *, max_depth: int | None = None) -> Any:
    """Strict JSON (no NaN/Infinity) from ``text[start:]``; malformed or too deep is a parse
    error (``max_depth``: the limit to name when Python's decoder gives up on the nesting)."""
    try:  # what decode() does, less its whitespace handling: one value filling the text
        value, end = _SCAN(text, start)
        if end == len(text):
            return value
    except (StopIteration, ValueError, RecursionError):
        pass
    # not that simple case: the full decoder gives the verdict and the message
    try:
        return _DECODER.decode(text[start:] if start else text)
    except (ValueError, RecursionError) as exc:
        raise WsxError(E.PARSE_ERROR, f"invalid JSON: {json_problem(exc, max_depth)}") from None


def json_problem(exc: BaseException, max_depth: int | None = None) -> str:
    """What is wrong with a JSON text, from the decoder's exception, in the client's terms."""
    if isinstance(exc, RecursionError):
        return too_deep(max_depth)
    described = describe_decode_error(exc)  # an integer literal over Python's digit limit
    if described is not None:
        return described
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, _Refused):
        return str(exc)
    return "malformed JSON"


def too_deep(max_depth: int | None) -> str:
    return f"nested deeper than {max_depth} levels" if max_depth else "nested too deeply"


def parse_tytx(text: str, max_depth: int | None = None) -> Any:
    """TYTX text in any form genro-tytx writes, typed values hydrated; malformed JSON, typed
    values or (with ``max_depth``) nesting are parse errors."""
    return decode_tytx(text, max_depth)[0]


def decode_tytx(text: str, max_depth: int | None = None) -> tuple[Any, bool]:
    """TYTX text as genro-tytx's ``from_tytx`` reads it, and whether it came in the json
    transport's quoted form (``to_tytx(value, "json")``: ``'"{...}::JS"'``, ``'"1.5::N"'``).

    The rules are genro-tytx's (``from_tytx(text, "json")``): the two quotes are dropped, a
    text ending in a registered ``::SUFFIX`` is one typed scalar (``::QS`` a query string),
    else it is JSON, with or without the ``::JS`` mark, whose typed strings are hydrated;
    text that is not JSON and does not look like it is a plain string. Text between quotes
    whose content is neither typed nor JSON nor like it is read as one JSON string
    (``to_tytx(str)``, the default form). Unlike ``from_tytx``, malformed JSON or typed
    values are errors, and the messages are clean.
    """
    quoted = len(text) > 1 and text[0] == '"' == text[-1]
    body = text[1:-1] if quoted else text
    value: Any
    if "::" in body:
        head, suffix = body.rsplit("::", 1)
        if suffix in SUFFIX_TO_TYPE:
            value = _typed(head, suffix, max_depth)
            if max_depth is not None:
                check_depth(body, value, max_depth, typed=True)
            return value, quoted
        if suffix == "JS":
            body = head
    try:
        value = parse_json(body, max_depth=max_depth)
    except WsxError as exc:
        if body.lstrip()[:1] in ("{", "[", '"'):
            raise WsxError(E.PARSE_ERROR, f"malformed TYTX: {exc.message}") from None
        if quoted:  # '"say \\"hi\\""': a JSON string, to_tytx() of a str (the default form)
            try:
                return parse_json(text), False
            except WsxError:
                pass
        return body, quoted  # not JSON and not like it: genro-tytx's plain string
    value = _hydrate(value, max_depth)
    if max_depth is not None:
        check_depth(body, value, max_depth, typed=True)
    return value, quoted


_TYPE_NAMES = {"N": "decimal", "D": "date", "DH": "datetime", "DHZ": "datetime", "H": "time",
               "L": "integer", "R": "float", "B": "boolean", "T": "string", "NN": "null",
               "QS": "query string", "RAW": "base64 value"}


def _typed(text: str, suffix: str, max_depth: int | None) -> Any:
    """``text`` decoded by the registered type ``suffix``; a parse error naming the type."""
    try:
        return SUFFIX_TO_TYPE[suffix][1](text)
    except RecursionError:  # ::QS inside ::QS ... : hydrated recursively by genro-tytx
        raise WsxError(E.PARSE_ERROR, f"malformed TYTX: {too_deep(max_depth)}") from None
    except Exception as exc:  # each decoder raises its own kind (ValueError, binascii.Error)
        problem = describe_decode_error(exc)
        if problem is None:
            name = _TYPE_NAMES.get(suffix) or SUFFIX_TO_TYPE[suffix][0].__name__
            shown = text if len(text) <= 40 else text[:37] + "..."
            problem = f"{shown!r} is not a valid {name} (::{suffix})"
        raise WsxError(E.PARSE_ERROR, f"malformed TYTX: {problem}") from None


def _hydrate(value: Any, max_depth: int | None) -> Any:
    """Typed strings (``"1.5::N"``) inside decoded JSON replaced by their values, in place,
    as genro-tytx's walk does (keys stay strings); without recursion."""
    if type(value) is str:
        return _typed_string(value, max_depth)
    if type(value) not in _CONTAINERS:
        return value
    pending: list[Any] = [value]
    while pending:
        container = pending.pop()
        pairs = container.items() if type(container) is dict else enumerate(container)
        for key, item in pairs:
            kind = type(item)
            if kind is str:
                if "::" in item:
                    container[key] = _typed_string(item, max_depth)
            elif kind is dict or kind is list:
                pending.append(item)
    return value


def _typed_string(text: str, max_depth: int | None) -> Any:
    if "::" not in text:
        return text
    head, suffix = text.rsplit("::", 1)
    return _typed(head, suffix, max_depth) if suffix in SUFFIX_TO_TYPE else text


def check_depth(text: str, value: Any, limit: int, *, typed: bool = False) -> None:
    """Refuse ``value`` (decoded from ``text``) when its containers nest deeper than ``limit``.

    Python's decoder accepts nesting up to the interpreter's recursion limit, but encoding such
    a value again (an answer that echoes it, an event that carries it) can exceed it: the depth
    is bounded here, where the client's input enters. In plain JSON a value ``limit + 1`` deep
    needs more than ``limit`` opening brackets and twice that many characters, so nearly every
    frame is settled by two ``str.count`` calls and never walked. A ``typed`` (TYTX) value is
    always walked: a typed string can hydrate into containers without a bracket in the text
    (``"a::QS::QS"``).
    """
    if (typed or (len(text) > 2 * limit and text.count("[") + text.count("{") > limit)) \
            and _deeper_than(value, limit):
        raise WsxError(E.PARSE_ERROR, f"nested deeper than {limit} levels")


_CONTAINERS = (dict, list)


def _deeper_than(value: Any, limit: int) -> bool:
    if type(value) not in _CONTAINERS:
        return False
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        container, depth = pending.pop()
        if depth > limit:
            return True
        for child in container.values() if type(container) is dict else container:
            if type(child) in _CONTAINERS:
                pending.append((child, depth + 1))
    return False


def json_string(text: str) -> str:
    """``text`` as a JSON string literal (non-ASCII left as is), as the encoders write it."""
    return encode_basestring(text)


def tytx_text(value: Any) -> str:
    """``to_tytx(value)`` as text: ``'{"p":"1.5::N"}::JS'``, ``'"hello"'``, ``'null'``."""
    kind = type(value)
    if kind is str:  # the plain scalars TYTX writes as JSON: most results, at less cost
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    text = to_tytx(value)
    if not isinstance(text, str):
        text = text.decode("utf-8")
    check_finite(text)  # NaN / Infinity: a ValueError, as plain_json() raises
    return text


def tytx_json_fragment(value: Any) -> tuple[str, bool]:
    """``value`` as a JSON fragment with typed strings, and whether any value was typed.

    The fragment is embedded in a larger frame, which then needs the ``::JS`` mark when typed.
    """
    if type(value) in _SCALARS:
        return tytx_text(value), False
    text = tytx_text({"v": value})
    typed = text.endswith(TYPED_TAIL)
    body = text[: -len(TYTX_MARK)] if typed else text
    return body[5:-1], typed


TYPED_TAIL = "}" + TYTX_MARK
_SCALARS = frozenset({str, int, bool, type(None)})


def _plain_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


c_make_encoder = getattr(_json_encoder, "c_make_encoder", None)  # the C encoder, not typed
_ENCODER = json.JSONEncoder(default=_plain_default, ensure_ascii=False, separators=(",", ":"),
                            allow_nan=False)


def plain_json(value: Any) -> str:
    """Compact JSON; Decimal as a string, date/datetime/time as ISO strings.

    ``_ENCODER.encode(value)``, less the per-call setup ``JSONEncoder.encode`` repeats.
    """
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODER.encode(value)
    # a fresh markers dict per call: the circular-reference check (and a failed call
    # leaves entries behind)
    return "".join(c_make_encoder({}, _plain_default, encode_basestring, None, ":", ",",
                                  False, False, False)(value, 0))
