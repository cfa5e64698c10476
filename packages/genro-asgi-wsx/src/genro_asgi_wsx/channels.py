"""Channel names and subscription patterns (NATS subject rules, so a NATS broker maps 1:1).

A channel is 1 to 16 dot-separated tokens of ``[A-Za-z0-9_-]``; a pattern may use ``*`` for
one token and a final ``>`` for one or more tokens.
"""

from __future__ import annotations

import re

MAX_LENGTH = 200
MAX_TOKENS = 16
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")


def check_channel(name: object) -> str | None:
    """Why ``name`` is not a concrete channel, or None when it is one."""
    return _check(name, wildcards=False)


def check_pattern(pattern: object) -> str | None:
    """Why ``pattern`` is not a valid subscription pattern, or None when it is one."""
    return _check(pattern, wildcards=True)


def _check(value: object, *, wildcards: bool) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not value or len(value) > MAX_LENGTH:
        return f"must be 1 to {MAX_LENGTH} characters"
    tokens = value.split(".")
    if len(tokens) > MAX_TOKENS:
        return f"has more than {MAX_TOKENS} tokens"
    last = len(tokens) - 1
    for index, token in enumerate(tokens):
        if wildcards and token == "*":
            continue
        if wildcards and token == ">":
            if index != last:
                return "'>' may only be the last token"
            continue
        if not _TOKEN.fullmatch(token):
            where = "wildcards are not allowed in a channel" if token in ("*", ">") else \
                f"token {token[:40]!r} is not made of letters, digits, '_' or '-'"
            return where
    return None


def is_wildcard(pattern: str) -> bool:
    return "*" in pattern or pattern.endswith(">")


def matches(pattern_tokens: tuple[str, ...], channel_tokens: list[str]) -> bool:
    """Whether a split, validated pattern matches a split channel."""
    if pattern_tokens and pattern_tokens[-1] == ">":
        fixed = pattern_tokens[:-1]
        if len(channel_tokens) <= len(fixed):
            return False
    else:
        fixed = pattern_tokens
        if len(channel_tokens) != len(fixed):
            return False
    return all(p == "*" or p == c for p, c in zip(fixed, channel_tokens, strict=False))


def pattern_matches(pattern: str, channel: str) -> bool:
    return matches(tuple(pattern.split(".")), channel.split("."))


def overlaps(a: tuple[str, ...] | list[str], b: tuple[str, ...] | list[str]) -> bool:
    """Whether some channel matches both patterns (so a rule on ``a`` applies to ``b``)."""
    index = 0
    while True:
        a_end, b_end = index == len(a), index == len(b)
        if a_end and b_end:
            return True
        if not a_end and a[index] == ">":
            return not b_end
        if not b_end and b[index] == ">":
            return not a_end
        if a_end or b_end:
            return False
        if a[index] != "*" and b[index] != "*" and a[index] != b[index]:
            return False
        index += 1
