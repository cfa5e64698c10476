"""The docs site builds with ``mkdocs build --strict`` (what `make docs` runs), so a broken link,
a missing anchor, a page left out of the navigation or an API reference entry that no longer
resolves fails `make test`, and every page is listed from docs/index.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD_LIMIT = 600.0  # seconds: a guard against a hung build, never an assertion

# the pages that list the others: index.md lists the guides and these two indexes
INDEXES = ("index.md", "hooks/index.md", "api/index.md")
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
NESTED_ITEM = re.compile(r"^- .*\n(?:  \S.*\n)*  - ", re.M)
NESTED_LIST = re.compile(r"<li>(?:(?!</li>).)*?<ul>", re.S)
REST_ROLE = re.compile(r":(?:class|func|meth|attr|exc|mod|obj|data):[`<]")


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    # never --quiet: mkdocs 1.6 then stops counting warnings, and --strict lets them pass
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(config), "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=BUILD_LIMIT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_docs_build_strict(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    # the API reference is rendered from the docstrings, not left as a `:::` directive
    server_page = (tmp_path / "site" / "api" / "server" / "index.html").read_text()
    assert "AsgiServer" in server_page and ":::" not in server_page
    # a list item indented by two spaces (as GitHub reads it) is nested, not flattened
    for page in DOCS.rglob("*.md"):
        if NESTED_ITEM.search(page.read_text()):
            html = (tmp_path / "site" / page.relative_to(DOCS).with_suffix("") / "index.html")
            if page.name == "index.md":
                html = tmp_path / "site" / page.relative_to(DOCS).parent / "index.html"
            assert NESTED_LIST.search(html.read_text()), f"{page.name}: nested list flattened"
    # docstrings are Markdown: a reST role (:class:`X`) would show as raw text
    for page in sorted((tmp_path / "site" / "api").rglob("index.html")):
        roles = REST_ROLE.findall(page.read_text())
        assert not roles, f"{page.parent.name}: reST roles in docstrings: {roles}"


def test_broken_link_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    with (docs / "index.md").open("a") as page:
        page.write("\nSee [a page that does not exist](no-such-page.md).\n")
    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["docs_dir"] = str(docs)
    [mkdocstrings] = [entry["mkdocstrings"] for entry in config["plugins"]
                      if isinstance(entry, dict) and "mkdocstrings" in entry]
    handler = mkdocstrings["handlers"]["python"]
    handler["paths"] = [str(ROOT / path) for path in handler["paths"]]
    copy = tmp_path / "mkdocs.yml"
    copy.write_text(yaml.safe_dump(config))

    result = build(copy, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stdout + result.stderr


def test_index_pages_list_every_page() -> None:
    linked: set[Path] = set()
    for index in INDEXES:
        base = (DOCS / index).parent
        for target in LINK.findall((DOCS / index).read_text()):
            linked.add((base / target).resolve())
    pages = {page.resolve() for page in DOCS.rglob("*.md")} - {DOCS / "index.md"}
    missing = sorted(str(page.relative_to(DOCS)) for page in pages - linked)
    assert not missing, f"pages not listed from docs/index.md or its indexes: {missing}"
