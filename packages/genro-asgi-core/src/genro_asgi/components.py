"""Swappable parts a plugin takes from its config: a class named by a built-in name (``memory``)
or by ``pkg.module:Class``, checked against the base class its plugin documents, then built
with the config's options. wsx picks its broker and spa its backend this way, so another
package (genro-asgi-nats) can provide one by name without either importing it.

``component_class`` raises ValueError (a config validator turns it into a message naming the
key); ``build_component`` raises ConfigError naming the key: options the class does not take
are the config's fault, an error raised by the class itself is reported as a failed start.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, TypeVar

from .exceptions import ConfigError
from .plugins.manager import import_object

T = TypeVar("T")


def component_class(spec: str, base: type[Any], builtins: Mapping[str, type[T]]) -> type[T]:
    """The concrete subclass of ``base`` (often abstract) that ``spec`` names: a key of
    ``builtins`` or ``pkg.module:Class``."""
    found = builtins.get(spec)
    if found is not None:
        return found
    if ":" not in spec:
        names = " or ".join(f"{name!r}" for name in builtins)
        raise ValueError(f"must be {names} or 'pkg.module:Class', got {spec!r}")
    try:
        found = import_object(spec)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {spec!r}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, base)):
        package = base.__module__.partition(".")[0]
        raise ValueError(f"{spec!r} is not a {package}.{base.__name__} subclass")
    if inspect.isabstract(found):
        missing = ", ".join(sorted(getattr(found, "__abstractmethods__", ())))
        raise ValueError(f"{spec!r} is abstract (it does not implement {missing})")
    return found


def build_component(cls: type[T], options: Mapping[str, Any], key: str, spec: str) -> T:
    """``cls(**options)``; ``key`` is the config key that named it (``plugins.wsx.broker``),
    its options being ``<key>_options``."""
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"{key}_options: {cls.__name__}() {exc}") from None
    try:
        return cls(**options)
    except Exception as exc:
        raise ConfigError(f"{key}: {spec} failed to start: {exc!r}") from None
