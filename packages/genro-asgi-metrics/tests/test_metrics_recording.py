"""The per-request observer and the scrape-time derivations, against prometheus_client itself.

The one-process store keeps only the buckets above the first and derives the rest when scraped;
these tests feed a known mix of requests both to the plugin's observer and to prometheus_client's
own Counter/Histogram objects, and require the same samples, exactly (durations are dyadic
fractions, so sums do not depend on the order of addition).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from helpers import IDENTITY, Shop, echo, samples, value
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.exposition import generate_latest

import genro_asgi_metrics.local
import genro_asgi_metrics.shared
from genro_asgi import AsgiServer, Plugin, hookspec
from genro_asgi.testing import TestClient
from genro_asgi_metrics import UNMATCHED
from genro_asgi_metrics.multiprocess import ENV

HTTP_FAMILIES = ("http_requests_total", "http_request_duration_seconds_",
                 "http_request_size_bytes_", "http_response_size_bytes_")
DURATION_BUCKETS = [0.0078125, 0.03125, 0.25, 1.0]
SIZE_BUCKETS = [64.0, 100.5, 1000.75, 4096.0]  # fractional bounds: sizes are whole bytes

# (method, route, status, duration, request body bytes, response body bytes)
MIX: list[tuple[str, str | None, int | None, float, int, int]] = [
    ("GET", "/shop/products", 200, 0.001953125, 0, 13),         # first buckets everywhere
    ("GET", "/shop/products", 200, 0.0078125, 0, 64),           # exactly on the first bounds
    ("GET", "/shop/products", 200, 0.0087890625, 0, 65),        # just above them
    ("GET", "/shop/products", 304, 0.5, 0, 0),                  # same route, other status
    ("GET", "/shop/products", 500, 3.0, 0, 100),                # above the last duration bound
    ("POST", "/shop/products", 201, 0.25, 100, 101),            # floor(100.5) = 100
    ("POST", "/shop/products", 201, 0.03125, 1000, 1001),       # floor(1000.75) = 1000
    ("POST", "/shop/products", 400, 0.0009765625, 5000, 50000),  # above the last size bound
    ("PUT", "/shop/price", 200, 0.125, 1, 4096),
    ("BREW", "/shop/price", 418, 0.0625, 7, 7),                 # unknown method: OTHER
    ("MKCOL", "/shop/price", 418, 0.0625, 0, 7),                # another one, same labels
    ("GET", None, 404, 0.00390625, 0, 120),                     # no route: <unmatched>
    ("GET", None, None, 0.015625, 0, 0),                        # client left: status none
]


def _reference(mix: list[tuple[str, str | None, int | None, float, int, int]]) -> str:
    registry = CollectorRegistry()
    requests = Counter("http_requests", "", ("method", "route", "status"), registry=registry)
    duration = Histogram("http_request_duration_seconds", "", ("method", "route"),
                         buckets=DURATION_BUCKETS, registry=registry)
    request_size = Histogram("http_request_size_bytes", "", ("method", "route"),
                             buckets=SIZE_BUCKETS, registry=registry)
    response_size = Histogram("http_response_size_bytes", "", ("method", "route"),
                              buckets=SIZE_BUCKETS, registry=registry)
    for method, route, status, seconds, received, sent in mix:
        m = method if method in ("GET", "POST", "PUT") else "OTHER"
        r = route or UNMATCHED
        requests.labels(m, r, "none" if status is None else str(status)).inc()
        duration.labels(m, r).observe(seconds)
        request_size.labels(m, r).observe(received)
        response_size.labels(m, r).observe(sent)
    return generate_latest(registry).decode()


def _http_samples(text: str) -> dict[Any, float]:
    return {key: found for key, found in samples(text).items()
            if key[0].startswith(HTTP_FAMILIES) and not key[0].endswith("_created")}


def _feed(server: AsgiServer, monkeypatch: pytest.MonkeyPatch,
          mix: list[tuple[str, str | None, int | None, float, int, int]]) -> None:
    """Close one envelope per entry through the plugin's observer, with a controlled clock."""
    observer = server.plugins.get("metrics").observe_request
    clock = {"now": 0.0}
    for module in (genro_asgi_metrics.local, genro_asgi_metrics.shared):
        monkeypatch.setattr(module, "monotonic", lambda: clock["now"])
    for method, route, status, seconds, received, sent in mix:
        envelope = server.envelopes.open({"type": "http", "method": method, "path": "/any",
                                          "headers": []})
        envelope.created_at, clock["now"] = 0.0, seconds
        envelope.route, envelope.status, envelope.response_size = route, status, sent
        if received:
            envelope.request_size = received
        server.envelopes.close(envelope)
        observer(envelope)


def _server(tmp_path: Any, **server: Any) -> AsgiServer:
    return AsgiServer(tmp_path, environ={}, config={"server": server, "plugins": {"metrics": {
        "buckets": DURATION_BUCKETS, "size_buckets": SIZE_BUCKETS}}})


