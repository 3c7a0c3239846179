"""Issue 12, "Defects found": one test (or a table) per defect, each failing before its fix.

Secrets in error text, raw library errors instead of a named parameter, bad values that reached the
provider, requests that should never have been made, trailing newlines passing the pattern checks,
the DNS time bound, a password nobody holds, a lost answer recovered within the run, and the
smaller ones (smtp_check's non-ASCII sender, smtp2go_sender's wording).
"""

import base64
import json
import socket
import threading
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.karto.supabase_mail.plugins.module_utils import _transport
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiClient, ApiError
from ansible_collections.karto.supabase_mail.plugins.module_utils._secrets import Redactor
from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import SupabaseManagementClient
from ansible_collections.karto.supabase_mail.plugins.modules import (
    sender_domain_check,
    smtp2go_sender,
    smtp2go_user,
    smtp_check,
    supabase_email_test,
    supabase_smtp,
)
from tests.unit.plugins.module_utils.test_engine import Exited, Failed, FakeModule, Store, Thing
from tests.unit.plugins.module_utils.test_engine import run as run_thing
from tests.unit.plugins.modules import test_smtp2go_sender as sender_tests
from tests.unit.plugins.modules import test_smtp2go_user as user_tests
from tests.unit.plugins.modules.test_supabase_email_test import (
    EMAIL,
    REF,
    SECRET_KEY,
    TOKEN,
    FakeApis,
    FakeResponse,
)

PASSWORD = 'Relay"pass\\9c1d/7e33'   # characters JSON escapes
API_KEY = "api-Zy7wvutsrqponmlkjihgfedcba0123"


# --- Secrets in error text ------------------------------------------------------------------

@pytest.mark.parametrize("form", [
    json.dumps(PASSWORD)[1:-1],                 # JSON-escaped, as a body echoing the request shows it
    repr(PASSWORD)[1:-1],                       # a Python repr
    PASSWORD[:16],                              # a prefix, as truncated echoes show it
])
def test_redactor_masks_escaped_forms_and_prefixes(form):
    redact = Redactor([PASSWORD])
    redacted = redact("echo: {\"email_password\": \"%s\"}" % form)
    assert form[:12] not in redacted and PASSWORD[:12] not in redacted


def test_redactor_masks_a_secret_pasted_with_a_newline_in_its_repr():
    token = "sbp_" + "a1" * 20
    redact = Redactor([token + "\n"])
    text = redact("Invalid leading whitespace in header value: %r" % ("Bearer %s\n" % token))
    assert token[:12] not in text


class RaisingSession:
    """A transport session whose request raises what the transport raises for a bad header or URL."""

    headers = {}

    def __init__(self, error):
        self.error = error

    def request(self, method, url, **kwargs):
        raise self.error


def test_invalid_header_error_is_an_api_error_without_the_token():
    token = "sbp_" + "b2" * 20
    # The transport never quotes the value; a library that did must still be redacted.
    error = _transport.InvalidHeader("Invalid return character(s) in header value: %r" % ("Bearer %s\n" % token))
    client = SupabaseManagementClient("http://api.test", token + "\n", session=RaisingSession(error))
    with pytest.raises(ApiError) as raised:
        client.get_auth_config(REF)
    assert token[:12] not in str(raised.value.message)


@pytest.mark.parametrize("error", [
    _transport.InvalidUrl("'api.test/v1' is not an http:// or https:// URL with a host"),
    _transport.InvalidUrl("'ftp://api.test/v1' is not an http:// or https:// URL with a host"),
    _transport.InvalidUrl("'http://api.test:99999/v1' has an invalid port"),
])
def test_url_errors_become_api_errors_naming_the_option(error):
    client = ApiClient("http://api.test", session=RaisingSession(error))
    with pytest.raises(ApiError) as raised:
        client.request("GET", "/x")
    assert "api_url" in raised.value.message


