"""playbooks/rotate-mail-credentials.yml with Mailgun against the sandbox: the new password goes on the
other SMTP credential of a pair on the sending domain (`<name>@<domain>`, `<name>-2@<domain>`); a fault
at each step leaves Supabase sending mail and the credential in use undeleted, a rerun finishes with
the stored new password, check mode writes nothing, and setup-mail.yml then recognises the new
credential (changed=0, zero writes, no mail). teardown-mail.yml with mail_teardown_relay removes both
credentials of the pair, their stored passwords and the rotation record.

Shared helpers: `rotation.py`; the SMTP2GO test in `test_rotation.py` is the model."""


import pytest

from tests.integration.rotation import RotationDriver, rotate, setup_mail, teardown_relay
from tests.integration.test_mailgun_setup_mail import Setup

# Long: `make test` runs it first, `make integration-heavy` alone (tests/conftest.py).
pytestmark = pytest.mark.heavy

# Mailgun's relay refusing a login (the emulator's own text, tests/sandbox/mailgun_api.py).
AUTH_REFUSED = "5.7.0 Mailgun is not loving your login or password"


class Mailgun(RotationDriver):
    """One project on its own Mailgun account and sending domain, and what the test reads back."""

    provider = "mailgun"

    def __init__(self, sandbox, tmp_path):
        setup = Setup(sandbox, tmp_path)
        ref = setup.refs[0]
        super().__init__(sandbox, setup, setup.login(ref), "supabase-%s-2@%s" % (ref, setup.domain))

    def credentials(self):
        """login -> password, as Mailgun holds them (the domain's system credential left out)."""
        state = self.sandbox.control("GET", "/mailgun/accounts/%s" % self.setup.api_key)
        domain = next(d for d in state["domains"] if d["name"] == self.setup.domain)
        return {c["login"]: c["password"] for c in domain["credentials"] if not c["system"]}

    def creates(self):
        """Every credential create on the domain: (status, fault action, login; None when a fault answered
        before the emulator read the form)."""
        return [(e["status"], e["fault_action"], (e["json"] or {}).get("login")) for e in self.sandbox.journal(
            service="mailgun_api", method="POST", path_contains="/v3/domains/%s/credentials" % self.setup.domain)]


def test_mailgun_rotation_survives_a_fault_at_every_step_and_setup_mail_then_changes_nothing(sandbox, tmp_path):
    driver = Mailgun(sandbox, tmp_path)
    setup = driver.setup
    old_password = driver.set_up()
    assert driver.in_use() == (driver.old, old_password)
    passwords = [old_password]

    # Check mode: nothing written anywhere, not even the new password's file.
    driver.assert_check_mode_writes_nothing()
    assert driver.credentials() == {driver.old: old_password}

    # issue: Mailgun answers the create with a 5xx (not retried: a create is no idempotent request).
    # The new password was stored before it.
    issue = driver.faulted_run("issue", dict(service="mailgun_api", method="POST", path_contains=setup.domain,
                                             body_contains=driver.new, action="status", status=500))
    assert 'stopped at "Create the other SMTP credential with the new password"' in issue.stdout
    pending = driver.stored(driver.new)
    assert pending and pending != old_password and driver.credentials() == {driver.old: old_password}
    assert driver.record() is None
    passwords.append(pending)

    # check: the create's answer is lost (the module re-reads and finds it), then the relay refuses the new login.
    check_fault = driver.faulted_run(
        "check",
        dict(service="mailgun_api", method="POST", path_contains=setup.domain, body_contains=driver.new,
             action="drop_answer"),
        dict(service="smtp_relay", method="SMTP", path_contains="AUTH", action="status", status=535,
             body=AUTH_REFUSED))
    assert AUTH_REFUSED in check_fault.stdout
    # The pending password was reused, not a new one issued, and one credential was made of the lost create.
    assert driver.credentials() == {driver.old: old_password, driver.new: pending}
    assert driver.in_use() == (driver.old, old_password)

    # apply: Supabase's PATCH fails; Supabase keeps the old credential. At -vvv with --diff: this run reads the
    # pending password back and hands it on, so that the secret check below covers those tasks at their most verbose.
    driver.apply_fault((driver.old, old_password), args=("--diff", "-vvv"))

    # verify: the proof mail is refused at DATA; Supabase is put back on the old credential.
    driver.verify_fault((driver.old, old_password), pending)

    # revoke: deleting the old credential fails after the new one is proven; Supabase sends with the new one.
    revoke = driver.faulted_run("revoke", dict(service="mailgun_api", method="DELETE",
                                               path_contains="/credentials/" + driver.old, action="status", status=500))
    assert ('revoking Mailgun SMTP credential %s stopped at "Delete the old SMTP credential"' % driver.old
            in revoke.stdout)
    assert driver.in_use() == (driver.new, pending)
    assert driver.credentials() == {driver.old: old_password, driver.new: pending}
    assert driver.record() == {"login": driver.new, "revoke": driver.old}
    assert driver.stored(driver.old) == old_password

    # The rerun finishes: the old credential and its stored password are gone, nothing else was issued.
    # At -vvv with --diff, so that the secret check below covers the most verbose output.
    finish = rotate(setup, "--diff", "-vvv")
    assert finish.returncode == 0, finish.stdout[-3000:]
    assert driver.credentials() == {driver.new: pending}
    assert driver.stored(driver.old) is None and driver.stored(driver.new) == pending
    assert driver.record() == {"login": driver.new, "revoke": ""}
    # The 5xx, then the lost answer (which landed): one create made the one new credential.
    assert driver.creates() == [(200, None, driver.old), (500, "status", None), (200, "drop_answer", driver.new)]
    driver.assert_supabase_sends_unrevoked("finished")

    # setup-mail.yml knows the new credential: no change, no write, no proof mail.
    driver.assert_setup_mail_changes_nothing()

    for secret in passwords + [setup.token, setup.api_key]:
        assert all(secret not in output for output in setup.outputs)


