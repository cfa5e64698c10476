"""``genro-asgi new-plugin NAME``: the package it writes installs into a throwaway virtualenv
and its own tests pass there, offline (no index, no build isolation)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import genro_asgi
from genro_asgi.scaffold import ScaffoldError, compatible_range, create_plugin

CLI = str(Path(sys.executable).parent / "genro-asgi")
TIMEOUT = 300  # generous: a loaded 2-core machine, never a threshold


def test_writes_the_package(tmp_path: Path) -> None:
    target = create_plugin("audit_log", tmp_path)
    assert target == tmp_path / "genro-asgi-audit-log"
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == ["CHANGELOG.md", "README.md", "pyproject.toml",
                     "src/genro_asgi_audit_log/__init__.py",
                     "src/genro_asgi_audit_log/config.py",
                     "src/genro_asgi_audit_log/plugin.py",
                     "tests/test_audit_log.py"]
    pyproject = (target / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points.genro_asgi]\naudit_log = ' \
           '"genro_asgi_audit_log.plugin:AuditLogPlugin"' in pyproject
    assert 'name = "genro-asgi-audit-log"' in pyproject
    plugin = (target / "src/genro_asgi_audit_log/plugin.py").read_text(encoding="utf-8")
    assert "def genro_asgi_middleware(self, server: AsgiServer)" in plugin
    assert "{" not in (target / "CHANGELOG.md").read_text(encoding="utf-8").replace("`", "")


@pytest.mark.parametrize("name", ["Audit", "1st", "with-dash", "class", "", "a" * 41, "a/b"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScaffoldError, match="must be lower case letters"):
        create_plugin(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_never_overwrites(tmp_path: Path) -> None:
    create_plugin("audit", tmp_path)
    result = subprocess.run([CLI, "new-plugin", "audit", "--into", str(tmp_path)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2
    assert result.stderr == (f"genro-asgi: error: {tmp_path / 'genro-asgi-audit'} already "
                             "exists; choose another name or directory\n")


def test_generated_plugin_installs_and_its_tests_pass(tmp_path: Path) -> None:
    result = subprocess.run([CLI, "new-plugin", "stamp", "--into", str(tmp_path)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    package = tmp_path / "genro-asgi-stamp"
    assert result.stdout.startswith(f"created {package}\n")

    # a throwaway venv that also sees this environment's packages (the core, pytest, httpx,
    # hatchling), so nothing is downloaded
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path("
                              "'purelib'))"], capture_output=True, text=True, check=True,
                             timeout=TIMEOUT).stdout.strip()
    ours = sysconfig.get_path("purelib")
    Path(purelib, "outer_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n",
                                              encoding="utf-8")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-build-isolation", str(package)],
        capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert install.returncode == 0, install.stdout + install.stderr

    # installed: its entry point is seen there, and not in this environment
    listed = subprocess.run([python, "-m", "genro_asgi", "plugins", str(tmp_path), "--json"],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert '"name": "stamp"' in listed.stdout, listed.stderr
    assert "stamp" not in subprocess.run([CLI, "--version"], capture_output=True, text=True,
                                         timeout=TIMEOUT).stdout

    # the version the build read is the code's (one source), and what it requires is declared
    metadata = subprocess.run(
        [python, "-c", "from importlib.metadata import metadata as m; d = m('genro-asgi-stamp');"
         " print(d['Version']); print(*d.get_all('Requires-Dist'), sep='\\n')"],
        capture_output=True, text=True, timeout=TIMEOUT)
    version, *requires = metadata.stdout.splitlines()
    assert version == "0.1.0", metadata.stderr
    declared = {Requirement(r) for r in requires if "extra ==" not in r}
    assert declared == {Requirement(f"genro-asgi-core{compatible_range(*_core_minor())}"),
                        Requirement("pydantic>=2.7,<3")}

    tests = subprocess.run([python, "-m", "pytest", str(package / "tests"), "-q",
                            "-p", "no:cacheprovider"],
                           capture_output=True, text=True, timeout=TIMEOUT, cwd=package)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "5 passed" in tests.stdout


def _core_minor() -> tuple[int, int]:
    major, minor = genro_asgi.__version__.split(".")[:2]
    return int(major), int(minor)


def test_the_core_range_is_bounded_and_the_same_in_pyproject_and_plugin(tmp_path: Path) -> None:
    package = create_plugin("audit", tmp_path)
    project = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core_range = compatible_range(*_core_minor())
    assert core_range.startswith(">=") and ",<" in core_range
    assert f"genro-asgi-core{core_range}" in project["dependencies"]
    assert any(dep.startswith("pydantic") for dep in project["dependencies"])  # config.py's
    assert project["dynamic"] == ["version"] and "version" not in project
    plugin_source = (package / "src" / "genro_asgi_audit" / "plugin.py").read_text("utf-8")
    assert f'requires_core = "{core_range}"' in plugin_source


@pytest.mark.parametrize(("major", "minor", "expected"), [
    (0, 1, ">=0.1,<0.2"), (0, 12, ">=0.12,<0.13"), (1, 4, ">=1.4,<2"), (2, 0, ">=2.0,<3")])
def test_compatible_range(major: int, minor: int, expected: str) -> None:
    assert compatible_range(major, minor) == expected
