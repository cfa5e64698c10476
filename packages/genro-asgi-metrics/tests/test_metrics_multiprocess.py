"""Multiprocess mode in one process: directory preparation, aggregation, process exit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import IDENTITY, Shop, value
from prometheus_client import values

from genro_asgi import AsgiServer
from genro_asgi.testing import TestClient
from genro_asgi_metrics import UNMATCHED
from genro_asgi_metrics.multiprocess import ENV, prepare_directory


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Restore the environment and prometheus_client's value class after the test."""
    # set then deleted: monkeypatch then removes whatever the code under test exports
    monkeypatch.setenv(ENV, "unset")
    monkeypatch.delenv(ENV)
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    return monkeypatch


def test_prepare_directory_wipes_and_exports(tmp_path: Path, isolated: pytest.MonkeyPatch) -> None:
    target = tmp_path / "prom"
    target.mkdir()
    (target / "counter_123.db").write_bytes(b"stale")
    (target / "sub").mkdir()
    directory = prepare_directory(str(target))
    assert directory == str(target.resolve())
    assert list(target.iterdir()) == []
    assert os.environ[ENV] == directory


def test_workers_prepare_the_directory_in_the_parent(tmp_path: Path,
                                                     isolated: pytest.MonkeyPatch) -> None:
    target = tmp_path / "prom"
    server = AsgiServer(tmp_path, config={"server": {"workers": 2}, "plugins": {
        "metrics": {"multiprocess_dir": str(target)}}}, environ={})
    assert os.environ[ENV] == str(target.resolve())
    assert server.plugins.get("metrics").multiprocess_dir == str(target.resolve())
    # a worker finds the variable set and leaves the directory (and its files) alone
    (target / "counter_1.db").write_bytes(b"")
    AsgiServer(tmp_path, config={"server": {"workers": 2}, "plugins": {
        "metrics": {"multiprocess_dir": str(target)}}}, environ={})
    assert (target / "counter_1.db").exists()


def test_env_variable_enables_multiprocess_scrapes(tmp_path: Path,
                                                   isolated: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "prom"
    directory.mkdir()
    isolated.setenv(ENV, str(directory))
    server = AsgiServer(tmp_path, config={"plugins": {"metrics": {}}}, environ={})
    server.mount("/shop", Shop())
    with TestClient(server) as client:
        for _ in range(4):
            client.get("/shop/products")
        client.get("/missing")
        text = client.get("/metrics", headers=IDENTITY).text
    assert value(text, "http_requests_total", method="GET", route="/shop/products",
                 status="200") == 4
    assert value(text, "http_requests_total", method="GET", route=UNMATCHED,
                 status="404") == 1
    assert any(p.name.startswith("counter_") for p in directory.iterdir())
    # shutdown marked this process dead: its live gauges are gone
    assert not list(directory.glob(f"gauge_livesum_{os.getpid()}.db"))


def test_refused_requests_get_their_route_in_multiprocess_mode(
        tmp_path: Path, isolated: pytest.MonkeyPatch) -> None:
    """The shared store labels a 401 of the auth plugin with its route, as the local one."""
    directory = tmp_path / "prom"
    directory.mkdir()
    isolated.setenv(ENV, str(directory))
    server = AsgiServer(tmp_path, config={"plugins": {
        "auth": {"bearer": {"ops": {"token": "ops-token-0123456789", "tags": []}}},
        "metrics": {}}}, environ={})
    server.mount("/shop", Shop())
    admitted = {**IDENTITY, "authorization": "Bearer ops-token-0123456789"}
    with TestClient(server) as client:
        for path in ("/shop/price/cup", "/shop/price/pot", "/missing", "/shop/products"):
            assert client.get(path).status_code == 401
        text = client.get("/metrics", headers=admitted).text
    assert value(text, "http_requests_total", method="GET", route="/shop/price",
                 status="401") == 2
    assert value(text, "http_requests_total", method="GET", route="/shop/products",
                 status="401") == 1
    assert value(text, "http_requests_total", method="GET", route=UNMATCHED,
                 status="401") == 1
