"""supabase_smtp: wanted fields, the password HMAC verdict, check-mode prediction and views."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _diff
from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import is_password_hmac, smtp_pass_hmac
from ansible_collections.karto.supabase_mail.plugins.modules import supabase_smtp
from tests.unit.plugins.module_utils.test_engine import Exited, Failed, FakeModule

REF = "abcdefghijklmnopqrst"
PASSWORD = "Smtp-pass-0f3c9a1e77"


def params(**overrides):
    values = {option: None for option in supabase_smtp.ARGUMENT_SPEC}
    values.update(project_ref=REF, state="present", update_password="on_change", host="mail.smtp2go.com",
                  port=465, username="karto-supabase", password=PASSWORD, sender_email="karto.help@ro.ru")
    values.update(overrides)
    return values


def enabled_config(**overrides):
    config = {"smtp_host": "mail.smtp2go.com", "smtp_port": "465", "smtp_user": "karto-supabase",
              "smtp_pass": smtp_pass_hmac(REF, PASSWORD), "smtp_admin_email": "karto.help@ro.ru",
              "smtp_sender_name": "KARTO", "smtp_max_frequency": 60, "rate_limit_email_sent": 100}
    config.update(overrides)
    return config


def test_hmac_matches_the_supabase_cli_test_vector():
    # supabase/cli apps/cli-go/pkg/config/auth_test.go: key "" and password "test-key".
    assert smtp_pass_hmac("", "test-key") == "ed64b7695a606bc6ab4fcb41fe815b5ddf1063ccbc87afe1fa89756635db520e"


def test_hmac_is_keyed_by_project_ref():
    assert smtp_pass_hmac("aaaaaaaaaaaaaaaaaaaa", "pw") != smtp_pass_hmac("bbbbbbbbbbbbbbbbbbbb", "pw")
    assert is_password_hmac(smtp_pass_hmac("aaaaaaaaaaaaaaaaaaaa", "pw"))
    assert not is_password_hmac("****")
    assert not is_password_hmac(None)


def test_wanted_fields_are_wire_names_port_as_string_and_omitted_options_left_out():
    wanted = supabase_smtp.wanted_fields(params(port=587, email_rate_limit=30))
    assert wanted == {"smtp_host": "mail.smtp2go.com", "smtp_port": "587", "smtp_user": "karto-supabase",
                      "smtp_admin_email": "karto.help@ro.ru", "rate_limit_email_sent": 30}
    assert "smtp_pass" not in wanted


@pytest.mark.parametrize("password, stored, verdict", [
    (None, "anything", _diff.SECRET_UNMANAGED),
    (PASSWORD, None, _diff.SECRET_DIFFERENT),
    (PASSWORD, "", _diff.SECRET_DIFFERENT),
    (PASSWORD, smtp_pass_hmac(REF, PASSWORD), _diff.SECRET_UNCHANGED),
    (PASSWORD, smtp_pass_hmac(REF, "other"), _diff.SECRET_DIFFERENT),
    (PASSWORD, "****", _diff.SECRET_UNKNOWN),
])
def test_password_verdict(password, stored, verdict):
    assert supabase_smtp.password_verdict(REF, password, stored) == verdict


def test_effective_settings_and_diff_view_never_hold_the_password():
    settings = supabase_smtp.effective_settings(enabled_config(), REF, PASSWORD)
    assert settings["enabled"] is True and settings["port"] == 465
    assert settings["password_set"] is True and settings["password_matches"] is True
    assert supabase_smtp.effective_settings(enabled_config(smtp_pass="****"), REF, PASSWORD)["password_matches"] is None
    assert supabase_smtp.effective_settings(enabled_config(), REF, None)["password_matches"] is None
    off = supabase_smtp.effective_settings({"smtp_port": ""}, REF, PASSWORD)
    assert off["enabled"] is False and off["port"] is None and off["password_set"] is False
    assert PASSWORD not in repr(settings) and smtp_pass_hmac(REF, PASSWORD) not in repr(settings)


def test_prediction_of_turning_smtp_off_nulls_smtp_keys_and_resets_the_rate_limit_to_the_builtin_mailers():
    after = supabase_smtp.predicted_config(enabled_config(), {"smtp_host": ""}, REF)
    assert all(value is None for key, value in after.items() if key.startswith("smtp_"))
    assert after["rate_limit_email_sent"] == 2


def test_prediction_of_a_new_password_is_its_hmac():
    after = supabase_smtp.predicted_config(enabled_config(), {"smtp_pass": "new-one", "smtp_port": "587"}, REF)
    assert after["smtp_pass"] == smtp_pass_hmac(REF, "new-one") and after["smtp_port"] == "587"


class FakeManagementApi:
    def __init__(self, config):
        self.config = dict(config)
        self.patches = []
        self.gets = 0

    def explain(self, error):
        return error.message

    def get_auth_config(self, ref):
        self.gets += 1
        return dict(self.config)

    def update_auth_config(self, ref, changes):
        self.patches.append(dict(changes))
        self.config = supabase_smtp.predicted_config(self.config, changes, ref)
        return dict(self.config)


def run(api, check_mode=False, diff=False, **overrides):
    module = FakeModule(params(**overrides), check_mode=check_mode, diff=diff)
    with pytest.raises((Exited, Failed)) as outcome:
        supabase_smtp.AuthSmtpConfig(module, api).run()
    return outcome.value, module


def test_unchanged_settings_make_one_read_and_no_write():
    api = FakeManagementApi(enabled_config())
    outcome, _module = run(api, sender_name="KARTO")
    assert outcome.result["changed"] is False and outcome.result["changed_fields"] == []
    assert api.gets == 1 and api.patches == []


def test_new_password_is_sent_alone_and_shown_masked_in_the_diff():
    api = FakeManagementApi(enabled_config())
    outcome, _module = run(api, password="Rotated-pass", diff=True)
    assert api.patches == [{"smtp_pass": "Rotated-pass"}]
    assert outcome.result["changed_fields"] == ["smtp_pass"]
    assert outcome.result["diff"]["after"]["password"] == "<hidden, changed>"
    assert "Rotated-pass" not in repr(outcome.result)


def test_password_is_required_to_turn_smtp_on():
    api = FakeManagementApi({"smtp_host": None, "rate_limit_email_sent": 2})
    outcome, _module = run(api, password=None)
    assert isinstance(outcome, Failed) and "password is required" in outcome.result["msg"]
    assert api.patches == []


def test_masked_stored_password_warns_under_on_change_and_is_sent_under_always():
    api = FakeManagementApi(enabled_config(smtp_pass="****"))
    outcome, module = run(api, password="Other-pass")
    assert outcome.result["changed"] is False and "update_password=always" in module.warnings[0]
    outcome, module = run(api, password="Other-pass", update_password="always")
    assert outcome.result["changed_fields"] == ["smtp_pass"] and module.warnings == []


def test_absent_sends_an_empty_host_once():
    api = FakeManagementApi(enabled_config())
    check, _module = run(api, state="absent", check_mode=True, diff=True)
    assert check.result["changed"] is True and api.patches == []
    assert check.result["smtp"]["enabled"] is False and check.result["smtp"]["email_rate_limit"] == 2
    assert check.result["diff"]["after"]["password"] is None
    assert "password_set" not in check.result["diff"]["before"] and "password_matches" not in check.result["diff"]["after"]
    assert check.result["diff"]["before"]["password"] == "<hidden>" and check.result["diff"]["before"]["enabled"] is True
    off, _module = run(api, state="absent")
    assert api.patches == [{"smtp_host": ""}] and off.result["changed_fields"] == ["smtp_host"]
    again, _module = run(api, state="absent")
    assert again.result["changed"] is False and len(api.patches) == 1
