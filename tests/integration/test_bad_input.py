"""Issue 12: every setup-mail.yml variable is checked in the first tasks, before any request.

Each bad value fails the play with a message naming the variable, with no traceback, and the
sandbox's journal shows no request at all for this setup's projects and relay account (no SMTP
user created, no verification mail sent, Supabase untouched).
"""

import pytest
import yaml

from tests.integration.playbook import run_playbook_file
from tests.integration.test_setup_mail_playbook import Setup

CASES = [
    ({"mail_max_frequency": -1}, "mail_max_frequency"),
    ({"mail_max_frequency": "60s"}, "mail_max_frequency"),
    ({"mail_rate_limit_per_hour": 0}, "mail_rate_limit_per_hour"),
    ({"mail_rate_limit_per_hour": "abc"}, "mail_rate_limit_per_hour"),
    ({"mail_sender_name": "KARTO\nSupport"}, "mail_sender_name"),
    ({"mail_sender_name": True}, "mail_sender_name"),
    ({"supabase_api_url": "api.supabase.com"}, "supabase_api_url"),
    ({"supabase_auth_url": "ftp://auth.example.com"}, "supabase_auth_url"),
    ({"mail_sender_email": "karto.help@пример.рф"}, "mail_sender_email"),
    ({"mail_sender_email": "karto.help@ro.ru\n"}, "mail_sender_email"),
    ({"mail_test_recipient": "not an address"}, "mail_test_recipient"),
    ({"supabase_project_ref": "abcdefghijklmnopqrst\n"}, "supabase_project_ref"),
    ({"supabase_access_token": "TOKEN\n"}, "supabase_access_token"),
    ({"smtp2go_api_key": ""}, "smtp2go_api_key"),
    ({"smtp2go_api_url": "ftp://api.example.com"}, "smtp2go_api_url"),
    ({"mail_smtp_username": "karto supabase"}, "mail_smtp_username"),
    ({"mail_dns_port": 0}, "mail_dns_port"),
    ({"mail_preflight": "maybe"}, "mail_preflight"),
    ({"mail_templates": "de"}, "mail_templates"),
]


@pytest.mark.parametrize("override, name", CASES, ids=[name + "-" + str(i) for i, (_o, name) in enumerate(CASES)])
def test_bad_variable_fails_in_the_first_tasks_without_any_request(sandbox, tmp_path, override, name):
    setup = Setup(sandbox, tmp_path, projects=1)
    values = yaml.safe_load(setup.vars_file.read_text())
    for key, value in override.items():
        values[key] = value.replace("TOKEN", setup.token) if isinstance(value, str) else value
    setup.vars_file.write_text(yaml.safe_dump(values, allow_unicode=True))
    proc, log = setup.run()
    assert proc.returncode != 0
    assert name in proc.stdout, proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert setup.token not in proc.stdout + proc.stderr + log and setup.api_key not in proc.stdout + log
    # Not one request for this setup: no read, no write, no mail.
    assert not [e for e in sandbox.journal(service="smtp2go_api") if setup.refs[0][:8] in str(e.get("json"))]
    assert not [e for e in sandbox.journal(service="supabase_api") if setup.refs[0] in e["path"]]
    assert setup.smtp_users() == []


# rotate-mail-credentials.yml and teardown-mail.yml run the same checks first (playbooks/tasks/check-inputs.yml):
# the rotation's provider role and the teardown's reset write right after them.
OTHER_PLAYBOOKS = ["playbooks/rotate-mail-credentials.yml", "playbooks/teardown-mail.yml"]
OTHER_CASES = [
    ({"mail_max_frequency": -1}, "mail_max_frequency"),
    ({"smtp2go_api_key": "KEY\n"}, "smtp2go_api_key"),
    ({"mail_sender_email": "karto.help@ro.ru\n"}, "mail_sender_email"),
]


@pytest.mark.parametrize("playbook", OTHER_PLAYBOOKS, ids=["rotate", "teardown"])
@pytest.mark.parametrize("override, name", OTHER_CASES, ids=[name for _o, name in OTHER_CASES])
def test_rotation_and_teardown_check_every_variable_before_any_request(sandbox, tmp_path, playbook, override, name):
    setup = Setup(sandbox, tmp_path, projects=1)
    values = yaml.safe_load(setup.vars_file.read_text())
    values["mail_teardown_relay"] = True
    for key, value in override.items():
        values[key] = value.replace("KEY", setup.api_key) if isinstance(value, str) else value
    setup.vars_file.write_text(yaml.safe_dump(values, allow_unicode=True))
    marker = setup.last_seq()
    proc, log = run_playbook_file(playbook, ["-i", str(setup.inventory), "-e", "@" + str(setup.vars_file)])
    assert proc.returncode != 0
    assert "fix these inputs (nothing was changed yet)" in proc.stdout and name in proc.stdout, proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert setup.token not in proc.stdout + proc.stderr + log and setup.api_key not in proc.stdout + proc.stderr + log
    assert [e for e in sandbox.journal() if e["seq"] > marker] == []
