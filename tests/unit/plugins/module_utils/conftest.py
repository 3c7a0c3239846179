"""Fixtures shared by the transport tests."""

import pytest


@pytest.fixture
def no_proxy(monkeypatch):
    """No proxy and no CA bundle from the environment of whoever runs the tests."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                 "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "")
