"""Shared by every integration test (all of them run against the sandbox)."""

import pytest


@pytest.fixture(autouse=True)
def no_leftover_faults(sandbox):
    """A fault a test queued but did not use must not hit the next test in this worker."""
    yield
    sandbox.clear_faults()
