"""The executor plugin is discovered by entry point, loads when named, and validates its options."""

from __future__ import annotations

import pytest

from genro_asgi import AsgiServer, PluginError
from genro_asgi.plugins import installed_plugins
from genro_asgi_executor import ExecutorConfig, ExecutorPlugin


def test_entry_point_is_discovered_without_loading() -> None:
    found = installed_plugins()["executor"]
    assert found.distribution == "genro-asgi-executor"
    assert found.value == "genro_asgi_executor.plugin:ExecutorPlugin"


def test_not_loaded_unless_named(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={}, environ={})
    assert "executor" not in server.plugins.names()


def test_loaded_when_named_with_validated_options(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"executor": {}}}, environ={})
    plugin = server.plugins.get("executor")
    assert isinstance(plugin, ExecutorPlugin)
    assert isinstance(plugin.config, ExecutorConfig)
    assert plugin.config.path == '/_tasks'


def test_unknown_option_names_the_key(tmp_path) -> None:
    with pytest.raises(PluginError, match=r"plugins\.executor\.bogus"):
        AsgiServer(tmp_path, config={"plugins": {"executor": {"bogus": 1}}}, environ={})