def test_mailgun_rotation_goes_back_to_the_first_credential_and_teardown_removes_both_of_the_pair(sandbox, tmp_path):
    driver = Mailgun(sandbox, tmp_path)
    setup = driver.setup
    assert setup_mail(setup).returncode == 0
    passwords = [driver.stored(driver.old)]

    # First rotation: to <name>-2, the record names it.
    first = rotate(setup)
    assert first.returncode == 0, first.stdout[-3000:]
    second_password = driver.stored(driver.new)
    passwords.append(second_password)
    assert driver.credentials() == {driver.new: second_password}
    assert driver.record() == {"login": driver.new, "revoke": ""}

    # Second rotation: back to <name>, with a fresh password; the record goes, as before any rotation.
    back = rotate(setup)
    assert back.returncode == 0, back.stdout[-3000:]
    third_password = driver.stored(driver.old)
    passwords.append(third_password)
    assert third_password not in passwords[:2]
    assert driver.credentials() == {driver.old: third_password}
    assert driver.in_use() == (driver.old, third_password)
    assert driver.stored(driver.new) is None and driver.record() is None

    # Third rotation stops at the revoke: both credentials of the pair, both passwords and the record are left.
    sandbox.inject_fault(service="mailgun_api", method="DELETE", path_contains="/credentials/" + driver.old,
                         action="status", status=500)
    stopped = rotate(setup)
    assert stopped.returncode != 0 and sandbox.faults() == []
    fourth_password = driver.stored(driver.new)
    passwords.append(fourth_password)
    assert driver.credentials() == {driver.old: third_password, driver.new: fourth_password}
    assert driver.record() == {"login": driver.new, "revoke": driver.old}

    # Check mode names both credentials and removes nothing.
    check = driver.assert_writes_nothing(teardown_relay, "--check", "--diff")
    assert driver.old in check.stdout and driver.new in check.stdout

    marker = setup.last_seq()
    removed = teardown_relay(setup)
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert list(driver.credentials()) == []
    deletes = [e["path"].rsplit("/", 1)[1] for e in sandbox.journal(service="mailgun_api", method="DELETE")
               if e["seq"] > marker]
    assert sorted(deletes) == sorted([driver.old, driver.new])
    # No password of either credential, no record; only the proof fingerprints' folder may be left.
    left = [path.name for path in setup.secrets_dir.iterdir() if path.is_file()]
    assert left == [], left
    assert not driver.record_path().exists()
    assert sandbox.supabase_auth_config(driver.ref)["smtp_host"] in (None, "")

    for secret in passwords + [setup.token, setup.api_key]:
        assert all(secret not in output for output in setup.outputs)
