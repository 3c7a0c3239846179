"""playbooks/setup-mail.yml with mail_provider: resend, end to end against the sandbox.

Resend sends only from domains verified through their DNS: the From address is at a fresh subdomain of
karto.test, a zone of the sandbox DNS, where the emulator publishes the domain's records (at once for a
"verified" setup, on request otherwise) and looks them up to verify it."""

import email.utils
import secrets

import requests

from tests.collection_path import make_importable
from tests.integration.setup_mail import SENDER, SetupMail
from tests.integration.test_resend_modules import assert_requests_match_the_spec

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class Setup(SetupMail):
    """setup-mail.yml with Resend: a team of its own, one SMTP key per project, a From on a fresh domain."""

    provider = "resend"

    def __init__(self, sandbox, tmp_path, projects=1, verified=True, sender=None):
        self.domain = "r%s.karto.test" % secrets.token_hex(4)
        self.sender = sender or "noreply@" + self.domain
        super().__init__(sandbox, tmp_path, projects=projects, verified=verified)

    def new_account(self, verified):
        api_key = self.sandbox.control("POST", "/resend/accounts", {})["api_key"]
        if verified:
            # The team's DNS host publishes the records of every domain it adds at once.
            self.sandbox.control("POST", "/resend/accounts/settings", {"api_key": api_key, "auto_publish_dns": True})
        return api_key

    def provider_vars(self):
        return {"resend_api_url": self.sandbox.url("resend_api"), "resend_api_key": self.api_key}

    def team(self):
        return self.sandbox.control("GET", "/resend/accounts/%s" % self.api_key)

    def our_keys(self, ref):
        return [key for key in self.team()["keys"] if key["name"] == "supabase-%s" % ref]

    def stored_key(self, ref):
        return (self.secrets_dir / ("resend-supabase-%s.api_key" % ref)).read_text().strip()

    def resend_calls(self, since=0):
        return [e for e in self.sandbox.journal(service="resend_api") if e["seq"] > max(since, self.first_seq)]

    def writes(self, since=0):
        return self.supabase_patches(since) + [e for e in self.resend_calls(since) if e["method"] in WRITE_METHODS]


def secrets_of(setup):
    return [setup.token, setup.api_key] + [key["token"] for key in setup.team()["keys"]]


def test_first_run_delivers_from_the_verified_domain_second_run_changes_nothing(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, projects=2)
    proc, log = setup.run()
    assert proc.returncode == 0, proc.stdout[-4000:]

    mails = sandbox.inbox(to=setup.recipient)
    assert len(mails) == 2  # one proof mail per project
    for mail in mails:
        assert email.utils.parseaddr(mail["headers"]["From"]) == ("KARTO", setup.sender)
    [domain] = setup.team()["domains"]
    assert (domain["name"], domain["status"]) == (setup.domain, "verified")
    # The preflight's DMARC check finds the published records: aligned (SPF at send.<domain>), no warning.
    assert "WARNING: mail From" not in proc.stdout
    for ref in setup.refs:
        [key] = setup.our_keys(ref)
        # A sending key restricted to the sending domain.
        assert (key["permission"], key["domain_id"]) == ("sending_access", domain["id"])
        config = sandbox.supabase_auth_config(ref)
        assert (config["smtp_host"], config["smtp_port"], config["smtp_user"]) == ("smtp.resend.com", "465", "resend")
        assert config["smtp_pass"] == setup.stored_key(ref) == key["token"]
    assert_requests_match_the_spec(setup.resend_calls())

    marker = setup.last_seq()
    again, again_log = setup.run("-vvvv")  # at the highest verbosity, still no secret shows (below)
    assert again.returncode == 0, again.stdout[-4000:]
    recap = [line for line in again.stdout.splitlines() if "changed=" in line]
    assert recap and all("changed=0" in line for line in recap), recap
    assert setup.writes(since=marker) == []
    # One read per object: the domains list and the domain once per run (shared by both projects), the key list per project.
    reads = sorted((e["method"], e["path"].split("/")[1]) for e in setup.resend_calls(since=marker))
    assert reads == [("GET", "api-keys")] * 2 + [("GET", "domains")] * 2
    assert len(sandbox.inbox(to=setup.recipient)) == 2  # no proof mail on a no-op run (mail_verify: on_change)
    for secret in secrets_of(setup):
        assert secret not in proc.stdout + proc.stderr + log + again.stdout + again.stderr + again_log


def test_a_free_mail_from_stops_before_any_resend_or_supabase_request(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, sender=SENDER)
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert "Resend cannot send mail From karto.help@ro.ru" in proc.stdout
    assert "ro.ru is a public mailbox domain" in proc.stdout
    # The alternatives: the mailbox's own server (in the registered provider's words when there is one) and
    # a From on a domain the team controls, with the mailbox getting the replies.
    assert "the mailbox's own SMTP server" in proc.stdout
    assert "noreply@mail.<your domain>" in proc.stdout and "forward its replies to karto.help@ro.ru" in proc.stdout
    profiles = [line for line in proc.stdout.splitlines() if "mail_provider: mailbox" in line]
    assert profiles or "mailbox" not in _registered_providers()
    assert setup.resend_calls() == []
    assert sandbox.journal(service="supabase_api", path_contains=setup.refs[0]) == []


def _registered_providers():
    make_importable()
    from ansible_collections.karto.supabase_mail.plugins.module_utils import _relay  # pylint: disable=import-outside-toplevel
    return _relay.registered_profiles()


