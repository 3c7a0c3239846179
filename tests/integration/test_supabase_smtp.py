"""supabase_smtp through real ansible-playbook runs against the Management API emulator."""

import time

import pytest

from tests.integration.playbook import run_tasks

PASSWORD = "Smtp-pass-0f3c9a1e77"
NEW_PASSWORD = "Rotated-pass-5b2d8c4410"


def smtp_task(sandbox, ref, token, register="smtp", ignore_errors=False, **overrides):
    args = {
        "project_ref": ref,
        "access_token": "{{ token }}",
        "api_url": sandbox.url("supabase_api"),
        "host": "mail.smtp2go.com",
        "port": 465,
        "username": "karto-supabase",
        "password": "{{ password }}",
        "sender_email": "karto.help@ro.ru",
        "sender_name": "KARTO",
        "max_frequency": 60,
        "email_rate_limit": 100,
    }
    for key, value in overrides.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    task = {"name": "Apply SMTP settings", "karto.supabase_mail.supabase_smtp": args, "register": register}
    if ignore_errors:
        task["ignore_errors"] = True
    return task


def apply(sandbox, ref, token, password=PASSWORD, **kwargs):
    run_kwargs = {key: kwargs.pop(key) for key in ("check", "diff", "verbosity", "env") if key in kwargs}
    return run_tasks([smtp_task(sandbox, ref, token, **kwargs)],
                     extra_vars={"token": token, "password": password}, **run_kwargs)


def requests_to(sandbox, ref, method=None):
    return sandbox.journal(service="supabase_api", path_contains=ref, method=method)


def assert_no_secret(run, *secrets):
    for secret in secrets:
        assert secret not in run.all_output


@pytest.fixture
def project(sandbox):
    return sandbox.add_supabase_project()


def test_first_run_enables_smtp_second_run_reads_once_and_writes_nothing(sandbox, project):
    ref, token = project
    first = apply(sandbox, ref, token)
    assert first.returncode == 0, first.stdout
    assert first["smtp"]["changed"] is True
    settings = first["smtp"]["smtp"]
    assert settings["enabled"] and settings["port"] == 465 and settings["password_matches"] is True
    patches = requests_to(sandbox, ref, "PATCH")
    assert len(patches) == 1
    assert patches[0]["json"]["smtp_port"] == "465"  # a string on the wire
    stored = sandbox.supabase_auth_config(ref)
    assert stored["smtp_pass"] == PASSWORD and stored["smtp_host"] == "mail.smtp2go.com"

    seen = len(requests_to(sandbox, ref))
    second = apply(sandbox, ref, token)
    assert second.returncode == 0, second.stdout
    assert second["smtp"]["changed"] is False
    assert second["smtp"]["changed_fields"] == []
    new_requests = requests_to(sandbox, ref)[seen:]
    assert [(r["method"]) for r in new_requests] == ["GET"]


def test_check_mode_reports_the_change_and_writes_nothing(sandbox, project):
    ref, token = project
    run = apply(sandbox, ref, token, check=True, diff=True)
    assert run.returncode == 0, run.stdout
    assert run["smtp"]["changed"] is True
    assert run["smtp"]["smtp"]["host"] == "mail.smtp2go.com"
    assert requests_to(sandbox, ref, "PATCH") == []
    assert sandbox.supabase_auth_config(ref)["smtp_host"] is None


def test_changing_only_the_password_patches_only_smtp_pass(sandbox, project):
    ref, token = project
    assert apply(sandbox, ref, token).returncode == 0
    run = apply(sandbox, ref, token, password=NEW_PASSWORD, diff=True)
    assert run.returncode == 0, run.stdout
    assert run["smtp"]["changed_fields"] == ["smtp_pass"]
    patches = requests_to(sandbox, ref, "PATCH")
    assert len(patches) == 2 and patches[1]["json"] == {"smtp_pass": NEW_PASSWORD}
    assert sandbox.supabase_auth_config(ref)["smtp_pass"] == NEW_PASSWORD
    assert "<hidden, changed>" in run.stdout
    assert_no_secret(run, PASSWORD, NEW_PASSWORD, token)


def test_omitted_options_are_left_alone(sandbox, project):
    ref, token = project
    assert apply(sandbox, ref, token).returncode == 0
    run = apply(sandbox, ref, token, password=None, sender_name=None, max_frequency=None,
                email_rate_limit=None, port=587)
    assert run.returncode == 0, run.stdout
    assert requests_to(sandbox, ref, "PATCH")[-1]["json"] == {"smtp_port": "587"}
    stored = sandbox.supabase_auth_config(ref)
    assert stored["smtp_pass"] == PASSWORD and stored["smtp_sender_name"] == "KARTO"


