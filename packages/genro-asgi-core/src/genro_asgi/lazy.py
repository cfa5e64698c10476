"""Lazily exported names: a package's public names imported on first use.

A package lists ``name -> module`` and installs the module ``__getattr__`` and ``__dir__`` this
returns; the first read of a name imports its module and stores the value in the package, so
later reads are plain attribute lookups. ``import genro_asgi`` then loads only what the
program goes on to use (the footprint paragraph of docs/applications.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``; ``exports`` maps a name to the module that
    defines it (``.module`` is relative to ``package``)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # the import statement's own path, so that -X importtime still shows these imports
        absolute = package + module if module.startswith(".") else module
        value = getattr(__import__(absolute, fromlist=[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*exports, *vars(sys.modules[package])})

    return __getattr__, __dir__
