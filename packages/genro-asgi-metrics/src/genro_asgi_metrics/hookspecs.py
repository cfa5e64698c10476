"""The hook this plugin declares so other plugins contribute metrics without being imported."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genro_asgi import hookspec

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from genro_asgi import AsgiServer


class MetricsHookSpecs:
    """Hook specifications added to the plugin manager when the metrics plugin is loaded."""

    @hookspec
    def genro_asgi_metrics_collectors(self, server: AsgiServer,
                                      registry: CollectorRegistry) -> None:
        """Register your collectors on ``registry``, this server's registry. Sync, once.

        Called while the server is built (from the metrics plugin's ``genro_asgi_configure``).
        Implement it with ``@hookimpl(optionalhook=True)`` so your plugin still loads when
        metrics is not enabled.
        """
