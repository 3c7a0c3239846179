"""Shared pytest fixtures."""

# The sandbox fixture (one sandbox process per pytest worker).
pytest_plugins = ["tests.sandbox.fixture"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "heavy: a long end-to-end suite (many setup-mail.yml runs); `make test` runs it first, "
        "`make integration-heavy` runs only these")


def pytest_collection_modifyitems(items):
    # The longest files first: with `--dist loadfile` (make integration) the two workers then end
    # together instead of one waiting on a long file handed out last. Stable, so every xdist worker
    # collects the same order.
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
