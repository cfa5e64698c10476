"""Hypothesis profiles for the fuzz suite and the liveness guard every example runs under.

``make test`` runs the ``ci`` profile (a bounded number of examples, no example database);
``make fuzz`` runs ``long`` (GENRO_FUZZ_PROFILE=long: many more examples, the database kept in
``.hypothesis/`` so that a failure found once is replayed first next time).
"""

from __future__ import annotations

import faulthandler
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

from fuzzing import arm

_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
          HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=60, deadline=None, database=None,
                          suppress_health_check=_QUIET)
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("GENRO_FUZZ_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    arm()
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
