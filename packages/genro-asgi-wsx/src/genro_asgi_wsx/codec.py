"""Decoding client text safely and encoding values as TYTX text or plain JSON.

Every decoder here turns malformed, hostile or too-deep input into a ``WsxError`` with a short
message; nothing a client sends can raise anything else.
"""

from __future__ import annotations

import datetime
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from genro_tytx import from_tytx, to_tytx

from . import errors as E
from .errors import WsxError

TYTX_MARK = "::JS"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def parse_json(text: str) -> Any:
    """Strict JSON (no NaN/Infinity); malformed or too deep is a parse error."""
    try:
        return _DECODER.decode(text)
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


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def tytx_text(value: Any) -> str:
    """``to_tytx(value)`` as text: ``'{"p":"1.5::N"}::JS'``, ``'"hello"'``, ``'null'``."""
    text = to_tytx(value)
    return text if isinstance(text, str) else text.decode("utf-8")


def tytx_json_fragment(value: Any) -> tuple[str, bool]:
    """``value`` as a JSON fragment with typed strings, and whether any value was typed.

    The fragment is embedded in a larger frame, which then needs the ``::JS`` mark when typed.
    """
    text = tytx_text({"v": value})
    typed = text.endswith(TYPED_TAIL)
    body = text[: -len(TYTX_MARK)] if typed else text
    return body[5:-1], typed


TYPED_TAIL = "}" + TYTX_MARK


def _plain_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(default=_plain_default, ensure_ascii=False, separators=(",", ":"),
                            allow_nan=False)

plain_json = _ENCODER.encode
"""Compact JSON; Decimal as a string, date/datetime/time as ISO strings."""