def test_https_to_a_plain_http_port_is_named_not_a_certificate_problem():
    """A real https request to a port that answers plain HTTP."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer():
        conn, _addr = server.accept()
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    client = ApiClient("https://127.0.0.1:%d" % port, timeout=5)
    try:
        with pytest.raises(ApiError) as raised:
            client.request("GET", "/x", retry=False)
    finally:
        server.close()
    message = raised.value.message
    assert "api_url" in message and "http://" in message and "validate_certs" not in message
    assert "Traceback" not in message and len(message) < 600


def run_email_test(monkeypatch, capsys, apis, **args):
    monkeypatch.setattr(_transport, "Session", apis.session)
    params = {"project_ref": REF, "access_token": TOKEN, "api_url": "http://api.test",
              "auth_url": "http://auth.test", "email": EMAIL, "log_timeout": 0, "fail_on_error": False}
    params.update(args)
    with patch_module_args(params):
        with pytest.raises(SystemExit):
            supabase_email_test.main()
    return capsys.readouterr().out


def test_invite_error_echoing_the_fetched_service_key_shows_no_part_of_it(monkeypatch, capsys):
    echo = {"code": 500, "msg": "upstream error; request was apikey=%s Authorization: Bearer %s... (%s)"
            % (SECRET_KEY, SECRET_KEY[:24], json.dumps({"apikey": SECRET_KEY}))}
    log = {"level": "error", "path": "/invite", "request_id": "r1", "msg": "500", "error": "echo " + SECRET_KEY[:24],
           "auth_event": {"actor_username": EMAIL}, "headers": {"apikey": SECRET_KEY}}
    apis = FakeApis([FakeResponse(500, echo)], log_lines=[log])
    out = run_email_test(monkeypatch, capsys, apis, action="invite")
    assert SECRET_KEY[:12] not in out
    assert json.loads(out)["delivery"]["status"] == "failed"


# --- Raw library errors, requests that should never be made, whole-string matches -----------------

def supabase_params(**overrides):
    values = {option: None for option in supabase_smtp.ARGUMENT_SPEC}
    values.update(project_ref=REF, state="present", host="mail.relay.test", port=465, username="karto-supabase",
                  password="Relay-pass-9c1d7e33aa40", update_password="on_change", sender_email="karto.help@ro.ru",
                  api_url="https://api.supabase.com", access_token=TOKEN, timeout=30, validate_certs=True)
    values.update(overrides)
    return values


@pytest.mark.parametrize("overrides, names", [
    ({"project_ref": REF + "\n"}, "project_ref"),
    ({"sender_email": "karto.help@ro.ru\n"}, "sender_email"),
    ({"sender_email": "karto.help@ro\x01.ru"}, "sender_email"),
    ({"sender_email": "karto\x07help@ro.ru"}, "sender_email"),
    ({"sender_email": "karto.help@пример.рф"}, "sender_email"),
    ({"username": "karto\nsupabase"}, "username"),
    ({"username": "karto\x00supabase"}, "username"),
    ({"password": "Relay\npass-9c1d7e33"}, "password"),
    ({"password": "Relay\x1bpass-9c1d7e33"}, "password"),
    ({"sender_name": "KARTO\x00"}, "sender_name"),
    ({"api_url": "api.supabase.com"}, "api_url"),
    ({"api_url": "ftp://api.supabase.com"}, "api_url"),
    ({"api_url": ""}, "api_url"),
    ({"api_url": "https://"}, "api_url"),
    ({"api_url": "https://api.supabase.com\n"}, "api_url"),
    ({"access_token": ""}, "access_token"),
    ({"access_token": TOKEN + "\n"}, "access_token"),
    ({"access_token": "sbp_a1\nb2"}, "access_token"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": -5}, "timeout"),
])
def test_supabase_smtp_refuses_before_any_request(overrides, names):
    problem = supabase_smtp.validate(supabase_params(**overrides))
    assert problem and problem.startswith(names), problem
    for secret in ("Relay\npass", "Relay\x1bpass", TOKEN):
        assert secret not in problem


def user_params(**overrides):
    values = user_tests.params(api_url="https://api.smtp2go.com/v3", api_key=API_KEY, timeout=30,
                               validate_certs=True)
    values.update(overrides)
    return values


@pytest.mark.parametrize("overrides, name", [
    ({"username": "karto-supabase\n"}, "username"),
    ({"username": "karto-\nsupabase"}, "username"),
    ({"password": "Relay-pass\n9c1d7e33"}, "password"),
    ({"password": "Relay-pass\x7f9c1d7e33"}, "password"),
    ({"api_url": "api.smtp2go.com/v3"}, "api_url"),
    ({"api_key": ""}, "api_key"),
    ({"api_key": API_KEY + "\n"}, "api_key"),
    ({"timeout": 0}, "timeout"),
])
def test_smtp2go_user_refuses_before_any_request(overrides, name):
    problem = smtp2go_user.validate(user_params(**overrides))
    assert problem and problem.startswith(name), problem
    assert API_KEY not in problem and "9c1d7e33" not in problem


def sender_params(**overrides):
    values = sender_tests.params(api_url="https://api.smtp2go.com/v3", api_key=API_KEY, timeout=30,
                                 validate_certs=True)
    values.update(overrides)
    return values


@pytest.mark.parametrize("overrides, name", [
    ({"email_address": "karto.help@ro.ru\n"}, "email_address"),
    ({"email_address": "karto.help\r@ro.ru"}, "email_address"),
    ({"domain": "mail.example.com\n"}, "domain"),
    ({"email_address": "karto.help@ro.ru", "api_url": "ftp://api.smtp2go.com"}, "api_url"),
    ({"email_address": "karto.help@ro.ru", "api_key": " "}, "api_key"),
    ({"email_address": "karto.help@ro.ru", "timeout": -1}, "timeout"),
])
def test_smtp2go_sender_refuses_before_any_request(overrides, name):
    problem = smtp2go_sender.validate(sender_params(**overrides))
    assert problem and problem.startswith(name), problem


@pytest.mark.parametrize("overrides, name", [
    ({"project_ref": REF + "\n"}, "project_ref"),
    ({"email": EMAIL + "\n"}, "email"),
    ({"auth_url": "auth.test"}, "auth_url"),
    ({"auth_url": "ftp://auth.test"}, "auth_url"),
    ({"api_url": ""}, "api_url"),
    ({"access_token": ""}, "access_token"),
    ({"access_token": TOKEN + "\n"}, "access_token"),
    ({"anon_key": "\n"}, "anon_key"),
    ({"service_role_key": SECRET_KEY + "\n"}, "service_role_key"),
    ({"timeout": 0}, "timeout"),
])
def test_supabase_email_test_refuses_before_any_request(monkeypatch, capsys, overrides, name):
    apis = FakeApis([FakeResponse(200, {})])
    result = json.loads(run_email_test(monkeypatch, capsys, apis, **overrides))
    assert result.get("failed") and result["msg"].startswith(name), result
    assert apis.auth_calls == [] and apis.management_calls == []
    assert SECRET_KEY[:12] not in json.dumps(result) and TOKEN not in json.dumps(result)


# --- smtp_check: a non-ASCII sender ----------------------------------------------------------

def smtp_check_params(**overrides):
    values = {"host": "smtp.relay.test", "ports": [465], "username": None, "password": None, "sender": None,
              "recipient": None, "send": False, "timeout": 10, "validate_certs": True, "ca_path": None,
              "connect_to": None, "implicit_tls_ports": [465], "fail_on_error": True}
    values.update(overrides)
    return values


@pytest.mark.parametrize("overrides, name", [
    ({"sender": "кarto@ro.ru"}, "sender"),
    ({"sender": "karto@ро.ru"}, "sender"),
    ({"sender": "karto@ro.ru", "recipient": "тест@ro.ru"}, "recipient"),
    ({"sender": "karto@ro.ru\n"}, "sender"),
])
def test_smtp_check_refuses_a_sender_it_cannot_send_as(overrides, name):
    problem = smtp_check.validate(smtp_check_params(**overrides))
    assert problem and problem.startswith(name), problem


# --- sender_domain_check: the timeout bounds the whole check ------------------------------------

def test_dns_timeout_bounds_the_whole_check():
    """Three queries in a row to a nameserver that never answers (a bound UDP port that reads
    nothing): the check must end within `timeout`, not three times it."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        lookup = sender_domain_check.DnsLookup(["127.0.0.1"], silent.getsockname()[1], 0.6)
        started = time.monotonic()
        messages = []
        for name in ("_dmarc.ro.ru", "ro.ru", "s1._domainkey.ro.ru"):
            with pytest.raises(sender_domain_check.DnsLookupError) as raised:
                lookup(name)
            messages.append(str(raised.value))
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert 0.6 <= elapsed < 0.6 + 0.3
    assert messages[0].startswith("No DNS answer for TXT _dmarc.ro.ru within 0.6 s")
    assert "ran out" in messages[2]


