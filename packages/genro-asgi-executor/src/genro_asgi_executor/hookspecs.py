"""The hooks this plugin declares, so that other plugins follow tasks and provide pool kinds
without importing it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from genro_asgi import hookspec

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

    from .config import PoolConfig
    from .pools import Pool


class ExecutorHookSpecs:
    """Hook specifications added to the plugin manager when the executor plugin is loaded."""

    @hookspec
    def genro_asgi_executor_task_event(self, server: AsgiServer, event: dict[str, Any]) -> None:
        """A task changed state or reported progress. May be async; called on the loop.

        ``event``: ``task_id``, ``name``, ``pool``, ``state``, ``progress`` (0..1 or None),
        ``message``, ``at`` (unix time) and ``kind`` (``"state"`` or ``"progress"``).
        Implement it with ``@hookimpl(optionalhook=True)`` so your plugin still loads when the
        executor is not enabled.
        """

    @hookspec
    def genro_asgi_executor_pool_kinds(
            self, server: AsgiServer) -> Mapping[str, Callable[[str, PoolConfig], Pool]] | None:
        """Pool kinds this plugin provides: ``{kind: factory}``, ``factory(name, config)``
        returning a ``Pool`` (it validates ``config.options`` and raises ValueError naming
        the option). Sync; called once at the executor's startup, before its pools start.
        Implement it with ``@hookimpl(optionalhook=True)``.
        """
