# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: turns a mail failure into a class and a fix.

Two sources of failures:
- the texts Supabase Auth (GoTrue, gomail, Go's net/smtp) writes to its logs, classified by
  `classify_failure(text)`;
- what an SMTP probe met at a given stage of the conversation (`classify_smtp_reply(stage, code,
  text)`), used by smtp_check, which knows more than the text: where it stopped.

Every class has one hint (`HINTS`, `hint_for`). Pure functions: unit-tested without any server.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import re

# What to do, per failure class.
HINTS = {
    "whitespace-in-credential":
        "The SMTP user name or password has leading or trailing whitespace (often a pasted space or "
        "newline): remove it; relays refuse such credentials with 535.",
    "dns":
        "The SMTP host name does not resolve: check the host for typos (a bare name, no scheme).",
    "connection-refused":
        "Nothing listens on that host and port: check the port (465 or 587) and that the relay is up.",
    "connect-timeout":
        "No TCP connection within the timeout: the port is blocked on the way (outbound 465/587 are "
        "often filtered) or wrong; try 465 or 587.",
    "greeting-timeout":
        "Connected, but the server sent no SMTP greeting (or no answer to EHLO) in time: the port speaks "
        "another protocol, or a proxy or an overloaded server holds it; check the host and port.",
    "tls-timeout":
        "The TLS handshake did not finish in time: something on the way holds TLS traffic, or the server "
        "is overloaded; retry, then try the other port (465 or 587).",
    "auth-timeout":
        "The server did not answer the login in time. Mail servers delay their answer to a failed login "
        "and slow down further tries from the same address, so a wrong password (or a mailbox that does "
        "not allow mail clients) is the likely cause: check the credentials, then wait a few minutes "
        "before trying again.",
    "mail-timeout":
        "The server took the login but did not answer MAIL FROM, RCPT TO or DATA in time: it is "
        "overloaded or throttling this client; retry later.",
    "tls-mismatch":
        "The port and the TLS mode disagree: Supabase uses implicit TLS only on 465 and STARTTLS on "
        "other ports. Use 465 for a server that speaks TLS from the first byte, or 587 with a server "
        "that offers STARTTLS.",
    "tls-handshake":
        "The port speaks TLS, but the handshake failed with an alert from the server: the server and "
        "Supabase Auth (TLS 1.2 or newer) share no protocol version or cipher, or the server's TLS "
        "setup is broken. The port is right; the server's side must be fixed.",
    "tls-certificate":
        "The relay's TLS certificate was not accepted: check the host name matches the certificate "
        "(use the relay's documented host, not an IP address) and that the certificate is current and "
        "signed by a public CA; Supabase Auth checks it the same way.",
    "starttls-unavailable":
        "The relay does not offer STARTTLS on this port, and Supabase never sends a password over an "
        "unencrypted connection: use its implicit-TLS port 465, or a port that offers STARTTLS (587).",
    "auth-unavailable":
        "The relay does not offer SMTP AUTH on this connection, or wants a login that was not given: "
        "set the SMTP user name and password, and check the host is the relay's submission host "
        "(not a mailbox's MX server).",
    "login-required":
        "The server sends mail only for clients that log in, and no user name and password were given: "
        "set them (this probe tried no login).",
    "auth-temporary":
        "The server could not check the login just now (a temporary authentication failure on its side, "
        "or a limit on logins): wait a few minutes and retry; nothing is wrong with this request itself.",
    "auth-rejected":
        "The relay refused the SMTP user name or password: check the SMTP user exists and the password "
        "stored in Supabase is its current one (no trailing space); an API key is not an SMTP password "
        "unless the relay says so.",
    "sender-rejected":
        "The server refuses this From address for this login: a relay sends only From addresses (or "
        "domains) verified with it, a mailbox's own server only From its own address. Use an address "
        "the server accepts.",
    "recipient-rejected":
        "The recipient address was refused: check the test address exists.",
    "rate-limited":
        "Too many mails: wait for the rate limit (smtp_max_frequency, rate_limit_email_sent) and retry.",
    "relay-refused":
        "The relay refused the message: read its reply above.",
    "unknown":
        "Read the error text; the Auth logs in the Supabase dashboard hold the same line.",
}

# (class, pattern over the lower-cased text). First match wins: order from specific to broad.
_RULES = [
    # Go's net/smtp PlainAuth (and gomail's LOGIN) refuse to send a password over a connection
    # without TLS: what Supabase says when the port offers no STARTTLS.
    ("starttls-unavailable",
     r"unencrypted connection|starttls (is )?not (supported|offered|available)|does not support starttls"
     r"|starttls extension not supported"),
    ("auth-temporary",
     r"temporary authentication failure"),
    ("tls-handshake",
     r"tlsv1 alert|sslv3 alert|alert protocol version|alert internal error|alert handshake failure"
     r"|unsupported protocol|no shared cipher|no protocols available|tls: protocol version not supported"),
    ("tls-mismatch",
     r"first record does not look like a tls handshake|wrong version number"
     r"|tls: oversized record|unknown protocol|record layer failure"),
    ("tls-certificate",
     r"x509:|certificate verify failed|certificate is not valid|certificate signed by unknown"
     r"|failed to verify certificate|hostname mismatch"),
    ("auth-rejected",
     r"(^|\D)535(\D|$)|authentication failed|incorrect authentication data|authentication credentials invalid"
     r"|username and password not accepted|api key not found"),
    ("auth-unavailable",
     r"authentication required|smtp auth extension not supported|auth(entication)? (is )?not (supported|enabled|available)"),
    ("sender-rejected",
     r"sender domain not verified|sender (address )?(is )?not verified|domain is not verified"
     r"|email address is not verified|not a verified sender|not match a verified sender"
     r"|from address.*not (allowed|verified)"
     r"|sender address rejected|verify the sender"),
    ("recipient-rejected",
     r"recipient address rejected|user unknown|no such user|mailbox unavailable|invalid recipient"
     r"|mailbox not found|(^|\D)55[03] 5\.1\.1"),
    ("dns",
     r"no such host|name or service not known|nodename nor servname|temporary failure in name resolution"
     r"|getaddrinfo failed|no address associated with hostname"),
    ("connection-refused",
     r"connection refused"),
    ("connect-timeout",
     r"i/o timeout|timed out|timeout|deadline exceeded|504: processing this request timed out"),
    ("rate-limited",
     r"over_email_send_rate_limit|email rate limit exceeded|you can only request this after|(^|\D)4[25]1(\D|$)"),
    ("relay-refused",
     r"gomail: could not send email|(^|\D)5\d\d(\D|$)"),
]

FAILURE_CLASSES = tuple(HINTS)

# Stages of an SMTP conversation, in order; a probe reports the one it stopped at.
STAGES = ("connect", "tls", "greeting", "ehlo", "auth", "mail", "rcpt", "data")

# What a timeout means depends on where it hit: each stage has its own class and hint.
TIMEOUT_CLASS = {
    "connect": "connect-timeout",
    "tls": "tls-timeout",
    "greeting": "greeting-timeout",
    "ehlo": "greeting-timeout",
    "auth": "auth-timeout",
    "mail": "mail-timeout",
    "rcpt": "mail-timeout",
    "data": "mail-timeout",
}

# Refusals that mean "log in first" when no login was tried (Postfix: "Sender address rejected:
# not logged in", "Relay access denied", "Recipient address rejected: Access denied"; 530).
_SAYS_LOGIN_NEEDED = (r"not logged in|access denied|authentication required|must (be )?authenticate"
                      r"|(^|\D)530(\D|$)")


def hint_for(error_class):
    """The hint of a failure class (the generic one for a class this module does not know)."""
    return HINTS.get(error_class, HINTS["unknown"])


def classify_failure(text):
    """(class, hint) for a raw failure text; ('unknown', generic hint) if nothing matches."""
    lowered = (text or "").lower()
    # re.search compiles a pattern on its first use and caches it: a probe that fails nowhere
    # (smtp_check's usual run) compiles none of them.
    for name, pattern in _RULES:
        if re.search(pattern, lowered):
            return name, HINTS[name]
    return "unknown", HINTS["unknown"]


_SAYS_RATE_LIMIT = r"rate|too many|limit|try (again )?later|frequen"

# What a refusal at each stage means when its text says nothing more specific.
_STAGE_DEFAULT = {
    "connect": "relay-refused",  # the greeting was a refusal (e.g. 554 no service for you)
    "tls": "starttls-unavailable",  # the reply to STARTTLS (a handshake failure has no reply)
    "ehlo": "relay-refused",
    "auth": "auth-rejected",
    "mail": "sender-rejected",
    "rcpt": "recipient-rejected",
    "data": "relay-refused",
}
# Classes a text may override the stage's default with.
_STAGE_OVERRIDES = {
    "connect": {"rate-limited"},
    "tls": {"rate-limited"},
    "ehlo": {"rate-limited"},
    "auth": {"rate-limited", "auth-unavailable"},
    "mail": {"auth-unavailable", "auth-rejected", "rate-limited"},
    "rcpt": {"sender-rejected", "auth-unavailable", "rate-limited"},
    "data": {"sender-rejected", "recipient-rejected", "rate-limited"},
}


def timeout_class(stage):
    """The failure class of a timeout met at `stage`."""
    return TIMEOUT_CLASS.get(stage, "connect-timeout")


def classify_smtp_reply(stage, code, text, logged_in=True):
    """(class, hint) for an SMTP refusal met at `stage` (one of STAGES) with reply `code`/`text`.

    The stage decides (a refusal of MAIL FROM is about the sender, of RCPT TO about the
    recipient, of AUTH about the credentials), unless the text names a more precise cause the
    stage allows (a relay that checks the sender at RCPT or at the end of DATA, a 530 asking for
    a login, a 421/451 rate limit). A temporary (4xx) refusal the text does not explain is
    relay-refused, not a verdict on the sender or recipient. Without a login (`logged_in` false), a
    refusal of MAIL or RCPT that asks for one is login-required, not a verdict on the addresses.
    """
    text_class, _hint = classify_failure("%s %s" % (code or "", text or ""))
    if not logged_in and stage in ("mail", "rcpt") and re.search(_SAYS_LOGIN_NEEDED, "%s %s" % (code or "", (text or "").lower())):
        return "login-required", HINTS["login-required"]
    if text_class == "auth-temporary" and stage in ("auth", "mail", "rcpt"):
        return text_class, HINTS[text_class]
    if text_class == "rate-limited" and not re.search(_SAYS_RATE_LIMIT, (text or "").lower()):
        text_class = None  # a bare 421/451 is any temporary failure, not necessarily a rate limit
    if code == 530 and stage in ("mail", "rcpt"):
        text_class = "auth-unavailable"
    if text_class in _STAGE_OVERRIDES.get(stage, ()):
        return text_class, HINTS[text_class]
    error_class = _STAGE_DEFAULT.get(stage, "unknown")
    if code is not None and 400 <= code < 500 and stage in ("mail", "rcpt", "auth"):
        error_class = "relay-refused"
    return error_class, HINTS[error_class]
