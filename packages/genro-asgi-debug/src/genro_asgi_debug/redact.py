"""The request summary stored with an incident, with credentials redacted.

Incident listings end up in terminals, tickets and the audit log, so they never carry
credentials: the ``Authorization``/``Cookie``-like headers, the server's
``credential_headers`` (the auth plugin's API-key header among them) and any header or query
parameter whose name looks secret are replaced by ``***``. (The attached debugger itself sees
the live objects: holding the secret means seeing everything, see docs/debug.md.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Set
from typing import Any
from urllib.parse import parse_qsl

from genro_asgi import Request

REDACTED = "***"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie",
                            "x-api-key", "x-auth-token", "x-csrf-token", "x-xsrf-token"})
SECRET_NAME = re.compile(
    r"token|key|pass|pwd|pw\b|secret|auth|sess|sid\b|sig|credential|jwt|bearer|otp|pin\b"
    r"|code\b|ticket|hash|nonce|cert|private|saml|sso\b",
    re.IGNORECASE,
)
MAX_VALUE = 200  # characters kept of any one value
MAX_ITEMS = 50  # headers / query parameters kept


class Redactor:
    """Decides which names are secret: the defaults plus the plugin's ``redact`` option."""

    def __init__(self, extra: Iterable[str] = (), credential_headers: Set[str] = frozenset()
                 ) -> None:
        self.extra = frozenset(name.lower() for name in extra)
        self.credential_headers = credential_headers  # live: the server's set (see plugin)

    def is_secret(self, name: str) -> bool:
        lowered = name.lower()
        return (lowered in SECRET_HEADERS or lowered in self.extra
                or lowered in self.credential_headers
                or SECRET_NAME.search(lowered) is not None)

    def pairs(self, items: Iterable[tuple[str, str]]) -> list[list[str]]:
        kept = []
        for index, (name, value) in enumerate(items):
            if index >= MAX_ITEMS:
                kept.append(["...", "(more omitted)"])
                break
            shown = REDACTED if self.is_secret(name) else _clip(value)
            kept.append([_clip(name), shown])
        return kept

    def request_summary(self, request: Request) -> dict[str, Any]:
        """What an incident shows of its request: never the body, never a credential."""
        scope = request.scope
        raw_query = scope.get("query_string", b"").decode("latin-1")
        first_fields = "&".join(raw_query.split("&", MAX_ITEMS + 1)[: MAX_ITEMS + 1])
        headers = [(k.decode("latin-1"), v.decode("latin-1"))
                   for k, v in scope.get("headers") or ()]
        envelope = request.envelope
        client = scope.get("client")
        return {
            "request_id": envelope.request_id if envelope is not None else None,
            "method": scope.get("method"),
            "path": _clip(scope.get("path", "")),
            "query": self.pairs(parse_qsl(first_fields, keep_blank_values=True)),
            "headers": self.pairs(headers),
            "client": f"{client[0]}:{client[1]}" if client else None,
        }


def _clip(value: str) -> str:
    return value if len(value) <= MAX_VALUE else value[:MAX_VALUE] + "..."
