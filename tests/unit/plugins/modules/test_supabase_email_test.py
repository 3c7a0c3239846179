"""supabase_email_test against scripted HTTP answers: keys and headers, the log line of a failed
send, signup answers that sent nothing, and GoTrue's 429 waited by the shared client."""

import json
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.karto.supabase_mail.plugins.module_utils import _transport
from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import PASSWORD_SYMBOLS
from ansible_collections.karto.supabase_mail.plugins.modules import supabase_email_test
from ansible_collections.karto.supabase_mail.plugins.modules.supabase_email_test import (
    find_failure_line,
    request_body,
    signup_not_sent,
)

REF = "abcdefghijklmnopqrst"
TOKEN = "sbp_" + "a1" * 20
SECRET_KEY = "sb_secret_Zyxwvutsrqponmlkjihgfe_87654321"
PUBLISHABLE_KEY = "sb_publishable_Zyxwvutsrqponmlkjihgfe_87654321"
LEGACY_ANON = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.YW5vbi1zaWduYXR1cmU"
LEGACY_SERVICE_ROLE = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2VydmljZS1zaWduYXR1cmU"
EMAIL = "tester@karto.test"
ERROR_ID = "5f0c5a3e-2b4e-4c1e-9a57-1d8a0a6f4c11"
ALL_KEYS = [
    {"name": "anon", "type": "legacy", "api_key": LEGACY_ANON},
    {"name": "service_role", "type": "legacy", "api_key": LEGACY_SERVICE_ROLE},
    {"name": "default", "type": "publishable", "api_key": PUBLISHABLE_KEY},
    {"name": "default", "type": "secret", "api_key": SECRET_KEY},
]


class FakeResponse:
    def __init__(self, status, body=None, headers=None):
        self.status_code = status
        self._body = body
        self.headers = _transport.Headers((headers or {}).items())
        self.content = b"" if body is None else json.dumps(body).encode()
        self.text = self.content.decode()

    def json(self):
        return self._body


class FakeApis:
    """The Management API (api-keys, logs) and Auth, answering every Session the module makes."""

    def __init__(self, auth_answers, keys=None, log_lines=()):
        self.auth_answers = list(auth_answers)
        self.keys = ALL_KEYS if keys is None else keys
        self.log_lines = list(log_lines)
        self.auth_calls = []
        self.management_calls = []

    def session(self):
        apis = self

        class Session:
            headers = {}

            def request(self, method, url, **kwargs):
                return apis.answer(method, url, kwargs)

        return Session()

    def answer(self, method, url, kwargs):
        if "/auth/v1/" in url:
            self.auth_calls.append((method, url, kwargs))
            return self.auth_answers.pop(0)
        self.management_calls.append((method, url, kwargs))
        if url.endswith("/api-keys"):
            return FakeResponse(200, self.keys)
        if "/analytics/endpoints/logs.all" in url:
            now_us = int(time.time() * 1e6)
            return FakeResponse(200, {"result": [
                {"id": str(n), "timestamp": now_us, "event_message": json.dumps(line)}
                for n, line in enumerate(self.log_lines)]})
        raise AssertionError("unexpected %s %s" % (method, url))


def run(monkeypatch, capsys, apis, **args):
    monkeypatch.setattr(_transport, "Session", apis.session)
    params = {"project_ref": REF, "access_token": TOKEN, "api_url": "http://api.test",
              "auth_url": "http://auth.test", "email": EMAIL, "log_timeout": 0, "fail_on_error": False}
    params.update(args)
    with patch_module_args(params):
        with pytest.raises(SystemExit):
            supabase_email_test.main()
    out = capsys.readouterr().out
    for secret in (TOKEN, SECRET_KEY, PUBLISHABLE_KEY, LEGACY_SERVICE_ROLE, LEGACY_ANON):
        assert secret not in out and secret[:14] not in out
    return json.loads(out)


# action=invite: which key goes in which header

