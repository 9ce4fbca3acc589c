"""Shared test configuration: Hypothesis profiles and common fixtures."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

from .postgres_server import _postgres_cleanup, _postgres_session, pg_dsn  # noqa: F401

# The service tests' store (every kind) and env, shared by the files of
# test_service*.py, test_phone.py and test_examples.py.
from .service_env import env, store  # noqa: F401

# The optin_* fixtures of optin_core.testing. pyproject's addopts turn off its
# pytest11 entry point (-p no:optin_core), which would import optin_core
# before coverage starts; loaded from here, it is imported after.
pytest_plugins = ["optin_core.testing.plugin"]

# Shared CI machines are noisy: no deadlines, and a fixed budget per test.
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=30, deadline=None)
# bench/mutation.py: a mutant's verdict must not depend on the run, and
# each mutant reruns its tests, so the examples are few and fixed.
settings.register_profile(
    "mutation",
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under a mutant (bench/mutation.py), empty the library's caches.

    mutmut runs each mutant's tests in a fork of a process that has already
    filled them (keyword indexes, catalogs) with the unmutated code, so the
    code that builds them would never meet a mutant.
    """
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    for name, module in list(sys.modules.items()):
        if name == "optin_core" or name.startswith("optin_core."):
            for value in list(vars(module).values()):
                clear = getattr(value, "cache_clear", None)
                if callable(clear):
                    clear()
