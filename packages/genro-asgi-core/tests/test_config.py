"""Configuration: defaults, config.yaml, environment, CLI and constructor layers, secrets, errors.

Every error must name where it came from (the file) and what is wrong (the key path and what
was expected); every dump must hide secrets.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiServer, ConfigError
from genro_asgi.config import REDACTED, env_overrides, load_config


def write_config(directory: Path, text: str, name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults and the file --------------------------------------------------------------------


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, environ={})
    s = loaded.settings
    assert (s.server.host, s.server.port, s.server.workers) == ("127.0.0.1", 8000, 1)
    assert int(s.server.max_body_size) == 1024 * 1024
    assert s.server.shutdown_timeout == 30
    assert s.logging.level == "INFO"
    assert s.logging.trace_hooks is False
    assert (s.watchdog.enabled, s.watchdog.interval, s.watchdog.timeout,
            s.watchdog.critical) == (True, 30, 60, 300)
    assert s.plugins == {}
    assert s.apps == {}
    assert loaded.source == str(tmp_path / "config.yaml")


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, "# nothing here\n")
    assert load_config(tmp_path, environ={}).settings.server.port == 8000


def test_config_yaml_is_read_from_the_server_dir(tmp_path: Path) -> None:
    write_config(tmp_path, textwrap.dedent("""
        server: {port: 8123, workers: 3}
        logging: {level: DEBUG}
        watchdog: {enabled: false}
        plugins:
          errors: {show_traceback: true}
    """))
    s = load_config(tmp_path, environ={}).settings
    assert s.server.port == 8123
    assert s.server.workers == 3
    assert s.server.host == "127.0.0.1"  # untouched keys keep their defaults
    assert s.logging.level == "DEBUG"
    assert s.watchdog.enabled is False
    assert s.plugins == {"errors": {"show_traceback": True}}


def test_explicit_config_path_relative_to_server_dir(tmp_path: Path) -> None:
    write_config(tmp_path, "server: {port: 8200}\n", name="other.yaml")
    server = AsgiServer(tmp_path, config="other.yaml", environ={})
    assert server.settings.server.port == 8200
    assert server.config.source == str(tmp_path / "other.yaml")


def test_explicit_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found") as info:
        load_config(tmp_path, "missing.yaml", environ={})
    assert str(tmp_path / "missing.yaml") in str(info.value)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "server: {port: 8000\nlogging: [\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(tmp_path, environ={})
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just a string\n", "str"),
                                             ("42\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match="top level must be a mapping") as info:
        load_config(tmp_path, environ={})
    assert str(path) in str(info.value)
    assert kind in str(info.value)


def test_config_mapping_is_copied_not_mutated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    original = {"server": {"port": 8001},
                "plugins": {"errors": {}, "x": {"token": {"$env": "GAP_CFG_SECRET"}}}}
    snapshot = json.loads(json.dumps(original))
    loaded = load_config(tmp_path, original, environ={"GENRO_ASGI_SERVER_PORT": "9000",
                                                      "GAP_CFG_SECRET": "s3cret"},
                         overrides={"server": {"host": "0.0.0.0"}})
    assert loaded.source == "<config dict>"
    assert loaded.settings.server.port == 9000
    assert original == snapshot


# -- validation errors --------------------------------------------------------------------------


def test_validation_error_names_file_key_and_expectation(tmp_path: Path) -> None:
    path = write_config(tmp_path, "server:\n  port: not-a-number\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    message = str(info.value)
    assert str(path) in message
    assert "server.port" in message
    assert "valid integer" in message
    assert "'not-a-number'" in message  # what was given


def test_validation_error_for_out_of_range_and_unknown_keys(tmp_path: Path) -> None:
    write_config(tmp_path, "server:\n  port: 70000\n  prot: 1\nwatchdog:\n  interval: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    lines = str(info.value).splitlines()
    assert len(lines) == 3  # one line per problem
    joined = "\n".join(lines)
    assert "server.port: Input should be less than or equal to 65535" in joined
    assert "server.prot: Extra inputs are not permitted" in joined
    assert "watchdog.interval: Input should be greater than 0" in joined


def test_unknown_section_and_bad_enum(tmp_path: Path) -> None:
    write_config(tmp_path, "logging: {level: LOUD}\nsevrer: {port: 1}\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    message = str(info.value)
    assert "logging.level" in message
    assert "'DEBUG'" in message and "'CRITICAL'" in message  # lists what is accepted
    assert "sevrer" in message


def test_app_without_module_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"<config dict>: apps\.shop\.module: Field required"):
        load_config(tmp_path, {"apps": {"shop": {"currency": "EUR"}}}, environ={})


def test_error_from_a_constructor_dict_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"<config dict>: server\.workers"):
        AsgiServer(tmp_path, config={"server": {"workers": 0}}, environ={})


# -- environment --------------------------------------------------------------------------------


def test_env_override_of_a_server_key(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, environ={"GENRO_ASGI_SERVER_PORT": "9000"})
    assert server.settings.server.port == 9000


def test_env_keys_with_underscores_after_the_section(tmp_path: Path) -> None:
    s = load_config(tmp_path, environ={"GENRO_ASGI_SERVER_SHUTDOWN_TIMEOUT": "2.5",
                                       "GENRO_ASGI_SERVER_MAX_BODY_SIZE": "3MiB"}).settings
    assert s.server.shutdown_timeout == 2.5
    assert int(s.server.max_body_size) == 3 * 1024 * 1024


def test_env_nested_plugin_option(tmp_path: Path) -> None:
    environ = {"GENRO_ASGI_PLUGINS__ERRORS__SHOW_TRACEBACK": "true"}
    assert env_overrides(environ) == {"plugins": {"errors": {"show_traceback": True}}}
    server = AsgiServer(tmp_path, environ=environ)
    assert server.plugins.plugin_config("errors").show_traceback is True


def test_env_values_are_yaml_scalars(tmp_path: Path) -> None:
    tree = env_overrides({
        "GENRO_ASGI_SERVER_PORT": "9000",
        "GENRO_ASGI_WATCHDOG_ENABLED": "false",
        "GENRO_ASGI_SERVER_HOST": "0.0.0.0",
        "GENRO_ASGI_WATCHDOG_TIMEOUT": "1.5",
        "GENRO_ASGI_SERVER_ROOT_PATH": "",
        "GENRO_ASGI_PLUGINS__X__BROKEN": "[unclosed",
    })
    assert tree["server"] == {"port": 9000, "host": "0.0.0.0", "root_path": ""}
    assert tree["watchdog"] == {"enabled": False, "timeout": 1.5}
    assert tree["plugins"] == {"x": {"broken": "[unclosed"}}  # not YAML: kept as text
    assert isinstance(tree["server"]["port"], int)


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    environ = {
        "PATH": "/usr/bin",
        "SERVER_PORT": "1",
        "GENRO_ASGISERVER_PORT": "2",
        "GENRO_ASGI_": "3",
        "GENRO_ASGI_SERVER": "4",
        "GENRO_ASGI_NOPE_PORT": "5",
        "GENRO_ASGI_SERVER__": "6",
        "XGENRO_ASGI_SERVER_PORT": "7",
    }
    assert env_overrides(environ) == {}
    assert load_config(tmp_path, environ=environ).settings == load_config(
        tmp_path, environ={}).settings


def test_environ_argument_replaces_the_process_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRO_ASGI_SERVER_PORT", "9100")
    assert AsgiServer(tmp_path, environ={}).settings.server.port == 8000
    assert AsgiServer(tmp_path).settings.server.port == 9100  # default: os.environ


def test_env_override_is_validated_like_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.port: Input should be a valid integer"):
        load_config(tmp_path, environ={"GENRO_ASGI_SERVER_PORT": "lots"})


# -- precedence ---------------------------------------------------------------------------------


def test_precedence_defaults_file_env_cli_constructor(tmp_path: Path) -> None:
    write_config(tmp_path, "server: {port: 8001, workers: 2, host: 10.0.0.1}\n"
                           "watchdog: {timeout: 11}\n")
    environ = {"GENRO_ASGI_SERVER_PORT": "8002", "GENRO_ASGI_SERVER_WORKERS": "3"}
    cli = {"server": {"port": 8003, "host": "10.0.0.3"}}

    def port_of(**kwargs: object) -> int:
        return AsgiServer(tmp_path, **kwargs).settings.server.port  # type: ignore[arg-type]

    assert port_of(environ={}) == 8001
    assert port_of(environ=environ) == 8002
    assert port_of(environ=environ, cli=cli) == 8003
    assert port_of(environ=environ, cli=cli, port=8004) == 8004
    assert port_of(environ={}, port=8004) == 8004

    server = AsgiServer(tmp_path, environ=environ, cli=cli, port=8004)
    s = server.settings
    # each layer wins only for the keys it sets; the rest comes from below
    assert s.server.workers == 3  # env over file
    assert s.server.host == "10.0.0.3"  # cli over file
    assert s.watchdog.timeout == 11  # file over defaults
    assert s.watchdog.critical == 300  # defaults


def test_constructor_overrides_by_section(tmp_path: Path) -> None:
    write_config(tmp_path, "watchdog: {enabled: true, interval: 5}\n")
    server = AsgiServer(tmp_path, environ={}, watchdog={"enabled": False},
                        logging={"level": "WARNING"})
    assert server.settings.watchdog.enabled is False
    assert server.settings.watchdog.interval == 5  # merged, not replaced
    assert server.settings.logging.level == "WARNING"


def test_unknown_constructor_keyword_is_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'prot'"):
        AsgiServer(tmp_path, environ={}, prot=8000)


# -- sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    ("2MiB", 2 * 1024 * 1024), ("1KB", 1000), ("1KiB", 1024), ("512", 512), (4096, 4096),
    ("1.5MiB", 1572864),
])
def test_byte_sizes(tmp_path: Path, given: object, expected: int) -> None:
    server = AsgiServer(tmp_path, environ={}, max_body_size=given)
    assert int(server.settings.server.max_body_size) == expected


def test_bad_byte_size_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.max_body_size: .*'lots'"):
        load_config(tmp_path, {"server": {"max_body_size": "lots"}}, environ={})


# -- secrets ------------------------------------------------------------------------------------


def test_env_and_file_secrets_are_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key.txt").write_text("key-from-file\n")
    absolute = tmp_path / "abs.txt"
    absolute.write_text("absolute-secret")
    write_config(tmp_path, f"""
