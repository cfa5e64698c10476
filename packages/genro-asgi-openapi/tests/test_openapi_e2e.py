"""End to end over a real uvicorn: the served document read by openapi-spec-validator and by
Schemathesis, which calls every operation from it and checks every answer against it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from openapi_sites import ADMIN_TOKEN, USER_TOKEN, mount_site, site_config
from openapi_spec_validator import validate
from openapi_st import schemathesis_run

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e


def test_the_served_document_describes_what_the_server_does(tmp_path: Path) -> None:
    server = mount_site(AsgiServer(tmp_path, config=site_config(), environ={}))
    with LiveServer(server) as live, httpx.Client(base_url=live.url) as client:
        doc = client.get("/openapi.json").json()
        validate(doc)
        # the path form and the query form of one operation answer the same
        assert client.get("/kinds/item/abc", params={"detail": "true"}).json() == \
            client.get("/kinds/item", params={"sku": "abc", "detail": "true"}).json()
        # every body media type the document lists is accepted
        content = doc["paths"]["/guarded/reset"]["post"]["requestBody"]["content"]
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for media in content:
            body = ('{"reason": "x"}' if "json" in media else "reason=x").encode()
            answer = client.post("/guarded/reset", content=body,
                                 headers={**admin, "content-type": media})
            assert answer.status_code == 200, (media, answer.text)
        # the documented security: no credential 401, the wrong tags 403
        assert client.post("/guarded/reset", json={"reason": "x"}).status_code == 401
        assert client.post("/guarded/reset", json={"reason": "x"},
                           headers={"Authorization": f"Bearer {USER_TOKEN}"}).status_code == 403


def test_schemathesis_finds_every_answer_documented(tmp_path: Path) -> None:
    server = mount_site(AsgiServer(tmp_path, config=site_config(), environ={}))
    with LiveServer(server) as live:
        # as the admin, so the guarded routes are exercised past their 401
        run = schemathesis_run(live.url, "-H", f"Authorization: Bearer {ADMIN_TOKEN}")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "Tested: 30" in run.stdout, run.stdout[-3000:]
