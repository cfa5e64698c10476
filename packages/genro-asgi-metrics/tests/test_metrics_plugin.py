"""The metrics plugin is discovered by entry point, loads when named, and validates its options."""

from __future__ import annotations

import pytest

from genro_asgi import AsgiServer, PluginError
from genro_asgi.plugins import installed_plugins
from genro_asgi_metrics import MetricsConfig, MetricsPlugin


def test_entry_point_is_discovered_without_loading() -> None:
    found = installed_plugins()["metrics"]
    assert found.distribution == "genro-asgi-metrics"
    assert found.value == "genro_asgi_metrics.plugin:MetricsPlugin"


def test_not_loaded_unless_named(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={}, environ={})
    assert "metrics" not in server.plugins.names()


def test_loaded_when_named_with_validated_options(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"metrics": {}}}, environ={})
    plugin = server.plugins.get("metrics")
    assert isinstance(plugin, MetricsPlugin)
    assert isinstance(plugin.config, MetricsConfig)
    assert plugin.config.path == '/metrics'


def test_unknown_option_names_the_key(tmp_path) -> None:
    with pytest.raises(PluginError, match=r"plugins\.metrics\.bogus"):
        AsgiServer(tmp_path, config={"plugins": {"metrics": {"bogus": 1}}}, environ={})
