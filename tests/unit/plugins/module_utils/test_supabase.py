"""The Supabase clients: which key goes in which header, GoTrue's 429 waits, error_id, explanations."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _transport
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import (
    PASSWORD_DIGITS,
    PASSWORD_LOWER,
    PASSWORD_SYMBOLS,
    PASSWORD_UPPER,
    SupabaseAuthClient,
    SupabaseManagementClient,
    pick_api_key,
    throwaway_password,
)

SECRET_KEY = "sb_secret_Abcdefghijklmnopqrstuv_12345678"
PUBLISHABLE_KEY = "sb_publishable_Abcdefghijklmnopqrstuv_12345678"
LEGACY_SERVICE_ROLE = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
REF = "abcdefghijklmnopqrst"


class FakeResponse:
    def __init__(self, status, body=None, headers=None):
        self.status_code = status
        self._body = body
        self.headers = _transport.Headers((headers or {}).items())
        self.content = b"" if body is None else b"x"
        self.text = str(body)

    def json(self):
        return self._body


class FakeSession:
    def __init__(self, script):
        self.script = list(script)
        self.calls = []
        self.headers = {}

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        return self.script.pop(0)


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self):
        return self.now


def auth_client(script, key=PUBLISHABLE_KEY, admin=False, rate_limit_wait=65, timeout=10):
    clock = FakeClock()
    session = FakeSession(script)
    options = dict(project_ref=REF, timeout=timeout, session=session, sleep=clock.sleep, clock=clock.monotonic,
                   rate_limit_wait=rate_limit_wait)
    if admin:
        client = SupabaseAuthClient.admin("http://auth.test", key, **options)
    else:
        client = SupabaseAuthClient("http://auth.test", key, **options)
    return client, session, clock


def sent_headers(session):
    return session.calls[-1][2]["headers"]


# Which key goes where (supabase.com/docs/guides/api/api-keys, "Known limitations")

def test_admin_client_sends_a_secret_key_as_apikey_only():
    client, session, _clock = auth_client([FakeResponse(200, {"id": "u1"})], key=SECRET_KEY, admin=True)
    client.request("POST", "/auth/v1/invite", json_body={"email": "a@b.test"}, idempotent=False)
    headers = sent_headers(session)
    assert headers["apikey"] == SECRET_KEY
    assert headers.get("Authorization") in (None, "Bearer %s" % SECRET_KEY)


def test_admin_client_sends_a_legacy_service_role_jwt_in_both_headers():
    client, session, _clock = auth_client([FakeResponse(200, {"id": "u1"})], key=LEGACY_SERVICE_ROLE, admin=True)
    client.request("POST", "/auth/v1/invite", json_body={"email": "a@b.test"}, idempotent=False)
    headers = sent_headers(session)
    assert headers["apikey"] == LEGACY_SERVICE_ROLE
    assert headers["Authorization"] == "Bearer %s" % LEGACY_SERVICE_ROLE


def test_public_client_sends_the_publishable_key_as_apikey_and_no_bearer():
    client, session, _clock = auth_client([FakeResponse(200, {})])
    client.request("POST", "/auth/v1/otp", json_body={"email": "a@b.test"}, idempotent=False)
    assert sent_headers(session) == {"apikey": PUBLISHABLE_KEY}


@pytest.mark.parametrize("bearer", [SECRET_KEY, PUBLISHABLE_KEY])
def test_a_new_key_never_goes_as_a_bearer_different_from_the_apikey(bearer):
    with pytest.raises(ValueError) as caught:
        SupabaseAuthClient("http://auth.test", "sb_publishable_other_key_value_000", bearer=bearer,
                           session=FakeSession([]))
    assert "sb_" not in str(caught.value)  # no key, nor a prefix of one


def test_pick_api_key_prefers_the_new_keys_and_falls_back_to_legacy():
    keys = [
        {"name": "anon", "type": "legacy", "api_key": "eyJ.anon.sig"},
        {"name": "service_role", "type": "legacy", "api_key": LEGACY_SERVICE_ROLE},
        {"name": "default", "type": "publishable", "api_key": PUBLISHABLE_KEY},
        {"name": "default", "type": "secret", "api_key": SECRET_KEY},
    ]
    assert pick_api_key(keys, "anon") == PUBLISHABLE_KEY
    assert pick_api_key(keys, "service_role") == SECRET_KEY
    assert pick_api_key(keys[:2], "service_role") == LEGACY_SERVICE_ROLE


# GoTrue's 429: the wait it names is waited by the shared request loop

FREQUENCY_429 = {"code": 429, "error_code": "over_email_send_rate_limit",
                 "msg": "For security purposes, you can only request this after 7 seconds."}


def test_named_429_wait_is_waited_once_and_the_mail_request_sent_again():
    client, session, clock = auth_client([FakeResponse(429, FREQUENCY_429), FakeResponse(200, {})])
    assert client.request("POST", "/auth/v1/otp", json_body={}, idempotent=False, expected=(200,)) == {}
    assert len(session.calls) == 2
    assert 7.0 <= clock.sleeps[0] <= 7.3


def test_named_wait_beyond_rate_limit_wait_is_reported_not_slept():
    client, session, clock = auth_client([FakeResponse(429, FREQUENCY_429), FakeResponse(200, {})],
                                         rate_limit_wait=5)
    with pytest.raises(ApiError) as caught:
        client.request("POST", "/auth/v1/otp", json_body={}, idempotent=False)
    assert len(session.calls) == 1 and clock.sleeps == []
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        429, "over_email_send_rate_limit", 7.0)


def test_named_wait_longer_than_the_timeout_budget_is_still_waited_within_rate_limit_wait():
    answer = dict(FREQUENCY_429, msg="For security purposes, you can only request this after 58 seconds.")
    client, session, clock = auth_client([FakeResponse(429, answer), FakeResponse(200, {})], timeout=10)
    client.request("POST", "/auth/v1/otp", json_body={}, idempotent=False)
    assert len(session.calls) == 2 and clock.sleeps[0] >= 58


def test_hourly_email_limit_names_no_wait_and_is_not_retried():
    answer = {"code": 429, "error_code": "over_email_send_rate_limit", "msg": "email rate limit exceeded"}
    client, session, clock = auth_client([FakeResponse(429, answer), FakeResponse(200, {})])
    with pytest.raises(ApiError) as caught:
        client.request("POST", "/auth/v1/otp", json_body={}, idempotent=False)
    assert len(session.calls) == 1 and clock.sleeps == []
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_mail_request_is_never_sent_twice_after_a_5xx(status):
    client, session, _clock = auth_client([FakeResponse(status, {"code": status}), FakeResponse(200, {})])
    with pytest.raises(ApiError):
        client.request("POST", "/auth/v1/otp", json_body={}, idempotent=False)
    assert len(session.calls) == 1


def test_error_id_of_a_5xx_body_is_the_request_id_of_the_error():
    body = {"code": 500, "error_code": "unexpected_failure", "msg": "Error sending magic link email",
            "error_id": "5f0c5a3e-2b4e-4c1e-9a57-1d8a0a6f4c11"}
    client, _session, _clock = auth_client([FakeResponse(500, body)])
    with pytest.raises(ApiError) as caught:
        client.request("POST", "/auth/v1/otp", json_body={}, idempotent=False)
    error = caught.value
    assert error.request_id == "5f0c5a3e-2b4e-4c1e-9a57-1d8a0a6f4c11"
    assert (error.code, error.provider_message) == ("unexpected_failure", "Error sending magic link email")


# Explanations

def test_auth_explain_names_the_key_options_and_never_a_key():
    client, _session, _clock = auth_client(
        [FakeResponse(401, {"message": "Invalid API key", "hint": "Double check your Supabase key."})],
        key=SECRET_KEY, admin=True)
    with pytest.raises(ApiError) as caught:
        client.request("POST", "/auth/v1/invite", json_body={}, idempotent=False)
    text = client.explain(caught.value)
    assert "anon_key" in text and "service_role_key" in text and REF in text
    assert "sb_secret" not in text and SECRET_KEY[:14] not in text


def test_auth_explain_of_a_refused_admin_call_points_at_the_service_key():
    error = ApiError("Supabase Auth POST /auth/v1/invite failed: HTTP 403 not_admin: User not allowed",
                     status=403, code="not_admin")
    client, _session, _clock = auth_client([])
    assert "service_role_key" in client.explain(error)


def test_management_explain_names_secrets_read_for_the_api_keys():
    client = SupabaseManagementClient("http://api.test", "sbp_" + "0" * 40, project_ref=REF,
                                      session=FakeSession([]))
    error = ApiError("x", status=403, path="/v1/projects/%s/api-keys" % REF)
    assert "secrets:read" in client.explain(error)


# The signup's throwaway password

def test_throwaway_password_meets_every_gotrue_password_policy():
    for dummy in range(50):
        password = throwaway_password()
        assert 40 <= len(password) <= 72
        for required in (PASSWORD_LOWER, PASSWORD_UPPER, PASSWORD_DIGITS):
            assert any(char in required for char in password)
        # Every symbol of GoTrue's symbol set, however its policy string splits it on ':'.
        assert set(PASSWORD_SYMBOLS) <= set(password)
    assert throwaway_password() != throwaway_password()
    assert set(PASSWORD_SYMBOLS) == set("!@#$%^&*()_+-=[]{};'\\:\"|<>?,./`~")
