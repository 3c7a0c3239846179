"""The sandbox's mail path end to end: SMTP settings stored through the Management API emulator,
the emulated Supabase Auth sending over real SMTP (as GoTrue's gomail client does) to the local
relay, which authenticates against the SMTP2GO emulator, and the outcome in the inbox and the Auth
logs (read through logs.all). Plain HTTP and smtplib, the way the collection will see them."""

import base64
import json
import re
import smtplib
import ssl
import time
import urllib.parse
import uuid

import pytest
import requests

from tests.sandbox.fixture import REPO_ROOT
from tests.sandbox.seed import DEMO_ACCESS_TOKEN, DEMO_PROJECT_REF, DEMO_STAGING_PROJECT_REF
from tests.sandbox.supabase_auth import required_character_sets

SPEC_PATH = REPO_ROOT.parent / "shared" / "specs" / "supabase-management-api.json"
TIMEOUT = 15
SENDER = "karto.help@rambler.ru"
SENDER_NAME = "Karto"
AUTH_FAILED = "535 Incorrect authentication data"


class Relay:
    """An SMTP2GO account with one SMTP user (known password) and a verified single sender."""

    def __init__(self, sandbox):
        self.api_key, self.username, self.password = sandbox.add_smtp2go_relay_user(SENDER, "pw-")


class Project:
    """A Supabase project: its Management API (token) and its Auth API (keys)."""

    def __init__(self, sandbox, ref, token):
        self.sandbox, self.ref, self.token = sandbox, ref, token
        self.keys = sandbox.project_api_keys(ref)
        self.api = f"{sandbox.url('supabase_api')}/v1/projects/{ref}"

    def configure(self, relay, **overrides):
        settings = {
            "smtp_host": "mail.smtp2go.com", "smtp_port": "465", "smtp_user": relay.username,
            "smtp_pass": relay.password, "smtp_admin_email": SENDER, "smtp_sender_name": SENDER_NAME,
            "smtp_max_frequency": 60, "rate_limit_email_sent": 30, **overrides,
        }
        response = requests.patch(f"{self.api}/config/auth", json=settings, headers=self.bearer(), timeout=TIMEOUT)
        assert response.status_code == 200, response.text

    def bearer(self, token=None):
        return {"Authorization": f"Bearer {token or self.token}"}

    def auth(self, path, body, key="anon", headers=None):
        return requests.post(f"{self.sandbox.auth_url()}{path}", json=body, timeout=TIMEOUT,
                             headers={"apikey": self.keys[key], **(headers or {})})

    def logs(self, **query):
        return requests.get(f"{self.api}/analytics/endpoints/logs.all", params=query, headers=self.bearer(),
                            timeout=TIMEOUT)

    def request_id_of(self, response):
        """The request id of an Auth answer. GoTrue sends no X-Request-Id: a 5xx carries it as
        `error_id`; for any other answer it is the newest "request completed" line of this project for
        that path (every test has a project of its own, so that line is this request's)."""
        try:
            error_id = response.json().get("error_id")
        except (ValueError, AttributeError):
            error_id = None
        if error_id:
            return error_id
        path = urllib.parse.urlsplit(response.request.url).path.removeprefix("/auth/v1")
        for row in self.sandbox.auth_logs(self.ref):  # newest first
            if row["event"].get("msg") == "request completed" and row["event"].get("path") == path:
                return row["event"]["request_id"]
        raise AssertionError(f"no request completed line for {path}")

    def request_log_of(self, response):
        """The Auth log lines of the request `response` answered, oldest first."""
        return self.request_log(self.request_id_of(response))

    def request_log(self, request_id):
        """The project's Auth log lines of one request (by its request_id), oldest first."""
        events = [row["event"] for row in reversed(self.sandbox.auth_logs(self.ref))]
        return [event for event in events
                if event.get("request_id") == request_id
                or event.get("auth_audit_event", {}).get("request_id") == request_id]

    def mail_send_log(self, address):
        """The "mail.send" lines for one recipient (GoTrue logs them without a request_id), oldest first."""
        events = [row["event"] for row in reversed(self.sandbox.auth_logs(self.ref))]
        return [event for event in events if event.get("msg") == "mail.send" and event.get("mail_to") == address]


def new_address():
    return f"user-{uuid.uuid4().hex[:12]}@karto-mail.ru"


def error_line(events):
    return next(event for event in events if event.get("level") == "error" and event.get("msg") != "request completed")


def completed_line(events):
    return next(event for event in events if event.get("msg") == "request completed")


@pytest.fixture
def relay(sandbox):
    return Relay(sandbox)


@pytest.fixture
def project(sandbox):
    return Project(sandbox, *sandbox.add_supabase_project())


# Management API: api-keys


