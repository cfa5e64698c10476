"""The ``compression`` plugin: gzip, and brotli when installed, for HTTP responses.

Enabled by naming it under ``plugins:``; its middleware joins the HTTP chain only, as the
outermost plugin layer (``tryfirst``), so it compresses what every other middleware produced.
See docs/compression.md for the options and the exact rules.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...plugins import Plugin, hookimpl
from ...types import ASGIApp
from .config import ALWAYS_EXCLUDED, DEFAULT_EXCLUDE_TYPES, CompressionConfig
from .encoding import Codec, brotli_codec, choose_coding, gzip_codec, load_brotli
from .middleware import CompressionMiddleware, ResponsePolicy

if TYPE_CHECKING:
    from ...server import AsgiServer

logger = logging.getLogger("genro_asgi.compression")


class CompressionFactory:
    """The middleware factory handed to the core: HTTP scopes only."""

    scope_types = ("http",)

    def __init__(self, codecs: tuple[Codec, ...], policy: ResponsePolicy) -> None:
        self.codecs = codecs
        self.policy = policy

    def __call__(self, app: ASGIApp) -> ASGIApp:
        return CompressionMiddleware(app, self.codecs, self.policy)


class CompressionPlugin(Plugin):
    """Compresses responses for clients that accept gzip or br; see docs/compression.md."""

    config_model = CompressionConfig
    config: CompressionConfig

    def __init__(self, server: AsgiServer, config: CompressionConfig) -> None:
        super().__init__(server, config)
        brotli = load_brotli() if config.brotli else None
        codecs = [gzip_codec(config.gzip_level)]
        if brotli is not None:
            codecs.insert(0, brotli_codec(brotli, config.brotli_quality))
        self.codecs = tuple(codecs)
        self.policy = ResponsePolicy(int(config.minimum_size),
                                     [*config.exclude_types, *ALWAYS_EXCLUDED])
        # asked for in config (not just the default) but not installed: say so at startup
        self._brotli_missing = brotli is None and config.brotli and \
            "brotli" in config.model_fields_set

    @property
    def encodings(self) -> tuple[str, ...]:
        """The codings offered, most preferred first: ``("br", "gzip")`` or ``("gzip",)``."""
        return tuple(codec.name for codec in self.codecs)

    @hookimpl(tryfirst=True)
    def genro_asgi_middleware(self) -> CompressionFactory:
        return CompressionFactory(self.codecs, self.policy)

    @hookimpl
    def genro_asgi_startup(self) -> None:
        if self._brotli_missing:
            logger.warning("compression: brotli is enabled but neither 'brotli' nor "
                           "'brotlicffi' is installed; only gzip is used "
                           "(pip install 'genro-asgi-core[brotli]')")


__all__ = ["DEFAULT_EXCLUDE_TYPES", "CompressionConfig", "CompressionMiddleware",
           "CompressionPlugin", "choose_coding"]
