# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: the one place that decides `changed` and builds the diff.

Modules state the wanted fields and let this module say which differ; the write engine
(_engine.py) builds every `--diff` here. Write-only secrets are compared through a
caller-supplied verdict and are never put into the diff, only as <hidden, changed|unchanged>.

Not a public API; it may change without notice.
"""

from __future__ import annotations

# Verdicts on a write-only secret, as far as the API lets us know it.
SECRET_UNCHANGED = "unchanged"   # the API proves the stored secret equals the wanted one
SECRET_DIFFERENT = "different"   # the API proves it differs, or none is stored
SECRET_UNKNOWN = "unknown"       # the API hides it in a way we cannot compare
SECRET_UNMANAGED = "unmanaged"   # the caller did not ask to manage it

SECRET_MASK_UNCHANGED = "<hidden, unchanged>"
SECRET_MASK_CHANGED = "<hidden, changed>"
SECRET_MASK_SET = "<hidden>"


def changed_fields(current, wanted):
    """The subset of `wanted` whose values differ from `current` (None in wanted = unmanaged)."""
    return {key: value for key, value in wanted.items()
            if value is not None and current.get(key) != value}


def should_write_secret(verdict, update_policy):
    """Whether to send a write-only secret.

    `on_change` writes only what the API proves different; `always` also writes when the API
    cannot tell (a masked value), i.e. it skips the write only when proven equal.
    """
    if verdict == SECRET_UNMANAGED or verdict == SECRET_UNCHANGED:
        return False
    if verdict == SECRET_DIFFERENT:
        return True
    return update_policy == "always"


def secret_diff_values(stored_before, stored_after, written):
    """(before, after) placeholders for a secret: presence and change, never the value."""
    before = SECRET_MASK_SET if stored_before else None
    if not stored_after:
        return before, None
    if written:
        return before, SECRET_MASK_CHANGED
    return SECRET_MASK_UNCHANGED, SECRET_MASK_UNCHANGED


def build_diff(before, after, secret=None):
    """The `diff` dict Ansible prints with --diff.

    `secret` is (field name, stored before, stored after, written) for one write-only field.
    """
    before = dict(before or {})
    after = dict(after or {})
    if secret is not None:
        name, stored_before, stored_after, written = secret
        before[name], after[name] = secret_diff_values(stored_before, stored_after, written)
    return {"before": before, "after": after}
