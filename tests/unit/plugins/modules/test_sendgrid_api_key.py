"""sendgrid_api_key and the SendGrid client's pure parts: validation, scope comparison, both GET
shapes, error parsing and explanations, and the engine hooks against an in-memory SendGrid."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _provider_sendgrid as sendgrid
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.modules import sendgrid_api_key
from tests.unit.plugins.module_utils.test_engine import Exited, Failed, FakeModule

VALUE = "SG.qfTQ6KG0QBiwWdJ0-pCLCA.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"
ADDED = ["sender_verification_eligible", "2fa_required"]


def params(**overrides):
    values = {option: None for option in sendgrid_api_key.ARGUMENT_SPEC}
    values.update(name="supabase-abc", state="present", scopes=["mail.send"])
    values.update(overrides)
    return values


class FakeSendgrid:
    """The client calls the module makes, on a dict of keys; `lose_answer` loses the create's answer."""

    def __init__(self, keys=(), fault=None):
        self.keys = {key["api_key_id"]: dict(key) for key in keys}
        self.calls = []
        self.fault = fault

    def explain(self, error):
        return "Explained: %s" % error.message

    def list_api_keys(self):
        self.calls.append("list")
        return [{"api_key_id": k["api_key_id"], "name": k["name"]} for k in self.keys.values()]

    def get_api_key(self, api_key_id):
        self.calls.append("get")
        return dict(self.keys[api_key_id]) if api_key_id in self.keys else None

    def create_api_key(self, name, scopes):
        self.calls.append("create")
        key = {"api_key_id": "id%d" % len(self.keys), "name": name, "scopes": list(scopes) + ADDED}
        self.keys[key["api_key_id"]] = key
        if self.fault in ("lose_answer", "lose_answer_once"):
            self.fault = None if self.fault == "lose_answer_once" else self.fault
            raise ApiError("no answer", method="POST", outcome_unknown=True)
        return dict(key, api_key=VALUE)

    def update_api_key(self, api_key_id, name, scopes):
        self.calls.append(("put", name, list(scopes)))
        self.keys[api_key_id].update(name=name, scopes=list(scopes) + ADDED)
        return dict(self.keys[api_key_id])

    def delete_api_key(self, api_key_id):
        self.calls.append("delete")
        del self.keys[api_key_id]


class Redact:
    def __init__(self):
        self.added = []

    def add(self, secret):
        self.added.append(secret)


def run(api, check_mode=False, diff=False, **overrides):
    api.redact = Redact()
    module = FakeModule(params(**overrides), check_mode=check_mode, diff=diff)
    try:
        sendgrid_api_key.ApiKey(module, api).run()
    except (Exited, Failed) as outcome:
        outcome.module = module
        return outcome
    raise AssertionError("the module neither exited nor failed")


@pytest.mark.parametrize("overrides, problem", [
    ({}, None),
    ({"name": ""}, "name must not be empty"),
    ({"name": "two\nlines"}, "name must be a single line"),
    ({"name": " padded"}, "name has leading whitespace"),
    ({"name": "x" * 101}, "name must be at most 100 characters"),
    ({"scopes": []}, "scopes must name at least one scope"),
    ({"scopes": ["2fa_required"]}, "scopes must name at least one scope"),
    ({"scopes": [], "state": "absent"}, None),
    ({"scopes": ["mail.send", "mail send"]}, "scopes must be scope names"),
])
def test_validate_names_the_parameter(overrides, problem):
    found = sendgrid_api_key.validate(params(**overrides))
    assert (found is None) if problem is None else found.startswith(problem), found


def test_scopes_are_compared_without_the_two_sendgrid_adds():
    assert sendgrid.comparable_scopes(["mail.send"] + ADDED) == ["mail.send"]
    assert sendgrid_api_key.wanted_changes(params(), {"scopes": ["mail.send"] + ADDED}) == {}
    assert sendgrid_api_key.wanted_changes(params(), {"scopes": ["alerts.read", "mail.send"]}) == {"scopes": ["mail.send"]}
    assert sendgrid_api_key.wanted_changes(params(), None) == {"name": "supabase-abc", "scopes": ["mail.send"]}


@pytest.mark.parametrize("body, expected", [
    ({"api_key_id": "a", "name": "n", "scopes": ["mail.send"]}, {"api_key_id": "a", "name": "n", "scopes": ["mail.send"]}),
    ({"result": [{"api_key_id": "a", "name": "n", "scopes": ["mail.send"]}]}, {"api_key_id": "a", "name": "n", "scopes": ["mail.send"]}),
    ({"result": []}, None),
    (None, None),
])
def test_get_key_reads_the_flat_and_the_documented_result_form(body, expected):
    assert sendgrid.key_from_answer(body) == expected


