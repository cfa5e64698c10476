"""The tool catalog: which routes are tools, under which names, with which schemas.

A route is a tool when the plugin's ``tools`` option names it (an exact path or a shell
pattern) or when it declares ``@route(meta_mcp=True)`` (or ``meta_mcp={"name": ...,
"title": ..., "description": ...}``). The catalog is built from the core's compiled route
table and genro-routes' ``nodes()`` (docstrings, metadata, the handler), and built again when
the table changes (an app mounted later).
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_types.methods import serialize_server_result

from genro_asgi import ConfigError

from .schema import tool_schemas

if TYPE_CHECKING:
    from genro_asgi import AsgiServer
    from genro_asgi.identity import Identity
    from genro_asgi.routing import CompiledRoute

logger = logging.getLogger("genro_asgi_mcp.tools")

MAX_NAME = 128
STRUCTURED_SINCE = "2025-06-18"  # the first protocol version with outputSchema and title
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
_READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


@dataclass
class Tool:
    """One route exposed as a tool."""

    name: str
    path: str
    route: CompiledRoute
    description: str | None
    title: str | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    wrap: bool | None
    """True: the result goes in ``{"result": ...}``; False: it is the object; None: wrapped
    unless it is an object (no declared output schema)."""
    read_only: bool

    def definition(self) -> dict[str, Any]:
        """The tool as ``tools/list`` describes it (before per-version shaping)."""
        tool: dict[str, Any] = {"name": self.name, "inputSchema": self.input_schema}
        if self.title:
            tool["title"] = self.title
        if self.description:
            tool["description"] = self.description
        if self.output_schema is not None:
            tool["outputSchema"] = self.output_schema
        if self.read_only:
            tool["annotations"] = {"readOnlyHint": True}
        return tool

    def allowed(self, identity: Identity | None) -> bool:
        """Whether ``identity`` may call the tool, as the route's HTTP request would be."""
        if self.route.auth_rule is None:
            return True
        try:
            self.route.authorize(identity)
        except Exception:  # Unauthorized / Forbidden
            return False
        return True


class ToolCatalog:
    """The tools of one server, by name, built from one version of its route table."""

    def __init__(self, tools: Sequence[Tool], table: Mapping[str, CompiledRoute]) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.table = table
        self._listings: dict[str, list[tuple[Tool, dict[str, Any]]]] = {}

    def listing(self, version: str, identity: Identity | None) -> list[dict[str, Any]]:
        """The ``tools`` of a ``tools/list`` answer: the tools ``identity`` may call, in the
        wire format of ``version`` (validated and shaped by the SDK once per version)."""
        shaped = self._listings.get(version)
        if shaped is None:
            tools = list(self.tools.values())
            definitions = [tool.definition() for tool in tools]
            if version < STRUCTURED_SINCE:  # no structured content, no title before it
                for definition in definitions:
                    definition.pop("outputSchema", None)
                    definition.pop("title", None)
            result = serialize_server_result("tools/list", version, {"tools": definitions})
            shaped = self._listings[version] = list(zip(tools, result["tools"], strict=True))
        return [wire for tool, wire in shaped if tool.allowed(identity)]


def build_catalog(server: AsgiServer, patterns: Sequence[str], endpoint: str) -> ToolCatalog:
    """The tools of ``server``'s current route table; a pattern matching nothing, or two
    tools with one name, is a ConfigError naming them."""
    table = server.routes
    matched: set[str] = set()
    chosen: list[tuple[str, Mapping[str, Any], CompiledRoute, Mapping[str, Any]]] = []
    for path, entry in _entries(server):
        if path == endpoint or path.startswith(endpoint + "/"):
            continue  # the MCP endpoint itself is never a tool
        route = table.get(path)
        if route is None:
            continue
        meta = (entry.get("metadata") or {}).get("meta") or {}
        opted = meta.get("mcp")
        hits = [p for p in patterns if p == path or fnmatch.fnmatchcase(path, p)]
        matched.update(hits)
        if not (hits or opted):
            continue
        files = required_uploads(route)
        if files:
            # a tool call carries JSON arguments, never a file: named on purpose, it is a
            # mistake; caught by a wider pattern, the route is simply not a tool
            if opted or path in hits:
                raise ConfigError(f"route {path} cannot be an MCP tool: it needs the file "
                                  f"upload(s) {', '.join(files)}, which a tool call cannot "
                                  "send")
            logger.info("mcp: %s is not a tool: it needs the file upload(s) %s", path,
                        ", ".join(files))
            continue
        chosen.append((path, entry, route, opted if isinstance(opted, Mapping) else {}))
    unmatched = [p for p in patterns if p not in matched]
    if unmatched:
        raise ConfigError(f"plugins.mcp.tools: {', '.join(map(repr, unmatched))} "
                          "matches no route")
    schemas = tool_schemas([(route.binder, entry["callable"]) for _, entry, route, _ in chosen])
    tools: dict[str, Tool] = {}
    for (path, entry, route, options), (inputs, output, wrap) in zip(chosen, schemas,
                                                                     strict=True):
        tool = _tool(path, entry, route, options, inputs, output, wrap)
        other = tools.get(tool.name)
        if other is not None:
            raise ConfigError(f"plugins.mcp: routes {other.path} and {path} are both the tool "
                              f"{tool.name!r}; name one with @route(meta_mcp={{'name': ...}})")
        tools[tool.name] = tool
    return ToolCatalog(list(tools.values()), table)


def _tool(path: str, entry: Mapping[str, Any], route: CompiledRoute,
          options: Mapping[str, Any], inputs: dict[str, Any], output: dict[str, Any] | None,
          wrap: bool | None) -> Tool:
    name = options.get("name") or tool_name(path)
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or \
            _INVALID_NAME_CHARS.search(name):
        raise ConfigError(f"route {path}: tool name {name!r} must be 1 to {MAX_NAME} letters, "
                          "digits, '_', '-' or '.'")
    description = options.get("description") or entry.get("doc") or None
    return Tool(
        name=name, path=path, route=route,
        description=str(description).strip() if description else None,
        title=str(options["title"]) if options.get("title") else None,
        input_schema=inputs,
        output_schema=output, wrap=wrap,
        read_only=route.methods <= _READ_ONLY_METHODS,
    )


def required_uploads(route: CompiledRoute) -> list[str]:
    """The required ``UploadFile`` parameters of a route: a tool cannot call it. (Optional ones
    are left out of its input schema: the handler gets their default.)"""
    return [p.name for p in route.binder.params if p.upload is not None and p.required]


def tool_name(path: str) -> str:
    """``/shop/products`` -> ``shop.products`` (characters MCP does not allow become ``_``)."""
    return _INVALID_NAME_CHARS.sub("_", path.strip("/").replace("/", "."))[:MAX_NAME]


def _entries(server: AsgiServer) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(URL path, genro-routes entry) for every routable entry, as the core compiles them."""
    yield from _walk(server.router.route.nodes(_eager=True, forbidden=True), "")
    if server.root_app is not None:
        yield from _walk(server.root_app.route.nodes(_eager=True, forbidden=True), "")


def _walk(tree: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, entry in (tree.get("entries") or {}).items():
        yield f"{prefix}/{name}", entry
    for child, subtree in (tree.get("routers") or {}).items():
        if "alias" not in subtree:
            yield from _walk(subtree, f"{prefix}/{child}")
