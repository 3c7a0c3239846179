# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: domain names: normalise, check, the organisational domain, and
the domains of public mailbox providers.

Apart from `_dns_policy` (the DMARC decision, which re-exports these): a module that only checks a
domain name, or a provider client that asks "is this a mailbox provider's domain", imports this
small file instead of the whole policy (every imported file is compiled from source at each module
start).

Not a public API; it may change without notice.
"""

from __future__ import annotations

import re

# Domains whose addresses are mailboxes at a public mail provider: their DNS (DKIM, SPF) belongs to
# that provider, so no relay can be verified for them. Public knowledge, not one relay's: the
# providers' own sign-up pages; Rambler's family from chatmail/provider-db rambler.ru.md.
FREE_MAIL_DOMAINS = frozenset((
    "rambler.ru", "ro.ru", "lenta.ru", "autorambler.ru", "myrambler.ru", "rambler.ua", "r0.ru",
    "mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru", "yandex.ru", "yandex.com", "ya.ru", "narod.ru",
    "gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.net", "gmx.de",
    "web.de", "zoho.com", "qq.com", "163.com",
))

# Two-label public suffixes, so that organisational_domain() needs no Public Suffix List for the
# common cases. A domain under another multi-label suffix is cut one label too short.
TWO_LABEL_SUFFIXES = frozenset((
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "com.au", "net.au", "org.au", "co.nz", "co.jp",
    "ne.jp", "co.za", "com.br", "com.cn", "com.tr", "com.mx", "co.in", "co.kr", "com.ua", "org.ua",
    "com.ru", "net.ru", "org.ru", "pp.ru", "msk.ru", "spb.ru", "com.sg", "com.tw", "com.hk",
))

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalise_domain(value):
    return value.strip().rstrip(".").lower()


def domain_of_email(email):
    return normalise_domain(email.rpartition("@")[2])


def surrounded_problem(name, value):
    """A sentence naming `name` when `value` has spaces or a line break around it (a pasted value),
    which normalising would otherwise hide and a later request would carry."""
    if value != value.strip():
        return "%s must not have spaces or line breaks around it; got %r." % (name, value)
    return None


def check_domain(name, value):
    """A DNS domain of at least two labels (letters, digits, hyphens), or a sentence naming `name`."""
    if value is None:
        return None
    if surrounded_problem(name, value):
        return surrounded_problem(name, value)
    domain = normalise_domain(value)
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "%s must be a domain name such as ro.ru (letters, digits, hyphens, dots); got %r." % (name, value)
    return None


def organisational_domain(domain):
    """The registrable domain (RFC 7489 3.2), approximated without the Public Suffix List: the last
    two labels, or three under a known two-label suffix such as co.uk."""
    labels = normalise_domain(domain).split(".")
    keep = 3 if ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])
