"""The sandbox's Mailgun emulator, exercised with plain HTTP and smtplib the way a client would, plus its
relay backend in-process."""

import json
import secrets
import smtplib
import ssl
import time

import pytest
import requests
import yaml

from tests.sandbox.core import SandboxContext
from tests.sandbox.fixture import REPO_ROOT, SandboxControlError
from tests.sandbox.mailgun_api import (AUTH_FAILED_REPLY, DEMO_CUSTOM_DOMAIN, DEMO_MAILGUN_API_KEY, DEMO_SANDBOX_DOMAIN,
                                       Credential, MailgunApi)

SPECS = REPO_ROOT.parent / "shared" / "specs"
TIMEOUT = 10
SENDER = "karto.help@ro.ru"


class Mailgun:
    """One emulated Mailgun account with one custom domain of its own, called the way a client would."""

    def __init__(self, sandbox, state="active"):
        self.sandbox = sandbox
        self.api_key = sandbox.control("POST", "/mailgun/accounts", {})["api_key"]
        self.domain = "mg-%s.karto.test" % secrets.token_hex(4)
        sandbox.control("POST", "/mailgun/domains", {"api_key": self.api_key, "name": self.domain, "state": state})

    def call(self, method, path, key=None, **kwargs):
        auth = None if key is False else ("api", key or self.api_key)
        return requests.request(method, self.sandbox.url("mailgun_api") + path, auth=auth, timeout=TIMEOUT, **kwargs)

    def credentials(self, path="", method="GET", **kwargs):
        return self.call(method, "/v3/domains/%s/credentials%s" % (self.domain, path), **kwargs)

    def create(self, login, password=None):
        fields = [("login", (None, login))] + ([("password", (None, password))] if password else [])
        answer = self.credentials(method="POST", files=fields)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def state(self):
        return self.sandbox.control("GET", "/mailgun/accounts/" + self.api_key)

    def password_of(self, login):
        for domain in self.state()["domains"]:
            for credential in domain["credentials"]:
                if credential["login"] == login:
                    return credential["password"]
        return None


@pytest.fixture
def account(sandbox):
    return Mailgun(sandbox)


# --- authentication, errors, rate limit ---------------------------------------------------------------

def test_basic_auth_as_api_else_401_with_the_plain_text_forbidden(account):
    for key, user in ((False, None), ("wrong-key", "api"), (account.api_key, "someone")):
        auth = None if key is False else (user, key)
        answer = requests.get(account.sandbox.url("mailgun_api") + "/v4/domains/" + account.domain, auth=auth,
                              timeout=TIMEOUT)
        assert answer.status_code == 401 and answer.text == "Forbidden"
        assert answer.headers["Content-Type"].startswith("text/plain")
    assert account.call("GET", "/v4/domains/" + account.domain).status_code == 200


def test_errors_are_a_message_and_another_accounts_domain_is_not_found(sandbox, account):
    other = Mailgun(sandbox)
    answer = other.call("GET", "/v4/domains/" + account.domain)
    assert answer.status_code == 404 and answer.json() == {"message": "Domain not found"}
    assert account.credentials(params={"limit": 1001}).json() == {"message": "Limit parameter can't be larger than 1000"}


def test_over_the_limit_a_429_names_its_wait_in_the_message_and_no_headers(sandbox, account):
    sandbox.control("POST", "/mailgun/rate-limit", {"api_key": account.api_key, "limit": 1, "window_seconds": 1})
    try:
        assert account.credentials().status_code == 200
        over = account.credentials()
        assert over.status_code == 429
        assert over.json() == {"message": "account-requests-per-sec limit exceeded, try again after 1 seconds"}
        assert not [name for name in over.headers if "ratelimit" in name.lower() or name.lower() == "retry-after"]
        time.sleep(1.1)
        assert account.credentials().status_code == 200
    finally:
        sandbox.control("POST", "/mailgun/rate-limit", {"api_key": account.api_key, "limit": None})


# --- SMTP credentials -------------------------------------------------------------------------------------

