# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: masking secrets in any text we emit.

Kept free of heavy imports, so the SMTP probe can use it without loading requests.
Not a public API; it may change without notice.
"""

from __future__ import annotations

REDACTED = "********"


class Redactor:
    """Replaces every known secret with a fixed mask in any text we emit."""

    def __init__(self, secrets=()):
        self._secrets = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret):
        if secret and isinstance(secret, str) and secret not in self._secrets:
            self._secrets.append(secret)
            # Longest first, so a secret containing another is masked whole.
            self._secrets.sort(key=len, reverse=True)

    def __call__(self, text):
        if text is None:
            return None
        text = str(text)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text
