"""mailgun_smtp_credential and the Mailgun client's pure parts: login and password rules, the form body
on the wire, error parsing, the 429's wait, explanations, and the engine hooks against an in-memory Mailgun."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _provider_mailgun as mailgun
from ansible_collections.karto.supabase_mail.plugins.module_utils import _transport
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.modules import mailgun_smtp_credential as module
from tests.unit.plugins.module_utils.test_engine import Exited, Failed, FakeModule

KEY = "0123456789abcdef0123456789abcdef-01234567-89abcdef"
PASSWORD = "Relay-pass-9c1d7e33"
LOGIN = "supabase-abc@mg.karto.test"


def params(**overrides):
    values = {option: None for option in module.ARGUMENT_SPEC}
    values.update(domain="mg.karto.test", login="supabase-abc", state="present", update_password="on_create",
                  password=PASSWORD, api_key=KEY, region="us", timeout=30)
    values.update(overrides)
    return values


# --- input rules ------------------------------------------------------------------------------------

@pytest.mark.parametrize("login, domain, full", [
    ("supabase-abc", "mg.karto.test", LOGIN),
    ("supabase-abc", "MG.Karto.Test", LOGIN),
    ("supabase-abc@MG.karto.test", "mg.karto.test", LOGIN),
    ("Bob.Bar@mg.karto.test", "mg.karto.test", "Bob.Bar@mg.karto.test"),
])
def test_a_bare_login_gets_the_domain_and_a_full_one_is_kept(login, domain, full):
    assert mailgun.full_login(login, domain) == full


@pytest.mark.parametrize("overrides, problem", [
    ({}, None),
    ({"login": "supabase-abc@mg.karto.test"}, None),
    ({"login": "supabase-abc@other.test"}, "login must be a name such as supabase-abc, or an address on the domain"),
    ({"login": "@mg.karto.test"}, "login must be a name such as supabase-abc, or an address on the domain"),
    ({"login": "two words"}, "login must be a name such as supabase-abc"),
    ({"login": "supabase-abc\n"}, "login must be a name such as supabase-abc"),
    ({"domain": "https://mg.karto.test"}, "domain must be a bare host name"),
    ({"password": "four"}, "password must be 5 to 32 characters long (Mailgun's limit for SMTP passwords); it has 4."),
    ({"password": "x" * 33}, "password must be 5 to 32 characters long"),
    ({"password": "x" * 32}, None),
    ({"password": PASSWORD + "\n"}, "password has trailing whitespace"),
    ({"password": "Relay\tpass-9c1d"}, "password must not contain a line break or control character"),
    ({"password": ""}, "password must not be empty"),
    ({"password": None}, None),
    ({"api_key": KEY + "\n"}, "api_key contains whitespace"),
    ({"api_url": "api.mailgun.net"}, "api_url must start with https://"),
])
def test_validate_names_the_parameter_and_never_quotes_the_password(overrides, problem):
    found = module.validate(params(**overrides))
    if problem is None:
        assert found is None
    else:
        assert found and found.startswith(problem), found
        assert PASSWORD not in found


def test_the_region_picks_the_api_url_unless_api_url_is_given():
    assert mailgun.api_url_of({"region": "us", "api_url": None}) == "https://api.mailgun.net"
    assert mailgun.api_url_of({"region": "eu", "api_url": None}) == "https://api.eu.mailgun.net"
    assert mailgun.api_url_of({"region": "eu", "api_url": "http://127.0.0.1:1"}) == "http://127.0.0.1:1"


@pytest.mark.parametrize("name, kind, sandbox", [
    ("sandbox0123abcdef.mailgun.org", None, True), ("SANDBOX0123ABCDEF.MAILGUN.ORG", None, True),
    ("mg.karto.test", "sandbox", True), ("mg.karto.test", "custom", False), ("sandbox.mailgun.org.evil.test", None, False),
])
def test_sandbox_domains_by_type_or_name(name, kind, sandbox):
    assert mailgun.is_sandbox_domain(name, kind) is sandbox


# --- the client: form bodies, auth, errors -------------------------------------------------------------

class Recorder(_transport.Session):
    """The real transport's request preparation, without a network: keeps the prepared request."""

    def __init__(self, status=200, body=b'{"message": "ok"}'):
        super().__init__()
        self.prepared, self.status, self.body = [], status, body

    def send(self, prepared, timeout=None, verify=True):
        self.prepared.append(prepared)
        return _transport.Response(self.status, "", _transport.Headers([("Content-Type", "application/json")]),
                                   self.body)


