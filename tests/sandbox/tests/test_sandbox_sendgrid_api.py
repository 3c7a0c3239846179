"""The sandbox's SendGrid v3 emulator, exercised with plain HTTP and smtplib the way a client would,
plus its relay backend in-process."""

import json
import smtplib
import ssl
import time

import pytest
import requests

from tests.sandbox.core import SandboxContext
from tests.sandbox.fixture import REPO_ROOT, SandboxControlError
from tests.sandbox.sendgrid_api import (AUTH_REFUSED_REPLY, AUTH_REVOKED_REPLY, DEMO_SENDGRID_API_KEY, KEY_PATTERN,
                                        SENDER_REFUSED_REPLY, Sender, SendgridApi)

SPECS = REPO_ROOT.parent / "shared" / "specs"
TIMEOUT = 10
SENDER = "karto.help@ro.ru"
ADDED = ["sender_verification_eligible", "2fa_required"]


class Sendgrid:
    """One emulated SendGrid account, called the way a client would."""

    def __init__(self, sandbox, api_key=None, scopes=None):
        self.sandbox = sandbox
        body = {} if scopes is None else {"scopes": scopes}
        self.api_key = api_key or sandbox.control("POST", "/sendgrid/accounts", body)["api_key"]

    def call(self, method, path, key=None, **kwargs):
        headers = {} if key is False else {"Authorization": "Bearer " + (key or self.api_key)}
        return requests.request(method, self.sandbox.url("sendgrid_api") + path, headers=headers,
                                timeout=TIMEOUT, **kwargs)

    def state(self):
        return self.sandbox.control("GET", "/sendgrid/accounts/" + self.api_key)

    def new_sender(self, email=SENDER, **fields):
        body = {"nickname": email, "from_email": email, "reply_to": email, **fields}
        answer = self.call("POST", "/v3/verified_senders", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()


@pytest.fixture
def account(sandbox):
    return Sendgrid(sandbox)


def errors(answer):
    return [(e.get("field"), e["message"]) for e in answer.json()["errors"]]


# --- authentication, rate limits ---------------------------------------------------------------

def test_bearer_auth_missing_or_unknown_key_is_401_in_sendgrids_error_shape(account):
    missing = account.call("GET", "/v3/api_keys", key=False)
    assert missing.status_code == 401 and errors(missing) == [(None, "authorization required")]
    unknown = account.call("GET", "/v3/api_keys", key="SG.nobody")
    assert unknown.status_code == 401
    assert errors(unknown) == [(None, "The provided authorization grant is invalid, expired, or revoked")]


def test_every_answer_carries_rate_limit_headers_and_the_limit_gives_429_until_the_reset(sandbox, account):
    answer = account.call("GET", "/v3/api_keys")
    assert answer.headers["X-RateLimit-Limit"] == "600" and answer.headers["X-RateLimit-Remaining"] == "599"
    reset = int(answer.headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 61  # a Unix timestamp
    sandbox.control("POST", "/sendgrid/rate-limit", {"api_key": account.api_key, "limit": 1, "window_seconds": 1})
    try:
        assert account.call("GET", "/v3/api_keys").status_code == 200
        over = account.call("GET", "/v3/api_keys")
        assert over.status_code == 429 and errors(over) == [(None, "too many requests")]
        assert over.headers["X-RateLimit-Remaining"] == "0"
        # Per endpoint: another endpoint has its own window.
        assert account.call("GET", "/v3/verified_senders").status_code == 200
        time.sleep(1.1)
        assert account.call("GET", "/v3/api_keys").status_code == 200
    finally:
        sandbox.control("POST", "/sendgrid/rate-limit", {"api_key": account.api_key, "limit": None})


def test_a_faulted_answer_carries_the_rate_limit_headers_too(sandbox, account):
    sandbox.inject_fault(service="sendgrid_api", path_contains="/v3/api_keys", action="status", status=503)
    answer = account.call("GET", "/v3/api_keys")
    assert answer.status_code == 503 and "X-RateLimit-Reset" in answer.headers
    assert errors(answer) == [(None, "Service Unavailable")]


# --- API keys ---------------------------------------------------------------------------------

def test_key_value_is_returned_once_with_the_scopes_plus_the_two_sendgrid_adds(account):
    created = account.call("POST", "/v3/api_keys", json={"name": "smtp", "scopes": ["mail.send"]})
    assert created.status_code == 201
    body = created.json()
    assert KEY_PATTERN.match(body["api_key"]) and len(body["api_key"]) == 69
    assert body["scopes"] == ["mail.send"] + ADDED
    listed = account.call("GET", "/v3/api_keys").json()
    assert {"api_key_id": body["api_key_id"], "name": "smtp"} in listed["result"]
    assert all(set(key) == {"api_key_id", "name"} for key in listed["result"])
    assert body["api_key"] not in json.dumps(listed)
    one = account.call("GET", "/v3/api_keys/" + body["api_key_id"]).json()
    assert one == {"api_key_id": body["api_key_id"], "name": "smtp", "scopes": ["mail.send"] + ADDED}


def test_omitted_scopes_make_a_full_access_key(account):
    body = account.call("POST", "/v3/api_keys", json={"name": "full"}).json()
    assert "api_keys.create" in body["scopes"] and "mail.send" in body["scopes"]


def test_get_key_in_the_documented_result_form_on_request(sandbox, account):
    key_id = account.call("POST", "/v3/api_keys", json={"name": "k", "scopes": ["mail.send"]}).json()["api_key_id"]
    sandbox.control("POST", "/sendgrid/accounts/settings", {"api_key": account.api_key, "get_key_shape": "result"})
    assert account.call("GET", "/v3/api_keys/" + key_id).json() == {
        "result": [{"api_key_id": key_id, "name": "k", "scopes": ["mail.send"] + ADDED}]}


def test_list_limit_put_patch_delete_and_404(account):
    ids = [account.call("POST", "/v3/api_keys", json={"name": "k%d" % i, "scopes": ["mail.send"]}).json()["api_key_id"]
           for i in range(2)]
    assert len(account.call("GET", "/v3/api_keys", params={"limit": 2}).json()["result"]) == 2
    put = account.call("PUT", "/v3/api_keys/" + ids[0], json={"name": "k0", "scopes": ["alerts.read"]})
    assert put.json() == {"api_key_id": ids[0], "name": "k0", "scopes": ["alerts.read"] + ADDED}
    no_scopes = account.call("PUT", "/v3/api_keys/" + ids[0], json={"name": "k0", "scopes": []})
    assert no_scopes.status_code == 400 and errors(no_scopes)[0][0] == "scopes"
    renamed = account.call("PATCH", "/v3/api_keys/" + ids[0], json={"name": "renamed"})
    assert renamed.json() == {"api_key_id": ids[0], "name": "renamed"}
    nameless = account.call("POST", "/v3/api_keys", json={"scopes": ["mail.send"]})
    assert nameless.status_code == 400 and errors(nameless) == [("name", "missing required argument")]
    deleted = account.call("DELETE", "/v3/api_keys/" + ids[0])
    assert deleted.status_code == 204 and deleted.content == b""
    assert account.call("GET", "/v3/api_keys/" + ids[0]).status_code == 404
    assert account.call("DELETE", "/v3/api_keys/" + ids[0]).status_code == 404


def test_scopes_are_enforced_and_a_key_hands_on_no_more_than_it_has(sandbox):
    reader = Sendgrid(sandbox, scopes=["api_keys.read", "api_keys.create", "mail.send"])
    assert reader.call("GET", "/v3/api_keys").status_code == 200
    denied = reader.call("GET", "/v3/verified_senders")
    assert denied.status_code == 403 and errors(denied) == [(None, "access forbidden")]
    beyond = reader.call("POST", "/v3/api_keys", json={"name": "x", "scopes": ["alerts.read"]})
    assert beyond.status_code == 403
    assert reader.call("POST", "/v3/api_keys", json={"name": "x", "scopes": ["mail.send"]}).status_code == 201
    smtp_only = reader.call("POST", "/v3/api_keys", json={"name": "y", "scopes": ["mail.send"]}).json()["api_key"]
    assert reader.call("GET", "/v3/api_keys", key=smtp_only).status_code == 403


def test_an_account_holds_at_most_100_keys(account):
    for index in range(99):  # the admin key is the first
        assert account.call("POST", "/v3/api_keys", json={"name": "k%d" % index, "scopes": ["mail.send"]}).status_code == 201
    refused = account.call("POST", "/v3/api_keys", json={"name": "k100", "scopes": ["mail.send"]})
    assert refused.status_code == 403


# --- verified senders ---------------------------------------------------------------------------

def test_sender_created_unverified_with_a_verification_mail_and_required_fields_checked(account):
    body = account.new_sender(from_name="KARTO", city="Moscow")
    assert body["verified"] is False and body["locked"] is False and body["city"] == "Moscow"
    assert isinstance(body["id"], int)
    mails = account.state()["senders"][0]["verification_mails"]
    assert [mail["to"] for mail in mails] == [SENDER]
    missing = account.call("POST", "/v3/verified_senders", json={"from_email": SENDER, "reply_to": SENDER})
    assert missing.status_code == 400
    [error] = missing.json()["errors"]
    assert error["field"] == "nickname" and error["error_id"]
    too_long = account.call("POST", "/v3/verified_senders",
                            json={"nickname": "n", "from_email": "x@karto.test", "reply_to": "x@karto.test", "state": "MOW"})
    assert too_long.status_code == 400 and errors(too_long)[0][0] == "state"


def test_list_pages_by_limit_and_last_seen_id_and_filters_by_id(account):
    ids = [account.new_sender("s%d@karto.test" % i)["id"] for i in range(5)]
    page = account.call("GET", "/v3/verified_senders", params={"limit": 2}).json()["results"]
    assert [s["id"] for s in page] == ids[:2]
    rest = account.call("GET", "/v3/verified_senders", params={"limit": 2, "lastSeenID": ids[1]}).json()["results"]
    assert [s["id"] for s in rest] == ids[2:4]
    one = account.call("GET", "/v3/verified_senders", params={"id": ids[3]}).json()["results"]
    assert [s["id"] for s in one] == [ids[3]]


def test_patch_takes_the_create_schema_and_delete_removes(account):
    sender = account.new_sender()
    partial = account.call("PATCH", "/v3/verified_senders/%d" % sender["id"], json={"city": "Kazan"})
    assert partial.status_code == 400 and errors(partial)[0][0] == "nickname"
    full = account.call("PATCH", "/v3/verified_senders/%d" % sender["id"],
                        json={"nickname": SENDER, "from_email": SENDER, "reply_to": SENDER, "city": "Kazan"})
    assert full.status_code == 200 and full.json()["city"] == "Kazan"
    assert account.call("DELETE", "/v3/verified_senders/%d" % sender["id"]).status_code == 204
    assert account.call("DELETE", "/v3/verified_senders/%d" % sender["id"]).status_code == 404


def test_resend_mails_again_until_verified_by_the_click(sandbox, account):
    sender = account.new_sender()
    assert account.call("POST", "/v3/verified_senders/resend/%d" % sender["id"]).status_code == 204
    assert account.state()["senders"][0]["verification_mail_count"] == 2
    sandbox.control("POST", "/sendgrid/senders/verify", {"api_key": account.api_key, "from_email": SENDER})
    listed = account.call("GET", "/v3/verified_senders").json()["results"]
    assert listed[0]["verified"] is True
    assert account.call("POST", "/v3/verified_senders/resend/%d" % sender["id"]).status_code == 400
    assert account.call("GET", "/v3/verified_senders/steps_completed").json() == {
        "results": {"sender_verified": True, "domain_verified": False}}


def test_the_verification_link_token_verifies_and_auto_verify_clicks_later(sandbox, account):
    account.new_sender("a@karto.test")
    token = account.state()["senders"][0]["verification_mails"][0]["token"]
    assert account.call("GET", "/v3/verified_senders/verify/" + token).status_code == 204
    assert account.state()["senders"][0]["verified_by"] == "token"
    sandbox.control("POST", "/sendgrid/auto-verify", {"api_key": account.api_key, "after_seconds": 0.3})
    account.new_sender("b@karto.test")
    assert account.state()["senders"][1]["verified"] is False
    time.sleep(0.4)
    assert account.state()["senders"][1]["verified_by"] == "auto"


def test_domain_warn_list_and_its_setting(sandbox, account):
    default = account.call("GET", "/v3/verified_senders/domains").json()
    assert default == {"results": {"soft_failures": ["gmail.com"], "hard_failures": ["yahoo.com", "ro.ru", "rambler.ru"]}}
    sandbox.control("POST", "/sendgrid/accounts/settings", {"api_key": account.api_key, "hard_failures": []})
    assert account.call("GET", "/v3/verified_senders/domains").json()["results"]["hard_failures"] == []
    with pytest.raises(SandboxControlError):
        sandbox.control("POST", "/sendgrid/accounts/settings", {"api_key": account.api_key, "typo": 1})


def test_the_demo_account_is_seeded(sandbox):
    assert Sendgrid(sandbox, api_key=DEMO_SENDGRID_API_KEY).call("GET", "/v3/api_keys").status_code == 200


@pytest.mark.skipif(not SPECS.is_dir(), reason="../shared/specs is not present")
def test_answers_have_the_fields_of_the_spec_response_schemas(account):
    document = json.loads((SPECS / "sendgrid-verified-senders_v3.json").read_text())
    response_fields = set(document["components"]["schemas"]["VerifiedSenderResponse"]["properties"])
    assert set(account.new_sender()) == response_fields
    keys = json.loads((SPECS / "sendgrid-api-keys_v3.json").read_text())
    create = keys["paths"]["/v3/api_keys"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    body = account.call("POST", "/v3/api_keys", json={"name": "k", "scopes": ["mail.send"]}).json()
    assert set(body) == set(create["properties"])


# --- the relay backend ---------------------------------------------------------------------------

def test_relay_backend_in_process(tmp_path):
    api = SendgridApi(SandboxContext(tmp_path))
    state = api.add_account()
    admin = state["api_key"]
    [backend] = api.context.relay_backends.all()
    assert backend.name == "sendgrid" and backend.hosts == ("smtp.sendgrid.net",)
    assert backend.authenticate("karto-user", admin) is None  # not SendGrid's login
    assert backend.authenticate("apikey", "SG.revoked") == (False, AUTH_REVOKED_REPLY)
    account = api._accounts[state["account_id"]]
    no_mail = api._new_key(account, "reader", ["alerts.read"])
    assert backend.authenticate("apikey", no_mail.value) == (False, AUTH_REFUSED_REPLY)
    smtp = api._new_key(account, "smtp", ["mail.send"])
    ok, _reply, identity = backend.authenticate("apikey", smtp.value)
    # The login is always "apikey": the session's identity is the key's account.
    assert ok is True and identity == account.account_id
    assert backend.sender_allowed(identity, "KARTO <%s>" % SENDER) == (False, SENDER_REFUSED_REPLY)
    account.senders[1] = Sender(1, {"from_email": SENDER, "nickname": SENDER, "reply_to": SENDER}, verified=True)
    assert backend.sender_allowed(identity, "KARTO <%s>" % SENDER.upper())[0] is True
    # Another account's session does not see this account's verified sender.
    other = api._accounts[api.add_account()["account_id"]]
    assert backend.sender_allowed(other.account_id, SENDER) == (False, SENDER_REFUSED_REPLY)


def test_relay_session_refuses_an_unverified_from_with_sendgrids_550_after_the_data(sandbox, account):
    key = account.call("POST", "/v3/api_keys", json={"name": "smtp", "scopes": ["mail.send"]}).json()["api_key"]
    account.new_sender()  # not verified yet
    context = ssl.create_default_context(cafile=sandbox.ca_cert)
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_relay_port("starttls"), timeout=TIMEOUT) as client:
        client.starttls(context=context)
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("apikey", key[:-1] + ("A" if key[-1] != "A" else "B"))
        assert refused.value.smtp_code == 535 and b"invalid, expired, or revoked" in refused.value.smtp_error
        client.login("apikey", key)
        with pytest.raises(smtplib.SMTPDataError) as refused_at_data:
            client.sendmail(SENDER, ["x@karto-mail.ru"], ("From: %s\r\nSubject: x\r\n\r\nx\r\n" % SENDER).encode())
        assert refused_at_data.value.smtp_code == 550
        assert refused_at_data.value.smtp_error.decode() == SENDER_REFUSED_REPLY[4:]
    sandbox.control("POST", "/sendgrid/senders/verify", {"api_key": account.api_key, "from_email": SENDER})
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_relay_port("starttls"), timeout=TIMEOUT) as client:
        client.starttls(context=context)
        client.login("apikey", key)
        recipient = "sendgrid-%d@karto-mail.ru" % int(time.time() * 1000)
        assert client.sendmail(SENDER, [recipient], ("From: %s\r\nSubject: ok\r\n\r\nok\r\n" % SENDER).encode()) == {}
    assert [mail["subject"] for mail in sandbox.inbox(recipient)] == ["ok"]
