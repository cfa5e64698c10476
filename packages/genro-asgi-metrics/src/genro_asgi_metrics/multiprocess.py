"""Multiprocess mode (``server.workers > 1`` or ``PROMETHEUS_MULTIPROC_DIR`` set).

The parent process builds the server before uvicorn starts its workers, so the directory is
prepared there (created or wiped) and exported as ``PROMETHEUS_MULTIPROC_DIR``; the workers
inherit the variable, find it set and leave the directory alone. Each scrape aggregates the
workers' files with a fresh ``MultiProcessCollector``; a worker that exits is marked dead.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir_from_env() -> str | None:
    return os.environ.get(ENV) or os.environ.get(ENV.lower()) or None


def prepare_directory(configured: str | None) -> str:
    """Create (or wipe) the directory and export it for the worker processes."""
    if configured:
        path = Path(configured)
        if path.exists():
            for child in path.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        path.mkdir(parents=True, exist_ok=True)
        directory = str(path.resolve())
    else:
        directory = tempfile.mkdtemp(prefix="genro-asgi-metrics-")
        # ours alone: removed when the parent exits (after uvicorn has stopped the workers)
        atexit.register(shutil.rmtree, directory, True)
    os.environ[ENV] = directory
    return directory


def process_exited(directory: str) -> None:
    """Drop the live gauges of this process (genro_asgi_shutdown in each worker)."""
    mark_process_dead(os.getpid(), directory)


class _Union:
    """A collector yielding the metrics of several collectors (one scrape)."""

    def __init__(self, parts: Iterable[Any]) -> None:
        self.parts = list(parts)

    def collect(self) -> Iterator[Any]:
        for part in self.parts:
            yield from part.collect()


def scrape_source(directory: str, contributed: CollectorRegistry) -> Any:
    """What one multiprocess scrape exposes: all workers' files plus contributed collectors."""
    aggregated = CollectorRegistry()
    MultiProcessCollector(aggregated, path=directory)
    return _Union((aggregated, contributed))
