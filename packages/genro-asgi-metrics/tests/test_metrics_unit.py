"""In-process behaviour of the metrics plugin: registries, labels, exposition, hooks, WebSocket."""

from __future__ import annotations

import gc
import gzip
import weakref
from typing import Any

import pytest
from helpers import IDENTITY, Shop, echo, label_values, value
from prometheus_client import CollectorRegistry, Counter

from genro_asgi import AsgiServer, Plugin, PluginError, hookimpl
from genro_asgi.testing import TestClient
from genro_asgi_metrics import UNMATCHED, MetricsPlugin
from genro_asgi_metrics.exposition import Exposition, ExpositionApp


def build(tmp_path: Any, **options: Any) -> AsgiServer:
    server = AsgiServer(tmp_path, config={"plugins": {"metrics": options}}, environ={})
    server.mount("/shop", Shop())
    return server


def scrape(client: TestClient, path: str = "/metrics", **headers: str) -> Any:
    return client.get(path, headers={**IDENTITY, **headers})


def test_each_server_has_its_own_registry(tmp_path) -> None:
    one, two = build(tmp_path), build(tmp_path)
    reg_one = one.plugins.get("metrics").registry
    reg_two = two.plugins.get("metrics").registry
    assert reg_one is not reg_two
    with TestClient(one) as c1, TestClient(two) as c2:
        for _ in range(3):
            c1.get("/shop/products")
        c2.get("/shop/products")
        assert value(scrape(c1).text, "http_requests_total", method="GET",
                     route="/shop/products", status="200") == 3
        assert value(scrape(c2).text, "http_requests_total", method="GET",
                     route="/shop/products", status="200") == 1


def test_global_registry_untouched(tmp_path) -> None:
    from prometheus_client import REGISTRY

    server = build(tmp_path)
    with TestClient(server) as client:
        client.get("/shop/products")
    assert REGISTRY.get_sample_value("http_requests_total",
                                     {"method": "GET", "route": "/shop/products",
                                      "status": "200"}) is None


def test_dropping_the_server_frees_its_registry(tmp_path) -> None:
    server = build(tmp_path)
    with TestClient(server) as client:
        client.get("/shop/products")
    registry_ref = weakref.ref(server.plugins.get("metrics").registry)
    plugin_ref = weakref.ref(server.plugins.get("metrics"))
    del server, client
    gc.collect()
    assert registry_ref() is None
    assert plugin_ref() is None


def test_routes_are_templates_and_unmatched_paths_share_one_label(tmp_path) -> None:
    server = build(tmp_path)
    with TestClient(server) as client:
        client.get("/shop/price/cup")
        client.get("/shop/price/pot")
        for i in range(20):
            assert client.get(f"/random/{i}/x{i}").status_code == 404
        text = scrape(client).text
    assert value(text, "http_requests_total", method="GET", route="/shop/price",
                 status="200") == 2
    assert value(text, "http_requests_total", method="GET", route=UNMATCHED,
                 status="404") == 20
    assert label_values(text, "http_requests_total", "route") == {"/shop/price", UNMATCHED}


def test_unknown_methods_are_folded(tmp_path) -> None:
    server = build(tmp_path)
    with TestClient(server) as client:
        client.request("BREW", "/shop/products")
        text = scrape(client).text
    assert label_values(text, "http_requests_total", "method") == {"OTHER"}


def test_asgi_mount_is_its_own_route_label(tmp_path) -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"raw"})

    server = build(tmp_path)
    server.mount("/raw", raw)
    with TestClient(server) as client:
        client.get("/raw/a/b")
        client.get("/raw/c")
        text = scrape(client).text
    assert value(text, "http_requests_total", method="GET", route="/raw", status="200") == 2


def test_metrics_path_and_skip_paths_are_not_counted(tmp_path) -> None:
    server = build(tmp_path, skip_paths=["/shop/health"])
    with TestClient(server) as client:
        client.get("/shop/health")
        client.get("/shop/products")
        scrape(client)
        text = scrape(client).text
    assert label_values(text, "http_requests_total", "route") == {"/shop/products"}
    assert value(text, "http_requests_in_progress") == 0


def test_in_progress_counts_requests_being_served(tmp_path) -> None:
    from genro_asgi import AsgiApplication, route

    class Peek(AsgiApplication):
        @route(methods=["GET"])
        def now(self) -> str:
            return str(self.server.plugins.get("metrics")._in_progress())

    server = build(tmp_path)
    server.mount("/peek", Peek())
    with TestClient(server) as client:
        assert client.get("/peek/now").text == "1"
        assert value(scrape(client).text, "http_requests_in_progress") == 0


def test_errors_durations_and_sizes(tmp_path) -> None:
    server = build(tmp_path)
    with TestClient(server) as client:
        client.get("/shop/boom")
        client.get("/nowhere")
        body = client.get("/shop/products").content
        text = scrape(client).text
    assert value(text, "http_errors_total", exc_type="RuntimeError") == 1
    assert value(text, "http_errors_total", exc_type="NotFound") == 1
    assert value(text, "http_requests_total", method="GET", route="/shop/boom",
                 status="500") == 1
    assert value(text, "http_request_duration_seconds_count", method="GET",
                 route="/shop/products") == 1
    assert value(text, "http_response_size_bytes_sum", method="GET",
                 route="/shop/products") == len(body)
    assert value(text, "http_request_size_bytes_count", method="GET",
                 route="/shop/products") == 1