plugins:
  vault:
    token: {{$env: GAP_TOKEN}}
    key: {{$file: secrets/key.txt}}
    other: {{$file: {absolute}}}
    many: [plain, {{$env: GAP_TOKEN}}]
""")
    loaded = load_config(tmp_path, environ={"GAP_TOKEN": "tok-from-env"})
    vault = loaded.settings.plugins["vault"]
    assert vault == {"token": "tok-from-env", "key": "key-from-file",
                     "other": "absolute-secret", "many": ["plain", "tok-from-env"]}
    assert loaded.secret_paths == {("plugins", "vault", "token"), ("plugins", "vault", "key"),
                                   ("plugins", "vault", "other"),
                                   ("plugins", "vault", "many", 1)}


def test_file_secret_is_relative_to_server_dir_not_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server_dir = tmp_path / "srv"
    server_dir.mkdir()
    (server_dir / "pw").write_text("right")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pw").write_text("wrong")
    monkeypatch.chdir(elsewhere)
    loaded = load_config(server_dir, {"plugins": {"db": {"pw": {"$file": "pw"}}}}, environ={})
    assert loaded.settings.plugins["db"] == {"pw": "right"}


def test_missing_env_secret_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.delenv("GAP_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, {"plugins": {"auth": {"bearer": {"ci": {
            "token": {"$env": "GAP_NOT_SET"}}}}}}, environ={})
    assert "plugins.auth.bearer.ci.token" in str(info.value)
    assert "'GAP_NOT_SET' is not set" in str(info.value)


def test_missing_file_secret_names_the_key_and_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, {"server": {"ssl_keyfile": {"$file": "nope.key"}}}, environ={})
    message = str(info.value)
    assert "server.ssl_keyfile" in message
    assert str(tmp_path / "nope.key") in message


def test_dump_redacts_every_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw.txt").write_text("file-SECRET-3")
    (tmp_path / "key.pem").write_text("pem-SECRET-4")
    write_config(tmp_path, """
