"""Loading and configuration: the plugin is off unless named and refuses unsafe configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from debug_helpers import SECRET

from genro_asgi import AsgiServer, ConfigError, PluginError
from genro_asgi.plugins import installed_plugins
from genro_asgi_debug import DebugConfig, DebugPlugin

ENV = {"DEBUG_SECRET": SECRET}
REF = {"$env": "DEBUG_SECRET"}


def build(tmp_path: Path, environ: dict[str, str] | None = None, **options: object) -> AsgiServer:
    return AsgiServer(tmp_path, config={"plugins": {"debug": options}},
                      environ=ENV if environ is None else environ)


def test_entry_point_is_discovered_without_loading() -> None:
    found = installed_plugins()["debug"]
    assert found.distribution == "genro-asgi-debug"
    assert found.value == "genro_asgi_debug.plugin:DebugPlugin"


def test_not_loaded_unless_named(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, config={}, environ={})
    assert "debug" not in server.plugins.names()


def test_loaded_with_a_secret_from_the_environment(tmp_path: Path) -> None:
    server = build(tmp_path, secret=REF)
    plugin = server.plugins.get("debug")
    assert isinstance(plugin, DebugPlugin)
    assert isinstance(plugin.config, DebugConfig)
    assert plugin.config.secret.get_secret_value() == SECRET
    assert plugin.config.park_timeout == 60 and plugin.config.max_parked == 2
    assert server.config.dump()["plugins"]["debug"]["secret"] == "***"


def test_secret_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "debug.secret").write_text(SECRET + "\n")
    server = build(tmp_path, environ={}, secret={"$file": "debug.secret"})
    assert server.plugins.get("debug").config.secret.get_secret_value() == SECRET


def test_secret_is_required(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"plugins\.debug.*secret is required"):
        build(tmp_path)


def test_missing_environment_variable_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DEBUG_SECRET"):
        build(tmp_path, environ={}, secret=REF)


def test_short_secret_refused(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="at least 16 characters"):
        build(tmp_path, environ={"DEBUG_SECRET": "short"}, secret=REF)


def test_secret_written_in_the_config_refused(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"\{\$env: VAR\} or \{\$file: path\}"):
        build(tmp_path, secret=SECRET)


def test_disabled_needs_no_secret_and_is_inert(tmp_path: Path) -> None:
    server = build(tmp_path, environ={}, enabled=False)
    assert "debug" in server.plugins.names()
    assert server.plugins.get("debug").config.enabled is False


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_non_loopback_server_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(PluginError, match=r"not a loopback address.*allow_remote"):
        AsgiServer(tmp_path, config={"server": {"host": host},
                                     "plugins": {"debug": {"secret": REF}}}, environ=ENV)


def test_non_loopback_server_needs_allowed_ips_too(tmp_path: Path) -> None:
    config = {"server": {"host": "0.0.0.0"},
              "plugins": {"debug": {"secret": REF, "allow_remote": True}}}
    with pytest.raises(PluginError, match="allowed_ips"):
        AsgiServer(tmp_path, config=config, environ=ENV)
    config["plugins"]["debug"]["allowed_ips"] = ["10.0.0.0/8"]
    server = AsgiServer(tmp_path, config=config, environ=ENV)
    assert [str(n) for n in server.plugins.get("debug").config.allowed_ips] == ["10.0.0.0/8"]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_server_accepted(tmp_path: Path, host: str) -> None:
    server = AsgiServer(tmp_path, config={"server": {"host": host},
                                          "plugins": {"debug": {"secret": REF}}}, environ=ENV)
    assert "debug" in server.plugins.names()


def test_remote_tcp_listener_refused_without_consent(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"debug listener host '0\.0\.0\.0'"):
        build(tmp_path, secret=REF, port=9999, host="0.0.0.0")
    server = build(tmp_path, secret=REF, port=9999, host="0.0.0.0", allow_remote=True,
                   allowed_ips=["192.168.1.7"])
    assert server.plugins.get("debug").config.port == 9999


def test_tcp_port_with_several_workers_refused(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="several workers"):
        AsgiServer(tmp_path, config={"server": {"workers": 2},
                                     "plugins": {"debug": {"secret": REF, "port": 9999}}},
                   environ=ENV)


@pytest.mark.parametrize(("key", "value"), [("park_timeout", 0), ("max_parked", 0),
                                            ("idle_timeout", -1), ("port", 70000),
                                            ("allowed_ips", ["not-an-ip"]), ("bogus", 1)])
def test_bad_option_names_the_key(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(PluginError, match=rf"plugins\.debug\.{key}"):
        build(tmp_path, secret=REF, **{key: value})


def test_socket_dir_that_is_a_symlink_is_refused(tmp_path: Path, make_client) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    server = build(tmp_path, secret=REF, socket_dir=str(tmp_path / "link"))
    with pytest.raises(Exception, match="not a directory"):
        make_client(server)


def test_socket_dir_is_made_private(tmp_path: Path, make_client) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    server = build(tmp_path, secret=REF, socket_dir=str(loose))
    make_client(server)
    assert os.stat(loose).st_mode & 0o777 == 0o700
    sockets = list(loose.iterdir())
    assert [p.name for p in sockets] == [f"genro-asgi-debug-{os.getpid()}.sock"]
    assert os.stat(sockets[0]).st_mode & 0o777 == 0o600


def test_audit_file_is_created_private(tmp_path: Path, make_client) -> None:
    server = build(tmp_path, secret=REF, socket_dir=str(tmp_path / "s"),
                   audit_file="logs/audit.jsonl")
    make_client(server)
    assert os.stat(tmp_path / "logs" / "audit.jsonl").st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("plant", "reason"), [
    ("symlink", "is a symbolic link"),
    ("fifo", "is not a regular file"),  # opening it must not wait for a reader
    ("directory", "Is a directory"),
])
def test_an_audit_file_that_is_not_a_plain_file_is_refused(
        tmp_path: Path, make_client, plant: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "audit.jsonl"
    elsewhere = tmp_path / "elsewhere.log"
    if plant == "symlink":
        target.symlink_to(elsewhere)
    elif plant == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    server = build(tmp_path, secret=REF, socket_dir=str(tmp_path / "s"),
                   audit_file="audit.jsonl")
    with pytest.raises(RuntimeError, match=rf"plugins\.debug\.audit_file: .*{reason}"):
        make_client(server)
    assert not elsewhere.exists()  # nothing was written through the link
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").iterdir())  # no listener


def test_contributes_a_genro_asgi_command(tmp_path: Path) -> None:
    server = build(tmp_path, secret=REF)
    commands = server.plugins.call_sync("genro_asgi_cli_commands", server=server)
    assert [c.name for batch in commands for c in batch] == ["debug"]


def test_a_loud_warning_at_every_start(tmp_path: Path, make_client,  # type: ignore[no-untyped-def]
                                       caplog: pytest.LogCaptureFixture) -> None:
    server = build(tmp_path, secret=REF, socket_dir=str(tmp_path / "s"))
    with caplog.at_level("WARNING", logger="genro_asgi_debug"):
        make_client(server)
    (loud,) = [r for r in caplog.records if "DEBUG PLUGIN ENABLED" in r.getMessage()]
    assert loud.levelname == "WARNING" and "can run any code" in loud.getMessage()
    assert str(tmp_path / "s") in loud.getMessage()  # where it listens
