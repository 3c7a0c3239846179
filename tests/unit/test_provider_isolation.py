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
    "plugins/module_utils/_dns_policy.py", "plugins/doc_fragments/http.py",
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


@pytest.mark.parametrize("path", sorted(shared_files()))
def test_shared_code_names_no_provider(path):
    text = open(os.path.join(REPO_ROOT, path), encoding="utf-8").read().lower()
    for profile in PROVIDERS:
        for word in (profile.name, profile.title.lower(), profile.smtp_host):
            assert not re.search(r"(?<![a-z0-9_])%s(?![a-z0-9_])" % re.escape(word.lower()), text), (
                "%s names the provider %s (%r): move that knowledge into its profile, role or emulator"
                % (path, profile.name, word))
