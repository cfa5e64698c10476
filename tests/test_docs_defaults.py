"""The option tables of the docs tell the truth: every option of a config model is in its page's
table, and every default written there (`1MiB`, `[GET, HEAD]`, `none`...) is the model's.

A default written in words ("first thread pool", "required") is not compared; everything that
reads as a value is.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ByteSize, SecretStr

DOCS = Path(__file__).resolve().parents[1] / "docs"

# (page, section heading or None for the whole page, the model documented there)
TABLES = [
    ("config.md", "## `server`", "genro_asgi.config:ServerSettings"),
    ("config.md", "## `logging`", "genro_asgi.config:LoggingSettings"),
    ("config.md", "## `watchdog`", "genro_asgi.config:WatchdogSettings"),
    ("errors.md", None, "genro_asgi.builtin.errors:ErrorsConfig"),
    ("cors.md", None, "genro_asgi.builtin.cors.config:CorsConfig"),
    ("compression.md", None, "genro_asgi.builtin.compression.config:CompressionConfig"),
    ("auth.md", "## Options", "genro_asgi.builtin.auth.config:AuthConfig"),
    ("auth.md", "### `jwt`", "genro_asgi.builtin.auth.config:JwtConfig"),
    ("wsx.md", None, "genro_asgi_wsx.config:WsxConfig"),
    ("executor.md", None, "genro_asgi_executor.config:ExecutorConfig"),
    ("metrics.md", None, "genro_asgi_metrics.config:MetricsConfig"),
    ("debug.md", None, "genro_asgi_debug.config:DebugConfig"),
    ("openapi.md", None, "genro_asgi_openapi.config:OpenApiConfig"),
    ("nats.md", None, "genro_asgi_nats.config:NatsConfig"),
    ("mcp.md", None, "genro_asgi_mcp.config:McpConfig"),
    ("spa.md", None, "genro_asgi_spa.config:SpaConfig"),
]

BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)$")
UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
         "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
NONE_WORDS = {"none", "unset", "null"}
UNREAD = object()  # a default written in words


def model_of(spec: str) -> type[BaseModel]:
    module, name = spec.split(":")
    model: type[BaseModel] = getattr(importlib.import_module(module), name)
    return model


def section(page: str, heading: str | None) -> str:
    text = (DOCS / page).read_text()
    if heading is None:
        return text
    start = text.index(heading + "\n")
    level = heading.split(" ", 1)[0]
    # up to the next heading of the same level or above
    after = re.search(rf"\n#{{1,{len(level)}}} ", text[start + len(heading):])
    return text[start:start + len(heading) + after.start() if after else None]


def rows(text: str) -> Iterator[tuple[list[str], str]]:
    """(option names, default cell) of every table that has a `default` column."""
    default_col: int | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            default_col = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if default_col is None:
            default_col = cells.index("default") if "default" in cells else -1
            continue
        if default_col < 0 or set(cells[0]) <= {"-", ":", " "}:
            continue
        names = re.findall(r"`([a-z_][a-z0-9_.]*)`", cells[0])
        if names and re.fullmatch(r"(`[a-z_][a-z0-9_.]*`(,\s*)?)+", cells[0]):
            yield names, cells[default_col]


def documented(cell: str) -> Any:
    """The value a default cell states, or UNREAD when it states it in words."""
    if cell.lower() in NONE_WORDS:
        return None
    # one literal, perhaps with a unit or a remark: `2.0` s, `16777216` (16 MiB)
    match = re.fullmatch(r"`([^`]*)`\s*(?:s|\(.*\))?", cell)
    if match is None:
        return UNREAD
    literal = match.group(1)
    size = BYTES.match(literal)
    if size:
        return int(float(size.group(1)) * UNITS[size.group(2)])
    return yaml.safe_load(literal) if literal else ""


def plain(value: Any) -> Any:
    """A model default as YAML would read it."""
    if isinstance(value, ByteSize):
        return int(value)
    if isinstance(value, SecretStr):
        return UNREAD
    if isinstance(value, BaseModel):
        return {key: plain(item) for key, item in value.model_dump(exclude_defaults=True).items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [plain(item) for item in value]
    if hasattr(value, "value") and not isinstance(value, (int, float, str)):  # an Enum
        return value.value
    return value


def agrees(stated: Any, default: Any, depth: int = 0) -> bool:
    """Below the first level a mapping on the page may leave out keys (a pool's computed
    worker count); its own keys must all be the code's."""
    if isinstance(stated, dict) and isinstance(default, dict):
        keys_agree = stated.keys() <= default.keys() if depth else stated.keys() == default.keys()
        return keys_agree and all(
            agrees(value, default[key], depth + 1) for key, value in stated.items())
    return bool(stated == default)


@pytest.mark.parametrize(("page", "heading", "spec"), TABLES,
                         ids=[f"{page}:{spec.split(':')[1]}" for page, _, spec in TABLES])
def test_documented_defaults_are_the_models(page: str, heading: str | None, spec: str) -> None:
    model = model_of(spec)
    fields = model.model_fields
    seen: set[str] = set()
    wrong: list[str] = []
    for names, cell in rows(section(page, heading)):
        for name in names:
            name, dotted, _ = name.partition(".")
            if name not in fields:
                continue
            seen.add(name)
            if dotted:  # an option of a nested mapping: its own table, or its own model
                continue
            info = fields[name]
            if info.is_required():
                continue
            stated = documented(cell)
            if stated is UNREAD:
                continue
            default = plain(info.get_default(call_default_factory=True))
            if default is UNREAD:
                continue
            if not agrees(stated, default):
                wrong.append(f"{name}: the page says {cell!r}, the code {default!r}")
    assert not wrong, f"docs/{page} ({spec}): " + "; ".join(wrong)
    missing = sorted(set(fields) - seen)
    assert not missing, f"docs/{page} has no table row for {spec} options {missing}"


def test_a_wrong_default_is_caught() -> None:
    table = "| option | default | meaning |\n|---|---|---|\n| `port` | `8001` | the port |\n"
    [(names, cell)] = list(rows(table))
    assert names == ["port"] and documented(cell) == 8001 != plain(8000)
    assert documented("`1MiB`") == 1024 * 1024 and documented("`[GET, HEAD]`") == ["GET", "HEAD"]
    assert documented("none") is None and documented("first thread pool") is UNREAD
