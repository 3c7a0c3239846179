"""The relay-backend interface (core.RelayBackend): a provider emulator registers its SMTP hosts,
ports, login and sender checks, and the SMTP relay, Supabase Auth's routing and the server
certificate take them from there. Proved here with a provider made up in this file and no SMTP2GO
emulator at all: nothing else needs to know it."""

import re
import smtplib
import socket
import ssl
import uuid
from pathlib import Path

import pytest
import requests

from tests.sandbox.core import (GENERIC_AUTH_FAILED_REPLY, IMPLICIT_TLS, MAIL_FROM, STARTTLS, RelayBackend,
                                RelayBackends, SandboxContext, Service, run_services)
from tests.sandbox.fixture import Sandbox
from tests.sandbox.smtp_relay import SmtpRelay
from tests.sandbox.supabase_api import SupabaseManagementApi
from tests.sandbox.supabase_auth import SupabaseAuth

# The in-process relay's implicit-TLS listener requires AUTH without aiosmtpd's own TLS check (the
# relay silences this at import; pytest's per-test warning filters bring it back).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SANDBOX_DIR = Path(__file__).resolve().parents[1]
TIMEOUT = 15
HOST = "smtp.example-relay.test"
LOGIN, PASSWORD = "apikey", "example-key-123"
SENDER = "ok@example-relay.test"
SENDER_REFUSED = "550 5.7.1 The example relay does not know this sender"


class ExampleRelay(Service):
    """A relay provider in one class: login `apikey` (like SendGrid's), one verified sender, refusal
    at MAIL FROM, 465 implicit TLS and 2525 STARTTLS."""
    name = "example_relay"

    def __init__(self, context):
        super().__init__(context)
        context.relay_backends.register(RelayBackend(
            name="example", hosts=(HOST,), ports={465: IMPLICIT_TLS, 2525: STARTTLS},
            authenticate=self.authenticate, sender_allowed=self.sender_allowed, sender_check=MAIL_FROM,
            address="198.51.100.77"))

    @staticmethod
    def authenticate(login, password):
        if login != LOGIN:
            return None  # not one of ours
        return (True, "235 OK") if password == PASSWORD else (False, "535 Bad API key")

    @staticmethod
    def sender_allowed(login, mail_from):
        address = re.sub(r"^.*<|>.*$", "", mail_from).strip().lower()
        return (True, "250 OK") if address == SENDER else (False, SENDER_REFUSED)

    def start(self):
        return {}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """An in-process sandbox of Management API, relay, Auth and the example provider (no SMTP2GO)."""
    with run_services(tmp_path_factory.mktemp("relay-backends"),
                      [SupabaseManagementApi, ExampleRelay, SmtpRelay, SupabaseAuth]) as (context, endpoints):
        sandbox = Sandbox(endpoints)
        try:
            yield context, sandbox
        finally:
            sandbox.close()


