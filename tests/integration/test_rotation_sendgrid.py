"""playbooks/rotate-mail-credentials.yml with SendGrid against the sandbox.

A SendGrid key's value cannot be changed and is shown only in the answer to its creation, so the new
SMTP password is a second API key beside the one in use, the other one of a pair, `supabase-<ref>`
and `supabase-<ref>-2`; the record `sendgrid-<name>.rotation` in the secrets folder names the key in
use. A fault at each step (issue, probe, apply, proof mail, revoke) leaves Supabase sending with a
live key and the key in use undeleted; the new key is stored at once and reused by the next run,
never created twice; a rerun finishes; setup-mail.yml then changes nothing. Teardown deletes both
keys of the pair, their stored values and the record."""


import pytest
import requests

from tests.integration.rotation import (RotationDriver, files_of, recap_changed_zero, rotate, setup_mail, supabase_sends,
                                        teardown_relay, writes)
from tests.integration.test_sendgrid_setup_mail import Setup

# Long: `make test` runs it first, `make integration-heavy` alone (tests/conftest.py).
pytestmark = pytest.mark.heavy

KEYS = "/v3/api_keys"


class Sendgrid(RotationDriver):
    """One project on its own SendGrid account, and what the emulator and the secrets folder hold for it."""

    provider = "sendgrid"
    secret_suffix = "api_key"

    def __init__(self, sandbox, tmp_path):
        setup = Setup(sandbox, tmp_path)
        old = "supabase-%s" % setup.refs[0]
        super().__init__(sandbox, setup, old, old + "-2")

    def keys(self):
        """name -> value of the pair's keys at SendGrid."""
        return {key["name"]: key["api_key"] for key in self.setup.account()["keys"] if key["name"] in (self.old, self.new)}

    def key_id(self, name):
        return next(key["api_key_id"] for key in self.setup.account()["keys"] if key["name"] == name)

    def creates(self, name, since=0):
        """The POSTs that create a key of that name (the name is in the body), with their status."""
        return [(entry["status"], entry["fault_action"]) for entry in self.sandbox.journal(service="sendgrid_api", method="POST")
                if entry["seq"] > since and entry["path"] == KEYS and (entry["json"] or {}).get("name") == name]

    def assert_supabase_sends_unrevoked(self, tag):
        """Supabase logs in with a key that is live at SendGrid, and a mail goes out."""
        user, password = self.in_use()
        assert user == "apikey" and password in self.keys().values()
        supabase_sends(self.sandbox, self.ref, tag)


