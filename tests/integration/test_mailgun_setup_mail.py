"""playbooks/setup-mail.yml with mail_provider: mailgun, end to end against the sandbox; and the role alone
on a sandbox domain."""

import email.utils
import secrets


from tests.integration.openapi_spec import check_requests
from tests.integration.playbook import run_tasks
from tests.integration.setup_mail import SENDER, SetupMail
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class Setup(SetupMail):
    """setup-mail.yml with Mailgun: one account, one sending domain of its own, one credential per project."""

    provider = "mailgun"

    def new_account(self, verified):
        api_key = self.sandbox.control("POST", "/mailgun/accounts", {})["api_key"]
        self.domain = "mg-%s.karto.test" % secrets.token_hex(4)
        self.sandbox.control("POST", "/mailgun/domains", {"api_key": api_key, "name": self.domain,
                                                          "state": "active" if verified else None})
        return api_key

    def provider_vars(self):
        return {"mailgun_api_url": self.sandbox.url("mailgun_api"), "mailgun_api_key": self.api_key,
                "mailgun_domain": self.domain}

    def login(self, ref):
        return "supabase-%s@%s" % (ref, self.domain)

    def mailgun_password(self, ref):
        """The credential's password as Mailgun holds it (plaintext, from the control API), or None."""
        state = self.sandbox.control("GET", "/mailgun/accounts/%s" % self.api_key)
        domain = next(d for d in state["domains"] if d["name"] == self.domain)
        return next((c["password"] for c in domain["credentials"] if c["login"] == self.login(ref)), None)

    def password_file(self, ref):
        return self.secrets_dir / ("mailgun-%s.password" % self.login(ref))

    def stored_password(self, ref):
        return self.password_file(ref).read_text().strip()

    def mailgun_calls(self, since=0):
        return [e for e in self.sandbox.journal(service="mailgun_api") if e["seq"] > max(since, self.first_seq)]

    def writes(self, since=0):
        return self.supabase_patches(since) + [e for e in self.mailgun_calls(since) if e["method"] in WRITE_METHODS]

    def assert_one_password_everywhere(self, ref):
        """The stored file = Mailgun = Supabase."""
        stored = self.stored_password(ref)
        assert stored and stored == self.mailgun_password(ref) == self.sandbox.supabase_auth_config(ref)["smtp_pass"]
        return stored


def recap_changed_zero(proc):
    recap = [line for line in proc.stdout.splitlines() if "changed=" in line]
    return bool(recap) and all("changed=0" in line for line in recap)


def test_first_run_delivers_from_the_mailbox_second_run_changes_nothing_and_requests_fit_the_spec(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path)
    ref = setup.refs[0]
    proc, log = setup.run()
    assert proc.returncode == 0, proc.stdout[-4000:]

    [mail] = sandbox.inbox(to=setup.recipient)
    assert email.utils.parseaddr(mail["headers"]["From"]) == ("KARTO", SENDER)
    assert mail["auth_user"] == setup.login(ref)
    config = sandbox.supabase_auth_config(ref)
    assert (config["smtp_host"], config["smtp_port"], config["smtp_user"]) == ("smtp.mailgun.org", "587", setup.login(ref))
    password = setup.assert_one_password_everywhere(ref)
    assert len(password) == 32
    # Mailgun does not check the From, but a ro.ru From fails DMARC alignment through it: the preflight says so.
    assert "WARNING: mail From %s through Mailgun: will be rejected" % SENDER in proc.stdout
    creates = [e for e in setup.mailgun_calls() if e["method"] == "POST"]
    assert [e["json"] for e in creates] == [{"login": setup.login(ref), "password": password}]
    assert all(e["headers"]["Content-Type"].startswith("multipart/form-data") for e in creates)
    calls = setup.mailgun_calls()
    assert {(e["method"], e["path"].split("/")[1]) for e in calls} == {("GET", "v4"), ("GET", "v3"), ("POST", "v3")}
    check_requests_against_the_spec(calls)

    marker = setup.last_seq()
    again, again_log = setup.run()
    assert again.returncode == 0, again.stdout[-4000:]
    assert recap_changed_zero(again), again.stdout[-2000:]
    assert setup.writes(since=marker) == []
    # One read of the domain and one of the credentials.
    assert [(e["method"], e["path"].split("/")[1]) for e in setup.mailgun_calls(since=marker)] == [("GET", "v4"), ("GET", "v3")]
    assert len(sandbox.inbox(to=setup.recipient)) == 1  # no proof mail on a no-op run (mail_verify: on_change)
    for secret in (password, setup.api_key, setup.token):
        assert secret not in proc.stdout + proc.stderr + log + again.stdout + again.stderr + again_log


