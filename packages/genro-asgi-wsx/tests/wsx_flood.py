"""A publisher of large events, and a WSX server in its own process for memory tests.

``python wsx_flood.py <server_dir> [<wsx options as JSON>]`` serves the test apps plus
``/flood`` on a free loopback port, prints ``ready <port>`` and runs until its stdin closes, so
a test can read its peak RSS (``VmHWM``) from /proc while clients misbehave.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from genro_asgi import AsgiApplication, AsgiServer, route
from genro_asgi_wsx import publish


class Flood(AsgiApplication):
    @route()
    async def big(self, channel: str, count: int, size: int, start: int = 0) -> int:
        """Publish ``count`` events of about ``size`` characters each, as fast as it can."""
        blob = "x" * size
        for index in range(start, start + count):
            await publish(self.server, channel, {"n": index, "blob": blob})
        return count


def make_flood_server(server_dir: Path, wsx: dict[str, Any] | None = None) -> AsgiServer:
    from wsx_helpers import make

    server = make(server_dir, wsx)
    server.mount("/flood", Flood())
    return server


def vm_kib(pid: int, field: str) -> int:
    """A ``Vm*`` figure of ``/proc/<pid>/status`` in KiB (``VmHWM`` is the peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def main() -> None:
    from genro_asgi.testing import LiveServer

    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    live = LiveServer(make_flood_server(Path(sys.argv[1]), options)).start()
    print("ready", live.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        live.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