def test_sendgrid_rotation_survives_a_fault_at_every_step_and_setup_mail_then_changes_nothing(sandbox, tmp_path):
    driver = Sendgrid(sandbox, tmp_path)
    setup = driver.setup
    old_key = driver.set_up()
    assert driver.in_use() == ("apikey", old_key) and driver.keys() == {driver.old: old_key}
    secrets = [old_key, setup.token, setup.api_key]

    # Check mode: nothing written anywhere, not even the secrets folder; no key created.
    driver.assert_check_mode_writes_nothing()
    assert driver.keys() == {driver.old: old_key}

    # A key of the new name whose value is stored nowhere (lost): it cannot be used, so it is deleted
    # (never the key in use) and created again.
    orphan = requests.post(sandbox.url("sendgrid_api") + KEYS, timeout=10, json={"name": driver.new, "scopes": ["mail.send"]},
                           headers={"Authorization": "Bearer " + setup.api_key}).json()
    secrets.append(orphan["api_key"])
    marker = setup.last_seq()

    # issue: SendGrid refuses the create with a 5xx, after the orphan was deleted.
    issue = driver.faulted_run("issue", dict(service="sendgrid_api", method="POST", path_contains=KEYS,
                                             body_contains=driver.new, action="status", status=500,
                                             body={"errors": [{"field": None, "message": "Injected create failure"}]}))
    assert 'stopped at "Stop when SendGrid refused the new SMTP key"' in issue.stdout
    assert "Injected create failure" in issue.stdout
    assert [e["path"] for e in sandbox.journal(service="sendgrid_api", method="DELETE") if e["seq"] > marker] == [
        "%s/%s" % (KEYS, orphan["api_key_id"])]
    assert driver.keys() == {driver.old: old_key} and driver.stored(driver.new) is None
    assert driver.creates(driver.new, since=marker) == [(500, "status")]

    # check: the create's answer is lost (the module deletes what it made and creates it once more,
    # storing that value), then the relay refuses the new login. At -vvv, the run that creates the key,
    # so that the secret check below covers the most verbose output of the create.
    marker = setup.last_seq()
    check_fault = driver.faulted_run(
        "check",
        dict(service="sendgrid_api", method="POST", path_contains=KEYS, body_contains=driver.new, action="drop_answer"),
        dict(service="smtp_relay", method="SMTP", path_contains="AUTH", action="status", status=535,
             body="5.7.8 Authentication failed"), args=("--diff", "-vvv"))
    assert "Authentication failed" in check_fault.stdout
    pending = driver.stored(driver.new)
    assert pending and pending != old_key
    secrets.append(pending)
    # One key was left of the lost create, the one whose value is stored.
    assert driver.keys() == {driver.old: old_key, driver.new: pending}
    assert driver.creates(driver.new, since=marker) == [(201, "drop_answer"), (201, None)]

    # apply: Supabase's PATCH fails; Supabase keeps the old key. The pending key is reused.
    reused_since = setup.last_seq()
    driver.apply_fault(("apikey", old_key))

    # verify: the proof mail is refused at DATA; Supabase is put back on the old key.
    driver.verify_fault(("apikey", old_key), pending)

    # revoke: deleting the old key fails after the new one is proven; Supabase sends with the new one.
    old_id = driver.key_id(driver.old)
    revoke = driver.faulted_run("revoke", dict(service="sendgrid_api", method="DELETE", path_contains="%s/%s" % (KEYS, old_id),
                                               action="status", status=500))
    assert 'revoking SendGrid API key %s stopped at "Delete the old SMTP key"' % driver.old in revoke.stdout
    assert driver.in_use() == ("apikey", pending)
    assert driver.keys() == {driver.old: old_key, driver.new: pending}
    assert driver.record() == {"name": driver.new, "revoke": driver.old}
    assert driver.stored(driver.old) == old_key
    assert driver.creates(driver.new, since=reused_since) == []

    # The rerun finishes: the old key and its stored value are gone, nothing else was created.
    # At -vvv with --diff, so that the secret check below covers the most verbose output.
    marker = setup.last_seq()
    finish = rotate(setup, "--diff", "-vvv")
    assert finish.returncode == 0, finish.stdout[-3000:]
    assert driver.keys() == {driver.new: pending}
    assert driver.stored(driver.old) is None and driver.stored(driver.new) == pending
    assert driver.record() == {"name": driver.new, "revoke": ""}
    assert [(e["method"], e["path"]) for e in writes(sandbox, marker) if e["service"] == "sendgrid_api"] == [
        ("DELETE", "%s/%s" % (KEYS, old_id))]
    driver.assert_supabase_sends_unrevoked("finished")

    # setup-mail.yml knows the new key: no change, no write, no proof mail.
    driver.assert_setup_mail_changes_nothing()

    for secret in secrets:
        assert all(secret not in output for output in setup.outputs)


def test_sendgrid_rotation_back_to_the_first_key_and_teardown_deletes_both_keys_their_values_and_the_record(
        sandbox, tmp_path):
    driver = Sendgrid(sandbox, tmp_path)
    setup = driver.setup
    assert setup_mail(setup).returncode == 0
    assert rotate(setup).returncode == 0
    second = driver.stored(driver.new)
    assert driver.keys() == {driver.new: second} and driver.record() == {"name": driver.new, "revoke": ""}

    # The next rotation goes back to the first key: a new value, the -2 key deleted, no record left.
    back = rotate(setup)
    assert back.returncode == 0, back.stdout[-3000:]
    third = driver.stored(driver.old)
    assert third and third != second
    assert driver.keys() == {driver.old: third} and driver.stored(driver.new) is None and driver.record() is None
    assert driver.in_use() == ("apikey", third)

    # A rotation stopped at the revoke leaves both keys, both stored values and the record.
    old_id = driver.key_id(driver.old)
    sandbox.inject_fault(service="sendgrid_api", method="DELETE", path_contains="%s/%s" % (KEYS, old_id),
                         action="status", status=500)
    stopped = rotate(setup)
    assert stopped.returncode != 0
    fourth = driver.stored(driver.new)
    assert driver.keys() == {driver.old: third, driver.new: fourth}
    assert driver.record() == {"name": driver.new, "revoke": driver.old}

    removed = teardown_relay(setup)
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert driver.keys() == {}
    assert not any(name.endswith((".api_key", ".rotation")) for name in files_of(setup.secrets_dir)), files_of(setup.secrets_dir)
    assert sandbox.supabase_auth_config(driver.ref)["smtp_host"] in (None, "")

    marker = setup.last_seq()
    again = teardown_relay(setup)
    assert again.returncode == 0 and recap_changed_zero(again), again.stdout[-2000:]
    assert writes(sandbox, marker) == []

    for secret in (second, third, fourth, setup.token, setup.api_key):
        assert all(secret not in output for output in setup.outputs)
