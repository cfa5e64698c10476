"""The document's route: the encoded document, built once and rebuilt only when the route
table is replaced (an application mounted after startup)."""

from __future__ import annotations

from collections.abc import Callable

from genro_asgi import AsgiApplication, Response, route


class DocumentRoute(AsgiApplication):
    """``GET <path>``: the OpenAPI document as JSON."""

    def __init__(self, body: Callable[[], bytes]) -> None:
        super().__init__()
        self.body = body

    @route(methods=["GET"])
    async def index(self) -> Response:
        # async: answered on the event loop, never through a worker thread
        return Response(self.body(), media_type="application/json",
                        headers={"Cache-Control": "no-cache"})
