"""Decoding client text safely and encoding values as TYTX text or plain JSON.

Every decoder here turns malformed, hostile or too-deep input into a ``WsxError`` with a short
message; nothing a client sends can raise anything else.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from json import encoder as _json_encoder
from json.encoder import encode_basestring
from typing import Any

from genro_tytx import from_tytx, to_tytx

from genro_asgi.tytx import check_finite

from . import errors as E
from .errors import WsxError

TYTX_MARK = "::JS"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


# one JSON value from ``text[start:]`` and where it ends; raises on anything else (the
# subprotocols try it first, inline, and take parse_json() for the verdict when it fails)
scan_json: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_SCAN = scan_json


def parse_json(text: str, start: int = 0) -> Any:
    """Strict JSON (no NaN/Infinity) from ``text[start:]``; malformed or too deep is a parse
    error."""
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
        raise WsxError(E.PARSE_ERROR, f"invalid JSON: {_short(exc)}") from None


def parse_tytx(text: str) -> Any:
    """TYTX text (typed strings hydrated); malformed JSON or typed values are parse errors."""
    try:
        value = from_tytx(text)
    except RecursionError:
        raise WsxError(E.PARSE_ERROR, "malformed TYTX: nested too deeply") from None
    except InvalidOperation:
        raise WsxError(E.PARSE_ERROR, "malformed TYTX: invalid decimal value") from None
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise WsxError(E.PARSE_ERROR, f"malformed TYTX: {_short(exc)}") from None
    if isinstance(value, str) and text.lstrip()[:1] in ("{", "[", '"'):
        # genro-tytx hands back text it cannot parse as a string instead of raising
        raise WsxError(E.PARSE_ERROR, "malformed TYTX: not valid JSON")
    return value


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


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


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
