"""genro-asgi-debug: Remote pdb on failing requests, for developers only, secure by default."""

from .plugin import DebugConfig, DebugPlugin

__version__ = "0.1.0"

__all__ = ["DebugConfig", "DebugPlugin", "__version__"]
