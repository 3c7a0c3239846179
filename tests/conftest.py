"""Shared pytest fixtures."""

# The sandbox fixture (one sandbox process per pytest worker).
pytest_plugins = ["tests.sandbox.fixture"]