def test_api_keys_lists_legacy_and_new_keys_fixed_per_project(project):
    revealed = requests.get(f"{project.api}/api-keys", params={"reveal": "true"}, headers=project.bearer(),
                            timeout=TIMEOUT)
    hidden = requests.get(f"{project.api}/api-keys", headers=project.bearer(), timeout=TIMEOUT)

    assert revealed.status_code == hidden.status_code == 200
    assert revealed.headers["X-RateLimit-Limit"] == "120"
    items = revealed.json()
    assert [(item["name"], item["type"]) for item in items] == [
        ("anon", "legacy"), ("service_role", "legacy"), ("default", "publishable"), ("default", "secret")]
    anon, service_role, publishable, secret = (item["api_key"] for item in items)
    assert anon.count(".") == 2 and service_role.count(".") == 2
    claims = json.loads(base64.urlsafe_b64decode(anon.split(".")[1] + "=="))
    assert claims["role"] == "anon" and claims["ref"] == project.ref
    assert publishable.startswith("sb_publishable_") and secret.startswith("sb_secret_")
    assert items[3]["prefix"] == secret[:14] and items[3]["secret_jwt_template"] == {"role": "service_role"}
    assert project.keys == {"anon": anon, "service_role": service_role, "publishable": publishable, "secret": secret}
    # Without reveal=true the two secret keys are not shown.
    assert [item["api_key"] for item in hidden.json()] == [anon, None, publishable, None]
    # Fixed per project: asking again gives the same keys.
    again = requests.get(f"{project.api}/api-keys?reveal=true", headers=project.bearer(), timeout=TIMEOUT).json()
    assert again == items


def test_api_keys_items_follow_the_openapi_spec(project):
    if not SPEC_PATH.exists():
        pytest.skip("../shared/specs is not present")
    schema = json.loads(SPEC_PATH.read_text())["components"]["schemas"]["ApiKeyResponse"]
    items = requests.get(f"{project.api}/api-keys?reveal=true", headers=project.bearer(), timeout=TIMEOUT).json()
    for item in items:
        assert list(item) == list(schema["properties"])
        assert set(schema["required"]) <= set(item)
        assert item["type"] in schema["properties"]["type"]["enum"]


def test_api_keys_refuses_unknown_tokens_and_other_projects(sandbox, project):
    other_ref = sandbox.add_supabase_project()[0]

    unknown = requests.get(f"{project.api}/api-keys", headers=project.bearer("sbp_" + "0" * 40), timeout=TIMEOUT)
    other = requests.get(f"{sandbox.url('supabase_api')}/v1/projects/{other_ref}/api-keys",
                         headers=project.bearer(), timeout=TIMEOUT)

    assert (unknown.status_code, unknown.json()) == (401, {"message": "Unauthorized"})
    assert (other.status_code, other.json()) == (404, {"message": f"Project {other_ref} not found"})


