"""The ``cors`` plugin: validates its options, compiles the policy, returns the middleware.

Its middleware is registered ``tryfirst`` so that it sits outside every unordered plugin, auth
included: a browser never sends credentials on a preflight, so the preflight must be answered
before anything asks who the client is, and a 401 must still carry CORS headers for the page
to read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...plugins import Plugin, hookimpl
from .config import CorsConfig
from .middleware import CorsMiddleware
from .policy import CorsPolicy

if TYPE_CHECKING:
    from ...server import AsgiServer
    from ...types import ASGIApp, MiddlewareFactory


class CorsPlugin(Plugin):
    """The Fetch standard's CORS for http and WebSocket handshakes; see docs/cors.md."""

    config_model = CorsConfig
    config: CorsConfig

    def __init__(self, server: AsgiServer, config: CorsConfig) -> None:
        super().__init__(server, config)
        self.policy = CorsPolicy(config)

    def origin_allowed(self, origin: str) -> bool:
        """Whether the policy lets ``origin`` (an Origin header value) in."""
        try:
            raw = origin.encode("latin-1")
        except UnicodeEncodeError:
            return False  # not something an HTTP header can carry
        return self.policy.allows(raw)

    @hookimpl(tryfirst=True)
    def genro_asgi_middleware(self) -> MiddlewareFactory:
        policy = self.policy

        def factory(app: ASGIApp) -> ASGIApp:
            return CorsMiddleware(app, policy)

        return factory
