"""What every rotation test needs: run rotate-mail-credentials.yml and setup-mail.yml on a test's
inventory, find the writes since a journal mark, and prove Supabase sends mail right now.

The per-provider rotation tests (`test_rotation.py` for SMTP2GO and the mailbox,
`test_rotation_<provider>.py` for the others) import from here; a provider whose role has the
rotation entry points needs one of them (`test_rotation.py` checks)."""

import json
import os
import secrets

import requests
import yaml

from tests.collection_path import REPO_ROOT, make_importable
from tests.integration.playbook import run_playbook_file

make_importable()
from ansible_collections.karto.supabase_mail.plugins.module_utils import _relay  # noqa: E402 pylint: disable=wrong-import-position

ROTATE = "playbooks/rotate-mail-credentials.yml"
TEARDOWN = "playbooks/teardown-mail.yml"
SMTP2GO_WRITES = ("/add", "/edit", "/remove")
# The other providers' API writes.
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def rotating_providers():
    found = []
    for name in sorted(_relay.registered_profiles()):
        spec = yaml.safe_load(open(os.path.join(REPO_ROOT, "roles", name, "meta", "argument_specs.yml")))
        if {"rotate_issue", "rotate_revoke"} <= set(spec["argument_specs"]):
            found.append(name)
    return found


def run_and_keep_outputs(setup, playbook, *args):
    """A run of `playbook` on the setup's inventory and variables; its outputs join setup.outputs (the secrets check)."""
    proc, log = run_playbook_file(playbook, ["-i", str(setup.inventory), "-e", "@" + str(setup.vars_file), *args])
    setup.outputs += [proc.stdout, proc.stderr, log]
    return proc


def rotate(setup, *args):
    return run_and_keep_outputs(setup, ROTATE, *args)


def setup_mail(setup, *args):
    proc, log = setup.run(*args)
    setup.outputs += [proc.stdout, proc.stderr, log]
    return proc


def teardown_relay(setup, *args):
    """teardown-mail.yml removing the relay pieces (mail_teardown_relay) as well as the Supabase settings."""
    return run_and_keep_outputs(setup, TEARDOWN, "-e", '{"mail_teardown_relay": true}', *args)


def writes(sandbox, since):
    """Every request since `since` that changes something: provider writes, Supabase PATCHes, Auth mails.
    A write answered 429 changed nothing (the client retries it; Resend's emulator allows 5 a second)."""
    found = []
    for entry in sandbox.journal():
        if entry["seq"] <= since or entry.get("status") == 429:
            continue
        if (entry["service"] == "smtp2go_api" and entry["path"].endswith(SMTP2GO_WRITES)
                or entry["service"] in ("sendgrid_api", "resend_api", "mailgun_api") and entry["method"] in WRITE_METHODS
                or entry["service"] == "supabase_api" and entry["method"] != "GET"
                or entry["service"] == "supabase_auth" and entry["method"] == "POST"):
            found.append(entry)
    return found


def recap_changed_zero(proc):
    recap = [line for line in proc.stdout.splitlines() if "changed=" in line]
    return bool(recap) and all("changed=0" in line for line in recap)


def files_of(folder):
    return {str(path): path.read_bytes() for path in folder.rglob("*") if path.is_file()} if folder.exists() else {}


