"""Applications and routing: mounting from config and code, prefixes, path binding, methods,
handler threads, result rendering and genro-routes plugins on the node path."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import textwrap
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genro_routes import Router, RoutingClass
from genro_routes.plugins import BasePlugin
from pydantic import BaseModel

from genro_asgi import (
    AsgiApplication,
    AsgiServer,
    HTMLResponse,
    NotFound,
    Request,
    Response,
    route,
)
from genro_asgi.testing import AsyncTestClient

SHOP_SOURCE = """
from genro_asgi import AsgiApplication, route


class Shop(AsgiApplication):
    @route()
    def info(self):
        return {"currency": self.config["currency"], "name": self.name, "prefix": self.prefix}

    @route()
    def get(self, pid: int):
        return {"pid": pid, "currency": self.config["currency"]}

    @route()
    def index(self):
        return "shop home"
"""


@pytest.fixture
def shop_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module with ``Shop`` written under tmp_path and importable; returns its name."""
    name = f"http_shop_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SHOP_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


# -- mounting --------------------------------------------------------------------------------


def test_app_from_config_gets_its_params(shop_module: str, make_server: Any,
                                         make_client: Any) -> None:
    server = make_server({"apps": {"shop": {"module": f"{shop_module}:Shop", "currency": "EUR"}}})
    client = make_client(server)
    response = client.get("/shop/info")
    assert response.status_code == 200
    assert response.json() == {"currency": "EUR", "name": "shop", "prefix": "/shop"}
    assert client.get("/shop/get/42").json() == {"pid": 42, "currency": "EUR"}
    app = server.apps["shop"]
    assert dict(app.config) == {"currency": "EUR"}
    assert app.server is server
    with pytest.raises(TypeError):
        app.config["currency"] = "USD"  # read-only view


def test_app_from_config_with_an_explicit_prefix(shop_module: str, make_server: Any,
                                                 make_client: Any) -> None:
    server = make_server({"apps": {"store": {"module": f"{shop_module}:Shop",
                                             "prefix": "/api/v2/store", "currency": "CHF"}}})
    client = make_client(server)
    assert client.get("/api/v2/store/info").json() == {
        "currency": "CHF", "name": "store", "prefix": "/api/v2/store"}
    assert client.get("/store/info").status_code == 404


def test_two_config_apps_from_one_class_are_independent(shop_module: str, make_server: Any,
                                                        make_client: Any) -> None:
    server = make_server({"apps": {
        "eu": {"module": f"{shop_module}:Shop", "currency": "EUR"},
        "us": {"module": f"{shop_module}:Shop", "currency": "USD"},
    }})
    client = make_client(server)
    assert client.get("/eu/get/1").json() == {"pid": 1, "currency": "EUR"}
    assert client.get("/us/get/2").json() == {"pid": 2, "currency": "USD"}


class Shop(AsgiApplication):
    @route()
    def index(self) -> str:
        return "shop index"

    @route()
    def info(self) -> dict[str, Any]:
        return {"currency": self.config.get("currency"), "prefix": self.prefix}

    @route(name="get")
    def get_product(self, pid: int) -> dict[str, Any]:
        return {"pid": pid}

    @route()
    def pair(self, a: str, b: int = 0) -> dict[str, Any]:
        return {"a": a, "b": b}

    @route()
    def echo(self, word: str) -> str:
        return word

    @route(methods=["POST"])
    def create(self) -> str:
        return "created"

    @route(methods=["put", "delete"])
    def replace(self) -> str:
        return "replaced"

    @route(methods=["GET"])
    def read_only(self) -> str:
        return "read"

    @route(media_type="text/html")
    def page(self) -> str:
        return "<h1>Shop</h1>"

    @route(media_type="image/svg+xml")
    def logo(self) -> bytes:
        return b"<svg/>"

    @route()
    def missing(self) -> str:
        raise NotFound(detail="no such product")


def test_server_mount_with_params(make_server: Any, make_client: Any) -> None:
    server = make_server()
    shop = Shop(currency="USD")
    server.mount("/shop", shop)
    client = make_client(server)
    assert client.get("/shop/info").json() == {"currency": "USD", "prefix": "/shop"}
    assert shop.server is server
    assert server.apps["shop"] is shop


