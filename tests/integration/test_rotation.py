"""playbooks/rotate-mail-credentials.yml against the sandbox: a fault at each step leaves Supabase
sending mail and the credential in use unrevoked, a rerun finishes, check mode writes nothing, and
setup-mail.yml then recognises the new credential (changed=0, zero writes).

SMTP2GO and the mailbox are driven here, every other provider with rotation in its own
`test_rotation_<provider>.py` (shared helpers in `rotation.py`); the last test checks that every
registered provider whose role has the rotation entry points (`rotate_issue`, `rotate_revoke` in its
meta/argument_specs.yml) has one."""

import os
import secrets

import pytest

from tests.integration.playbook import run_playbook_file
from tests.integration.rotation import (ROTATE, RotationDriver, _relay, recap_changed_zero, rotate, rotating_providers,
                                        setup_mail, supabase_sends, writes)
from tests.integration.test_mailbox_setup_mail import setup_for as mailbox_setup_for
from tests.integration.test_setup_mail_playbook import Setup as Smtp2goSetup

# Long: `make test` runs it first, `make integration-heavy` alone (tests/conftest.py).
pytestmark = pytest.mark.heavy


# --- SMTP2GO: a second SMTP user carries the new password ------------------------------------------

class Smtp2go(RotationDriver):
    provider = "smtp2go"

    def __init__(self, sandbox, tmp_path):
        setup = Smtp2goSetup(sandbox, tmp_path, projects=1)
        old = "karto-%s" % setup.refs[0][:8]
        super().__init__(sandbox, setup, old, old + "-2")

    def credentials(self):
        """username -> password of the account's SMTP users."""
        return {user["username"]: user["email_password"] for user in self.setup.smtp_users()}


def test_smtp2go_rotation_survives_a_fault_at_every_step_and_setup_mail_then_changes_nothing(sandbox, tmp_path):
    driver = Smtp2go(sandbox, tmp_path)
    setup = driver.setup
    old_password = driver.set_up()
    assert driver.in_use() == (driver.old, old_password)
    passwords = [old_password]

    # Check mode: nothing written anywhere, not even the new password's file.
    driver.assert_check_mode_writes_nothing()
    assert list(driver.credentials()) == [driver.old]

    # issue: SMTP2GO answers the create with a 5xx. The new password was stored before it.
    # At -vvv: this run generates, stores and sends the new password (the secret check at the end).
    issue = driver.faulted_run("issue", dict(service="smtp2go_api", path_contains="/users/smtp/add",
                                             action="status", status=500), args=("-vvv",))
    assert 'stopped at "Create the other SMTP user with the new password"' in issue.stdout
    pending = driver.stored(driver.new)
    assert pending and pending != old_password and list(driver.credentials()) == [driver.old]
    passwords.append(pending)

    # check: the create's answer is lost (recovered by re-reading), then the relay refuses the new login.
    check_fault = driver.faulted_run(
        "check",
        dict(service="smtp2go_api", path_contains="/users/smtp/add", action="drop_answer"),
        dict(service="smtp_relay", method="SMTP", path_contains="AUTH", action="status", status=535,
             body="5.7.8 Authentication failed"))
    assert "Authentication failed" in check_fault.stdout
    # The pending password was reused, not a new one issued, and one user was made of the lost create.
    assert driver.credentials() == {driver.old: old_password, driver.new: pending}

    # apply: Supabase's PATCH fails; Supabase keeps the old user.
    driver.apply_fault((driver.old, old_password))

    # verify: the proof mail is refused at DATA; Supabase is put back on the old user.
    driver.verify_fault((driver.old, old_password), pending)

    # revoke: removing the old user fails after the new one is proven; Supabase sends with the new one.
    revoke = driver.faulted_run("revoke", dict(service="smtp2go_api", path_contains="/users/smtp/remove",
                                               action="status", status=500))
    assert 'revoking SMTP2GO SMTP user %s stopped at "Remove the old SMTP user"' % driver.old in revoke.stdout
    assert driver.in_use() == (driver.new, pending)
    assert driver.credentials() == {driver.old: old_password, driver.new: pending}
    assert driver.record() == {"username": driver.new, "revoke": driver.old}

    # The rerun finishes: the old user and its stored password are gone, nothing else was issued.
    # At -vvv with --diff, so that the secret check below covers the most verbose output.
    finish = rotate(setup, "--diff", "-vvv")
    assert finish.returncode == 0, finish.stdout[-3000:]
    assert driver.credentials() == {driver.new: pending}
    assert driver.stored(driver.old) is None and driver.stored(driver.new) == pending
    assert driver.record() == {"username": driver.new, "revoke": ""}
    adds = [e for e in sandbox.journal(service="smtp2go_api", path_contains="/users/smtp/add")
            if driver.old in str(e["json"])]
    assert len(adds) == 3  # setup's user, then the 5xx and the lost answer: the one new user
    driver.assert_supabase_sends_unrevoked("finished")

    # setup-mail.yml knows the new user: no change, no write, no proof mail.
    driver.assert_setup_mail_changes_nothing()

    for secret in passwords + [setup.token, setup.api_key]:
        assert all(secret not in output for output in setup.outputs)


