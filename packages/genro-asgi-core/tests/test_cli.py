"""The ``genro-asgi`` command run as users run it: the installed entry point in a subprocess.

Covers --version, the serve flags' help and --log-level, routes (path parameters, auth rule, no
secrets read), plugin-not-installed and app-key hints, YAML errors naming the file,
help-plugins and plugin commands in --help, and a real ``serve`` answering a request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest

from genro_asgi.cli import build_parser
from genro_asgi.testing.live import free_port

CLI = str(Path(sys.executable).parent / "genro-asgi")
DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo"
TIMEOUT = 120  # generous: a loaded 2-core machine, never a threshold

APP = '''
from genro_asgi import AsgiApplication, route


class ShopApp(AsgiApplication):
    def __init__(self, currency: str = "EUR", api_key: str = "") -> None:
        super().__init__()
        self.currency = currency

    @route(methods=["GET"])
    def product(self, pid: int) -> dict:
        return {"pid": pid}

    @route(methods=["POST"], auth="admin|ops")
    def restock(self, pid: int, quantity: int, note: str = "") -> dict:
        return {"pid": pid}

    @route(methods=["GET"])
    def listing(self, *tags: str) -> dict:
        return {"tags": tags}
'''

PLUGIN = '''
import argparse
from genro_asgi import CliCommand, Plugin, hookimpl
from genro_asgi.exceptions import ConfigError


def greet(args: argparse.Namespace) -> int:
    if args.who == "nobody":
        raise ValueError("nobody to greet")
    if args.who == "config":
        raise ConfigError("greet.who: not a person")
    print(f"ciao {args.who}")
    return 0


class GreetPlugin(Plugin):
    @hookimpl
    def genro_asgi_cli_commands(self, server):
        return [CliCommand("greet", "say hello", greet,
                           lambda parser: parser.add_argument("who"))]
'''


def run(*args: str, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=cwd, env={**os.environ, **(env or {})})


def site(tmp_path: Path, config: str, *, app: bool = True, plugin: bool = False) -> Path:
    if app:
        (tmp_path / "shop.py").write_text(APP, encoding="utf-8")
    if plugin:
        (tmp_path / "greeter.py").write_text(PLUGIN, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(textwrap.dedent(config), encoding="utf-8")
    return tmp_path


# -- --version, help -------------------------------------------------------------------------

def test_version_lists_the_core_and_every_plugin_distribution() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert "genro-asgi-core" in lines
    for ep in entry_points(group="genro_asgi"):
        if ep.dist is not None:
            assert lines[ep.dist.name] == ep.dist.version


def test_every_serve_flag_has_help() -> None:
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flags = [a for a in serve._actions if a.option_strings and a.dest != "help"]
    assert {a.dest for a in flags} >= {"host", "port", "workers", "reload", "log_level",
                                       "config"}
    for action in flags:
        assert action.help and len(action.help) > 10, action.option_strings
    text = run("serve", "--help").stdout
    assert "--log-level {critical,error,warning,info,debug}" in text
    assert "server.port; default 8000" in text


def test_bad_log_level_is_refused(tmp_path: Path) -> None:
    result = run("serve", str(tmp_path), "--log-level", "loud")
    assert result.returncode == 2
    assert "argument --log-level: invalid choice: 'loud'" in result.stderr


def test_no_command_prints_help_with_plugin_commands_line(tmp_path: Path) -> None:
    result = run(cwd=tmp_path)
    assert result.returncode == 2
    assert "plugin commands: none (no plugin enabled in '.' adds commands)" in result.stdout


# -- routes -----------------------------------------------------------------------------------

ROUTES_CONFIG = """\
apps:
  shop:
    module: "shop:ShopApp"
    api_key: {$env: SHOP_API_KEY_NEVER_SET}
    currency: {$file: missing-secret.txt}
