"""supabase_email_test: a real Auth mail through the emulated GoTrue, failures read from the Auth logs."""

import secrets

import pytest
import requests

from tests.integration.playbook import run_tasks

PASSWORD = "Relay-pass-2f6b1a9c0d"


@pytest.fixture
def wired(sandbox):
    """A project whose SMTP points at the relay with a real SMTP2GO user and verified sender."""
    api_key = sandbox.add_smtp2go_account()
    sandbox.set_smtp2go_auto_verify(0, api_key=api_key)
    ref, token = sandbox.add_supabase_project()
    username = "probe-" + secrets.token_hex(4)
    run = run_tasks([
        {"name": "user", "karto.supabase_mail.smtp2go_user": {
            "api_url": sandbox.url("smtp2go_api"), "api_key": api_key, "username": username,
            "password": "{{ password }}"}},
        {"name": "sender", "karto.supabase_mail.smtp2go_sender": {
            "api_url": sandbox.url("smtp2go_api"), "api_key": api_key, "email_address": "karto.help@ro.ru",
            "wait_for_verification": True, "verification_timeout": 10, "poll_interval": 1}},
    ], extra_vars={"password": PASSWORD})
    assert run.returncode == 0, run.stdout
    return {"ref": ref, "token": token, "username": username, "api_key": api_key}


def configure(sandbox, wired, port=465, password=PASSWORD, max_frequency=1):
    run = run_tasks([{"name": "smtp", "karto.supabase_mail.supabase_smtp": {
        "api_url": sandbox.url("supabase_api"), "access_token": "{{ token }}", "project_ref": wired["ref"],
        "host": "mail.smtp2go.com", "port": port, "username": wired["username"], "password": "{{ password }}",
        "sender_email": "karto.help@ro.ru", "sender_name": "KARTO", "max_frequency": max_frequency}}],
        extra_vars={"token": wired["token"], "password": password})
    assert run.returncode == 0, run.stdout


def email_test(sandbox, wired, recipient, check=False, **options):
    args = {"api_url": sandbox.url("supabase_api"), "auth_url": sandbox.url("supabase_auth"),
            "access_token": "{{ token }}", "project_ref": wired["ref"], "email": recipient,
            "fail_on_error": False, "log_timeout": 10}
    args.update(options)
    return run_tasks([{"name": "test mail", "karto.supabase_mail.supabase_email_test": args, "register": "mail"}],
                     extra_vars={"token": wired["token"]}, check=check)


def recipient():
    return "tester+%s@karto.test" % secrets.token_hex(4)


def test_sent_mail_arrives_and_reports_sent(sandbox, wired):
    configure(sandbox, wired)
    to = recipient()
    run = email_test(sandbox, wired, to)
    assert run.returncode == 0, run.stdout
    assert run["mail"]["delivery"]["status"] == "sent" and run["mail"]["changed"] is False
    assert len(sandbox.inbox(to=to)) == 1


@pytest.mark.parametrize("setting, knobs, expected_class, expected_text", [
    ({"password": "Not-the-relay-password-1"}, None, "auth-rejected", "535"),
    ({"port": 2525}, {"plain_port_mode": "no_tls"}, "starttls-unavailable", "unencrypted connection"),
])
def test_failure_is_read_from_the_auth_logs_and_classified(
        sandbox, wired, setting, knobs, expected_class, expected_text):
    configure(sandbox, wired, **setting)
    if knobs:
        sandbox.set_smtp_relay_knobs(**knobs)
    try:
        run = email_test(sandbox, wired, recipient())
    finally:
        if knobs:
            sandbox.set_smtp_relay_knobs(plain_port_mode="starttls_required")
    delivery = run["mail"]["delivery"]
    assert delivery["status"] == "failed"
    assert delivery["error_class"] == expected_class
    assert expected_text in delivery["error"]
    # Found by the error_id of Auth's 500 (GoTrue sends no X-Request-Id), not by guessing.
    assert delivery["request_id"]
    assert delivery["log_line"]["request_id"] == delivery["request_id"]
    assert PASSWORD not in run.all_output and wired["token"] not in run.all_output


def test_fail_on_error_fails_with_one_readable_sentence(sandbox, wired):
    configure(sandbox, wired, password="Not-the-relay-password-2")
    run = email_test(sandbox, wired, recipient(), fail_on_error=True)
    assert run.returncode != 0
    assert "Supabase Auth could not send" in run.stdout and "[auth-rejected]" in run.stdout