# --- A password nobody holds; a lost answer recovered within the run -----------------------------

class LateCreateSmtp2go(user_tests.FakeSmtp2go):
    """The add lands, but its answer is lost: the user exists with a password no one saw."""

    def __init__(self, appear_on_view=1, reset_connection=False):
        super().__init__(lose_add_answer=True)
        self.hidden = None
        self.appear_on_view = appear_on_view
        self.reset_connection = reset_connection

    def find_smtp_user(self, username):
        if self.hidden is not None:
            self.appear_on_view -= 1
            if self.appear_on_view < 0:
                self.users[username], self.hidden = self.hidden, None
        return super().find_smtp_user(username)

    def add_smtp_user(self, fields):
        if self.reset_connection:
            # Reset before the server processed it: nothing created, outcome unknown to the client.
            self.calls.append("add")
            self.reset_connection = False
            raise ApiError("connection reset", method="POST", outcome_unknown=True)
        if self.lose_add_answer:
            self.lose_add_answer = False
            self.calls.append("add")
            user = dict({"status": "allowed", "sending_allowed": True}, **fields)
            user.setdefault("email_password", self.generated)
            self.hidden = user  # lands after the re-read, as a delayed create does
            raise ApiError("no answer", method="POST", outcome_unknown=True)
        if fields["username"] in self.users or self.hidden is not None:
            self.calls.append("add")
            raise ApiError("the username is already in use", status=400, code="E_ApiResponseCodes.API_EXCEPTION",
                           method="POST")
        return super().add_smtp_user(fields)


