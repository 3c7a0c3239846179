"""playbooks/setup-mail.yml end to end against the sandbox: the product's main job."""

import email.utils
import os

import pytest
import requests

from tests.integration.setup_mail import SENDER, SetupMail

WRITE_PATH_PARTS = ("/add", "/edit", "/remove", "/verify")


class Setup(SetupMail):
    """setup-mail.yml with SMTP2GO: one SMTP user per project, named after its ref."""

    provider = "smtp2go"

    def __init__(self, sandbox, tmp_path, projects=2, verified=True):
        super().__init__(sandbox, tmp_path, projects=projects, verified=verified)

    def new_account(self, verified):
        api_key = self.sandbox.add_smtp2go_account()
        if verified:
            self.sandbox.set_smtp2go_auto_verify(0, api_key=api_key)
        return api_key

    def host_vars(self, ref):
        return {"mail_smtp_username": "karto-%s" % ref[:8]}

    def provider_vars(self):
        return {"smtp2go_api_url": self.sandbox.url("smtp2go_api"), "smtp2go_api_key": self.api_key}

    def provider_writes(self):
        writes = self.supabase_patches()
        for entry in self.sandbox.journal(service="smtp2go_api"):
            body = str(entry.get("json"))
            if entry["path"].endswith(WRITE_PATH_PARTS) and (
                    self.api_key in body or any(ref[:8] in body for ref in self.refs)):
                writes.append(entry)
        return writes

    def smtp_users(self):
        return self.sandbox.smtp2go_account(self.api_key)["users"]

    def stored_password(self, ref):
        username = "karto-%s" % ref[:8]
        return (self.secrets_dir / ("smtp2go-%s.password" % username)).read_text().strip()


def secrets_of(setup):
    values = [setup.token, setup.api_key]
    values += [user["email_password"] for user in setup.smtp_users()]
    return [value for value in values if value]


def test_first_run_delivers_from_the_mailbox_second_run_changes_nothing(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path)
    proc, log = setup.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr

    mails = sandbox.inbox(to=setup.recipient)
    assert len(mails) == 2  # one proof mail per project
    for mail in mails:
        # gomail quotes the display name: "KARTO" <karto.help@ro.ru>
        assert email.utils.parseaddr(mail["headers"]["From"]) == ("KARTO", SENDER)
    users = setup.smtp_users()
    assert sorted(u["username"] for u in users) == sorted("karto-%s" % ref[:8] for ref in setup.refs)
    for ref in setup.refs:
        config = sandbox.supabase_auth_config(ref)
        assert (config["smtp_host"], config["smtp_port"]) == ("mail.smtp2go.com", "465")
        assert config["smtp_pass"] == setup.stored_password(ref)
    # ro.ru publishes p=reject here: the DMARC warning offers the aligned path first, by its name.
    assert "WARNING: mail From %s through SMTP2GO: will be rejected" % SENDER in proc.stdout
    assert ("Set mail_provider: mailbox to send through the mailbox's own SMTP server (Rambler: smtp.rambler.ru "
            "on port 465, implicit TLS)") in proc.stdout

    writes_before = len(setup.provider_writes())
    again, again_log = setup.run()
    assert again.returncode == 0, again.stdout
    recap = [line for line in again.stdout.splitlines() if "changed=" in line]
    assert recap and all("changed=0" in line for line in recap), recap
    assert len(setup.provider_writes()) == writes_before
    # A no-op run spends none of Supabase's mail budget: nothing changed, and these settings were proven.
    assert len(sandbox.inbox(to=setup.recipient)) == 2
    assert again.stdout.count("No proof mail: these settings were proven by an earlier run") == 2
    # mail_verify: always proves them again, and still changes nothing.
    forced, _log = setup.run("-e", "mail_verify=always")
    assert forced.returncode == 0, forced.stdout[-3000:]
    assert all("changed=0" in line for line in forced.stdout.splitlines() if "changed=" in line)
    assert len(sandbox.inbox(to=setup.recipient)) == 4
    for secret in secrets_of(setup):
        assert secret not in proc.stdout + proc.stderr + log + again.stdout + again_log


def test_failed_supabase_patch_then_rerun_keeps_one_user_and_the_stored_password(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, projects=1)
    ref = setup.refs[0]
    sandbox.inject_fault(service="supabase_api", method="PATCH", path_contains=ref, action="status",
                         status=500, body={"message": "Failed to update project's auth config"})
    failed, _log = setup.run()
    assert failed.returncode != 0
    assert "Failed to update project's auth config" in failed.stdout
    assert len(setup.smtp_users()) == 1
    stored = setup.stored_password(ref)

    rerun, _log = setup.run()
    assert rerun.returncode == 0, rerun.stdout
    users = setup.smtp_users()
    assert len(users) == 1 and users[0]["email_password"] == stored
    assert sandbox.supabase_auth_config(ref)["smtp_pass"] == stored
    assert len(sandbox.inbox(to=setup.recipient)) == 1


def test_unverified_sender_stops_the_play_before_any_supabase_patch(sandbox, tmp_path):
    # SMTP2GO refuses an unverified sender only at the end of DATA, which the preflight probe (no
    # real send) cannot see; the relay's API can, and the play stops on what it says.
    setup = Setup(sandbox, tmp_path, projects=1, verified=False)
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert "SMTP2GO has not verified the sender %s" % SENDER in proc.stdout
    assert "click the verification link" in proc.stdout
    assert "mail_allow_unverified_sender" in proc.stdout
    assert "Supabase was not changed" in proc.stdout
    assert setup.sandbox.journal(service="supabase_api", method="PATCH", path_contains=setup.refs[0]) == []