def test_one_process_exposition_matches_prometheus_client(tmp_path, monkeypatch) -> None:
    server = _server(tmp_path)
    _feed(server, monkeypatch, MIX)
    plugin = server.plugins.get("metrics")
    ours = _http_samples(generate_latest(plugin.registry).decode())
    assert ours == _http_samples(_reference(MIX))
    # spot checks of what the derivation must produce
    assert ours[("http_request_duration_seconds_bucket",
                 (("le", "0.0078125"), ("method", "GET"), ("route", "/shop/products")))] == 2
    assert ours[("http_request_size_bytes_bucket",
                 (("le", "100.5"), ("method", "POST"), ("route", "/shop/products")))] == 1
    assert ours[("http_requests_total",
                 (("method", "OTHER"), ("route", "/shop/price"), ("status", "418")))] == 2


def test_multiprocess_exposition_matches_too(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV, "unset")
    monkeypatch.delenv(ENV)
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    server = _server(tmp_path, workers=2)
    plugin = server.plugins.get("metrics")
    assert plugin.metrics.multiprocess
    _feed(server, monkeypatch, MIX)
    ours = _http_samples(generate_latest(plugin._scrape_source()).decode())
    assert ours == _http_samples(_reference(MIX))


def test_a_second_scrape_derives_the_same_and_counts_go_on(tmp_path, monkeypatch) -> None:
    server = _server(tmp_path)
    registry = server.plugins.get("metrics").registry
    _feed(server, monkeypatch, MIX[:5])
    first = generate_latest(registry).decode()
    assert generate_latest(registry).decode() == first  # scraping changes nothing
    _feed(server, monkeypatch, MIX[5:])
    assert _http_samples(generate_latest(registry).decode()) == _http_samples(_reference(MIX))


def test_unknown_methods_do_not_grow_the_index(tmp_path, monkeypatch) -> None:
    server = _server(tmp_path)
    _feed(server, monkeypatch, [(f"X{i}", "/shop/price", 200, 0.5, 0, 1) for i in range(200)])
    index = server.plugins.get("metrics").metrics.index
    assert index.by_method == {}
    assert list(index.series) == [("OTHER", "/shop/price", "200")]
    text = generate_latest(server.plugins.get("metrics").registry).decode()
    assert value(text, "http_requests_total", method="OTHER", route="/shop/price",
                 status="200") == 200


def test_the_observer_is_the_hook_implementation(tmp_path) -> None:
    server = _server(tmp_path)
    plugin = server.plugins.get("metrics")
    assert "genro_asgi_envelope_closed" in server.plugins.hooks_of("metrics")
    # compiled as is: the core calls the closure itself, no method or adapter in between
    assert ("metrics", plugin.observe_request) in server.compiled.envelope_closed


def test_websockets_are_not_http_requests(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"metrics": {}}}, environ={})
    server.mount("/ws", echo)
    with TestClient(server) as client:
        for _ in range(3):
            with client.websocket_connect("/ws") as ws:
                ws.send_text("a")
                assert ws.receive_text() == "a"
        text = client.get("/metrics", headers=IDENTITY).text
    assert server.plugins.get("metrics").metrics.index.series == {}
    assert not [k for k in samples(text) if k[0] == "http_requests_total"]


# -- the exposition as a route of the main server ------------------------------------------------

def _shop(tmp_path: Any, **options: Any) -> AsgiServer:
    server = AsgiServer(tmp_path, config={"plugins": {"metrics": options}}, environ={})
    server.mount("/shop", Shop())
    return server


def test_the_exposition_is_a_route_not_an_asgi_mount(tmp_path) -> None:
    server = _shop(tmp_path)
    server.build()
    assert server._dispatcher is not None and server._dispatcher.mounts == []
    assert server.find_route("/metrics") is not None


def test_head_query_and_other_methods(tmp_path) -> None:
    server = _shop(tmp_path)
    with TestClient(server) as client:
        client.get("/shop/products")
        full = client.get("/metrics", headers=IDENTITY)
        head = client.head("/metrics", headers=IDENTITY)
        with_query = client.get("/metrics?name[]=http_requests_total", headers=IDENTITY)
        posted = client.post("/metrics")
        sub_path = client.get("/metrics/other")
        text = client.get("/metrics", headers=IDENTITY).text
    assert full.status_code == head.status_code == with_query.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert head.headers["content-type"] == full.headers["content-type"]
    assert full.headers["vary"] == "Accept, Accept-Encoding"
    assert "http_requests_total" in with_query.text
    assert posted.status_code == 405
    assert "GET" in posted.headers["allow"]
    assert sub_path.status_code == 404
    # the scrapes (and the refused POST, and the sub-path) are not application requests
    assert {dict(labels)["route"] for name, labels in samples(text)
            if name == "http_requests_total"} == {"/shop/products"}


