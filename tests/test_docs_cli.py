"""docs/cli.md shows what the commands print: its `--version`, `plugins examples/demo` and
`routes examples/demo` listings are compared with the real commands run on the demo."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI_PAGE = ROOT / "docs" / "cli.md"
DEMO = ROOT / "examples" / "demo"
COMMAND_LIMIT = 120.0  # seconds: a guard against a hung command, never an assertion


def documented_output(command: str) -> list[str]:
    """The lines a ```console block of cli.md shows after `$ genro-asgi <command>`."""
    text = CLI_PAGE.read_text()
    match = re.search(rf"^\$ genro-asgi {re.escape(command)}\n(.*?)^```", text, re.M | re.S)
    assert match is not None, f"docs/cli.md has no console block for 'genro-asgi {command}'"
    return match.group(1).rstrip("\n").splitlines()


def real_output(command: str, cwd: Path) -> list[str]:
    # the shell's GENRO_ASGI_* variables would change the demo's configuration
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("GENRO_ASGI_")}
    result = subprocess.run([sys.executable, "-m", "genro_asgi", *command.split()],
                            cwd=cwd, capture_output=True, text=True, env=environ,
                            timeout=COMMAND_LIMIT)
    assert result.returncode == 0, result.stderr
    assert not result.stderr, result.stderr  # e.g. "config not loaded": the listing would lie
    return result.stdout.rstrip("\n").splitlines()


@pytest.mark.parametrize("command", ["--version", "plugins examples/demo",
                                     "routes examples/demo"])
def test_cli_page_shows_the_real_output(command: str, tmp_path: Path) -> None:
    # the demo as `make serve` runs it: with the debugger's secret file, which a clean clone
    # lacks (without it `plugins` cannot load the config); a copy, so the clone stays as it is
    demo = tmp_path / "examples" / "demo"
    shutil.copytree(DEMO, demo, ignore=shutil.ignore_patterns(".debug-secret", "__pycache__"))
    secret = demo / ".debug-secret"
    secret.write_text(secrets.token_hex(32) + "\n")
    secret.chmod(0o600)
    assert documented_output(command) == real_output(command, tmp_path), (
        f"docs/cli.md's 'genro-asgi {command}' listing is stale: paste the real output")
