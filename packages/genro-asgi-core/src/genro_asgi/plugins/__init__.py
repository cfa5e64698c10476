"""The plugin system: hook markers, hook specifications, the Plugin base class and the manager.

Names are imported on first use: a plugin module that takes only ``hookimpl`` does not load
the manager (pluggy's registry, entry-point discovery).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(("CliCommand", "Plugin"), ".base"),
    **dict.fromkeys(("InstalledPlugin", "PluginManager", "installed_plugins"), ".manager"),
    **dict.fromkeys(("PROJECT", "hookimpl", "hookspec"), ".markers"),
})

if TYPE_CHECKING:
    from .base import CliCommand, Plugin
    from .manager import InstalledPlugin, PluginManager, installed_plugins
    from .markers import PROJECT, hookimpl, hookspec

__all__ = [
    "PROJECT",
    "CliCommand",
    "InstalledPlugin",
    "Plugin",
    "PluginManager",
    "hookimpl",
    "hookspec",
    "installed_plugins",
]
