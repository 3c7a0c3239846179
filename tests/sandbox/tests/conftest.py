"""Shared by the sandbox's own tests (they run against the `sandbox` fixture of tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def no_leftover_faults(sandbox):
    """A fault a test queued but did not use must not hit the next test in this worker."""
    yield
    sandbox.clear_faults()