def test_generated_password_lost_with_the_answer_is_reset_and_returned_once():
    api = user_tests.FakeSmtp2go(lose_add_answer=True)
    outcome, module = user_tests.run(api)
    assert isinstance(outcome, Exited), outcome.result
    password = outcome.result["password"]
    assert password and api.users["karto-supabase"]["email_password"] == password
    assert password != api.generated
    assert any("lost" in warning and "new password" in warning for warning in module.warnings)


def test_generated_password_of_a_create_that_lands_late_is_never_left_unheld():
    api = LateCreateSmtp2go()
    outcome, _module = user_tests.run(api)
    assert isinstance(outcome, Exited), outcome.result
    assert api.users["karto-supabase"]["email_password"] == outcome.result["password"]
    assert len(api.users) == 1


def test_connection_reset_on_create_is_recovered_within_the_run():
    api = LateCreateSmtp2go(reset_connection=True)
    api.lose_add_answer = False
    outcome, _module = user_tests.run(api, password="Relay-pass-9c1d7e33aa40")
    assert isinstance(outcome, Exited), outcome.result
    assert outcome.result["created"] is True
    assert api.users["karto-supabase"]["email_password"] == "Relay-pass-9c1d7e33aa40"
    assert api.calls.count("add") == 2


def test_engine_default_still_never_sends_a_create_twice():
    store = Store()
    store.faults["add"] = "drop"
    outcome = run_thing(store, colour="red")
    assert isinstance(outcome, Failed)
    assert [call for call in store.calls if call[0] == "add"] == [("add", "t1")]


def test_engine_resends_a_create_of_a_uniquely_named_object_only_after_a_reread():
    class Unique(Thing):
        create_is_unique = True

    store = Store()
    store.faults["add"] = "drop"
    outcome = run_thing(store, kind=Unique, colour="red")
    assert isinstance(outcome, Exited) and outcome.result["created"] is True
    assert store.calls == [("get", "t1"), ("add", "t1"), ("get", "t1"), ("add", "t1")]
    assert store.objects["t1"]["colour"] == "red"


# --- smtp2go_sender: no "accepted" when no answer arrived --------------------------------------

def test_sender_add_whose_answer_was_lost_does_not_claim_an_answer():
    api = sender_tests.FakeSmtp2go(fault="lose_answer")
    module = FakeModule(sender_tests.params(email_address=sender_tests.EMAIL))
    with pytest.raises((Exited, Failed)) as outcome:
        smtp2go_sender.EmailSender(module, api, sender_tests.EMAIL).run()
    text = json.dumps(outcome.value.result) + " ".join(module.warnings)
    assert "accepted" not in text
    assert any("lost" in warning for warning in module.warnings)


