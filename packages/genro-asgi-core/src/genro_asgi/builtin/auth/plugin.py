"""The ``auth`` plugin: bearer, basic, API-key and JWT backends plus the identify hook.

It sets the identity on the scope and envelope of every request and WebSocket handshake,
refuses requests without a credential outside ``public`` paths (401 with ``WWW-Authenticate``),
and leaves route requirements (``@route(auth="admin")``, 403 on wrong tags) to the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...plugins import Plugin, hookimpl
from ...types import ASGIApp, MiddlewareFactory
from .authenticator import Authenticator
from .config import AuthConfig
from .middleware import AuthMiddleware, PublicPaths

if TYPE_CHECKING:
    from ...server import AsgiServer


class AuthPlugin(Plugin):
    config_model = AuthConfig
    config: AuthConfig

    def __init__(self, server: AsgiServer, config: AuthConfig) -> None:
        super().__init__(server, config)
        self.authenticator = Authenticator(config)
        server.authenticator = self.authenticator
        server.auth_challenge = self.authenticator.challenge
        if config.api_key is not None:
            server.credential_headers.add(config.api_key.header.lower())

    @hookimpl
    def genro_asgi_configure(self, server: AsgiServer) -> None:
        self.authenticator.compile_hooks(server)
        server.auth_challenge = self.authenticator.challenge  # with the identify plugins'

    @hookimpl
    def genro_asgi_middleware(self, server: AsgiServer) -> MiddlewareFactory:
        public = PublicPaths(self.config.public)

        def factory(app: ASGIApp) -> ASGIApp:
            return AuthMiddleware(app, server, self.authenticator, public, self.config.anonymous)

        # an error the envelope answers (431, a middleware that raised) is already decided:
        # asking for credentials then would turn it into a 401
        factory.joins_error_chain = False  # type: ignore[attr-defined]
        return factory
