"""Bounds on the numbers a client sends, checked before any of them is converted or used.

A number costs nothing to decode and can cost everything to use: ``Decimal("1E+999999999")``
is parsed at once, but ``int()`` of it computes a billion-digit integer on the event loop, and
``int()`` of a million-digit Decimal takes half a minute. Every value bound to a handler
parameter is therefore walked twice by the binder: before coercion (so no converter ever sees
an oversized number) and after it (a string that became a huge Decimal or int). Non-finite
values (``inf``, ``nan``, ``Decimal("NaN")``) are refused too: JSON cannot carry them back,
and they break arithmetic far from where they came in.

The limits are ``server.max_number_digits`` and ``server.max_number_exponent`` in config.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class NumberOutOfRange(ValueError):
    """A number over the configured bounds, or not finite; the message is for the client."""


@dataclass(frozen=True, slots=True)
class NumberLimits:
    """How large a number a request may carry.

    ``max_digits`` bounds the significant digits of a Decimal and the digits of an int;
    ``max_exponent`` bounds the decimal exponent of a Decimal, both ways (``1E+400`` and
    ``1E-400`` are at the default limit).
    """

    max_digits: int = 100
    max_exponent: int = 400
    # the smallest int with more than max_digits digits, computed once
    _int_bound: int = field(init=False, repr=False, compare=False)
    _json_suspect: re.Pattern[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_digits < 1 or self.max_exponent < 0:
            raise ValueError("max_digits must be at least 1 and max_exponent at least 0")
        object.__setattr__(self, "_int_bound", 10 ** self.max_digits)
        object.__setattr__(self, "_json_suspect",
                           re.compile(rb"\d[eE]|\d{%d}" % (self.max_digits + 1)))

    def check(self, value: Any, depth: int = 0) -> None:
        """Raise NumberOutOfRange for the first out-of-bounds number inside ``value``.

        Strings, booleans and None (by far the most common values) cost a type check.
        Containers are walked; ``depth`` stops a pathological self-referencing structure
        (decoders produce trees, but a handler-built value may not be one).
        """
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return
        if kind is int:
            if not -self._int_bound < value < self._int_bound:
                raise NumberOutOfRange(f"integer longer than {self.max_digits} digits")
        elif kind is float:
            if not math.isfinite(value):
                raise NumberOutOfRange("number out of range (not finite)")
        elif isinstance(value, Decimal):
            self.check_decimal(value)
        elif kind is dict:
            if depth < 1000:
                for item in value.values():
                    self.check(item, depth + 1)
        elif kind is list or kind is tuple or kind is set or kind is frozenset:
            if depth < 1000:
                for item in value:
                    self.check(item, depth + 1)
        elif isinstance(value, int):  # an int subclass (IntEnum) other than bool
            self.check(int(value), depth)
        elif isinstance(value, float):
            self.check(float(value), depth)

    def check_json(self, raw: bytes, value: Any) -> None:
        """Check numbers decoded by ``json.loads`` from ``raw``, walking ``value`` only when
        the text holds an exponent or a run of digits over ``max_digits``: plain JSON can
        carry nothing else out of bounds (NaN and Infinity are refused by the decoder)."""
        if self._json_suspect.search(raw) is not None:
            self.check(value)

    def check_decimal(self, value: Decimal) -> None:
        if not value.is_finite():
            raise NumberOutOfRange("number out of range (not finite)")
        _sign, digits, exponent = value.as_tuple()
        if len(digits) > self.max_digits:
            raise NumberOutOfRange(f"decimal with more than {self.max_digits} digits")
        assert isinstance(exponent, int)  # finite
        if abs(value.adjusted()) > self.max_exponent or abs(exponent) > self.max_exponent:
            raise NumberOutOfRange(
                f"decimal exponent out of range (at most {self.max_exponent} either way)"
            )


DEFAULT_LIMITS = NumberLimits()


def describe_decode_error(exc: BaseException) -> str | None:
    """A client-facing message for the decoder errors that speak of Python internals, or None.

    ``json.loads`` and ``int()`` refuse an integer literal past ``sys.get_int_max_str_digits()``
    with advice to call ``sys.set_int_max_str_digits``, and deep nesting raises "maximum
    recursion depth exceeded": true, but neither means anything to the client.
    """
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return f"integer longer than {sys.get_int_max_str_digits()} digits"
    return None

