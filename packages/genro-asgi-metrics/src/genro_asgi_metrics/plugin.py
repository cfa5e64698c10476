"""The ``metrics`` plugin: its options and its registration with genro-asgi.

This release is the installable skeleton: it is discovered through the ``genro_asgi`` entry
point, validates its options and declares the core versions it supports. Its behaviour lands
with its own issue; until then enabling it changes nothing else on the server.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from genro_asgi import Plugin


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "/metrics"


class MetricsPlugin(Plugin):
    config_model = MetricsConfig
    requires_core = ">=0.1,<0.2"
    config: MetricsConfig