# --- mailbox: the user changed the mailbox password and gives the new one --------------------------

def test_mailbox_rotation_applies_the_new_mailbox_password_and_setup_mail_then_changes_nothing(sandbox, tmp_path):
    setup = mailbox_setup_for(sandbox, tmp_path)
    setup.outputs = []
    ref, old_password = setup.refs[0], setup.api_key
    first = setup_mail(setup)
    assert first.returncode == 0, first.stdout[-3000:]

    # The user changes the mailbox password (the old one stops working there) and gives the new one.
    new_password = "Mb-" + secrets.token_urlsafe(12)
    sandbox.add_mailbox(setup.sender, new_password)
    setup.set_vars(mailbox_password=new_password)

    marker = setup.last_seq()
    rotated = rotate(setup)
    assert rotated.returncode == 0, rotated.stdout[-3000:]
    # One PATCH (nothing to put back), the new password in Supabase, the rotation's proof mail delivered.
    assert [e["json"]["smtp_pass"] for e in setup.supabase_patches(since=marker)] == [new_password]
    assert sandbox.supabase_auth_config(ref)["smtp_pass"] == new_password
    assert len(sandbox.wait_for_mail(setup.recipient, count=2, timeout=15)) == 2  # setup's proof, the rotation's
    assert "the old one stopped working when you changed it, so there is nothing to revoke" in rotated.stdout
    supabase_sends(sandbox, ref, "mailbox")

    marker = setup.last_seq()
    after = setup_mail(setup)
    assert after.returncode == 0 and recap_changed_zero(after), after.stdout[-2000:]
    assert writes(sandbox, marker) == []
    for secret in (old_password, new_password, setup.token):
        assert all(secret not in output for output in setup.outputs)


def drivers():
    """The providers with a rotation test: the two here and one per test_rotation_<provider>.py."""
    here = os.path.dirname(os.path.abspath(__file__))
    own = [name[len("test_rotation_"):-3] for name in os.listdir(here)
           if name.startswith("test_rotation_") and name.endswith(".py")]
    return sorted(["smtp2go", "mailbox"] + own)


def test_every_provider_with_rotation_is_driven_here_and_the_playbook_refuses_the_others(sandbox, tmp_path):
    rotating = rotating_providers()
    assert set(rotating) >= {"smtp2go", "mailbox"}
    assert drivers() == rotating, "add tests/integration/test_rotation_<provider>.py for %s" % sorted(
        set(rotating) - set(drivers()))
    others = sorted(set(_relay.registered_profiles()) - set(rotating))
    if others:
        setup = Smtp2goSetup(sandbox, tmp_path, projects=1)
        setup.set_vars(mail_provider=others[0])
        marker = setup.last_seq()
        proc, _log = run_playbook_file(ROTATE, ["-i", str(setup.inventory), "-e", "@" + str(setup.vars_file)])
        assert proc.returncode != 0
        assert "one of %s (the providers with rotation)" % ", ".join(rotating) in proc.stdout
        assert writes(sandbox, marker) == []
