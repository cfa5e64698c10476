"""A third-party plugin, end to end: packaged, installed, discovered, enabled, served.

A real distribution (hatchling build backend) declaring an entry point in the ``genro_asgi``
group is installed with pip into a private target directory (nothing touches the shared venv).
The plugin adds a response header (middleware), sets server state (startup) and mounts a routing
class (mount). A real server is started with ``python -m genro_asgi serve`` in a subprocess on a
free loopback port, and ``genro-asgi plugins --json`` must list the plugin with its distribution
and version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genro_asgi import AsgiServer
from genro_asgi.plugins import installed_plugins
from genro_asgi.testing import TestClient, free_port

DIST_NAME = "gap-thirdparty-plugin"
DIST_VERSION = "1.4.2"
PACKAGE = "gap_thirdparty"
STARTUP_DEADLINE = 60  # seconds: a guard against a server that never comes up

PYPROJECT = f"""
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{DIST_NAME}"
version = "{DIST_VERSION}"
description = "A third-party genro-asgi plugin used by the core's tests"
requires-python = ">=3.11"
dependencies = ["genro-asgi-core>=0.1,<1"]

[project.entry-points.genro_asgi]
thirdparty = "{PACKAGE}:ThirdPartyPlugin"

[tool.hatch.build.targets.wheel]
packages = ["src/{PACKAGE}"]
"""

PLUGIN = '''
"""A third-party genro-asgi plugin: middleware, startup state and a mounted routing class."""

from pydantic import BaseModel, ConfigDict

from genro_asgi import AsgiApplication, Plugin, hookimpl, route


class ThirdPartyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    greeting: str = "hello"
    header_value: str = "yes"


class Greeter(AsgiApplication):
    @route()
    def greet(self):
        plugin = self.server.plugins.get("thirdparty")
        return {"greeting": plugin.config.greeting,
                "started": self.server.state.thirdparty_started}


class ThirdPartyPlugin(Plugin):
    config_model = ThirdPartyConfig
    requires_core = ">=0.1,<1"

    @hookimpl
    def genro_asgi_middleware(self, server):
        value = self.config.header_value.encode()

        def factory(app):
            async def middleware(scope, receive, send):
                async def send_with_header(message):
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message.get("headers", []),
                                              (b"x-third-party", value)]
                    await send(message)

                await app(scope, receive, send_with_header)

            return middleware

        return factory

    @hookimpl
    async def genro_asgi_startup(self, server):
        server.state.thirdparty_started = "started-by-plugin"

    @hookimpl
    def genro_asgi_mount(self, server):
        return {"/thirdparty": Greeter()}
'''


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and install the distribution into a private target directory, once per module."""
    root = tmp_path_factory.mktemp("thirdparty")
    project = root / "project"
    (project / "src" / PACKAGE).mkdir(parents=True)
    (project / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT), encoding="utf-8")
    (project / "README.md").write_text("test plugin\n", encoding="utf-8")
    (project / "src" / PACKAGE / "__init__.py").write_text(PLUGIN, encoding="utf-8")
    site = root / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-build-isolation", "--no-deps", "--no-index", "--target", str(site),
         str(project)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / PACKAGE / "__init__.py").exists()
    assert any(site.glob("gap_thirdparty_plugin-1.4.2.dist-info"))
    return site


@pytest.fixture
def on_path(site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(site_dir))
    sys.modules.pop(PACKAGE, None)
    yield site_dir
    sys.modules.pop(PACKAGE, None)