def test_max_frequency_is_waited_for_not_reported_as_failure(sandbox, wired):
    configure(sandbox, wired, max_frequency=2)
    to = recipient()
    first = email_test(sandbox, wired, to)
    second = email_test(sandbox, wired, to)
    assert first["mail"]["delivery"]["status"] == "sent"
    assert second["mail"]["delivery"]["status"] == "sent"
    otp_calls = [e for e in sandbox.journal(service="supabase_auth") if e["path"].endswith("/otp")
                 and to in str(e.get("json"))]
    assert [e["status"] for e in otp_calls][-2:] in ([429, 200], [200, 200])


def test_invite_uses_the_service_key_from_the_management_api(sandbox, wired):
    # The secret key goes as `apikey`, never as a different Bearer: Supabase's gateway refuses that.
    configure(sandbox, wired)
    to = recipient()
    run = email_test(sandbox, wired, to, action="invite")
    assert run["mail"]["delivery"]["status"] == "sent", run.stdout
    assert len(sandbox.inbox(to=to)) == 1


@pytest.mark.parametrize("kind", ["secret", "service_role"])
def test_invite_with_a_given_secret_or_legacy_service_role_key(sandbox, wired, kind):
    configure(sandbox, wired)
    key = sandbox.project_api_keys(wired["ref"])[kind]
    to = recipient()
    run = run_tasks([{"name": "invite", "register": "mail", "karto.supabase_mail.supabase_email_test": {
        "api_url": sandbox.url("supabase_api"), "auth_url": sandbox.url("supabase_auth"),
        "access_token": "{{ token }}", "project_ref": wired["ref"], "email": to, "action": "invite",
        "service_role_key": "{{ key }}", "fail_on_error": False, "log_timeout": 10}}],
        extra_vars={"token": wired["token"], "key": key})
    assert run["mail"]["delivery"]["status"] == "sent", run.stdout
    assert len(sandbox.inbox(to=to)) == 1
    assert key not in run.all_output and key[:14] not in run.all_output


def patch_auth_config(sandbox, wired, **settings):
    response = requests.patch("%s/v1/projects/%s/config/auth" % (sandbox.url("supabase_api"), wired["ref"]),
                              json=settings, headers={"Authorization": "Bearer %s" % wired["token"]}, timeout=15)
    assert response.status_code == 200, response.text


STRICT_PASSWORD_POLICY = {
    "password_min_length": 40,
    # The strictest set the Management API offers (spec UpdateAuthConfigBody enum), symbols included.
    "password_required_characters":
        "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789:!@#$%^&*()_+-=[]{};'\\\\:\"|<>?,./`~",
}


def test_signup_password_meets_a_strict_password_policy(sandbox, wired):
    configure(sandbox, wired)
    patch_auth_config(sandbox, wired, **STRICT_PASSWORD_POLICY)
    to = recipient()
    run = email_test(sandbox, wired, to, action="signup")
    assert run["mail"]["delivery"]["http_status"] == 200, run.stdout  # not 422 weak_password
    assert len(sandbox.inbox(to=to)) == 1


def test_signup_of_a_new_address_is_sent(sandbox, wired):
    configure(sandbox, wired)
    to = recipient()
    run = email_test(sandbox, wired, to, action="signup")
    assert run["mail"]["delivery"]["status"] == "sent", run.stdout
    assert len(sandbox.inbox(to=to)) == 1


def test_signup_of_a_confirmed_user_is_not_sent_and_says_what_to_do(sandbox, wired):
    configure(sandbox, wired)
    to = recipient()
    sandbox.add_auth_user(wired["ref"], to, confirmed=True)
    run = email_test(sandbox, wired, to, action="signup")
    delivery = run["mail"]["delivery"]
    assert delivery["status"] == "not_sent", run.stdout
    assert "otp" in delivery["hint"] and "recover" in delivery["hint"]
    assert sandbox.inbox(to=to) == []
    failing = email_test(sandbox, wired, to, action="signup", fail_on_error=True)
    assert failing.returncode != 0 and "sent no confirmation mail" in failing.stdout


def test_signup_with_email_confirmation_off_is_not_sent(sandbox, wired):
    configure(sandbox, wired)
    patch_auth_config(sandbox, wired, mailer_autoconfirm=True)
    to = recipient()
    run = email_test(sandbox, wired, to, action="signup")
    delivery = run["mail"]["delivery"]
    assert delivery["status"] == "not_sent", run.stdout
    assert "mailer_autoconfirm" in delivery["error"]
    assert sandbox.inbox(to=to) == []


def test_check_mode_sends_nothing(sandbox, wired):
    configure(sandbox, wired)
    to = recipient()
    run = email_test(sandbox, wired, to, check=True)
    assert run["mail"]["delivery"]["status"] == "skipped"
    assert sandbox.inbox(to=to) == []
