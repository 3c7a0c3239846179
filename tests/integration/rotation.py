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


def rotate(setup, *args):
    proc, log = run_playbook_file(ROTATE, ["-i", str(setup.inventory), "-e", "@" + str(setup.vars_file), *args])
    setup.outputs += [proc.stdout, proc.stderr, log]
    return proc


def setup_mail(setup, *args):
    proc, log = setup.run(*args)
    setup.outputs += [proc.stdout, proc.stderr, log]
    return proc


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
    (the pair's names) and says how it checks that Supabase sends with a live credential
    (`assert_supabase_sends_unrevoked`)."""

    provider = None

    def __init__(self, sandbox, setup, old, new):
        self.sandbox, self.setup = sandbox, setup
        self.setup.outputs = []
        self.ref = setup.refs[0]
        self.old, self.new = old, new

    def record(self):
        """The rotation record, named after the first name of the pair (None when there is none)."""
        path = self.setup.secrets_dir / ("%s-%s.rotation" % (self.provider, self.old))
        return json.loads(path.read_text()) if path.exists() else None

    def in_use(self):
        config = self.sandbox.supabase_auth_config(self.ref)
        return config["smtp_user"], config["smtp_pass"]

    def assert_supabase_sends_unrevoked(self, tag):
        raise NotImplementedError

    def faulted_run(self, tag, *faults, args=()):
        """A rotation with `faults` queued: it fails, hits every fault, and Supabase still sends."""
        for fault in faults:
            self.sandbox.inject_fault(**fault)
        proc = rotate(self.setup, *args)
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert self.sandbox.faults() == [], "a fault was not hit: %s" % self.sandbox.faults()
        self.assert_supabase_sends_unrevoked(tag)
        return proc

    def assert_check_mode_writes_nothing(self):
        """A rotation in check mode: no request that writes, no file in the secrets folder changed."""
        files, marker = files_of(self.setup.secrets_dir), self.setup.last_seq()
        check = rotate(self.setup, "--check")
        assert check.returncode == 0, check.stdout[-3000:]
        assert writes(self.sandbox, marker) == [] and files_of(self.setup.secrets_dir) == files
        return check

    def assert_setup_mail_changes_nothing(self):
        """setup-mail.yml after the rotation: changed=0, no write, no proof mail."""
        marker, mails = self.setup.last_seq(), len(self.sandbox.inbox(to=self.setup.recipient))
        after = setup_mail(self.setup)
        assert after.returncode == 0, after.stdout[-3000:]
        assert recap_changed_zero(after), after.stdout[-2000:]
        assert writes(self.sandbox, marker) == []
        assert len(self.sandbox.inbox(to=self.setup.recipient)) == mails
        return after
