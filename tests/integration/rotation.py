"""What every rotation test needs: run rotate-mail-credentials.yml and setup-mail.yml on a test's
inventory, find the writes since a journal mark, and prove Supabase sends mail right now.

The per-provider rotation tests (`test_rotation.py` for SMTP2GO and the mailbox,
`test_rotation_<provider>.py` for the others) import from here; a provider whose role has the
rotation entry points needs one of them (`test_rotation.py` checks)."""

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
    """Every request since `since` that changes something: provider writes, Supabase PATCHes, Auth mails."""
    found = []
    for entry in sandbox.journal():
        if entry["seq"] <= since:
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
