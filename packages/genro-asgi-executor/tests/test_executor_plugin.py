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


@pytest.mark.parametrize(("options", "message"), [
    ({"pools": {"io": {"kind": "Fiber!"}}}, r"plugins\.executor\.pools\.io\.kind"),
    ({"pools": {"io": {"kind": "thread", "options": {"a": 1}}}}, "not to thread pools"),
    ({"pools": {"io": {"kind": "thread", "workers": 0}}}, r"pools\.io\.workers"),
    ({"pools": {"io": {"kind": "thread", "start_method": "spawn"}}}, "process pools only"),
    ({"pools": {"cpu": {"kind": "process", "start_method": "fork"}}}, "start_method"),
    ({"pools": {"bad name": {"kind": "thread"}}}, "pool name"),
    ({"pools": {"io": {"kind": "thread", "max_pending": 0}}}, "max_pending"),
    ({"default_thread_pool": "cpu"}, "is a process pool"),
    ({"default_process_pool": "gpu"}, "no pool named 'gpu'"),
    ({"path": "tasks"}, "absolute path"),
    ({"auth_rule": "admin|("}, "invalid tag rule"),
    ({"retention": 0}, "retention"),
    ({"store": "redis"}, "store"),
])
def test_bad_options_are_refused(tmp_path, options, message) -> None:
    with pytest.raises(PluginError, match=message):
        AsgiServer(tmp_path, config={"plugins": {"executor": options}}, environ={})


def test_defaults(tmp_path) -> None:
    config = ExecutorConfig()
    assert set(config.pools) == {"io", "cpu"}
    assert (config.default_thread_pool, config.default_process_pool) == ("io", "cpu")
    assert config.pools["cpu"].start_method in ("forkserver", "spawn")
    assert config.pools["io"].workers >= 5
    only_threads = ExecutorConfig(pools={"db": {"kind": "thread", "workers": 3}})
    assert (only_threads.default_thread_pool, only_threads.default_process_pool) == ("db", None)


async def test_run_process_without_a_process_pool(tmp_path) -> None:
    from genro_asgi_executor import executor_of

    server = AsgiServer(tmp_path, config={"plugins": {"executor": {
        "pools": {"db": {"kind": "thread", "workers": 1}}}}}, environ={})
    await server.startup()
    try:
        with pytest.raises(ValueError, match="no process pool is configured"):
            await executor_of(server).run_process(print)
    finally:
        await server.shutdown()


def test_jobs_import_nothing_heavy() -> None:
    """A worker process importing the job-side API does not load the framework."""
    import subprocess
    import sys

    code = ("import sys, genro_asgi_executor as g; g.current_task(); "
            "print('genro_asgi' in sys.modules, 'pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