def test_request_body_size_is_observed(tmp_path) -> None:
    from genro_asgi import AsgiApplication, route

    class Upload(AsgiApplication):
        @route(methods=["POST"])
        def put(self, data: str) -> str:
            return data

    server = build(tmp_path)
    server.mount("/up", Upload())
    with TestClient(server) as client:
        client.post("/up/put", json={"data": "x" * 100})
        text = scrape(client).text
    assert value(text, "http_request_size_bytes_sum", method="POST", route="/up/put") > 100


def test_custom_buckets(tmp_path) -> None:
    server = build(tmp_path, buckets=[0.5, 1.0])
    with TestClient(server) as client:
        client.get("/shop/products")
        text = scrape(client).text
    assert label_values(text, "http_request_duration_seconds_bucket", "le") == {
        "0.5", "1.0", "+Inf"}


def test_openmetrics_negotiation(tmp_path) -> None:
    server = build(tmp_path)
    with TestClient(server) as client:
        client.get("/shop/products")
        plain = scrape(client)
        om = scrape(client, accept="application/openmetrics-text; version=1.0.0")
    assert plain.headers["content-type"].startswith("text/plain")
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")
    assert "# EOF" not in plain.text


async def _call(app: Any, headers: list[tuple[bytes, bytes]], method: str = "GET",
                path: str = "/") -> tuple[dict[str, Any], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    await app(scope, None, send)
    return sent[0], sent[1]["body"]


async def test_gzip_negotiation() -> None:
    registry = CollectorRegistry()
    Counter("things", "Things.", registry=registry).inc(7)
    app = ExpositionApp(Exposition(lambda: registry))
    start, body = await _call(app, [(b"accept-encoding", b"gzip, br")])
    headers = dict(start["headers"])
    assert headers[b"content-encoding"] == b"gzip"
    assert b"things_total 7.0" in gzip.decompress(body)
    start, body = await _call(app, [])
    assert b"content-encoding" not in dict(start["headers"])
    assert b"things_total 7.0" in body


async def test_exposition_methods_and_subpaths() -> None:
    app = ExpositionApp(Exposition(CollectorRegistry))
    start, _ = await _call(app, [], method="POST")
    assert start["status"] == 405
    start, _ = await _call(app, [], path="/other")
    assert start["status"] == 404


def test_token_required_accepted_refused(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"metrics": {
        "token": {"$env": "METRICS_TOKEN"}}}}, environ={"METRICS_TOKEN": "s3cret"})
    assert "s3cret" not in repr(server.plugins.get("metrics").config)
    with TestClient(server) as client:
        missing = scrape(client)
        wrong = scrape(client, authorization="Bearer nope")
        right = scrape(client, authorization="Bearer s3cret")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "http_requests_total" in right.text


def test_custom_path(tmp_path) -> None:
    server = build(tmp_path, path="/_internal/prom")
    with TestClient(server) as client:
        client.get("/shop/products")
        assert scrape(client, "/_internal/prom").status_code == 200
        assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize(("options", "key"), [
    ({"bogus": 1}, "bogus"),
    ({"path": "metrics"}, "path"),
    ({"path": "/"}, "path"),
    ({"port": 0}, "port"),
    ({"port": "x"}, "port"),
    ({"buckets": [1.0, 0.5]}, "buckets"),
    ({"buckets": []}, "buckets"),
    ({"size_buckets": [-1.0]}, "size_buckets"),
    ({"skip_paths": ["health"]}, "skip_paths"),
    ({"websocket": "maybe"}, "websocket"),
])
def test_invalid_options_name_the_key(tmp_path, options: dict[str, Any], key: str) -> None:
    with pytest.raises(PluginError, match=rf"plugins\.metrics\.{key}"):
        AsgiServer(tmp_path, config={"plugins": {"metrics": options}}, environ={})


class Contributor(Plugin):
    """A throwaway plugin contributing its own collector through the metrics hook."""

    def __init__(self, server: Any, config: Any) -> None:
        super().__init__(server, config)
        self.jobs: Counter | None = None

    @hookimpl(optionalhook=True)
    def genro_asgi_metrics_collectors(self, server: Any, registry: CollectorRegistry) -> None:
        self.jobs = Counter("contrib_jobs", "Jobs done by the contributor.", registry=registry)

    @hookimpl
    def genro_asgi_startup(self) -> None:
        assert self.jobs is not None
        self.jobs.inc(5)


def test_contributor_hook(tmp_path) -> None:
    config = {"plugins": {"contrib": {"module": f"{__name__}:Contributor"}, "metrics": {}}}
    server = AsgiServer(tmp_path, config=config, environ={})
    with TestClient(server) as client:
        text = scrape(client).text
    assert value(text, "contrib_jobs_total") == 5
    # a second server gets its own collector on its own registry
    other = AsgiServer(tmp_path, config=config, environ={})
    with TestClient(other) as client:
        assert value(scrape(client).text, "contrib_jobs_total") == 5


