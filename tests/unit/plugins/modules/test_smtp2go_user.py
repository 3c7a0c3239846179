"""smtp2go_user: period parsing, wanted fields, predictions, the view and its engine hooks."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.module_utils._secrets import Redactor
from ansible_collections.karto.supabase_mail.plugins.modules import smtp2go_user
from tests.unit.plugins.module_utils.test_engine import Exited, Failed, FakeModule

PASSWORD = "Relay-pass-9c1d7e33aa40"


def params(**overrides):
    values = {option: None for option in smtp2go_user.ARGUMENT_SPEC}
    values.update(username="karto-supabase", state="present", update_password="on_create",
                  rate_limit_period="1 hour")
    values.update(overrides)
    return values


def stored_user(**overrides):
    user = {"username": "karto-supabase", "description": "Supabase Auth", "status": "allowed",
            "sending_allowed": True, "custom_ratelimit": True, "custom_ratelimit_value": 200,
            "custom_ratelimit_period": "1:00:00", "email_password": PASSWORD}
    user.update(overrides)
    return user


@pytest.mark.parametrize("period, seconds", [
    ("1 hour", 3600), ("2 hours", 7200), ("1 day", 86400), ("1 week", 604800), ("1 month", 2592000),
    ("1:00:00", 3600), ("1 day, 0:00:00", 86400), ("7 days, 0:00:00", 604800), (" 1 Hour ", 3600),
    ("fortnight", None), ("", None), (None, None),
])
def test_period_seconds_reads_the_input_and_the_reported_forms(period, seconds):
    assert smtp2go_user.period_seconds(period) == seconds


@pytest.mark.parametrize("overrides, problem", [
    ({}, None),
    ({"username": "abc"}, "username must be 5 to 100"),
    ({"password": ""}, "password must not be empty"),
    ({"password": PASSWORD + "\n"}, "password has trailing whitespace"),
    ({"rate_limit": -1}, "rate_limit must be between 0"),
    ({"rate_limit_period": "fortnight"}, "rate_limit_period must look like"),
])
def test_validate_names_the_parameter(overrides, problem):
    found = smtp2go_user.validate(params(**overrides))
    if problem is None:
        assert found is None
    else:
        assert found.startswith(problem) and PASSWORD not in found


def test_user_view_reports_option_names_and_no_password():
    view = smtp2go_user.user_view(stored_user())
    assert view == {"username": "karto-supabase", "description": "Supabase Auth", "status": "allowed",
                    "sending_allowed": True, "rate_limit": 200, "rate_limit_period": "1:00:00"}
    assert smtp2go_user.user_view(stored_user(custom_ratelimit=False))["rate_limit"] == 0
    assert smtp2go_user.user_view(None) is None


def test_wanted_fields_for_a_new_user():
    assert smtp2go_user.wanted_fields(params(description="d", rate_limit=200), {}) == {
        "description": "d", "custom_ratelimit": True, "custom_ratelimit_value": 200,
        "custom_ratelimit_period": "1 hour"}
    assert smtp2go_user.wanted_fields(params(rate_limit=0), {}) == {}


def test_wanted_fields_compare_the_period_by_its_length():
    current = stored_user()
    assert smtp2go_user.wanted_fields(params(rate_limit=200, rate_limit_period="1 hour"), current) == {}
    assert smtp2go_user.wanted_fields(params(rate_limit=200, rate_limit_period="1 day"), current) == {
        "custom_ratelimit": True, "custom_ratelimit_value": 200, "custom_ratelimit_period": "1 day"}
    assert smtp2go_user.wanted_fields(params(rate_limit=0), current) == {"custom_ratelimit": False}
    assert smtp2go_user.wanted_fields(params(status="blocked", description="Supabase Auth"), current) == {
        "status": "blocked"}


def test_predicted_user_on_create_and_update():
    new = smtp2go_user.predicted_user("karto-new", None, {"description": "d", "email_password": PASSWORD})
    assert new == {"username": "karto-new", "status": "allowed", "description": "d", "sending_allowed": True}
    blocked = smtp2go_user.predicted_user("karto-supabase", stored_user(),
                                          {"status": "blocked", "custom_ratelimit": False})
    assert blocked["sending_allowed"] is False and blocked["custom_ratelimit_value"] is None
    assert smtp2go_user.user_view(blocked)["rate_limit"] == 0


class FakeSmtp2go:
    def __init__(self, users=(), lose_add_answer=False, generated="Gen-erated-9f2a1c"):
        self.users = {user["username"]: dict(user) for user in users}
        self.lose_add_answer = lose_add_answer
        self.generated = generated
        self.calls = []
        self.redact = Redactor()

    def explain(self, error):
        return error.message

    def find_smtp_user(self, username):
        self.calls.append("view")
        user = self.users.get(username)
        return dict(user) if user else None

    def add_smtp_user(self, fields):
        self.calls.append("add")
        user = dict({"status": "allowed", "sending_allowed": True}, **fields)
        user.setdefault("email_password", self.generated)
        self.users[user["username"]] = user
        if self.lose_add_answer:
            raise ApiError("no answer", method="POST", outcome_unknown=True)
        return dict(user)

    def edit_smtp_user(self, username, fields):
        self.calls.append("edit")
        self.users[username].update(fields)
        # Like SMTP2GO: a partial user object, the effective values of what was sent.
        return [dict({key: self.users[username][key] for key in fields}, username=username)]

    def remove_smtp_user(self, username):
        self.calls.append("remove")
        del self.users[username]


def run(api, check_mode=False, diff=False, **overrides):
    module = FakeModule(params(**overrides), check_mode=check_mode, diff=diff)
    with pytest.raises((Exited, Failed)) as outcome:
        smtp2go_user.SmtpUser(module, api).run()
    return outcome.value, module


def test_generated_password_is_returned_once_with_a_warning():
    api = FakeSmtp2go()
    first, module = run(api)
    assert first.result["created"] is True and first.result["password"] == "Gen-erated-9f2a1c"
    assert "returned once" in module.warnings[0]
    again, _module = run(api)
    assert again.result["changed"] is False and "password" not in again.result


def test_caller_password_is_sent_on_create_only_unless_always():
    api = FakeSmtp2go()
    created, _module = run(api, password=PASSWORD, diff=True)
    assert created.result["changed_fields"] == ["email_password"] and "password" not in created.result
    assert created.result["diff"]["after"]["password"] == "<hidden, changed>"
    assert run(api, password="Other-" + PASSWORD)[0].result["changed"] is False
    rotated, _module = run(api, password="Other-" + PASSWORD, update_password="always")
    assert rotated.result["changed_fields"] == ["email_password"]
    assert api.users["karto-supabase"]["email_password"] == "Other-" + PASSWORD
    assert api.calls.count("add") == 1


def test_edit_is_one_patch_and_no_reread():
    api = FakeSmtp2go([stored_user()])
    outcome, _module = run(api, description="two")
    assert api.calls == ["view", "edit"]
    assert outcome.result["user"]["description"] == "two" and outcome.result["changed_fields"] == ["description"]


def test_lost_add_answer_with_a_generated_password_sets_a_new_one_and_returns_it():
    # Issue 12: failing here left a user whose password nobody held; the rerun then saw no change.
    api = FakeSmtp2go(lose_add_answer=True)
    outcome, module = run(api)
    assert isinstance(outcome, Exited)
    assert outcome.result["created"] is True
    assert outcome.result["password"] == api.users["karto-supabase"]["email_password"] != api.generated
    assert "new password was set" in module.warnings[0]
    assert api.calls == ["view", "add", "view", "edit"]


def test_lost_add_answer_with_a_known_password_is_success():
    api = FakeSmtp2go(lose_add_answer=True)
    outcome, _module = run(api, password=PASSWORD)
    assert isinstance(outcome, Exited) and outcome.result["created"] is True
    assert outcome.result["user"]["username"] == "karto-supabase"
    assert api.calls == ["view", "add", "view"]


def test_check_mode_predicts_a_new_user():
    api = FakeSmtp2go()
    outcome, _module = run(api, check_mode=True, description="d", status="sandbox")
    assert outcome.result["changed"] is True and api.calls == ["view"]
    assert outcome.result["user"]["status"] == "sandbox" and outcome.result["user"]["sending_allowed"] is False
