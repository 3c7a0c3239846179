"""playbooks/inventory/many-projects: twenty projects, each with its own sender, hourly limit and
template set, configured by one run with forks 10; the second run changes and writes nothing."""

import re

import pytest

from benchmarks.many_projects import ManyProjects, recap

# Long: `make test` runs it first, `make integration-heavy` alone (tests/conftest.py).
pytestmark = pytest.mark.heavy


# CI time: the DMARC preflight, relay probe and proof mail are proven by the setup-mail tests and
# measured at 50 projects by `make bench`; here the twenty projects' settings and the no-op are what count.
CHEAP = ("-e", '{"mail_preflight": false, "mail_verify": "never"}')


def test_twenty_projects_in_one_run_then_a_rerun_changes_and_writes_nothing(sandbox, tmp_path):
    many = ManyProjects(sandbox, tmp_path)
    assert len(many.hosts) == 20

    proc, _wall, journal, _mails = many.run(*CHEAP)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert len(recap(proc.stdout)) == 20
    for host in many.hosts.values():
        config = sandbox.supabase_auth_config(host["supabase_project_ref"])
        assert config["smtp_user"] == host["mail_smtp_username"]
        assert config["smtp_admin_email"] == host["mail_sender_email"]
        assert config["rate_limit_email_sent"] == host["mail_rate_limit_per_hour"]
    # Each project's own SMTP user; the two senders added once each, not once per project.
    account = sandbox.smtp2go_account(many.api_key)
    assert sorted(user["username"] for user in account["users"]) == sorted(h["mail_smtp_username"] for h in many.hosts.values())
    sender_adds = [e for e in journal if e["path"].endswith("/single_sender_emails/add")]
    assert len(sender_adds) == 2

    proc, _wall, journal, mails = many.run(*CHEAP)
    assert proc.returncode == 0, proc.stdout[-4000:]
    lines = recap(proc.stdout)
    assert len(lines) == 20 and all(re.search(r"\bchanged=0\b", line) and re.search(r"\bfailed=0\b", line)
                                    for line in lines), "\n".join(lines)
    assert many.writes(journal) == [] and mails == 0