"""


def test_routes_show_path_parameters_auth_rule_without_reading_secrets(tmp_path: Path) -> None:
    site(tmp_path, ROUTES_CONFIG)
    # the config cannot be resolved: `config` says so, `routes` does not need it
    assert run("config", str(tmp_path)).returncode == 2
    result = run("routes", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["path"]: row for row in json.loads(result.stdout)}
    assert rows["/shop/product/{pid}"]["path_params"] == ["pid"]
    assert rows["/shop/product/{pid}"]["methods"] == ["GET", "HEAD"]
    restock = rows["/shop/restock/{pid}/{quantity}"]
    assert restock["auth"] == "admin|ops"
    assert restock["methods"] == ["POST"]
    assert rows["/shop/listing"]["path_params"] == []  # *tags: not a fixed segment
    table = run("routes", str(tmp_path)).stdout.splitlines()
    assert table[0].split() == ["PATH", "METHODS", "AUTH", "KIND"]
    assert any(line.split() == ["/shop/restock/{pid}/{quantity}", "POST", "admin|ops", "route"]
               for line in table)


def test_routes_of_the_demo(tmp_path: Path) -> None:
    # the demo's debugger secret is a $file made by `make serve`: routes works without it
    result = run("routes", str(DEMO))
    assert result.returncode == 0, result.stderr
    paths = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert paths["/shop/product/{pid}"][1] == "GET,HEAD"
    assert paths["/shop/restock/{pid}/{quantity}"][1:3] == ["POST", "admin"]


def test_plugins_show_what_is_enabled_without_reading_secrets(tmp_path: Path) -> None:
    site(tmp_path, """\
        plugins:
          auth:
            bearer: {ci: {token: {$file: missing-token.txt}, tags: [admin]}}
          cors: {allow_origins: ["https://app.example"]}
        """, app=False)
    result = run("plugins", str(tmp_path), "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    enabled = {row["name"] for row in json.loads(result.stdout) if row["enabled"]}
    assert {"auth", "cors", "errors"} <= enabled
    assert not (tmp_path / "missing-token.txt").exists()


def test_routes_with_a_missing_config_file(tmp_path: Path) -> None:
    result = run("routes", str(tmp_path), "--config", "nope.yaml")
    assert result.returncode == 2
    assert "nope.yaml: config file not found" in result.stderr


# -- errors -------------------------------------------------------------------------------------

def test_plugin_not_installed_names_file_distribution_and_close_match(tmp_path: Path) -> None:
    site(tmp_path, "plugins:\n  corss: {}\n", app=False)
    result = run("config", str(tmp_path))
    assert result.returncode == 2
    err = result.stderr
    assert err.startswith(f"genro-asgi: error: {tmp_path / 'config.yaml'}: plugins.corss: ")
    assert err.rstrip().endswith("; did you mean 'cors'?")
    assert "pip install" not in err  # the name is a typo, not a missing distribution


def test_plugin_not_installed_without_a_close_match(tmp_path: Path) -> None:
    site(tmp_path, "plugins:\n  zzqqxx: {}\n", app=False)
    err = run("routes", str(tmp_path)).stderr
    assert "plugin 'zzqqxx' is not installed (installed plugins: " in err
    assert "did you mean" not in err
    assert err.startswith(f"genro-asgi: error: {tmp_path / 'config.yaml'}: plugins.zzqqxx: ")
    assert ("install the distribution that provides it (genro-asgi's own plugins: pip install "
            "genro-asgi-zzqqxx), or give a dotted path with 'module:'") in err


def test_misspelled_app_key_gets_a_hint(tmp_path: Path) -> None:
    site(tmp_path, "apps:\n  shop: {module: 'shop:ShopApp', prefx: /s}\n")
    result = run("config", str(tmp_path))
    assert result.returncode == 2
    assert "rejected its params" in result.stderr
    assert "(did you mean 'prefix' for 'prefx'?)" in result.stderr


def test_yaml_error_names_the_file(tmp_path: Path) -> None:
    site(tmp_path, "server:\n  port: [1,\n", app=False)
    result = run("routes", str(tmp_path))
    assert result.returncode == 2
    assert "<unicode string>" not in result.stderr
    assert f'in "{tmp_path / "config.yaml"}", line 3' in result.stderr


# -- plugin commands ------------------------------------------------------------------------------

def test_help_plugins_says_when_none_adds_commands(tmp_path: Path) -> None:
    site(tmp_path, "plugins:\n  cors: {}\n", app=False)
    result = run("help-plugins", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "no plugin enabled in" in result.stdout
    assert "adds commands (enabled: errors, cors)" in result.stdout


def test_plugin_commands_are_listed_in_help_and_errors_are_prefixed(tmp_path: Path) -> None:
    site(tmp_path, "plugins:\n  greet: {module: 'greeter:GreetPlugin'}\n", app=False,
         plugin=True)
    help_text = run("--help", cwd=tmp_path).stdout
    assert "plugin commands (from the config in '.'):" in help_text
    assert "greet                say hello" in help_text
    assert run("help-plugins", str(tmp_path)).stdout.split() == ["greet", "say", "hello"]
    assert run("greet", str(tmp_path), "Ada").stdout == "ciao Ada\n"
    failed = run("greet", str(tmp_path), "nobody")
    assert failed.returncode == 1
    assert failed.stderr == "genro-asgi greet: error: nobody to greet\n"
    refused = run("greet", str(tmp_path), "config")
    assert refused.returncode == 2
    assert refused.stderr == "genro-asgi greet: error: greet.who: not a person\n"
    usage = run("greet", str(tmp_path))
    assert usage.returncode == 2
    assert "genro-asgi greet: error: the following arguments are required: who" in usage.stderr


def test_help_with_a_broken_config_still_prints(tmp_path: Path) -> None:
    site(tmp_path, "plugins:\n  zzqqxx: {}\n", app=False)
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "plugin commands: not listed (config of '.' not loaded:" in result.stdout


# -- serve, end to end --------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_serve_with_log_level_answers_a_request(tmp_path: Path) -> None:
    site(tmp_path, "apps:\n  shop: {module: 'shop:ShopApp'}\n")
    port = free_port()
    process = subprocess.Popen([CLI, "serve", str(tmp_path), "--port", str(port),
                                "--log-level", "WARNING"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        response = None
        for _ in range(600):  # up to ~60 s against a hang, never a timing threshold
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/shop/product/7", timeout=10)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1]
                time.sleep(0.1)
        assert response is not None and response.status_code == 200
        assert response.json() == {"pid": 7}
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=TIMEOUT)
    # warning level: uvicorn's INFO lines (startup, access log) are not printed
    assert "Uvicorn running on" not in err
    assert "GET /shop/product/7" not in err
