"""The smtp2go role: the once-shown secret is stored before the SMTP user exists, and reused."""

import os
import secrets
import stat

import pytest

from tests.integration.playbook import run_tasks

VAULT_PASSWORD = "vault-pass-for-tests-81f2"


def role_play(sandbox, api_key, username, secrets_dir, vault_password=""):
    return [{
        "name": "SMTP2GO pieces",
        "ansible.builtin.include_role": {"name": "karto.supabase_mail.smtp2go"},
        "vars": {
            "smtp2go_api_url": sandbox.url("smtp2go_api"),
            "smtp2go_api_key": "{{ api_key }}",
            "smtp2go_smtp_username": username,
            "smtp2go_sender_email": "karto.help@ro.ru",
            "smtp2go_sender_name": "KARTO",
            "smtp2go_secrets_dir": secrets_dir,
            "smtp2go_secrets_vault_password": vault_password,
        },
    }, {
        "name": "Expose the fact for the test (not the password)",
        "ansible.builtin.set_fact": {"settings_seen": "{{ smtp2go_smtp | dict2items | rejectattr('key', 'eq', 'password') | items2dict }}"},
    }, {
        "name": "Register it",
        "ansible.builtin.debug": {"var": "settings_seen"},
        "register": "seen",
    }]


@pytest.mark.parametrize("vault_password", ["", VAULT_PASSWORD])
def test_password_is_stored_before_creation_and_reused(sandbox, tmp_path, vault_password):
    api_key = sandbox.add_smtp2go_account()
    username = "karto-" + secrets.token_hex(4)
    secrets_dir = str(tmp_path / "secrets")
    first = run_tasks(role_play(sandbox, api_key, username, secrets_dir, vault_password),
                      extra_vars={"api_key": api_key}, verbosity=3)
    assert first.returncode == 0, first.stdout
    password_file = os.path.join(secrets_dir, "smtp2go-%s.password" % username)
    mode = stat.S_IMODE(os.stat(password_file).st_mode)
    assert mode == 0o600
    content = open(password_file).read()
    account = sandbox.smtp2go_account(api_key)
    user = next(u for u in account["users"] if u["username"] == username)
    if vault_password:
        assert content.startswith("$ANSIBLE_VAULT;1.2;AES256;karto")
        assert user["email_password"] not in content
    else:
        assert content.strip() == user["email_password"]
        assert "stored unencrypted" in first.stdout
    assert user["email_password"] not in first.all_output
    assert first["seen"]["settings_seen"]["username"] == username
    assert first["seen"]["settings_seen"]["port"] == 465

    second = run_tasks(role_play(sandbox, api_key, username, secrets_dir, vault_password),
                       extra_vars={"api_key": api_key})
    assert second.returncode == 0, second.stdout
    assert "changed=0" in second.stdout
    assert open(password_file).read() == content
    users = [u for u in sandbox.smtp2go_account(api_key)["users"] if u["username"] == username]
    assert len(users) == 1 and users[0]["email_password"] == user["email_password"]


def test_existing_user_without_stored_password_gets_the_new_one(sandbox, tmp_path):
    api_key = sandbox.add_smtp2go_account()
    username = "karto-" + secrets.token_hex(4)
    first_dir, lost_dir = str(tmp_path / "first"), str(tmp_path / "lost")
    assert run_tasks(role_play(sandbox, api_key, username, first_dir),
                     extra_vars={"api_key": api_key}).returncode == 0
    # The secrets folder is lost: a new password is generated and set on the existing user.
    again = run_tasks(role_play(sandbox, api_key, username, lost_dir), extra_vars={"api_key": api_key})
    assert again.returncode == 0, again.stdout
    stored = open(os.path.join(lost_dir, "smtp2go-%s.password" % username)).read().strip()
    users = [u for u in sandbox.smtp2go_account(api_key)["users"] if u["username"] == username]
    assert len(users) == 1 and users[0]["email_password"] == stored
