"""The plugin system: hook markers, hook specifications, the Plugin base class and the manager."""

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
