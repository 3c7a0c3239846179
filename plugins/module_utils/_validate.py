# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: input checks that run before any request.

Each check returns None when the value is fine, else a sentence that names the parameter and
says how to fix it. Secret values are never quoted back.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# Whole strings only (re.fullmatch): `$` would accept a trailing newline. ASCII only: Supabase Auth's
# mailer and the relays speak plain SMTP, without SMTPUTF8.
_EMAIL = re.compile(r"[!#-'*+\-/-9=?A-Z^-~.]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_pattern(name, value, pattern, description):
    """`value` must match `pattern` as a whole string (a trailing newline does not pass)."""
    if value is not None and not pattern.fullmatch(value):
        return "%s must be %s; got %r." % (name, description, value)
    return None


def check_no_control_characters(name, value, secret=False):
    """A line break or control character inside a value is stored as it is and can never work
    as an SMTP login, a header or a sender."""
    if value is None or not _CONTROL.search(value):
        return None
    shown = "the value" if secret else repr(value)
    return ("%s must not contain a line break or control character (%s): remove it; such a value can "
            "never work as SMTP login, sender or header." % (name, shown))


def check_credential(name, value):
    """An API key or token: given, and no whitespace or line break anywhere (a pasted token often
    ends in a newline, which HTTP libraries refuse in a header). Never quotes the value."""
    if value is None:
        return None
    if value.strip() == "":
        return "%s must not be empty." % name
    if any(ch.isspace() for ch in value) or _CONTROL.search(value):
        return ("%s contains whitespace, a line break or a control character (a pasted token often ends "
                "in a newline): remove it." % name)
    return None


def check_url(name, value):
    """An API base URL: http:// or https://, a host, no whitespace."""
    if value is None:
        return None
    example = "such as https://api.example.com"
    if not value or any(ch.isspace() for ch in value) or _CONTROL.search(value):
        return "%s must be an http:// or https:// URL %s, without spaces or line breaks; got %r." % (
            name, example, value)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "%s must be an http:// or https:// URL %s; got %r." % (name, example, value)
    if parts.scheme.lower() not in ("http", "https"):
        return "%s must start with https:// (or http:// for a local test endpoint), %s; got %r." % (
            name, example, value)
    if not parts.hostname or (port is not None and not 1 <= port <= 65535):
        return "%s must name a host, %s; got %r." % (name, example, value)
    return None


def check_timeout(name, value):
    """Seconds a request (all its tries) may take: requests refuses 0 and negative values."""
    if value is not None and not 1 <= value <= 3600:
        return "%s must be between 1 and 3600 seconds; got %s." % (name, value)
    return None


def check_api_options(params, url_option, credential_option):
    """The connection options every API module takes: its URL, its key or token, timeout."""
    return first_problem(
        check_url(url_option, params.get(url_option)),
        check_credential(credential_option, params.get(credential_option)),
        check_timeout("timeout", params.get("timeout")),
    )


def check_range(name, value, low, high):
    if value is not None and not low <= value <= high:
        return "%s must be between %d and %d; got %d." % (name, low, high, value)
    return None


def check_no_surrounding_whitespace(name, value, secret=False):
    """A pasted credential often carries a trailing space or newline the relay then refuses."""
    if value is None or value == value.strip():
        return None
    where = []
    if value[:1].isspace():
        where.append("leading")
    if value[-1:].isspace():
        where.append("trailing")
    shown = "the value" if secret else repr(value)
    return ("%s has %s whitespace (%s): remove it; relays refuse such credentials with 535."
            % (name, " and ".join(where), shown))


def check_not_empty(name, value):
    if value is not None and value == "":
        return "%s must not be empty." % name
    return None


def check_email(name, value):
    """A plain ASCII address, whole string: no display name, no line break, no IDN (its xn-- form is fine)."""
    if value is None:
        return None
    if not value.isascii():
        return ("%s must be an ASCII address such as karto.help@ro.ru: Supabase Auth and the relays send "
                "without SMTPUTF8, so write an internationalised domain in its xn-- form; got %r." % (name, value))
    if not _EMAIL.fullmatch(value):
        return "%s must be a plain email address such as karto.help@ro.ru, on one line; got %r." % (name, value)
    return None


def check_smtp_host(name, value):
    """A bare host name or IP address: no scheme, port, path or whitespace."""
    if value is None:
        return None
    if "://" in value:
        return ("%s must be a bare host name such as smtp.example.com, without a scheme; got %r."
                % (name, value))
    if any(ch.isspace() for ch in value) or _CONTROL.search(value):
        return "%s must not contain whitespace or control characters; got %r." % (name, value)
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if ":" in value:
        return "%s must not carry a port; put the port in the port option; got %r." % (name, value)
    labels = value.rstrip(".").split(".")
    if not value or len(value) > 253 or not all(_HOSTNAME_LABEL.fullmatch(label) for label in labels):
        return "%s must be a valid host name; got %r." % (name, value)
    return None


def check_single_line(name, value):
    """Header values must not carry line breaks (they would end the header) or control characters."""
    if value is not None and _CONTROL.search(value):
        return "%s must be a single line without control characters; got %r." % (name, value)
    return None


def first_problem(*problems):
    for problem in problems:
        if problem:
            return problem
    return None
