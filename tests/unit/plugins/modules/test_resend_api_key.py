"""resend_api_key and the Resend client's pure parts: validation, error parsing and explanations, paging, the
profile, and the engine hooks (create, recreate, duplicates, lost answers, absent) against an in-memory Resend."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _provider_resend as resend
from ansible_collections.karto.supabase_mail.plugins.module_utils import _relay
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.modules import resend_api_key
from tests.unit.plugins.module_utils.test_engine import Exited, Failed, FakeModule

TOKEN = "re_c1tpEyD8_NKFusih9vKVQknRAQfmFcWCv"


def params(**overrides):
    values = {option: None for option in resend_api_key.ARGUMENT_SPEC}
    values.update(name="supabase-abc", state="present", permission="sending_access", recreate=False)
    values.update(overrides)
    return values


class Redact:
    def __init__(self):
        self.added = []

    def add(self, secret):
        self.added.append(secret)


class FakeResend:
    """The client calls the module makes, on a list of keys (newest last); `fault` loses a create's answer."""

    def __init__(self, keys=(), domains=(), fault=None):
        self.keys = [dict(key) for key in keys]
        self.domains = [dict(domain) for domain in domains]
        self.calls = []
        self.fault = fault
        self.redact = Redact()
        self.made = 0

    def explain(self, error):
        return "Explained: %s" % error.message

    def list_api_keys(self):
        self.calls.append("list")
        return [dict(key) for key in reversed(self.keys)]  # Resend lists newest first

    def find_domain(self, name):
        self.calls.append("domains")
        return next((dict(d) for d in self.domains if d["name"] == name), None)

    def create_api_key(self, name, permission, domain_id=None):
        self.calls.append(("create", permission, domain_id))
        self.made += 1
        key = {"id": "new%d" % self.made, "name": name, "created_at": "2026-01-0%d" % (self.made + 1)}
        self.keys.append(key)
        if self.fault in ("lose_answer", "lose_answer_once"):
            self.fault = None if self.fault == "lose_answer_once" else self.fault
            raise ApiError("no answer", method="POST", outcome_unknown=True)
        return {"id": key["id"], "token": TOKEN}

    def delete_api_key(self, api_key_id):
        self.calls.append(("delete", api_key_id))
        self.keys = [key for key in self.keys if key["id"] != api_key_id]


def run(api, check_mode=False, diff=False, **overrides):
    module = FakeModule(params(**overrides), check_mode=check_mode, diff=diff)
    try:
        resend_api_key.ApiKey(module, api).run()
    except (Exited, Failed) as outcome:
        outcome.module = module
        return outcome
    raise AssertionError("the module neither exited nor failed")


OLD = {"id": "old", "name": "supabase-abc", "created_at": "2026-01-01", "last_used_at": None}


@pytest.mark.parametrize("overrides, problem", [
    ({}, None),
    ({"name": ""}, "name must not be empty"),
    ({"name": "two\nlines"}, "name must be a single line"),
    ({"name": "x" * 51}, "name must be at most 50 characters"),
    ({"domain": "mail.karto.test\n"}, "domain must be a single line"),
    ({"domain": "karto"}, "domain must be a domain name"),
    ({"domain_id": "d1\n"}, "domain_id must be a Resend domain ID"),
    ({"domain": "mail.karto.test", "permission": "full_access"}, "domain and domain_id restrict"),
    ({"key_id": "k1"}, "key_id picks the key to delete"),
    ({"key_id": "k1", "state": "absent"}, None),
    ({"recreate": True, "state": "absent"}, "recreate makes a new key"),
])
def test_validate_names_the_parameter(overrides, problem):
    found = resend_api_key.validate(params(**overrides))
    assert (found is None) if problem is None else found.startswith(problem), found


