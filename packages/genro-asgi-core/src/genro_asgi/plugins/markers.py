"""pluggy markers for the ``genro_asgi`` project: decorate specs with hookspec, impls with hookimpl."""

import pluggy

PROJECT = "genro_asgi"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