def test_second_demo_project_is_seeded_like_the_first(sandbox):
    configs = [requests.get(f"{sandbox.url('supabase_api')}/v1/projects/{ref}/config/auth", timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {DEMO_ACCESS_TOKEN}"})
               for ref in (DEMO_PROJECT_REF, DEMO_STAGING_PROJECT_REF)]

    assert [response.status_code for response in configs] == [200, 200]
    smtp = [{key: value for key, value in response.json().items() if key.startswith("smtp_")} for response in configs]
    assert smtp[1] == {"smtp_admin_email": None, "smtp_host": None, "smtp_max_frequency": 60, "smtp_pass": None,
                       "smtp_port": None, "smtp_sender_name": None, "smtp_user": None}
    assert sandbox.project_api_keys(DEMO_STAGING_PROJECT_REF) != sandbox.project_api_keys(DEMO_PROJECT_REF)


# Auth sends over SMTP: success


def test_otp_for_a_new_address_sends_the_confirmation_over_implicit_tls_on_465(sandbox, relay, project):
    project.configure(relay, smtp_port="465")
    address = new_address()

    response = project.auth("/otp", {"email": address})

    assert (response.status_code, response.json()) == (200, {})
    assert "X-Request-Id" not in response.headers  # GoTrue sends none
    [mail] = sandbox.inbox(address)
    assert mail["headers"]["From"] == f'"{SENDER_NAME}" <{SENDER}>'
    assert mail["headers"]["To"] == address
    assert (mail["mail_from"], mail["rcpt_tos"], mail["auth_user"]) == (SENDER, [address], relay.username)
    assert (mail["listener"], mail["tls"], mail["port"]) == (
        "implicit_tls", "implicit", sandbox.smtp_relay_port("implicit_tls"))
    assert mail["subject"] == "Confirm Your Signup"
    assert mail["headers"]["Content-Type"] == "text/html; charset=UTF-8"
    assert f"https://{project.ref}.supabase.co/auth/v1/verify?token=" in mail["body"]
    assert "type=signup" in mail["body"]
    events = project.request_log_of(response)
    assert [event.get("msg") for event in events] == ["audit_event", "request completed"]
    [mail_send] = project.mail_send_log(address)
    assert set(mail_send) == {"event", "level", "mail_from", "mail_to", "mail_type", "msg", "time"}
    assert {key: mail_send[key] for key in ("event", "level", "mail_from", "mail_to", "mail_type")} == {
        "event": "mail.send", "level": "info", "mail_from": f'"{SENDER_NAME}" <{SENDER}>', "mail_to": address,
        "mail_type": "confirmation"}
    completed = events[1]
    assert (completed["status"], completed["path"], completed["method"], completed["component"]) == (
        200, "/otp", "POST", "api")
    assert completed["auth_event"]["actor_username"] == address
    assert [user["email"] for user in sandbox.auth_users(project.ref)] == [address]


def test_magic_link_for_a_confirmed_user_goes_over_starttls_on_587(sandbox, relay, project):
    project.configure(relay, smtp_port="587")
    address = new_address()
    sandbox.add_auth_user(project.ref, address, confirmed=True)

    response = project.auth("/otp", {"email": address, "create_user": False})

    assert response.status_code == 200, response.text
    [mail] = sandbox.inbox(address)
    assert (mail["listener"], mail["tls"], mail["subject"]) == ("starttls", "starttls", "Your Magic Link")
    assert "type=magiclink" in mail["body"]
    commands = [(entry["path"], entry["status"], entry["json"]["tls"])
                for entry in sandbox.journal(service="smtp_relay")
                if entry["json"]["port"] == sandbox.smtp_relay_port("starttls")][-8:]
    assert commands == [("EHLO", 250, None), ("STARTTLS", 220, "starttls"), ("EHLO", 250, "starttls"),
                        ("AUTH", 235, "starttls"), ("MAIL", 250, "starttls"), ("RCPT", 250, "starttls"),
                        ("DATA", 250, "starttls"), ("QUIT", 221, "starttls")]
    events = project.request_log_of(response)
    assert events[0]["auth_audit_event"]["action"] == "user_recovery_requested"
    assert [event["mail_type"] for event in project.mail_send_log(address)] == ["magic_link"]


def test_recover_answers_200_for_unknown_addresses_and_mails_known_ones(sandbox, relay, project):
    project.configure(relay)
    known, unknown = new_address(), new_address()
    sandbox.add_auth_user(project.ref, known)

    unknown_response = project.auth("/recover", {"email": unknown})
    known_response = project.auth("/recover", {"email": known})

    assert (unknown_response.status_code, unknown_response.json()) == (200, {})
    assert (known_response.status_code, known_response.json()) == (200, {})
    assert sandbox.inbox(unknown) == []
    assert [mail["subject"] for mail in sandbox.inbox(known)] == ["Reset Your Password"]


def test_invite_needs_the_service_role_and_mails_the_invitation(sandbox, relay, project):
    project.configure(relay)
    address = new_address()

    without = project.auth("/invite", {"email": address})
    as_anon = project.auth("/invite", {"email": address}, headers=project.bearer(project.keys["anon"]))
    as_admin = project.auth("/invite", {"email": address}, headers=project.bearer(project.keys["service_role"]))

    assert (without.status_code, without.json()["error_code"]) == (401, "no_authorization")
    assert (as_anon.status_code, as_anon.json()) == (
        403, {"code": 403, "error_code": "not_admin", "msg": "User not allowed"})
    assert as_admin.status_code == 200, as_admin.text
    assert as_admin.json()["email"] == address and as_admin.json()["invited_at"]
    assert [mail["subject"] for mail in sandbox.inbox(address)] == ["You have been invited"]
    audit = project.request_log_of(as_admin)[0]["auth_audit_event"]
    assert (audit["action"], audit["actor_username"]) == ("user_invited", "service_role")


def test_invite_with_new_api_keys_follows_the_gateway_s_authorization_rules(sandbox, relay, project):
    # "You cannot send a publishable or secret key in the Authorization: Bearer ... header, except if
    # the value exactly equals the apikey header" (supabase.com/docs/guides/api/api-keys).
    project.configure(relay)
    keys = project.keys
    accepted = {
        "secret in apikey alone": {"apikey": keys["secret"]},
        "secret in both": {"apikey": keys["secret"], "Authorization": f"Bearer {keys['secret']}"},
        "legacy service_role JWT in both": {"apikey": keys["service_role"],
                                            "Authorization": f"Bearer {keys['service_role']}"},
    }
    refused = {
        "anon apikey, secret bearer": {"apikey": keys["anon"], "Authorization": f"Bearer {keys['secret']}"},
        "publishable apikey, secret bearer": {"apikey": keys["publishable"],
                                              "Authorization": f"Bearer {keys['secret']}"},
    }
    not_admin = {
        "publishable in apikey alone": {"apikey": keys["publishable"]},
        "publishable in both": {"apikey": keys["publishable"], "Authorization": f"Bearer {keys['publishable']}"},
    }

    def invite(headers):
        address = new_address()
        response = requests.post(f"{sandbox.auth_url()}/invite", json={"email": address}, headers=headers,
                                 timeout=TIMEOUT)
        return address, response

    for case, headers in accepted.items():
        address, response = invite(headers)
        assert response.status_code == 200, (case, response.text)
        assert [mail["subject"] for mail in sandbox.inbox(address)] == ["You have been invited"], case
    logged = len(sandbox.auth_logs(project.ref))
    for case, headers in refused.items():
        address, response = invite(headers)
        assert (response.status_code, response.json()) == (401, {
            "message": "Invalid API key",
            "hint": "A publishable or secret API key may only be sent in the Authorization header when it "
                    "equals the `apikey` header."}), case
        assert sandbox.inbox(address) == [], case
    assert len(sandbox.auth_logs(project.ref)) == logged  # refused by the gateway: Auth never saw them
    for case, headers in not_admin.items():
        _address, response = invite(headers)
        assert (response.status_code, response.json()["error_code"]) == (403, "not_admin"), case


def test_signup_enforces_the_password_rules_of_the_auth_config(project):
    response = requests.patch(f"{project.api}/config/auth", headers=project.bearer(), timeout=TIMEOUT, json={
        "password_min_length": 10,
        "password_required_characters": "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789"})
    assert response.status_code == 200, response.text

    short_and_plain = project.auth("/signup", {"email": new_address(), "password": "abcdef"})
    long_and_plain = project.auth("/signup", {"email": new_address(), "password": "abcdefghijkl"})
    newer_shape = project.auth("/signup", {"email": new_address(), "password": "abcdef"},
                               headers={"X-Supabase-Api-Version": "2024-01-01"})

    sets = "abcdefghijklmnopqrstuvwxyz, ABCDEFGHIJKLMNOPQRSTUVWXYZ, 0123456789"
    assert (short_and_plain.status_code, short_and_plain.json()) == (422, {
        "code": 422, "error_code": "weak_password",
        "msg": f"Password should be at least 10 characters. Password should contain at least one character of "
               f"each: {sets}.",
        "weak_password": {"reasons": ["length", "characters"]}})
    assert long_and_plain.json()["weak_password"] == {"reasons": ["characters"]}
    assert (newer_shape.status_code, newer_shape.json()["code"]) == (422, "weak_password")
    assert newer_shape.json()["weak_password"] == {"reasons": ["length", "characters"]}
    good = project.auth("/signup", {"email": new_address(), "password": "Abcdefghij1"})
    # Past the password rules; without custom SMTP the built-in mailer refuses a stranger.
    assert good.json()["error_code"] == "email_address_not_authorized"


def test_required_character_sets_are_decoded_as_gotrue_does():
    # The spec's strictest value: its symbol set holds a colon, written as a backslash-escaped ":".
    symbols = "!@#$%^&*()_+-=[]{};'" + "\\\\" + ':"|<>?,./`~'  # ...;'\\:"|... (two backslashes, as in the spec)
    value = "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789:" + symbols

    assert required_character_sets(value) == [
        "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
        "!@#$%^&*()_+-=[]{};'" + "\\" + ':"|<>?,./`~']
    assert required_character_sets("") == [] and required_character_sets(None) == []
    assert required_character_sets("ab::cd") == ["ab", "cd"]


def test_signup_of_a_confirmed_user_answers_200_and_sends_no_mail(sandbox, relay, project):
    project.configure(relay)
    address = new_address()
    existing = sandbox.add_auth_user(project.ref, address, confirmed=True)

    response = project.auth("/signup", {"email": address, "password": "a-long-password"})

    assert response.status_code == 200, response.text
    user = response.json()
    assert user["email"] == address and user["id"] != existing["id"]  # an obfuscated look-alike
    assert user["email_confirmed_at"] is None and user["identities"] == []
    assert sandbox.inbox(address) == [] and project.mail_send_log(address) == []
    audit = project.request_log_of(response)[0]["auth_audit_event"]
    assert audit["action"] == "user_repeated_signup"


def test_signup_with_mailer_autoconfirm_answers_200_and_sends_no_mail(sandbox, relay, project):
    project.configure(relay, mailer_autoconfirm=True)
    address, existing = new_address(), new_address()
    sandbox.add_auth_user(project.ref, existing, confirmed=True)

    response = project.auth("/signup", {"email": address, "password": "a-long-password"})
    again = project.auth("/signup", {"email": existing, "password": "a-long-password"})

    assert response.status_code == 200, response.text
    assert response.json()["user"]["email_confirmed_at"] and response.json()["token_type"] == "bearer"
    assert sandbox.inbox(address) == [] and project.mail_send_log(address) == []
    # GoTrue: an existing user under autoconfirm is "User already registered" (422 user_already_exists).
    assert (again.status_code, again.json()["error_code"]) == (422, "user_already_exists")
    assert sandbox.inbox(existing) == []


@pytest.mark.parametrize("headers, status, body", [
    ({}, 401, {"message": "No API key found in request", "hint": "No `apikey` request header or url param was found."}),
    ({"apikey": "sb_publishable_notakeyofanyproject"}, 401,
     {"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."}),
])
def test_auth_requests_without_a_project_key_are_refused(sandbox, headers, status, body):
    response = requests.post(f"{sandbox.auth_url()}/otp", json={"email": new_address()}, headers=headers,
                             timeout=TIMEOUT)

    assert (response.status_code, response.json()) == (status, body)


def test_every_project_key_selects_its_project(sandbox, relay, project):
    project.configure(relay)
    addresses = {kind: new_address() for kind in ("anon", "publishable", "secret", "service_role")}

    statuses = {kind: project.auth("/otp", {"email": address}, key=kind).status_code
                for kind, address in addresses.items()}

    assert statuses == dict.fromkeys(addresses, 200)
    assert sorted(user["email"] for user in sandbox.auth_users(project.ref)) == sorted(addresses.values())


# Auth sends over SMTP: failures, as GoTrue reports them


def test_wrong_smtp_password_is_500_and_the_log_has_the_relays_535(sandbox, relay, project):
    project.configure(relay, smtp_port="587", smtp_pass="not the password")
    address = new_address()

    response = project.auth("/otp", {"email": address})

    request_id = response.json()["error_id"]
    assert response.status_code == 500
    assert response.json() == {"code": 500, "error_code": "unexpected_failure",
                               "msg": "Error sending confirmation email", "error_id": request_id}
    assert uuid.UUID(request_id) and "X-Request-Id" not in response.headers
    assert response.headers["x-sb-error-code"] == "unexpected_failure"
    events = project.request_log(request_id)  # its audit, error and completed lines carry error_id as request_id
    assert [event["msg"] for event in events] == ["audit_event", "500: Error sending confirmation email",
                                                  "request completed"]
    error = error_line(events)
    assert error["error"] == AUTH_FAILED
    assert (error["msg"], error["path"], error["method"], error["component"]) == (
        "500: Error sending confirmation email", "/otp", "POST", "api")
    assert error["auth_event"]["actor_username"] == address
    assert error["auth_event"]["action"] == "user_confirmation_requested"
    completed = completed_line(events)
    assert (completed["status"], completed["error_code"]) == (500, "unexpected_failure")
    assert sandbox.inbox(address) == []
    assert sandbox.auth_users(project.ref) == []  # the signup was rolled back
    auth = [entry for entry in sandbox.journal(service="smtp_relay", path_contains="AUTH")
            if entry["json"]["user"] == relay.username]
    assert [(entry["status"], entry["json"]["tls"]) for entry in auth] == [(535, "starttls")]


def test_failed_magic_link_names_the_magic_link_and_the_newer_api_version_shape(sandbox, relay, project):
    project.configure(relay, smtp_pass="not the password")
    address = new_address()
    sandbox.add_auth_user(project.ref, address)

    response = project.auth("/otp", {"email": address}, headers={"X-Supabase-Api-Version": "2024-01-01"})

    assert response.status_code == 500
    assert response.json() == {"code": "unexpected_failure", "message": "Error sending magic link email"}
    error = error_line(project.request_log_of(response))
    assert (error["msg"], error["error"], error["auth_event"]["action"]) == (
        "500: Error sending magic link email", AUTH_FAILED, "user_recovery_requested")


def test_unverified_sender_is_500_and_the_log_has_smtp2go_s_550_at_the_end_of_data(sandbox, relay, project):
    # SMTP2GO's relay backend refuses at the end of DATA by default, on the From header (observed).
    project.configure(relay, smtp_admin_email="karto.help@ro.ru")
    address = new_address()

    response = project.auth("/otp", {"email": address})

    assert response.status_code == 500
    error = error_line(project.request_log_of(response))
    assert error["error"] == ("gomail: could not send email 1: 550 From header sender domain not verified (ro.ru)\n"
                              "On your Sending > Verified Senders page\n"
                              "verify the sender domain or email to be allowed to send.")
    commands = [(entry["path"], entry["status"], entry["json"]["argument"])
                for entry in sandbox.journal(service="smtp_relay")
                if entry["json"]["user"] == relay.username and entry["path"] in ("MAIL", "DATA")]
    assert commands == [("MAIL", 250, "FROM:<karto.help@ro.ru> BODY=8BITMIME"), ("DATA", 550, None)]
    assert sandbox.inbox(address) == []


def test_relay_can_refuse_the_sender_at_mail_from_instead(sandbox, relay, project):
    project.configure(relay, smtp_admin_email="karto.help@ro.ru")
    sandbox.set_smtp_relay_knobs(sender_check="mail_from")
    try:
        response = project.auth("/otp", {"email": new_address()})
    finally:
        sandbox.set_smtp_relay_knobs(sender_check=None)

    assert response.status_code == 500
    assert error_line(project.request_log_of(response))["error"].startswith(
        "gomail: could not send email 1: 550 From header sender domain not verified (ro.ru)\n")
    commands = [(entry["path"], entry["status"]) for entry in sandbox.journal(service="smtp_relay")
                if entry["json"]["user"] == relay.username and entry["path"] in ("MAIL", "RCPT", "DATA")]
    assert commands == [("MAIL", 550)]
    assert sandbox.control("GET", "/smtp-relay/knobs")["sender_check"] == "backend"


def test_port_8465_makes_gotrue_talk_plain_smtp_to_a_tls_port_until_the_request_times_out(sandbox, relay, project):
    # gomail uses implicit TLS only for port 465; on 8465 it waits for a greeting the TLS port never
    # sends, and GoTrue's request deadline (api_max_request_duration, here 1 s) answers 504.
    project.configure(relay, smtp_port="8465", api_max_request_duration=1)
    address = new_address()

    started = time.monotonic()
    response = project.auth("/otp", {"email": address})
    elapsed = time.monotonic() - started

    request_id = response.json()["error_id"]
    assert response.status_code == 504
    assert response.json() == {"code": 504, "error_code": "request_timeout",
                               "msg": "Processing this request timed out, please retry after a moment.",
                               "error_id": request_id}
    assert 0.9 <= elapsed < 5
    error = error_line(project.request_log(request_id))
    assert (error["error"], error["msg"]) == (
        "context deadline exceeded", "504: Processing this request timed out, please retry after a moment.")
    assert not [entry for entry in sandbox.journal(service="smtp_relay") if entry["json"]["user"] == relay.username]
    assert sandbox.inbox(address) == []


def test_implicit_tls_relay_port_on_465_via_localhost_is_the_stored_port_number_that_counts(sandbox, relay, project):
    # Stored host 127.0.0.1 connects straight to the stored port: the relay's implicit-TLS port under
    # its own number (not 465) gets plain SMTP; its STARTTLS port works.
    plain_port, tls_port = sandbox.smtp_relay_port("starttls"), sandbox.smtp_relay_port("implicit_tls")
    project.configure(relay, smtp_host="127.0.0.1", smtp_port=str(plain_port))
    address = new_address()

    response = project.auth("/otp", {"email": address})

    assert response.status_code == 200, response.text
    assert [mail["listener"] for mail in sandbox.inbox(address)] == ["starttls"]
    assert tls_port != 465


def test_unknown_smtp_host_fails_with_go_s_lookup_error(relay, project):
    project.configure(relay, smtp_host="smtp.karto-nowhere.example")

    response = project.auth("/otp", {"email": new_address()})

    assert response.status_code == 500
    assert error_line(project.request_log_of(response))["error"] == \
        "dial tcp: lookup smtp.karto-nowhere.example: no such host"


def test_a_port_the_relay_does_not_publish_times_out_after_the_connect_timeout(sandbox, relay, project):
    sandbox.set_auth_knobs(project.ref, smtp_connect_timeout_seconds=0.3)
    project.configure(relay, smtp_port="2526")

    response = project.auth("/otp", {"email": new_address()})

    assert response.status_code == 500
    assert error_line(project.request_log_of(response))["error"] == \
        "dial tcp 203.0.113.25:2526: i/o timeout"


def test_a_relay_port_without_starttls_makes_go_refuse_to_send_the_password(sandbox, relay, project):
    project.configure(relay, smtp_port="587")
    sandbox.set_smtp_relay_knobs(plain_port_mode="no_tls")
    try:
        response = project.auth("/otp", {"email": new_address()})
    finally:
        sandbox.set_smtp_relay_knobs(plain_port_mode=None)

    assert response.status_code == 500
    assert error_line(project.request_log_of(response))["error"] == "unencrypted connection"


def test_a_relay_fault_at_data_is_reported_wrapped_by_gomail(sandbox, relay, project):
    project.configure(relay)
    sandbox.inject_fault(service="smtp_relay", path_contains="DATA", action="status", status=554,
                         body="5.7.1 Message rejected")

    response = project.auth("/otp", {"email": new_address()})

    assert response.status_code == 500
    assert error_line(project.request_log_of(response))["error"] == \
        "gomail: could not send email 1: 554 5.7.1 Message rejected"
    [data] = [entry for entry in sandbox.journal(service="smtp_relay", path_contains="DATA")
              if entry["json"]["user"] == relay.username]
    assert (data["status"], data["fault"], data["fault_action"]) == (554, True, "status")


def test_a_lost_answer_to_data_delivers_the_mail_but_gomail_sees_eof(sandbox, relay, project):
    project.configure(relay)
    address = new_address()
    sandbox.inject_fault(service="smtp_relay", path_contains="DATA", action="drop_answer")

    response = project.auth("/otp", {"email": address})

    assert response.status_code == 500
    assert error_line(project.request_log_of(response))["error"] == \
        "gomail: could not send email 1: EOF"
    assert len(sandbox.inbox(address)) == 1
    [data] = [entry for entry in sandbox.journal(service="smtp_relay", path_contains="DATA")
              if entry["json"]["user"] == relay.username]
    assert (data["status"], data["fault"], data["fault_action"]) == (250, False, "drop_answer")


def test_consolidated_log_format_puts_the_error_on_the_request_completed_line(sandbox, relay, project):
    sandbox.set_auth_knobs(project.ref, log_format="consolidated")
    project.configure(relay, smtp_pass="not the password")

    response = project.auth("/otp", {"email": new_address()})

    events = [event for event in project.request_log_of(response)
              if event.get("component") == "api"]
    assert len(events) == 1
    assert {key: events[0][key] for key in ("msg", "status", "error", "error_code", "level")} == {
        "msg": "request completed", "status": 500, "error": AUTH_FAILED, "error_code": "unexpected_failure",
        "level": "error"}


# Auth's own limits


def test_smtp_max_frequency_refuses_a_second_mail_to_the_same_user(sandbox, relay, project):
    project.configure(relay, smtp_max_frequency=60)
    address = new_address()

    first = project.auth("/otp", {"email": address})
    second = project.auth("/otp", {"email": address})

    assert first.status_code == 200
    assert second.status_code == 429
    body = second.json()
    assert (body["code"], body["error_code"]) == (429, "over_email_send_rate_limit")
    seconds = int(re.fullmatch(r"For security purposes, you can only request this after (\d+) seconds\.",
                               body["msg"]).group(1))
    assert 55 <= seconds <= 60
    assert len(sandbox.inbox(address)) == 1
    warning = next(event for event in project.request_log_of(second)
                   if event.get("level") == "warning")
    assert warning["msg"] == f"429: {body['msg']}"


def test_rate_limit_email_sent_caps_mails_per_hour(sandbox, relay, project):
    project.configure(relay, rate_limit_email_sent=1)

    first = project.auth("/otp", {"email": new_address()})
    second = project.auth("/otp", {"email": new_address()})

    assert first.status_code == 200
    assert (second.status_code, second.json()) == (429, {
        "code": 429, "error_code": "over_email_send_rate_limit", "msg": "email rate limit exceeded"})


def test_without_custom_smtp_the_built_in_mailer_only_mails_team_members(sandbox, project):
    member, stranger = new_address(), new_address()
    sandbox.add_team_member(project.ref, member)

    refused = project.auth("/otp", {"email": stranger})
    accepted = project.auth("/otp", {"email": member})

    assert (refused.status_code, refused.json()) == (400, {
        "code": 400, "error_code": "email_address_not_authorized",
        "msg": f'Email address "{stranger}" cannot be used as it is not authorized'})
    assert accepted.status_code == 200
    assert sandbox.inbox(member) == []  # Supabase's own mailer: nothing goes through the sandbox relay
    assert [event["mail_from"] for event in project.mail_send_log(member)] == [
        "Supabase Auth <noreply@mail.app.supabase.io>"]
    assert project.mail_send_log(stranger) == []


# The relay, seen from any SMTP client


def test_relay_refuses_auth_and_mail_before_starttls_and_mail_before_auth(sandbox, relay):
    context = ssl.create_default_context(cafile=sandbox.ca_cert)
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_relay_port("starttls"), timeout=TIMEOUT) as client:
        client.ehlo("karto.test")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0u\0p").decode()) == (
            530, b"Must issue a STARTTLS command first")
        assert client.docmd("MAIL", f"FROM:<{SENDER}>")[0] == 530
        client.starttls(context=context)
        client.ehlo("karto.test")
        assert client.docmd("MAIL", f"FROM:<{SENDER}>") == (530, b"5.7.0 Authentication required")
        client.user, client.password = relay.username, relay.password
        assert client.auth("LOGIN", client.auth_login)[0] == 235
        assert client.sendmail(SENDER, ["inbox-check@karto-mail.ru"],
                               f"From: {SENDER}\r\nSubject: hi\r\n\r\nbody\r\n".encode()) == {}


