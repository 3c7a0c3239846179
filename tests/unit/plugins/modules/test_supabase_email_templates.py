"""supabase_email_templates: the checks every subject and body passes before any request, the
wanted fields, the text diff and the engine run (one read, no write when nothing differs)."""

import json

import pytest

from ansible_collections.karto.supabase_mail.plugins.modules import supabase_email_templates as mod
from tests.integration.openapi_spec import SPECS
from tests.unit.plugins.module_utils.test_engine import Exited, FakeModule

REF = "abcdefghijklmnopqrst"
LINK_BODY = '<p><a href="{{ .ConfirmationURL }}">Подтвердить</a></p>\n'


def params(templates, **overrides):
    values = {"project_ref": REF, "api_url": "https://api.supabase.com", "access_token": "sbp_" + "a" * 40,
              "timeout": 30, "validate_certs": True, "templates": templates}
    values.update(overrides)
    return values


@pytest.mark.parametrize("kind", ["confirmation", "invite", "magic_link", "recovery", "email_change"])
@pytest.mark.parametrize("body", [
    LINK_BODY,
    "<p>Код: {{ .Token }}</p>",
    '<a href="{{ .SiteURL }}/auth/confirm?token_hash={{ .TokenHash }}&type=email">Confirm</a>',
    '<a href="{{ .RedirectTo }}?token_hash={{ .TokenHash }}">Go</a>',
    '{{- if .Token -}}<a href="{{ $.ConfirmationURL }}">x</a>{{- end -}}',
])
def test_a_link_mail_keeps_its_link_in_any_documented_form(kind, body):
    assert mod.validate(params({kind: {"subject": "Тема", "content": body}})) is None


@pytest.mark.parametrize("kind", ["confirmation", "invite", "magic_link", "recovery", "email_change"])
@pytest.mark.parametrize("body", [
    "<p>Добро пожаловать!</p>",
    '<a href="https://example.com/confirm?token_hash={{ .TokenHash }}">own host, no site URL</a>',
    "<p>{{/* {{ .ConfirmationURL }} */}}commented out</p>",
    '<p>{{ "{{ .ConfirmationURL }}" }}: a string, not the variable</p>',
    "<p>{{ .Data.ConfirmationURL }}: user metadata, not the link</p>",
])
def test_a_link_mail_without_its_link_is_refused_naming_the_template_and_the_fix(kind, body):
    problem = mod.validate(params({kind: {"subject": "Тема", "content": body}}))
    assert problem.startswith("templates.%s.content drops the confirmation link" % kind)
    assert "{{ .ConfirmationURL }}" in problem and "Nothing was changed" in problem


def test_reauthentication_must_keep_the_code():
    assert mod.validate(params({"reauthentication": {"content": "<p>{{ .Token }}</p>"}})) is None
    problem = mod.validate(params({"reauthentication": {"content": '<a href="{{ .SiteURL }}">x</a>'}}))
    assert problem.startswith("templates.reauthentication.content drops the one-time code")
    assert "{{ .Token }}" in problem


def test_reauthentication_gets_no_link_variable():
    problem = mod.validate(params({"reauthentication": {"content": "{{ .Token }} {{ .ConfirmationURL }}"}}))
    assert "{{ .ConfirmationURL }}, which Supabase Auth does not give the reauthentication mail" in problem


@pytest.mark.parametrize("kind, key, text, unknown", [
    ("confirmation", "content", LINK_BODY + "{{ .Foo }}", "{{ .Foo }}"),
    ("confirmation", "subject", "Привет, {{ .Name }}", "{{ .Name }}"),
    ("confirmation", "content", LINK_BODY + "{{ .NewEmail }}", "{{ .NewEmail }}"),
    ("password_changed", "content", "{{ .Token }}", "{{ .Token }}"),
    ("identity_linked", "content", "{{ .FactorType }}", "{{ .FactorType }}"),
    ("magic_link", "content", LINK_BODY + "{{ if eq .Lang \"ru\" }}Привет{{ end }}", "{{ .Lang }}"),
])
def test_unknown_variables_are_refused(kind, key, text, unknown):
    problem = mod.validate(params({kind: {key: text}}))
    assert problem.startswith("templates.%s.%s uses %s" % (kind, key, unknown))
    assert "use only" in problem