def test_nested_prefixes(make_server: Any, make_client: Any) -> None:
    server = make_server()
    server.mount("/api/v1/shop", Shop(currency="EUR"))
    server.mount("/api/v1/other/", Shop(currency="GBP"))
    server.mount("api/v2/shop", Shop(currency="JPY"))
    client = make_client(server)
    assert client.get("/api/v1/shop/info").json() == {"currency": "EUR",
                                                      "prefix": "/api/v1/shop"}
    assert client.get("/api/v1/other/info").json()["currency"] == "GBP"
    assert client.get("/api/v2/shop/get/3").json() == {"pid": 3}
    assert client.get("/api/v1/shop").text == "shop index"
    for path in ("/api", "/api/v1", "/api/v1/info", "/shop/info"):
        assert client.get(path).status_code == 404, path


class Root(AsgiApplication):
    @route()
    def index(self) -> str:
        return "home"

    @route()
    def about(self) -> str:
        return "about us"

    @route()
    def item(self, key: str) -> str:
        return f"item {key}"


def test_root_app_next_to_mounted_apps(make_server: Any, make_client: Any) -> None:
    server = make_server()
    server.mount("/", Root())
    server.mount("/shop", Shop())
    client = make_client(server)
    assert client.get("/").text == "home"
    assert client.get("/about").text == "about us"
    assert client.get("/item/k1").text == "item k1"
    assert client.get("/shop").text == "shop index"
    assert client.get("/shop/get/5").json() == {"pid": 5}
    assert client.get("/nothing").status_code == 404
    assert server.root_app is server.apps["root"]


def test_index_answers_the_app_prefix(make_server: Any, make_client: Any) -> None:
    server = make_server()
    server.mount("/shop", Shop())
    client = make_client(server)
    for path in ("/shop", "/shop/", "/shop/index"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.text == "shop index"


class Products(RoutingClass):
    def __init__(self, store: str) -> None:
        self.store = store

    @route()
    def index(self) -> str:
        return f"{self.store} products"

    @route(name="list")
    def list_products(self, limit: int = 2) -> list[str]:
        return [f"{self.store}-{i}" for i in range(limit)]


class Reviews(RoutingClass):
    @route()
    def latest(self) -> str:
        return "five stars"


class Catalog(AsgiApplication):
    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.products = Products("acme")
        self.add_branches({"name": "products", "instance": self.products})
        self.products.add_branches({"name": "reviews", "instance": Reviews()})
        self.add_branches({"name": "lazy", "cls": Products, "params": {"store": "lazy"}})

    @route()
    def index(self) -> str:
        return "catalog"


def test_child_branches_inside_an_app(make_server: Any, make_client: Any) -> None:
    server = make_server()
    server.mount("/cat", Catalog())
    client = make_client(server)
    assert client.get("/cat").text == "catalog"
    assert client.get("/cat/products").text == "acme products"
    assert client.get("/cat/products/list").json() == ["acme-0", "acme-1"]
    assert client.get("/cat/products/list?limit=3").json() == ["acme-0", "acme-1", "acme-2"]
    assert client.get("/cat/products/list/1").json() == ["acme-0"]
    assert client.get("/cat/products/reviews/latest").text == "five stars"
    assert client.get("/cat/lazy/list").json() == ["lazy-0", "lazy-1"]
    assert client.get("/cat/products/nope").status_code == 404


def test_mounting_after_the_first_request_refreshes_the_routes(make_server: Any,
                                                               make_client: Any) -> None:
    server = make_server()
    server.mount("/shop", Shop())
    client = make_client(server)
    assert client.get("/late/about").status_code == 404
    server.mount("/late", Root())
    assert client.get("/late/about").text == "about us"


def test_an_unmounted_app_has_no_server() -> None:
    with pytest.raises(RuntimeError, match="not mounted"):
        Shop().server  # noqa: B018


# -- paths -----------------------------------------------------------------------------------


@pytest.fixture
def shop_client(make_server: Any, make_client: Any) -> Any:
    server = make_server()
    server.mount("/shop", Shop())
    return make_client(server)


def test_path_segments_bind_positionally_and_are_coerced(shop_client: Any) -> None:
    response = shop_client.get("/shop/get/42")
    assert response.status_code == 200
    assert response.json() == {"pid": 42}
    assert shop_client.get("/shop/pair/x/7").json() == {"a": "x", "b": 7}
    assert shop_client.get("/shop/pair/x?b=9").json() == {"a": "x", "b": 9}
    assert shop_client.get("/shop/pair/x").json() == {"a": "x", "b": 0}
    assert shop_client.get("/shop/echo/hello%20world").text == "hello world"


def test_a_path_segment_of_the_wrong_type_is_a_bad_request(shop_client: Any) -> None:
    response = shop_client.get("/shop/get/abc")
    assert response.status_code == 400
    assert "'pid'" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", [
    "/nope", "/shop/nope", "/shop/get/1/2", "/shop/pair/a/1/extra", "/shop/index/x",
    "/shopping", "/" + "/".join(["a"] * 40), "/shop/" + "/".join(["1"] * 40),
])
def test_unknown_routes_and_too_many_segments_are_404(shop_client: Any, path: str) -> None:
    response = shop_client.get(path)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["status"] == 404
    assert error["error_id"]