def test_created_once_with_the_domain_the_token_returned_once_then_found_by_name():
    api = FakeResend(domains=[{"id": "d1", "name": "mail.karto.test"}])
    first = run(api, diff=True, domain="mail.karto.test")
    assert first.result["changed"] is True and first.result["created"] is True
    assert first.result["token"] == TOKEN and api.redact.added == [TOKEN]
    assert first.result["key"]["permission"] == "sending_access" and first.result["key"]["domain_id"] == "d1"
    assert TOKEN not in str(first.result["diff"])
    assert any("Store it now" in warning for warning in first.module.warnings)
    second = run(api, domain="mail.karto.test")
    assert second.result["changed"] is False and "token" not in second.result
    assert api.calls == ["list", "domains", ("create", "sending_access", "d1"), "list"]


def test_a_full_access_key_is_never_restricted_and_check_mode_creates_nothing():
    api = FakeResend()
    checked = run(api, check_mode=True, permission="full_access")
    assert checked.result["changed"] is True and checked.result["key"]["id"] is None
    assert api.calls == ["list"]
    run(api, permission="full_access")
    assert api.calls[-1] == ("create", "full_access", None)


def test_recreate_makes_a_new_key_beside_the_old_one_and_names_what_it_replaces():
    api = FakeResend([OLD])
    checked = run(api, check_mode=True, recreate=True)
    assert checked.result["changed"] is True and checked.result["replaced_key_ids"] == ["old"]
    assert api.calls == ["list"]
    done = run(api, recreate=True, diff=True)
    assert done.result["recreated"] is True and done.result["token"] == TOKEN
    assert done.result["replaced_key_ids"] == ["old"] and [key["id"] for key in api.keys] == ["old", "new1"]
    assert done.result["diff"]["before"]["id"] == "old" and done.result["diff"]["after"]["id"] == "new1"
    # Again, after an interrupted recreate: both are replaced, newest first.
    again = run(api, recreate=True)
    assert again.result["replaced_key_ids"] == ["new1", "old"]


def test_two_keys_with_the_name_fail_before_any_write_unless_recreating_or_deleting():
    api = FakeResend([OLD, dict(OLD, id="other", created_at="2026-01-05")])
    outcome = run(api)
    assert isinstance(outcome, Failed) and outcome.result["key_ids"] == ["other", "old"]
    assert "recreate=true" in outcome.result["msg"] and api.calls == ["list"]
    gone = run(api, state="absent")
    assert gone.result["deleted_key_ids"] == ["other", "old"] and api.keys == []


def test_absent_with_key_id_deletes_only_that_key_and_refuses_a_key_of_another_name():
    api = FakeResend([OLD, dict(OLD, id="new"), {"id": "else", "name": "other-name"}])
    assert run(api, state="absent", key_id="old").result["deleted_key_ids"] == ["old"]
    assert [key["id"] for key in api.keys] == ["new", "else"]
    wrong = run(api, state="absent", key_id="else")
    assert isinstance(wrong, Failed) and "is named 'other-name'" in wrong.result["msg"]


def test_a_lost_create_answer_is_replaced_by_a_new_key_in_the_same_run():
    # The key made by the lost create has a token nobody holds: deleted, and created once more.
    api = FakeResend(fault="lose_answer_once")
    outcome = run(api)
    assert isinstance(outcome, Exited) and outcome.result["token"] == TOKEN and outcome.result["created"] is True
    assert ("delete", "new1") in api.calls and [key["id"] for key in api.keys] == ["new2"]


def test_create_answers_lost_twice_fail_naming_the_key_to_delete_and_are_never_sent_a_third_time():
    api = FakeResend(fault="lose_answer")
    outcome = run(api)
    assert isinstance(outcome, Failed) and "answer carrying its token was lost" in outcome.result["msg"]
    assert "key_id=new2" in outcome.result["msg"] and outcome.result["created"] is True
    recreate = FakeResend([OLD], fault="lose_answer")
    lost = run(recreate, recreate=True)
    assert isinstance(lost, Failed) and "key_id=new1" in lost.result["msg"]
    assert [call for call in api.calls + recreate.calls if call[0] == "create"] == [
        ("create", "sending_access", None)] * 3