def test_gzip_and_openmetrics_through_the_route(tmp_path) -> None:
    server = _shop(tmp_path)
    with TestClient(server) as client:
        client.get("/shop/products")
        zipped = client.get("/metrics", headers={
            "accept-encoding": "gzip", "accept": "application/openmetrics-text"})
    assert zipped.headers["content-type"].startswith("application/openmetrics-text")
    # httpx decodes gzip itself: check the header and that the text is complete
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text.rstrip().endswith("# EOF")
    assert int(zipped.headers["content-length"]) < len(zipped.text)


# -- the executor's task events (the executor package declares the hook) -------------------------

class TaskEventSpecs:
    """A throwaway copy of the hookspec genro-asgi-executor declares."""

    @hookspec
    def genro_asgi_executor_task_event(self, server: Any, event: dict[str, Any]) -> None:
        """A task changed state or reported progress."""


class FakeExecutor(Plugin):
    """Stands in for the executor: declares the hookspec and emits events like it does."""

    hookspecs = TaskEventSpecs

    async def emit(self, events: list[Any]) -> None:
        for event in events:
            await self.server.plugins.call("genro_asgi_executor_task_event",
                                           server=self.server, event=event, strict=False)


EVENTS: list[Any] = [
    {"task_id": "t1", "name": "report", "pool": "default", "state": "pending",
     "progress": None, "message": None, "at": 1.0, "kind": "state"},
    {"task_id": "t1", "state": "running", "kind": "state"},
    {"task_id": "t1", "state": "running", "kind": "progress", "progress": 0.5},
    {"task_id": "t1", "state": "running", "kind": "progress", "progress": 0.9},
    {"task_id": "t1", "state": "done", "kind": "state"},
    {"task_id": "t2", "state": "timed_out", "kind": "state"},
    {"task_id": "t3", "state": "exploded", "kind": "weird"},  # unknown values: bounded
    ["not", "a", "mapping"],
    {"kind": "state"},
]


@pytest.mark.parametrize("order", [("metrics", "executor"), ("executor", "metrics")])
async def test_task_events_are_counted(tmp_path, order: tuple[str, str]) -> None:
    configured = {"metrics": {}, "executor": {"module": f"{__name__}:FakeExecutor"}}
    server = AsgiServer(tmp_path, config={"plugins": {name: configured[name] for name in order}},
                        environ={})
    await server.plugins.get("executor").emit(EVENTS)
    text = generate_latest(server.plugins.get("metrics").registry).decode()
    expected = {("state", "pending"): 1, ("state", "running"): 1, ("progress", "running"): 2,
                ("state", "done"): 1, ("state", "timed_out"): 1, ("other", "other"): 2,
                ("state", "other"): 1}
    found = {(dict(labels)["kind"], dict(labels)["state"]): count
             for (name, labels), count in samples(text).items()
             if name == "executor_task_events_total"}
    assert found == expected


async def test_task_events_in_multiprocess_mode(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV, "unset")
    monkeypatch.delenv(ENV)
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    server = AsgiServer(tmp_path, environ={}, config={"server": {"workers": 2}, "plugins": {
        "metrics": {}, "executor": {"module": f"{__name__}:FakeExecutor"}}})
    await server.plugins.get("executor").emit(EVENTS[:5])
    text = generate_latest(server.plugins.get("metrics")._scrape_source()).decode()
    assert value(text, "executor_task_events_total", kind="progress", state="running") == 2
    assert value(text, "executor_task_events_total", kind="state", state="done") == 1
    assert os.environ[ENV]


def test_without_the_executor_the_family_is_empty(tmp_path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"metrics": {}}}, environ={})
    text = generate_latest(server.plugins.get("metrics").registry).decode()
    assert "# TYPE executor_task_events_total counter" in text
    assert not [k for k in samples(text) if k[0] == "executor_task_events_total"]


# -- with the core's auth plugin ----------------------------------------------------------------

PROM_TOKEN = "prometheus-scrape-token-0123456789"
USER_TOKEN = "an-ordinary-user-token-0123456789"


def test_auth_plugin_bearer_tags_and_auth_rule(tmp_path) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {
        "auth": {"bearer": {"prom": {"token": PROM_TOKEN, "tags": ["metrics"]},
                            "user": {"token": USER_TOKEN, "tags": ["shop"]}}},
        "metrics": {"auth_rule": "metrics|admin"}}})
    server.mount("/shop", Shop())

    def bearer(token: str) -> dict[str, str]:
        return {**IDENTITY, "authorization": f"Bearer {token}"}

    with TestClient(server) as client:
        assert client.get("/shop/products", headers=bearer(USER_TOKEN)).status_code == 200
        anonymous = client.get("/metrics", headers=IDENTITY)
        forged = client.get("/metrics", headers=bearer("not-a-known-token-0123456789"))
        wrong_tags = client.get("/metrics", headers=bearer(USER_TOKEN))
        scraped = client.get("/metrics", headers=bearer(PROM_TOKEN))
    assert anonymous.status_code == 401
    assert forged.status_code == 401
    assert wrong_tags.status_code == 403
    assert scraped.status_code == 200
    assert value(scraped.text, "http_requests_total", method="GET", route="/shop/products",
                 status="200") == 1
