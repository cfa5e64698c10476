"""Client text that decodes but can never be encoded again: unpaired UTF-16 surrogates.

JSON may spell a lone surrogate as an escape (``"\\ud800"``); ``json.loads`` accepts it and
hands over a Python str that no UTF-8 encoder takes back. Echoed in an answer, logged or
stored, it fails far from where it came in (a 500 for the client, a dropped frame for every
subscriber of a channel). Decoders refuse it at the door instead: a 400 (or a protocol error
frame) saying what is wrong.

The check costs one regex search over the raw text; only a text that holds a surrogate escape
(paired ones, as ``json.dumps`` writes emoji, are common and fine) has its decoded strings
walked.
"""

from __future__ import annotations

import re
from typing import Any

_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE = "a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), not valid Unicode"


class MalformedText(ValueError):
    """Decoded client data holds a string that cannot be encoded as UTF-8."""


def may_hold_surrogates(raw: str | bytes) -> bool:
    """Whether JSON text spells a surrogate escape anywhere (the cheap pre-check)."""
    if isinstance(raw, bytes):
        return _ESCAPE_BYTES.search(raw) is not None
    return _ESCAPE_TEXT.search(raw) is not None


def check_decoded(raw: str | bytes, value: Any) -> None:
    """Raise MalformedText when ``value``, decoded from the JSON text ``raw``, holds a lone
    surrogate in a string or a key."""
    if may_hold_surrogates(raw) and _has_lone_surrogate(value):
        raise MalformedText(LONE_SURROGATE)


def _has_lone_surrogate(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth > 1000:  # decoders bound nesting well before this
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k, depth + 1) or _has_lone_surrogate(v, depth + 1)
                   for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_lone_surrogate(item, depth + 1) for item in value)
    return False