@pytest.mark.parametrize("kind, text", [
    ("email_change", LINK_BODY + "{{ .NewEmail }} {{ .SendingTo }}"),
    ("email_changed", "{{ .OldEmail }} → {{ .Email }}"),
    ("phone_changed", "{{ .OldPhone }} → {{ .Phone }}"),
    ("identity_unlinked", "{{ .Provider }} {{ .SiteURL }}"),
    ("mfa_factor_enrolled", "{{ .FactorType }} {{ .Data.name }}"),
    ("confirmation", LINK_BODY + "{{ with .Data }}{{ .name }}{{ end }} {{ 1.5 }}"),
])
def test_each_mail_may_use_its_own_variables(kind, text):
    assert mod.validate(params({kind: {"content": text}})) is None


@pytest.mark.parametrize("body, ok", [
    ('{{ with .Data }}<a href="{{ $.ConfirmationURL }}">{{ .name }}</a>{{ end }}', True),
    ('{{ range .Data.list }}{{ .ConfirmationURL }}{{ end }}', False),  # the dot is a list item there
    ('{{ if .Token }}{{ .ConfirmationURL }}{{ end }}', True),  # if keeps the dot
])
def test_with_and_range_rebind_the_dot(body, ok):
    problem = mod.validate(params({"confirmation": {"content": body}}))
    assert (problem is None) is ok, problem


@pytest.mark.parametrize("entry, fragment", [
    ({"subject": ""}, "templates.invite.subject must not be empty"),
    ({"subject": "Line\nBcc: x@ro.ru"}, "templates.invite.subject must be one line"),
    ({"content": "  \n"}, "templates.invite.content must not be empty"),
    ({"content": LINK_BODY + "\x00"}, "templates.invite.content must not contain control characters"),
    ({"content": LINK_BODY + "{{ .Email "}, "templates.invite.content has a '{{' that is never closed"),
])
def test_malformed_texts_are_refused(entry, fragment):
    assert fragment in mod.validate(params({"invite": entry}))


def test_an_empty_templates_option_is_refused():
    assert "templates must give at least one" in mod.validate(params({"invite": None, "recovery": {"subject": None}}))


def test_bad_project_ref_is_refused_first():
    assert mod.validate(params({"invite": {"subject": "x"}}, project_ref=REF + "\n")).startswith("project_ref")


def test_wanted_fields_use_the_spec_names():
    wanted = mod.wanted_fields({"confirmation": {"subject": "S", "content": "C"},
                                "password_changed": {"subject": None, "content": None, "enabled": False},
                                "mfa_factor_enrolled": {"enabled": True}, "invite": None})
    assert wanted == {"mailer_subjects_confirmation": "S", "mailer_templates_confirmation_content": "C",
                      "mailer_notifications_password_changed_enabled": False,
                      "mailer_notifications_mfa_factor_enrolled_enabled": True}


def test_every_field_is_in_the_spec_update_body():
    spec = SPECS / "supabase-management-api.json"
    if not spec.exists():
        pytest.skip("the Management API spec is not beside the checkout")
    body = json.loads(spec.read_text())["components"]["schemas"]["UpdateAuthConfigBody"]["properties"]
    fields = [mod.api_field(kind, key) for kind, (_type, _vars, _needs, switch) in mod.MAIL_TYPES.items()
              for key in ["subject", "content"] + (["enabled"] if switch else [])]
    assert len(fields) == 13 * 2 + 7
    assert [field for field in fields if field not in body] == []
    # and nothing the spec has for mail templates is left out
    prefixes = ("mailer_subjects_", "mailer_templates_", "mailer_notifications_")
    assert sorted(key for key in body if key.startswith(prefixes)) == sorted(fields)


