"""The ``route`` label of requests answered before the dispatcher (issue note: a 401 of the auth
plugin or a CORS preflight was counted as ``<unmatched>``, like a 404 scan).

Such a request is labelled with the template its path would have matched, looked up with
``AsgiServer.route_template`` (the dispatcher's own match: templates and mount prefixes only, so
hostile paths add no label value); a path that matches nothing stays ``<unmatched>``. The
dispatcher's own 404s and 405s keep their labels.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import IDENTITY, samples, value

from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi.routing import MAX_PATH_SEGMENTS
from genro_asgi.testing import LiveServer, TestClient
from genro_asgi_metrics import UNMATCHED

ORIGIN = "https://app.example"
ADMIN = {"authorization": "Bearer admin-token-0123456789"}
USER = {"authorization": "Bearer user-token-0123456789"}
PREFLIGHT = {"origin": ORIGIN, "access-control-request-method": "GET",
             "access-control-request-headers": "authorization"}
TEMPLATES = {"/api/index", "/api/users", "/api/item", "/raw", UNMATCHED}


class Api(AsgiApplication):
    @route(methods=["GET"])
    def index(self) -> str:
        return "api"

    @route(methods=["GET"], auth="admin")
    def users(self) -> list[str]:
        return ["ann", "bob"]

    @route(methods=["GET"])
    def item(self, item_id: int) -> dict[str, int]:
        return {"id": item_id}


async def raw(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})


def build(tmp_path: Any, **metrics: Any) -> AsgiServer:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {
        "cors": {"allow_origins": [ORIGIN], "allow_headers": ["authorization"]},
        "auth": {"bearer": {"admin": {"token": ADMIN["authorization"][7:], "tags": ["admin"]},
                            "user": {"token": USER["authorization"][7:], "tags": ["user"]}}},
        "metrics": {"auth_rule": "admin", **metrics},
    }})
    server.mount("/api", Api())
    server.mount("/raw", raw)
    return server


def counts(text: str) -> dict[tuple[str, str, str], float]:
    """``{(method, route, status): count}`` of ``http_requests_total``."""
    return {(labels["method"], labels["route"], labels["status"]): found
            for (name, pairs), found in samples(text).items()
            if name == "http_requests_total" for labels in (dict(pairs),)}


def ask(client: httpx.Client, method: str, path: str, status: int,
        headers: Any = None) -> None:
    answer = client.request(method, path, headers=headers)
    assert answer.status_code == status, (method, path, answer.text)


# what each request is, who answers it, and the label it gets
MIX: list[tuple[str, str, Any, int, str]] = [
    ("GET", "/api/users", ADMIN, 200, "/api/users"),       # dispatched
    ("GET", "/api/users", USER, 403, "/api/users"),        # the route's rule: the dispatcher
    ("GET", "/api/users", None, 401, "/api/users"),        # no credential: auth, before it
    ("GET", "/api/item/7", {"authorization": "Bearer wrong"}, 401, "/api/item"),  # bad token
    ("GET", "/api/users/", [("authorization", ADMIN["authorization"]),
                            ("authorization", USER["authorization"])], 400, "/api/users"),
    ("GET", "/api", None, 401, "/api/index"),              # the index, as the dispatcher says
    ("GET", "/api", ADMIN, 200, "/api/index"),
    ("GET", "/raw/a/b", None, 401, "/raw"),                # an ASGI mount: its prefix
    ("OPTIONS", "/api/users", PREFLIGHT, 204, "/api/users"),  # answered by cors
    ("OPTIONS", "/nowhere", PREFLIGHT, 204, UNMATCHED),
    ("GET", "/nowhere/7", None, 401, UNMATCHED),           # refused, and matches nothing
    ("GET", "/nowhere/7", ADMIN, 404, UNMATCHED),          # the dispatcher's 404
    ("POST", "/api/item/7", ADMIN, 405, "/api/item"),      # the dispatcher's 405
]


def test_each_answer_gets_the_route_its_path_matches(tmp_path: Any) -> None:
    with TestClient(build(tmp_path)) as client:
        for method, path, headers, status, _label in MIX:
            ask(client, method, path, status, headers)
        text = client.get("/metrics", headers={**IDENTITY, **ADMIN}).text
    expected: dict[tuple[str, str, str], float] = {}
    for method, _path, _headers, status, label in MIX:
        key = (method, label, str(status))
        expected[key] = expected.get(key, 0) + 1
    assert counts(text) == expected
    assert value(text, "http_request_duration_seconds_count", method="GET",
                 route="/api/users") == 4


def test_a_503_while_draining_gets_its_route(tmp_path: Any) -> None:
    """The dispatcher refuses a draining server's requests before its match: the template."""
    server = build(tmp_path)
    with TestClient(server) as client:
        server.draining = True
        ask(client, "GET", "/api/item/4", 503, ADMIN)
        ask(client, "GET", "/nowhere", 503, ADMIN)
        server.draining = False
        text = client.get("/metrics", headers={**IDENTITY, **ADMIN}).text
    assert counts(text) == {("GET", "/api/item", "503"): 1, ("GET", UNMATCHED, "503"): 1}


def test_a_refused_scrape_is_not_counted(tmp_path: Any) -> None:
    """The exposition's own route, refused by auth, is its route: not counted, as a scrape."""
    with TestClient(build(tmp_path)) as client:
        ask(client, "GET", "/metrics", 401)
        ask(client, "GET", "/metrics", 403, USER)  # metrics' own auth_rule
        text = client.get("/metrics", headers={**IDENTITY, **ADMIN}).text
    assert counts(text) == {}


