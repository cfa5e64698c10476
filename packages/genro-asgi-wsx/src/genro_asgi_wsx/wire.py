"""Outgoing frame text checked for the wire, and measured in bytes.

A Python str may hold lone UTF-16 surrogates (``"\\ud800"`` decodes from a valid JSON escape),
which UTF-8 cannot carry: sending such text fails inside the server's send. Client input holding
one is refused where it is decoded; a value the server made (a result, a publication) holding
one cannot be encoded (``check_utf8``: an internal error, a refused publication). Whatever still
gets through (an error message built from a handler's text) is made safe by ``utf8_safe``
instead of failing the send: every frame is JSON whose only non-ASCII characters sit in string
literals, so writing each surrogate as its JSON escape gives valid UTF-8 that decodes to the same
value (nested JSON text, such as a TYTX ``data`` string, included).
"""

from __future__ import annotations

import re
from typing import Any

from genro_asgi.wellformed import LONE_SURROGATE, MalformedText, check_decoded, may_hold_surrogates

from . import errors as E
from .errors import WsxError

_SURROGATE = re.compile("[\ud800-\udfff]")


def refuse_lone_surrogates(value: Any, *raws: Any) -> None:
    """A parse error when ``value``, decoded from the JSON text among ``raws`` (non-str ones
    are skipped), holds a lone surrogate: client input that could never be encoded again is
    refused where it enters, as the core refuses it in HTTP bodies. Costs a substring search
    per text unless one spells a surrogate escape."""
    for raw in raws:
        if type(raw) is str and "\\u" in raw and may_hold_surrogates(raw):
            try:
                check_decoded(raw, value)
            except MalformedText:
                raise WsxError(E.PARSE_ERROR, LONE_SURROGATE) from None
            return


class NotUtf8(ValueError):
    """Text holding a lone surrogate: it cannot be sent as UTF-8."""


def check_utf8(text: str) -> str:
    """``text``, or NotUtf8 when it holds a surrogate code point (an ASCII text costs one flag
    check, any other one regex search)."""
    if not text.isascii() and _SURROGATE.search(text) is not None:
        raise NotUtf8("a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which "
                      "UTF-8 cannot encode")
    return text


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def utf8_safe(text: str) -> str:
    """``text`` with every surrogate code point written as a JSON ``\\uXXXX`` escape; the same
    object when there is none (an ASCII text costs one flag check)."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(_escape, text)


def wire_size(text: str) -> int:
    """The UTF-8 size of ``text`` (made safe first): its length when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
