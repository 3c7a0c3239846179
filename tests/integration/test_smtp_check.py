"""smtp_check through real ansible-playbook runs against the sandbox's SMTP relay.

Every failure class the module knows is reproduced against a real server (the relay, its black-hole
and closed ports, its knobs and faults), the way Supabase Auth would meet it. The relay is
mail.smtp2go.com for the module; `connect_to` sends each logical port to a sandbox listener, and the
sandbox CA is trusted through `ca_path`.
"""

import base64
import uuid

import pytest
import trustme

from tests.ca_store import ca_store_env
from tests.integration.playbook import run_tasks

HOST = "mail.smtp2go.com"
SENDER = "karto.help@ro.ru"


class RelayUser:
    """An SMTP2GO account with one SMTP user (known password) and a verified single sender."""

    def __init__(self, sandbox):
        self.api_key, self.username, self.password = sandbox.add_smtp2go_relay_user(SENDER, "Check-pw-")


@pytest.fixture
def user(sandbox):
    return RelayUser(sandbox)


@pytest.fixture(autouse=True)
def relay_defaults(sandbox):
    """Knobs and faults are sandbox-wide: every test leaves them as it found them."""
    yield
    sandbox.clear_faults()
    sandbox.set_smtp_relay_knobs(plain_port_mode=None, sender_check=None, reject_recipients=None,
                                 auth_mechanisms=None)


def routes(sandbox):
    """Logical port -> sandbox listener: 465 and 8465 speak implicit TLS, 587 STARTTLS, 2525 is a
    black hole (TCP accepted, never a byte back), 25 is closed (connection refused)."""
    implicit = f"127.0.0.1:{sandbox.smtp_relay_port('implicit_tls')}"
    starttls = f"127.0.0.1:{sandbox.smtp_relay_port('starttls')}"
    return {
        "465": implicit,
        "8465": implicit,
        "587": starttls,
        "2526": starttls,
        "2525": f"127.0.0.1:{sandbox.smtp_relay_port('blackhole')}",
        "25": f"127.0.0.1:{sandbox.smtp_relay_port('closed')}",
    }


def probe_task(sandbox, register="probe", **options):
    args = {
        "host": HOST,
        "username": "{{ smtp_user }}",
        "password": "{{ smtp_password }}",
        "ca_path": sandbox.ca_cert,
        "connect_to": routes(sandbox),
        "fail_on_error": False,
    }
    args.update(options)
    args = {name: value for name, value in args.items() if value is not None}
    return {"name": "Probe the relay", "karto.supabase_mail.smtp_check": args, "register": register}


def run(user, tasks, **kwargs):
    return run_tasks(tasks, extra_vars={"smtp_user": user.username, "smtp_password": user.password}, **kwargs)


def relay_commands(sandbox, username):
    """The SMTP commands the relay journaled for this SMTP user (attempted or authenticated)."""
    return [entry for entry in sandbox.journal(service="smtp_relay") if entry["json"]["user"] == username]


def new_address():
    return f"probe-{uuid.uuid4().hex[:12]}@karto-mail.ru"


def secret_forms(password, username):
    """The password as it could leak: plain, and base64 as AUTH PLAIN / LOGIN carry it."""
    return [password,
            base64.b64encode(password.encode()).decode(),
            base64.b64encode(f"\0{username}\0{password}".encode()).decode()]


GONE = "gone-" + uuid.uuid4().hex[:8] + "@karto-mail.ru"

