"""mailgun_smtp_credential and mailgun_domain_info through real ansible-playbook runs against the Mailgun
emulator."""

import secrets

import pytest
import requests

from tests.integration.playbook import run_tasks
from tests.integration.test_mailgun_setup_mail import check_requests_against_the_spec

PASSWORD = "Chosen-pass-5d1e9a"
NEW_PASSWORD = "Chosen-pass-77c0b4"


class Account:
    """A fresh Mailgun account with an active custom domain of its own."""

    def __init__(self, sandbox, state="active"):
        self.sandbox = sandbox
        created = sandbox.control("POST", "/mailgun/accounts", {})
        self.api_key, self.sandbox_domain = created["api_key"], created["sandbox_domain"]
        self.domain = "mg-%s.karto.test" % secrets.token_hex(4)
        sandbox.control("POST", "/mailgun/domains", {"api_key": self.api_key, "name": self.domain, "state": state})
        self.first_seq = self.last_seq()

    def last_seq(self):
        entries = self.sandbox.journal()
        return entries[-1]["seq"] if entries else 0

    def calls(self, since=None):
        since = self.first_seq if since is None else since
        return [e for e in self.sandbox.journal(service="mailgun_api") if e["seq"] > since]

    def password_of(self, local):
        state = self.sandbox.control("GET", "/mailgun/accounts/%s" % self.api_key)
        domain = next(d for d in state["domains"] if d["name"] == self.domain)
        return next((c["password"] for c in domain["credentials"] if c["login"] == "%s@%s" % (local, self.domain)), None)

    def task(self, register, module="mailgun_smtp_credential", no_log=False, **options):
        args = {"api_url": self.sandbox.url("mailgun_api"), "api_key": "{{ mailgun_key }}", "domain": self.domain}
        args.update(options)
        task = {"name": register, "karto.supabase_mail." + module: args, "register": register, "ignore_errors": True}
        if no_log:
            task["no_log"] = True
        return task

    def run(self, tasks, **kwargs):
        return run_tasks(tasks, extra_vars={"mailgun_key": self.api_key}, **kwargs)


@pytest.fixture
def account(sandbox):
    return Account(sandbox)


# --- mailgun_smtp_credential --------------------------------------------------------------------------

def test_created_once_as_a_form_then_left_alone_and_always_puts_only_a_new_password(sandbox, account):
    run = account.run([
        account.task("created", login="smtp", password=PASSWORD),
        account.task("again", login="smtp@" + account.domain.upper(), password=PASSWORD),
        account.task("same", login="smtp", password=PASSWORD, update_password="always"),
        account.task("rotated", login="smtp", password=NEW_PASSWORD, update_password="always"),
    ], diff=True)
    assert run.returncode == 0, run.stdout[-3000:]
    login = "smtp@" + account.domain
    assert run["created"]["changed"] is True and run["created"]["created"] is True
    assert run["created"]["credential"] == {"login": login, "domain": account.domain, "created_at": None}
    assert run["again"]["changed"] is False and run["again"]["credential"]["created_at"]
    assert run["same"]["changed"] is False and run["same"]["changed_fields"] == []
    assert run["rotated"]["changed"] is True and run["rotated"]["changed_fields"] == ["password"]
    assert account.password_of("smtp") == NEW_PASSWORD
    calls = [(e["method"], e["status"]) for e in account.calls()]
    assert calls == [("GET", 200), ("POST", 200), ("GET", 200), ("GET", 200), ("PUT", 400), ("GET", 200), ("PUT", 200)]
    writes = [e for e in account.calls() if e["method"] != "GET"]
    assert [e["json"] for e in writes] == [{"login": login, "password": PASSWORD}, {"password": PASSWORD},
                                           {"password": NEW_PASSWORD}]
    assert all(e["headers"]["Content-Type"].startswith("multipart/form-data") for e in writes)
    assert run["rotated"]["diff"]["after"]["password"] == "<hidden, changed>" and "<hidden, changed>" in run.stdout
    assert run["same"]["diff"]["after"]["password"] == "<hidden, unchanged>"
    for secret in (PASSWORD, NEW_PASSWORD, account.api_key):
        assert secret not in run.all_output
    check_requests_against_the_spec(account.calls())


def test_check_mode_writes_nothing_and_absent_deletes_once(sandbox, account):
    made = requests.post("%s/v3/domains/%s/credentials" % (sandbox.url("mailgun_api"), account.domain), timeout=10,
                         auth=("api", account.api_key), files=[("login", (None, "smtp")), ("password", (None, PASSWORD))])
    assert made.status_code == 200, made.text
    mark = account.last_seq()
    checked = account.run([account.task("new", login="checked", password=PASSWORD),
                           account.task("gone", login="smtp", state="absent")], check=True, diff=True)
    assert checked["new"]["changed"] is True and checked["new"]["created"] is True
    assert checked["gone"]["changed"] is True and checked["gone"]["credential"] is None
    assert {e["method"] for e in account.calls(since=mark)} == {"GET"}
    gone = account.run([account.task("gone", login="smtp", state="absent"),
                        account.task("again", login="smtp", state="absent")])
    assert gone["gone"]["changed"] is True and gone["again"]["changed"] is False
    assert account.password_of("smtp") is None
    check_requests_against_the_spec(account.calls(since=mark))