def test_writes_go_as_multipart_form_fields_never_as_json():
    session = Recorder()
    client = mailgun.MailgunClient("https://api.mailgun.net", KEY, session=session)
    client.create_credential("mg.karto.test", LOGIN, PASSWORD)
    client.change_password("mg.karto.test", LOGIN, PASSWORD)
    create, change = session.prepared
    assert create.method == "POST" and create.url == "https://api.mailgun.net/v3/domains/mg.karto.test/credentials"
    assert change.method == "PUT" and change.url.endswith("/v3/domains/mg.karto.test/credentials/%s" % LOGIN)
    for request in (create, change):
        assert request.header("Content-Type").startswith("multipart/form-data; boundary=")
        assert b'Content-Disposition: form-data; name="password"\r\n\r\n' + PASSWORD.encode() in request.body
        assert not request.body.lstrip().startswith(b"{")
    assert b'name="login"\r\n\r\n' + LOGIN.encode() in create.body
    # Mailgun generates a password when none is sent: the create without one sends only the login.
    client.create_credential("mg.karto.test", LOGIN)
    assert b'name="password"' not in session.prepared[-1].body


def test_basic_auth_as_user_api_and_the_key_is_redacted_in_every_form():
    client = mailgun.MailgunClient("https://api.mailgun.net", KEY, session=Recorder())
    header = client.auth_headers()["Authorization"]
    assert header == "Basic " + __import__("base64").b64encode(("api:" + KEY).encode()).decode()
    assert KEY not in client.redact("key %s" % KEY) and header.split()[1] not in client.redact(header)


def test_parse_error_reads_the_message_and_the_plain_text_401():
    client = mailgun.MailgunClient("https://api.mailgun.net", KEY)
    assert client.parse_error(404, {"message": "Domain not found"}) == (None, "Domain not found")
    assert client.parse_error(401, "Forbidden") == (None, "Forbidden")
    assert client.parse_error(502, "") == (None, None)


@pytest.mark.parametrize("body, headers, wait", [
    ({"message": "Domain x is not allowed to send: account-requests-per-sec limit exceeded, try again after 120 "
                 "seconds"}, {}, 120.0),
    ({"message": "limit exceeded, try again after 1 second"}, {}, 1.0),
    ({"message": "Too many requests"}, {"Retry-After": "3"}, 3.0),
    ({"message": "Too many requests"}, {}, None),
])
def test_the_429_wait_comes_from_the_message(body, headers, wait):
    assert mailgun.MailgunClient("https://api.mailgun.net", KEY).retry_wait(429, headers, body) == wait


@pytest.mark.parametrize("status, method, path, said, says", [
    (401, "GET", "/v3/domains/mg.karto.test/credentials", "Forbidden", "Mailgun refused the api_key (HTTP 401 Forbidden)"),
    (403, "POST", "/v3/domains/mg.karto.test/credentials", "", "may not call POST"),
    (404, "GET", "/v4/domains/mg.karto.test", "Domain not found", "no domain mg.karto.test in this account"),
    (404, "GET", "/v3/domains/mg.karto.test/credentials", "Domain not found", "region=eu"),
    (404, "PUT", "/v3/domains/d/credentials/a@d", "Credentials not found", "deleted it meanwhile"),
    (400, "POST", "/v3/domains/d/credentials", "Password is too short. It must be between 5 and 32 characters.",
     "Mailgun refused the password"),
    (400, "DELETE", "/v3/domains/d/credentials/postmaster@d", "Cannot delete system mailbox: postmaster@d",
     "system credential"),
    (429, "GET", "/v4/domains/d", "limit exceeded", "rate-limited"),
])
def test_explain_names_what_to_fix(status, method, path, said, says):
    client = mailgun.MailgunClient("https://api.mailgun.net", KEY)
    error = ApiError("failed", status=status, method=method, path=path, provider_message=said)
    assert says in client.explain(error)


def test_records_view_names_each_records_purpose_and_the_dkim_selector():
    records = mailgun.records_view([
        {"record_type": "TXT", "name": "mg.karto.test", "value": "v=spf1 include:mailgun.org ~all", "valid": "valid"},
        {"record_type": "CNAME", "name": "pdk1._domainkey.mg.karto.test", "value": "pdk1._domainkey.1.dkim1.mailgun.com",
         "valid": "unknown"},
        {"record_type": "CNAME", "name": "email.mg.karto.test", "value": "mailgun.org", "valid": "valid"},
        {"record_type": "MX", "name": "mg.karto.test", "value": "mxa.mailgun.org", "priority": "10", "valid": "valid"},
        None,
    ])
    assert [record["purpose"] for record in records] == ["spf", "dkim", "tracking", "receiving"]
    assert mailgun.dkim_selector_of(records) == "pdk1" and mailgun.dkim_selector_of(records[:1]) is None


# --- the engine hooks against an in-memory Mailgun ----------------------------------------------------------

