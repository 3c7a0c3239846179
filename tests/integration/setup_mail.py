"""One isolated run of playbooks/setup-mail.yml against the sandbox, for any provider.

A provider's end-to-end tests subclass `SetupMail` with what is its own: how a fresh account is
made in its emulator (`new_account`), its per-host and play variables (`host_vars`,
`provider_vars`). The projects, inventory, common inputs, secrets folder, recipient and the
preflight's sandbox addresses are the same for every provider.
"""

import secrets

import yaml

from scripts.demo import sandbox_probe_vars
from tests.integration.playbook import run_playbook_file

SENDER = "karto.help@ro.ru"
PLAYBOOK = "playbooks/setup-mail.yml"


class SetupMail:
    """Its own Supabase projects (one token), provider account, secrets folder and recipient."""

    provider = None
    # The From address; a provider that sends only from verified domains uses one the sandbox DNS verifies.
    sender = SENDER

    def __init__(self, sandbox, tmp_path, projects=1, verified=True):
        self.sandbox = sandbox
        self.api_key = self.new_account(verified)
        self.token = None
        self.refs = []
        for _index in range(projects):
            ref, self.token = sandbox.add_supabase_project(token=self.token)
            self.refs.append(ref)
        self.recipient = "karto.help+%s@ro.ru" % secrets.token_hex(4)
        self.secrets_dir = tmp_path / "secrets"
        self.inventory = tmp_path / "hosts.yml"
        hosts = {"project%d" % index: dict({"supabase_project_ref": ref}, **self.host_vars(ref))
                 for index, ref in enumerate(self.refs)}
        self.inventory.write_text(yaml.safe_dump({"supabase_projects": {"hosts": hosts}}))
        self.vars_file = tmp_path / "vars.yml"
        self.vars_file.write_text(yaml.safe_dump({
            "mail_provider": self.provider,
            "mail_sender_email": self.sender,
            "mail_sender_name": "KARTO",
            "mail_test_recipient": self.recipient,
            "mail_max_frequency": 1,
            "mail_secrets_dir": str(self.secrets_dir),
            "supabase_api_url": sandbox.url("supabase_api"),
            "supabase_auth_url": sandbox.url("supabase_auth"),
            "supabase_access_token": self.token,
            **self.provider_vars(),
            **sandbox_probe_vars(sandbox),
        }))
        self.first_seq = self.last_seq()

    # --- what a provider's subclass says ---------------------------------------------------
    def new_account(self, verified):
        """A fresh account in the provider's emulator (senders verified at once when `verified`);
        returns its admin API key."""
        raise NotImplementedError

    def host_vars(self, ref):
        return {}

    def provider_vars(self):
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------
    def set_vars(self, **values):
        merged = yaml.safe_load(self.vars_file.read_text())
        merged.update(values)
        self.vars_file.write_text(yaml.safe_dump(merged))

    def drop_vars(self, *names):
        merged = yaml.safe_load(self.vars_file.read_text())
        for name in names:
            merged.pop(name, None)
        self.vars_file.write_text(yaml.safe_dump(merged))

    def run(self, *args):
        return run_playbook_file(PLAYBOOK, ["-i", str(self.inventory), "-e", "@" + str(self.vars_file), *args])

    def last_seq(self):
        entries = self.sandbox.journal()
        return entries[-1]["seq"] if entries else 0

    def supabase_patches(self, since=0):
        return [e for e in self.sandbox.journal(service="supabase_api", method="PATCH")
                if e["seq"] > since and any(ref in e["path"] for ref in self.refs)]
