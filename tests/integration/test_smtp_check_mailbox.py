"""smtp_check against a real mail server: the sandbox's Postfix with Dovecot SASL standing in for a
mailbox's own server (smtp.rambler.ru), as issue 8 found it. Each test reproduces one thing the
probe got wrong against Postfix + Dovecot and would fail before its fix:

- a TLS alert on a port that does speak TLS was `tls-mismatch` after a 2 s wait for a plain banner,
  with a hint to use the port it was on;
- a login answered slowly (Dovecot delays a failed login, then slows the next ones from the same
  address) was `connect-timeout`, "the port may be blocked"; and probing two ports at once with a
  wrong password set that throttling off;
- a sender refused only at RCPT TO (Postfix's default stage) gave ok: true without a recipient;
- without credentials Postfix's "not logged in" / "Access denied" were classed as a sender or
  recipient verdict, and "454 Temporary authentication failure" as relay-refused.
"""

import secrets

import pytest

from tests.integration.playbook import run_tasks

HOST = "smtp.rambler.ru"
MAILBOX = "karto.help@ro.ru"


@pytest.fixture
def mailbox(sandbox):
    """The mailbox with a fresh password; the auth service is back on after each test."""
    password = "Mb-" + secrets.token_urlsafe(12)
    sandbox.add_mailbox(MAILBOX, password)
    yield password
    sandbox.set_mailbox_knobs(auth_available=True)


def probe(sandbox, register, **options):
    args = {
        "host": HOST,
        "ports": [465],
        "ca_path": sandbox.ca_cert,
        "connect_to": {
            "465": "127.0.0.1:%d" % sandbox.endpoints["mailbox_smtp_implicit_tls_port"],
            "587": "127.0.0.1:%d" % sandbox.endpoints["mailbox_smtp_starttls_port"],
        },
        "fail_on_error": False,
    }
    args.update(options)
    return {"name": register, "karto.supabase_mail.smtp_check": args, "register": register}


def run(password, tasks):
    return run_tasks(tasks, extra_vars={"mailbox_password": password})


def only(result, name):
    probe_result = result[name]
    assert len(probe_result["results"]) == 1, probe_result
    return probe_result["results"][0]


def test_the_sender_and_the_missing_login_are_judged_at_rcpt_to(sandbox, mailbox):
    result = run(mailbox, [
        # The mailbox's own address: accepted at MAIL FROM and at RCPT TO (to itself), then RSET.
        probe(sandbox, "own", username=MAILBOX, password="{{ mailbox_password }}", sender=MAILBOX, ports=[465, 587]),
        # Another From: Postfix takes MAIL FROM and refuses the sender at RCPT TO (smtpd_delay_reject=yes).
        probe(sandbox, "other", username=MAILBOX, password="{{ mailbox_password }}", sender="someone.else@ro.ru"),
        # No login: Postfix refuses the envelope, which means "log in", not "verify the sender".
        probe(sandbox, "anonymous", sender=MAILBOX, recipient="karto.help+x@ro.ru"),
    ])
    assert result.returncode == 0, result.stdout[-3000:]

    own = result["own"]
    assert own["ok"] is True and own["recommended_port"] == 465, own
    assert [(r["ok"], r["stage"], r["rcpt_to"], r["sent"]) for r in own["results"]] == [
        (True, "rcpt", MAILBOX, False), (True, "rcpt", MAILBOX, False)]

    other = only(result, "other")
    assert (other["ok"], other["stage"], other["error_class"]) == (False, "rcpt", "sender-rejected"), other
    assert other["reply"].startswith("553") and "Sender address rejected" in other["reply"]
    assert other["rcpt_to"] == "someone.else@ro.ru"

    anonymous = only(result, "anonymous")
    assert (anonymous["ok"], anonymous["error_class"]) == (False, "login-required"), anonymous
    assert anonymous["stage"] in ("mail", "rcpt")
    assert "not logged in" in anonymous["reply"] or "Access denied" in anonymous["reply"], anonymous
    assert "no user name and password were given" in anonymous["hint"]
    assert mailbox not in result.all_output


def test_a_wrong_password_is_tried_once_and_a_slow_answer_is_an_auth_timeout(sandbox, mailbox):
    result = run(mailbox, [
        # Both ports at once: one login is tried, refused after Dovecot's failure delay; the other port
        # does not try again (that would only make Dovecot slow down logins further).
        probe(sandbox, "both", username=MAILBOX, password="Wrong-{{ mailbox_password }}", ports=[465, 587],
              timeout=15),
        # Dovecot answers a failed login only after its delay (2 s, more after earlier failures):
        # with 1 s the answer is late, and that is the login's stage, not a blocked port.
        probe(sandbox, "slow", username=MAILBOX, password="Wrong-{{ mailbox_password }}", timeout=1),
    ])
    assert result.returncode == 0, result.stdout[-3000:]

    both = result["both"]["results"]
    assert [r["error_class"] for r in both] == ["auth-rejected", "auth-rejected"], both
    tried, skipped = sorted(both, key=lambda r: "not tried" in r["reply"])
    assert tried["reply"].startswith("535"), tried
    assert skipped["reply"].startswith("AUTH not tried: the same login was just refused on port %d" % tried["port"])

    slow = only(result, "slow")
    assert (slow["error_class"], slow["stage"]) == ("auth-timeout", "auth"), slow
    assert "failed login" in slow["hint"] and "blocked" not in slow["hint"]
    assert slow["elapsed"] <= 1.6, slow  # the timeout bounds it


def test_a_temporary_authentication_failure_has_its_own_class(sandbox, mailbox):
    sandbox.set_mailbox_knobs(auth_available=False)  # Postfix cannot reach Dovecot's auth socket
    result = run(mailbox, [probe(sandbox, "down", username=MAILBOX, password="{{ mailbox_password }}")])
    down = only(result, "down")
    assert (down["error_class"], down["stage"]) == ("auth-temporary", "auth"), down
    assert down["reply"].startswith("454 4.7.0 Temporary authentication failure"), down


def test_a_tls_alert_on_a_port_that_speaks_tls_is_a_handshake_failure_at_once(sandbox, mailbox):
    # The sandbox's legacy listener: Postfix with TLS 1.1 at most, which OpenSSL here refuses; the
    # handshake ends with an alert. Before, the probe waited 2 s for a plain banner and said "use 465".
    legacy = {"465": "127.0.0.1:%d" % sandbox.endpoints["mailbox_smtp_legacy_tls_port"]}
    result = run(mailbox, [probe(sandbox, "legacy", username=MAILBOX, password="{{ mailbox_password }}",
                                 connect_to=legacy)])
    legacy_result = only(result, "legacy")
    assert (legacy_result["error_class"], legacy_result["stage"]) == ("tls-handshake", "tls"), legacy_result
    assert "alert" in legacy_result["reply"].lower() or "protocol" in legacy_result["reply"].lower(), legacy_result
    assert "Use 465" not in legacy_result["hint"] and "The port is right" in legacy_result["hint"]
    assert legacy_result["elapsed"] < 1.5, legacy_result  # no wait for a plain greeting