def test_a_domain_that_is_not_in_the_team_fails_before_the_create():
    api = FakeResend()
    outcome = run(api, domain="mail.karto.test")
    assert isinstance(outcome, Failed) and "no domain named mail.karto.test" in outcome.result["msg"]
    assert api.calls == ["list", "domains"]


# --- the client -------------------------------------------------------------------------------------

def test_parse_error_reads_resends_shape_and_anything_else_as_it_comes():
    client = resend.ResendClient("https://api.resend.com", TOKEN)
    assert client.parse_error(404, {"statusCode": 404, "message": "API key not found", "name": "not_found"}) == (
        "not_found", "API key not found")
    assert client.parse_error(403, "error code: 1010") == (None, "error code: 1010")
    assert client.auth_headers() == {"Authorization": "Bearer " + TOKEN}


@pytest.mark.parametrize("status, code, method, path, said, expected", [
    (401, "missing_api_key", "GET", "/domains", "Missing API key", "Resend refused the api_key (HTTP 401)"),
    (403, "invalid_api_key", "GET", "/domains", "API key is invalid", "Resend refused the api_key (HTTP 403)"),
    (400, "validation_error", "GET", "/domains", "API key is invalid", "Resend refused the api_key (HTTP 400)"),
    (401, "restricted_api_key", "GET", "/api-keys", "restricted", "needs a key with Full access"),
    (403, None, "GET", "/domains", "error code: 1010", "requires a User-Agent header"),
    (429, "rate_limit_exceeded", "GET", "/domains", "Too many", "every key together"),
    (404, "not_found", "GET", "/domains/d1", "Domain not found", "no such domain any more"),
    (404, "not_found", "DELETE", "/api-keys/k1", "API key not found", "no such API key any more"),
    (403, "validation_error", "POST", "/domains", "already added", "must be claimed there first"),
    (422, "invalid_region", "POST", "/domains/x/verify", "Region must be", "Resend refused the request (HTTP 422"),
])
def test_explain_names_what_to_fix(status, code, method, path, said, expected):
    client = resend.ResendClient("https://api.resend.com", TOKEN)
    error = ApiError("failed", status=status, code=code, method=method, path=path, provider_message=said)
    assert expected in client.explain(error)


def test_lists_are_paged_with_limit_and_the_after_cursor_until_has_more_is_false():
    client = resend.ResendClient("https://api.resend.com", TOKEN)
    pages = [{"object": "list", "has_more": True, "data": [{"id": "a"}, {"id": "b"}]},
             {"object": "list", "has_more": False, "data": [{"id": "c"}]}]
    sent = []
    client.request = lambda method, path, params=None, **kwargs: sent.append((method, path, params)) or pages.pop(0)
    assert [key["id"] for key in client.list_api_keys()] == ["a", "b", "c"]
    assert sent == [("GET", "/api-keys", {"limit": 100}), ("GET", "/api-keys", {"limit": 100, "after": "b"})]


def test_the_profile_is_complete_with_the_fixed_login_and_the_ports_supabase_can_use():
    profile = resend.PROFILE
    assert _relay.profile_problems(profile, "_provider_resend") == []
    assert (profile.username_rule, profile.fixed_username, profile.password_source) == ("fixed", "resend", "api_key")
    # 2465 (Resend's second implicit-TLS port) is left out: Supabase Auth speaks STARTTLS on every port but 465.
    assert profile.smtp_ports == {465: "implicit", 587: "starttls", 2587: "starttls", 25: "starttls"}
    assert profile.default_port == 465 and profile.is_default is False
    assert "noreply@mail.karto.test" in profile.as_dict(sender_email="noreply@mail.karto.test")["advice"]["sender-rejected"]
