"""Shared test helpers: a small shop app, an echo WebSocket app and a scrape parser."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from genro_asgi import AsgiApplication, WebSocket, WebSocketDisconnect, route

IDENTITY = {"accept-encoding": "identity"}


class Shop(AsgiApplication):
    @route(methods=["GET"])
    def products(self) -> dict[str, Any]:
        return {"items": ["cup", "pot"]}

    @route(methods=["GET"])
    def price(self, name: str) -> dict[str, Any]:
        return {"name": name, "price": "4.50"}

    @route(methods=["GET"])
    def health(self) -> str:
        return "ok"

    @route(methods=["GET"])
    def boom(self) -> None:
        raise RuntimeError("boom")


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI WebSocket echo, to be mounted."""
    ws = WebSocket(scope, receive, send)
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect:
        pass


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def label_values(text: str, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (sample, labels) in samples(text)
            if sample == name and label in dict(labels)}
