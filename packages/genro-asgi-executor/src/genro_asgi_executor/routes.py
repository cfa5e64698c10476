"""``@in_pool("io")``: run a whole route handler in a named thread pool.

Stack it under ``@route``: the route sees an async handler with the original signature (so
parameters bind and coerce as usual), which awaits the original function in the pool. The
core's compiled routes need no change for it. Unknown pool names, or a process pool, are
refused at startup: a handler runs with its application instance (``self``), which holds the
server and cannot be sent to another process; from a handler, call
``executor_of(self.server).run_process(fn, ...)`` with a module-level ``fn`` instead.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

POOL_ATTRIBUTE = "__genro_executor_pool__"


def in_pool(pool: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the decorated sync handler in the thread pool ``pool`` of the executor plugin."""
    if not isinstance(pool, str) or not pool:
        raise TypeError(f"in_pool() needs a pool name, got {pool!r}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if asyncio.iscoroutinefunction(fn):
            raise TypeError(f"in_pool({pool!r}) on {fn.__qualname__}: the handler is async "
                            "and already runs on the event loop; decorate a sync handler")

        @functools.wraps(fn)
        async def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            from .plugin import executor_of

            return await executor_of(self.server).run_in(pool, fn, self, *args, **kwargs)

        setattr(handler, POOL_ATTRIBUTE, pool)
        return handler

    return decorate


def pooled_handlers(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``(route path, pool)`` of every ``in_pool`` handler in a genro-routes ``nodes()`` tree."""
    found = []
    for name, entry in (tree.get("entries") or {}).items():
        func = getattr(entry.get("callable"), "__func__", entry.get("callable"))
        pool = getattr(func, POOL_ATTRIBUTE, None)
        if pool is not None:
            found.append((f"{prefix}/{name}", pool))
    for child, subtree in (tree.get("routers") or {}).items():
        if "alias" not in subtree:
            found.extend(pooled_handlers(subtree, f"{prefix}/{child}"))
    return found
