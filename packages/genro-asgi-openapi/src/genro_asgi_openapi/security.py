"""Security schemes from the auth plugin's configured backends, and who needs a credential.

Read from the auth plugin's validated options (``server.plugins.plugin_config("auth")``) by
attribute, so this package needs nothing of the auth plugin but its documented config keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

Schema = dict[str, Any]


class AuthView:
    """What the document says about authentication on one server."""

    def __init__(self, server: AsgiServer) -> None:
        self.enabled = "auth" in server.plugins.names()
        self.schemes: dict[str, Schema] = {}
        self.anonymous = True
        self.public: list[str] = []
        if not self.enabled:
            return
        config = server.plugins.plugin_config("auth")
        realm = getattr(config, "realm", "genro-asgi")
        self.anonymous = bool(getattr(config, "anonymous", False))
        self.public = list(getattr(config, "public", []) or [])
        self.public.extend(server.self_authenticating_paths)
        if getattr(config, "bearer", None):
            self.schemes["bearer"] = {"type": "http", "scheme": "bearer",
                                      "description": f"A static token (realm {realm})."}
        if getattr(config, "basic", None):
            self.schemes["basic"] = {"type": "http", "scheme": "basic",
                                     "description": f"Username and password (realm {realm})."}
        api_key = getattr(config, "api_key", None)
        if api_key is not None and getattr(api_key, "keys", None):
            self.schemes["api_key"] = {"type": "apiKey", "in": "header",
                                       "name": str(api_key.header),
                                       "description": "An API key."}
        jwt = getattr(config, "jwt", None)
        if jwt is not None:
            algorithms = ", ".join(getattr(jwt, "algorithms", []) or [])
            self.schemes["jwt"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                   "description": f"A JSON Web Token ({algorithms}); its "
                                   f"'{getattr(jwt, 'tags_claim', 'tags')}' claim gives the "
                                   "tags route rules test."}

    def alternatives(self) -> list[dict[str, list[str]]]:
        """One security requirement per scheme: any one of them will do."""
        return [{name: []} for name in self.schemes]

    def is_public(self, path: str) -> bool:
        for pattern in self.public:
            if pattern.endswith("*"):
                if path.startswith(pattern[:-1]):
                    return True
            elif path == pattern:
                return True
        return False

    def requires_credential(self, path: str, rule: str | None) -> bool:
        """Whether a request without a credential is refused (401) on ``path``."""
        if rule is not None:  # the core refuses a rule's route to a caller without identity
            return True
        if not self.enabled:
            return False
        return not self.anonymous and not self.is_public(path)
