"""``genro-asgi new-plugin NAME``: write a plugin package (entry point, config model, one hook,
tests with the pytest fixtures, README, CHANGELOG) from the templates shipped in the core."""

from __future__ import annotations

import keyword
import re
from importlib.resources import files
from pathlib import Path

from .exceptions import GenroAsgiError

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# where each template goes, {module} being the package's import name
LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "CHANGELOG.md.tmpl": "CHANGELOG.md",
    "init.py.tmpl": "src/{module}/__init__.py",
    "config.py.tmpl": "src/{module}/config.py",
    "plugin.py.tmpl": "src/{module}/plugin.py",
    "test_plugin.py.tmpl": "tests/test_{name}.py",
}


def compatible_range(major: int, minor: int) -> str:
    """The core versions a new plugin supports: this minor series while the core is 0.x
    (where a minor release may break plugins), this major series from 1.0 on."""
    if major == 0:
        return f">={major}.{minor},<{major}.{minor + 1}"
    return f">={major}.{minor},<{major + 1}"


class ScaffoldError(GenroAsgiError):
    """A plugin name that cannot be used, or a target that already exists."""


def create_plugin(name: str, into: Path) -> Path:
    """Create ``into/genro-asgi-NAME`` and return its path; never overwrites anything."""
    if not NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"plugin name {name[:60]!r} must be lower case letters, digits and '_', starting "
            "with a letter, at most 40 characters, not a Python keyword"
        )
    from . import __version__

    major, minor = (int(part) for part in __version__.split(".")[:2])
    words = name.split("_")
    values = {
        "name": name,
        "dist": f"genro-asgi-{name.replace('_', '-')}",
        "module": f"genro_asgi_{name}",
        "cls": "".join(w.capitalize() for w in words if w) + "Plugin",
        "core_range": compatible_range(major, minor),
    }
    target = into / values["dist"]
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another name or directory")
    templates = files("genro_asgi").joinpath("templates", "plugin")
    for template, relative in LAYOUT.items():
        text = templates.joinpath(template).read_text(encoding="utf-8").format(**values)
        path = target / relative.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
