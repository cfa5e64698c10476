"""Per-server plugin manager: discovery, loading, validation, ordering and isolated hook calls.

Discovery reads entry-point metadata only; a plugin is imported when config.yaml names it.
Hooks are called here, not through pluggy's own caller, so that the order is the documented
one (config ``order``, then tryfirst/trylast, then name), async implementations are awaited,
and a failure is attributed to its plugin. pluggy provides the markers, the spec validation
and the registry; nothing here runs per request.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, cast

import pluggy
from pydantic import BaseModel, ValidationError

from ..config import format_validation_error
from ..exceptions import PluginError
from . import hookspecs
from .markers import PROJECT

if TYPE_CHECKING:
    from ..server import AsgiServer

logger = logging.getLogger("genro_asgi.plugins")

ALWAYS_ON = ("errors",)
RESERVED_KEYS = ("order", "module")


@dataclass(frozen=True)
class InstalledPlugin:
    """An entry point in the ``genro_asgi`` group, read from metadata without importing it."""

    name: str
    value: str
    distribution: str | None
    version: str | None

    @classmethod
    def from_entry_point(cls, ep: EntryPoint) -> InstalledPlugin:
        dist = ep.dist
        return cls(ep.name, ep.value, dist.name if dist else None, dist.version if dist else None)


def installed_plugins() -> dict[str, InstalledPlugin]:
    found: dict[str, InstalledPlugin] = {}
    for ep in entry_points(group=PROJECT):
        found.setdefault(ep.name, InstalledPlugin.from_entry_point(ep))
    return dict(sorted(found.items()))


@dataclass
class LoadedPlugin:
    name: str
    obj: Any
    config: Any
    order: int | None
    source: str
    distribution: str | None = None
    version: str | None = None


def import_object(spec: str) -> Any:
    """Import ``pkg.mod:attr`` (or a plain module path)."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def core_version() -> str:
    from .. import __version__

    return __version__


