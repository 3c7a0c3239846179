"""The smtp2go role: the once-shown secret is stored before the SMTP user exists, and reused;
the role reads the common inputs (mail_*) itself and hands on the contract fact mail_relay."""

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
            "supabase_project_ref": "abcdefghijklmnopqrst",
            "mail_smtp_username": username,
            "mail_sender_email": "karto.help@ro.ru",
            "mail_sender_name": "KARTO",
            "mail_secrets_dir": secrets_dir,
            "mail_secrets_vault_password": vault_password,
        },
    }, {
        "name": "Expose the fact for the test (not the password)",
        "ansible.builtin.set_fact": {"settings_seen": "{{ mail_relay | dict2items | rejectattr('key', 'eq', 'password') | items2dict }}"},
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
    seen = first["seen"]["settings_seen"]
    assert (seen["provider"], seen["host"], seen["port"], seen["username"]) == (
        "smtp2go", "mail.smtp2go.com", 465, username)
    assert seen["dns"]["spf_includes"] == ["spf.smtp2go.com"] and seen["dns"]["dkim_selector"] == ""
    assert "click the verification link" in seen["advice"]["sender-unverified"]

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


def test_the_default_smtp_user_is_one_per_project(sandbox, tmp_path):
    api_key = sandbox.add_smtp2go_account()
    play = role_play(sandbox, api_key, "", str(tmp_path / "secrets"))
    run = run_tasks(play, extra_vars={"api_key": api_key})
    assert run.returncode == 0, run.stdout
    assert run["seen"]["settings_seen"]["username"] == "supabase-abcdefghijklmnopqrst"
    assert [u["username"] for u in sandbox.smtp2go_account(api_key)["users"]] == ["supabase-abcdefghijklmnopqrst"]


def test_a_sender_domain_puts_its_dkim_selector_and_return_path_into_the_contract(sandbox, tmp_path):
    api_key = sandbox.add_smtp2go_account()
    play = role_play(sandbox, api_key, "karto-" + secrets.token_hex(4), str(tmp_path / "secrets"))
    play[0]["vars"].update(smtp2go_sender_domain="karto.test", mail_sender_email="noreply@karto.test")
    run = run_tasks(play, extra_vars={"api_key": api_key})
    assert run.returncode == 0, run.stdout
    dns = run["seen"]["settings_seen"]["dns"]
    assert dns["dkim_domain"] == "karto.test"
    assert dns["dkim_selector"].startswith("s") and dns["return_path_host"].endswith(".karto.test")
    if not run["seen"]["settings_seen"]["sender_verified"]:
        assert "publish these DNS records" in run["seen"]["settings_seen"]["advice"]["sender-unverified"]


def test_a_port_the_provider_does_not_offer_fails_before_any_request(sandbox, tmp_path):
    api_key = sandbox.add_smtp2go_account()
    play = role_play(sandbox, api_key, "karto-" + secrets.token_hex(4), str(tmp_path / "secrets"))
    play[0]["vars"]["smtp2go_smtp_port"] = 25
    run = run_tasks(play, extra_vars={"api_key": api_key})
    assert run.returncode != 0
    assert "smtp2go_smtp_port must be one of 465, 587, 2525, 8025" in run.stdout
    assert sandbox.smtp2go_account(api_key)["users"] == []
