"""The debug plugin is discovered by entry point, loads when named, and validates its options."""

from __future__ import annotations

import pytest

from genro_asgi import AsgiServer, PluginError
from genro_asgi.plugins import installed_plugins
from genro_asgi_debug import DebugConfig, DebugPlugin


def test_entry_point_is_discovered_without_loading() -> None:
    found = installed_plugins()["debug"]
    assert found.distribution == "genro-asgi-debug"
    assert found.value == "genro_asgi_debug.plugin:DebugPlugin"


def test_not_loaded_unless_named(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={}, environ={})
    assert "debug" not in server.plugins.names()


def test_loaded_when_named_with_validated_options(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"debug": {}}}, environ={})
    plugin = server.plugins.get("debug")
    assert isinstance(plugin, DebugPlugin)
    assert isinstance(plugin.config, DebugConfig)
    assert plugin.config.secret is None


def test_unknown_option_names_the_key(tmp_path) -> None:
    with pytest.raises(PluginError, match=r"plugins\.debug\.bogus"):
        AsgiServer(tmp_path, config={"plugins": {"debug": {"bogus": 1}}}, environ={})
