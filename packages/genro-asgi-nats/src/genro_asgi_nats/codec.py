"""Publications on the wire: a marker, the publication id, then the data as TYTX text.

``GX1 <origin>:<seq> <tytx>``: the marker tells our messages from foreign ones on the same
subjects, the id lets a process that receives one message through two overlapping patterns
decode it once, and TYTX (never pickle) carries Decimal, date, datetime and time across. The
channel is the subject itself.
"""

from __future__ import annotations

from typing import Any

from genro_asgi_wsx.codec import check_depth, parse_tytx, tytx_text

MARK = b"GX1 "
MAX_ID = 64


class Foreign(ValueError):
    """Not one of our messages (no marker)."""


class Garbage(ValueError):
    """Our marker, but not a well-formed publication."""


def encode(pub_id: str, data: Any) -> bytes:
    """The message body; ValueError (TypeError for an unknown type) when ``data`` cannot be
    written as TYTX: a non-finite float, a lone surrogate, an object."""
    text = tytx_text(data)
    return b"".join((MARK, pub_id.encode("ascii"), b" ", text.encode("utf-8")))


def decode(payload: bytes, max_depth: int) -> tuple[bytes, Any]:
    """``(publication id, data)``; Foreign or Garbage for anything else."""
    if not payload.startswith(MARK):
        raise Foreign("no GX1 marker")
    end = payload.find(b" ", len(MARK), len(MARK) + MAX_ID + 1)
    if end < 0:
        raise Garbage("no publication id")
    pub_id = payload[len(MARK):end]
    try:
        text = payload[end + 1:].decode("utf-8")
        value = parse_tytx(text)
        check_depth(text, value, max_depth, typed=True)
    except Exception as exc:
        raise Garbage(str(exc)[:200] or type(exc).__name__) from None
    return pub_id, value
