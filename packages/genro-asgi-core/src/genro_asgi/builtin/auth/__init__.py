"""The built-in ``auth`` plugin (``plugins: {auth: {...}}``); see docs/auth.md."""

from .passwords import hash_password
from .plugin import AuthPlugin

__all__ = ["AuthPlugin", "hash_password"]