# (id, relay knobs, fault, module options, class, stage, hint substring)
FAILURES = [
    ("whitespace-in-credential", {}, None,
     {"password": "{{ smtp_password }} ", "ports": [465, 587]},
     "whitespace-in-credential", "connect", "password has trailing whitespace"),
    ("dns", {}, None,
     {"host": "smtp.karto-nowhere.invalid", "connect_to": {}, "ports": [465]},
     "dns", "connect", "does not resolve"),
    ("connection-refused", {}, None,
     {"ports": [25]},
     "connection-refused", "connect", "Nothing listens on that host and port"),
    ("black-hole", {}, None,
     {"ports": [2525], "timeout": 3},
     "greeting-timeout", "greeting", "sent no SMTP greeting"),
    ("slow-answer-to-auth", {}, {"path_contains": "AUTH", "action": "delay", "seconds": 5},
     {"ports": [465], "timeout": 2},
     "auth-timeout", "auth", "did not answer the login in time"),
    ("plain-client-on-implicit-tls-port", {}, None,
     {"ports": [8465]},
     "tls-mismatch", "greeting", "expects TLS from the first byte"),
    ("implicit-tls-on-plain-port", {}, None,
     {"ports": [465], "connect_to": {"465": "STARTTLS"}},
     "tls-mismatch", "tls", "465 answers in plain SMTP"),
    ("untrusted-ca", {}, None,
     {"ports": [465], "ca_path": None},
     "tls-certificate", "tls", "certificate was not accepted"),
    ("host-not-in-certificate", {}, None,
     {"ports": [587], "host": "smtp.karto-relay.test"},
     "tls-certificate", "tls", "host name matches the certificate"),
    ("no-starttls", {"plain_port_mode": "no_tls"}, None,
     {"ports": [587]},
     "starttls-unavailable", "tls", "does not offer STARTTLS"),
    ("wrong-password", {}, None,
     {"ports": [465, 587], "password": "Wrong-{{ smtp_password }}"},
     "auth-rejected", "auth", "refused the SMTP user name or password"),
    ("wrong-password-login", {"auth_mechanisms": ["LOGIN"]}, None,
     {"ports": [465], "password": "Wrong-{{ smtp_password }}"},
     "auth-rejected", "auth", "refused the SMTP user name or password"),
    ("no-login", {}, None,
     {"ports": [465], "username": None, "password": None, "sender": SENDER},
     "login-required", "mail", "no user name and password were given"),
    ("unverified-sender-at-mail-from", {"sender_check": "mail_from"}, None,
     {"ports": [465, 587], "sender": "karto.help@rambler.ru"},
     "sender-rejected", "mail", "refuses this From address"),
    ("unverified-sender-at-end-of-data", {"sender_check": "end_of_data"}, None,
     {"ports": [587], "sender": "karto.help@rambler.ru", "recipient": SENDER, "send": True},
     "sender-rejected", "data", "refuses this From address"),
    ("unknown-recipient", {"reject_recipients": [GONE]}, None,
     {"ports": [465], "sender": SENDER, "recipient": GONE},
     "recipient-rejected", "rcpt", "check the test address exists"),
    ("message-refused-as-spam", {},
     {"path_contains": "DATA", "action": "status", "status": 550,
      "body": "spam message rejected. Please visit https://help.mail.ru/notspam-support/id"},
     {"ports": [465], "sender": SENDER, "recipient": SENDER, "send": True},
     "relay-refused", "data", "read its reply"),
    ("client-refused-at-ehlo", {},
     {"path_contains": "LO", "action": "status", "status": 554, "times": 2, "body": "5.7.1 Client host blocked"},
     {"ports": [465]},
     "relay-refused", "ehlo", "read its reply"),  # EHLO, then HELO, refused
]


@pytest.mark.parametrize("knobs, fault, options, error_class, stage, hint",
                         [row[1:] for row in FAILURES], ids=[row[0] for row in FAILURES])
def test_failure_classes(sandbox, user, knobs, fault, options, error_class, stage, hint):
    options = dict(options)
    if options.get("connect_to") == {"465": "STARTTLS"}:  # the plain listener, known only now
        options["connect_to"] = {"465": routes(sandbox)["587"]}
    if knobs:
        sandbox.set_smtp_relay_knobs(**knobs)
    if fault:
        sandbox.inject_fault(service="smtp_relay", method="SMTP", **fault)
    task = probe_task(sandbox, **options)  # an option set to None is left out (e.g. no ca_path)
    seen = len(sandbox.journal(service="smtp_relay"))

    result = run(user, [task])

    assert result.returncode == 0, result.stdout[-3000:]
    probe = result["probe"]
    assert probe["ok"] is False and probe["recommended_port"] is None and probe["changed"] is False
    assert [r["port"] for r in probe["results"]] == options["ports"]
    for port_result in probe["results"]:
        assert port_result["ok"] is False
        assert port_result["error_class"] == error_class, port_result
        assert port_result["stage"] == stage, port_result
        assert hint in port_result["hint"], port_result
        assert port_result["sent"] is False
    for form in secret_forms(user.password, user.username):
        assert form not in result.all_output
    if error_class == "whitespace-in-credential":
        assert all(r["connected_to"] is None and r["reply"] is None for r in probe["results"])
        assert len(sandbox.journal(service="smtp_relay")) == seen  # no connection, no command
    if error_class == "starttls-unavailable":
        # Credentials never cross a connection without TLS.
        assert not [e for e in sandbox.journal(service="smtp_relay")[seen:] if e["path"] == "AUTH"]