def test_a_chosen_password_is_kept_and_the_list_never_shows_one(account):
    login = "supabase@" + account.domain
    assert account.create("supabase", "Chosen-pass-1") == {"message": "Created 1 credentials pair(s)"}
    assert account.password_of(login) == "Chosen-pass-1"
    listed = account.credentials().json()
    assert listed["total_count"] == 1 and set(listed["items"][0]) == {"mailbox", "login", "created_at", "size_bytes"}
    assert listed["items"][0]["login"] == login and "Chosen-pass-1" not in json.dumps(listed)
    again = account.credentials(method="POST", files=[("login", (None, login)), ("password", (None, "Other-pass-2"))])
    assert again.status_code == 400 and account.password_of(login) == "Chosen-pass-1"


def test_a_generated_password_is_shown_once_in_the_create_answer(account):
    body = account.create("generated")
    login = "generated@" + account.domain
    assert body["message"] == "Created 1 credentials pair(s)" and body["note"]
    assert body["credentials"] == {login: account.password_of(login)}
    assert login in json.dumps(account.credentials().json()) and body["credentials"][login] not in json.dumps(
        account.credentials().json())


@pytest.mark.parametrize("fields, message", [
    ([("password", (None, "Chosen-pass-1"))], "Parameter 'login' is missing"),
    ([("login", (None, "x")), ("password", (None, "four"))],
     "Password is too short. It must be between 5 and 32 characters."),
    ([("login", (None, "x")), ("password", (None, "x" * 33))],
     "Password is too long. It must be between 5 and 32 characters."),
    ([("login", (None, "x@elsewhere.test"))], "Login x@elsewhere.test is not on the domain"),
])
def test_create_refusals(account, fields, message):
    answer = account.credentials(method="POST", files=fields)
    assert answer.status_code == 400 and answer.json()["message"].startswith(message)


def test_a_json_body_is_no_form_so_a_json_create_has_no_login(account):
    answer = account.credentials(method="POST", json={"login": "json", "password": "Chosen-pass-1"})
    assert answer.status_code == 400 and answer.json() == {"message": "Parameter 'login' is missing"}


def test_put_changes_the_password_and_the_same_password_is_a_400(account):
    login = "rotate@" + account.domain
    account.create("rotate", "Chosen-pass-1")
    same = account.credentials("/" + login, "PUT", files=[("password", (None, "Chosen-pass-1"))])
    assert same.status_code == 400 and same.json() == {"message": "New password cannot be the same as old password."}
    changed = account.credentials("/rotate", "PUT", data={"password": "Chosen-pass-2"})  # urlencoded, bare login
    assert changed.status_code == 200 and changed.json() == {"message": "Password changed"}
    assert account.password_of(login) == "Chosen-pass-2"
    missing = account.credentials("/nobody@" + account.domain, "PUT", files=[("password", (None, "Chosen-pass-3"))])
    assert missing.status_code == 404 and missing.json() == {"message": "Credentials not found"}


def test_a_json_put_reaches_mailgun_without_a_password_and_one_is_generated_silently(account):
    login = "json@" + account.domain
    account.create("json", "Chosen-pass-1")
    answer = account.credentials("/" + login, "PUT", json={"password": "Chosen-pass-1"})
    assert answer.status_code == 200
    assert account.password_of(login) not in ("Chosen-pass-1", None)
    assert answer.json()["credentials"] == {login: account.password_of(login)}


def test_delete_then_404_and_the_system_mailbox_stays(sandbox, account):
    account.create("gone", "Chosen-pass-1")
    deleted = account.credentials("/gone@" + account.domain, "DELETE")
    assert deleted.json() == {"message": "Credentials have been deleted", "spec": "gone@" + account.domain}
    assert account.credentials("/gone@" + account.domain, "DELETE").status_code == 404
    sandbox_domain = account.state()["sandbox_domain"]
    system = account.call("DELETE", "/v3/domains/%s/credentials/postmaster@%s" % (sandbox_domain, sandbox_domain))
    assert system.status_code == 400 and system.json()["message"] == "Cannot delete system mailbox: postmaster@" + sandbox_domain


def test_the_list_pages_by_skip_and_limit(account):
    for index in range(3):
        account.create("user%d" % index, "Chosen-pass-1")
    page = account.credentials(params={"skip": 1, "limit": 1}).json()
    assert page["total_count"] == 3 and [item["login"] for item in page["items"]] == ["user1@" + account.domain]


