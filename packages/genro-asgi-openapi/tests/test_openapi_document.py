"""The document built from a site exercising every parameter kind, checked by
openapi-spec-validator and field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_sites import Kinds, mount_site, site_config
from openapi_spec_validator import validate
from pydantic import BaseModel

from genro_asgi import AsgiApplication, AsgiServer, PluginError, StaticRouter, route
from genro_asgi_openapi import OpenApiConfig, build_document

PLUGIN = "genro_asgi_openapi.plugin:OpenApiPlugin"


def site(tmp_path: Path, **openapi: Any) -> AsgiServer:
    return mount_site(AsgiServer(tmp_path, config=site_config(**openapi), environ={}))


def document(server: AsgiServer) -> dict[str, Any]:
    result: dict[str, Any] = server.plugins.get("openapi").document()
    return result


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """The component a ``$ref`` points at (or the schema itself)."""
    reference = schema.get("$ref")
    if reference is None:
        return schema
    return doc["components"]["schemas"][reference.rsplit("/", 1)[-1]]


def body_schema(operation: dict[str, Any], media: str = "application/json") -> Any:
    return operation["requestBody"]["content"][media]["schema"]


def test_the_site_document_is_valid_openapi_3_1(tmp_path: Path) -> None:
    doc = document(site(tmp_path))
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "genro-asgi API"


def test_methods_are_the_allowed_ones_and_head_is_implied(tmp_path: Path) -> None:
    paths = document(site(tmp_path))["paths"]
    assert set(paths["/kinds/scalars"]) == {"get"}
    assert set(paths["/kinds/update"]) == {"put", "patch"}
    assert set(paths["/kinds/remove"]) == {"delete"}
    assert set(paths["/kinds/anything"]) == {"get", "post"}
    assert set(paths["/guarded/reset"]) == {"post"}


def test_query_parameters_of_every_kind(tmp_path: Path) -> None:
    doc = document(site(tmp_path))
    paths = doc["paths"]
    scalars = {p["name"]: p for p in paths["/kinds/scalars"]["get"]["parameters"]}
    assert scalars["text"] == {"name": "text", "in": "query", "required": True,
                               "schema": {"type": "string"}}
    assert scalars["count"]["schema"] == {"type": "integer", "default": 1}
    assert scalars["ratio"]["schema"] == {"type": "number", "default": 0.5}
    assert scalars["flag"]["schema"] == {"type": "boolean", "default": False}
    # a Decimal is a number or decimal text; null cannot travel in a query string
    price = scalars["price"]["schema"]
    assert {"type": "null"} not in price["anyOf"] and {"type": "number"} in price["anyOf"]
    assert any(option.get("pattern") for option in price["anyOf"])
    dates = {p["name"]: p["schema"] for p in paths["/kinds/dates"]["get"]["parameters"]}
    assert dates["day"] == {"type": "string", "format": "date"}
    assert dates["at"]["format"] == "date-time"
    choices = {p["name"]: p["schema"] for p in paths["/kinds/choices"]["get"]["parameters"]}
    assert choices["colour"] == {"$ref": "#/components/schemas/Colour"}
    assert resolve(doc, choices["colour"]) == {"enum": ["red", "green"], "title": "Colour",
                                               "type": "string"}
    assert "/kinds/choices/{colour}" in paths  # an enum fits in a path segment
    assert choices["size"] == {"enum": ["S", "M", "L"], "type": "string", "default": "M"}
    many = {p["name"]: p for p in paths["/kinds/many"]["get"]["parameters"]}
    assert many["ids"]["schema"] == {"type": "array", "items": {"type": "integer"}}
    assert many["ids"]["style"] == "form" and many["ids"]["explode"] is True
    bounded = paths["/kinds/bounded"]["get"]["parameters"][0]["schema"]
    assert bounded == {"type": "integer", "minimum": 1, "maximum": 10, "default": 5}
    # the Request parameter is the framework's, not the client's
    assert "parameters" not in paths["/kinds/who"]["get"]
    anything = paths["/kinds/anything"]["get"]["parameters"]
    assert anything == [{"name": "params", "in": "query", "style": "form", "explode": True,
                         "description": "Any further named values.",
                         "schema": {"type": "object"}}]


def test_request_bodies_json_tytx_and_form_when_scalar(tmp_path: Path) -> None:
    doc = document(site(tmp_path))
    paths = doc["paths"]
    reset = paths["/guarded/reset"]["post"]["requestBody"]
    assert reset["required"] is True
    assert list(reset["content"]) == ["application/json", "application/x-www-form-urlencoded",
                                      "application/vnd.tytx+json"]
    assert body_schema(paths["/guarded/reset"]["post"]) == {
        "type": "object", "properties": {"reason": {"type": "string"}},
        "required": ["reason"], "additionalProperties": False}
    # a list or a model cannot travel in a form: JSON and TYTX only
    update = paths["/kinds/update"]["put"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" not in update
    order = body_schema(paths["/kinds/order"]["post"])
    assert order["required"] == ["order"]
    assert order["properties"]["order"] == {"$ref": "#/components/schemas/Order"}
    ship_to = resolve(doc, order["properties"]["order"])["properties"]["ship_to"]
    assert {"$ref": "#/components/schemas/Address"} in ship_to["anyOf"]
    # open-ended handlers accept any further names
    assert "additionalProperties" not in body_schema(paths["/kinds/anything"]["post"])


def test_path_parameters_for_leading_required_positional_ones(tmp_path: Path) -> None:
    paths = document(site(tmp_path))["paths"]
    item = paths["/kinds/item/{sku}"]["get"]
    assert item["parameters"][0] == {"name": "sku", "in": "path", "required": True,
                                     "schema": {"type": "string",
                                                "pattern": r"^(?!\.\.?$)[^/]+$"}}
    assert [p["name"] for p in item["parameters"][1:]] == ["detail"]
    assert item["operationId"] == "get_kinds_item_sku"
    assert "/kinds/item" in paths  # the query form stays
    update = paths["/kinds/update/{sku}/{level}"]["put"]
    assert [p["in"] for p in update["parameters"]] == ["path", "path"]
    assert list(body_schema(update)["properties"]) == ["tags"]
    # a model does not fit in a segment; optional leading parameters start no variant
    assert not any(p.startswith("/kinds/order/") for p in paths)
    assert not any(p.startswith("/kinds/bounded/") for p in paths)
    off = document(site(tmp_path, path_parameters=False))["paths"]
    assert not any("{" in p for p in off)


def test_results_by_annotation_and_media_type(tmp_path: Path) -> None:
    doc = document(site(tmp_path))
    paths = doc["paths"]

    def content(path: str, method: str = "get") -> dict[str, Any]:
        result: dict[str, Any] = paths[path][method]["responses"]["200"]["content"]
        return result

    stock = resolve(doc, content("/kinds/item")["application/json"]["schema"])
    assert stock["title"] == "Stock" and stock["required"] == ["sku", "level"]
    assert content("/kinds/item")["application/vnd.tytx+json"] == {"schema": {}}
    assert content("/kinds/page") == {"text/html": {"schema": {"type": "string"}}}
    assert content("/kinds/csv")["text/csv"] == {"schema": {"type": "string"}}
    assert content("/kinds/raw") == {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}
    assert content("/kinds/remove", "delete")["application/json"] == {
        "schema": {"type": "null"}}
    assert content("/kinds/many")["application/json"]["schema"] == {
        "type": "array", "items": {"type": "integer"}}


def test_errors_use_the_errors_plugin_shape(tmp_path: Path) -> None:
    doc = document(site(tmp_path))
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["status", "message", "error_id"]
    responses = doc["paths"]["/kinds/scalars"]["get"]["responses"]
    assert responses["400"] == {"$ref": "#/components/responses/BadRequest"}
    assert {"404", "500", "503", "default"} <= set(responses)
    assert "413" not in responses and "403" not in responses
    posted = doc["paths"]["/guarded/reset"]["post"]["responses"]
    assert {"401", "403", "413", "415"} <= set(posted)
    bad_request = doc["components"]["responses"]["BadRequest"]["content"]
    assert bad_request["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_security_from_the_auth_backends_and_route_rules(tmp_path: Path) -> None:
    doc = document(site(tmp_path))
    assert doc["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "A static token (realm genro-asgi)."},
        "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                    "description": "An API key."},
    }
    reset = doc["paths"]["/guarded/reset"]["post"]
    assert reset["security"] == [{"bearer": []}, {"api_key": []}]
    assert reset["x-genro-auth-rule"] == "admin"
    assert doc["paths"]["/guarded/report"]["get"]["x-genro-auth-rule"] == "admin|ops"
    # anonymous: true, so routes without a rule need no credential
    assert "security" not in doc["paths"]["/guarded/open"]["get"]


def test_security_when_every_request_needs_a_credential(tmp_path: Path) -> None:
    config = site_config()
    config["plugins"]["auth"].update(anonymous=False, public=["/kinds/*"])
    config["plugins"]["auth"]["jwt"] = {"secret": "s" * 32}
    doc = document(mount_site(AsgiServer(tmp_path, config=config, environ={})))
    schemes = doc["components"]["securitySchemes"]
    assert schemes["jwt"]["bearerFormat"] == "JWT"
    assert doc["paths"]["/guarded/open"]["get"]["security"] == [
        {"bearer": []}, {"api_key": []}, {"jwt": []}]
    assert "security" not in doc["paths"]["/kinds/scalars"]["get"]  # public


def test_one_tag_per_app_and_filters(tmp_path: Path) -> None:
    doc = document(site(tmp_path))
    assert [t["name"] for t in doc["tags"]] == ["guarded", "kinds", "typed"]
    assert doc["tags"][1]["description"] == "Every parameter kind the binder accepts."
    assert doc["paths"]["/kinds/internal"]["get"]["tags"] == ["kinds", "internal"]
    # the plugin's own routes are not described
    assert not any(p.startswith(("/openapi.json", "/docs")) for p in doc["paths"])

    only = document(site(tmp_path, apps=["guarded"]))["paths"]
    assert {p.split("/")[1] for p in only} == {"guarded"}
    hidden = document(site(tmp_path, exclude_tags=["internal", "typed"]))["paths"]
    assert "/kinds/internal" not in hidden and not any(p.startswith("/typed") for p in hidden)
    assert "/kinds/scalars" in hidden
    public = document(site(tmp_path, hide_protected=True))["paths"]
    assert "/guarded/open" in public and "/guarded/reset" not in public
    assert "/guarded/report" not in public


def test_schemas_from_genro_routes_nodes_when_pydantic_is_plugged(tmp_path: Path) -> None:
    doc = document(site(tmp_path))
    total = doc["paths"]["/typed/total"]["get"]
    params = {p["name"]: p["schema"] for p in total["parameters"]}
    # nodes() fields carry pydantic's titles; the binder's own adapters do not
    assert params["quantity"] == {"type": "integer", "title": "Quantity", "default": 1}
    result = total["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["type"] == "object"


def _models(field: str, kind: type) -> type[BaseModel]:
    """A ``Holder`` whose ``item`` is a model named ``Item`` with one field ``field``."""
    item = type("Item", (BaseModel,), {"__annotations__": {field: kind}})
    return type("Holder", (BaseModel,), {"__annotations__": {"item": item}})


HolderA = _models("a", int)
HolderB = _models("b", str)


class First(AsgiApplication):
    @route(methods=["POST"])
    def put(self, holder: HolderA) -> None:  # type: ignore[valid-type]
        return None


class Second(AsgiApplication):
    @route(methods=["POST"])
    def put(self, holder: HolderB) -> None:  # type: ignore[valid-type]
        return None


def test_models_with_the_same_name_do_not_clash(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {"openapi": {"module": PLUGIN}}})
    server.mount("/first", First())
    server.mount("/second", Second())
    doc = document(server)
    validate(doc)
    first = resolve(doc, body_schema(doc["paths"]["/first/put"]["post"])["properties"]["holder"])
    second = resolve(doc, body_schema(doc["paths"]["/second/put"]["post"])["properties"][
        "holder"])
    assert first["properties"]["item"] != second["properties"]["item"]
    assert resolve(doc, first["properties"]["item"])["properties"] == {
        "a": {"title": "A", "type": "integer"}}
    assert resolve(doc, second["properties"]["item"])["properties"] == {
        "b": {"title": "B", "type": "string"}}


def test_mounted_asgi_apps_and_static_files_are_named_not_described(tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    server = site(tmp_path)
    server.mount("/static", StaticRouter(directory=tmp_path / "public"))

    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("never called")

    server.mount("/raw", raw_app)
    doc = document(server)
    assert not any(p.startswith(("/static", "/raw")) for p in doc["paths"])
    assert "`/static` (StaticRouter)" in doc["info"]["description"]
    assert "`/raw` (function)" in doc["info"]["description"]


def test_a_root_app_is_described_without_shadowing_its_siblings(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {"openapi": {"module": PLUGIN}}})

    class Root(AsgiApplication):
        @route(methods=["GET"])
        def index(self, name: str) -> str:
            return name

        @route(methods=["GET"])
        def ping(self) -> str:
            return "pong"

    server.mount("/", Root())
    server.mount("/kinds", Kinds())
    paths = document(server)["paths"]
    assert "/" in paths and "/index" not in paths and "/{name}" not in paths
    assert paths["/"]["get"]["tags"] == ["root"]
    assert paths["/kinds/scalars"]["get"]["tags"] == ["kinds"]


def test_build_document_without_the_plugin(tmp_path: Path) -> None:
    server = mount_site(AsgiServer(tmp_path, environ={}))
    doc = build_document(server, OpenApiConfig(title="Bare", servers=[{"url": "/api"}]))
    validate(doc)
    assert doc["info"]["title"] == "Bare" and doc["servers"] == [{"url": "/api"}]
    assert "securitySchemes" not in doc["components"]
    # a rule is enforced by the core even without the auth plugin: always 401
    reset = doc["paths"]["/guarded/reset"]["post"]
    assert "401" in reset["responses"] and "security" not in reset


@pytest.mark.parametrize(("options", "message"), [
    ({"path": "openapi.json"}, "plugins.openapi.path"),
    ({"path": "/docs/"}, "plugins.openapi.path"),
    ({"explorer_path": "/a/../b"}, "plugins.openapi.explorer_path"),
    ({"colour": "red"}, "plugins.openapi.colour"),
    ({"max_document_bytes": 10}, "plugins.openapi.max_document_bytes"),
])
def test_bad_options_name_the_key(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError, match=message.replace(".", r"\.")):
        AsgiServer(tmp_path, environ={},
                   config={"plugins": {"openapi": {"module": PLUGIN, **options}}})


def test_an_unresolvable_annotation_is_described_as_anything(tmp_path: Path) -> None:
    class Local(BaseModel):
        x: int

    class App(AsgiApplication):
        @route(methods=["POST"])
        def take(self, value: Local, count: int = 1) -> Local:  # strings here: not resolvable
            return value

    server = AsgiServer(tmp_path, environ={}, config={"plugins": {"openapi": {"module": PLUGIN}}})
    server.mount("/app", App())
    doc = document(server)
    validate(doc)
    operation = doc["paths"]["/app/take"]["post"]
    assert body_schema(operation)["properties"] == {"value": {},
                                                    "count": {"type": "integer", "default": 1}}
    assert operation["responses"]["200"]["content"]["*/*"] == {"schema": {}}


def test_operation_ids_stay_unique(tmp_path: Path) -> None:
    class Shop(AsgiApplication):
        @route(methods=["GET"])
        def product(self, pid: str) -> str:
            return pid

        @route(methods=["GET"])
        def product_pid(self) -> str:  # slug shop_product_pid, as /shop/product/{pid}'s
            return ""

    server = AsgiServer(tmp_path, environ={}, config={"plugins": {"openapi": {"module": PLUGIN}}})
    server.mount("/shop", Shop())
    doc = document(server)
    validate(doc)  # duplicate operationIds would be refused
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == 3


def test_defaults_without_a_json_form_are_left_out(tmp_path: Path) -> None:
    class Limits(AsgiApplication):
        @route(methods=["GET"])
        def span(self, low: float = float("-inf"), high: float = float("nan"),
                 step: float = 0.5) -> float:
            return step

    server = AsgiServer(tmp_path, environ={}, config={"plugins": {"openapi": {"module": PLUGIN}}})
    server.mount("/limits", Limits())
    params = {p["name"]: p["schema"]
              for p in document(server)["paths"]["/limits/span"]["get"]["parameters"]}
    assert params == {"low": {"type": "number"}, "high": {"type": "number"},
                      "step": {"type": "number", "default": 0.5}}

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in the document: not JSON")

    json.loads(server.plugins.get("openapi").document_bytes(), parse_constant=no_constants)
