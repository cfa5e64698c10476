"""Machine load helpers: the benchmarks share the machine, so they look at what else runs.

``wait_for_quiet`` waits (bounded) until the other processes use little CPU before a timed
run starts; runs still report the load measured while they ran, so noisy ones are visible.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_THRESHOLD = 0.25  # CPUs busy with other work
QUIET_WINDOW = 0.5  # seconds per sample
QUIET_MAX_WAIT = 10.0  # seconds, then the run starts anyway


def machine_busy_seconds() -> float:
    """User + nice + system time of all CPUs since boot, in seconds (Linux /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[1]) + int(fields[2]) + int(fields[3])) / CLK_TCK


def wait_for_quiet(threshold: float = QUIET_THRESHOLD, max_wait: float = QUIET_MAX_WAIT) -> bool:
    """Sleep in short windows until the machine is idle below ``threshold`` CPUs.

    Returns True when it got quiet, False when ``max_wait`` ran out (the caller goes ahead).
    Call it only while this process and its servers are idle: their CPU counts as load.
    """
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_busy_seconds()
        time.sleep(QUIET_WINDOW)
        if (machine_busy_seconds() - before) / QUIET_WINDOW < threshold:
            return True
        if time.monotonic() >= deadline:
            return False
