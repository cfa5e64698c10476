"""TYTX over HTTP: transport negotiation and safe decoding of typed payloads.

genro-tytx 0.16 has no HTTP helpers, so the conventions live here: a client asks for TYTX with
the ``X-TYTX-Transport: json|msgpack|xml`` header or a ``application/vnd.tytx+<transport>``
content type, and gets typed params and a typed response in the same transport.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from decimal import InvalidOperation
from typing import Any, Literal

from .exceptions import BadRequest, UnsupportedMediaType
from .numbers import DEFAULT_LIMITS, NumberLimits, NumberOutOfRange, describe_decode_error
from .wellformed import check_decoded

Transport = Literal["json", "msgpack", "xml"]
TRANSPORTS: tuple[Transport, ...] = ("json", "msgpack", "xml")
MEDIA_TYPES = {t: f"application/vnd.tytx+{t}" for t in TRANSPORTS}
TRANSPORT_HEADER = b"x-tytx-transport"


def transport_from_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> Transport | None:
    """The TYTX transport a request asks for, or None for a plain request."""
    content_type = b""
    for key, value in raw_headers:
        if key == TRANSPORT_HEADER:
            return check_transport(value.decode("latin-1").strip().lower())
        if key == b"content-type":
            content_type = value
    if b"vnd.tytx+" in content_type:
        found = transport_from_content_type(content_type)
        if found is not None:
            _require_codec(found)
        return found
    return None


def transport_from_content_type(content_type: bytes) -> Transport | None:
    """``application/vnd.tytx+json; charset=utf-8`` -> ``json``."""
    for transport in TRANSPORTS:
        if f"vnd.tytx+{transport}".encode() in content_type:
            return transport
    return None


def check_transport(requested: str | None) -> Transport | None:
    """Validate the transport recorded on the envelope (raw header text): 400 when unknown."""
    if requested is None:
        return None
    for transport in TRANSPORTS:
        if requested == transport:
            _require_codec(transport)
            return transport
    raise BadRequest(
        detail=f"X-TYTX-Transport must be one of {', '.join(TRANSPORTS)}, got {requested!r}"
    )


def _require_codec(transport: str) -> None:
    """Refuse (415) a transport whose codec is not installed, before any handler runs."""
    from importlib.util import find_spec

    if transport == "msgpack" and find_spec("msgpack") is None:
        raise UnsupportedMediaType(
            detail="TYTX msgpack is not available here: install genro-tytx[msgpack]"
        )


# a DTD is never part of TYTX xml: refused before parsing, since expanding entities costs
# up to half a second of CPU per small request before expat's amplification limit stops it
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def decode(body: bytes, transport: Transport, *, limits: NumberLimits = DEFAULT_LIMITS) -> Any:
    """Decode a TYTX body; malformed input is a 400 naming the problem, never a 500.

    Its numbers are held to ``limits`` (typed Decimals, msgpack floats: the walk is cheap
    next to the TYTX decoder's own)."""
    if transport == "xml" and _DECLARATION.search(body):
        raise BadRequest(detail="TYTX xml bodies may not declare a DTD or entities")
    from genro_tytx import from_tytx  # a server that never sees TYTX never loads it

    try:
        if transport == "msgpack":
            value, text = from_tytx(body, "msgpack"), ""
        else:
            text = body.decode("utf-8")
            value = from_tytx(text, transport)
            check_decoded(text, value)
    except ImportError as exc:
        raise UnsupportedMediaType(
            detail=f"TYTX {transport} is not available here: {exc}"
        ) from None
    except UnicodeDecodeError:
        raise BadRequest(detail="TYTX body is not valid UTF-8") from None
    except (ValueError, TypeError, InvalidOperation, ArithmeticError) as exc:
        raise BadRequest(detail=f"malformed TYTX {transport} body: {_describe(exc)}") from None
    except Exception as exc:  # the xml and msgpack decoders raise their own error types
        raise BadRequest(detail=f"malformed TYTX {transport} body: {_describe(exc)}") from None
    if isinstance(value, str) and text.strip()[:1] in ("{", "["):
        raise BadRequest(detail=f"malformed TYTX {transport} body: not valid JSON")
    try:
        limits.check(value)
    except NumberOutOfRange as exc:
        raise BadRequest(detail=f"malformed TYTX {transport} body: {exc}") from None
    return value


def decode_text(text: str) -> Any:
    """Hydrate one typed scalar (query values in TYTX mode): ``'2025-01-02::D'`` -> date."""
    if "::" not in text:
        return text
    from genro_tytx import from_tytx

    try:
        value = from_tytx(text)
        check_decoded(text, value)
        return value
    except (ValueError, TypeError, InvalidOperation, ArithmeticError) as exc:
        raise BadRequest(detail=f"malformed TYTX value {text[:40]!r}: {_describe(exc)}") from None


def encode(value: Any, transport: Transport) -> bytes:
    from genro_tytx import to_tytx

    data = to_tytx(value, transport)
    if isinstance(data, str):
        check_finite(_tytx_text_of(data, transport))
    return data if isinstance(data, bytes) else data.encode("utf-8")


_XML_ROOT = ("<tytx_root>", "</tytx_root>")


def _tytx_text_of(data: str, transport: Transport) -> str:
    """The TYTX JSON text inside a transport's envelope: the json transport puts it between
    two quotes ('"{"p":"1.5::N"}::JS"'), the xml one inside ``<tytx_root>``."""
    if transport == "json":
        return data[1:-1] if len(data) > 1 and data[0] == data[-1] == '"' else data
    start, end = data.find(_XML_ROOT[0]), data.rfind(_XML_ROOT[1])
    return data[start + len(_XML_ROOT[0]):end] if 0 <= start < end else ""


def check_finite(text: str) -> None:
    """Refuse TYTX JSON text holding ``NaN`` or ``Infinity``: genro-tytx writes non-finite
    floats as those bare tokens, which no JSON parser reads (a browser's ``JSON.parse``
    fails on the whole answer). ValueError, as the plain JSON encoder raises for them; the
    text is parsed only when one of the two words appears in it."""
    if "NaN" not in text and "Infinity" not in text:
        return
    body = text[:-4] if text.endswith("::JS") else text
    found: list[str] = []
    try:
        json.loads(body, parse_constant=found.append)
    except ValueError:
        return  # a typed scalar ("NaN::N", a Decimal), not JSON: nothing non-finite in it
    if found:
        raise ValueError("Out of range float values are not JSON compliant")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InvalidOperation):
        return "invalid decimal value"
    return describe_decode_error(exc) or str(exc)[:200] or type(exc).__name__
