"""The Plugin base class and the CliCommand record that plugins return from their hooks."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    import argparse

    from ..server import AsgiServer


class Plugin:
    """Base for class-based plugins: one instance per server, so state never leaks across servers.

    The class attributes a plugin may set:

    - ``config_model``: a pydantic model validating the plugin's options from config.yaml;
    - ``requires_core``: a version specifier (``">=0.1,<0.2"``) the core's version must satisfy;
    - ``hookspecs``: a module or class with extra hook specifications this plugin declares.

    ``self.config`` is the validated options (a ``config_model`` instance, else the mapping).
    """

    config_model: ClassVar[type[BaseModel] | None] = None
    requires_core: ClassVar[str | None] = None
    hookspecs: ClassVar[Any] = None

    def __init__(self, server: AsgiServer, config: Any) -> None:
        self._server_ref = weakref.ref(server)
        self.config = config

    @property
    def server(self) -> AsgiServer:
        """The server this plugin belongs to (held weakly: RuntimeError once it is gone)."""
        server = self._server_ref()
        if server is None:
            raise RuntimeError("the server this plugin belonged to is gone")
        return server


@dataclass
class CliCommand:
    """A ``genro-asgi`` subcommand contributed by a plugin.

    ``name`` is the command (``genro-asgi NAME``), ``help`` its one-line description,
    ``configure(parser)`` adds its arguments to an argparse parser, and ``run(args)`` runs it
    and returns the exit status (None is 0).
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace], int | None]
    configure: Callable[[argparse.ArgumentParser], None] = field(default=lambda parser: None)