def test_lost_create_answer_then_a_failure_then_reruns_lose_nothing_and_duplicate_nothing(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path)
    ref = setup.refs[0]
    # The credential's create lands but its answer is lost; the next step after it (Supabase's read) fails.
    sandbox.inject_fault(service="mailgun_api", method="POST", path_contains=setup.domain, action="drop_answer")
    sandbox.inject_fault(service="supabase_api", method="GET", path_contains=ref, action="status", status=403,
                         body={"message": "Forbidden resource"})
    failed, _log = setup.run()
    assert failed.returncode != 0
    assert sandbox.faults() == []  # both faults were used
    assert setup.stored_password(ref) == setup.mailgun_password(ref)
    assert sandbox.journal(service="supabase_api", method="PATCH", path_contains=ref) == []

    marker = setup.last_seq()
    rerun, _log = setup.run()
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    password = setup.assert_one_password_everywhere(ref)
    assert [e for e in setup.mailgun_calls(since=marker) if e["method"] in WRITE_METHODS] == []
    creates = [e for e in setup.mailgun_calls() if e["method"] == "POST"]
    assert len(creates) == 1 and creates[0]["fault_action"] == "drop_answer"

    # The stored file is lost: a new password is generated, stored, set on the credential with a PUT, and said.
    setup.password_file(ref).unlink()
    marker = setup.last_seq()
    renewed, _log = setup.run()
    assert renewed.returncode == 0, renewed.stdout[-4000:]
    assert "held no password for the existing Mailgun credential" in renewed.stdout
    assert setup.assert_one_password_everywhere(ref) != password
    puts = [e for e in setup.mailgun_calls(since=marker) if e["method"] == "PUT"]
    assert [e["path"] for e in puts] == ["/v3/domains/%s/credentials/%s" % (setup.domain, setup.login(ref))]
    assert len(sandbox.inbox(to=setup.recipient)) == 2


def test_an_unverified_domain_stops_before_supabase_with_the_records_to_publish(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path, verified=False)
    proc, _log = setup.run()
    assert proc.returncode != 0
    assert "Mailgun has not verified the sending domain %s (state unverified)" % setup.domain in proc.stdout
    assert "pdk1._domainkey.%s CNAME pdk1._domainkey." % setup.domain in proc.stdout
    assert "Supabase was not changed" in proc.stdout
    assert sandbox.journal(service="supabase_api", method="PATCH", path_contains=setup.refs[0]) == []
    # The credential was made with the stored password all the same, so the run after the DNS is ready reuses it.
    assert setup.stored_password(setup.refs[0]) == setup.mailgun_password(setup.refs[0])


def test_check_mode_on_a_fresh_setup_writes_nothing(sandbox, tmp_path):
    setup = Setup(sandbox, tmp_path)
    proc, _log = setup.run("--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert setup.writes() == []
    assert setup.mailgun_password(setup.refs[0]) is None
    assert not setup.secrets_dir.exists() or not list(setup.secrets_dir.iterdir())


def test_the_role_on_a_sandbox_domain_warns_and_on_a_disabled_one_says_so(sandbox, tmp_path):
    account = sandbox.control("POST", "/mailgun/accounts", {})
    sandbox.control("POST", "/mailgun/authorized-recipients", {"api_key": account["api_key"], "email": SENDER})
    disabled = "mg-%s.karto.test" % secrets.token_hex(4)
    sandbox.control("POST", "/mailgun/domains", {"api_key": account["api_key"], "name": disabled, "state": "disabled"})
    tasks = []
    for name, domain in (("sandboxed", account["sandbox_domain"]), ("disabled", disabled)):
        tasks += [{"name": name, "ansible.builtin.include_role": {"name": "karto.supabase_mail.mailgun"},
                   "vars": {"mailgun_domain": domain}},
                  {"name": "Keep what the contract says", "register": name, "ansible.builtin.set_fact": {
                      "relay": "{{ mail_relay | dict2items | rejectattr('key', 'eq', 'password') | items2dict }}"}}]
    run = run_tasks(tasks, extra_vars={
        "supabase_project_ref": "abcdefghijklmnopqrst", "mail_sender_email": SENDER,
        "mail_secrets_dir": str(tmp_path / "secrets"), "mailgun_api_key": account["api_key"],
        "mailgun_api_url": sandbox.url("mailgun_api")})
    assert run.returncode == 0, run.stdout[-3000:]
    assert "is a Mailgun sandbox domain: it sends only to its authorized recipients (at most 5" in run.stdout
    assert "now %s;" % SENDER in run.stdout
    sandboxed, off = run["sandboxed"]["ansible_facts"]["relay"], run["disabled"]["ansible_facts"]["relay"]
    assert sandboxed["username"] == "supabase-abcdefghijklmnopqrst@" + account["sandbox_domain"]
    assert (sandboxed["host"], sandboxed["port"], sandboxed["sender_verified"]) == ("smtp.mailgun.org", 587, True)
    # From ro.ru through a Mailgun domain: no selector under ro.ru is Mailgun's; the bounce host is the domain.
    assert sandboxed["dns"]["return_path_host"] == account["sandbox_domain"] and sandboxed["dns"]["dkim_selector"] == ""
    assert off["sender_verified"] is False
    assert off["advice"]["sender-unverified"].startswith(
        "Mailgun has not verified the sending domain %s (state disabled)" % disabled)
    assert "Mailgun disabled it" in off["advice"]["sender-unverified"]


# --- the requests against Mailgun's published specification -------------------------------------------------

def check_requests_against_the_spec(calls):
    """Every request is an operation of Mailgun's spec, with its query parameters, and its body is the
    operation's multipart form, valid against its schema (left out without ../shared/specs or jsonschema)."""
    check_requests(["mailgun-openapi.yaml"], calls, content_type="multipart/form-data")