def test_a_generated_password_is_returned_once_even_when_the_answer_carrying_it_is_lost(sandbox, account):
    sandbox.inject_fault(service="mailgun_api", method="POST", path_contains=account.domain, action="drop_answer")
    run = account.run([account.task("lost", login="lost", no_log=True),
                       account.task("generated", login="generated", no_log=True)])
    assert run.returncode == 0, run.stdout[-3000:]
    assert run["lost"]["created"] is True and run["lost"]["password"] == account.password_of("lost")
    assert len(run["lost"]["password"]) == 32  # ours, set with a PUT: Mailgun's only lived in the lost answer
    assert "carried its generated password, was lost" in " ".join(run["lost"]["warnings"])
    assert run["generated"]["password"] == account.password_of("generated")
    writes = [e for e in account.calls() if e["method"] != "GET"]
    assert [(e["method"], e["fault_action"]) for e in writes] == [("POST", "drop_answer"), ("PUT", None), ("POST", None)]
    assert writes[1]["path"].endswith("/credentials/lost@" + account.domain)
    for secret in (run["lost"]["password"], run["generated"]["password"]):
        assert secret not in run.stdout + run.stderr + run.log


def test_refusals_are_explained_and_bad_input_sends_nothing(sandbox, account):
    run = account.run([
        account.task("short", login="smtp", password="four"),
        account.task("elsewhere", login="smtp@other.test", password=PASSWORD),
        account.task("wrong_key", login="smtp", password=PASSWORD, api_key="wrong-key-1"),
        account.task("unknown_domain", login="smtp", password=PASSWORD, domain="nowhere.karto.test"),
        account.task("info_unknown", module="mailgun_domain_info", domain="nowhere.karto.test"),
    ])
    assert "password must be 5 to 32 characters long" in run["short"]["msg"] and "four" not in run.all_output
    assert "login must be a name such as supabase-abc, or an address on the domain" in run["elsewhere"]["msg"]
    assert "Mailgun refused the api_key (HTTP 401 Forbidden)" in run["wrong_key"]["msg"]
    assert "no domain nowhere.karto.test in this account" in run["unknown_domain"]["msg"]
    assert "region=eu" in run["info_unknown"]["msg"]
    # The first two sent nothing: the only requests are the three refused ones.
    assert [(e["method"], e["path"], e["status"]) for e in account.calls()] == [
        ("GET", "/v3/domains/%s/credentials" % account.domain, 401),
        ("GET", "/v3/domains/nowhere.karto.test/credentials", 404),
        ("GET", "/v4/domains/nowhere.karto.test", 404)]
    assert account.api_key not in run.all_output and "wrong-key-1" not in run.all_output


def test_a_429_is_retried_after_the_wait_its_message_names(sandbox, account):
    sandbox.inject_fault(service="mailgun_api", method="GET", path_contains=account.domain, action="status",
                         status=429, body={"message": "account-requests-per-sec limit exceeded, try again after 1 seconds"})
    run = account.run([account.task("created", login="smtp", password=PASSWORD)])
    assert run["created"]["created"] is True
    assert [e["status"] for e in account.calls() if e["method"] == "GET"] == [429, 200]


# --- mailgun_domain_info ---------------------------------------------------------------------------------

def test_domain_info_reports_state_records_and_the_sandbox_limits_in_check_mode_too(sandbox):
    account = Account(sandbox, state=None)
    sandbox.control("POST", "/mailgun/authorized-recipients",
                    {"api_key": account.api_key, "email": "karto.help@ro.ru", "activated": False})
    tasks = [account.task("custom", module="mailgun_domain_info"),
             account.task("sandboxed", module="mailgun_domain_info", domain=account.sandbox_domain, region="eu")]
    checked = account.run(tasks, check=True)
    custom, sandboxed = checked["custom"], checked["sandboxed"]
    assert custom["changed"] is False and custom["active"] is False and custom["domain"]["state"] == "unverified"
    assert {r["purpose"] for r in custom["records_to_publish"]} == {"spf", "dkim", "tracking"}
    assert custom["dkim_selector"] == "pdk1" and custom["is_sandbox"] is False
    assert custom["authorized_recipients"] == [] and custom["authorized_recipient_limit"] is None
    assert custom["smtp_host"] == "smtp.mailgun.org"
    assert sandboxed["is_sandbox"] is True and sandboxed["active"] is True
    assert sandboxed["authorized_recipients"] == [{"email": "karto.help@ro.ru", "activated": False}]
    assert sandboxed["authorized_recipient_limit"] == 5 and sandboxed["smtp_host"] == "smtp.eu.mailgun.org"

    sandbox.control("POST", "/mailgun/domains", {"api_key": account.api_key, "name": account.domain, "state": "active"})
    active = account.run(tasks[:1])["custom"]
    assert active["active"] is True and active["records_to_publish"] == []
    assert {e["method"] for e in account.calls()} == {"GET"}
    check_requests_against_the_spec(account.calls())