def configure(sandbox, **overrides):
    ref, token = sandbox.add_supabase_project()
    settings = {"smtp_host": HOST, "smtp_port": "465", "smtp_user": LOGIN, "smtp_pass": PASSWORD,
                "smtp_admin_email": SENDER, "smtp_sender_name": "Example", **overrides}
    response = requests.patch(f"{sandbox.url('supabase_api')}/v1/projects/{ref}/config/auth", json=settings,
                              headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return ref


def otp(sandbox, ref):
    address = f"user-{uuid.uuid4().hex[:12]}@karto-mail.ru"
    response = requests.post(f"{sandbox.auth_url()}/otp", json={"email": address}, timeout=TIMEOUT,
                             headers={"apikey": sandbox.project_api_keys(ref)["anon"]})
    return address, response


def logged_error(sandbox, ref, response):
    error_id = response.json()["error_id"]
    return next(row["event"]["error"] for row in sandbox.auth_logs(ref)
                if row["event"].get("request_id") == error_id and "error" in row["event"])


def test_shared_code_names_no_provider():
    for name in ("smtp_relay.py", "supabase_auth.py", "core.py"):
        assert "smtp2go" not in (SANDBOX_DIR / name).read_text().lower(), name


@pytest.mark.parametrize("port, listener", [("465", IMPLICIT_TLS), ("2525", STARTTLS)])
def test_auth_routes_the_backend_host_to_the_relay_which_logs_in_with_the_backend(example, port, listener):
    context, sandbox = example
    ref = configure(sandbox, smtp_port=port)

    address, response = otp(sandbox, ref)

    assert response.status_code == 200, response.text
    [mail] = sandbox.inbox(address)
    assert (mail["auth_user"], mail["mail_from"], mail["listener"]) == (LOGIN, SENDER, listener)
    assert HOST in context.tls.names  # on the certificate, so Go's TLS check passes


def test_the_backend_refuses_an_unknown_sender_at_its_own_stage_and_a_knob_moves_it(example):
    _context, sandbox = example
    ref = configure(sandbox, smtp_admin_email="nobody@example-relay.test")

    _address, at_mail_from = otp(sandbox, ref)
    sandbox.set_smtp_relay_knobs(sender_check="end_of_data")
    try:
        _address, at_data = otp(sandbox, ref)
    finally:
        sandbox.set_smtp_relay_knobs(sender_check=None)

    assert at_mail_from.status_code == at_data.status_code == 500
    assert logged_error(sandbox, ref, at_mail_from) == f"gomail: could not send email 1: {SENDER_REFUSED}"
    assert logged_error(sandbox, ref, at_data) == f"gomail: could not send email 1: {SENDER_REFUSED}"
    refusals = [entry["path"] for entry in sandbox.journal(service="smtp_relay") if entry["status"] == 550]
    assert refusals[-2:] == ["MAIL", "DATA"]


def test_a_port_the_backend_does_not_publish_is_dropped_with_its_address(example):
    _context, sandbox = example
    ref = configure(sandbox, smtp_port="587")
    sandbox.set_auth_knobs(ref, smtp_connect_timeout_seconds=0.3)

    _address, response = otp(sandbox, ref)

    assert response.status_code == 500
    assert logged_error(sandbox, ref, response) == "dial tcp 198.51.100.77:587: i/o timeout"


def test_logins_go_to_the_backend_that_claims_them(example):
    context, sandbox = example
    tls = ssl.create_default_context(cafile=str(context.tls.ca_cert))
    with smtplib.SMTP_SSL("127.0.0.1", sandbox.smtp_relay_port("implicit_tls"), context=tls,
                          timeout=TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong_password:
            client.login(LOGIN, "wrong")
        with pytest.raises(smtplib.SMTPAuthenticationError) as nobody_s:
            client.login("resend", PASSWORD)  # no backend claims it, none names a reply: RFC 4954's
        client.login(LOGIN, PASSWORD)

    assert (wrong_password.value.smtp_code, wrong_password.value.smtp_error) == (535, b"Bad API key")
    assert f"{nobody_s.value.smtp_code} {nobody_s.value.smtp_error.decode()}" == GENERIC_AUTH_FAILED_REPLY


def test_the_sandbox_has_smtp2go_as_a_backend_like_any_other(sandbox):
    # The running sandbox (python -m tests.sandbox) has SMTP2GO's host on its certificate and answers
    # a login nobody claims with SMTP2GO's text (its backend names that reply).
    tls = ssl.create_default_context(cafile=sandbox.ca_cert)
    port = sandbox.smtp_relay_port("implicit_tls")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with tls.wrap_socket(raw, server_hostname="mail.smtp2go.com") as checked:
            assert checked.recv(512).startswith(b"220 ")
    with smtplib.SMTP_SSL("127.0.0.1", port, context=tls, timeout=TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as unknown:
            client.login("nobody-" + uuid.uuid4().hex[:8], "x")
    assert (unknown.value.smtp_code, unknown.value.smtp_error) == (535, b"Incorrect authentication data")
    [smtp2go] = [backend for backend in sandbox.relay_backends() if backend["name"] == "smtp2go"]
    assert smtp2go["hosts"] == ["mail.smtp2go.com"] and smtp2go["sender_check"] == "end_of_data"
    assert smtp2go["ports"]["465"] == "implicit_tls" and smtp2go["ports"]["2525"] == "starttls"


def test_registration_is_checked_and_closes_when_the_certificate_is_made(tmp_path):
    def backend(**overrides):
        fields = dict(name="one", hosts=("smtp.one.test",), ports={465: IMPLICIT_TLS},
                      authenticate=lambda login, password: None, sender_allowed=lambda login, mail_from: (True, ""))
        return RelayBackend(**{**fields, **overrides})

    registry = RelayBackends()
    for bad in (backend(sender_check="at_rcpt"), backend(ports={465: "ssl"}), backend(hosts=("Smtp.One.test",)),
                backend(ports={}), backend(hosts=())):
        with pytest.raises(ValueError):
            registry.register(bad)
    registry.register(backend())
    with pytest.raises(ValueError):
        registry.register(backend(name="two"))  # the host is taken
    assert registry.for_host("SMTP.ONE.TEST.").name == "one" and registry.for_host("other.test") is None
    assert registry.authenticate("x", "y") == (None, (False, GENERIC_AUTH_FAILED_REPLY))

    context = SandboxContext(tmp_path)
    context.relay_backends.register(backend())
    assert "smtp.one.test" in context.tls.names
    with pytest.raises(RuntimeError):
        context.relay_backends.register(backend(name="late", hosts=("smtp.late.test",)))
