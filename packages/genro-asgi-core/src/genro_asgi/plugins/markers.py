"""pluggy markers of the ``genro_asgi`` project: hookspec for specs, hookimpl for impls."""

import pluggy

PROJECT = "genro_asgi"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
