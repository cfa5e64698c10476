"""Who made a request: the Identity the auth plugin (or a custom backend) establishes.

It lives in ``scope["genro.identity"]`` and on the envelope, so handlers, mounted ASGI apps,
observers and other plugins all read the same object. Route requirements (``@route(auth=...)``)
are tag rules evaluated against ``Identity.tags``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SCOPE_KEY = "genro.identity"

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated principal: ``id`` (user or key name), ``tags`` (what it may do),
    ``backend`` (which credential proved it) and ``claims`` (e.g. a JWT's payload)."""

    id: str
    tags: frozenset[str] = frozenset()
    backend: str = ""
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    @classmethod
    def of(cls, id: str, tags: Iterable[str] = (), backend: str = "",
           claims: Mapping[str, Any] | None = None) -> Identity:
        """Build one from any iterable of tags (a list from config, a JWT claim)."""
        return cls(str(id), frozenset(str(t) for t in tags), backend,
                   MappingProxyType(dict(claims)) if claims else _EMPTY)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view without the claims (which may hold personal data)."""
        return {"id": self.id, "tags": sorted(self.tags), "backend": self.backend}
