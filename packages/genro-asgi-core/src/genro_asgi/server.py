"""AsgiServer: one instance owns its config, plugins, apps, envelopes and compiled request path.

Nothing here is module-level state: two servers in one process never see each other, and
dropping a server frees everything it built. Construction loads config and plugins and mounts
the apps (so configuration errors surface at once); the lifespan runs startup and shutdown.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from genro_routes import RoutingClass, Section
from genro_toolbox import get_uuid

from .config import (
    SECTIONS,
    AppSettings,
    LoadedConfig,
    ServerSettings,
    Settings,
    load_config,
    reserved_key_hint,
)
from .connection import Connection
from .datastructures import State
from .envelope import EnvelopeMiddleware, EnvelopeRegistry, NamedObservers
from .exceptions import ConfigError, HTTPException, PluginError, StartupError
from .identity import Identity
from .lifespan import run_lifespan
from .mounted_lifespan import MountedLifespan
from .numbers import NumberLimits
from .plugins.manager import PluginManager, import_object
from .request import Request
from .response import PlainTextResponse, Response
from .routing import CompiledRoute, Dispatcher, compile_routes
from .sync_pool import SyncHandlers, SyncPool
from .types import ASGIApp, Message, Receive, Scope, Send
from .watchdog import Watchdog

logger = logging.getLogger("genro_asgi.server")

FACTORY_ENV = "_GENRO_ASGI_FACTORY"


class ServerRouter(RoutingClass):
    """The root of the routing tree: every mounted application is a branch."""

    def __init__(self) -> None:
        self.sections: dict[tuple[str, ...], RoutingClass] = {(): self}

    def attach(self, segments: tuple[str, ...], app: RoutingClass) -> None:
        parent: RoutingClass = self
        for depth in range(1, len(segments)):
            key = segments[:depth]
            if key not in self.sections:
                section = Section()
                parent.add_branches({"name": key[-1], "instance": section})
                self.sections[key] = section
            parent = self.sections[key]
        parent.add_branches({"name": segments[-1], "instance": app})


class CompiledHooks:
    """Per-request plugin work, flattened into plain tuples once."""

    def __init__(self, plugins: PluginManager, server: AsgiServer) -> None:
        self.envelope_opened: NamedObservers = plugins.observers(
            "genro_asgi_envelope_opened", server=server)
        self.envelope_closed: NamedObservers = plugins.observers(
            "genro_asgi_envelope_closed", server=server)


class ErrorChainEnd:
    """The innermost app of the error chain: renders ``scope["genro.error"]``."""

    __slots__ = ("server",)

    def __init__(self, server: AsgiServer) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server.render_uncaught_error(scope, receive, send, scope["genro.error"])


class ErrorChainLayer:
    """One middleware of the error chain: should it raise before the response starts (the
    middleware that raised in the first place likely raises again), the error is answered by
    the layers inside it, and the layers outside still decorate it. Never on the hot path."""

    __slots__ = ("app", "inner", "plugin_name")

    def __init__(self, app: ASGIApp, inner: ASGIApp, plugin_name: str) -> None:
        self.app = app
        self.inner = inner
        self.plugin_name = plugin_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        def watching_send(message: Message) -> Awaitable[None]:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            return send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as exc:
            if started:
                raise
            logger.error("plugin %r: its middleware failed while answering %r; answered "
                         "without it", self.plugin_name, scope.get("genro.error"), exc_info=exc)
            await self.inner(scope, receive, send)


class AsgiServer:
    """The ASGI application: ``server = AsgiServer(".")`` then ``server.run()``.

    ``config`` is a path (default ``<server_dir>/config.yaml``) or a mapping; ``overrides``
    win over everything: section names (``plugins={...}``) or server keys (``port=9000``).
    """

    def __init__(
        self,
        server_dir: str | Path = ".",
        config: str | Path | Mapping[str, Any] | None = None,
        *,
        cli: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> None:
        self.server_dir = Path(server_dir).resolve()
        if not self.server_dir.is_dir():
            raise ConfigError(f"server directory {self.server_dir} does not exist")
        self._factory_args = {"server_dir": str(self.server_dir),
                              "config": config if not isinstance(config, Mapping) else None,
                              "cli": dict(cli or {})}
        self.config: LoadedConfig = load_config(
            self.server_dir, config, environ=environ, cli=cli, overrides=_shape(overrides)
        )
        self.settings: Settings = self.config.settings
        # the bounds on every number a request carries (server.max_number_*), for the binder
        # and for any transport or plugin that decodes client data itself
        self.number_limits = NumberLimits(self.settings.server.max_number_digits,
                                          self.settings.server.max_number_exponent)
        self.boot_id = get_uuid()[-8:]
        # this server's def handlers: its own thread pool, or the loop when inline
        server_settings = self.settings.server
        self.sync = SyncHandlers(
            SyncPool(server_settings.sync_workers, server_settings.sync_queue,
                     server_settings.sync_retry_after, name=f"genro-sync-{self.boot_id}"),
            default_inline=server_settings.sync_handlers == "inline",
            inline_block=self.settings.watchdog.inline_block)
        self.state = State()
        self.envelopes = EnvelopeRegistry(self.boot_id)
        self.draining = False
        self.started = False
        self.router = ServerRouter()
        self.root_app: RoutingClass | None = None
        self.apps: dict[str, Any] = {}
        self._prefixes: set[str] = set()
        self._asgi_mounts: list[tuple[str, ASGIApp]] = []
        self._lifespan_mounts: dict[str, str] = {}  # name -> prefix of ASGI apps to run it for
        self._lifespans: dict[str, MountedLifespan] = {}  # the ones running
        self._dispatcher: Dispatcher | None = None
        self._app: ASGIApp | None = None
        self._error_app: ASGIApp | None = None  # the error chain, when a middleware joins it
        # what a worker process could rebuild from server_dir, the config file and CLI flags
        self._reproducible = (not isinstance(config, Mapping) and not overrides
                              and environ is None)
        # set by the auth plugin: how identify() checks credentials, and the challenge every
        # 401 carries in WWW-Authenticate (public, read-only for other plugins: its backends'
        # and the identify plugins' ``auth_challenge``; None with the plugin off)
        self.authenticator: Callable[..., Awaitable[Identity | None]] | None = None
        self.auth_challenge: str | None = None
        # endpoints that authenticate their clients themselves (WSX's first-message token):
        # the auth plugin lets a request without a credential through there as anonymous
        self.self_authenticating_paths: set[str] = set()
        # header names (lower case) that carry credentials: whatever logs or shows requests
        # (the debug plugin's incidents) redacts them; the auth plugin adds its API-key header
        self.credential_headers: set[str] = {"authorization", "proxy-authorization", "cookie"}
        self.plugins = PluginManager(self, self.settings.plugins, source=self.config.source_of,
                                     trace=self.settings.logging.trace_hooks)
        self._mounting_from_setup = True
        for name, spec in self.settings.apps.items():
            self._mount_from_config(name, spec)
        self.plugins.call_sync("genro_asgi_configure", server=self)
        for mapping in self.plugins.call_sync("genro_asgi_mount", server=self):
            for prefix, app in mapping.items():
                self.mount(prefix, app)
        self._mounting_from_setup = False
        self.compiled = CompiledHooks(self.plugins, self)
        self.watchdog = Watchdog(self.envelopes, self.settings.watchdog, self.plugins, self)
        self.build()

    # -- mounting ----------------------------------------------------------------------------

    def mount(self, prefix: str, app: Any, *, name: str | None = None,
              lifespan: bool = True) -> None:
        """Mount a routing class (its routes join the table) or an ASGI app under ``prefix``.

        ``prefix`` "/" makes a routing class the root app. Apps that define
        ``bind_server(server, name, prefix)`` are told where they live. An ASGI app's own
        lifespan runs with the server's (``lifespan=False``: never sent to it).
        """
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else "/"
        name = name or prefix.strip("/") or "root"
        if prefix in self._prefixes:
            raise ConfigError(f"cannot mount {name!r}: prefix {prefix!r} is already mounted")
        if name in self.apps:
            raise ConfigError(f"cannot mount at {prefix!r}: the name {name!r} is already used")
        if not self._mounting_from_setup:
            self._reproducible = False
        if isinstance(app, RoutingClass):
            if any(mounted is app for mounted in self.apps.values()):
                # genro-routes accepts a second branch under the same parent silently
                raise ConfigError(f"cannot mount {name!r} at {prefix!r}: the same application "
                                  "instance is already mounted; create another one")
            if prefix == "/":
                self.root_app = app
            else:
                try:
                    self.router.attach(tuple(prefix.strip("/").split("/")), app)
                except ValueError as exc:
                    raise ConfigError(f"cannot mount {name!r} at {prefix!r}: {exc}") from None
        elif callable(app):
            self._asgi_mounts.append((prefix, app))
            if lifespan:
                self._lifespan_mounts[name] = prefix
        else:
            raise TypeError(f"cannot mount {app!r}: not a routing class nor an ASGI callable")
        self._prefixes.add(prefix)
        self.apps[name] = app
        bind = getattr(app, "bind_server", None)
        if callable(bind):
            bind(self, name, prefix)
        if self._dispatcher is not None:
            self._refresh_routes(self._dispatcher)

    @property
    def asgi_mounts(self) -> list[tuple[str, ASGIApp]]:
        """The ASGI (and WSGI) apps mounted by prefix, longest prefix first."""
        return sorted(self._asgi_mounts, key=lambda m: len(m[0]), reverse=True)

    def mount_wsgi(self, prefix: str, wsgi_app: Any, *, name: str | None = None) -> None:
        """Mount a WSGI application through asgiref (``pip install genro-asgi-core[wsgi]``)."""
        try:
            from asgiref.wsgi import WsgiToAsgi
        except ImportError:
            raise ConfigError(
                "mounting a WSGI app needs asgiref: pip install 'genro-asgi-core[wsgi]'"
            ) from None
        self.mount(prefix, WsgiToAsgi(wsgi_app), name=name,  # type: ignore[no-untyped-call]
                   lifespan=False)

    def _mount_from_config(self, name: str, spec: AppSettings) -> None:
        where = f"{self.config.source}: apps.{name}"
        try:
            target = import_object(spec.module)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{where}.module: cannot import {spec.module!r}: {exc}") from None
        params = spec.params
        if inspect.isclass(target):
            params = self._resolve_paths(target, params)
            try:
                app = target(**params)
            except TypeError as exc:
                raise ConfigError(
                    f"{where}: {target.__name__} rejected its params: {exc}"
                    f"{reserved_key_hint(params)}"
                ) from None
        elif params:
            raise ConfigError(f"{where}: params {sorted(params)} given, but {spec.module!r} "
                              f"is an object, not a class{reserved_key_hint(params)}")
        else:
            app = target
        prefix = spec.prefix if spec.prefix is not None else f"/{name}"
        if spec.wsgi:
            self.mount_wsgi(prefix, app, name=name)
        else:
            self.mount(prefix, app, name=name, lifespan=spec.lifespan)

    def _resolve_paths(self, target: type, params: dict[str, Any]) -> dict[str, Any]:
        """Relative paths named in a class's ``path_params`` are relative to server_dir."""
        for key in getattr(target, "path_params", ()):
            value = params.get(key)
            if isinstance(value, str) and not os.path.isabs(value):
                params[key] = str(self.server_dir / value)
        return params

    # -- compiled request path ---------------------------------------------------------------

    def _refresh_routes(self, dispatcher: Dispatcher) -> None:
        dispatcher.table = self.compile_route_table()
        dispatcher.set_mounts(self._asgi_mounts)

    def compile_route_table(self) -> dict[str, CompiledRoute]:
        table: dict[str, CompiledRoute] = {}
        # forbidden=True keeps entries that genro-routes' auth plugin would hide from an
        # anonymous listing: they must answer 401/403, not 404.
        limits = self.number_limits
        compile_routes(self.router.route.nodes(_eager=True, forbidden=True), "", table,
                       self.router.route, limits=limits, sync=self.sync)
        if self.root_app is not None:
            compile_routes(self.root_app.route.nodes(_eager=True, forbidden=True), "", table,
                           self.root_app.route, limits=limits, sync=self.sync)
        return table

    @property
    def routes(self) -> Mapping[str, CompiledRoute]:
        """The compiled route table, keyed by exact URL path (``/shop/products``). Read it,
        never change it: it is replaced, not updated, whenever an app is mounted, so a
        transport may hold it and compare identities to know when to look again."""
        dispatcher = self._dispatcher
        assert dispatcher is not None  # built by the constructor
        return dispatcher.table

    def find_route(self, path: str) -> tuple[CompiledRoute, list[str]] | None:
        """The compiled route answering ``path`` and the trailing segments it takes as
        positional arguments, or None: what a non-HTTP transport (WSX) uses to call handlers."""
        self.build()
        assert self._dispatcher is not None
        route = self._dispatcher.table.get(path)
        if route is not None:
            return route, []
        found, segments = self._dispatcher._resolve(path)
        return (found, segments) if found is not None else None

    def served_by(self, path: str) -> tuple[str, bool] | None:
        """Who answers ``path``: (mount prefix, True), (route path, False) or None (404).

        The route's path can differ from ``path``: trailing slashes are dropped and trailing
        segments peeled off as positional arguments (``/shop/get/42`` is served by
        ``/shop/get``).
        """
        self.build()
        assert self._dispatcher is not None
        return self._dispatcher.served_by(path)

    def route_template(self, scope: Mapping[str, Any]) -> str | None:
        """The ``route`` the dispatcher records on the envelope of ``scope`` (a mount's prefix
        or the matched route's path, never the raw path), or None when nothing matches: looked
        up without calling anything, for a request answered before the dispatcher (a 401 of
        the auth plugin, a CORS preflight). Bounded like the dispatch (``MAX_PATH_SEGMENTS``)."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            self.build()
            dispatcher = self._dispatcher
            assert dispatcher is not None
        return dispatcher.route_template(scope)

    async def identify(self, source: Connection | Scope) -> Identity | None:
        """Who presents the credentials in ``source`` (a connection, or a scope with headers).

        None when it carries no credential or the auth plugin is off; ``Unauthorized`` when a
        credential is presented and invalid.
        """
        if self.authenticator is None:
            return None
        scope = source.scope if isinstance(source, Connection) else source
        return await self.authenticator(scope, self)

    def build(self) -> ASGIApp:
        """Compile the middleware chain and the route table (once; done lazily on first use)."""
        if self._app is None:
            dispatcher = Dispatcher(self, {}, [])
            self._refresh_routes(dispatcher)
            self._dispatcher = dispatcher
            # Two chains, so that a WebSocket-only middleware costs HTTP requests nothing: a
            # factory joins the chains named by its ``scope_types`` (default: both).
            # A third, the error chain, wraps the http middleware around the renderer of the
            # errors the envelope answers itself (header limits, a middleware that raised), so
            # that they too can decorate those responses (``joins_error_chain = False``: not).
            error_renderer = ErrorChainEnd(self)
            chains: dict[str, ASGIApp] = {"http": dispatcher, "websocket": dispatcher,
                                          "error": error_renderer}
            factories = self.plugins.call_sync_named("genro_asgi_middleware", server=self)
            unreported = False
            for plugin_name, factory in reversed(factories):
                kinds = set(getattr(factory, "scope_types", ("http", "websocket")))
                if not kinds or not kinds <= {"http", "websocket"}:
                    raise PluginError(f"plugin {plugin_name!r}: middleware scope_types must be "
                                      f"among 'http', 'websocket', got {sorted(kinds)}")
                if "http" in kinds and getattr(factory, "joins_error_chain", True):
                    kinds.add("error")
                for kind in ("http", "websocket", "error"):
                    if kind not in kinds:
                        continue
                    inner = chains[kind]
                    try:
                        chains[kind] = factory(inner)
                    except Exception as exc:
                        raise PluginError(
                            f"plugin {plugin_name!r}: its middleware factory failed: {exc!r}"
                        ) from exc
                    if kind == "error" and chains[kind] is not inner:
                        chains[kind] = ErrorChainLayer(chains[kind], inner, plugin_name)
                    if kind == "http" and chains[kind] is not inner and getattr(
                            chains[kind], "reports_responses", False) is not True:
                        unreported = True
            # A middleware that declares ``reports_responses = True`` lets the dispatcher's
            # record of status and size stand, and records what it changes or answers itself
            # (see envelope.reporting_send); any other one makes the envelope wrap every send.
            dispatcher.records_responses = not unreported
            self._error_app = None if chains["error"] is error_renderer else chains["error"]
            self._app = EnvelopeMiddleware(chains["http"], self, track_sends=unreported,
                                           websocket_app=chains["websocket"])
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(self, scope, receive, send)
        else:
            await self._app(scope, receive, send)  # type: ignore[misc]

    # -- errors ------------------------------------------------------------------------------

    async def render_error(self, request: Request, exc: Exception) -> Response:
        """The response for an exception: the first plugin to answer wins (errors is last)."""
        envelope = request.envelope
        if envelope is not None:
            envelope.error = exc
        if (self.auth_challenge is not None and isinstance(exc, HTTPException)
                and exc.status_code == 401
                and not any(k.lower() == "www-authenticate" for k in exc.headers)):
            exc.headers["WWW-Authenticate"] = self.auth_challenge
        response = await self.plugins.call_first(
            "genro_asgi_exception_response", accept=Response, server=self, request=request,
            exc=exc,
        )
        if isinstance(response, Response):
            return response
        logger.error("no plugin rendered %r; answering a bare 500", exc, exc_info=exc)
        return PlainTextResponse("Internal Server Error", status_code=500)

    async def render_uncaught_error(self, scope: Scope, receive: Receive, send: Send,
                                    exc: Exception) -> None:
        """Render ``exc`` with ``render_error`` and send it on ``send``, as is: no
        middleware decorates it (the caller is one, or stands outside them). For a middleware
        that catches an exception from further in and answers it itself. Public API for
        plugins, stable signature (docs/plugins.md)."""
        response = await self.render_error(self.request(scope, receive), exc)
        await response(scope, receive, send)

    async def answer_error(self, scope: Scope, receive: Receive, send: Send,
                           exc: Exception) -> None:
        """The envelope's answer to an error no layer answered (a header limit, a middleware
        that raised): ``exc`` rendered through the error chain, so that middleware decorate
        it. Should the chain raise before it starts the response, the error goes out
        undecorated: a failing middleware never leaves a request without its answer."""
        error_app = self._error_app
        if error_app is not None and "genro.error" not in scope:
            scope["genro.error"] = exc
            try:
                await error_app(scope, receive, send)
                return
            except Exception as again:
                envelope = scope.get("genro.envelope")
                if envelope is not None and envelope.status is not None:
                    raise
                logger.error("the middleware chain failed while answering %r; answering "
                             "without it", exc, exc_info=again)
            finally:
                scope.pop("genro.error", None)
        await self.render_uncaught_error(scope, receive, send, exc)

    async def answer_refused(self, scope: Scope, receive: Receive, send: Send,
                             exc: Exception) -> None:
        """The answer to a request the HTTP protocol refused while its head was arriving (a
        431 over the head budget; ``scope`` holds the request line and the headers that
        arrived): with an envelope of its own, through the error chain. Called by
        ``genro_asgi.http_protocol``."""
        app = self.build()
        assert isinstance(app, EnvelopeMiddleware) and isinstance(exc, HTTPException)
        await app.refuse(scope, receive, send, exc)

    def request(self, scope: Scope, receive: Receive) -> Request:
        """A ``Request`` for an http ``scope``, held to this server's limits
        (``server.max_body_size``, the number and multipart bounds): how a middleware reads a
        request the way handlers do. Public API for plugins: ``Request(scope, receive)``
        built directly would use the built-in default limits, not the server's."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            return Request(scope, receive, int(self.settings.server.max_body_size),
                           self.number_limits)
        return Request(scope, receive, dispatcher.max_body_size, dispatcher.number_limits,
                       dispatcher.multipart_limits)

    # -- lifespan ----------------------------------------------------------------------------

    async def startup(self) -> None:
        """Plugins' startup hooks in order, then apps' on_startup; a failure rolls back."""
        self.build()
        started: list[str] = []
        for plugin_name, call in self.plugins.bound_impls("genro_asgi_startup", server=self):
            try:
                await self.plugins._run("genro_asgi_startup", plugin_name, call)
            except Exception as exc:
                await self._stop(started, [])
                raise StartupError(f"startup failed in plugin {plugin_name!r}: {exc!r}") from exc
            started.append(plugin_name)
        started_apps: list[str] = []
        for name, app in self.apps.items():
            hook = getattr(app, "on_startup", None)
            try:
                if callable(hook):
                    await _maybe_await(hook())
            except Exception as exc:
                await self._stop(started, started_apps)
                raise StartupError(f"startup failed in application {name!r}: {exc!r}") from exc
            started_apps.append(name)  # its on_shutdown runs in a rollback from here on
            if name in self._lifespan_mounts:
                try:
                    await self._start_lifespan(name, app)
                except Exception:
                    await self._stop(started, started_apps)
                    raise
        self.sync.pool.start()
        self.watchdog.start()
        self.draining = False
        self.started = True

    async def shutdown(self) -> None:
        """Stop accepting (503), drain in-flight requests, then apps and plugins in reverse."""
        self.draining = True
        await self._drain(self.settings.server.shutdown_timeout)
        await self.watchdog.stop()
        await self._stop(list(self.plugins.names()), list(self.apps))
        # requests are drained: what is left in the sync pool finishes, then its threads stop
        await self.sync.pool.close(self.settings.server.shutdown_timeout)
        self.sync.stall.close()
        self.started = False

    async def drain_connections(self) -> None:
        """A shutdown signal arrived, before the open connections are closed: new requests
        are refused (503) and plugins finish the work in flight on their long-lived
        connections (``genro_asgi_drain``, all at once), for ``server.shutdown_timeout``."""
        self.draining = True
        timeout = self.settings.server.shutdown_timeout
        tasks = {asyncio.ensure_future(self.plugins._run("genro_asgi_drain", name, call)): name
                 for name, call in self.plugins.bound_impls("genro_asgi_drain", server=self,
                                                            timeout=timeout)}
        if not tasks:
            return
        # a second's grace: a plugin bounds its own drain by ``timeout`` and then closes
        done, pending = await asyncio.wait(tasks, timeout=timeout + 1.0)
        for task in pending:
            logger.warning("plugin %r still draining after %.1fs: cancelled", tasks[task],
                           timeout)
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                logger.error("plugin %r failed in genro_asgi_drain", tasks[task],
                             exc_info=task.exception())

    async def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.envelopes.count("http") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        left = self.envelopes.count("http")
        if left:
            logger.warning("shutdown: %d request(s) still in flight after %.1fs", left, timeout)

    async def _start_lifespan(self, name: str, app: ASGIApp) -> None:
        lifespan = MountedLifespan(name, app)
        await lifespan.startup()
        if lifespan.supported:
            self._lifespans[name] = lifespan
            if self._dispatcher is not None:
                self._dispatcher.mount_states[self._lifespan_mounts[name]] = lifespan.state

    async def _stop(self, plugin_names: list[str], app_names: list[str]) -> None:
        for name in reversed(app_names):
            lifespan = self._lifespans.pop(name, None)
            if lifespan is not None:
                if self._dispatcher is not None:
                    self._dispatcher.mount_states.pop(self._lifespan_mounts[name], None)
                # at least a second: shutdown_timeout 0 (no wait for requests) must not
                # cancel an app's cleanup at its first await
                await lifespan.shutdown(max(self.settings.server.shutdown_timeout, 1.0))
            hook = getattr(self.apps[name], "on_shutdown", None)
            if callable(hook):
                try:
                    await _maybe_await(hook())
                except Exception:
                    logger.exception("application %r failed in on_shutdown", name)
        wanted = set(plugin_names)
        for plugin_name, call in reversed(self.plugins.bound_impls("genro_asgi_shutdown",
                                                                    server=self)):
            if plugin_name in wanted:
                try:
                    await self.plugins._run("genro_asgi_shutdown", plugin_name, call)
                except Exception:
                    logger.exception("plugin %r failed in genro_asgi_shutdown", plugin_name)

    # -- running -----------------------------------------------------------------------------

    def uvicorn_options(self) -> dict[str, Any]:
        from .http_protocol import protocol_class  # uvicorn's protocols: only when serving

        s: ServerSettings = self.settings.server
        options: dict[str, Any] = {
            "host": s.host, "port": s.port, "workers": s.workers, "reload": s.reload,
            "root_path": s.root_path, "timeout_keep_alive": s.timeout_keep_alive,
            "timeout_graceful_shutdown": math.ceil(s.shutdown_timeout),
            "limit_concurrency": s.limit_concurrency,
            "h11_max_incomplete_event_size": int(s.max_header_size),
            # read deadlines and a bounded head (uvicorn's own protocols have neither)
            "http": protocol_class(s.http),
            "proxy_headers": s.proxy_headers, "forwarded_allow_ips": s.forwarded_allow_ips,
            "ws_max_size": int(s.ws_max_size), "ws_ping_interval": s.ws_ping_interval,
            "ws_ping_timeout": s.ws_ping_timeout,
            "log_level": self.settings.logging.level.lower(),
            "access_log": self.settings.logging.access_log, "lifespan": "on",
        }
        if s.ssl_certfile:
            options["ssl_certfile"] = s.ssl_certfile
            options["ssl_keyfile"] = s.ssl_keyfile
        return options

    def run(self, factory: str | None = None, **uvicorn_overrides: Any) -> None:
        """Serve with uvicorn.

        With several workers or reload each process builds its own server: from server_dir
        and its config file (and CLI flags), or by calling ``factory`` ("pkg.mod:make_server")
        when the server is set up in code (a config mapping, overrides or ``mount`` calls),
        which a worker could not otherwise rebuild.
        """
        import uvicorn

        options = {**self.uvicorn_options(), **uvicorn_overrides}
        logging.basicConfig(level=self.settings.logging.level,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if options["workers"] > 1 or options["reload"]:
            if options["reload"]:
                options.setdefault("reload_dirs", [str(self.server_dir)])
            if factory is not None:
                uvicorn.run(factory, factory=True, **options)
                return
            if not self._reproducible:
                raise ConfigError(
                    "workers > 1 and reload build the server anew in each process from "
                    "server_dir and its config file; this one was set up in code (a config "
                    "mapping, constructor overrides or mount() calls) that would be lost. "
                    "Move that setup into config.yaml, or pass run(factory='pkg.mod:func') "
                    "naming a function that returns the server"
                )
            os.environ[FACTORY_ENV] = json.dumps(self._factory_args)
            uvicorn.run("genro_asgi.server:server_from_environment", factory=True, **options)
        else:
            options.pop("workers")
            options.pop("reload")
            _serve_one_process(self, options)

    def dump_config(self) -> dict[str, Any]:
        """The effective configuration, every secret shown as ``***`` (``genro-asgi config``)."""
        return self.config.dump({name: self.plugins.plugin_config(name)
                                 for name in self.plugins.names()})

    def __repr__(self) -> str:
        return f"<AsgiServer {self.server_dir} plugins={list(self.plugins.names())}>"


def _serve_one_process(app_server: AsgiServer, options: dict[str, Any]) -> None:
    import contextlib

    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn's server, telling the app the moment a shutdown signal arrives: uvicorn
        waits for in-flight requests before the lifespan shutdown, and meanwhile requests on
        kept-alive connections get a 503 and parked work (the debug plugin) is released."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            app_server.draining = True
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: list[Any] | None = None) -> None:
            # uvicorn closes every WebSocket (1012) as its shutdown starts: first stop
            # accepting, and let plugins finish the calls in flight on them (a second
            # Ctrl-C cuts the wait)
            for listener in self.servers:
                listener.close()
            drain = asyncio.ensure_future(app_server.drain_connections())
            while not drain.done() and not self.force_exit:
                await asyncio.wait({drain}, timeout=0.1)
            drain.cancel()  # a no-op once done
            failure = (await asyncio.gather(drain, return_exceptions=True))[0]
            if isinstance(failure, Exception):
                logger.error("draining connections failed", exc_info=failure)
            await super().shutdown(sockets)

    # Ctrl-C: uvicorn shuts down gracefully, then re-raises it; like uvicorn.run(), end quietly
    with contextlib.suppress(KeyboardInterrupt):
        DrainingServer(uvicorn.Config(app_server, **options)).run()


def server_from_environment() -> AsgiServer:
    """The factory each uvicorn worker calls when ``workers > 1`` or ``reload`` is on."""
    args = json.loads(os.environ[FACTORY_ENV])
    if args["server_dir"] not in sys.path:
        sys.path.insert(0, args["server_dir"])
    return AsgiServer(args["server_dir"], args["config"], cli=args["cli"])


def _shape(overrides: Mapping[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in SECTIONS:
            shaped[key] = value
        elif key in ServerSettings.model_fields:
            shaped.setdefault("server", {})[key] = value
        else:
            raise TypeError(f"AsgiServer() got an unexpected keyword argument {key!r}")
    return shaped


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
