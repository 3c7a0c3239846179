"""Failure classification: real Supabase Auth log texts (reference supabase.md section 7 and the
sandbox's gomail emulation) and SMTP refusals by the stage they came at."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils._diagnose import (
    FAILURE_CLASSES,
    HINTS,
    STAGES,
    timeout_class,
    classify_failure,
    classify_smtp_reply,
    hint_for,
)

AUTH_LOG_ERRORS = [
    # Dial/TLS/AUTH errors come back raw from gomail's Dialer.Dial().
    ("535 5.7.8 Error: authentication failed", "auth-rejected"),
    ('535 "Authentication credentials invalid"', "auth-rejected"),
    ("535 Authentication failed: The provided authorization grant is invalid, expired, or revoked", "auth-rejected"),
    ("535 API key not found", "auth-rejected"),
    ("535 Incorrect authentication data", "auth-rejected"),
    ("dial tcp: lookup env(SUPABASE_SMTP_HOST): no such host", "dns"),
    ("dial tcp: lookup smtp.karto-nowhere.invalid: no such host", "dns"),
    ("unencrypted connection", "starttls-unavailable"),
    ("gomail: unencrypted connection", "starttls-unavailable"),
    ("tls: failed to verify certificate: x509: certificate signed by unknown authority", "tls-certificate"),
    ("x509: certificate is valid for mail.smtp2go.com, not smtp.karto-relay.test", "tls-certificate"),
    ("tls: first record does not look like a TLS handshake", "tls-mismatch"),
    ("dial tcp 203.0.113.25:8025: i/o timeout", "connect-timeout"),
    ("context deadline exceeded", "connect-timeout"),
    ("504: Processing this request timed out, please retry after a moment.", "connect-timeout"),
    ("dial tcp 127.0.0.1:2525: connect: connection refused", "connection-refused"),
    # MAIL/RCPT/DATA rejections are wrapped by gomail.Send.
    ("gomail: could not send email 1: 550 The gmail.com domain is not verified. Please, add and verify your "
     "domain on https://resend.com/domains", "sender-rejected"),
    ("gomail: could not send email 1: 450 The outlook.com domain is not verified", "sender-rejected"),
    ("gomail: could not send email 1: 554 Message rejected: Email address is not verified. The following "
     "identities failed the check in region US-EAST-2: john@doe.com", "sender-rejected"),
    ("gomail: could not send email 1: 550-From header sender domain not verified (ro.ru)\n"
     "On your Sending > Verified Senders page\nverify the sender domain or email to be allowed to send.",
     "sender-rejected"),
    ("gomail: could not send email 1: 550 5.1.1 <gone@karto-mail.ru>: Recipient address rejected: User unknown",
     "recipient-rejected"),
    ("gomail: could not send email 1: 530 5.7.0 Authentication required", "auth-unavailable"),
    ("gomail: could not send email 1: 550 spam message rejected. Please visit "
     "https://help.mail.ru/notspam-support/id", "relay-refused"),
    ("502 5.7.0 Your SMTP account is not yet activated", "relay-refused"),
    ("429: email rate limit exceeded", "rate-limited"),
    ("429: For security purposes, you can only request this after 42 seconds.", "rate-limited"),
    ("EOF", "unknown"),
    ("", "unknown"),
    (None, "unknown"),
]


@pytest.mark.parametrize("text, expected", AUTH_LOG_ERRORS)
def test_auth_log_texts(text, expected):
    error_class, hint = classify_failure(text)
    assert error_class == expected
    assert hint == HINTS[expected]


def test_every_class_has_a_hint_and_unknown_classes_get_the_generic_one():
    assert set(FAILURE_CLASSES) <= set(HINTS)
    assert set(HINTS) == set(FAILURE_CLASSES)
    assert all(HINTS[name] and HINTS[name].endswith(".") for name in FAILURE_CLASSES)
    assert hint_for("no-such-class") == HINTS["unknown"]


def test_existing_classes_are_kept():
    # supabase_email_test documents these; roles key their advice on them.
    for name in ("auth-rejected", "sender-rejected", "recipient-rejected", "tls-mismatch", "tls-certificate",
                 "starttls-unavailable", "dns", "connection-refused", "connect-timeout", "rate-limited",
                 "relay-refused", "unknown", "whitespace-in-credential"):
        assert name in FAILURE_CLASSES


def test_unencrypted_connection_points_at_the_missing_starttls():
    # Go's net/smtp says so when a port offers no STARTTLS and it will not send a password in clear.
    error_class, hint = classify_failure('{"error":"unencrypted connection","msg":"500: Error sending magic link email"}')
    assert error_class == "starttls-unavailable"
    assert "465" in hint and "STARTTLS" in hint


SMTP_REFUSALS = [
    # (stage, code, text, class)
    ("connect", 554, "554 5.7.1 No SMTP service here", "relay-refused"),
    ("connect", 421, "421 4.7.0 Too many connections, try later", "rate-limited"),
    ("ehlo", 554, "554 5.7.1 Client host blocked", "relay-refused"),
    ("auth", 535, "535 Incorrect authentication data", "auth-rejected"),
    ("auth", 535, "535 5.7.8 Error: authentication failed", "auth-rejected"),
    ("auth", 504, "504 5.5.4 Unrecognized authentication type", "auth-rejected"),
    # Postfix's reply when its SASL backend (Dovecot) cannot answer: not a verdict on the password.
    ("auth", 454, "454 4.7.0 Temporary authentication failure", "auth-temporary"),
    ("auth", 454, "454 4.7.0 Something else, try later", "relay-refused"),
    ("mail", 550, "550 From header sender domain not verified (rambler.ru)", "sender-rejected"),
    ("mail", 553, "553 5.7.1 <a@b.ru>: Sender address rejected: not owned by user", "sender-rejected"),
    ("mail", 550, "550 Something the text does not explain", "sender-rejected"),
    ("mail", 530, "530 5.7.0 Authentication required", "auth-unavailable"),
    ("mail", 451, "451 4.3.0 Sender check unavailable", "relay-refused"),
    ("rcpt", 550, "550 5.1.1 <gone@karto-mail.ru>: Recipient address rejected: User unknown", "recipient-rejected"),
    ("rcpt", 554, "554 5.7.1 <x@y.ru>: Relay access denied", "recipient-rejected"),
    ("rcpt", 550, "550 5.7.1 Sender address rejected: domain is not verified", "sender-rejected"),
    ("rcpt", 450, "450 4.2.0 Greylisted, try again later", "relay-refused"),
    ("data", 550, "550-From header sender domain not verified (ro.ru)\nverify the sender domain", "sender-rejected"),
    ("data", 550, "550 spam message rejected. Please visit https://help.mail.ru/notspam-support/id", "relay-refused"),
    ("data", 451, "451 4.7.1 Rate limit exceeded, try again later", "rate-limited"),
    ("tls", 454, "454 TLS not available due to temporary reason", "starttls-unavailable"),
]


@pytest.mark.parametrize("stage, code, text, expected", SMTP_REFUSALS)
def test_smtp_refusals_by_stage(stage, code, text, expected):
    error_class, hint = classify_smtp_reply(stage, code, text)
    assert error_class == expected
    assert hint == HINTS[expected]


def test_stages_are_in_conversation_order():
    assert STAGES == ("connect", "tls", "greeting", "ehlo", "auth", "mail", "rcpt", "data")


# Without a login, Postfix (permit_sasl_authenticated, then reject) refuses the envelope with these
# replies: they mean "log in", not "verify the sender" or "check the recipient".
NOT_LOGGED_IN = [
    ("rcpt", 553, "553 5.7.1 <karto.help@ro.ru>: Sender address rejected: not logged in"),
    ("rcpt", 554, "554 5.7.1 <x@y.ru>: Recipient address rejected: Access denied"),
    ("rcpt", 554, "554 5.7.1 <x@y.ru>: Relay access denied"),
    ("mail", 530, "530 5.7.0 Authentication required"),
]


@pytest.mark.parametrize("stage, code, text", NOT_LOGGED_IN)
def test_envelope_refusals_without_a_login_ask_for_one(stage, code, text):
    assert classify_smtp_reply(stage, code, text, logged_in=False) == ("login-required", HINTS["login-required"])
    assert classify_smtp_reply(stage, code, text)[0] != "login-required"  # logged in: about the addresses


def test_without_a_login_a_plain_recipient_refusal_stays_about_the_recipient():
    text = "550 5.1.1 <gone@karto-mail.ru>: Recipient address rejected: User unknown"
    assert classify_smtp_reply("rcpt", 550, text, logged_in=False)[0] == "recipient-rejected"


@pytest.mark.parametrize("stage, expected", [
    ("connect", "connect-timeout"), ("tls", "tls-timeout"), ("greeting", "greeting-timeout"),
    ("ehlo", "greeting-timeout"), ("auth", "auth-timeout"), ("mail", "mail-timeout"), ("rcpt", "mail-timeout"),
    ("data", "mail-timeout"),
])
def test_a_timeout_is_classed_by_its_stage(stage, expected):
    assert timeout_class(stage) == expected
    assert expected in FAILURE_CLASSES


def test_the_auth_timeout_hint_names_the_failed_login_delay_not_a_blocked_port():
    assert "blocked" not in HINTS["auth-timeout"]
    assert "failed login" in HINTS["auth-timeout"]


def test_the_sender_rejected_hint_is_not_one_relay_s_verification_link():
    # The provider's own advice (mail_relay.advice) says what to click; the generic hint fits any server.
    assert "click" not in HINTS["sender-rejected"]
    assert "mailbox" in HINTS["sender-rejected"]


def test_tls_alerts_in_a_log_line_are_a_handshake_failure_not_a_port_mismatch():
    assert classify_failure("remote error: tls: protocol version not supported")[0] == "tls-handshake"
    assert classify_failure("[SSL: TLSV1_ALERT_INTERNAL_ERROR] tlsv1 alert internal error")[0] == "tls-handshake"
    assert classify_failure("tls: first record does not look like a TLS handshake")[0] == "tls-mismatch"


def test_a_from_address_that_matches_no_verified_sender_identity_is_the_sender_at_end_of_data():
    # SendGrid's reply (observed; tests/sandbox/README.md, SendGrid API) comes after DATA: the text,
    # not the stage, says it is about the sender.
    reply = ("The from address does not match a verified Sender Identity. Mail cannot be sent until this "
             "error is resolved.")
    assert classify_smtp_reply("data", 550, reply)[0] == "sender-rejected"
    assert classify_failure("gomail: could not send email 1: 550 " + reply)[0] == "sender-rejected"
