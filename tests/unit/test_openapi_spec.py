"""The spec check the providers' integration tests rely on can fail: a request that is no operation
of the spec, an unknown query parameter or a body its schema refuses are caught."""

import pytest

from tests.integration.openapi_spec import available, check_requests

SPEC = ["sendgrid-api-keys_v3.json"]
pytestmark = pytest.mark.skipif(not available(SPEC), reason="../shared/specs or jsonschema is not present")


def entry(method, path, body=None, query=None):
    return {"method": method, "path": path, "json": body, "query": query or {}, "headers": {}}


def test_a_valid_request_passes():
    assert check_requests(SPEC, [entry("POST", "/v3/api_keys", {"name": "supabase-x", "scopes": ["mail.send"]}),
                                 entry("GET", "/v3/api_keys", query={"limit": "100"})]) is True


@pytest.mark.parametrize("bad", [
    entry("POST", "/v3/api_keyz", {"name": "x"}),                      # no such operation
    entry("GET", "/v3/api_keys", query={"colour": "blue"}),            # no such query parameter
    entry("POST", "/v3/api_keys", {"scopes": ["mail.send"]}),          # the required name is missing
])
def test_a_request_outside_the_spec_is_caught(bad):
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises((AssertionError, jsonschema.ValidationError)):
        check_requests(SPEC, [bad])
