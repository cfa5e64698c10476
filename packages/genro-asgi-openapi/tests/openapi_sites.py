"""Applications exercising every kind of parameter and result the document describes."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from genro_asgi import AsgiApplication, HTMLResponse, NotFound, Request, route

ADMIN_TOKEN = "admin-token-for-tests"
USER_TOKEN = "user-token-for-tests"


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    zip_code: Annotated[str, Field(min_length=5, max_length=5)]


class Order(BaseModel):
    sku: str
    quantity: Annotated[int, Field(ge=1, le=100)]
    ship_to: Address | None = None


class Stock(TypedDict):
    sku: str
    level: int


class Kinds(AsgiApplication):
    """Every parameter kind the binder accepts."""

    @route(methods=["GET"])
    def scalars(self, text: str, count: int = 1, ratio: float = 0.5, flag: bool = False,
                price: Decimal | None = None) -> dict[str, Any]:
        """Scalars in the query string.

        Each one coerced from text as the annotation says.
        """
        return {"text": text, "count": count, "ratio": ratio, "flag": flag,
                "price": None if price is None else str(price)}

    @route(methods=["GET"])
    def dates(self, day: date, at: datetime | None = None) -> dict[str, str | None]:
        return {"day": day.isoformat(), "at": None if at is None else at.isoformat()}

    @route(methods=["GET"])
    def choices(self, colour: Colour, size: Literal["S", "M", "L"] = "M") -> dict[str, str]:
        return {"colour": colour.value, "size": size}

    @route(methods=["GET"])
    def many(self, ids: list[int], labels: list[str] | None = None) -> list[int]:
        """A repeated query parameter: ?ids=1&ids=2."""
        return sorted(ids)

    @route(methods=["GET"])
    def bounded(self, n: Annotated[int, Field(ge=1, le=10)] = 5) -> int:
        return n * 2

    @route(methods=["GET"])
    def item(self, sku: str, detail: bool = False) -> Stock:
        """A path parameter: /kinds/item/{sku}."""
        if sku == "missing":
            raise NotFound(detail="no such item")
        return {"sku": sku, "level": 3 if detail else 1}

    @route(methods=["POST"])
    def order(self, order: Order, note: str = "") -> Order:
        """A pydantic model in the body."""
        return order

    @route(methods=["PUT", "PATCH"])
    def update(self, sku: str, level: int, tags: list[str] | None = None) -> dict[str, Any]:
        return {"sku": sku, "level": level, "tags": tags or []}

    @route(methods=["DELETE"])
    def remove(self, sku: str) -> None:
        return None

    @route(methods=["GET", "POST"])
    def anything(self, **params: str) -> dict[str, Any]:
        """Open-ended: any named values."""
        return dict(params)

    @route(methods=["GET"])
    def who(self, request: Request) -> dict[str, Any]:
        identity = request.identity
        return {"id": identity.id if identity else None}

    @route(methods=["GET"])
    def page(self) -> HTMLResponse:
        return HTMLResponse("<p>hello</p>")

    @route(methods=["GET"], media_type="text/csv")
    def csv(self) -> str:
        return "a,b\n1,2\n"

    @route(methods=["GET"])
    def raw(self) -> bytes:
        return b"\x00\x01"

    @route(methods=["GET"], meta_tags=["internal"])
    def internal(self) -> str:
        return "internal"


class Guarded(AsgiApplication):
    """Routes with auth rules."""

    @route(methods=["GET"])
    def open(self) -> str:
        return "open"

    @route(methods=["POST"], auth="admin")
    def reset(self, reason: str) -> dict[str, str]:
        """Only admins."""
        return {"reset": reason}

    @route(methods=["GET"], auth="admin|ops")
    def report(self) -> dict[str, int]:
        return {"count": 1}


class Typed(AsgiApplication):
    """An app that plugs genro-routes' pydantic plugin: nodes() carries the schemas."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.route.plug("pydantic")

    @route(methods=["GET"])
    def total(self, price: Decimal, quantity: int = 1) -> dict[str, Decimal]:
        return {"total": price * quantity}


def site_config(**openapi: Any) -> dict[str, Any]:
    """A config mapping with auth (bearer and API keys) and the openapi plugin."""
    return {"plugins": {
        "auth": {"anonymous": True,
                 "bearer": {"admin": {"token": ADMIN_TOKEN, "tags": ["admin"]},
                            "user": {"token": USER_TOKEN, "tags": ["user"]}},
                 "api_key": {"keys": {"robot": {"key": "robot-key-for-tests", "tags": ["ops"]}}}},
        "openapi": {"module": "genro_asgi_openapi.plugin:OpenApiPlugin", **openapi},
    }}


def mount_site(server: Any) -> Any:
    server.mount("/kinds", Kinds())
    server.mount("/guarded", Guarded())
    server.mount("/typed", Typed())
    return server
