"""playbooks/rotate-mail-credentials.yml with Resend against the sandbox.

Resend shows an API key's token only in the answer to its creation, so the new credential is a second
key beside the one in use, `<name>-2` (and `<name>` again on the next rotation), stored the moment it
exists; a record, `resend-<name>.rotation` in the secrets folder, names the key in use. A fault at each
step leaves Supabase sending mail with a key the relay accepts and the old key undeleted; a rerun carries
on with the stored key and finishes; setup-mail.yml then changes nothing. The From address is on a domain
the sandbox's DNS verifies (test_resend_setup_mail.py)."""

import json

import pytest
import requests

from tests.integration.rotation import (RotationDriver, recap_changed_zero, rotate, setup_mail, supabase_sends,
                                        teardown_relay, writes)
from tests.integration.test_resend_setup_mail import Setup

# Long: `make test` runs it first, `make integration-heavy` alone (tests/conftest.py).
pytestmark = pytest.mark.heavy


class Resend(RotationDriver):
    """One project on a Resend team of its own, and what its rotation left in the emulator and the secrets folder."""

    provider = "resend"
    secret_suffix = "api_key"

    def __init__(self, sandbox, tmp_path):
        setup = Setup(sandbox, tmp_path, projects=1)
        old = "supabase-%s" % setup.refs[0]
        super().__init__(sandbox, setup, old, old + "-2")
        # Every key token the team ever held (read at each look), for the secrets check at the end.
        self.tokens = set()

    def keys(self):
        """Key name -> tokens of the keys with that name, for the two names of the pair (none: not listed)."""
        found = {}
        for key in self.setup.team()["keys"]:
            self.tokens.add(key["token"])
            if key["name"] in (self.old, self.new):
                found.setdefault(key["name"], []).append(key["token"])
        return found

    def key_id(self, name):
        [key] = [key for key in self.setup.team()["keys"] if key["name"] == name]
        return key["id"]

    def in_use(self):
        """The key Supabase logs in with: (its name, its token)."""
        config = self.sandbox.supabase_auth_config(self.ref)
        assert config["smtp_user"] == "resend"
        names = [name for name, tokens in self.keys().items() if config["smtp_pass"] in tokens]
        return (names[0] if names else None), config["smtp_pass"]

    def resend_writes(self, since):
        """Resend writes since `since` that reached Resend (a 429, Resend's rate limit of a few requests per
        second per team, is retried by the client and changed nothing); a faulted one too."""
        return [e for e in writes(self.sandbox, since) if e["service"] == "resend_api" and e["status"] != 429]

    def creates(self, name):
        """The key creates sent for `name` (a faulted one too: the journal has its body)."""
        return [e for e in self.resend_writes(self.setup.first_seq)
                if e["method"] == "POST" and e["path"] == "/api-keys" and (e["json"] or {}).get("name") == name]

    def assert_supabase_sends_unrevoked(self, tag):
        """Supabase logs in with a live key of the pair (the relay accepts it), and a mail goes out."""
        name, _token = self.in_use()
        assert name in (self.old, self.new)
        supabase_sends(self.sandbox, self.ref, tag)

    def assert_no_secret_in_outputs(self):
        self.keys()
        for secret in sorted(self.tokens) + [self.setup.token, self.setup.api_key]:
            for output in self.setup.outputs:
                assert secret not in output and json.dumps(secret)[1:-1] not in output


def test_resend_rotation_survives_a_fault_at_every_step_and_setup_mail_then_changes_nothing(sandbox, tmp_path):
    driver = Resend(sandbox, tmp_path)
    setup = driver.setup
    old_token = driver.set_up()
    assert driver.in_use() == (driver.old, old_token)
    assert driver.keys() == {driver.old: [old_token]}

    # Check mode: nothing written anywhere, not even the new key's file or the record.
    driver.assert_check_mode_writes_nothing("--diff")
    assert driver.keys() == {driver.old: [old_token]}

    # issue: Resend answers the new key's create with a 5xx. No key was made, so nothing is stored.
    issue = driver.faulted_run("issue", dict(service="resend_api", method="POST", path_contains="/api-keys",
                                             body_contains=driver.new, action="status", status=500))
    assert 'stopped at "Stop when Resend refused the new SMTP key"' in issue.stdout
    assert "Supabase was not moved to the new credential" in issue.stdout
    assert driver.keys() == {driver.old: [old_token]} and driver.stored(driver.new) is None
    assert driver.in_use() == (driver.old, old_token)

    # check: the create's answer is lost (the module deletes what it made and creates it once more, so the
    # run holds the token of the one key there is), then the relay refuses the new login. At -vvv with --diff:
    # the run that creates and stores the new key is the one whose output the secret check must cover.
    marker = setup.last_seq()
    check_fault = driver.faulted_run(
        "check",
        dict(service="resend_api", method="POST", path_contains="/api-keys", body_contains=driver.new,
             action="drop_answer"),
        dict(service="smtp_relay", method="SMTP", path_contains="AUTH", action="status", status=535,
             body="5.7.8 Authentication failed"),
        args=("--diff", "-vvv"))
    assert "Authentication failed" in check_fault.stdout
    pending = driver.stored(driver.new)
    assert pending and pending != old_token
    assert driver.keys() == {driver.old: [old_token], driver.new: [pending]}
    key_writes = [(e["method"], e["path"].split("/")[1], e["fault_action"]) for e in driver.resend_writes(marker)]
    assert key_writes == [("POST", "api-keys", "drop_answer"), ("DELETE", "api-keys", None),
                          ("POST", "api-keys", None)]
    assert driver.in_use() == (driver.old, old_token)

    # apply: Supabase's PATCH fails; Supabase keeps the old key. The stored new key is reused, none created.
    marker = setup.last_seq()
    driver.apply_fault((driver.old, old_token))
    assert driver.resend_writes(marker) == []
    assert driver.keys() == {driver.old: [old_token], driver.new: [pending]}

    # verify: the proof mail is refused at DATA; Supabase is put back on the old key.
    verify = driver.verify_fault((driver.old, old_token), pending)
    assert "Supabase sends with the credential in use before, Resend API key %s" % driver.old in verify.stdout
    assert driver.keys() == {driver.old: [old_token], driver.new: [pending]}

    # revoke: deleting the old key fails after the new one is proven; Supabase sends with the new one.
    revoke = driver.faulted_run("revoke", dict(service="resend_api", method="DELETE",
                                               path_contains="/api-keys/" + driver.key_id(driver.old),
                                               action="status", status=500))
    assert 'revoking Resend API key %s stopped at "Delete the old SMTP key"' % driver.old in revoke.stdout
    assert driver.in_use() == (driver.new, pending)
    assert driver.keys() == {driver.old: [old_token], driver.new: [pending]}
    assert driver.stored(driver.old) == old_token
    assert driver.record() == {"name": driver.new, "revoke": driver.old}

    # The rerun finishes: the old key and its stored token are gone, nothing else was created.
    # At -vvv with --diff, so that the secret check below covers the most verbose output.
    finish = rotate(setup, "--diff", "-vvv")
    assert finish.returncode == 0, finish.stdout[-3000:]
    assert driver.keys() == {driver.new: [pending]}
    assert driver.stored(driver.old) is None and driver.stored(driver.new) == pending
    assert driver.record() == {"name": driver.new, "revoke": ""}
    # The 5xx, the lost answer and its one re-create: a single key made of them all.
    assert len(driver.creates(driver.new)) == 3 and len(driver.creates(driver.old)) == 1
    assert driver.in_use() == (driver.new, pending)
    driver.assert_supabase_sends_unrevoked("finished")

    # setup-mail.yml knows the new key: no change, no write, no proof mail.
    driver.assert_setup_mail_changes_nothing()

    driver.assert_no_secret_in_outputs()