def test_invite_sends_the_secret_key_as_apikey_and_no_different_bearer(monkeypatch, capsys):
    apis = FakeApis([FakeResponse(200, {"id": "u1", "email": EMAIL})])
    result = run(monkeypatch, capsys, apis, action="invite")
    assert result["delivery"]["status"] == "sent"
    headers = apis.auth_calls[0][2]["headers"]
    assert headers["apikey"] == SECRET_KEY
    assert headers.get("Authorization") in (None, "Bearer %s" % SECRET_KEY)


def test_invite_with_only_legacy_keys_sends_the_service_role_jwt_in_both_headers(monkeypatch, capsys):
    apis = FakeApis([FakeResponse(200, {"id": "u1"})], keys=ALL_KEYS[:2])
    run(monkeypatch, capsys, apis, action="invite")
    headers = apis.auth_calls[0][2]["headers"]
    assert headers["apikey"] == LEGACY_SERVICE_ROLE
    assert headers["Authorization"] == "Bearer %s" % LEGACY_SERVICE_ROLE


def test_invite_with_a_given_secret_key_reads_no_keys(monkeypatch, capsys):
    apis = FakeApis([FakeResponse(200, {"id": "u1"})])
    run(monkeypatch, capsys, apis, action="invite", service_role_key=SECRET_KEY)
    assert apis.management_calls == []
    assert apis.auth_calls[0][2]["headers"]["apikey"] == SECRET_KEY


def test_otp_sends_the_publishable_key_as_apikey_only(monkeypatch, capsys):
    apis = FakeApis([FakeResponse(200, {})])
    run(monkeypatch, capsys, apis)
    assert apis.auth_calls[0][2]["headers"] == {"apikey": PUBLISHABLE_KEY}


# The log line of a failed send: by error_id

def failure_answer(error_id=ERROR_ID):
    body = {"code": 500, "error_code": "unexpected_failure", "msg": "Error sending magic link email"}
    if error_id:
        body["error_id"] = error_id
    return FakeResponse(500, body)


def log_line(request_id, error, actor=EMAIL, level="error"):
    return {"component": "api", "level": level, "method": "POST", "path": "/otp", "request_id": request_id,
            "msg": "500: Error sending magic link email", "error": error,
            "auth_event": {"action": "user_recovery_requested", "actor_username": actor}}


def test_failed_send_is_matched_to_its_log_line_by_error_id(monkeypatch, capsys):
    other = log_line("0b1d-other-request", "535 Authentication failed: other run")
    ours = log_line(ERROR_ID, "gomail: could not send email 1: 550 sender not verified")
    apis = FakeApis([failure_answer()], log_lines=[other, ours])
    delivery = run(monkeypatch, capsys, apis)["delivery"]
    assert delivery["status"] == "failed" and delivery["request_id"] == ERROR_ID
    assert delivery["log_line"]["request_id"] == ERROR_ID
    assert delivery["error"] == ours["error"] and delivery["error_class"] == "sender-rejected"
    assert len(apis.auth_calls) == 1  # a 500 is never sent again


def test_without_error_id_the_line_is_found_by_the_address(monkeypatch, capsys):
    warning = log_line("r-429", "429: For security purposes, you can only request this after 3 seconds.",
                       level="warning")
    ours = log_line("r-500", "535 Authentication failed")
    apis = FakeApis([failure_answer(error_id=None)], log_lines=[warning, ours])
    delivery = run(monkeypatch, capsys, apis)["delivery"]
    assert delivery["request_id"] is None
    assert delivery["log_line"]["request_id"] == "r-500" and delivery["error_class"] == "auth-rejected"


def test_find_failure_line_with_an_error_id_takes_no_other_request():
    lines = [log_line("someone-else", "535 Authentication failed")]
    assert find_failure_line(lines, EMAIL, "otp", ERROR_ID, 0) is None
    assert find_failure_line(lines, EMAIL, "otp", None, 0) == lines[0]


# signup: a policy-proof password, and a 200 that sent nothing

