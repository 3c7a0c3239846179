"""Twenty projects configured by one run: playbooks/inventory/many-projects against the sandbox.

    .venv/bin/python -m benchmarks.many_projects

Starts a sandbox, creates the inventory's projects in it (the demo token reaches them all), runs
setup-mail.yml with forks 10, then again, and prints each run's wall time, recap and the
requests it made (writes of the second run: none). tests/integration/test_many_projects.py does
the same through `ManyProjects` and asserts it.
"""

import collections
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.run import is_read
from scripts.demo import sandbox_probe_vars
from tests.collection_path import REPO_ROOT
from tests.integration.playbook import run_playbook_file
from tests.sandbox.fixture import running_sandbox
from tests.sandbox.seed import DEMO_ACCESS_TOKEN

INVENTORY = Path(REPO_ROOT) / "playbooks" / "inventory" / "many-projects"
FORKS = 10


class ManyProjects:
    """The inventory's projects in `sandbox`, with their own SMTP2GO account and secrets folder."""

    def __init__(self, sandbox, workdir):
        self.sandbox = sandbox
        hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["supabase_projects"]["hosts"]
        self.hosts = hosts
        existing = set()
        for host in hosts.values():
            ref = host["supabase_project_ref"]
            if ref not in existing:
                sandbox.add_supabase_project(ref=ref, token=DEMO_ACCESS_TOKEN)
                existing.add(ref)
        # An account of its own, so its journal entries are this run's alone.
        self.api_key = sandbox.add_smtp2go_account()
        sandbox.set_smtp2go_auto_verify(0, api_key=self.api_key)
        self.vars_file = Path(workdir) / "many-projects-vars.yml"
        self.vars_file.write_text(yaml.safe_dump({
            "mail_secrets_dir": str(Path(workdir) / "secrets"),
            "supabase_api_url": sandbox.url("supabase_api"), "supabase_auth_url": sandbox.url("supabase_auth"),
            "supabase_access_token": DEMO_ACCESS_TOKEN,
            "smtp2go_api_url": sandbox.url("smtp2go_api"), "smtp2go_api_key": self.api_key,
            **sandbox_probe_vars(sandbox),
        }))

    def run(self, *args):
        """One run; returns (process, wall seconds, journal entries of the run, mails delivered)."""
        entries = self.sandbox.journal()
        since = entries[-1]["seq"] if entries else 0
        mails = len(self.sandbox.inbox())
        started = time.monotonic()
        proc, _log = run_playbook_file("playbooks/setup-mail.yml", [
            "-i", str(INVENTORY), "-e", "@" + str(self.vars_file), "--forks", str(FORKS), *args], timeout=900)
        wall = time.monotonic() - started
        journal = [e for e in self.sandbox.journal() if e["seq"] > since]
        return proc, wall, journal, len(self.sandbox.inbox()) - mails

    def writes(self, journal):
        refs = {host["supabase_project_ref"] for host in self.hosts.values()}
        return [e for e in journal if not is_read(e) and e["service"] not in ("smtp_relay", "supabase_auth")
                and (e["service"] != "supabase_api" or any(ref in e["path"] for ref in refs))]


def recap(stdout):
    return [line for line in stdout.splitlines() if line.startswith("project")]


def main():
    with tempfile.TemporaryDirectory(prefix="karto-many-") as tmp:
        (Path(tmp) / "sandbox").mkdir()
        with running_sandbox(Path(tmp) / "sandbox") as sandbox:
            many = ManyProjects(sandbox, tmp)
            for label in ("first run", "second run"):
                proc, wall, journal, mails = many.run()
                if proc.returncode != 0:
                    sys.exit("%s failed:\n%s" % (label, proc.stdout[-4000:]))
                calls = collections.Counter("%s %s" % (e["service"], e["method"]) for e in journal)
                print("%s: %d projects, forks %d, %.1f s, %d writes, %d mails; requests: %s"
                      % (label, len(many.hosts), FORKS, wall, len(many.writes(journal)), mails,
                         ", ".join("%s %d" % item for item in sorted(calls.items()))))
                print("\n".join(recap(proc.stdout)))


if __name__ == "__main__":
    main()
