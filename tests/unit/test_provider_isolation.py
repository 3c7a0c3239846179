"""Shared code names no provider: everything known about one provider lives in its own files
(its profile in plugins/module_utils/_provider_<name>.py, its modules, role and emulator).

A provider's name in one of these files means a provider leaked into shared code, so the next
provider would need an edit here instead of new files only (docs/adding-a-provider.md)."""

import os
import re

import pytest

from tests.collection_path import REPO_ROOT
from ansible_collections.karto.supabase_mail.plugins.module_utils import _relay

SHARED = [
    "plugins/module_utils/_http.py", "plugins/module_utils/_engine.py", "plugins/module_utils/_diff.py",
    "plugins/module_utils/_relay.py", "plugins/module_utils/_validate.py", "plugins/module_utils/_secrets.py",
    "plugins/module_utils/_module.py", "plugins/module_utils/_diagnose.py", "plugins/module_utils/_smtp_probe.py",
    "plugins/module_utils/_dns_policy.py", "plugins/module_utils/_domain.py",
    "plugins/module_utils/_relay_profile.py", "plugins/doc_fragments/http.py",
    "plugins/modules/sender_domain_check.py", "plugins/modules/smtp_check.py",
    "roles/relay_contract", "roles/secret_store", "roles/supabase_smtp", "roles/mail_verify",
    "playbooks/setup-mail.yml", "playbooks/teardown-mail.yml",
    "tests/sandbox/core.py", "tests/sandbox/smtp_relay.py", "tests/sandbox/supabase_auth.py",
]


def shared_files():
    for entry in SHARED:
        path = os.path.join(REPO_ROOT, entry)
        if os.path.isdir(path):
            for folder, _dirs, files in os.walk(path):
                for name in sorted(files):
                    yield os.path.relpath(os.path.join(folder, name), REPO_ROOT)
        else:
            yield entry


PROVIDERS = sorted(_relay.registered_profiles().values(), key=lambda profile: profile.name)


# Provider names that are also words of the contract's own (a mailbox address, the mailbox's own
# server): for these only the forms that select the provider count - `mail_provider: <name>`, its
# role's variables `<name>_...`, and the quoted name.
COMMON_WORD_NAMES = {"mailbox", "resend"}  # resend: also Supabase Auth's /resend endpoint


def provider_patterns(profile):
    words = [profile.smtp_host] + ([] if profile.title.lower() in COMMON_WORD_NAMES else [profile.title.lower()])
    patterns = [r"(?<![a-z0-9_])%s(?![a-z0-9_])" % re.escape(word) for word in words]
    name = re.escape(profile.name)
    if profile.name in COMMON_WORD_NAMES:
        patterns += [r"mail_provider\W{1,3}%s(?![a-z0-9_])" % name, r"(?<![a-z0-9_])%s_[a-z]" % name,
                     r"(['\"])%s\1" % name]
    else:
        patterns.append(r"(?<![a-z0-9_])%s(?![a-z0-9_])" % name)
    return patterns


@pytest.mark.parametrize("path", sorted(shared_files()))
def test_shared_code_names_no_provider(path):
    text = open(os.path.join(REPO_ROOT, path), encoding="utf-8").read().lower()
    for profile in PROVIDERS:
        for pattern in provider_patterns(profile):
            found = re.search(pattern, text)
            assert not found, (
                "%s names the provider %s (%r): move that knowledge into its profile, role or emulator"
                % (path, profile.name, found.group(0)))


def test_a_common_word_name_is_still_caught_where_it_selects_the_provider():
    profile = next(p for p in PROVIDERS if p.name == "mailbox")
    for text in ("mail_provider: mailbox", "set mail_provider=mailbox", "mailbox_password", "name: 'mailbox'"):
        assert any(re.search(pattern, text) for pattern in provider_patterns(profile)), text
    assert not any(re.search(pattern, "the mailbox's own server") for pattern in provider_patterns(profile))