# EHLOs the relay journals: one per plain connection to 587, one per TLS session; a refused handshake
# journals nothing. With the CA in the hashed directory: 587 plain, 587 after STARTTLS, 465. Found
# only in the bundle: 587's first plain connection comes on top. In neither: 587 plain, twice.
@pytest.mark.parametrize("store, ehlos", [("hashed", 3), ("bundle", 4), ("neither", 2)])
def test_without_ca_path_the_system_store_decides(sandbox, user, tmp_path, store, ehlos):
    """No ca_path: the system's CAs (SSL_CERT_FILE, SSL_CERT_DIR) decide. The first handshake asks
    only the hashed directory (module_utils/_tls.py); a CA found only in the bundle costs a second
    connection before any login, not a failure, and a CA in neither is refused."""
    other = trustme.CA()
    layout = {"hashed": ([other], [sandbox.ca_cert]), "bundle": ([sandbox.ca_cert], [other]),
              "neither": ([other], [other])}[store]
    env = ca_store_env(tmp_path, bundle=layout[0], hashed=layout[1])
    seen = len(sandbox.journal(service="smtp_relay"))

    result = run(user, [probe_task(sandbox, ports=[587, 465], ca_path=None)], env=env)

    assert result.returncode == 0, result.stdout[-3000:]
    probe = result["probe"]
    commands = [entry["path"] for entry in sandbox.journal(service="smtp_relay")[seen:]]
    assert commands.count("EHLO") == ehlos, commands
    if store == "neither":
        assert [(r["ok"], r["error_class"], r["stage"]) for r in probe["results"]] == [(False, "tls-certificate", "tls")] * 2
        assert "AUTH" not in commands
    else:
        assert [(r["ok"], r["tls"]) for r in probe["results"]] == [(True, "starttls"), (True, "implicit")], probe
        assert commands.count("AUTH") == 2, "one login per port, none on the connection given up"


def test_failing_probe_fails_the_task_with_the_best_ports_class_and_hint(sandbox, user):
    task = probe_task(sandbox, ports=[2526, 465], password="Wrong-{{ smtp_password }}", fail_on_error=True,
                      implicit_tls_ports=[465])
    task["ignore_errors"] = True
    result = run(user, [task])
    probe = result["probe"]
    assert probe["failed"] is True
    assert "Port 465 got furthest and stopped at auth with auth-rejected" in probe["msg"]
    assert "refused the SMTP user name or password" in probe["msg"]
    assert "535 Incorrect authentication data" in probe["msg"]
    assert user.password not in result.all_output


def test_whitespace_fails_the_task_naming_the_parameter_and_never_the_value(sandbox, user):
    task = probe_task(sandbox, password="{{ smtp_password }}\n", fail_on_error=True)
    task["ignore_errors"] = True
    result = run(user, [task])
    probe = result["probe"]
    assert probe["failed"] is True
    assert probe["msg"].startswith("whitespace-in-credential: password has trailing whitespace")
    assert user.password not in result.all_output


def test_black_holed_port_costs_at_most_the_timeout_and_a_working_port_is_recommended(sandbox, user):
    timeout = 3
    ports = [2525, 587, 465, 25]
    result = run(user, [probe_task(sandbox, ports=ports, timeout=timeout, sender=SENDER)])
    probe = result["probe"]
    by_port = {r["port"]: r for r in probe["results"]}
    # The module's own clock: from the first connection to the last verdict.
    assert probe["elapsed"] <= timeout + 1, probe["elapsed"]
    assert by_port[2525]["elapsed"] >= timeout - 0.2  # it did wait for the silent port...
    assert by_port[2525]["error_class"] == "greeting-timeout"  # TCP accepted, then silence
    assert by_port[25]["error_class"] == "connection-refused"
    assert by_port[465]["ok"] and by_port[587]["ok"]
    assert by_port[465]["elapsed"] < timeout - 1 and by_port[587]["elapsed"] < timeout - 1  # ...the others did not
    assert probe["ok"] is True and probe["recommended_port"] == 465
    assert by_port[465]["tls"] == "implicit" and by_port[587]["tls"] == "starttls"


def test_recommendation_prefers_465_then_587_then_the_given_order(sandbox, user):
    first = run(user, [probe_task(sandbox, ports=[2526, 587])])["probe"]
    assert first["recommended_port"] == 587
    only_other = run(user, [probe_task(sandbox, ports=[25, 2526])])["probe"]
    assert only_other["recommended_port"] == 2526 and only_other["ok"] is True


def test_working_relay_and_how_supabase_would_log_in(sandbox, user):
    result = run(user, [probe_task(sandbox, sender=SENDER, recipient=new_address())])
    probe = result["probe"]
    assert probe["ok"] is True and probe["changed"] is False and probe["recommended_port"] == 465
    for port_result in probe["results"]:
        assert port_result["stage"] == "rcpt" and port_result["auth_mechanism"] == "PLAIN"
        assert port_result["error_class"] is None and port_result["hint"] is None
        assert port_result["reply"].startswith("250")
    commands = [e["path"] for e in relay_commands(sandbox, user.username)]
    assert "DATA" not in commands and commands.count("RSET") == 2