def test_an_http_exception_from_a_handler_keeps_its_status(shop_client: Any) -> None:
    response = shop_client.get("/shop/missing")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no such product"


# -- methods ---------------------------------------------------------------------------------


def test_default_methods_are_get_post_and_head(shop_client: Any) -> None:
    assert shop_client.get("/shop/get/1").status_code == 200
    assert shop_client.post("/shop/get/1").status_code == 200
    assert shop_client.head("/shop/get/1").status_code == 200
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        response = shop_client.request(method, "/shop/get/1")
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET, HEAD, POST"


def test_post_only_route_refuses_get_and_head(shop_client: Any) -> None:
    assert shop_client.post("/shop/create").text == "created"
    for method in ("GET", "HEAD"):
        response = shop_client.request(method, "/shop/create")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
    assert "GET is not allowed" in shop_client.get("/shop/create").json()["error"]["message"]


def test_405_names_the_path_asked_not_the_route_inside(make_server: Any,
                                                      make_client: Any) -> None:
    server = make_server()
    server.mount("/shop", Shop())
    client = make_client(server)
    for path in ("/shop", "/shop/get/1"):
        response = client.delete(path)
        assert response.status_code == 405
        assert response.json()["error"]["message"] == f"DELETE is not allowed on {path!r}"


def test_declared_methods_are_case_insensitive(shop_client: Any) -> None:
    assert shop_client.put("/shop/replace").text == "replaced"
    assert shop_client.delete("/shop/replace").text == "replaced"
    response = shop_client.get("/shop/replace")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, PUT"


def test_get_only_route_allows_head(shop_client: Any) -> None:
    assert shop_client.get("/shop/read_only").text == "read"
    assert shop_client.head("/shop/read_only").status_code == 200
    response = shop_client.post("/shop/read_only")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_head_returns_the_get_headers_and_no_body(shop_client: Any) -> None:
    for path in ("/shop/get/7", "/shop", "/shop/page", "/shop/logo"):
        get = shop_client.get(path)
        head = shop_client.head(path)
        assert head.status_code == get.status_code == 200
        assert head.content == b""
        assert get.content != b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == get.headers["content-length"]
        assert int(get.headers["content-length"]) == len(get.content)


def test_declared_media_type(shop_client: Any) -> None:
    page = shop_client.get("/shop/page")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text == "<h1>Shop</h1>"
    logo = shop_client.get("/shop/logo")
    assert logo.headers["content-type"] == "image/svg+xml"
    assert logo.content == b"<svg/>"


# -- handler execution -----------------------------------------------------------------------


