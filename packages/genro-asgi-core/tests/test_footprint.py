"""The worker footprint: what ``import genro_asgi`` and a running server load, and what not.

Every check runs in a fresh interpreter (this one has imported everything already) and looks
at ``sys.modules``, never at a time: a disabled feature's modules (YAML without a config file,
``packaging`` without a plugin that declares ``requires_core``, genro-tytx without a TYTX
request, h11 with the httptools protocol, the built-in plugins that are off, static files,
WebSockets, cookies, the HTML entity table, difflib's "did you mean") are loaded when first
needed, and then they work.
The lazily exported names of ``genro_asgi`` and ``genro_asgi.plugins`` still resolve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import genro_asgi
import genro_asgi.plugins
from genro_asgi.testing.live import free_port

TIMEOUT = 120
# what a server that uses none of these features must not load
DISABLED = ("yaml", "packaging", "python_multipart", "genro_tytx", "h11", "http.cookies",
            "html.entities", "argparse", "difflib", "genro_asgi.http_h11", "genro_asgi.staticfiles",
            "genro_asgi.websocket", "genro_asgi.builtin.cors", "genro_asgi.builtin.auth",
            "genro_asgi.builtin.compression", "genro_asgi.cli")


def clean_env() -> dict[str, str]:
    """This environment without GENRO_ASGI_* variables (they would be read as config)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GENRO_ASGI_")}


def loaded_after(code: str, cwd: Path) -> set[str]:
    """The modules loaded once ``code`` ran in a fresh interpreter."""
    script = code + "\nimport json, sys\nprint('MODULES=' + json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def test_import_genro_asgi_loads_only_the_package(tmp_path: Path) -> None:
    loaded = loaded_after("import genro_asgi", tmp_path)
    ours = {m for m in loaded if m.startswith("genro_asgi")}
    assert ours == {"genro_asgi", "genro_asgi.lazy"}
    assert not loaded & {"genro_routes", "pydantic", "uvicorn", *DISABLED}


def test_an_apps_imports_load_no_disabled_feature(tmp_path: Path) -> None:
    loaded = loaded_after("from genro_asgi import AsgiApplication, AsgiServer, route", tmp_path)
    assert {"genro_asgi.server", "genro_asgi.routing", "genro_routes"} <= loaded
    assert not loaded & {"uvicorn", "genro_asgi.http_protocol", *DISABLED}


def test_a_plugin_modules_imports_do_not_load_the_manager(tmp_path: Path) -> None:
    loaded = loaded_after("from genro_asgi.plugins import hookimpl, hookspec", tmp_path)
    assert "pluggy" in loaded
    assert not loaded & {"genro_asgi.plugins.manager", "genro_asgi.server", "pydantic"}


SERVER_NO_FILE = """
from genro_asgi import AsgiApplication, AsgiServer, route
class App(AsgiApplication):
    @route()
    def hello(self) -> str:
        return "hi"
server = AsgiServer({directory!r}{extra})
server.mount("/", App())
"""


def test_a_server_without_a_config_file_never_loads_yaml(tmp_path: Path) -> None:
    code = SERVER_NO_FILE.format(directory=str(tmp_path), extra="")
    loaded = loaded_after(code + "server.uvicorn_options()", tmp_path)
    assert "genro_asgi.builtin.errors" in loaded  # always on
    assert not loaded & set(DISABLED)
    # the HTTP protocol is loaded to serve, and it is the httptools one
    assert "genro_asgi.http_protocol" in loaded


def test_what_a_configured_feature_needs_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("server: {http: h11}\n", encoding="utf-8")
    code = SERVER_NO_FILE.format(directory=str(tmp_path), extra="")
    loaded = loaded_after(code + "assert server.uvicorn_options()['http'].__name__ == "
                          "'H11Protocol'", tmp_path)
    assert {"yaml", "h11", "genro_asgi.http_h11"} <= loaded


def test_an_environment_variable_is_read_as_yaml(tmp_path: Path) -> None:
    code = SERVER_NO_FILE.format(directory=str(tmp_path),
                                 extra=", environ={'GENRO_ASGI_SERVER_PORT': '9001'}")
    loaded = loaded_after(code + "assert server.settings.server.port == 9001", tmp_path)
    assert "yaml" in loaded


PLUGIN = """
from genro_asgi import Plugin, hookimpl
class Versioned(Plugin):
    requires_core = ">=0.1"
    @hookimpl
    def genro_asgi_configure(self, server):
        server.state.versioned = True
"""