def test_the_journal_shows_the_form_fields_and_the_content_type(sandbox, account):
    account.create("journal", "Chosen-pass-1")
    [entry] = [e for e in sandbox.journal(service="mailgun_api", method="POST", path_contains=account.domain)]
    assert entry["json"] == {"login": "journal", "password": "Chosen-pass-1"}
    assert entry["headers"]["Content-Type"].startswith("multipart/form-data")


# --- domains -----------------------------------------------------------------------------------------------

def test_an_unverified_domain_lists_its_records_until_published_and_verified(sandbox):
    account = Mailgun(sandbox, state=None)
    body = account.call("GET", "/v4/domains/" + account.domain).json()
    assert body["domain"]["state"] == "unverified" and body["domain"]["type"] == "custom"
    sending = {(r["record_type"], r["name"]): r for r in body["sending_dns_records"]}
    assert sending[("TXT", account.domain)]["value"] == "v=spf1 include:mailgun.org ~all"
    assert sending[("CNAME", "pdk1._domainkey." + account.domain)]["value"].endswith(".dkim1.mailgun.com")
    assert {r["valid"] for r in sending.values()} == {"unknown"}
    assert [r["value"] for r in body["receiving_dns_records"]] == ["mxa.mailgun.org", "mxb.mailgun.org"]
    not_yet = account.call("PUT", "/v4/domains/%s/verify" % account.domain).json()
    assert not_yet["domain"]["state"] == "unverified" and not_yet["message"] == "Domain DNS records have been updated"
    sandbox.control("POST", "/mailgun/domains/verify-dns", {"api_key": account.api_key, "name": account.domain})
    verified = account.call("PUT", "/v4/domains/%s/verify" % account.domain).json()
    assert verified["domain"]["state"] == "active"
    assert {r["valid"] for r in verified["sending_dns_records"]} == {"valid"}


def test_a_disabled_domain_says_so(sandbox, account):
    sandbox.control("POST", "/mailgun/domains", {"api_key": account.api_key, "name": account.domain, "state": "disabled"})
    domain = account.call("GET", "/v4/domains/" + account.domain).json()["domain"]
    assert domain["state"] == "disabled" and domain["is_disabled"] is True and domain["disabled"]["reason"]
    with pytest.raises(SandboxControlError):
        sandbox.control("POST", "/mailgun/domains", {"api_key": account.api_key, "name": account.domain, "state": "gone"})


def test_every_account_has_a_sandbox_domain_with_at_most_5_authorized_recipients(sandbox, account):
    sandbox_domain = account.state()["sandbox_domain"]
    assert sandbox_domain.startswith("sandbox") and sandbox_domain.endswith(".mailgun.org")
    domain = account.call("GET", "/v4/domains/" + sandbox_domain).json()
    assert (domain["domain"]["type"], domain["domain"]["state"]) == ("sandbox", "active")
    for index in range(5):
        sandbox.control("POST", "/mailgun/authorized-recipients",
                        {"api_key": account.api_key, "email": "r%d@karto.test" % index, "activated": index > 0})
    with pytest.raises(SandboxControlError, match="Only 5 sandbox recipients are allowed"):
        sandbox.control("POST", "/mailgun/authorized-recipients", {"api_key": account.api_key, "email": "r5@karto.test"})
    recipients = account.call("GET", "/v5/sandbox/auth_recipients").json()["recipients"]
    assert recipients[0] == {"email": "r0@karto.test", "activated": False} and len(recipients) == 5


def test_the_demo_account_is_seeded(sandbox):
    auth = ("api", DEMO_MAILGUN_API_KEY)
    url = sandbox.url("mailgun_api")
    assert requests.get(url + "/v4/domains/" + DEMO_CUSTOM_DOMAIN, auth=auth, timeout=TIMEOUT).json()["domain"]["state"] == "active"
    assert requests.get(url + "/v4/domains/" + DEMO_SANDBOX_DOMAIN, auth=auth, timeout=TIMEOUT).status_code == 200