class Threads(AsgiApplication):
    @route()
    def sync_handler(self) -> dict[str, Any]:
        try:
            asyncio.get_running_loop()
            has_loop = True
        except RuntimeError:
            has_loop = False
        return {"thread": threading.get_ident(), "has_loop": has_loop}

    @route()
    async def async_handler(self) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"thread": threading.get_ident(), "has_loop": True}


async def test_sync_handlers_run_off_the_loop_and_async_ones_on_it(make_server: Any) -> None:
    server = make_server()
    server.mount("/t", Threads())
    loop_thread = threading.get_ident()
    async with AsyncTestClient(server) as client:
        sync_result = (await client.get("/t/sync_handler")).json()
        async_result = (await client.get("/t/async_handler")).json()
    assert sync_result["thread"] != loop_thread
    assert sync_result["has_loop"] is False
    assert async_result["thread"] == loop_thread


async def test_sync_handlers_do_not_block_the_loop(make_server: Any) -> None:
    started = threading.Event()
    release = threading.Event()

    class Blocking(AsgiApplication):
        @route()
        def wait(self) -> str:
            started.set()
            assert release.wait(10)
            return "released"

        @route()
        async def ping(self) -> str:
            return "pong"

    server = make_server()
    server.mount("/b", Blocking())
    async with AsyncTestClient(server) as client:
        slow = asyncio.create_task(client.get("/b/wait"))
        assert await asyncio.to_thread(started.wait, 10)
        # the loop still serves while the sync handler is blocked in its thread
        assert (await client.get("/b/ping")).text == "pong"
        assert not slow.done()
        release.set()
        assert (await slow).text == "released"


class Item(BaseModel):
    name: str
    price: Decimal
    added: datetime.date


@dataclasses.dataclass
class Line:
    sku: str
    qty: int
    at: datetime.datetime


class Results(AsgiApplication):
    @route()
    def response(self) -> Response:
        return HTMLResponse("<b>made</b>", status_code=201, headers={"X-Made": "yes"})

    @route()
    def text(self) -> str:
        return "caf\u00e9"

    @route()
    def raw(self) -> bytes:
        return b"\x00\xff"

    @route()
    def mapping(self) -> dict[str, Any]:
        return {"price": Decimal("19.90"), "day": datetime.date(2025, 1, 15),
                "at": datetime.datetime(2025, 1, 15, 10, 30), "nested": [Decimal("0.1")]}

    @route()
    def sequence(self) -> list[Any]:
        return [1, "two", None, True]

    @route()
    def nothing(self) -> None:
        return None

    @route()
    def model(self) -> Item:
        return Item(name="pen", price=Decimal("1.50"), added=datetime.date(2024, 2, 29))

    @route()
    def models(self) -> list[Item]:
        return [Item(name="a", price=Decimal("1"), added=datetime.date(2024, 1, 1))]

    @route()
    def dataclass(self) -> Line:
        return Line("X1", 2, datetime.datetime(2025, 3, 1, 8, 0, 0))

    @route()
    def request(self, request: Request, tag: str = "") -> dict[str, Any]:
        return {"method": request.method, "path": request.path, "tag": tag,
                "agent": request.headers.get("user-agent"),
                "is_request": isinstance(request, Request)}


@pytest.fixture
def results_client(make_server: Any, make_client: Any) -> Any:
    server = make_server()
    server.mount("/res", Results())
    return make_client(server)


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/res/text", "text/plain; charset=utf-8", "caf\u00e9".encode()),
        ("/res/raw", "application/octet-stream", b"\x00\xff"),
        ("/res/mapping", "application/json",
         b'{"price":"19.90","day":"2025-01-15","at":"2025-01-15T10:30:00","nested":["0.1"]}'),
        ("/res/sequence", "application/json", b'[1,"two",null,true]'),
        ("/res/nothing", "application/json", b"null"),
        ("/res/model", "application/json",
         b'{"name":"pen","price":"1.50","added":"2024-02-29"}'),
        ("/res/models", "application/json",
         b'[{"name":"a","price":"1","added":"2024-01-01"}]'),
        ("/res/dataclass", "application/json",
         b'{"sku":"X1","qty":2,"at":"2025-03-01T08:00:00"}'),
    ],
)
def test_handler_results_are_rendered(results_client: Any, path: str, content_type: str,
                                      body: bytes) -> None:
    response = results_client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == body


