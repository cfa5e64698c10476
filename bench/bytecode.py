"""Benchmark children run with cached bytecode, as a deployed worker does.

pip compiles a package's ``.pyc`` files when it installs it, so a worker in production never
compiles its sources. This repository's packages are editable installs, and a shell with
``PYTHONDONTWRITEBYTECODE`` set (as this sandbox sets it) makes every fresh interpreter
compile their sources again: measured, about 30 ms more CPU for an app's imports and 1.4 MiB
more idle RSS for a genro-asgi worker, which no user's worker pays while the rows of
third-party frameworks (compiled at install) never paid it. Benchmarks that time imports or
read RSS start their children with :func:`deployed_env` after :func:`precompile`.

The ``.pyc`` files go where Python puts them, the ``__pycache__`` directories of the source
trees (ignored by git).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path


def deployed_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with bytecode caching on."""
    result = dict(os.environ if env is None else env)
    result.pop("PYTHONDONTWRITEBYTECODE", None)
    return result


_compiled: set[Path] = set()


def precompile(roots: Iterable[Path]) -> None:
    """Compile the packages' sources of each repository root (``packages/*/src``) and its
    ``bench`` directory, once per root and process; not timed."""
    fresh = [root.resolve() for root in roots if root.resolve() not in _compiled]
    _compiled.update(fresh)
    targets = [str(path) for root in fresh
               for path in [*sorted((root / "packages").glob("*/src")), root / "bench"]
               if path.is_dir()]
    if targets:
        subprocess.run([sys.executable, "-m", "compileall", "-q", *targets],
                       env=deployed_env(), check=True, stdout=subprocess.DEVNULL, timeout=300)
