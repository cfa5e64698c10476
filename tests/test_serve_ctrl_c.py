"""Ctrl-C on ``genro-asgi serve`` (a real process): uvicorn shuts down gracefully, then the
command exits 0 without a KeyboardInterrupt traceback, as ``uvicorn`` itself does."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

APP = '''
from genro_asgi import AsgiApplication, route


class Hello(AsgiApplication):
    @route(methods=["GET"])
    def hello(self) -> str:
        return "hi"
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_serve_cleanly(tmp_path: Path, serve: Any,
                                      sig: signal.Signals) -> None:
    (tmp_path / "hello_app.py").write_text(APP)
    (tmp_path / "config.yaml").write_text(
        'logging: {level: INFO}\napps:\n  hello: {module: "hello_app:Hello"}\n')
    server = serve(tmp_path, ready_path="/hello/hello")
    assert httpx.get(server.url + "/hello/hello", timeout=10).text == "hi"
    code = server.stop(sig)
    output = server.output()
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output, output
    # uvicorn re-raises SIGTERM after its shutdown (the process ends by that signal)
    assert code in ((0,) if sig == signal.SIGINT else (0, -signal.SIGTERM)), (code, output)
