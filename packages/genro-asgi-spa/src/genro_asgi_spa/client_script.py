"""The browser client, ``<path>/client.js``: ``static/spa-client.js`` with this server's paths.

The module imports the WSX client from the wsx plugin's path and defaults to the spa plugin's
own path, so both are written into the text when it is first served (the file on disk says
``/_wsx`` and ``/_spa``, the defaults). Public code: served without credentials.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import TYPE_CHECKING

from genro_asgi import Response

if TYPE_CHECKING:
    from .manager import SpaManager

CLIENT_FILE = "spa-client.js"
# the exact texts of the file that name a path, and which path each one is
_WSX_IMPORT = '"/_wsx/client.js"'
_WSX_DEFAULT = 'wsx = "/_wsx"'
_SPA_DEFAULT = 'base = "/_spa"'


def client_source() -> str:
    return files("genro_asgi_spa").joinpath("static", CLIENT_FILE).read_text("utf-8")


def render_client(wsx_path: str, spa_path: str) -> bytes:
    """The client's text for a server whose wsx endpoint is ``wsx_path`` and spa routes are
    at ``spa_path`` (both absolute, validated by their plugins' configs)."""
    text = client_source()
    for marker in (_WSX_IMPORT, _WSX_DEFAULT, _SPA_DEFAULT):
        if marker not in text:  # the file and this module must change together
            raise RuntimeError(f"{CLIENT_FILE} no longer contains {marker}")
    text = text.replace(_WSX_IMPORT, json.dumps(f"{wsx_path}/client.js"))
    text = text.replace(_WSX_DEFAULT, f"wsx = {json.dumps(wsx_path)}")
    text = text.replace(_SPA_DEFAULT, f"base = {json.dumps(spa_path)}")
    return text.encode("utf-8")


class ClientScript:
    """Renders the client once, on its first request (the wsx plugin's config is final then)."""

    def __init__(self, manager: SpaManager) -> None:
        self.manager = manager
        self._body: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            wsx = self.manager.server.plugins.get("wsx")
            wsx_path = getattr(getattr(wsx, "config", None), "path", "/_wsx")
            self._body = render_client(str(wsx_path), self.manager.config.path)
        return self._body

    def response(self) -> Response:
        return Response(self.body(), media_type="text/javascript",
                        headers={"cache-control": "no-cache"})