HOSTILE = [
    "/api/users/" + "x" * 60_000,                          # long: one peeled segment
    "/api/item/" + "/".join(["7"] * (MAX_PATH_SEGMENTS - 3)),   # under the segment limit
    "/api/item/" + "/".join(["7"] * (MAX_PATH_SEGMENTS + 50)),  # over it: no match
    "/" + "/".join(f"s{i}" for i in range(5_000)),          # many segments, nothing matches
    "/api/%75sers",                                        # percent-encoded: /api/users
    "/api/%2e%2e/raw/x",                                   # dots: no normalisation
    "/api/users%2Fextra",                                  # an encoded slash
    "/raw%00/x",                                           # a NUL
    "/api/%C3%A9t%C3%A9",                                  # non-ASCII
    "/raw" + "/" * 3_000,                                  # slashes only
    "/api//users//",
    "/api/users/%ff%fe",                                   # not UTF-8
]


def test_hostile_paths_add_no_label_and_match_like_the_dispatcher(tmp_path: Any) -> None:
    """Refused (before the dispatcher) and admitted (dispatched), each path gets the same
    label, one of the app's templates or <unmatched>: no client grows the label set."""
    paths = HOSTILE + [f"/api/item/{i}/{'z' * i}" for i in range(40)] + [
        f"/probe/{i}/{'p' * i}" for i in range(40)]
    with TestClient(build(tmp_path)) as client:
        before = counts(client.get("/metrics", headers={**IDENTITY, **ADMIN}).text)
        for path in paths:
            refused = client.get(path)
            admitted = client.get(path, headers=ADMIN)
            after = counts(client.get("/metrics", headers={**IDENTITY, **ADMIN}).text)
            grown = {key: after[key] - before.get(key, 0) for key in after
                     if after[key] != before.get(key)}
            assert refused.status_code == 401 and admitted.status_code != 401, path
            assert sorted(grown.values()) == [1, 1], (path, grown)
            (_m, first, _s), (_m2, second, _s2) = grown
            assert first == second and first in TEMPLATES, (path, grown)
            before = after
    assert {route_label for (_m, route_label, _s) in after} <= TEMPLATES


def test_the_lookup_is_not_indexed_under_no_route(tmp_path: Any) -> None:
    """A path-dependent answer must not be remembered under ``route=None``: after a 401 on an
    unmatched path, a 401 on a route's path still gets the route (and the other way round).
    Only the 404 (always ``<unmatched>``) is indexed under None."""
    server = build(tmp_path)
    with TestClient(server) as client:
        for path in ("/nowhere", "/api/users", "/nowhere", "/api/item/1", "/api/users"):
            ask(client, "GET", path, 401)
            ask(client, "OPTIONS", path, 204, PREFLIGHT)
            ask(client, "GET", path + "/x" * 40, 404, ADMIN)
        text = client.get("/metrics", headers={**IDENTITY, **ADMIN}).text
    assert counts(text) == {
        ("GET", UNMATCHED, "401"): 2, ("GET", "/api/users", "401"): 2,
        ("GET", "/api/item", "401"): 1, ("OPTIONS", UNMATCHED, "204"): 2,
        ("OPTIONS", "/api/users", "204"): 2, ("OPTIONS", "/api/item", "204"): 1,
        ("GET", UNMATCHED, "404"): 5}
    by_method = server.plugins.get("metrics").metrics.index.by_method
    assert [set(routes.get(None, ())) for routes in by_method.values()] == [{404}, set()]


def test_skip_paths_still_apply_to_refused_requests(tmp_path: Any) -> None:
    with TestClient(build(tmp_path, skip_paths=["/api/item"])) as client:
        ask(client, "GET", "/api/item/3", 401)
        ask(client, "GET", "/api/users", 401)
        text = client.get("/metrics", headers={**IDENTITY, **ADMIN}).text
    assert counts(text) == {("GET", "/api/users", "401"): 1}


@pytest.mark.e2e
def test_refused_requests_by_route_over_uvicorn(tmp_path: Any) -> None:
    with LiveServer(build(tmp_path)) as live, httpx.Client(base_url=live.url,
                                                           timeout=30) as client:
        for _ in range(3):
            ask(client, "GET", "/api/users", 401)
        ask(client, "GET", "/api/users", 403, USER)
        ask(client, "GET", "/api/users", 200, ADMIN)
        ask(client, "OPTIONS", "/api/item/5", 204, PREFLIGHT)
        ask(client, "GET", "/api/item/5", 401, {"authorization": "Bearer nope"})
        for i in range(10):
            ask(client, "GET", f"/scan/{i}/{'q' * i}", 401)
            ask(client, "GET", f"/scan/{i}", 404, ADMIN)
        ask(client, "GET", "/api/item/" + "/".join(["1"] * 200), 401)  # over the segment limit
        ask(client, "GET", "/api/%75sers", 401)
        # over server.max_url_size: the protocol's 414, <unmatched> without a lookup
        ask(client, "GET", "/api/users/" + "/".join(["u" * 300] * 30), 414)
        scraped = client.get("/metrics", headers={**IDENTITY, **ADMIN})
    assert scraped.status_code == 200
    assert counts(scraped.text) == {
        ("GET", "/api/users", "401"): 4,
        ("GET", "/api/users", "403"): 1,
        ("GET", "/api/users", "200"): 1,
        ("OPTIONS", "/api/item", "204"): 1,
        ("GET", "/api/item", "401"): 1,
        ("GET", UNMATCHED, "401"): 11,
        ("GET", UNMATCHED, "404"): 10,
        ("GET", UNMATCHED, "414"): 1,
    }
