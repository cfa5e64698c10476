"""The demo applications: a home page at / and a small typed shop API at /shop."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

from genro_asgi import (
    AsgiApplication,
    HTMLResponse,
    NotFound,
    Request,
    UploadFile,
    route,
    safe_filename,
)
from genro_asgi_executor import executor_of, report_progress

PRODUCTS = {
    "p1": {"id": "p1", "name": "Espresso cup", "price": Decimal("4.50"), "since": date(2024, 3, 1)},
    "p2": {"id": "p2", "name": "Moka pot", "price": Decimal("29.90"), "since": date(2023, 11, 15)},
    "p3": {"id": "p3", "name": "Coffee beans 1kg", "price": Decimal("18.00"),
           "since": date(2025, 1, 20)},
}


def hash_rounds(rounds: int) -> str:
    """CPU-bound demo job: runs in the executor's process pool, reporting progress."""
    digest = b"genro"
    for i in range(rounds):
        digest = hashlib.sha256(digest).digest()
        if i % 50_000 == 0:
            report_progress(i / rounds, f"{i} rounds")
    return digest.hex()


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

    @route(methods=["POST"])
    async def crunch(self, request: Request, rounds: int = 1_000_000) -> dict[str, object]:
        """Start a CPU job; follow it at /_tasks/<task_id>.

        The task belongs to the caller's identity: only that identity (or an admin) may see
        it listed and cancel it. An anonymous caller's task has no owner: its id shows it to
        whoever holds it, and only an admin may cancel it.
        """
        task_id = await executor_of(self.server).submit(
            hash_rounds, max(1, min(rounds, 20_000_000)), pool="cpu", name="hash_rounds",
            owner=request.identity)
        return {"task_id": task_id, "status": f"/_tasks/{task_id}"}

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

    @route(methods=["POST"], auth="admin")
    def restock(self, pid: str, quantity: int, request: Request) -> dict[str, object]:
        """Only for identities tagged admin (the demo's bearer token)."""
        self.product(pid)
        identity = request.identity
        return {"pid": pid, "added": quantity, "by": identity.id if identity else None}

    @route(methods=["POST"], auth="admin")
    async def upload_image(self, pid: str, image: UploadFile) -> dict[str, object]:
        """Attach an image to a product: a multipart/form-data upload (admin only).

        The demo stores nothing: it answers what it received, with the file's SHA-256.
        """
        self.product(pid)
        digest = hashlib.sha256()
        while chunk := await image.read(64 * 1024):
            digest.update(chunk)
        return {"pid": pid, "filename": safe_filename(image.filename),
                "content_type": image.content_type, "size": image.size,
                "sha256": digest.hexdigest()}

    @route(methods=["POST"])
    def quote(self, pid: str, quantity: int = 1) -> dict[str, object]:
        product = self.product(pid)
        return {"pid": pid, "quantity": quantity, "total": product["price"] * quantity,
                "currency": self.config.get("currency", "EUR")}

    @route(methods=["GET"])
    def average_price(self, pid: str = "") -> dict[str, object]:
        """A deliberate bug for the remote debugger: with no match, it divides by zero.

        ``curl /shop/average_price?pid=nope`` is parked for a debugger; attach with
        ``genro-asgi debug examples/demo attach --wait 60`` and ``p matching``.
        """
        matching = [p["price"] for p in PRODUCTS.values() if not pid or p["id"] == pid]
        return {"average": sum(matching) / len(matching)}