def test_no_secret_in_verbose_diff_log_or_failure_output(sandbox, project):
    ref, token = project
    verbose = apply(sandbox, ref, token, verbosity=4, diff=True)
    assert verbose.returncode == 0, verbose.stdout
    assert verbose.log, "ANSIBLE_LOG_PATH was not written"
    rotated = apply(sandbox, ref, token, password=NEW_PASSWORD, verbosity=4, diff=True)
    # A provider that echoes the secret in its error text must not leak it either.
    sandbox.inject_fault(service="supabase_api", method="PATCH", path_contains=ref, action="status",
                         status=400, body={"message": "smtp_pass: '%s' is not accepted" % PASSWORD})
    failed = apply(sandbox, ref, token, verbosity=4, diff=True)
    assert failed.returncode != 0
    assert "HTTP 400" in failed.stdout
    for run in (verbose, rotated, failed):
        assert_no_secret(run, PASSWORD, NEW_PASSWORD, token)


def test_429_twice_then_success(sandbox, project):
    ref, token = project
    sandbox.inject_fault(service="supabase_api", method="GET", path_contains=ref, action="status",
                         status=429, times=2, headers={"X-RateLimit-Limit": "120",
                                                       "X-RateLimit-Remaining": "0",
                                                       "X-RateLimit-Reset": "1"},
                         body={"message": "Too many requests"})
    run = apply(sandbox, ref, token)
    assert run.returncode == 0, run.stdout
    assert [r["status"] for r in requests_to(sandbox, ref, "GET")] == [429, 429, 200]


def test_5xx_forever_fails_inside_the_time_budget(sandbox, project):
    ref, token = project
    sandbox.inject_fault(service="supabase_api", method="GET", path_contains=ref, action="status",
                         status=503, times=-1, body={"message": "upstream auth service unavailable"})
    started = time.monotonic()
    run = apply(sandbox, ref, token, timeout=3, ignore_errors=True)
    elapsed = time.monotonic() - started
    sandbox.clear_faults()
    result = run["smtp"]
    assert result["failed"] is True
    assert "HTTP 503" in result["msg"] and "upstream auth service unavailable" in result["msg"]
    assert result["status"] == 503
    assert len(requests_to(sandbox, ref, "GET")) >= 2
    # Budget is 2 x timeout = 6 s; allow for ansible-playbook's own start-up.
    assert elapsed < 6 + 15


def test_absent_turns_smtp_off_idempotently(sandbox, project):
    ref, token = project
    assert apply(sandbox, ref, token).returncode == 0
    off_task = [{"name": "Off", "register": "off", "karto.supabase_mail.supabase_smtp": {
        "project_ref": ref, "access_token": "{{ token }}", "api_url": sandbox.url("supabase_api"),
        "state": "absent"}}]
    predicted = run_tasks(off_task, check=True, extra_vars={"token": token})
    off = run_tasks(off_task, extra_vars={"token": token})
    assert off.returncode == 0 and off["off"]["changed"] is True
    # Check mode predicts exactly what the API then does, the built-in mailer's rate limit included.
    assert predicted["off"]["smtp"] == off["off"]["smtp"]
    assert sandbox.supabase_auth_config(ref)["rate_limit_email_sent"] == off["off"]["smtp"]["email_rate_limit"]
    assert requests_to(sandbox, ref, "PATCH")[-1]["json"] == {"smtp_host": ""}
    assert sandbox.supabase_auth_config(ref)["smtp_host"] is None
    assert off["off"]["smtp"]["enabled"] is False
    writes = len(requests_to(sandbox, ref, "PATCH"))
    again = run_tasks([{"name": "Off again", "register": "off", "karto.supabase_mail.supabase_smtp": {
        "project_ref": ref, "access_token": "{{ token }}", "api_url": sandbox.url("supabase_api"),
        "state": "absent"}}], extra_vars={"token": token})
    assert again["off"]["changed"] is False
    assert len(requests_to(sandbox, ref, "PATCH")) == writes


@pytest.mark.parametrize("overrides, parameter", [
    ({"project_ref": "Not-A-Ref"}, "project_ref must be"),
    ({"port": 70000}, "port must be between 1 and 65535"),
    ({"host": "https://mail.smtp2go.com"}, "host must be a bare host name"),
    ({"host": "mail.smtp2go.com "}, "host must not contain whitespace"),
    ({"username": "karto-supabase "}, "username has trailing whitespace"),
    ({"password": PASSWORD + " "}, "password has trailing whitespace"),
    ({"sender_email": "karto.help"}, "sender_email must be a plain email address"),
    ({"max_frequency": 40000}, "max_frequency must be between 0 and 32767"),
    ({"email_rate_limit": 0}, "email_rate_limit must be between 1 and 2147483647"),
    ({"host": None}, "missing: host"),
])
def test_bad_input_fails_naming_the_parameter_before_any_request(sandbox, project, overrides, parameter):
    ref, token = project
    run = apply(sandbox, ref, token, ignore_errors=True, **overrides)
    result = run["smtp"]
    assert result["failed"] is True
    assert parameter in result["msg"]
    assert requests_to(sandbox, ref) == []
    assert_no_secret(run, PASSWORD, token)