def test_unverified_sender_refused_at_mail_from_fails_in_preflight_with_the_relay_text(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, projects=1, verified=False)
    sandbox.set_smtp_relay_knobs(sender_check="mail_from")
    try:
        proc, _log = setup.run()
    finally:
        sandbox.set_smtp_relay_knobs(sender_check=None)
    assert proc.returncode != 0
    assert "550" in proc.stdout and "sender domain not verified" in proc.stdout
    assert "click the verification link" in proc.stdout
    assert "What failed: sender-rejected" in proc.stdout
    assert "Supabase was not changed" in proc.stdout
    assert setup.sandbox.journal(service="supabase_api", method="PATCH", path_contains=setup.refs[0]) == []


def test_unverified_sender_allowed_without_preflight_fails_at_the_proof_mail(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, projects=1, verified=False)
    proc, _log = setup.run("-e", "mail_preflight=false", "-e", "mail_allow_unverified_sender=true")
    assert proc.returncode != 0
    assert "550" in proc.stdout and "sender domain not verified" in proc.stdout
    assert "click the verification link" in proc.stdout
    assert "What failed: sender-rejected" in proc.stdout
    assert sandbox.supabase_auth_config(setup.refs[0])["smtp_host"] == "mail.smtp2go.com"
    assert sandbox.inbox(to=setup.recipient) == []


def test_wrong_smtp_password_fails_in_preflight_before_any_patch(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, projects=1)
    ref = setup.refs[0]
    assert setup.run()[0].returncode == 0
    # Someone reset the SMTP user's password in the SMTP2GO console; the stored one is now wrong.
    username = "karto-%s" % ref[:8]
    answer = requests.patch(sandbox.url("smtp2go_api") + "/users/smtp/edit", timeout=10,
                            headers={"X-Smtp2go-Api-Key": setup.api_key},
                            json={"username": username, "email_password": "Reset-in-console-77a1c9e2"})
    assert answer.status_code == 200
    patches_before = len(sandbox.journal(service="supabase_api", method="PATCH", path_contains=ref))
    # Make Supabase differ too, so a PATCH would be due if the play got that far.
    setup.set_vars(mail_sender_name="KARTO Support")
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert "What failed: auth-rejected" in proc.stdout and "535" in proc.stdout
    assert "Supabase was not changed" in proc.stdout
    assert len(sandbox.journal(service="supabase_api", method="PATCH", path_contains=ref)) == patches_before


def test_no_secret_at_vvvv(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, projects=1)
    proc, log = setup.run("-vvvv")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert log
    for secret in secrets_of(setup):
        assert secret not in proc.stdout + proc.stderr + log


def test_check_mode_on_a_fresh_setup_writes_nothing(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, projects=1)
    proc, _log = setup.run("--check", "--diff")
    assert proc.returncode == 0, proc.stdout
    assert setup.provider_writes() == []
    assert setup.smtp_users() == []
    assert not os.path.exists(setup.secrets_dir) or not os.listdir(setup.secrets_dir)


@pytest.mark.parametrize("override, message", [
    ({"mail_provider": "pigeon"}, "Set mail_provider to one of"),
    ({"mail_sender_email": "not-an-address"}, "mail_sender_email must be a plain ASCII address"),
    ({"supabase_access_token": ""}, "supabase_access_token must be a Supabase access token"),
])
def test_bad_input_fails_before_any_write(sandbox, tmp_path, override, message):
    setup = Setup(sandbox, tmp_path, projects=1)
    setup.set_vars(**override)
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert message in proc.stdout
    assert setup.provider_writes() == []


def test_auth_rejected_advice_is_one_that_works(sandbox, tmp_path):
    """Issue 12: the advice for a stored password the relay no longer takes must be one that works:
    remove the stored file, and the next run sets a new password on the relay and in Supabase."""
    setup = Setup(sandbox, tmp_path, projects=1)
    ref = setup.refs[0]
    assert setup.run()[0].returncode == 0
    username = "karto-%s" % ref[:8]
    answer = requests.patch(sandbox.url("smtp2go_api") + "/users/smtp/edit", timeout=10,
                            headers={"X-Smtp2go-Api-Key": setup.api_key},
                            json={"username": username, "email_password": "Changed-in-console-5b2e9d41"})
    assert answer.status_code == 200
    proc, _log = setup.run()
    assert proc.returncode != 0 and "What failed: auth-rejected" in proc.stdout
    assert "password file" in proc.stdout and "mail_secrets_dir" in proc.stdout
    # The advice names the step that works, not rotate-mail-credentials.yml (whose probe of the old
    # credential would fail the same way); the task list mentions the role's rotate_state.yml.
    assert "rotate-mail-credentials" not in proc.stdout
    old = setup.stored_password(ref)
    (setup.secrets_dir / ("smtp2go-%s.password" % username)).unlink()
    proc, _log = setup.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    new = setup.stored_password(ref)
    assert new != old
    # The sandbox's control API shows what Supabase and the relay really hold.
    assert sandbox.supabase_auth_config(ref)["smtp_pass"] == new
    users = setup.smtp_users()
    user = users[username] if isinstance(users, dict) else next(u for u in users if u["username"] == username)
    assert user["email_password"] == new


def test_the_optional_inputs_may_be_left_out(sandbox, tmp_path):
    """As in the README's inventory: only the required inputs; the proof mail goes to the sender."""
    setup = Setup(sandbox, tmp_path, projects=1)
    setup.drop_vars("mail_test_recipient", "mail_sender_name", "mail_max_frequency", "mail_provider")
    proc, _log = setup.run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    mails = [mail for mail in sandbox.inbox(to=SENDER)
             if mail["auth_user"] == "karto-%s" % setup.refs[0][:8]]
    assert len(mails) == 1 and email.utils.parseaddr(mails[0]["headers"]["From"])[1] == SENDER
