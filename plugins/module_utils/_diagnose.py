# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: turns a mail failure's raw text into a class and a fix.

The texts are those Supabase Auth (GoTrue, gomail, Go's net/smtp) writes to its logs and those
relays answer over SMTP. Pure functions: unit-tested without any server.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import re

# (class, pattern over the lower-cased text, hint). First match wins: order from specific to broad.
_RULES = [
    ("tls-mismatch",
     r"unencrypted connection|first record does not look like a tls handshake|wrong version number"
     r"|tls: oversized record|unknown protocol",
     "The port and the TLS mode disagree: Supabase uses implicit TLS only on 465 and STARTTLS on "
     "other ports. Use 465, or 587 with a relay that offers STARTTLS."),
    ("tls-certificate",
     r"x509:|certificate verify failed|certificate is not valid|certificate signed by unknown",
     "The relay's TLS certificate was not accepted: check the host name matches the certificate "
     "(use the relay's documented host, not an IP address)."),
    ("starttls-unavailable",
     r"starttls (is )?not (supported|offered|available)|does not support starttls",
     "The relay does not offer STARTTLS on this port: use its implicit-TLS port 465."),
    ("auth-rejected",
     r"(^|\D)535(\D|$)|authentication failed|incorrect authentication data|authentication credentials invalid"
     r"|username and password not accepted|api key not found",
     "The relay refused the SMTP user name or password: check the SMTP user exists and the password "
     "stored in Supabase is its current one (no trailing space); an API key is not an SMTP password "
     "unless the relay says so."),
    ("sender-rejected",
     r"sender domain not verified|sender (address )?(is )?not verified|domain is not verified"
     r"|email address is not verified|not a verified sender|from address.*not (allowed|verified)"
     r"|sender address rejected|verify the sender",
     "The relay refuses the From address: verify it (click the link the relay mailed to it) or "
     "verify its domain, then retry."),
    ("recipient-rejected",
     r"recipient address rejected|user unknown|no such user|mailbox unavailable|invalid recipient"
     r"|mailbox not found|(^|\D)55[03] 5\.1\.1",
     "The recipient address was refused: check the test address exists."),
    ("dns",
     r"no such host|name or service not known|nodename nor servname|temporary failure in name resolution"
     r"|getaddrinfo failed",
     "The SMTP host name does not resolve: check the host for typos (a bare name, no scheme)."),
    ("connection-refused",
     r"connection refused",
     "Nothing listens on that host and port: check the port (465 or 587) and that the relay is up."),
    ("connect-timeout",
     r"i/o timeout|timed out|timeout|deadline exceeded|504: processing this request timed out",
     "The SMTP server did not answer in time: the port may be blocked or wrong; try 465 or 587."),
    ("rate-limited",
     r"over_email_send_rate_limit|email rate limit exceeded|you can only request this after|(^|\D)4[25]1(\D|$)",
     "Too many mails: wait for the rate limit (smtp_max_frequency, rate_limit_email_sent) and retry."),
    ("relay-refused",
     r"gomail: could not send email|(^|\D)5\d\d(\D|$)",
     "The relay refused the message: read its reply above."),
]
_COMPILED = [(name, re.compile(pattern), hint) for name, pattern, hint in _RULES]

FAILURE_CLASSES = tuple(rule[0] for rule in _RULES) + ("whitespace-in-credential", "unknown")


def classify_failure(text):
    """(class, hint) for a raw failure text; ('unknown', generic hint) if nothing matches."""
    lowered = (text or "").lower()
    for name, pattern, hint in _COMPILED:
        if pattern.search(lowered):
            return name, hint
    return "unknown", "Read the error text; the Auth logs in the Supabase dashboard hold the same line."
