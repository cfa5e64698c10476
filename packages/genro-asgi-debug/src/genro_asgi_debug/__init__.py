"""genro-asgi-debug: a remote post-mortem pdb on failing requests, and a request inspector.

For development and staging only: see docs/debug.md (and its threat model) before enabling.
"""

from .client import DebugClient, DebugClientError, worker_addresses
from .config import DebugConfig
from .plugin import DebugPlugin

__version__ = "0.2.0"

__all__ = ["DebugClient", "DebugClientError", "DebugConfig", "DebugPlugin", "__version__",
           "worker_addresses"]