def test_packaging_is_loaded_for_a_plugin_that_declares_requires_core(tmp_path: Path) -> None:
    (tmp_path / "versioned_plugin.py").write_text(PLUGIN, encoding="utf-8")
    code = SERVER_NO_FILE.format(
        directory=str(tmp_path),
        extra=", config={'plugins': {'versioned': {'module': 'versioned_plugin:Versioned'}}}")
    loaded = loaded_after("import sys; sys.path.insert(0, '.')\n" + code
                          + "assert server.state.versioned", tmp_path)
    assert "packaging.specifiers" in loaded
    assert "yaml" not in loaded


def test_a_refused_requires_core_is_still_a_plugin_error(tmp_path: Path) -> None:
    (tmp_path / "old_plugin.py").write_text(PLUGIN.replace(">=0.1", ">=99"), encoding="utf-8")
    code = SERVER_NO_FILE.format(
        directory=str(tmp_path),
        extra=", config={'plugins': {'old': {'module': 'old_plugin:Versioned'}}}")
    script = ("import sys; sys.path.insert(0, '.')\nfrom genro_asgi import PluginError\n"
              "try:\n" + textwrap.indent(code, "    ")
              + "except PluginError as exc:\n    print('REFUSED', exc)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    assert "REFUSED" in done.stdout and "needs genro-asgi-core >=99" in done.stdout


# -- a real worker: AsgiServer.run() in its own process, asked which modules it loaded --------

WORKER = """
import sys
from genro_asgi import AsgiApplication, AsgiServer, route

WATCHED = {watched!r}

class App(AsgiApplication):
    @route()
    def hello(self) -> str:
        return "hi"

    @route()
    def loaded(self) -> list[str]:
        return sorted(name for name in WATCHED if name in sys.modules)

    @route()
    def total(self, a: int, b: int) -> dict[str, int]:
        return {{"total": a + b}}

    @route()
    def broken(self) -> str:
        raise RuntimeError("on purpose")

server = AsgiServer({directory!r})
server.mount("/", App())
server.run(host="127.0.0.1", port={port}, log_level="warning", access_log=False)
"""


def wait_for(url: str, process: subprocess.Popen[str]) -> None:
    for _ in range(600):  # up to ~60 s against a hang, never a timing threshold
        try:
            httpx.get(url, timeout=10)
            return
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer")


def test_a_uvicorn_worker_loads_features_only_when_a_request_needs_them(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(watched=DISABLED, directory=str(tmp_path), port=port),
                      encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + "/hello", process)
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/hello").text == "hi"
            assert client.get("/total", params={"a": 1, "b": 2}).json() == {"total": 3}
            assert client.get("/loaded").json() == []
            # a TYTX request loads genro-tytx, and it decodes and encodes as before
            typed = client.get("/total", params={"a": "1::L", "b": "2::L"},
                               headers={"X-TYTX-Transport": "json"})
            assert typed.status_code == 200
            assert typed.headers["content-type"].startswith("application/vnd.tytx+json")
            # an HTML error page loads the entity table, and escapes with it
            page = client.get("/broken", headers={"Accept": "text/html"})
            assert page.status_code == 500 and "<h1>500 Internal Server Error</h1>" in page.text
            assert client.get("/loaded").json() == ["genro_tytx", "html.entities"]
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=30)


# -- the lazily exported names ----------------------------------------------------------------


@pytest.mark.parametrize("package", [genro_asgi, genro_asgi.plugins],
                         ids=["genro_asgi", "genro_asgi.plugins"])
def test_every_exported_name_resolves(package: object) -> None:
    names = [n for n in package.__all__ if n != "__version__"]  # type: ignore[attr-defined]
    for name in names:
        value = getattr(package, name)
        defined_in = getattr(value, "__module__", None)
        if defined_in is not None and defined_in.startswith("genro_asgi"):
            assert getattr(sys.modules[defined_in], name, value) is value
    assert set(names) <= set(dir(package))
    namespace: dict[str, object] = {}
    exec(f"from {package.__name__} import *", namespace)  # type: ignore[attr-defined]
    assert set(names) <= set(namespace)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'genro_asgi' has no attribute 'Nope'"):
        genro_asgi.Nope  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImportError):
        exec("from genro_asgi import Nope", {})


def test_the_h11_protocol_keeps_its_name() -> None:
    from genro_asgi.http_h11 import H11Protocol
    from genro_asgi.http_protocol import H11Protocol as Public

    assert Public is H11Protocol