def write_server_dir(directory: Path, plugins: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(json.dumps({"plugins": plugins}), encoding="utf-8")
    return directory


def subprocess_env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENRO_ASGI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def genro_asgi_command() -> list[str]:
    script = Path(sys.executable).parent / "genro-asgi"
    return [str(script)] if script.exists() else [sys.executable, "-m", "genro_asgi"]


# -- in process ---------------------------------------------------------------------------------


def test_installed_plugin_is_discovered_without_import(on_path: Path) -> None:
    found = installed_plugins()
    assert found["thirdparty"].distribution == DIST_NAME
    assert found["thirdparty"].version == DIST_VERSION
    assert found["thirdparty"].value == f"{PACKAGE}:ThirdPartyPlugin"
    assert PACKAGE not in sys.modules


def test_installed_plugin_runs_in_process(on_path: Path, tmp_path: Path) -> None:
    server = AsgiServer(write_server_dir(tmp_path, {"thirdparty": {"header_value": "inproc"}}),
                        environ={})
    loaded = server.plugins.loaded["thirdparty"]
    assert (loaded.distribution, loaded.version) == (DIST_NAME, DIST_VERSION)
    with TestClient(server) as client:
        response = client.get("/thirdparty/greet")
        assert response.status_code == 200
        assert response.headers["x-third-party"] == "inproc"
        assert response.json() == {"greeting": "hello", "started": "started-by-plugin"}
        assert client.get("/nowhere").headers["x-third-party"] == "inproc"


def test_installed_plugin_options_are_validated(on_path: Path, tmp_path: Path) -> None:
    from genro_asgi import PluginError

    with pytest.raises(PluginError, match=r"plugins\.thirdparty\.colour"):
        AsgiServer(write_server_dir(tmp_path, {"thirdparty": {"colour": "red"}}), environ={})


# -- a real server in a subprocess --------------------------------------------------------------


@pytest.mark.e2e
def test_served_by_the_cli(site_dir: Path, tmp_path: Path) -> None:
    server_dir = write_server_dir(tmp_path / "srv", {
        "thirdparty": {"greeting": "ciao", "header_value": "e2e"}})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "genro_asgi", "serve", str(server_dir), "--port", str(port)],
        env=subprocess_env(site_dir), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        with httpx.Client(base_url=url, timeout=5) as client:
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"the server exited with {proc.returncode}:\n{log.read()}")
                try:
                    response = client.get("/thirdparty/greet")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        log.seek(0)
                        pytest.fail(f"the server never answered:\n{log.read()}")
                    time.sleep(0.1)
            assert response.status_code == 200
            assert response.headers["x-third-party"] == "e2e"
            assert response.json() == {"greeting": "ciao", "started": "started-by-plugin"}
            missing = client.get("/nowhere")
            assert missing.status_code == 404
            assert missing.headers["x-third-party"] == "e2e"
        proc.terminate()  # SIGTERM: uvicorn shuts down gracefully, lifespan included
        proc.wait(timeout=STARTUP_DEADLINE)
        log.seek(0)
        output = log.read()
        assert "Application startup complete" in output
        assert "Application shutdown complete" in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.e2e
def test_plugins_command_lists_it(site_dir: Path, tmp_path: Path) -> None:
    enabled_dir = write_server_dir(tmp_path / "enabled", {"thirdparty": {}})
    disabled_dir = write_server_dir(tmp_path / "disabled", {})
    rows_by_dir = {}
    for directory in (enabled_dir, disabled_dir):
        result = subprocess.run(
            [*genro_asgi_command(), "plugins", str(directory), "--json"],
            env=subprocess_env(site_dir), capture_output=True, text=True, timeout=120,
            check=False, cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        rows_by_dir[directory] = {row["name"]: row for row in json.loads(result.stdout)}

    row = rows_by_dir[enabled_dir]["thirdparty"]
    assert row["distribution"] == DIST_NAME
    assert row["version"] == DIST_VERSION
    assert row["enabled"] is True
    assert {"genro_asgi_middleware", "genro_asgi_mount", "genro_asgi_startup"} <= set(
        row["hooks"])
    assert "order" in row
    errors = rows_by_dir[enabled_dir]["errors"]
    assert (errors["distribution"], errors["enabled"]) == ("genro-asgi-core", True)

    row = rows_by_dir[disabled_dir]["thirdparty"]  # installed is not enabled
    assert row["enabled"] is False
    assert (row["distribution"], row["version"]) == (DIST_NAME, DIST_VERSION)