def test_login_is_used_when_the_relay_offers_no_plain(sandbox, user):
    sandbox.set_smtp_relay_knobs(auth_mechanisms=["LOGIN"])
    probe = run(user, [probe_task(sandbox)])["probe"]
    assert probe["ok"] is True
    assert {r["auth_mechanism"] for r in probe["results"]} == {"LOGIN"}


def test_send_delivers_one_message_per_port(sandbox, user):
    recipient = new_address()
    probe = run(user, [probe_task(sandbox, sender=SENDER, recipient=recipient, send=True)])["probe"]
    assert probe["ok"] is True
    assert all(r["sent"] and r["stage"] == "data" and r["reply"].startswith("250 OK id=") for r in probe["results"])
    mails = sandbox.wait_for_mail(recipient, count=2)
    assert sorted(m["tls"] for m in mails) == ["implicit", "starttls"]
    assert {m["subject"] for m in mails} == {f"smtp_check test mail via {HOST} port 465",
                                             f"smtp_check test mail via {HOST} port 587"}
    assert all(m["mail_from"] == SENDER and m["auth_user"] == user.username for m in mails)


def test_check_mode_stops_after_rcpt_and_sends_nothing(sandbox, user):
    recipient = new_address()
    result = run(user, [probe_task(sandbox, sender=SENDER, recipient=recipient, send=True)], check=True)
    probe = result["probe"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert probe["ok"] is True and probe["changed"] is False
    assert all(r["stage"] == "rcpt" and r["sent"] is False for r in probe["results"])
    commands = [e["path"] for e in relay_commands(sandbox, user.username)]
    assert "DATA" not in commands and commands.count("RSET") == 2
    assert sandbox.inbox(recipient) == []


def test_no_secret_in_any_output_at_high_verbosity(sandbox, user):
    wrong = f"Wrong-{uuid.uuid4().hex}"
    recipient = new_address()
    tasks = [
        probe_task(sandbox, register="good", sender=SENDER, recipient=recipient, send=True),
        probe_task(sandbox, register="bad", password=wrong),
        probe_task(sandbox, register="spaced", password="{{ smtp_password }} "),
        dict(probe_task(sandbox, register="failing", password=wrong, fail_on_error=True), ignore_errors=True),
    ]
    result = run(user, tasks, verbosity=3)
    assert result["good"]["ok"] is True and result["bad"]["ok"] is False
    assert result["failing"]["failed"] is True
    assert "smtp_check" in result.stdout  # -vvv did print the module's invocation and results
    for form in secret_forms(user.password, user.username) + secret_forms(wrong, user.username):
        assert form not in result.all_output


def test_implicit_tls_on_another_port_works_for_the_probe_but_warns(sandbox, user):
    result = run(user, [probe_task(sandbox, ports=[8465], implicit_tls_ports=[465, 8465])])
    probe = result["probe"]
    assert probe["ok"] is True and probe["results"][0]["tls"] == "implicit"
    assert any("Supabase Auth uses implicit TLS on 465 only" in w for w in probe.get("warnings", []))


@pytest.mark.parametrize("options, message", [
    ({"ports": [0]}, "ports must be between 1 and 65535"),
    ({"ports": [587, 587]}, "ports lists 587 more than once"),
    ({"host": "smtp://mail.smtp2go.com"}, "host must be a bare host name"),
    ({"recipient": "someone@karto-mail.ru"}, "missing parameter(s) required by 'recipient': sender"),
    ({"send": True, "sender": SENDER}, "send is True but all of the following are missing: recipient"),
    ({"connect_to": {"465": "127.0.0.1"}}, "connect_to[465] must be an address:port"),
    ({"sender": "not-an-address"}, "sender must be a plain email address"),
    ({"timeout": 0}, "timeout must be between 1 and 3600"),
    ({"ca_path": "/nonexistent/ca.pem"}, "ca_path /nonexistent/ca.pem does not exist"),
])
def test_bad_input_fails_before_any_connection(sandbox, user, options, message):
    seen = len(sandbox.journal(service="smtp_relay"))
    task = dict(probe_task(sandbox, **options), ignore_errors=True)
    result = run(user, [task])
    assert result["probe"]["failed"] is True
    assert message in result["probe"]["msg"], result["probe"]["msg"]
    assert len(sandbox.journal(service="smtp_relay")) == seen
    assert user.password not in result.all_output
