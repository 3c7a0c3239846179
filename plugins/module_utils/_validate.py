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

_EMAIL = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")


def check_pattern(name, value, pattern, description):
    if value is not None and not pattern.match(value):
        return "%s must be %s; got %r." % (name, description, value)
    return None


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
    if value is not None and not _EMAIL.match(value):
        return "%s must be a plain email address such as karto.help@ro.ru; got %r." % (name, value)
    return None


def check_smtp_host(name, value):
    """A bare host name or IP address: no scheme, port, path or whitespace."""
    if value is None:
        return None
    if "://" in value:
        return ("%s must be a bare host name such as smtp.example.com, without a scheme; got %r."
                % (name, value))
    if any(ch.isspace() for ch in value):
        return "%s must not contain whitespace; got %r." % (name, value)
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if ":" in value:
        return "%s must not carry a port; put the port in the port option; got %r." % (name, value)
    labels = value.rstrip(".").split(".")
    if not value or len(value) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
        return "%s must be a valid host name; got %r." % (name, value)
    return None


def check_single_line(name, value):
    """Header values must not carry line breaks (they would end the header)."""
    if value is not None and ("\r" in value or "\n" in value):
        return "%s must be a single line; got %r." % (name, value)
    return None


def first_problem(*problems):
    for problem in problems:
        if problem:
            return problem
    return None
