"""One level's data: a tree of nested dicts addressed by dotted paths, with its size in bytes.

A path is 1 to ``max_depth`` tokens of ``[A-Za-z0-9_-]`` joined by ``.`` (the WSX channel
grammar), at most ``max_length`` characters; ``""`` is the root. A dict value is a subtree:
``set("prefs", {"theme": "dark"})`` then ``get("prefs.theme")``. Values are what TYTX
carries (None, bool, int, finite float, str, Decimal, date, datetime, time, lists and dicts
with str keys); anything else is a ValueError before the tree changes.

The size of a tree is, for each leaf (a value that is not a non-empty dict), the length of its
full path plus the UTF-8 length of its TYTX text. It is kept up to date on every ``set`` and
``delete`` by measuring only the value set and the one it replaces, never the whole tree, so
the limit costs what the change costs, and the count is exact whatever order the changes come
in (a subtree replaced by a value, a value by a subtree).
"""

from __future__ import annotations

import copy
import datetime
import math
import re
from decimal import Decimal
from typing import Any

from genro_tytx import to_tytx

MAX_VALUE_DEPTH = 64  # nesting of lists and dicts inside one value
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_SCALARS = (str, int, Decimal, datetime.date, datetime.time, type(None))  # bool is an int


class DataLimitExceeded(ValueError):
    """The change would take a tree past its byte limit; nothing was changed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the data would take {size} bytes, over the limit of {limit}")
        self.size = size
        self.limit = limit


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
    _check(value, 0)
    try:
        return measure(path_length, value)
    except (TypeError, ValueError) as exc:  # a lone surrogate, an unknown type
        raise ValueError(f"the value cannot be encoded ({exc})") from None


def _check(value: Any, depth: int) -> None:
    if depth > MAX_VALUE_DEPTH:
        raise ValueError(f"the value is nested deeper than {MAX_VALUE_DEPTH} levels")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("the value holds a non-finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("the value has a key that is not a string")
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
    elif not isinstance(value, _SCALARS):
        raise ValueError(f"a {type(value).__name__} cannot be stored")


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
            size = value_size(value) if value else 0
            if size > max_bytes:
                raise DataLimitExceeded(size, max_bytes)
            self.root = copy.deepcopy(value)
            self.size = size
            return
        *parents, leaf = path.split(".")
        size = self.size + value_size(value, len(path))  # refuses what cannot be stored
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
        if size > max_bytes:
            raise DataLimitExceeded(size, max_bytes)
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


def measure(path_length: int, value: Any) -> int:
    """What ``value`` costs at a path of ``path_length`` characters: a non-empty dict is the
    sum of its items at their own paths, anything else its path plus its TYTX text."""
    if isinstance(value, dict) and value:
        base = path_length + 1 if path_length else 0
        return sum(measure(base + len(key), item) for key, item in value.items())
    return path_length + _encoded_length(value)


def _encoded_length(value: Any) -> int:
    text = to_tytx(value)
    return len(text) if isinstance(text, bytes) else len(text.encode("utf-8"))


def _copy(value: Any) -> Any:
    """A copy the caller cannot change the tree through (scalars are immutable)."""
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value
