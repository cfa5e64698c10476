"""The metrics plugin's ``auth_rule`` against the real auth plugin (two packages cooperating
only through the identity the core puts on the envelope), on a real uvicorn."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genro_asgi import AsgiApplication, route

pytestmark = pytest.mark.e2e

OPS = "ops-token-0123456789"
DEV = "dev-token-0123456789"


class Hello(AsgiApplication):
    @route(methods=["GET"])
    def hello(self) -> str:
        return "hi"


@pytest.fixture
def server_url(make_server, live_server):
    server = make_server({"plugins": {
        "auth": {"public": ["/hello"],
                 "bearer": {"ops": {"token": OPS, "tags": ["ops"]},
                            "dev": {"token": DEV, "tags": ["dev"]}}},
        "metrics": {"auth_rule": "ops|admin"},
    }})
    server.mount("/", Hello())
    return live_server(server).url


def test_scrape_needs_an_identity_with_the_rule(server_url: str) -> None:
    assert httpx.get(server_url + "/hello").text == "hi"

    anonymous = httpx.get(server_url + "/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="genro-asgi"'

    wrong_tags = httpx.get(server_url + "/metrics", headers={"Authorization": f"Bearer {DEV}"})
    assert wrong_tags.status_code == 403

    bad_token = httpx.get(server_url + "/metrics", headers={"Authorization": "Bearer nope-nope"})
    assert bad_token.status_code == 401

    scrape = httpx.get(server_url + "/metrics", headers={"Authorization": f"Bearer {OPS}"})
    assert scrape.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    hello = [s for s in families["http_requests"].samples
             if s.name == "http_requests_total" and s.labels.get("route") == "/hello"]
    assert [(s.labels["status"], s.value) for s in hello] == [("200", 1.0)]
