"""What every package under packages/ ships stays true: it declares what it imports (read from
its source's AST), its version has one source, plugins accept the current core, and its README
(which becomes the index page) links only to absolute URLs."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
REPOSITORY = "https://github.com/genropy/genro-asgi"
CORE = "genro-asgi-core"

# modules that are part of a declared distribution which pins them exactly: declaring them
# too could only conflict with that pin
PROVIDED_BY = {"pydantic_core": "pydantic"}

# modules of a package that are loaded only when an extra is wanted, with that extra: their
# module-level imports may come from it instead of the required dependencies
OPTIONAL_MODULES: dict[str, dict[str, str]] = {
    CORE: {"genro_asgi/testing/": "testing"},
    "genro-asgi-executor": {"genro_asgi_executor/collectors.py": "metrics"},
    "genro-asgi-nats": {"genro_asgi_nats/collectors.py": "metrics",
                        "genro_asgi_nats/testing/": "testing",
                        "genro_asgi_nats/spa_backend.py": "spa",
                        "genro_asgi_nats/spa_replica.py": "spa"},
    "genro-asgi-spa": {"genro_asgi_spa/collectors.py": "metrics"},
}


@dataclass
class Package:
    directory: Path
    project: dict[str, Any]
    tool: dict[str, Any]
    modules: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(canonicalize_name(self.project["name"]))

    def requirements(self, extra: str | None = None) -> list[Requirement]:
        if extra is None:
            raw = self.project.get("dependencies", [])
        else:
            raw = self.project.get("optional-dependencies", {}).get(extra, [])
        return [Requirement(r) for r in raw]

    def all_requirements(self) -> list[tuple[str | None, Requirement]]:
        found: list[tuple[str | None, Requirement]] = [(None, r) for r in self.requirements()]
        for extra in self.project.get("optional-dependencies", {}):
            found += [(extra, r) for r in self.requirements(extra)]
        return found


def load(directory: Path) -> Package:
    data = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = data["tool"]["hatch"]["build"]["targets"]["wheel"]
    modules = [Path(p).name for p in wheel["packages"]]
    return Package(directory, data["project"], data.get("tool", {}), modules)


WORKSPACE = {d.name: load(d) for d in PACKAGES}
MODULE_TO_WORKSPACE = {m: p.name for p in WORKSPACE.values() for m in p.modules}


def ids(packages: list[Path]) -> list[str]:
    return [p.name for p in packages]


@dataclass(frozen=True)
class Import:
    module: str  # the top-level name
    file: str  # relative to src/
    line: int
    eager: bool  # runs when its module is imported (not in a function, TYPE_CHECKING or try)


class ImportCollector(ast.NodeVisitor):
    """Absolute imports of one file, each marked eager or deferred."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[Import] = []
        self.deferred = 0

    def _add(self, name: str, node: ast.stmt) -> None:
        top = name.split(".")[0]
        if top not in sys.stdlib_module_names:
            self.found.append(Import(top, self.file, node.lineno, self.deferred == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._add(node.module, node)

    def _deferred(self, node: ast.AST) -> None:
        self.deferred += 1
        self.generic_visit(node)
        self.deferred -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _deferred

    def visit_If(self, node: ast.If) -> None:
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            self._deferred(node)
        else:
            self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        guards = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        if guards & {"ImportError", "ModuleNotFoundError"}:
            self._deferred(node)
        else:
            self.generic_visit(node)


def imports_of(package: Package) -> list[Import]:
    src = package.directory / "src"
    found: list[Import] = []
    for module in package.modules:
        for path in sorted((src / module).rglob("*.py")):
            relative = path.relative_to(src).as_posix()
            collector = ImportCollector(relative)
            collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
            found += [i for i in collector.found if i.module not in package.modules]
    return found


@functools.cache
def installed_modules() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    """The (canonical) distributions that provide a top-level module."""
    if module in MODULE_TO_WORKSPACE:
        return {MODULE_TO_WORKSPACE[module]}
    if module in PROVIDED_BY:
        return {str(canonicalize_name(PROVIDED_BY[module]))}
    installed = installed_modules().get(module, [])
    return {str(canonicalize_name(d)) for d in installed}


def names(requirements: list[Requirement]) -> set[str]:
    return {str(canonicalize_name(r.name)) for r in requirements}


@pytest.mark.parametrize("directory", PACKAGES, ids=ids(PACKAGES))
def test_every_import_is_declared(directory: Path) -> None:
    package = WORKSPACE[directory.name]
    required = names(package.requirements())
    anywhere = required | {n for _, r in package.all_requirements() for n in names([r])}
    optional = OPTIONAL_MODULES.get(package.name, {})
    problems = []
    for imp in imports_of(package):
        providers = distributions_of(imp.module)
        where = f"{imp.file}:{imp.line} imports {imp.module}"
        if not providers:
            problems.append(f"{where}, which no installed distribution provides")
            continue
        extra = next((e for prefix, e in optional.items() if imp.file.startswith(prefix)), None)
        if imp.eager and extra is None:
            if not providers & required:
                problems.append(f"{where} at import time: {sorted(providers)} must be in "
                                "[project] dependencies")
        elif imp.eager and extra is not None:
            if not providers & (required | names(package.requirements(extra))):
                problems.append(f"{where}: {sorted(providers)} must be in dependencies or in "
                                f"the {extra!r} extra")
        elif not providers & anywhere:
            problems.append(f"{where} (deferred): {sorted(providers)} must be in dependencies "
                            "or an extra")
    assert not problems, f"{package.name}:\n" + "\n".join(problems)


def test_optional_modules_name_declared_extras() -> None:
    for name, modules in OPTIONAL_MODULES.items():
        package = next((p for p in WORKSPACE.values() if p.name == name), None)
        for prefix, extra in modules.items():
            if package is not None and (package.directory / "src" / prefix).exists():
                assert package.requirements(extra), f"{name} has no extra {extra!r}"


def test_the_import_scanner_sees_eager_and_deferred_imports() -> None:
    source = (
        "import os\nimport yaml\nfrom pydantic import BaseModel\nfrom . import sibling\n"
        "if TYPE_CHECKING:\n    import httpx\n"
        "try:\n    import brotli\nexcept ImportError:\n    brotli = None\n"
        "def f():\n    import jwt\n"
    )
    collector = ImportCollector("x.py")
    collector.visit(ast.parse(source))
    assert [(i.module, i.eager) for i in collector.found] == [
        ("yaml", True), ("pydantic", True), ("httpx", False), ("brotli", False), ("jwt", False)]


def version_source(package: Package) -> tuple[Path, str]:
    path = package.directory / package.tool["hatch"]["version"]["path"]
    literals = re.findall(r"""^(?:__version__|VERSION)\s*=\s*["']([^"']+)["']""",
                          path.read_text(encoding="utf-8"), flags=re.M)
    assert len(literals) == 1, f"{path}: one version literal expected, found {literals}"
    return path, literals[0]


@pytest.mark.parametrize("directory", PACKAGES, ids=ids(PACKAGES))
def test_version_has_one_source(directory: Path) -> None:
    package = WORKSPACE[directory.name]
    assert "version" not in package.project, "the version is dynamic, read from the code"
    assert package.project.get("dynamic") == ["version"]
    path, literal = version_source(package)
    for module in package.modules:
        assert importlib.import_module(module).__version__ == literal, (module, path)
    installed = importlib.metadata.version(package.name)
    assert installed == literal, (
        f"{package.name} is installed as {installed} but its source says {literal}: reinstall "
        f"it (.venv/bin/pip install -e {directory.relative_to(ROOT)})")


def current_versions() -> dict[str, str]:
    return {p.name: version_source(p)[1] for p in WORKSPACE.values()}


@pytest.mark.parametrize("directory", PACKAGES, ids=ids(PACKAGES))
def test_workspace_requirements_accept_the_current_versions(directory: Path) -> None:
    package = WORKSPACE[directory.name]
    versions = current_versions()
    for extra, requirement in package.all_requirements():
        name = str(canonicalize_name(requirement.name))
        if name not in versions:
            continue
        spec = requirement.specifier
        assert spec.contains(versions[name]), (package.name, extra, str(requirement))
        assert any(s.operator == "<" for s in spec), (
            f"{package.name}: {requirement} needs an upper bound (the next minor version may "
            "break the hooks)")


@pytest.mark.parametrize("directory", [p for p in PACKAGES if p.name != CORE],
                         ids=ids([p for p in PACKAGES if p.name != CORE]))
def test_a_plugin_requires_the_core_with_the_range_its_code_checks(directory: Path) -> None:
    package = WORKSPACE[directory.name]
    core = [r for r in package.requirements() if canonicalize_name(r.name) == CORE]
    assert len(core) == 1, f"{package.name} must depend on {CORE}"
    for spec in package.project.get("entry-points", {}).get("genro_asgi", {}).values():
        module, _, attr = spec.partition(":")
        plugin = getattr(importlib.import_module(module), attr)
        assert SpecifierSet(plugin.requires_core) == core[0].specifier, (
            f"{spec}.requires_core {plugin.requires_core!r} differs from the pyproject's "
            f"{core[0]}")


def test_a_third_party_distribution_has_one_range_everywhere() -> None:
    seen: dict[str, dict[str, str]] = {}
    for package in WORKSPACE.values():
        for _extra, requirement in package.all_requirements():
            name = str(canonicalize_name(requirement.name))
            if name in MODULE_TO_WORKSPACE.values():
                continue
            seen.setdefault(name, {})[package.name] = str(requirement.specifier)
    mixed = {name: where for name, where in seen.items() if len(set(where.values())) > 1}
    assert not mixed, mixed


@pytest.mark.parametrize("directory", PACKAGES, ids=ids(PACKAGES))
def test_project_urls_point_at_the_repository(directory: Path) -> None:
    package = WORKSPACE[directory.name]
    urls = package.project.get("urls", {})
    assert urls.get("Homepage") == REPOSITORY and urls.get("Repository") == REPOSITORY, urls
    changelog = f"{REPOSITORY}/blob/main/packages/{directory.name}/CHANGELOG.md"
    assert urls.get("Changelog") == changelog and (directory / "CHANGELOG.md").exists()
    for url in urls.values():
        check_repository_url(url)


# inline links and images, reference definitions, HTML href/src
LINKS = re.compile(r"\]\(\s*<?([^)\s>]+)|^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)"
                   r"|(?:href|src)\s*=\s*[\"']([^\"']+)", re.M)


def links_of(markdown: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in LINKS.finditer(markdown)]


def check_repository_url(url: str) -> None:
    """A link into this repository's main branch names a file or directory that exists."""
    prefix = re.match(rf"{re.escape(REPOSITORY)}/(blob|tree)/main/", url)
    if prefix:
        target = ROOT / url[prefix.end():].partition("#")[0]
        assert target.exists(), f"{url}: {target.relative_to(ROOT)} does not exist"


@pytest.mark.parametrize("directory", PACKAGES, ids=ids(PACKAGES))
def test_readme_links_are_absolute(directory: Path) -> None:
    readme = (directory / "README.md").read_text(encoding="utf-8")
    links = links_of(readme)
    relative = [u for u in links if not re.match(r"(https?|mailto):", u) and u[0] != "#"]
    assert not relative, (f"{directory.name}/README.md becomes the index page, where these "
                          f"relative links break: {relative}")
    for url in links:
        check_repository_url(url)


def test_the_link_finder_sees_every_kind_of_link() -> None:
    text = ('see [a](../../docs/a.md) and ![img](pic.png "t") [b](https://x.org/b)\n'
            '[ref]: docs/c.md\n<a href="d.md">d</a> <img src="/e.png">\n')
    assert links_of(text) == ["../../docs/a.md", "pic.png", "https://x.org/b", "docs/c.md",
                              "d.md", "/e.png"]


@pytest.mark.parametrize("directory", PACKAGES, ids=ids(PACKAGES))
def test_a_package_directory_is_named_after_its_distribution(directory: Path) -> None:
    # make dist, the wheel smoke and the docs' install lines rely on it
    assert WORKSPACE[directory.name].name == directory.name
    assert (directory / "CHANGELOG.md").exists() and (directory / "README.md").exists()


@pytest.mark.parametrize("directory", PACKAGES, ids=ids(PACKAGES))
def test_a_package_ships_its_type_hints(directory: Path) -> None:
    # every package passes mypy --strict: py.typed lets its users' type checkers read the hints
    for module in WORKSPACE[directory.name].modules:
        assert (directory / "src" / module / "py.typed").exists(), f"{module}/py.typed"


@pytest.mark.parametrize("directory", PACKAGES, ids=ids(PACKAGES))
def test_a_package_ships_the_license_it_declares(directory: Path) -> None:
    # hatchling puts LICENSE* into the wheel's .dist-info/licenses and the sdist
    project = tomllib.loads((directory / "pyproject.toml").read_text("utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    text = (directory / "LICENSE").read_text("utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert text == (ROOT / "LICENSE").read_text("utf-8")
