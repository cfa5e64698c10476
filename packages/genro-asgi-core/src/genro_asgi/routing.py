"""Routing: the ``route`` decorator, the compiled route table and the request dispatcher.

genro-routes owns the tree (apps are branches of the server's router). At startup the tree is
flattened into a dict from URL path to CompiledRoute, so a request costs one dict lookup and a
direct call of the bound handler. Entries that carry genro-routes plugins (auth, pydantic, ...)
are called through their RouterNode so those plugins still run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import genro_routes
from genro_routes import NotAuthenticated, NotAuthorized, NotAvailable
from genro_routes import NotFound as RouteNotFound
from genro_toolbox import RuleError, tags_match

from .binding import Binder
from .envelope import Envelope, record_response, tracking_send
from .exceptions import (
    ConfigError,
    Forbidden,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from .identity import Identity
from .multipart import MultipartLimits
from .numbers import DEFAULT_LIMITS, NumberLimits
from .request import ClientDisconnect, Request
from .response import (
    RedirectResponse,
    Response,
    StreamingResponse,
    encode_plain,
    render_result,
)
from .sync_pool import SyncHandlers
from .types import ASGIApp, Receive, Scope, Send
from .tytx import check_transport, transport_from_headers

if TYPE_CHECKING:
    from .server import AsgiServer

DEFAULT_METHODS = ("GET", "POST")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_PATH_SEGMENTS = 32
_SUBPATH = re.compile(r"(|([\w.~-]+|\{[A-Za-z_]\w*\})(/([\w.~-]+|\{[A-Za-z_]\w*\}))*)")
_MAX_CACHED_TAG_SETS = 256  # per guarded route: distinct tag sets whose verdict is remembered


def route(
    name: str | None = None,
    *,
    methods: Iterable[str] | None = None,
    media_type: str | None = None,
    inline: bool | None = None,
    subpaths: Mapping[str, Iterable[str]] | None = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Expose a method of an application as a route.

    ``methods`` defaults to GET and POST (HEAD follows GET); ``media_type`` sets the response
    type for str/bytes results; ``inline=True`` calls a ``def`` handler on the event loop
    instead of the server's sync pool (only for code that never blocks: see
    docs/applications.md), ``False`` keeps it in the pool whatever ``server.sync_handlers``
    says; ``subpaths`` maps the trailing paths a handler serves itself (``""``, ``"{task_id}"``,
    ``"{task_id}/cancel"``) to the methods each one allows, for ``genro-asgi routes`` and
    documents (the handler still answers 405 itself); other keywords go to genro-routes
    (``auth=``, ``meta_*=``, ...).
    """
    allowed = tuple(m.upper() for m in (methods or DEFAULT_METHODS))
    if subpaths is not None:
        options["meta_subpaths"] = check_subpaths(subpaths, allowed)
    if media_type is not None:
        options["media_type"] = media_type
    if inline is not None:
        options["meta_inline"] = bool(inline)
    decorator: Callable[[Callable[..., Any]], Callable[..., Any]] = genro_routes.route(
        name=name, meta_methods=allowed, **options
    )
    return decorator