class PluginManager:
    """The plugins of one server: loaded, validated and registered at construction."""

    def __init__(
        self,
        server: AsgiServer,
        configured: Mapping[str, Mapping[str, Any] | None],
        *,
        trace: bool = False,
        source: str | Callable[[tuple[str | int, ...]], str] = "config",
    ) -> None:
        self.trace = trace
        self.source = source
        self._ordered: dict[str, list[pluggy.HookImpl]] = {}
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.installed = installed_plugins()
        self.loaded: dict[str, LoadedPlugin] = {}
        names = [n for n in ALWAYS_ON if n not in configured] + list(configured)
        for name in names:
            self._load(server, name, dict(configured.get(name) or {}))
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {self.pm.get_name(exc.plugin)!r}: {exc}") from None

    # -- loading -----------------------------------------------------------------------------

    def _load(self, server: AsgiServer, name: str, options: dict[str, Any]) -> None:
        order = options.pop("order", None)
        if order is not None and (isinstance(order, bool) or not isinstance(order, int)):
            where = self.source(("plugins", name, "order")) if callable(self.source) \
                else self.source
            raise PluginError(f"{where}: plugins.{name}.order: must be an integer, got {order!r}")
        target, source, installed = self._locate(name, options.pop("module", None))
        self._check_compatible(name, target)
        extra_specs = getattr(target, "hookspecs", None)
        if extra_specs is not None:
            self.pm.add_hookspecs(extra_specs)
        config = self._validate(name, target, options, self.source,
                                server.config.secret_paths)
        if inspect.isclass(target):
            try:
                obj = cast(Any, target)(server, config)
            except Exception as exc:
                raise PluginError(f"plugin {name!r} failed to initialise: {exc!r}") from exc
        else:
            obj = target
        try:
            self.pm.register(obj, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} is not valid: {exc}") from None
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from None
        for impl in self._impls_of(obj):
            if impl.hookwrapper or impl.wrapper:
                raise PluginError(
                    f"plugin {name!r}: {impl.function.__name__} is a hook wrapper; genro-asgi "
                    "does not run wrappers, use genro_asgi_middleware to wrap requests"
                )
        self.loaded[name] = LoadedPlugin(
            name, obj, config, order, source,
            installed.distribution if installed else None,
            installed.version if installed else None,
        )

    def _locate(self, name: str, module: str | None) -> tuple[Any, str, InstalledPlugin | None]:
        installed = self.installed.get(name)
        if module is None and installed is None and ("." in name or ":" in name):
            module = name
        if module is not None:
            try:
                return import_object(module), module, None
            except (ImportError, AttributeError) as exc:
                raise PluginError(f"plugin {name!r}: cannot import {module!r}: {exc}") from None
        if installed is None:
            raise PluginError(self._not_installed(name))
        try:
            return import_object(installed.value), f"entry point {installed.value}", installed
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} ({installed.distribution}) failed to import: {exc!r}"
            ) from exc

    def _not_installed(self, name: str) -> str:
        """Where the name was written, the closest installed names, and what to install."""
        import difflib  # error messages only

        where = self.source(("plugins", name)) if callable(self.source) else self.source
        close = difflib.get_close_matches(name, [*self.installed, *RESERVED_KEYS], n=3,
                                          cutoff=0.75)
        available = ", ".join(self.installed) or "none"
        if close:
            todo = f"did you mean {' or '.join(map(repr, close))}?"
        else:
            todo = ("install the distribution that provides it (genro-asgi's own plugins: "
                    f"pip install genro-asgi-{name.replace('_', '-')}), or give a dotted path "
                    "with 'module:'")
        return (f"{where}: plugins.{name}: plugin {name!r} is not installed "
                f"(installed plugins: {available}); {todo}")

    @staticmethod
    def _check_compatible(name: str, target: Any) -> None:
        wanted = getattr(target, "requires_core", None)
        if not wanted:
            return
        # only a plugin that declares requires_core needs packaging
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import Version

        try:
            spec = SpecifierSet(wanted)
        except InvalidSpecifier:
            raise PluginError(
                f"plugin {name!r} declares an invalid requires_core {wanted!r}"
            ) from None
        current = core_version()
        if Version(current) not in spec:
            raise PluginError(
                f"plugin {name!r} needs genro-asgi-core {wanted}, but this is {current}; "
                f"install a plugin version that supports {current} or a core matching {wanted}"
            )

    @staticmethod
    def _validate(name: str, target: Any, options: dict[str, Any],
                  source: str | Callable[[tuple[str | int, ...]], str],
                  secrets: set[tuple[str | int, ...]] | None = None) -> Any:
        model = getattr(target, "config_model", None)
        if model is None:
            return options
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            raise PluginError(f"plugin {name!r}: config_model must be a pydantic model")
        try:
            return model.model_validate(options)
        except ValidationError as exc:
            raise PluginError(
                format_validation_error(exc, source, ("plugins", name), secrets)
            ) from None

    def _impls_of(self, obj: Any) -> list[pluggy.HookImpl]:
        return [
            impl
            for caller in (self.pm.get_hookcallers(obj) or [])
            for impl in caller.get_hookimpls()
            if impl.plugin is obj
        ]

    # -- ordering and calling ----------------------------------------------------------------

    def ordered_impls(self, hook: str) -> list[pluggy.HookImpl]:
        """The impls of ``hook`` in call order; computed once (plugins load only at startup)."""
        cached = self._ordered.get(hook)
        if cached is not None:
            return cached
        caller = getattr(self.pm.hook, hook, None)
        if caller is None:
            return []

        def key(impl: pluggy.HookImpl) -> tuple[int, int, int, str]:
            loaded = self.loaded.get(impl.plugin_name)
            order = loaded.order if loaded else None
            rank = 0 if impl.tryfirst else 2 if impl.trylast else 1
            return (0 if order is not None else 1, order or 0, rank, impl.plugin_name)

        ordered = self._ordered[hook] = sorted(caller.get_hookimpls(), key=key)
        return ordered

    def bound_impls(self, hook: str, **kwargs: Any) -> list[tuple[str, Callable[[], Any]]]:
        """Each impl with the spec arguments it declares bound: ``(plugin name, call)``."""
        bound: list[tuple[str, Callable[[], Any]]] = []
        for impl in self.ordered_impls(hook):
            args = [kwargs[n] for n in impl.argnames]
            bound.append((impl.plugin_name, _bind(impl.function, args)))
        return bound

    def observers(self, hook: str, **fixed: Any) -> tuple[tuple[str, Callable[..., Any]], ...]:
        """Per-request callables taking the remaining argument, compiled once.

        ``fixed`` holds the arguments known at startup (the server); each impl gets only the
        ones it declares, so an impl taking just ``envelope`` is called with no wrapper at all.
        """
        compiled = []
        caller = getattr(self.pm.hook, hook, None)
        spec = caller.spec if caller is not None else None
        per_call = [n for n in (spec.argnames if spec else ()) if n not in fixed]
        for impl in self.ordered_impls(hook):
            names = impl.argnames
            fn = impl.function
            if inspect.iscoroutinefunction(fn):
                raise PluginError(f"plugin {impl.plugin_name!r}: {hook} must not be async")
            fixed_args = [fixed[n] for n in names if n in fixed]
            if list(names) == [*(n for n in names if n in fixed), *per_call] and (
                names[: len(fixed_args)] == tuple(n for n in names if n in fixed)
            ):
                # the common shape: fixed arguments first, then every per-call one in order
                call = fn if not fixed_args else _partial(fn, fixed_args)
            else:
                call = _adapter(fn, names, fixed, per_call)
            if self.trace:
                call = _traced(hook, impl.plugin_name, call)
            compiled.append((impl.plugin_name, call))
        return tuple(compiled)

    async def call(self, hook: str, *, reverse: bool = False, strict: bool = True,
                   **kwargs: Any) -> list[Any]:
        """Call every impl in order (awaiting async ones) and return their non-None results.

        ``strict`` (startup): the first failure raises PluginError naming the plugin.
        Otherwise a failure is logged with the plugin's name and the next impl runs.
        """
        results = []
        impls = self.bound_impls(hook, **kwargs)
        for plugin_name, call in reversed(impls) if reverse else impls:
            try:
                result = await self._run(hook, plugin_name, call)
            except Exception as exc:
                if strict:
                    raise PluginError(f"plugin {plugin_name!r} failed in {hook}: {exc!r}") from exc
                logger.exception("plugin %r failed in %s", plugin_name, hook)
                continue
            if result is not None:
                results.append(result)
        return results

    def call_sync(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call a sync-only hook at construction time; a failure raises naming the plugin."""
        return [result for _, result in self.call_sync_named(hook, **kwargs)]

    def call_sync_named(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Like call_sync, with each non-None result paired with its plugin's name."""
        results = []
        for plugin_name, call in self.bound_impls(hook, **kwargs):
            started = time.perf_counter()
            try:
                result = call()
            except Exception as exc:
                raise PluginError(f"plugin {plugin_name!r} failed in {hook}: {exc!r}") from exc
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise PluginError(f"plugin {plugin_name!r}: {hook} must not be async")
            self._log_trace(hook, plugin_name, started)
            if result is not None:
                results.append((plugin_name, result))
        return results

    async def call_first(self, hook: str, *, accept: type | None = None, **kwargs: Any) -> Any:
        """First non-None result; a failing impl is logged with its name and skipped.

        With ``accept``, a result of another type is logged as a plugin bug and skipped too,
        so one broken plugin cannot take the hook away from the ones after it.
        """
        for plugin_name, call in self.bound_impls(hook, **kwargs):
            try:
                result = await self._run(hook, plugin_name, call)
            except Exception:
                logger.exception("plugin %r failed in %s", plugin_name, hook)
                continue
            if result is None:
                continue
            if accept is not None and not isinstance(result, accept):
                logger.error("plugin %r returned %s from %s, expected %s; ignored", plugin_name,
                             type(result).__name__, hook, accept.__name__)
                continue
            return result
        return None

    async def _run(self, hook: str, plugin_name: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = call()
        if inspect.isawaitable(result):
            result = await result
        self._log_trace(hook, plugin_name, started)
        return result

    def _log_trace(self, hook: str, plugin_name: str, started: float) -> None:
        if self.trace:
            logger.info("hook %s -> %s (%.3f ms)", hook, plugin_name,
                        (time.perf_counter() - started) * 1000)

    # -- introspection -----------------------------------------------------------------------

    def hooks_of(self, name: str) -> list[str]:
        loaded = self.loaded.get(name)
        if loaded is None:
            return []
        return sorted(caller.name for caller in self.pm.get_hookcallers(loaded.obj) or [])

    def describe(self) -> list[dict[str, Any]]:
        """Installed and loaded plugins for ``genro-asgi plugins``."""
        rows = []
        for name in sorted(set(self.installed) | set(self.loaded)):
            installed = self.installed.get(name)
            loaded = self.loaded.get(name)
            rows.append({
                "name": name,
                "distribution": installed.distribution if installed else None,
                "version": installed.version if installed else None,
                "source": loaded.source if loaded else f"entry point {installed.value}"
                if installed else None,
                "enabled": loaded is not None,
                "order": loaded.order if loaded else None,
                "hooks": self.hooks_of(name),
            })
        return rows

    def plugin_config(self, name: str) -> Any:
        loaded = self.loaded.get(name)
        return loaded.config if loaded else None

    def get(self, name: str) -> Any:
        loaded = self.loaded.get(name)
        return loaded.obj if loaded else None

    def names(self) -> Iterable[str]:
        return self.loaded.keys()


def _bind(fn: Callable[..., Any], args: list[Any]) -> Callable[[], Any]:
    return lambda: fn(*args)


def _adapter(fn: Callable[..., Any], names: tuple[str, ...], fixed: dict[str, Any],
             per_call: list[str]) -> Callable[..., Any]:
    """Call ``fn`` with the subset of fixed and per-call arguments it declares, by name."""

    def call(*values: Any) -> Any:
        given = {**fixed, **dict(zip(per_call, values, strict=False))}
        return fn(*[given[name] for name in names])

    return call


def _partial(fn: Callable[..., Any], fixed_args: list[Any]) -> Callable[..., Any]:
    # functools.partial passes on however many per-call arguments the hook has (envelope_stuck
    # has two) and is as fast as a one-argument lambda
    return functools.partial(fn, *fixed_args)


def _traced(hook: str, plugin_name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def traced(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            logger.info("hook %s -> %s (%.3f ms)", hook, plugin_name,
                        (time.perf_counter() - started) * 1000)

    return traced