def supabase_sends(sandbox, ref, tag):
    """A mail Supabase Auth is asked for now (a magic link to a new address) reaches the inbox."""
    to = "rotation-%s-%s@karto.test" % (tag, secrets.token_hex(3))
    anon = sandbox.project_api_keys(ref)["anon"]
    answer = requests.post(sandbox.auth_url() + "/otp", headers={"apikey": anon}, json={"email": to}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert len(sandbox.wait_for_mail(to, count=1, timeout=15)) == 1


class RotationDriver:
    """One project's rotation as a test drives it. A provider's driver sets `provider`, `old` and `new`
    (the pair's names), the suffix of its stored secrets, and says what the provider holds
    (`credentials`: name -> secret) or, when Supabase's login is not the credential's name, how it checks
    that Supabase sends with a live credential (`assert_supabase_sends_unrevoked`)."""

    provider = None
    # The stored secret's file: <provider>-<name>.<secret_suffix> (the roles' secret_store names).
    secret_suffix = "password"

    def __init__(self, sandbox, setup, old, new):
        self.sandbox, self.setup = sandbox, setup
        self.setup.outputs = []
        self.ref = setup.refs[0]
        self.old, self.new = old, new

    def set_up(self):
        """setup-mail.yml's first run; returns the old credential's stored secret."""
        first = setup_mail(self.setup)
        assert first.returncode == 0, first.stdout[-3000:]
        secret = self.stored(self.old)
        assert secret
        return secret

    def stored(self, name):
        """The secret stored for credential `name` (None when there is no file)."""
        path = self.setup.secrets_dir / ("%s-%s.%s" % (self.provider, name, self.secret_suffix))
        return path.read_text().strip() if path.exists() else None

    def record_path(self):
        """The rotation record, named after the first name of the pair."""
        return self.setup.secrets_dir / ("%s-%s.rotation" % (self.provider, self.old))

    def record(self):
        path = self.record_path()
        return json.loads(path.read_text()) if path.exists() else None

    def in_use(self):
        config = self.sandbox.supabase_auth_config(self.ref)
        return config["smtp_user"], config["smtp_pass"]

    def credentials(self):
        raise NotImplementedError

    def assert_supabase_sends_unrevoked(self, tag):
        """Supabase logs in with a credential the provider has, with the secret it holds, and a mail goes out."""
        login, secret = self.in_use()
        assert self.credentials().get(login) == secret
        supabase_sends(self.sandbox, self.ref, tag)

    def faulted_run(self, tag, *faults, args=()):
        """A rotation with `faults` queued: it fails, hits every fault, and Supabase still sends."""
        for fault in faults:
            self.sandbox.inject_fault(**fault)
        proc = rotate(self.setup, *args)
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert self.sandbox.faults() == [], "a fault was not hit: %s" % self.sandbox.faults()
        self.assert_supabase_sends_unrevoked(tag)
        return proc

    def apply_fault(self, in_use_before, args=()):
        """apply: Supabase's PATCH fails; Supabase keeps the credential in use (`in_use_before`)."""
        proc = self.faulted_run("apply", dict(service="supabase_api", method="PATCH", path_contains=self.ref,
                                              action="status", status=500,
                                              body={"message": "Failed to update project's auth config"}), args=args)
        assert "Failed to update project's auth config" in proc.stdout
        assert self.in_use() == in_use_before
        return proc

    def verify_fault(self, in_use_before, pending):
        """verify: the proof mail is refused at DATA; Supabase was given the pending secret, then the old one back."""
        marker = self.setup.last_seq()
        proc = self.faulted_run("verify", dict(service="smtp_relay", method="SMTP", path_contains="DATA",
                                               action="status", status=554, body="5.7.1 Injected refusal"))
        assert 'stopped at "Report why the mail was not sent"' in proc.stdout
        assert [e["json"].get("smtp_pass") for e in self.setup.supabase_patches(since=marker)] == [pending, in_use_before[1]]
        assert self.in_use() == in_use_before
        return proc

    def assert_writes_nothing(self, run, *args):
        """`run(setup, *args)` succeeds with no request that writes and no file in the secrets folder changed."""
        files, marker = files_of(self.setup.secrets_dir), self.setup.last_seq()
        proc = run(self.setup, *args)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert writes(self.sandbox, marker) == [] and files_of(self.setup.secrets_dir) == files
        return proc

    def assert_check_mode_writes_nothing(self, *args):
        """A rotation in check mode: no request that writes, no file in the secrets folder changed."""
        return self.assert_writes_nothing(rotate, "--check", *args)

    def assert_setup_mail_changes_nothing(self):
        """setup-mail.yml after the rotation: changed=0, no write, no proof mail."""
        marker, mails = self.setup.last_seq(), len(self.sandbox.inbox(to=self.setup.recipient))
        after = setup_mail(self.setup)
        assert after.returncode == 0, after.stdout[-3000:]
        assert recap_changed_zero(after), after.stdout[-2000:]
        assert writes(self.sandbox, marker) == []
        assert len(self.sandbox.inbox(to=self.setup.recipient)) == mails
        return after
