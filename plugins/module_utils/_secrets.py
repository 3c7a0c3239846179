# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: masking secrets in any text we emit.

Kept free of heavy imports, so the SMTP probe can use it without loading requests.
Not a public API; it may change without notice.
"""

from __future__ import annotations

import json

REDACTED = "********"
# A run of this many leading characters of a secret (or more) is masked wherever it appears: an
# error that echoes a request may cut the secret short ("Bearer sb_secret_abc..."), and a prefix
# tells an attacker more than nothing.
PREFIX_MIN = 12


def _forms(secret):
    """The ways a secret shows up in text we did not write: raw, with a pasted newline or space
    trimmed, JSON-escaped (a body that echoes the request), and as a Python repr (library errors)."""
    forms = {secret, secret.strip()}
    for escaped in (json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1]):
        forms.add(escaped)
    return [form for form in forms if form]


def _mask_prefixes(text, secret):
    """Mask every run of text that starts with the secret's first PREFIX_MIN characters, as far
    as it goes on matching the secret."""
    head = secret[:PREFIX_MIN]
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
    JSON-escaped and repr forms, and any run of text that starts like it (PREFIX_MIN characters)."""

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
            if len(secret) > PREFIX_MIN:
                text = _mask_prefixes(text, secret)
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
