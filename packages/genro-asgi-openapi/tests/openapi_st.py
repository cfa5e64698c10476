"""Schemathesis against a live server: its own CLI in a subprocess, bounded, with the TYTX
deserializer loaded. ``GENRO_FUZZ_PROFILE=long`` (``make fuzz``) runs many more examples."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# generous guards against a hang, never assertions about speed
RUN_LIMIT = 600.0
REQUEST_TIMEOUT = "30"


def examples() -> int:
    return 300 if os.environ.get("GENRO_FUZZ_PROFILE") == "long" else 8


def schemathesis_run(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``st run <url>/openapi.json`` with every default check but two (see docs/openapi.md):
    negative_data_rejection, because the core coerces in pydantic's lax mode ("0" is a valid
    date, false a valid 0), and the stateful phase, which feeds values taken from responses
    (an empty string) into path parameters the document says are non-empty."""
    long = os.environ.get("GENRO_FUZZ_PROFILE") == "long"
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
               "--max-examples", str(examples()),
               "--phases", "examples,coverage,fuzzing",
               "--exclude-checks", "negative_data_rejection",
               "--request-timeout", REQUEST_TIMEOUT, "--no-color",
               "--generation-database", ":memory:", *extra]
    if not long:
        command += ["--seed", "20261206"]  # the bounded run is the same every time
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HERE / "openapi_st_hooks.py"),
           "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=RUN_LIMIT, env=env,
                          check=False)