def check_subpaths(subpaths: Mapping[str, Iterable[str]],
                   allowed: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``subpaths`` normalised (no outer slashes, upper-case methods), or TypeError: a template
    is ``""`` or segments, ``{name}`` ones for parameters; each method one the route allows."""
    allowed = set(allowed)
    checked: dict[str, tuple[str, ...]] = {}
    if not isinstance(subpaths, Mapping) or not subpaths:
        raise TypeError("route(subpaths=...) needs a non-empty mapping of sub-path -> methods")
    for template, methods in subpaths.items():
        if not isinstance(template, str) or not _SUBPATH.fullmatch(template.strip("/")) or {
                ".", ".."} & set(template.split("/")):
            raise TypeError(f"route(subpaths=...): {template!r} is not a sub-path template "
                            "('', 'name', '{param}', 'a/{param}/b')")
        names = [m.upper() for m in methods] if not isinstance(methods, str) else []
        if not names or not set(names) <= allowed:
            raise TypeError(f"route(subpaths=...): the methods of {template!r} must be a "
                            f"non-empty list among the route's {sorted(allowed)}, "
                            f"got {methods!r}")
        checked[template.strip("/")] = tuple(dict.fromkeys(names))
    return checked


def subpath_allow(subpaths: Mapping[str, Iterable[str]] | None) -> dict[str, list[str]] | None:
    """Each sub-path's methods as ``Allow`` lists them (HEAD follows GET), sorted."""
    if not subpaths:
        return None
    return {template: sorted({*methods, *(("HEAD",) if "GET" in methods else ())})
            for template, methods in subpaths.items()}


class CompiledRoute:
    """One routable entry with everything a request needs, computed once.

    ``auth_rule`` is the entry's genro-routes tag rule (``@route(auth="admin|ops")``), enforced
    by the core whether or not the application plugged genro-routes' auth plugin.
    """

    __slots__ = ("_granted", "_node_path", "_nodes", "_router", "_sync", "allow", "auth_rule",
                 "binder", "call", "inline", "is_async", "media_type", "methods", "path",
                 "subpaths", "takes_nothing")

    def __init__(self, path: str, entry: dict[str, Any],
                 node_call: Callable[..., Any] | None, router: Any = None,
                 node_path: str = "", limits: NumberLimits = DEFAULT_LIMITS, *,
                 sync: SyncHandlers) -> None:
        func = entry["callable"]
        meta = entry.get("metadata", {}).get("meta", {})
        self.path = path or "/"
        methods = set(meta.get("methods") or DEFAULT_METHODS)
        if "GET" in methods:
            methods.add("HEAD")
        self.methods = frozenset(methods)
        self.allow = sorted(self.methods)
        # route(subpaths=...): the methods of each trailing path the handler serves itself
        self.subpaths = subpath_allow(meta.get("subpaths"))
        self.media_type: str | None = meta.get("media_type")
        self.binder = Binder(func, limits)
        self.takes_nothing = self.binder.takes_nothing
        self.is_async = asyncio.iscoroutinefunction(func)
        self.auth_rule = auth_rule_of(entry, self.path)
        self._granted: dict[frozenset[str], bool] = {}
        # genro-routes' own auth plugin, when plugged, denies a node looked up without the
        # caller's tags: such entries are looked up per tag set (and cached) once authorized
        self._router = router if "auth" in (entry.get("plugins") or {}) else None
        self._node_path = node_path
        self._nodes: dict[frozenset[str], Callable[..., Any]] = {}
        # a def handler: the server's sync pool, or the loop itself when flagged inline
        self._sync = sync
        inline = meta.get("inline")
        self.inline: bool | None = None if inline is None else bool(inline)
        target = node_call if node_call is not None else func
        self.call = target if self.is_async else sync.wrap(target, self.path, self.inline)

    def authorize(self, identity: Identity | None) -> None:
        """Raise Unauthorized (no identity) or Forbidden (tags do not satisfy the rule)."""
        rule = self.auth_rule
        if rule is None:
            return
        if identity is None:
            raise Unauthorized(detail=f"authentication required for {self.path}")
        tags = identity.tags
        granted = self._granted.get(tags)
        if granted is None:
            granted = tags_match(rule, set(tags))
            if len(self._granted) < _MAX_CACHED_TAG_SETS:
                self._granted[tags] = granted
        if not granted:
            raise Forbidden(detail=f"{self.path} requires {rule!r}")

    def callable_for(self, identity: Identity | None) -> Callable[..., Any]:
        """The handler call for this caller, after authorizing it."""
        self.authorize(identity)
        if self._router is None or identity is None:
            return self.call
        call = self._nodes.get(identity.tags)
        if call is None:
            node = self._router.node(self._node_path, auth_tags=",".join(sorted(identity.tags)))
            call = node if self.is_async else self._sync.wrap(node, self.path, self.inline)
            if len(self._nodes) < _MAX_CACHED_TAG_SETS:
                self._nodes[identity.tags] = call
        return call

    async def invoke(self, identity: Identity | None, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        """Authorize and call the handler: what a non-HTTP transport (WSX) uses."""
        return await self.callable_for(identity)(*args, **kwargs)


def auth_rule_of(entry: dict[str, Any], path: str) -> str | None:
    """The tag rule an entry declares, validated now so a typo fails at startup."""
    plugged = ((entry.get("plugins") or {}).get("auth") or {}).get("config") or {}
    declared = ((entry.get("metadata") or {}).get("plugin_config") or {}).get("auth") or {}
    if plugged.get("enabled", True) is False:
        return None
    rule = plugged.get("rule") or declared.get("rule")
    if not rule or not str(rule).strip():
        return None
    rule = str(rule)
    try:
        tags_match(rule, set())
    except RuleError as exc:
        raise ConfigError(f"route {path}: invalid auth rule {rule!r}: {exc}") from None
    return rule


def compile_routes(tree: dict[str, Any], prefix: str, table: dict[str, CompiledRoute],
                   router: Any, node_prefix: str = "",
                   limits: NumberLimits = DEFAULT_LIMITS, *, sync: SyncHandlers) -> None:
    """Flatten a genro-routes ``nodes(_eager=True)`` tree into ``table``.

    Keys are URL paths with a leading slash and none trailing (``/shop/products``), so the
    common request is answered by one dict lookup of ``scope["path"]`` as it arrives.
    """
    entries = tree.get("entries") or {}
    for name, entry in entries.items():
        url_path = f"{prefix}/{name}"
        node_path = f"{node_prefix}/{name}" if node_prefix else name
        node_call = None
        if entry.get("plugins"):
            node_call = router.node(node_path)
        compiled = CompiledRoute(url_path, entry, node_call, router, node_path, limits,
                                 sync=sync)
        table.setdefault(url_path, compiled)
        if name == "index":
            table.setdefault(prefix or "/", compiled)
    for child, subtree in (tree.get("routers") or {}).items():
        if "alias" in subtree:
            continue
        compile_routes(subtree, f"{prefix}/{child}", table, router,
                       f"{node_prefix}/{child}" if node_prefix else child, limits, sync=sync)


class Dispatcher:
    """The innermost ASGI app: mounted ASGI apps by prefix, then the route table."""

    def __init__(self, server: AsgiServer, table: dict[str, CompiledRoute],
                 mounts: list[tuple[str, ASGIApp]]) -> None:
        self.server = server
        self.table = table
        self.set_mounts(mounts)
        # prefix -> the lifespan state of the ASGI app mounted there (AsgiServer.startup)
        self.mount_states: dict[str, dict[str, Any]] = {}
        settings = server.settings.server
        self.max_body_size = int(settings.max_body_size)
        self.number_limits = server.number_limits
        self.multipart_limits = MultipartLimits.from_settings(settings)
        self.render_error = server.render_error
        self.sync_pool = server.sync.pool
        # True unless an HTTP middleware that does not report its responses sits between the
        # envelope and this dispatcher: then the dispatcher records status and size and echoes
        # X-Request-ID itself, and the envelope need not wrap every send (AsgiServer.build).
        self.records_responses = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        envelope: Envelope | None = scope.get("genro.envelope")
        if self.mounts and path.startswith(self.mount_starts):
            for prefix, under, app in self.mounts:
                if path == prefix or path.startswith(under) or (
                    prefix == "/" and not self._routable(path)
                ):
                    if envelope is not None:
                        envelope.route = prefix  # the template of a mounted app is its prefix
                        if self.records_responses:
                            send = tracking_send(envelope, send)
                    await self._call_mounted(prefix, app, scope, receive, send)
                    return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008, "reason": "no route"})
            return
        # One frame for the whole request: this is the hot path, every call saved counts.
        method: str = scope["method"]
        plain: tuple[bytes, bytes] | None = None
        request: Request | None = None
        try:
            if self.server.draining:
                raise ServiceUnavailable(detail="the server is shutting down", retry_after=5)
            route = self.table.get(path)
            segments: list[str] = []
            if route is None:
                route, segments = self._resolve(path)
                if route is None:
                    raise NotFound(detail=f"no route for {path!r}")
            if envelope is not None:
                envelope.route = route.path
                mode = envelope.tytx_mode
                transport = None if mode is None else check_transport(mode)
            else:
                transport = transport_from_headers(scope["headers"])
            if method not in route.methods:
                raise MethodNotAllowed(route.allow,
                                       detail=f"{method} is not allowed on {path!r}")
            call = route.call if route.auth_rule is None else route.callable_for(
                scope.get("genro.identity"))
            if route.takes_nothing and not segments and not scope.get("query_string") and (
                method not in BODY_METHODS
            ):
                result = await call()
            else:
                request = Request(scope, receive, self.max_body_size, self.number_limits,
                                  self.multipart_limits)
                args, kwargs = await route.binder.bind(
                    request, segments, method in BODY_METHODS, transport is not None
                )
                if envelope is not None:
                    envelope.params = kwargs
                result = await call(*args, **kwargs)
            # str/bytes/dict/list need no Response object: encode them directly
            plain = encode_plain(result) if transport is None and route.media_type is None \
                else None
            response = render_result(result, transport, route.media_type) if plain is None \
                else None
        except ClientDisconnect:
            return
        except (RouteNotFound, NotAuthenticated, NotAuthorized, NotAvailable) as exc:
            response = await self.render_error(Request(scope, receive, self.max_body_size),
                                               _map_route_error(exc))
        except Exception as exc:
            response = await self.render_error(Request(scope, receive, self.max_body_size), exc)
        if request is not None and request.uploads:  # a multipart body's files end with the call
            await request.close_uploads()
        if plain is not None:  # a 200 with a complete body, from encode_plain
            body, content_type = plain
            headers = [(b"content-length", b"%d" % len(body)), (b"content-type", content_type)]
            if self.records_responses and envelope is not None:
                envelope.status = 200
                envelope.response_size = 0 if method == "HEAD" else len(body)
                if envelope.external_id is not None:
                    headers.append((b"x-request-id", envelope.external_id.encode("latin-1")))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
            return
        assert response is not None
        if type(response).__call__ is not _PLAIN_CALL:
            if isinstance(response, StreamingResponse) and response.sync_steps is None:
                response.sync_steps = self.sync_pool.step  # a sync iterator's next() there
            # streaming and file responses may still fail before they start: track their sends
            if self.records_responses and envelope is not None:
                send = tracking_send(envelope, send)
            await response(scope, receive, send)
            return
        if self.records_responses and envelope is not None:
            record_response(envelope, response)
            if method == "HEAD":  # what goes on the wire, as tracking_send would count it
                envelope.response_size = 0
        # what Response.__call__ does, inline: a complete body in two messages
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": response.start_headers()})
        await send({"type": "http.response.body",
                    "body": b"" if method == "HEAD" else response.body})

    def set_mounts(self, mounts: list[tuple[str, ASGIApp]]) -> None:
        """ASGI apps by prefix, longest first, with ``prefix/`` precomputed for matching."""
        ordered = sorted(mounts, key=lambda m: len(m[0]), reverse=True)
        self.mounts = [(prefix, prefix + "/", app) for prefix, app in ordered]
        # apps (a StaticRouter) for which a GET of the bare prefix redirects to ``prefix/``,
        # as their relative links need: the app itself sees "/" for both
        self.slash_mounts = frozenset(prefix for prefix, app in ordered if prefix != "/"
                                      and getattr(app, "redirect_bare_prefix", False))
        # one C call rules out every mount for most requests; "" matches all (a root mount)
        self.mount_starts = tuple("" if prefix == "/" else prefix for prefix, _ in ordered)

    def served_by(self, path: str) -> tuple[str, bool] | None:
        """Who answers ``path``, as ``__call__`` decides: (a mount's prefix, True), (the route
        table's key that matched, False: ``path`` without trailing slashes and the segments
        peeled off as arguments), or None when nothing does (a 404)."""
        prefix = self._mount_of(path)
        if prefix is not None:
            return prefix, True
        if path in self.table:
            return path, False
        route, segments = self._resolve(path)
        if route is None:
            return None
        key = "/" + path.strip("/")
        return (key.rsplit("/", len(segments))[0] if segments else key) or "/", False

    def route_template(self, scope: Mapping[str, Any]) -> str | None:
        """What ``__call__`` records as ``envelope.route`` for ``scope``, without calling
        anything: a mount's prefix, the matched route's path, or None (no match, or a
        WebSocket that no mount serves). Bounded like the dispatch: ``MAX_PATH_SEGMENTS``."""
        path: str = scope["path"]
        prefix = self._mount_of(path)
        if prefix is not None:
            return prefix
        if scope["type"] != "http":
            return None
        route = self.table.get(path)
        if route is None:
            route = self._resolve(path)[0]
        return None if route is None else route.path

    def _mount_of(self, path: str) -> str | None:
        """The prefix of the mounted ASGI app that ``__call__`` hands ``path`` to, or None."""
        if self.mounts and path.startswith(self.mount_starts):
            for prefix, under, _app in self.mounts:
                if path == prefix or path.startswith(under) or (
                    prefix == "/" and not self._routable(path)
                ):
                    return prefix
        return None

    def _routable(self, path: str) -> bool:
        """Whether the route table answers ``path`` (an ASGI app at "/" is only a fallback)."""
        return path in self.table or self._resolve(path)[0] is not None

    def _resolve(self, path: str) -> tuple[CompiledRoute | None, list[str]]:
        """A path that is not a key: trailing slashes dropped, then trailing segments peeled
        off one at a time as positional arguments (``/shop/get/42`` -> ``/shop/get``, [42])."""
        key = "/" + path.strip("/")
        found = self.table.get(key)
        if found is not None:
            return found, []
        if key.count("/") > MAX_PATH_SEGMENTS:
            return None, []
        head = key
        segments: list[str] = []  # not list[str](): a generic alias call, ~0.3 us per 404
        while True:
            head, segment = head.rsplit("/", 1)
            if not head:
                return None, []
            segments.insert(0, segment)
            found = self.table.get(head)
            if found is not None:
                return found, segments

    async def _call_mounted(self, prefix: str, app: ASGIApp, scope: Scope, receive: Receive,
                            send: Send) -> None:
        if scope["path"] == prefix and prefix in self.slash_mounts and scope["type"] == "http" \
                and scope["method"] in ("GET", "HEAD"):
            location = quote(prefix.rsplit("/", 1)[-1], safe="") + "/"  # relative: root_path kept
            query = scope.get("query_string", b"")
            if query:
                location += "?" + query.decode("latin-1")
            await RedirectResponse(location, status_code=307)(scope, receive, send)
            return
        state = self.mount_states.get(prefix) if self.mount_states else None
        if prefix != "/" or state is not None:
            scope = dict(scope)
        if prefix != "/":
            scope["root_path"] = scope.get("root_path", "") + prefix
            scope["path"] = scope["path"][len(prefix):] or "/"
            raw_path = scope.get("raw_path")
            if raw_path is not None and raw_path.startswith(prefix.encode()):
                scope["raw_path"] = raw_path[len(prefix):] or b"/"
        if state is not None:  # what the app's lifespan startup stored, a copy per request
            scope["state"] = dict(state)
        await app(scope, receive, send)


_PLAIN_CALL = Response.__call__


def _map_route_error(exc: Exception) -> HTTPException:
    """genro-routes refusals (from a plugin-carrying entry) as HTTP errors."""
    if isinstance(exc, NotAuthenticated):
        return Unauthorized(detail="authentication required")
    if isinstance(exc, NotAuthorized):
        return Forbidden(detail="not authorized for this route")
    return NotFound(detail="route not available")

