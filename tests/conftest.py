"""Shared pytest fixtures."""

# The sandbox fixture (one sandbox process per pytest worker).
pytest_plugins = ["tests.sandbox.fixture"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "heavy: a long end-to-end suite (many setup-mail.yml runs) run by `make integration-heavy`, "
        "not by `make test`, which must stay well under CI's 30 minutes on two cores")