def test_implicit_tls_port_checks_credentials_and_senders(sandbox, relay):
    context = ssl.create_default_context(cafile=sandbox.ca_cert)
    with smtplib.SMTP_SSL("127.0.0.1", sandbox.smtp_relay_port("implicit_tls"), context=context,
                          timeout=TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(relay.username, "wrong")
        assert (refused.value.smtp_code, refused.value.smtp_error) == (535, b"Incorrect authentication data")
        client.login(relay.username, relay.password)
        # The From header is what SMTP2GO checks, after the data (the envelope sender is verified here).
        with pytest.raises(smtplib.SMTPDataError) as refused_at_data:
            client.sendmail(SENDER, ["x@karto-mail.ru"], b"From: someone@gmail.com\r\nSubject: x\r\n\r\nx\r\n")
        assert refused_at_data.value.smtp_code == 550
        assert b"From header sender domain not verified (gmail.com)" in refused_at_data.value.smtp_error


def test_inbox_filters_by_recipient_and_clears(sandbox, relay):
    context = ssl.create_default_context(cafile=sandbox.ca_cert)
    first, second = new_address(), new_address()
    with smtplib.SMTP_SSL("127.0.0.1", sandbox.smtp_relay_port("implicit_tls"), context=context,
                          timeout=TIMEOUT) as client:
        client.login(relay.username, relay.password)
        client.sendmail(SENDER, [first], f"From: {SENDER}\r\nTo: {first}\r\nSubject: one\r\n\r\n1\r\n".encode())
        client.sendmail(SENDER, [first, second], f"From: {SENDER}\r\nSubject: two\r\n\r\n2\r\n".encode())

    assert [mail["subject"] for mail in sandbox.inbox(first)] == ["one", "two"]
    [mail] = sandbox.inbox(second)
    assert mail["rcpt_tos"] == [first, second] and mail["body"].strip() == "2"
    with open(mail["eml_path"], "rb") as eml:
        assert b"Subject: two" in eml.read()
    assert sandbox.clear_inbox() >= 2
    assert sandbox.inbox(first) == []


# logs.all


def test_logs_all_returns_auth_rows_newest_first_with_the_sql_limit(sandbox, relay, project):
    project.configure(relay)
    response = project.auth("/otp", {"email": new_address()})
    now = time.time()

    logs = project.logs(sql="select id, timestamp, event_message from auth_logs order by timestamp desc limit 2",
                        iso_timestamp_start=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 300)),
                        iso_timestamp_end=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60)))

    assert logs.status_code == 200
    assert logs.headers["X-RateLimit-Limit"] == "30"
    body = logs.json()
    assert body["error"] is None and len(body["result"]) == 2
    for row in body["result"]:
        assert set(row) == {"id", "timestamp", "event_message"}
        assert isinstance(row["timestamp"], int) and abs(row["timestamp"] / 1e6 - now) < 60
    assert body["result"][0]["timestamp"] > body["result"][1]["timestamp"]
    newest = json.loads(body["result"][0]["event_message"])
    assert (newest["msg"], newest["request_id"]) == ("request completed", project.request_id_of(response))


