"""The wsx plugin is discovered by entry point, loads when named, and validates its options."""

from __future__ import annotations

import pytest

from genro_asgi import AsgiServer, PluginError
from genro_asgi.plugins import installed_plugins
from genro_asgi_wsx import WsxConfig, WsxPlugin


def test_entry_point_is_discovered_without_loading() -> None:
    found = installed_plugins()["wsx"]
    assert found.distribution == "genro-asgi-wsx"
    assert found.value == "genro_asgi_wsx.plugin:WsxPlugin"


def test_not_loaded_unless_named(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={}, environ={})
    assert "wsx" not in server.plugins.names()


def test_loaded_when_named_with_validated_options(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"wsx": {}}}, environ={})
    plugin = server.plugins.get("wsx")
    assert isinstance(plugin, WsxPlugin)
    assert isinstance(plugin.config, WsxConfig)
    assert plugin.config.path == '/_wsx'


def test_unknown_option_names_the_key(tmp_path) -> None:
    with pytest.raises(PluginError, match=r"plugins\.wsx\.bogus"):
        AsgiServer(tmp_path, config={"plugins": {"wsx": {"bogus": 1}}}, environ={})
