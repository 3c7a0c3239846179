# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: masking secrets in any text we emit.

Kept free of heavy imports, so the SMTP probe can use it without loading requests.
Not a public API; it may change without notice.
"""

from __future__ import annotations

import json
import re

from urllib.parse import quote, quote_plus

REDACTED = "********"
# A run of text that starts with this many characters of a secret (past its public type tag) is
# masked wherever it appears: an error that echoes a request may cut the secret short ("Bearer
# sb_secret_abc..."), and a prefix tells an attacker more than nothing.
PREFIX_MIN = 8
# A key's public type tag ("sbp_", "api-", "sb_secret_", a JWT's header): the same for every key of
# its kind, so it does not count towards PREFIX_MIN (else every mention of the kind would be masked).
_TYPE_TAG = re.compile(r"eyJ[A-Za-z0-9_-]+\.|(?:[A-Za-z]{1,9}[_.-])+")


def _json_escaped(text, ascii_only):
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1]


def _forms(secret):
    """The ways a secret shows up in text we did not write: raw, with a pasted newline or space
    trimmed, JSON-escaped once or twice (a body that echoes the request, perhaps quoted again), as a
    Python repr (library errors), and URL-encoded (a form body or query string echoed)."""
    forms = set()
    for value in (secret, secret.strip()):
        forms.update((value, repr(value)[1:-1], quote(value, safe=""), quote_plus(value)))
        for ascii_only in (True, False):
            once = _json_escaped(value, ascii_only)
            forms.update((once, _json_escaped(once, ascii_only)))
    return [form for form in forms if form]


def prefix_length(secret):
    """How many leading characters of `secret` make a prefix worth masking."""
    tag = _TYPE_TAG.match(secret)
    return (len(tag.group(0)) if tag else 0) + PREFIX_MIN


def _mask_prefixes(text, secret, length):
    """Mask every run of text that starts with the secret's first `length` characters, as far as
    it goes on matching the secret."""
    head = secret[:length]
    out = []
    start = 0
    while True:
        found = text.find(head, start)
        if found < 0:
            out.append(text[start:])
            return "".join(out)
        end, matched = found + len(head), len(head)
        while end < len(text) and matched < len(secret) and text[end] == secret[matched]:
            end += 1
            matched += 1
        out.append(text[start:found])
        out.append(REDACTED)
        start = end


class Redactor:
    """Replaces every known secret with a fixed mask in any text we emit: its raw, trimmed,
    JSON-escaped, repr and URL-encoded forms, and any run of text that starts like one of them
    (PREFIX_MIN characters past a public type tag)."""

    def __init__(self, secrets=()):
        self._secrets = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret):
        if not secret or not isinstance(secret, str):
            return
        for form in _forms(secret):
            if form not in self._secrets:
                self._secrets.append(form)
        # Longest first, so a secret containing another is masked whole.
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text):
        if text is None:
            return None
        text = str(text)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for secret in self._secrets:
            length = prefix_length(secret)
            if len(secret) > length:
                text = _mask_prefixes(text, secret, length)
        return text

    def data(self, value):
        """`value` with every string in it (nested dicts and lists too) redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {key: self.data(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(item) for item in value]
        return value