@pytest.mark.skipif(not SPECS.is_dir(), reason="../shared/specs is not present")
def test_answers_carry_what_the_spec_response_schemas_require(account):
    spec = yaml.safe_load((SPECS / "mailgun-openapi.yaml").read_text())
    schemas = spec["components"]["schemas"]
    domain = account.call("GET", "/v4/domains/" + account.domain).json()
    assert set(schemas["github.com-mailgun-domains-client-golang-Domain"]["required"]) <= set(domain["domain"])
    record = schemas["github.com-mailgun-domains-client-golang-Record"]
    for item in domain["sending_dns_records"] + domain["receiving_dns_records"]:
        assert set(record["required"]) <= set(item) <= set(record["properties"])
    account.create("spec", "Chosen-pass-1")
    listed = account.credentials().json()
    metadata = schemas["github.com-mailgun-cerberus-credentials-CredentialMetadata"]
    assert set(listed["items"][0]) == set(metadata["required"])
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(listed["items"][0]["created_at"], {"type": "string", "pattern": metadata["properties"]["created_at"]["pattern"]})


# --- the relay backend -----------------------------------------------------------------------------------

def test_relay_backend_in_process(tmp_path):
    api = MailgunApi(SandboxContext(tmp_path))
    key = api.add_account()["api_key"]
    api.set_domain(key, "mg.karto.test", "unverified")
    api._domains["mg.karto.test"].credentials["smtp@mg.karto.test"] = Credential("smtp@mg.karto.test", "Chosen-pass-1")
    [backend] = api.context.relay_backends.all()
    assert backend.name == "mailgun" and backend.hosts == ("smtp.mailgun.org", "smtp.eu.mailgun.org")
    assert backend.authenticate("smtp@elsewhere.test", "x") is None  # not a Mailgun domain: another backend's
    assert backend.authenticate("karto-user", "x") is None
    assert backend.authenticate("smtp@mg.karto.test", "wrong") == (False, AUTH_FAILED_REPLY)
    assert backend.authenticate("nobody@mg.karto.test", "Chosen-pass-1") == (False, AUTH_FAILED_REPLY)
    ok, _reply, identity = backend.authenticate("SMTP@mg.karto.test", "Chosen-pass-1")
    assert ok is True and identity == "mg.karto.test"
    refused = backend.sender_allowed(identity, "KARTO <%s>" % SENDER)
    assert refused[0] is False and refused[1].startswith("421 Domain mg.karto.test is not allowed to send: The domain is unverified")
    api.set_domain(key, "mg.karto.test", "active")
    # Mailgun does not check the From address: any From passes on an active domain.
    assert backend.sender_allowed(identity, "KARTO <%s>" % SENDER)[0] is True


def test_relay_session_logs_in_with_the_credential_and_refuses_an_unverified_domain_after_the_data(sandbox):
    account = Mailgun(sandbox, state=None)
    account.create("smtp", "Chosen-pass-1")
    login = "smtp@" + account.domain
    context = ssl.create_default_context(cafile=sandbox.ca_cert)
    message = ("From: %s\r\nSubject: x\r\n\r\nx\r\n" % SENDER).encode()
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_relay_port("starttls"), timeout=TIMEOUT) as client:
        client.starttls(context=context)
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(login, "Chosen-pass-2")
        assert refused.value.smtp_code == 535 and b"Mailgun is not loving your login or password" in refused.value.smtp_error
        client.login(login, "Chosen-pass-1")
        with pytest.raises(smtplib.SMTPDataError) as refused_at_data:
            client.sendmail(SENDER, ["x@karto-mail.ru"], message)
        assert refused_at_data.value.smtp_code == 421
    sandbox.control("POST", "/mailgun/domains", {"api_key": account.api_key, "name": account.domain, "state": "active"})
    recipient = "mailgun-%s@karto-mail.ru" % secrets.token_hex(4)
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_relay_port("starttls"), timeout=TIMEOUT) as client:
        client.starttls(context=context)
        client.login(login, "Chosen-pass-1")
        assert client.sendmail(SENDER, [recipient], message) == {}
    assert [mail["auth_user"] for mail in sandbox.inbox(recipient)] == [login]