def test_bad_token_and_unknown_project_say_what_to_fix(sandbox, project):
    ref, token = project
    wrong_token = "sbp_" + "0" * 40
    run = apply(sandbox, ref, wrong_token, ignore_errors=True)
    assert run["smtp"]["status"] == 401 and "access_token" in run["smtp"]["msg"]
    other_ref = "zzzzzzzzzzzzzzzzzzzz"
    run = apply(sandbox, other_ref, token, ignore_errors=True)
    assert run["smtp"]["status"] == 404 and "project_ref=%s" % other_ref in run["smtp"]["msg"]
    assert_no_secret(run, PASSWORD, token, wrong_token)


def test_password_required_to_turn_smtp_on(sandbox, project):
    ref, token = project
    run = apply(sandbox, ref, token, password=None, ignore_errors=True)
    assert run["smtp"]["failed"] is True
    assert "password is required" in run["smtp"]["msg"]
    assert requests_to(sandbox, ref, "PATCH") == []


def test_module_defaults_group_sets_credentials_once(sandbox, project):
    ref, token = project
    task = smtp_task(sandbox, ref, token)
    del task["karto.supabase_mail.supabase_smtp"]["access_token"]
    del task["karto.supabase_mail.supabase_smtp"]["api_url"]
    run = run_tasks([task], extra_vars={"token": token, "password": PASSWORD},
                    module_defaults={"group/karto.supabase_mail.supabase": {
                        "access_token": "{{ token }}", "api_url": sandbox.url("supabase_api")}})
    assert run.returncode == 0, run.stdout
    assert run["smtp"]["changed"] is True


def test_environment_fallbacks_for_token_and_url(sandbox, project):
    ref, token = project
    task = smtp_task(sandbox, ref, token)
    del task["karto.supabase_mail.supabase_smtp"]["access_token"]
    del task["karto.supabase_mail.supabase_smtp"]["api_url"]
    run = run_tasks([task], extra_vars={"password": PASSWORD},
                    env={"SUPABASE_ACCESS_TOKEN": token, "SUPABASE_API_URL": sandbox.url("supabase_api")})
    assert run.returncode == 0, run.stdout
    assert run["smtp"]["changed"] is True


def test_masked_stored_password_follows_update_password(sandbox, project):
    ref, token = project
    assert apply(sandbox, ref, token).returncode == 0
    sandbox.control("POST", "/supabase/projects/%s/smtp-pass-display" % ref, {"display": "masked"})
    writes = len(requests_to(sandbox, ref, "PATCH"))
    on_change = apply(sandbox, ref, token, password=NEW_PASSWORD)
    assert on_change.returncode == 0, on_change.stdout
    assert on_change["smtp"]["changed"] is False
    assert "update_password=always" in on_change.all_output  # the warning says how to force it
    assert len(requests_to(sandbox, ref, "PATCH")) == writes
    always = apply(sandbox, ref, token, password=NEW_PASSWORD, update_password="always")
    assert always["smtp"]["changed_fields"] == ["smtp_pass"]
    assert sandbox.supabase_auth_config(ref)["smtp_pass"] == NEW_PASSWORD
    assert_no_secret(on_change, NEW_PASSWORD, token)


def test_500_echoing_a_json_escaped_password_does_not_leak_it(sandbox, project):
    """Issue 12: the redactor matched only the raw form; a body that echoes the request shows a
    password with quotes or backslashes JSON-escaped."""
    import json

    ref, token = project
    password = 'Smtp"pass\\0f3c/9a1e77'
    escaped = json.dumps(password)[1:-1]
    sandbox.inject_fault(service="supabase_api", method="PATCH", path_contains=ref, action="status",
                         status=500, body={"message": 'upstream failed for {"smtp_pass": "%s"}' % escaped})
    failed = apply(sandbox, ref, token, password=password, verbosity=4, diff=True)
    assert failed.returncode != 0 and "HTTP 500" in failed.stdout
    output = failed.all_output
    for form in (password, escaped, json.dumps(escaped)[1:-1], password[:12], escaped[:12]):
        assert form not in output


def test_access_token_with_a_newline_fails_on_input_without_showing_it(sandbox, project):
    ref, token = project
    run = run_tasks([smtp_task(sandbox, ref, token, access_token="{{ token }}\n", ignore_errors=True)],
                    extra_vars={"token": token, "password": PASSWORD})
    assert run["smtp"]["failed"] is True and run["smtp"]["msg"].startswith("access_token")
    assert token[:12] not in run.all_output
    assert requests_to(sandbox, ref) == []