def test_sender_add_answered_but_not_listed_says_what_happened():
    class Unlisted(sender_tests.FakeSmtp2go):
        def find_single_sender(self, email_address):
            self.calls.append("view")
            return None

    module = FakeModule(sender_tests.params(email_address=sender_tests.EMAIL))
    with pytest.raises((Exited, Failed)) as outcome:
        smtp2go_sender.EmailSender(module, Unlisted(), sender_tests.EMAIL).run()
    assert isinstance(outcome.value, Failed)
    assert "answered" in outcome.value.result["msg"] and "accepted" not in outcome.value.result["msg"]


def test_base64_forms_are_still_masked_by_the_smtp_redactor():
    from ansible_collections.karto.supabase_mail.plugins.module_utils._smtp_probe import SmtpRedactor
    redact = SmtpRedactor("user", PASSWORD)
    blob = base64.b64encode(("\0user\0" + PASSWORD).encode()).decode()
    assert blob not in redact("AUTH PLAIN " + blob)


# --- mail_sender_name: "" clears the From name (the role passed "" as omit before) -------------

def supabase_config(**overrides):
    config = {"smtp_host": "mail.relay.test", "smtp_port": "465", "smtp_user": "karto-supabase",
              "smtp_admin_email": "karto.help@ro.ru", "smtp_sender_name": "KARTO",
              "smtp_pass": supabase_smtp.smtp_pass_hmac(REF, "Relay-pass-9c1d7e33aa40")}
    config.update(overrides)
    return config


def test_empty_sender_name_clears_a_stored_one_and_is_a_no_op_when_none_is_stored():
    smtp = supabase_smtp.AuthSmtpConfig(FakeModule(supabase_params(sender_name="")), client=None)
    assert smtp.present(supabase_config()) == {"smtp_sender_name": ""}
    assert smtp.present(supabase_config(smtp_sender_name=None)) == {}
    assert smtp.present(supabase_config(smtp_sender_name="")) == {}


def test_the_supabase_role_passes_an_empty_sender_name_on():
    import os
    from tests.collection_path import REPO_ROOT
    tasks = open(os.path.join(REPO_ROOT, "roles/supabase_smtp/tasks/main.yml"), encoding="utf-8").read()
    line = next(line for line in tasks.splitlines() if line.strip().startswith("sender_name:"))
    assert "omit" not in line


def test_dns_timeout_bounds_the_whole_check_against_a_slow_nameserver():
    """A real nameserver (UDP, dnspython) that answers every query after 0.45 s, within a 1 s timeout
    per query: the check makes several queries, and together they must still end within 1 s."""
    import dns.message
    import dns.rcode

    from ansible_collections.karto.supabase_mail.plugins.module_utils._dns_policy import (
        DnsLookupError,
        check_sender_domain,
        relay_identity,
    )

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, peer = server.recvfrom(4096)
            except OSError:
                continue
            time.sleep(0.45)
            answer = dns.message.make_response(dns.message.from_wire(data))
            answer.set_rcode(dns.rcode.NXDOMAIN)
            try:
                server.sendto(answer.to_wire(), peer)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        lookup = sender_domain_check.DnsLookup(["127.0.0.1"], server.getsockname()[1], 1.0)
        try:
            check_sender_domain("mail.karto.test", relay_identity("the relay", {"spf_includes": ["spf.relay.test"]}),
                                lookup, dkim_selector="s1")
        except DnsLookupError as error:
            assert "within 1 s" in str(error)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join(1)
        server.close()
    assert elapsed < 1.0 + 0.3, elapsed


# --- Time bounds: all tries of one request stay within twice `timeout` (real sockets) --------------

def test_all_tries_of_a_request_to_a_silent_server_end_within_twice_the_timeout():
    """Already fixed before issue 12's work (each try waits at most what is left of the budget);
    this holds it with real sockets: a server that reads the request and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _addr = server.accept()
            except OSError:
                continue
            held.append(conn)  # read nothing back, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    client = ApiClient("http://127.0.0.1:%d" % server.getsockname()[1], timeout=2)
    started = time.monotonic()
    try:
        with pytest.raises(ApiError) as raised:
            client.request("GET", "/slow")
    finally:
        elapsed = time.monotonic() - started
        stop.set()
        thread.join(1)
        for conn in held:
            conn.close()
        server.close()
    assert client.requests_sent >= 2, "the budget allows a second try"
    assert elapsed <= 2 * 2 + 0.3, elapsed
    assert "no answer" in raised.value.message
