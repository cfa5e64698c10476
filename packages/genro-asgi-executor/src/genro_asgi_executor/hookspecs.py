"""The hook this plugin declares, so that other plugins follow tasks without importing it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genro_asgi import hookspec

if TYPE_CHECKING:
    from genro_asgi import AsgiServer


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
