"""Issue 11, item 3: Auth mail templates, end to end against the sandbox.

- `mail_templates: ru` through setup-mail.yml: the proof mail arrives with the Russian subject and
  body (rendered by the emulated Auth from the stored template); a re-run is changed=0 with no write.
- supabase_email_templates on its own: check mode writes nothing; --diff prints text diffs;
  a body without the confirmation link is refused with zero requests.
"""

import pathlib

import yaml

from tests.integration.playbook import run_tasks
from tests.integration.setup_mail import SetupMail

ROLE_FILES = pathlib.Path(__file__).resolve().parents[2] / "roles" / "email_templates" / "files"
RU_SUBJECTS = yaml.safe_load((ROLE_FILES / "ru" / "subjects.yml").read_text())
M = "karto.supabase_mail.supabase_email_templates"


class Setup(SetupMail):
    provider = "smtp2go"

    def new_account(self, verified):
        api_key = self.sandbox.add_smtp2go_account()
        self.sandbox.set_smtp2go_auto_verify(0, api_key=api_key)
        return api_key

    def host_vars(self, ref):
        return {"mail_smtp_username": "karto-%s" % ref[:8]}

    def provider_vars(self):
        # No DNS/SMTP preflight: it proves the relay, which other tests cover; here it only costs time.
        return {"smtp2go_api_url": self.sandbox.url("smtp2go_api"), "smtp2go_api_key": self.api_key,
                "mail_templates": "ru", "mail_preflight": False}


def recap_changed(stdout):
    return [line for line in stdout.splitlines() if "changed=" in line]


def test_russian_set_via_setup_mail_proof_mail_has_russian_subject_and_rerun_writes_nothing(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path)
    ref = setup.refs[0]
    proc, _log = setup.run()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

    config = sandbox.supabase_auth_config(ref)
    for kind in ("confirmation", "magic_link", "reauthentication"):
        assert config["mailer_subjects_%s" % kind] == RU_SUBJECTS[kind]
    assert config["mailer_subjects_password_changed_notification"] == RU_SUBJECTS["password_changed"]
    assert config["mailer_templates_recovery_content"] == (ROLE_FILES / "ru" / "recovery.html").read_text()
    assert config["mailer_notifications_password_changed_enabled"] is False  # the set leaves the switches alone

    mails = sandbox.wait_for_mail(setup.recipient)
    mail = mails[-1]
    # The proof is a confirmation (new address) or a magic link (known one): its Russian subject and body.
    kind_of_subject = {RU_SUBJECTS[kind]: kind for kind in ("confirmation", "magic_link")}
    assert mail["subject"] in kind_of_subject, mail["subject"]
    heading = {"confirmation": "Подтвердите адрес почты", "magic_link": "Вход без пароля"}
    assert heading[kind_of_subject[mail["subject"]]] in mail["body"]
    assert "https://%s.supabase.co/auth/v1/verify?token=" % ref in mail["body"]  # {{ .ConfirmationURL }} rendered
    assert "{{" not in mail["body"]

    before = setup.last_seq()
    again, _log = setup.run()
    assert again.returncode == 0, again.stdout[-3000:]
    recap = recap_changed(again.stdout)
    assert recap and all("changed=0" in line for line in recap), recap
    assert setup.supabase_patches(since=before) == []


def raw(text):
    """Go template text handed to Ansible as it is (not read as Jinja)."""
    return "{% raw %}" + text + "{% endraw %}"


def module_task(ref, token, url, templates, name="tpl"):
    return {"name": name, M: {"project_ref": ref, "access_token": token, "api_url": url, "templates": templates},
            "register": name, "ignore_errors": True}


def test_module_check_mode_diff_and_the_refused_template(sandbox):
    ref, token = sandbox.add_supabase_project()
    refused_ref, _same_token = sandbox.add_supabase_project(token=token)
    url = sandbox.url("supabase_api")
    subject = "Подтвердите регистрацию"
    body = '<p><a href="{{ .ConfirmationURL }}">Подтвердить</a></p>\n'
    before = sandbox.journal()[-1]["seq"]

    # One play (Ansible's start-up is the cost): a check-mode --diff run on one project, and a body
    # without the link on another, which must be refused before any request.
    refused_task = module_task(refused_ref, token, url, {"confirmation": {"subject": subject,
                                                                          "content": "<p>Добро пожаловать!</p>"}},
                               name="refused")
    refused_task["check_mode"] = False  # a real run: the refusal is not check mode's doing
    run = run_tasks([
        module_task(ref, token, url, {"confirmation": {"subject": subject, "content": raw(body)}}, name="checked"),
        refused_task,
    ], check=True, diff=True)
    assert run.returncode == 0, run.stdout[-3000:]

    # Check mode + diff: text diffs of the subject and body, nothing written.
    result = run["checked"]
    assert result["changed"] is True and not result.get("failed")
    assert result["changed_fields"] == ["mailer_subjects_confirmation", "mailer_templates_confirmation_content"]
    assert "--- before: confirmation subject (mailer_subjects_confirmation)" in run.stdout
    assert "-Confirm Your Signup\n+Подтвердите регистрацию" in run.stdout
    assert '+<p><a href="{{ .ConfirmationURL }}">Подтвердить</a></p>' in run.stdout
    assert "--- before: confirmation content (mailer_templates_confirmation_content)" in run.stdout
    assert '"before"' not in run.stdout  # text diffs, not a JSON dict
    writes = [entry for entry in sandbox.journal(service="supabase_api")
              if entry["seq"] > before and entry["method"] != "GET"]
    assert writes == []
    assert sandbox.supabase_auth_config(ref)["mailer_subjects_confirmation"] == "Confirm Your Signup"

    # A body without the link: refused before any request, naming the template and the fix.
    message = run["refused"]["msg"]
    assert run["refused"]["failed"] is True
    assert message.startswith("templates.confirmation.content drops the confirmation link")
    assert "{{ .ConfirmationURL }}" in message
    assert [entry for entry in sandbox.journal(path_contains=refused_ref) if entry["seq"] > before] == []