def test_resend_next_rotation_goes_back_to_the_first_name_replacing_a_key_whose_token_was_lost(sandbox, tmp_path):
    driver = Resend(sandbox, tmp_path)
    setup = driver.setup
    assert setup_mail(setup).returncode == 0
    old_token = driver.stored(driver.old)

    done = rotate(setup)
    assert done.returncode == 0, done.stdout[-3000:]
    second = driver.stored(driver.new)
    assert driver.in_use() == (driver.new, second) and driver.keys() == {driver.new: [second]}
    assert driver.record() == {"name": driver.new, "revoke": ""}
    assert "Resend API key %s is revoked" % driver.old in done.stdout

    # A key of the next new name exists whose token nobody stored (another machine made it, or its answer was
    # lost): it cannot be used, so the rotation replaces it, and the key in use stays until the new one is proven.
    made = requests.post(sandbox.url("resend_api") + "/api-keys", timeout=10,
                         headers={"Authorization": "Bearer " + setup.api_key},
                         json={"name": driver.old, "permission": "sending_access"})
    assert made.status_code == 201
    lost = made.json()["token"]
    driver.tokens.add(lost)
    second_id, marker = driver.key_id(driver.new), setup.last_seq()
    back = rotate(setup, "--diff", "-vvv")
    assert back.returncode == 0, back.stdout[-3000:]
    third = driver.stored(driver.old)
    assert third not in (None, lost, old_token, second)
    assert driver.in_use() == (driver.old, third) and driver.keys() == {driver.old: [third]}
    # Back on the first name: no record, as before any rotation; the second key and its token are gone.
    assert driver.record() is None and driver.stored(driver.new) is None
    deleted = [e["path"] for e in driver.resend_writes(marker) if e["method"] == "DELETE"]
    # The unusable key first, before the create; the proven rotation's old key last.
    assert deleted == ["/api-keys/" + made.json()["id"], "/api-keys/" + second_id]
    assert "Resend API key %s is revoked" % driver.new in back.stdout
    supabase_sends(sandbox, driver.ref, "back")

    marker = setup.last_seq()
    after = setup_mail(setup)
    assert after.returncode == 0 and recap_changed_zero(after), after.stdout[-2000:]
    assert writes(sandbox, marker) == []
    driver.assert_no_secret_in_outputs()


def test_resend_teardown_after_a_rotation_deletes_both_keys_their_tokens_and_the_record(sandbox, tmp_path):
    driver = Resend(sandbox, tmp_path)
    setup = driver.setup
    assert setup_mail(setup).returncode == 0
    # A rotation that stopped at its last step leaves both keys of the pair, both tokens and the record.
    driver.faulted_run("revoke", dict(service="resend_api", method="DELETE", path_contains="/api-keys/"
                                      + driver.key_id(driver.old), action="status", status=500))
    assert set(driver.keys()) == {driver.old, driver.new}
    assert driver.stored(driver.old) and driver.stored(driver.new) and driver.record()

    marker = setup.last_seq()
    proc = teardown_relay(setup)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert driver.keys() == {}
    assert driver.stored(driver.old) is None and driver.stored(driver.new) is None and driver.record() is None
    assert [str(path.name) for path in setup.secrets_dir.rglob("*") if path.is_file()] == []
    deletes = [e for e in driver.resend_writes(marker) if e["method"] == "DELETE"]
    assert len(deletes) == 2
    driver.assert_no_secret_in_outputs()
