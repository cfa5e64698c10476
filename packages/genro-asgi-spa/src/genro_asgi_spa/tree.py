"""One level's data: a tree of nested dicts addressed by dotted paths, with its size in bytes.

A path is 1 to ``max_depth`` tokens of ``[A-Za-z0-9_-]`` joined by ``.`` (the WSX channel
grammar), at most ``max_length`` characters; ``""`` is the root. A dict value is a subtree:
``set("prefs", {"theme": "dark"})`` then ``get("prefs.theme")``. Values are what TYTX
carries (None, bool, int, finite float, str, Decimal, date, datetime, time, lists and dicts
with str keys); anything else is a ValueError before the tree changes.

The size of a tree is, for each leaf (a value that is not a non-empty dict), the UTF-8 length
of its full path (a value's keys may be any characters) plus the UTF-8 length of its JSON text
(escapes not counted; a typed value's TYTX text), worked out without encoding plain values.
It is kept up to date on every ``set`` and ``delete`` by measuring only the value set and the
one it replaces, never the whole tree, so the limit costs what the change costs, and the count
is exact whatever order the changes come in (a subtree replaced by a value, a value by a
subtree).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from genro_tytx import to_tytx

MAX_VALUE_DEPTH = 64  # nesting of lists and dicts inside one value
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_SCALARS = (str, int, Decimal, datetime.date, datetime.time, type(None))  # bool is an int


class DataLimitExceeded(ValueError):
    """The change would take a tree past its byte limit; nothing was changed."""

    def __init__(self, size: int, limit: int, partial: bool = False) -> None:
        more = "more than " if partial else ""
        super().__init__(f"the data would take {more}{size} bytes, over the limit of {limit}")
        self.size = size
        self.limit = limit
        self.partial = partial


def check_path(path: Any, max_length: int = 200, max_depth: int = 16) -> str | None:
    """What is wrong with ``path`` (None: nothing). ``""`` (the root) is valid."""
    if not isinstance(path, str):
        return "must be a string"
    if path == "":
        return None
    if len(path) > max_length:
        return f"is longer than {max_length} characters"
    tokens = path.split(".")
    if len(tokens) > max_depth:
        return f"is deeper than {max_depth} levels"
    for token in tokens:
        if not _TOKEN.fullmatch(token):
            return "must be tokens of letters, digits, '_' or '-' joined by '.'"
    return None


def value_size(value: Any, path_length: int = 0) -> int:
    """What ``value`` costs at a path of ``path_length`` characters (``measure``); ValueError
    when it cannot be stored."""
    return measure(path_length, value)


def covers(a: str, b: str) -> bool:
    """Whether a subscription to one path sees a change to the other: equal, or one is an
    ancestor of the other (``""`` covers everything)."""
    if not a or not b or a == b:
        return True
    if len(a) < len(b):
        return b.startswith(a) and b[len(a)] == "."
    return a.startswith(b) and a[len(b)] == "."


class DataTree:
    """Nested dicts and their size in bytes."""

    __slots__ = ("root", "size")

    def __init__(self) -> None:
        self.root: dict[str, Any] = {}
        self.size = 0

    def get(self, path: str, default: Any = None) -> Any:
        """A copy of the value (or subtree) at ``path``, or ``default``."""
        node: Any = self.root
        if path:
            for token in path.split("."):
                if not isinstance(node, dict) or token not in node:
                    return default
                node = node[token]
        return _copy(node)

    def set(self, path: str, value: Any, max_bytes: int) -> None:
        """Set ``path`` to (a copy of) ``value``; ``""`` replaces the whole tree (a dict)."""
        if not path:
            if not isinstance(value, dict):
                raise ValueError("the root holds a dict")
            size = measure(0, value, max_bytes) if value else 0
            self.root = _copy(value)
            self.size = size
            return
        *parents, leaf = path.split(".")
        size = self.size  # the tree's size without what this change replaces
        node: dict[str, Any] | None = self.root
        plen = -1
        for i, token in enumerate(parents):
            plen += len(token) + 1
            if node is None or token not in node:
                node = None  # created below
                continue
            child = node[token]
            if not isinstance(child, dict):
                raise ValueError(f"{'.'.join(parents[:i + 1])!r} holds a value, not a branch")
            if not child:  # an empty dict that stops being a leaf
                size -= measure(plen, child)
            node = child
        if node is not None and leaf in node:
            size -= measure(len(path), node[leaf])
        # refuses what cannot be stored, and stops measuring as soon as the limit is passed:
        # a huge value costs what the limit allows, not what it holds
        try:
            size += measure(len(path), value, max_bytes - size)
        except DataLimitExceeded as exc:
            raise DataLimitExceeded(size + exc.size, max_bytes, exc.partial) from None
        node = self.root
        for token in parents:
            node = node.setdefault(token, {})
        node[leaf] = _copy(value)
        self.size = size

    def delete(self, path: str) -> bool:
        """Remove ``path`` (``""``: everything); whether it was there. Empty branches go too."""
        if not path:
            found = bool(self.root)
            self.root = {}
            self.size = 0
            return found
        trail: list[tuple[dict[str, Any], str]] = []
        node: Any = self.root
        for token in path.split("."):
            if not isinstance(node, dict) or token not in node:
                return False
            trail.append((node, token))
            node = node[token]
        parent, leaf = trail[-1]
        self.size -= measure(len(path), parent.pop(leaf))
        for parent, token in reversed(trail[:-1]):  # they held the value: they cost nothing
            if parent[token]:
                break
            del parent[token]
        return True


def measure(path_length: int, value: Any, limit: int | None = None) -> int:
    """What ``value`` costs at a path of ``path_length`` characters: a non-empty dict is the
    sum of its items at their own paths, anything else its path plus the length of its text
    (``_text_length``). ValueError for a value that cannot be stored; with ``limit``,
    DataLimitExceeded as soon as the cost passes it (the rest is not looked at)."""
    if not (isinstance(value, dict) and value):
        total = path_length + _text_length(value, 0)
        if limit is not None and total > limit:
            raise DataLimitExceeded(total, limit)
        return total
    total = 0
    # one iterator per open dict, so that a huge value stops costing once the limit is passed
    stack: list[tuple[int, Iterator[tuple[Any, Any]], int]] = [
        (path_length + 1 if path_length else 0, iter(value.items()), 1)]
    while stack:
        base, items, depth = stack[-1]
        for key, item in items:
            if not isinstance(key, str):
                raise ValueError("the value has a key that is not a string")
            key_length = _key_length(key)
            if isinstance(item, dict) and item:
                if depth >= MAX_VALUE_DEPTH:
                    raise ValueError(f"the value is nested deeper than {MAX_VALUE_DEPTH} "
                                     "levels")
                stack.append((base + key_length + 1, iter(item.items()), depth + 1))
                break
            total += base + key_length + _text_length(item, depth)
            if limit is not None and total > limit:
                raise DataLimitExceeded(total, limit, partial=True)
        else:
            stack.pop()
    return total


def _key_length(key: str) -> int:
    """A key's length in UTF-8 bytes (an ASCII key without encoding it): counted in
    characters, keys of multi-byte characters held several times ``max_data_bytes``."""
    if key.isascii():
        return len(key)
    try:
        return len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("the value has a key with an unpaired UTF-16 surrogate") from None


def _text_length(value: Any, depth: int) -> int:
    """The length of ``value``'s JSON text in UTF-8 (escapes not counted; a typed value's
    TYTX text), without encoding it: plain values cost a few operations each."""
    if depth > MAX_VALUE_DEPTH:
        raise ValueError(f"the value is nested deeper than {MAX_VALUE_DEPTH} levels")
    if value is None:
        return 4
    if isinstance(value, str):
        try:
            return len(value.encode("utf-8")) + 2
        except UnicodeEncodeError:
            raise ValueError("the value holds an unpaired UTF-16 surrogate") from None
    if isinstance(value, bool):
        return 4 if value else 5
    if isinstance(value, int):
        return len(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("the value holds a non-finite number")
        return len(repr(value))
    if isinstance(value, list):
        return 1 + max(1, len(value)) + sum(_text_length(item, depth + 1) for item in value)
    if isinstance(value, dict):  # inside a list, or empty
        size = 1 + max(1, len(value))  # the brackets and the commas
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("the value has a key that is not a string")
            size += _text_length(key, depth) + 1 + _text_length(item, depth + 1)
        return size
    if isinstance(value, (Decimal, datetime.date, datetime.time)):
        return _encoded_length(value)
    raise ValueError(f"a {type(value).__name__} cannot be stored")


def _encoded_length(value: Any) -> int:
    text = to_tytx(value)
    return len(text) if isinstance(text, bytes) else len(text.encode("utf-8"))


def _copy(value: Any) -> Any:
    """A copy the caller cannot change the tree through (the scalars are immutable)."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