def test_parse_error_reads_sendgrids_error_list():
    client = sendgrid.SendgridClient("https://api.sendgrid.com", VALUE)
    assert client.parse_error(400, {"errors": [{"field": "name", "message": "missing required argument"}]}) == (
        "name", "missing required argument")
    assert client.parse_error(429, {"errors": [{"field": None, "message": "too many requests"}]}) == (
        None, "too many requests")
    assert client.parse_error(502, "Bad Gateway") == (None, "Bad Gateway")
    assert client.auth_headers() == {"Authorization": "Bearer " + VALUE}


@pytest.mark.parametrize("status, method, path, says", [
    (401, "GET", "/v3/api_keys", "SendGrid refused the api_key"),
    (403, "POST", "/v3/api_keys", "at most 100 keys"),
    (403, "GET", "/v3/verified_senders", "may not call GET /v3/verified_senders"),
    (429, "GET", "/v3/api_keys", "X-RateLimit-Reset"),
    (404, "PATCH", "/v3/verified_senders/7", "deleted it meanwhile"),
    (400, "POST", "/v3/verified_senders", "SendGrid refused the request (HTTP 400): reply_to is required"),
])
def test_explain_names_what_to_fix(status, method, path, says):
    client = sendgrid.SendgridClient("https://api.sendgrid.com", VALUE)
    error = ApiError("failed", status=status, method=method, path=path, provider_message="reply_to is required")
    assert says in client.explain(error)


def test_created_once_the_value_returned_once_then_found_by_name():
    api = FakeSendgrid()
    first = run(api, diff=True)
    assert first.result["changed"] is True and first.result["created"] is True
    assert first.result["api_key"] == VALUE and api.redact.added == [VALUE]
    assert first.result["key"] == {"api_key_id": "id0", "name": "supabase-abc", "scopes": ["mail.send"] + ADDED}
    assert VALUE not in str(first.result["diff"])
    assert any("Store it now" in warning for warning in first.module.warnings)
    second = run(api)
    assert second.result["changed"] is False and "api_key" not in second.result
    assert api.calls == ["list", "create", "list", "get"]


def test_drift_is_put_with_the_name_and_check_mode_sends_nothing():
    api = FakeSendgrid([{"api_key_id": "k1", "name": "supabase-abc", "scopes": ["mail.send", "alerts.read"] + ADDED}])
    checked = run(api, check_mode=True)
    assert checked.result["changed"] is True and checked.result["changed_fields"] == ["scopes"]
    assert api.calls == ["list", "get"]
    fixed = run(api)
    assert fixed.result["key"]["scopes"] == ["mail.send"] + ADDED
    assert ("put", "supabase-abc", ["mail.send"]) in api.calls


def test_check_mode_create_predicts_a_key_without_id_or_value():
    outcome = run(FakeSendgrid(), check_mode=True)
    assert outcome.result["changed"] is True and "api_key" not in outcome.result
    assert outcome.result["key"] == {"api_key_id": None, "name": "supabase-abc", "scopes": ["mail.send"]}


def test_a_lost_create_answer_is_replaced_by_a_new_key_in_the_same_run():
    # The key made by the lost create has a value nobody holds: deleted, and created once more.
    api = FakeSendgrid(fault="lose_answer_once")
    outcome = run(api)
    assert isinstance(outcome, Exited) and outcome.result["api_key"] == VALUE and outcome.result["created"] is True
    assert api.calls.count("create") == 2 and api.calls.count("delete") == 1 and len(api.keys) == 1


def test_create_answers_lost_twice_fail_saying_to_delete_the_key():
    api = FakeSendgrid(fault="lose_answer")
    outcome = run(api)
    assert isinstance(outcome, Failed)
    assert "answer carrying its value was lost" in outcome.result["msg"] and outcome.result["created"] is True
    assert api.calls.count("create") == 2  # never a third


def test_two_keys_with_the_name_fail_before_any_write():
    api = FakeSendgrid([{"api_key_id": "a", "name": "supabase-abc", "scopes": []},
                        {"api_key_id": "b", "name": "supabase-abc", "scopes": []}])
    outcome = run(api)
    assert isinstance(outcome, Failed) and outcome.result["key_ids"] == ["a", "b"]
    assert api.calls == ["list"]


def test_absent_deletes_once():
    api = FakeSendgrid([{"api_key_id": "a", "name": "supabase-abc", "scopes": ["mail.send"]}])
    assert run(api, state="absent").result["changed"] is True
    assert run(api, state="absent").result["changed"] is False
    assert api.calls.count("delete") == 1


def test_the_profile_is_complete_with_the_fixed_login_and_the_api_key_as_password():
    from ansible_collections.karto.supabase_mail.plugins.module_utils import _relay
    profile = sendgrid.PROFILE
    assert _relay.profile_problems(profile, "_provider_sendgrid") == []
    assert (profile.username_rule, profile.fixed_username, profile.password_source) == ("fixed", "apikey", "api_key")
    assert profile.smtp_ports == {465: "implicit", 587: "starttls", 25: "starttls", 2525: "starttls"}
    assert profile.default_port == 587 and profile.is_default is False
    assert "karto.help@ro.ru" in profile.as_dict(sender_email="karto.help@ro.ru")["advice"]["sender-unverified"]