server: {port: 8010, ssl_keyfile: {$file: key.pem}}
plugins:
  errors: {}
  vault:
    token: {$env: GAP_TOKEN}
    nested: {deep: {pw: {$file: pw.txt}}}
    list: [{$env: GAP_TOKEN}, visible]
apps:
  shop: {module: "shop:App", api_key: {$env: GAP_APPKEY}, currency: EUR}
""")
    loaded = load_config(tmp_path, environ={"GAP_TOKEN": "tok-SECRET-1",
                                            "GAP_APPKEY": "app-SECRET-2"})
    dumped = loaded.dump()
    text = json.dumps(dumped)
    assert "SECRET" not in text
    assert dumped["server"]["ssl_keyfile"] == REDACTED
    assert dumped["server"]["port"] == 8010
    assert dumped["server"]["max_body_size"] == 1024 * 1024  # defaults are filled in
    assert dumped["plugins"]["vault"]["token"] == REDACTED
    assert dumped["plugins"]["vault"]["nested"]["deep"]["pw"] == REDACTED
    assert dumped["plugins"]["vault"]["list"] == [REDACTED, "visible"]
    assert dumped["apps"]["shop"]["api_key"] == REDACTED
    assert dumped["apps"]["shop"]["currency"] == "EUR"
    # the live settings still hold the real values
    assert loaded.settings.server.ssl_keyfile == "pem-SECRET-4"
    assert loaded.settings.apps["shop"].params["api_key"] == "app-SECRET-2"


PLAIN_SECRETS = ("plain-bearer-SECRET-1", "plain-apikey-SECRET-2",
                 "plain-jwt-SECRET-3-0123456789abcdef0123456789", "env-override-SECRET-4",
                 "env-ref-SECRET-5", "app-param-SECRET-6", "untyped-SECRET-7")


def _secret_config(tmp_path: Path) -> Path:
    from genro_asgi.builtin.auth.passwords import hash_password

    hashed = hash_password("pw", iterations=1000)
    write_config(tmp_path, f"""