def test_signup_password_meets_any_gotrue_policy():
    password = request_body("signup", EMAIL, True)["password"]
    assert 40 <= len(password) <= 72
    assert any(c.islower() for c in password) and any(c.isupper() for c in password)
    assert any(c.isdigit() for c in password) and set(PASSWORD_SYMBOLS) <= set(password)


NEW_USER = {"id": "u1", "email": EMAIL, "confirmation_sent_at": "2026-11-30T05:00:00Z", "email_confirmed_at": None,
            "identities": [{"identity_id": "i1", "provider": "email"}]}
# GoTrue's sanitizeUser for a confirmed user's repeated signup: a fresh id, identities empty.
EXISTING_USER = dict(NEW_USER, id="u2", identities=[])
AUTOCONFIRMED = {"access_token": "eyJ.session.sig", "token_type": "bearer",
                 "user": dict(NEW_USER, confirmation_sent_at=None, email_confirmed_at="2026-11-30T05:00:00Z")}


@pytest.mark.parametrize("answer, reason", [
    (EXISTING_USER, "already belongs to a user"),
    (dict(NEW_USER, confirmation_sent_at=None, identities=[]), "already belongs to a user"),
    (AUTOCONFIRMED, "mailer_autoconfirm"),
])
def test_signup_200_without_a_mail_is_not_sent(monkeypatch, capsys, answer, reason):
    apis = FakeApis([FakeResponse(200, answer)])
    delivery = run(monkeypatch, capsys, apis, action="signup")["delivery"]
    assert delivery["status"] == "not_sent"
    assert reason in delivery["error"]
    assert "otp" in delivery["hint"] and "recover" in delivery["hint"]


def test_signup_that_mailed_is_sent(monkeypatch, capsys):
    apis = FakeApis([FakeResponse(200, NEW_USER)])
    assert run(monkeypatch, capsys, apis, action="signup")["delivery"]["status"] == "sent"
    assert signup_not_sent(NEW_USER) is None


def test_not_sent_fails_the_task_with_fail_on_error(monkeypatch, capsys):
    apis = FakeApis([FakeResponse(200, EXISTING_USER)])
    result = run(monkeypatch, capsys, apis, action="signup", fail_on_error=True)
    assert result["failed"] is True and "sent no confirmation mail" in result["msg"]


# GoTrue's 429: the client waits what Auth names (up to rate_limit_wait); the module does not loop

def frequency_429(seconds):
    return FakeResponse(429, {"code": 429, "error_code": "over_email_send_rate_limit",
                              "msg": "For security purposes, you can only request this after %d seconds." % seconds})


def test_named_wait_within_rate_limit_wait_is_waited_by_the_client_then_sent(monkeypatch, capsys):
    slept = []
    monkeypatch.setattr(supabase_email_test.time, "sleep", slept.append)
    apis = FakeApis([frequency_429(0), FakeResponse(200, {})])
    delivery = run(monkeypatch, capsys, apis)["delivery"]
    assert delivery["status"] == "sent" and len(apis.auth_calls) == 2
    assert slept == []  # the module itself never sleeps for a 429


def test_named_wait_beyond_rate_limit_wait_is_rate_limited_after_one_request(monkeypatch, capsys):
    apis = FakeApis([frequency_429(600), FakeResponse(200, {})])
    delivery = run(monkeypatch, capsys, apis, rate_limit_wait=65)["delivery"]
    assert delivery["status"] == "rate_limited" and delivery["error_class"] == "rate-limited"
    assert len(apis.auth_calls) == 1 and delivery["http_status"] == 429


def test_refused_api_key_says_which_option_to_fix(monkeypatch, capsys):
    apis = FakeApis([FakeResponse(401, {"message": "Invalid API key",
                                        "hint": "Double check your Supabase `anon` or `service_role` API key."})])
    delivery = run(monkeypatch, capsys, apis)["delivery"]
    assert delivery["status"] == "failed" and delivery["http_status"] == 401
    assert "anon_key" in delivery["hint"]
