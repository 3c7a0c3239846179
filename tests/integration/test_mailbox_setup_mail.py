"""playbooks/setup-mail.yml with mail_provider: mailbox, end to end against the sandbox's real mail
server (Debian's Postfix with Dovecot SASL standing in for smtp.rambler.ru, tests/sandbox/mailbox_server.py)."""

import email.utils
import secrets

from tests.integration.setup_mail import SENDER, SetupMail

MAILBOX_HOST = "smtp.rambler.ru"


class Setup(SetupMail):
    """setup-mail.yml with the mailbox's own server: the mailbox address is the login, no API."""

    provider = "mailbox"

    def new_account(self, verified):
        # A fresh password for the one mailbox every test of this worker shares (its tests run one by one).
        password = "Mb-" + secrets.token_urlsafe(12)
        self.sandbox.add_mailbox(SENDER, password)
        return password

    def provider_vars(self):
        return {
            "mailbox_password": self.api_key,
            # The preflight's probe reaches the sandbox's Postfix for smtp.rambler.ru's ports.
            "mail_probe_connect_to": {
                "465": "127.0.0.1:%d" % self.sandbox.endpoints["mailbox_smtp_implicit_tls_port"],
                "587": "127.0.0.1:%d" % self.sandbox.endpoints["mailbox_smtp_starttls_port"],
            },
        }

    def writes(self, since=0):
        return self.supabase_patches(since)


def setup_for(sandbox, tmp_path, **kwargs):
    setup = Setup(sandbox, tmp_path, **kwargs)
    # The harness writes the relay's probe addresses after the provider's variables: use the mailbox's.
    setup.set_vars(mail_probe_connect_to=setup.provider_vars()["mail_probe_connect_to"])
    return setup


def test_first_run_delivers_through_the_mailbox_server_second_run_changes_nothing(sandbox, tmp_path):
    setup = setup_for(sandbox, tmp_path)
    ref = setup.refs[0]
    proc, log = setup.run()
    assert proc.returncode == 0, proc.stdout[-4000:]

    config = sandbox.supabase_auth_config(ref)
    assert (config["smtp_host"], config["smtp_port"], config["smtp_user"]) == (MAILBOX_HOST, "465", SENDER)
    assert config["smtp_pass"] == setup.api_key
    assert config["smtp_admin_email"] == SENDER
    # The preset's hourly limit (an assumption, said in the output) became Supabase's rate limit.
    assert config["rate_limit_email_sent"] == 20
    assert "Rambler mailbox: Supabase will send at most 20 mails an hour" in proc.stdout
    # The proof mail went through Postfix (it relays to the sandbox inbox) From the mailbox itself.
    mails = sandbox.wait_for_mail(setup.recipient, count=1, timeout=15)
    assert email.utils.parseaddr(mails[0]["headers"]["From"]) == ("KARTO", SENDER)
    # Aligned: no DMARC warning, and no relay offered instead.
    assert "WARNING: mail From" not in proc.stdout

    marker = setup.last_seq()
    again, again_log = setup.run()
    assert again.returncode == 0, again.stdout[-4000:]
    recap = [line for line in again.stdout.splitlines() if "changed=" in line]
    assert recap and all("changed=0" in line for line in recap), recap
    assert setup.writes(since=marker) == []
    for output in (proc.stdout, proc.stderr, log, again.stdout, again.stderr, again_log):
        assert setup.api_key not in output


def test_a_wrong_password_stops_before_supabase_naming_the_fix(sandbox, tmp_path):
    setup = setup_for(sandbox, tmp_path)
    setup.set_vars(mailbox_password="Wrong-" + setup.api_key, mail_rate_limit_per_hour=50)
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert "What failed: auth-rejected" in proc.stdout
    assert "535" in proc.stdout  # Postfix's own reply is quoted
    assert "check mailbox_password" in proc.stdout and "access by mail clients" in proc.stdout
    assert "Supabase was not changed" in proc.stdout
    # The hourly limit asked for is above the preset's: said before the preflight stopped the play.
    assert "mail_rate_limit_per_hour is 50, above the 20 mails an hour" in proc.stdout
    assert setup.supabase_patches() == []
    assert setup.api_key not in proc.stdout + proc.stderr


def test_a_login_other_than_the_sender_is_refused_before_any_request(sandbox, tmp_path):
    setup = setup_for(sandbox, tmp_path)
    setup.set_vars(mail_smtp_username="someone.else@ro.ru")
    marker = setup.last_seq()
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert "mail_smtp_username (someone.else@ro.ru) differs from mail_sender_email" in proc.stdout
    assert [e for e in sandbox.journal() if e["seq"] > marker] == []


def test_a_domain_without_a_preset_needs_the_server_named(sandbox, tmp_path):
    setup = setup_for(sandbox, tmp_path)
    setup.set_vars(mail_sender_email="team@karto-mail.ru")
    marker = setup.last_seq()
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert "No SMTP server is known for karto-mail.ru: set mailbox_smtp_host" in proc.stdout
    assert [e for e in sandbox.journal() if e["seq"] > marker] == []
