"""Emulated Auth renders the subject and body stored through the Management API, as GoTrue's
templatemailer does (tests/sandbox/README.md, Supabase Auth: "Templates")."""

import re

import pytest

from tests.sandbox.supabase_auth import render_template
from tests.sandbox.tests.test_sandbox_mail_flow import Project, Relay, new_address


@pytest.mark.parametrize("text, expected", [
    ("{{ .Token }} is your code", "123456 is your code"),
    ("<a href=\"{{.ConfirmationURL}}\">go</a>", "<a href=\"https://x/verify?token=h&type=signup\">go</a>"),
    ("Hi {{ .Data.name }}!", "Hi Ann!"),
    ("Hi {{ .Data.missing }}{{ .NoSuchKey }}!", "Hi !"),  # a missing map key prints nothing
    ("a  {{- $.Token -}}  b", "a123456b"),
    ("{{ if .Token }}x{{ end }}", "{{ if .Token }}x{{ end }}"),  # not emulated: left as written
])
def test_render_template(text, expected):
    data = {"Token": "123456", "ConfirmationURL": "https://x/verify?token=h&type=signup", "Data": {"name": "Ann"}}
    assert render_template(text, data) == expected


def test_a_stored_russian_template_is_what_the_mail_carries(sandbox):
    relay = Relay(sandbox)
    project = Project(sandbox, *sandbox.add_supabase_project())
    project.configure(relay, mailer_subjects_confirmation="Подтвердите регистрацию ({{ .Token }})",
                      mailer_templates_confirmation_content=(
                          "<p>Здравствуйте, {{ .Email }}!</p><p><a href=\"{{ .ConfirmationURL }}\">Подтвердить</a></p>"))
    address = new_address()
    response = project.auth("/signup", {"email": address, "password": "Pw-0123456789"})
    assert response.status_code == 200, response.text
    mail = sandbox.wait_for_mail(address)[-1]
    assert re.fullmatch(r"Подтвердите регистрацию \(\d{6}\)", mail["subject"]), mail["subject"]
    assert f"<p>Здравствуйте, {address}!</p>" in mail["body"]
    assert f"https://{project.ref}.supabase.co/auth/v1/verify?token=" in mail["body"] and "{{" not in mail["body"]
    stored = project.sandbox.supabase_auth_config(project.ref)
    assert stored["mailer_subjects_confirmation"] == "Подтвердите регистрацию ({{ .Token }})"