def test_failure_right_after_the_key_was_created_then_rerun_reuses_the_stored_key(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path)
    ref = setup.refs[0]
    # The run fails at its next write-bound step after the key's create and store: Supabase's first answer.
    sandbox.inject_fault(service="supabase_api", method="GET", path_contains=ref, action="status", status=500)
    failed, _log = setup.run()
    assert failed.returncode != 0
    [key] = setup.our_keys(ref)
    stored = setup.stored_key(ref)
    assert stored == key["token"]
    assert sandbox.journal(service="supabase_api", method="PATCH", path_contains=ref) == []

    rerun, _log = setup.run()
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert [k["token"] for k in setup.our_keys(ref)] == [stored]
    creates = [e for e in setup.resend_calls() if e["method"] == "POST" and e["path"] in ("/api-keys", "/domains")]
    # The team's limit is 5 requests a second (resend_api.py): a fast first run meets it at the key's
    # create, which is then refused with 429 and sent again once the window resets. A refused create
    # made nothing, so only the answered ones count.
    assert {e["status"] for e in creates} <= {201, 429}
    assert [e["path"] for e in creates if e["status"] == 201] == ["/domains", "/api-keys"]
    assert sandbox.supabase_auth_config(ref)["smtp_pass"] == stored
    assert len(sandbox.inbox(to=setup.recipient)) == 1


def test_a_recreate_whose_answer_was_lost_stops_the_run_and_keeps_the_key_in_use(sandbox, tmp_path):
    """resend_recreate_key with the create's answer lost: the module fails with why (the new token is gone);
    the role must stop on it, not carry on silently with the old key and a new key nobody holds."""
    setup = Setup(sandbox, tmp_path)
    ref = setup.refs[0]
    first, _log = setup.run()
    assert first.returncode == 0, first.stdout[-4000:]
    in_use = setup.stored_key(ref)
    sandbox.inject_fault(service="resend_api", method="POST", path_contains="/api-keys", action="drop_answer")
    marker = setup.last_seq()
    lost, _log = setup.run("-e", "resend_recreate_key=true")
    assert lost.returncode != 0, lost.stdout[-4000:]
    assert sandbox.faults() == []
    # The create's result is quiet (no_log): only the role's stop prints the module's reason.
    assert "the answer carrying its token was lost" in lost.stdout, lost.stdout[-4000:]
    # The key in use, its stored token and Supabase are as before; nothing was deleted or patched.
    assert setup.stored_key(ref) == in_use and in_use in [key["token"] for key in setup.our_keys(ref)]
    assert sandbox.supabase_auth_config(ref)["smtp_pass"] == in_use
    assert [e for e in setup.writes(marker) if e["method"] in ("DELETE", "PATCH")] == []


def test_unverified_domain_stops_before_supabase_then_the_published_records_and_a_recreated_key(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, verified=False)
    ref = setup.refs[0]
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert "Resend has not verified the domain %s yet" % setup.domain in proc.stdout
    assert "send.%s MX feedback-smtp.us-east-1.amazonses.com" % setup.domain in proc.stdout
    assert "Supabase was not changed" in proc.stdout
    assert sandbox.journal(service="supabase_api", method="PATCH", path_contains=ref) == []
    [key] = setup.our_keys(ref)
    assert setup.stored_key(ref) == key["token"]

    # The team publishes the records; the rerun's read finds the pending domain verified and goes on.
    sandbox.control("POST", "/resend/domains/publish-dns", {"api_key": setup.api_key, "name": setup.domain})
    done, _log = setup.run()
    assert done.returncode == 0, done.stdout[-4000:]
    assert [k["token"] for k in setup.our_keys(ref)] == [key["token"]]
    assert len(sandbox.inbox(to=setup.recipient)) == 1

    # A recreate stores the new token before it deletes the old key: when the delete fails, nothing is lost.
    sandbox.inject_fault(service="resend_api", method="DELETE", path_contains="/api-keys/" + key["id"],
                         action="status", status=500)
    interrupted, _log = setup.run("-e", "resend_recreate_key=true")
    assert interrupted.returncode != 0
    keys = setup.our_keys(ref)
    newest = next(k for k in keys if k["id"] != key["id"])
    assert len(keys) == 2 and setup.stored_key(ref) == newest["token"]
    assert sandbox.supabase_auth_config(ref)["smtp_pass"] == key["token"]  # still working: the old key lives

    recreated, _log = setup.run("-e", "resend_recreate_key=true")
    assert recreated.returncode == 0, recreated.stdout[-4000:]
    [final] = setup.our_keys(ref)
    assert final["id"] not in (key["id"], newest["id"])
    assert setup.stored_key(ref) == final["token"] == sandbox.supabase_auth_config(ref)["smtp_pass"]
    assert len(sandbox.inbox(to=setup.recipient)) == 2


def test_a_key_whose_token_was_never_stored_stops_the_run_with_what_to_do(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path)
    ref = setup.refs[0]
    made = requests.post(sandbox.url("resend_api") + "/api-keys", timeout=10,
                         headers={"Authorization": "Bearer " + setup.api_key},
                         json={"name": "supabase-%s" % ref, "permission": "sending_access"})
    assert made.status_code == 201
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert "does not hold its token" in proc.stdout and "resend_recreate_key=true" in proc.stdout
    assert len(setup.our_keys(ref)) == 1
    assert sandbox.journal(service="supabase_api", method="PATCH", path_contains=ref) == []
    assert made.json()["token"] not in proc.stdout + proc.stderr


def test_check_mode_on_a_fresh_setup_writes_nothing(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path)
    proc, _log = setup.run("--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert setup.writes() == []
    assert setup.team()["domains"] == [] and setup.our_keys(setup.refs[0]) == []
    assert not setup.secrets_dir.exists() or not list(setup.secrets_dir.iterdir())