plugins:
  auth:
    bearer: {{ci: {{token: {PLAIN_SECRETS[0]}, tags: [admin]}}, ref: {{token: {{$env: REF}}}}}}
    basic: {{alice: {{password_hash: "{hashed}"}}}}
    api_key: {{keys: {{svc: {{key: {PLAIN_SECRETS[1]}}}}}}}
    jwt: {{secret: {PLAIN_SECRETS[2]}, algorithms: [HS256]}}
apps:
  shop: {{module: "genro_asgi:AsgiApplication", api_key: {PLAIN_SECRETS[5]}, currency: EUR}}
""")
    return tmp_path


def test_plain_text_secrets_are_redacted_in_the_dump(tmp_path: Path) -> None:
    from genro_asgi import AsgiServer

    _secret_config(tmp_path)
    server = AsgiServer(tmp_path, environ={
        "REF": PLAIN_SECRETS[4],
        "GENRO_ASGI_PLUGINS__AUTH__BEARER__OPS__TOKEN": PLAIN_SECRETS[3]})
    dumped = server.dump_config()
    text = json.dumps(dumped)
    for secret in PLAIN_SECRETS[:6]:
        assert secret not in text
    assert "pbkdf2_sha256" not in text
    auth = dumped["plugins"]["auth"]
    assert auth["bearer"]["ci"] == {"tags": ["admin"], "token": REDACTED}
    assert auth["bearer"]["ops"]["token"] == REDACTED  # from the environment variable
    assert auth["basic"]["alice"]["password_hash"] == REDACTED
    assert auth["api_key"]["keys"]["svc"]["key"] == REDACTED
    assert auth["jwt"]["secret"] == REDACTED
    assert auth["jwt"]["algorithms"] == ["HS256"]  # what is not secret stays readable
    assert dumped["apps"]["shop"]["api_key"] == REDACTED
    assert dumped["apps"]["shop"]["currency"] == "EUR"


def test_options_without_a_model_are_redacted_by_key_name(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, {"plugins": {"custom": {
        "token": PLAIN_SECRETS[6], "nested": {"db_password": "pw-SECRET", "host": "db"},
        "keys": ["a", "b"], "private_key": 12345, "enabled": True}}}, environ={})
    dumped = loaded.dump()
    custom = dumped["plugins"]["custom"]
    assert custom["token"] == REDACTED
    assert custom["nested"] == {"db_password": REDACTED, "host": "db"}
    assert custom["private_key"] == REDACTED
    assert custom["keys"] == ["a", "b"]  # a list is walked, not hidden whole
    assert custom["enabled"] is True
    assert "SECRET" not in json.dumps(dumped)


def test_config_command_never_prints_secrets(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    _secret_config(tmp_path)
    env = {**os.environ, "REF": PLAIN_SECRETS[4],
           "GENRO_ASGI_PLUGINS__AUTH__BEARER__OPS__TOKEN": PLAIN_SECRETS[3]}
    for extra in ([], ["--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "genro_asgi", "config", str(tmp_path), *extra],
            capture_output=True, text=True, env=env, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        output = result.stdout + result.stderr
        assert "token" in output and "***" in output
        for secret in PLAIN_SECRETS[:6]:
            assert secret not in output
        assert "pbkdf2_sha256" not in output


def test_validation_errors_never_echo_a_secret(tmp_path: Path) -> None:
    from genro_asgi import AsgiServer
    from genro_asgi.exceptions import GenroAsgiError

    for options in ({"bearer": {"ci": {"token": "SECRET7"}}},
                    {"bearer": {"ci": {"token": ["list-SECRET"]}}},
                    {"api_key": {"keys": {"svc": {"key": "k-SECRET", "extra": "x"}}}},
                    {"jwt": {"secret": "tiny-SECRET", "algorithms": ["HS256"]}}):
        with pytest.raises(GenroAsgiError) as info:
            AsgiServer(tmp_path, config={"plugins": {"auth": options}}, environ={})
        assert "SECRET" not in str(info.value), str(info.value)


@pytest.mark.parametrize(("text", "words"), [
    ("server: &x {port: *x}\n", "refers to a mapping or list that contains it"),
    ("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n", "expands to more than"),
])
def test_yaml_alias_bombs_are_config_errors(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match=words):
        load_config(tmp_path, environ={})


def test_config_file_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_bytes(b"server: {host: \xff\xfe}\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(tmp_path, environ={})


@pytest.mark.parametrize("ref", [{"$env": ["a", "b"]}, {"$env": 3}, {"$file": None},
                                 {"$env": ""}])
def test_secret_reference_must_be_a_name(tmp_path: Path, ref: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="must be a non-empty string"):
        load_config(tmp_path, {"apps": {"shop": {"module": "x:Y", "key": ref}}}, environ={})


def test_validation_error_never_echoes_a_value_from_a_secret_reference(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, {"server": {"port": {"$env": "P"}}}, environ={"P": "hunter2-pw"})
    assert "server.port" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("written", ["warning", "Warning", "WARNING"])
def test_log_level_in_any_case(tmp_path: Path, written: str) -> None:
    write_config(tmp_path, f"logging: {{level: {written}}}\n")
    assert load_config(tmp_path).settings.logging.level == "WARNING"


def test_an_unknown_log_level_is_still_refused(tmp_path: Path) -> None:
    write_config(tmp_path, "logging: {level: loud}\n")
    with pytest.raises(ConfigError, match=r"logging\.level"):
        load_config(tmp_path)