def test_text_diffs_are_one_unified_text_pair_per_changed_field():
    before = {"mailer_subjects_confirmation": "Confirm Your Signup",
              "mailer_templates_confirmation_content": "<h2>Old</h2>",
              "mailer_notifications_password_changed_enabled": False}
    changes = {"mailer_subjects_confirmation": "Подтвердите регистрацию",
               "mailer_notifications_password_changed_enabled": True}
    after = dict(before, **changes)
    diffs = mod.text_diffs(before, after, changes)
    assert diffs == [
        {"before_header": "confirmation subject (mailer_subjects_confirmation)",
         "after_header": "confirmation subject (mailer_subjects_confirmation)",
         "before": "Confirm Your Signup\n", "after": "Подтвердите регистрацию\n"},
        {"before_header": "password_changed enabled (mailer_notifications_password_changed_enabled)",
         "after_header": "password_changed enabled (mailer_notifications_password_changed_enabled)",
         "before": "false\n", "after": "true\n"},
    ]


class FakeClient:
    def __init__(self, config):
        self.config = dict(config)
        self.calls = []

    def get_auth_config(self, ref):
        self.calls.append(("GET", ref))
        return dict(self.config)

    def update_auth_config(self, ref, changes):
        self.calls.append(("PATCH", ref, dict(changes)))
        self.config.update(changes)
        return dict(self.config)

    def explain(self, error):
        return error.message


def run(config, templates, check_mode=False, diff=True):
    client = FakeClient(config)
    module = FakeModule(params(templates), check_mode=check_mode, diff=diff)
    with pytest.raises(Exited) as exited:
        mod.AuthMailTemplates(module, client).run()
    return exited.value.result, client


def test_same_input_reads_once_and_writes_nothing():
    config = {"mailer_subjects_confirmation": "Тема", "mailer_templates_confirmation_content": LINK_BODY,
              "smtp_host": "mail.smtp2go.com"}
    result, client = run(config, {"confirmation": {"subject": "Тема", "content": LINK_BODY}})
    assert result["changed"] is False and client.calls == [("GET", REF)]
    assert result["diff"] == [] and result["changed_fields"] == []


def test_a_change_patches_only_the_changed_managed_keys():
    config = {"mailer_subjects_confirmation": "Confirm Your Signup", "mailer_templates_confirmation_content": LINK_BODY,
              "smtp_host": "mail.smtp2go.com"}
    result, client = run(config, {"confirmation": {"subject": "Тема", "content": LINK_BODY}})
    assert client.calls[1] == ("PATCH", REF, {"mailer_subjects_confirmation": "Тема"})
    assert result["changed"] is True and result["templates"] == {
        "confirmation": {"subject": "Тема", "content": LINK_BODY}}


def test_check_mode_predicts_and_writes_nothing():
    config = {"mailer_subjects_recovery": "Reset Your Password"}
    result, client = run(config, {"recovery": {"subject": "Сброс пароля"}}, check_mode=True)
    assert client.calls == [("GET", REF)]
    assert result["changed"] is True and result["templates"] == {"recovery": {"subject": "Сброс пароля"}}
    assert result["diff"][0]["after"] == "Сброс пароля\n"


def test_a_rejected_patch_names_the_mail_templates_and_supabase_smtp_keeps_its_wording():
    from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
    from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import SupabaseManagementClient
    error = ApiError("mailer_subjects_invite: Expected string, received number", status=400)
    templates = SupabaseManagementClient("https://api.supabase.com", "sbp_" + "a" * 40, project_ref=REF,
                                         settings_label="mail templates")
    smtp = SupabaseManagementClient("https://api.supabase.com", "sbp_" + "a" * 40, project_ref=REF)
    assert templates.explain(error).startswith("Supabase rejected the mail templates (HTTP 400): mailer_subjects_invite")
    assert smtp.explain(error).startswith("Supabase rejected the SMTP settings (HTTP 400)")
