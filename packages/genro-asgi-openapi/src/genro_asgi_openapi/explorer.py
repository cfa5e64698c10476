"""The API explorer: Swagger UI 5 from the swagger-ui-bundle-v2 package, served by the plugin.

The page and every asset come from this server (nothing from a CDN): ``<explorer>`` is the
page, ``<explorer>/assets/<name>`` the files, a fixed list read from the installed package at
startup and kept in memory. The initializer is a file of ours rather than an inline script,
so a Content-Security-Policy of ``script-src 'self'`` still lets the page run.
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Callable
from pathlib import Path

from genro_asgi import AsgiApplication, NotFound, Request, Response, route

# file -> media type: everything the page loads
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
INIT_NAME = "init.js"
ASSET_CACHE = "public, max-age=86400"

# reads its spec URL from the page, so the same file serves every root_path
INIT_JS = b"""window.addEventListener("load", function () {
  var holder = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: holder.getAttribute("data-spec"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    validatorUrl: null
  });
});
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui" data-spec="{spec}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-ui-standalone-preset.js"></script>
<script src="{assets}/{init}"></script>
</body>
</html>
"""


def bundle_directory() -> Path:
    """Where the installed swagger-ui-bundle-v2 keeps Swagger UI's files."""
    bundle = importlib.import_module("swagger_ui_bundle")  # ships no type hints
    return Path(str(bundle.swagger_ui_path))


class ExplorerRoute(AsgiApplication):
    """Swagger UI at the mount point; its assets below it."""

    def __init__(self, title: Callable[[], str], explorer_path: str, spec_path: str) -> None:
        super().__init__()
        self.title = title
        self.explorer_path = explorer_path
        self.spec_path = spec_path
        self._files: dict[str, bytes] = {}

    def load(self) -> None:
        """Read the assets (about 2 MB) once, at startup: a missing file stops the startup
        naming it, and no request ever waits on the disk."""
        directory = bundle_directory()
        for name in ASSETS:
            try:
                self._files[name] = (directory / name).read_bytes()
            except OSError as exc:
                raise RuntimeError(f"the explorer asset {name!r} is missing from "
                                   f"swagger-ui-bundle-v2 ({exc}); reinstall it") from None

    @route(methods=["GET"], media_type="text/html")
    async def index(self, request: Request) -> Response:
        root = request.scope.get("root_path", "")
        page = PAGE.format(title=html.escape(self.title()),
                           assets=html.escape(root + self.explorer_path + "/assets"),
                           spec=html.escape(root + self.spec_path), init=INIT_NAME)
        return Response(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @route(methods=["GET"])
    async def assets(self, name: str) -> Response:
        if name == INIT_NAME:
            return Response(INIT_JS, media_type="text/javascript",
                            headers={"Cache-Control": ASSET_CACHE})
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFound(detail=f"no explorer asset {name!r}")
        if not self._files:  # served without a lifespan startup (a bare test client)
            self.load()
        return Response(self._files[name], media_type=media_type,
                        headers={"Cache-Control": ASSET_CACHE})