def test_contributor_loads_without_metrics(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {
        "contrib": {"module": f"{__name__}:Contributor"}}}, environ={})
    assert server.plugins.get("contrib").jobs is None


def test_websocket_gauges_and_counters(tmp_path) -> None:
    server = build(tmp_path, websocket=True)
    server.mount("/ws", echo)
    with TestClient(server) as client:
        with client.websocket_connect("/ws") as ws:
            for text in ("a", "b", "c"):
                ws.send_text(text)
                assert ws.receive_text() == text
            during = scrape(client).text
        after = scrape(client).text
    assert value(during, "websocket_connections_active") == 1
    assert value(during, "websocket_messages_total", direction="in") == 3
    assert value(during, "websocket_messages_total", direction="out") == 3
    assert value(after, "websocket_connections_active") == 0
    # websockets are not HTTP requests
    assert "/ws" not in label_values(after, "http_requests_total", "route")


def test_websocket_message_counting_can_be_switched_off(tmp_path) -> None:
    assert build(tmp_path).plugins.get("metrics").config.websocket is True  # the default
    server = build(tmp_path, websocket=False)
    server.mount("/ws", echo)
    assert server.plugins.get("metrics").config.websocket is False
    with TestClient(server) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_text("a")
            assert ws.receive_text() == "a"
            during = scrape(client).text
        text = scrape(client).text
    assert value(during, "websocket_connections_active") == 1  # no middleware needed
    assert value(text, "websocket_connections_active") == 0
    assert value(text, "websocket_messages_total", direction="in") == 0


def test_http_passes_the_websocket_middleware_untouched(tmp_path) -> None:
    server = build(tmp_path, websocket=True)
    # the middleware declares scope_types=("websocket",): the HTTP chain stays unwrapped
    assert server._dispatcher is not None and server._dispatcher.records_responses
    with TestClient(server) as client:
        answer = client.get("/shop/products", headers={"X-Request-ID": "trace-7"})
        assert answer.json() == {"items": ["cup", "pot"]}
        assert answer.headers["x-request-id"] == "trace-7"
        text = scrape(client).text
    assert value(text, "http_requests_total", method="GET", route="/shop/products",
                 status="200") == 1
    assert value(text, "websocket_messages_total", direction="out") == 0


def test_stuck_requests_are_counted(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={
        "plugins": {"metrics": {}},
        "watchdog": {"timeout": 0.001, "critical": 1000}}, environ={})
    envelope = server.envelopes.open({"type": "http", "method": "GET", "path": "/slow"})
    envelope.created_at -= 1
    assert server.watchdog.check() == [(envelope, "warning")]
    server.envelopes.close(envelope)
    with TestClient(server) as client:
        text = scrape(client).text
    assert value(text, "requests_stuck_total", level="warning") == 1
    assert value(text, "requests_stuck_total", level="critical") == 0


def test_plugin_type(tmp_path) -> None:
    assert isinstance(build(tmp_path).plugins.get("metrics"), MetricsPlugin)


def test_scrapes_are_not_counted_without_a_lifespan(tmp_path) -> None:
    server = build(tmp_path)
    with TestClient(server, lifespan=False) as client:
        client.get("/shop/products")
        scrape(client)
        text = scrape(client).text
    assert label_values(text, "http_requests_total", "route") == {"/shop/products"}


class StandInAuth(Plugin):
    """Stands in for the auth plugin: the identity's tags come from an X-Test-Tags header."""

    @hookimpl
    def genro_asgi_envelope_opened(self, envelope: Any) -> None:
        for key, raw in envelope.scope.get("headers") or ():
            if key == b"x-test-tags":
                envelope.identity = {"id": "tester", "tags": raw.decode().split(",")}


def test_auth_rule_reuses_the_identity_on_the_envelope(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {
        "standin": {"module": f"{__name__}:StandInAuth"},
        "metrics": {"auth_rule": "admin|ops", "token": {"$env": "METRICS_TOKEN"}}}},
        environ={"METRICS_TOKEN": "s3cret"})
    with TestClient(server) as client:
        anonymous = scrape(client)
        wrong_tags = scrape(client, **{"x-test-tags": "guest"})
        right_tags = scrape(client, **{"x-test-tags": "guest,ops"})
        by_token = scrape(client, authorization="Bearer s3cret")
    assert anonymous.status_code == 401
    assert wrong_tags.status_code == 403
    assert right_tags.status_code == 200
    assert "http_requests_total" in right_tags.text
    assert by_token.status_code == 200


def test_auth_rule_needs_the_main_server(tmp_path) -> None:
    with pytest.raises(PluginError, match="auth_rule needs the exposition on the main server"):
        AsgiServer(tmp_path, config={"plugins": {"metrics": {"auth_rule": "ops", "port": 9999}}},
                   environ={})