def test_a_returned_response_is_sent_as_is(results_client: Any) -> None:
    response = results_client.get("/res/response")
    assert response.status_code == 201
    assert response.headers["x-made"] == "yes"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == "<b>made</b>"


def test_a_request_parameter_gets_the_request(results_client: Any) -> None:
    response = results_client.post("/res/request?tag=t1", headers={"User-Agent": "probe/1"})
    assert response.json() == {"method": "POST", "path": "/res/request", "tag": "t1",
                               "agent": "probe/1", "is_request": True}
    # the request parameter is not a client parameter
    refused = results_client.get("/res/request?request=x")
    assert refused.status_code == 400
    assert "unexpected parameter 'request'" in refused.json()["error"]["message"]


# -- genro-routes plugins on the node path ---------------------------------------------------


class CallRecorder(BasePlugin):
    """A genro-routes plugin that records what reached the wrapped handler, and where."""

    plugin_code = "http_test_recorder"
    plugin_description = "records handler calls for the genro-asgi HTTP tests"
    calls: list[tuple[str, dict[str, Any], str]] = []

    def configure(self, enabled: bool = True) -> None:
        pass

    def wrap_handler(self, router: Any, entry: Any, call_next: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            CallRecorder.calls.append((entry.name, kwargs, threading.current_thread().name))
            return call_next(*args, **kwargs)

        return wrapper


Router.register_plugin(CallRecorder, name=CallRecorder.plugin_code)


class Validated(AsgiApplication):
    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.route.plug("pydantic")
        self.route.plug(CallRecorder.plugin_code)

    @route(name="get")
    def get_product(self, pid: int, when: datetime.date | None = None) -> dict[str, Any]:
        return {"pid": pid, "type": type(pid).__name__, "when": when}

    @route()
    async def total(self, qty: int, price: Decimal) -> dict[str, Any]:
        return {"total": qty * price}

    @route()
    def index(self) -> str:
        return "validated"


def test_entries_with_routes_plugins_run_through_the_node(make_server: Any,
                                                          make_client: Any) -> None:
    CallRecorder.calls.clear()
    server = make_server()
    server.mount("/v", Validated())
    client = make_client(server)
    response = client.get("/v/get/42?when=2025-01-02")
    assert response.status_code == 200
    assert response.json() == {"pid": 42, "type": "int", "when": "2025-01-02"}
    assert client.post("/v/total", json={"qty": 3, "price": "1.10"}).json() == {"total": "3.30"}
    assert client.get("/v").text == "validated"
    assert client.get("/v/get/nope").status_code == 400
    names = [name for name, _, _ in CallRecorder.calls]
    assert names == ["get", "total", "index"]
    assert CallRecorder.calls[0][1] == {"pid": 42, "when": datetime.date(2025, 1, 2)}
    # the sync entry still ran in a worker thread through the plugin chain
    assert CallRecorder.calls[0][2] != threading.main_thread().name


# -- request ids -----------------------------------------------------------------------------


def test_x_request_id_is_echoed_and_used_in_errors(shop_client: Any) -> None:
    ok = shop_client.get("/shop/get/1", headers={"X-Request-ID": "trace-123"})
    assert ok.headers["x-request-id"] == "trace-123"
    failed = shop_client.get("/nope", headers={"X-Request-ID": "trace-404"})
    assert failed.headers["x-request-id"] == "trace-404"
    assert failed.json()["error"]["request_id"] == "trace-404"
    assert "x-request-id" not in shop_client.get("/shop/get/1").headers
    too_long = shop_client.get("/shop/get/1", headers={"X-Request-ID": "x" * 500})
    assert "x-request-id" not in too_long.headers


def test_servers_do_not_share_routes(tmp_path: Path) -> None:
    first = AsgiServer(tmp_path, config={}, environ={})
    second = AsgiServer(tmp_path, config={}, environ={})
    first.mount("/shop", Shop())
    assert "/shop" in first.compile_route_table()
    assert "/shop" not in second.compile_route_table()
