"""The demo applications: a home page at / and a small typed shop API at /shop."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from genro_asgi import AsgiApplication, HTMLResponse, NotFound, Request, route

PRODUCTS = {
    "p1": {"id": "p1", "name": "Espresso cup", "price": Decimal("4.50"), "since": date(2024, 3, 1)},
    "p2": {"id": "p2", "name": "Moka pot", "price": Decimal("29.90"), "since": date(2023, 11, 15)},
    "p3": {"id": "p3", "name": "Coffee beans 1kg", "price": Decimal("18.00"),
           "since": date(2025, 1, 20)},
}


class HomeApp(AsgiApplication):
    """The root application."""

    @route(methods=["GET"])
    def index(self) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><title>genro-asgi demo</title><h1>genro-asgi demo</h1><ul>"
            "<li><a href='/shop/products'>/shop/products</a> (JSON; send "
            "<code>X-TYTX-Transport: json</code> for typed values)</li>"
            "<li><a href='/shop/product/p2'>/shop/product/p2</a></li>"
            "<li><a href='/hello?name=you'>/hello?name=you</a></li>"
            "<li><a href='/static/'>/static/</a> (static files)</li></ul>"
        )

    @route(methods=["GET"])
    async def hello(self, name: str = "world") -> str:
        return f"Hello, {name}!"

    @route(methods=["GET"])
    def health(self, request: Request) -> dict[str, object]:
        envelope = request.envelope
        return {"status": "ok", "in_flight": len(self.server.envelopes),
                "request_id": envelope.request_id if envelope else None}


class ShopApp(AsgiApplication):
    """A typed API: prices are Decimal and dates are dates, over JSON or TYTX."""

    @route(methods=["GET"])
    def products(self, limit: int = 10, max_price: Decimal | None = None) -> dict[str, object]:
        items = [p for p in PRODUCTS.values() if max_price is None or p["price"] <= max_price]
        return {"currency": self.config.get("currency", "EUR"), "items": items[:limit]}

    @route(methods=["GET"])
    def product(self, pid: str) -> dict[str, object]:
        if pid not in PRODUCTS:
            raise NotFound(detail=f"no product {pid!r}")
        return PRODUCTS[pid]

    @route(methods=["POST"])
    def quote(self, pid: str, quantity: int = 1) -> dict[str, object]:
        product = self.product(pid)
        return {"pid": pid, "quantity": quantity, "total": product["price"] * quantity,
                "currency": self.config.get("currency", "EUR")}