def test_logs_all_defaults_to_the_last_minute_and_only_serves_auth_logs(sandbox, project):
    old = sandbox.add_auth_log(project.ref, {"msg": "old line", "level": "info"},
                               timestamp=int((time.time() - 300) * 1e6))
    new = sandbox.add_auth_log(project.ref, {"msg": "new line", "level": "info"})
    sql = "select id, timestamp, event_message from auth_logs"

    default_window = project.logs(sql=sql).json()["result"]
    no_sql = project.logs().json()
    edge = project.logs(sql="select id from edge_logs").json()

    assert [row["id"] for row in default_window] == [new["id"]]
    assert old["id"] not in [row["id"] for row in default_window]
    assert no_sql == {"result": [], "error": None}
    assert edge == {"result": [], "error": None}


def test_logs_all_explicit_window_finds_old_lines(sandbox, project):
    start = time.time() - 600
    old = sandbox.add_auth_log(project.ref, {"msg": "old line"}, timestamp=int((start + 60) * 1e6))

    response = project.logs(sql="select * from auth_logs",
                            iso_timestamp_start=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                            iso_timestamp_end=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 120)))

    assert [row["id"] for row in response.json()["result"]] == [old["id"]]


@pytest.mark.parametrize("query, message", [
    ({"iso_timestamp_start": "2026-03-01T00:00:00Z", "iso_timestamp_end": "2026-03-02T00:01:00Z"},
     "The timestamp range must be no more than 24 hours (iso_timestamp_start to iso_timestamp_end)"),
    ({"iso_timestamp_start": "2026-03-02T00:00:00Z", "iso_timestamp_end": "2026-03-01T00:00:00Z"},
     "iso_timestamp_end must be after iso_timestamp_start"),
    ({"iso_timestamp_start": "yesterday"}, "iso_timestamp_start: Invalid datetime"),
])
def test_logs_all_validates_the_window(project, query, message):
    response = project.logs(sql="select * from auth_logs", **query)

    assert (response.status_code, response.json()) == (400, {"message": message})
    assert response.headers["X-RateLimit-Limit"] == "30"


def test_logs_all_has_its_own_limit_of_30_per_minute(project):
    statuses = [project.logs(sql="select * from auth_logs").status_code for _attempt in range(31)]
    config = requests.get(f"{project.api}/config/auth", headers=project.bearer(), timeout=TIMEOUT)

    assert statuses == [200] * 30 + [429]
    assert config.status_code == 200  # other endpoints count separately