class FakeMailgun:
    """The client calls the module makes. `fault`: "lose_create" applies the create and loses its answer;
    "retried_same" answers the PUT's same-password 400 as to a retry."""

    def __init__(self, logins=(), fault=None):
        self.passwords = {login: "old-password" for login in logins}
        self.calls, self.fault = [], fault
        self.redact = Redact()

    def explain(self, error):
        return "Explained: %s" % error.message

    def find_credential(self, domain, login):
        self.calls.append("list")
        return {"login": login, "created_at": "Fri, 23 Jan 2026 10:16:00 +0000"} if login in self.passwords else None

    def create_credential(self, domain, login, password=None):
        self.calls.append(("create", password))
        generated = password is None
        self.passwords[login] = password or "Generated-by-Mailgun-1"
        if self.fault == "lose_create":
            raise ApiError("no answer", method="POST", outcome_unknown=True)
        answer = {"message": "Created 1 credentials pair(s)"}
        if generated:
            answer.update(note="store it", credentials={login.upper(): self.passwords[login]})
        return answer

    def change_password(self, domain, login, password):
        self.calls.append(("put", password))
        if self.passwords[login] == password:
            return None if self.fault == "retried_same" else False
        self.passwords[login] = password
        return True

    def delete_credential(self, domain, login):
        self.calls.append("delete")
        self.passwords.pop(login, None)


class Redact:
    def __init__(self):
        self.added = []

    def add(self, secret):
        self.added.append(secret)


def run(api, check_mode=False, diff=False, **overrides):
    fake_module = FakeModule(params(**overrides), check_mode=check_mode, diff=diff)
    try:
        module.SmtpCredential(fake_module, api).run()
    except (Exited, Failed) as outcome:
        outcome.module = fake_module
        return outcome
    raise AssertionError("the module neither exited nor failed")


def test_created_with_the_chosen_password_then_left_alone():
    api = FakeMailgun()
    first = run(api, diff=True)
    assert first.result["changed"] is True and first.result["created"] is True
    assert api.calls == ["list", ("create", PASSWORD)] and api.passwords == {LOGIN: PASSWORD}
    assert first.result["credential"] == {"login": LOGIN, "domain": "mg.karto.test", "created_at": None}
    assert first.result["diff"]["after"]["password"] == "<hidden, changed>" and "password" not in first.result
    api.calls.clear()
    again = run(api)
    assert again.result["changed"] is False and api.calls == ["list"]


def test_always_sends_the_password_and_mailguns_same_password_400_is_no_change():
    api = FakeMailgun(logins=[LOGIN])
    checked = run(api, check_mode=True, update_password="always")
    assert checked.result["changed"] is True and api.calls == ["list"]
    changed = run(api, update_password="always", diff=True)
    assert changed.result["changed"] is True and changed.result["changed_fields"] == ["password"]
    assert api.passwords[LOGIN] == PASSWORD
    same = run(api, update_password="always", diff=True)
    assert same.result["changed"] is False and same.result["changed_fields"] == []
    assert same.result["diff"]["after"]["password"] == "<hidden, unchanged>"


def test_a_same_password_answer_to_a_retry_counts_as_changed():
    api = FakeMailgun(logins=[LOGIN], fault="retried_same")
    api.passwords[LOGIN] = PASSWORD  # the first PUT landed, its answer was lost
    assert run(api, update_password="always").result["changed"] is True


def test_a_generated_password_is_returned_once_and_redacted():
    api = FakeMailgun()
    result = run(api, password=None).result
    assert result["password"] == "Generated-by-Mailgun-1" and api.redact.added == ["Generated-by-Mailgun-1"]
    assert api.calls == ["list", ("create", None)]


def test_a_lost_answer_carrying_a_generated_password_is_replaced_with_a_put_of_our_own():
    api = FakeMailgun(fault="lose_create")
    outcome = run(api, password=None)
    result = outcome.result
    assert result["changed"] is True and result["created"] is True
    put = [call for call in api.calls if call[0] == "put"]
    assert len(put) == 1 and result["password"] == put[0][1] == api.passwords[LOGIN]
    assert len(result["password"]) == 32 and result["password"] in api.redact.added
    assert any("was lost" in warning for warning in outcome.module.warnings)
    # Found on the re-read: created once.
    assert [call for call in api.calls if call[0] == "create"] == [("create", None)]


def test_a_lost_answer_with_our_own_password_needs_no_put():
    api = FakeMailgun(fault="lose_create")
    result = run(api).result
    assert result["changed"] is True and "password" not in result
    assert api.passwords[LOGIN] == PASSWORD and not [c for c in api.calls if c[0] == "put"]


def test_absent_deletes_then_changes_nothing():
    api = FakeMailgun(logins=[LOGIN])
    assert run(api, state="absent").result["changed"] is True and LOGIN not in api.passwords
    assert run(api, state="absent").result["changed"] is False


@pytest.mark.parametrize("length", [5, 32])
def test_our_passwords_fit_mailguns_limits(length):
    password = module.new_password(length)
    assert len(password) == length and password.isalnum()
