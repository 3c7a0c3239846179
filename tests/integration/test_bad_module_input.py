"""Issue 12, item 3: malformed values for the options of every module, in one ansible-playbook run.

Every case must fail on input, before the first request: a message that names the parameter, no
traceback, no secret in any output, and the sandbox journal (every emulator: HTTP APIs, DNS, SMTP)
stays empty for the whole run. Each module is pointed at the sandbox with valid credentials, so an
input check that lets a value through shows up as a journaled request.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.playbook import run_tasks

DROP = object()  # an override that removes the option
# A body with its link, as Go template text Ansible must not read as Jinja.
GO_LINK = '{% raw %}<a href="{{ .ConfirmationURL }}">Подтвердить</a>{% endraw %}'
NS = "karto.supabase_mail."


def secret(tag):
    """A distinct secret-shaped value per case, long enough that a leak of any part of it is found."""
    return "Sekret%sXq7Lm2Zp" % tag


def connection_cases(url_option, url, key_option, key_var, turn):
    """api_url / key / timeout, wired per module: one bad value of each, a different one per module (`turn`)."""
    bare = url.split("://", 1)[1]
    urls = [bare, "ftp://" + bare, "", url + "/v3 x"]
    keys = ["{{ %s }}\n" % key_var, secret("In%d" % turn) + " " + secret("Side%d" % turn), ""]
    timeouts = [0, -5, "soon"]
    return [
        ({url_option: urls[turn % len(urls)]}, url_option),
        ({key_option: keys[turn % len(keys)]}, key_option),
        ({"timeout": timeouts[turn % len(timeouts)]}, "timeout"),
    ]


def module_table(sandbox, accounts):
    """(module, valid base options, [(override, parameter named in the error)])."""
    ref, token = accounts["supabase"]
    mailgun_key, mailgun_domain = accounts["mailgun"]
    supabase_url = sandbox.url("supabase_api")
    routes = {"465": "127.0.0.1:%d" % sandbox.smtp_relay_port("implicit_tls"),
              "587": "127.0.0.1:%d" % sandbox.smtp_relay_port("starttls")}
    return [
        ("supabase_smtp",
         {"project_ref": ref, "access_token": "{{ supabase_token }}", "api_url": supabase_url,
          "host": "mail.smtp2go.com", "port": 587, "username": "karto-supabase", "password": secret("Smtp"),
          "sender_email": "karto.help@ro.ru", "sender_name": "KARTO"},
         connection_cases("api_url", supabase_url, "access_token", "supabase_token", 0) + [
             ({"project_ref": ref + "\n"}, "project_ref"),
             ({"project_ref": ref[:-1]}, "project_ref"),
             ({"sender_email": "KARTO <karto.help@ro.ru>"}, "sender_email"),
             ({"sender_email": "karto.help@ro.ru\n"}, "sender_email"),
             ({"sender_email": "karto.help@пример.рф"}, "sender_email"),
             ({"port": 0}, "port"),
             ({"port": "smtp"}, "port"),
             ({"host": "smtp://mail.smtp2go.com"}, "host"),
             ({"username": "karto\nsupabase"}, "username"),
             ({"password": secret("Nl") + "\n" + secret("Nl2")}, "password"),
             ({"password": ""}, "password"),
             ({"sender_name": "KARTO\nBcc: x@ro.ru"}, "sender_name"),
             ({"update_password": "sometimes"}, "update_password"),
         ]),
        ("supabase_email_test",
         {"project_ref": ref, "access_token": "{{ supabase_token }}", "api_url": supabase_url,
          "auth_url": sandbox.url("supabase_auth"), "email": "karto.help@ro.ru", "log_timeout": 5},
         connection_cases("api_url", supabase_url, "access_token", "supabase_token", 1) + [
             ({"project_ref": ref + "\n"}, "project_ref"),
             ({"email": "KARTO <karto.help@ro.ru>"}, "email"),
             ({"email": DROP}, "email"),
             ({"action": "magic"}, "action"),
             ({"auth_url": "auth.example.com"}, "auth_url"),
             ({"anon_key": secret("Anon") + " x"}, "anon_key"),
             ({"service_role_key": secret("Service") + "\n"}, "service_role_key"),
         ]),
        ("supabase_email_templates",
         {"project_ref": ref, "access_token": "{{ supabase_token }}", "api_url": supabase_url,
          "templates": {"confirmation": {"subject": "Подтвердите регистрацию", "content": GO_LINK}}},
         connection_cases("api_url", supabase_url, "access_token", "supabase_token", 2) + [
             ({"project_ref": ref + "\n"}, "project_ref"),
             ({"templates": {"confirmation": {"content": "<p>Добро пожаловать!</p>"}}}, "templates.confirmation.content"),
             ({"templates": {"invite": {"subject": "{% raw %}Привет, {{ .Name }}{% endraw %}"}}}, "templates.invite.subject"),
             ({"templates": {"recovery": {"subject": "Сброс\nBcc: x@ro.ru"}}}, "templates.recovery.subject"),
             ({"templates": {"reauthentication": {"content": GO_LINK}}}, "templates.reauthentication.content"),
             ({"templates": {"welcome": {"subject": "Привет"}}}, "welcome"),
             ({"templates": {"password_changed": {"enabled": "maybe"}}}, "enabled"),
             ({"templates": {}}, "templates"),
         ]),
        ("smtp_check",
         {"host": "mail.smtp2go.com", "ports": [465, 587], "connect_to": routes, "ca_path": sandbox.ca_cert,
          "username": "karto-check", "password": secret("Check"), "timeout": 5},
         [
             ({"ports": [0]}, "ports"),
             ({"ports": ["smtp"]}, "ports"),
             ({"host": "smtp://mail.smtp2go.com"}, "host"),
             ({"host": "mail.smtp2go.com\n"}, "host"),
             ({"timeout": 0}, "timeout"),
             ({"sender": "KARTO <karto.help@ro.ru>"}, "sender"),
             ({"recipient": "someone@ro.ru"}, "sender"),
             ({"send": True, "sender": "karto.help@ro.ru"}, "recipient"),
             ({"password": DROP}, "password"),
             ({"password": ""}, "password"),
             ({"username": "karto-check\n"}, "username"),
             ({"ca_path": "/nonexistent/karto-ca.pem"}, "ca_path"),
             ({"connect_to": {"465": "nohost"}}, "connect_to"),
         ]),
        ("sender_domain_check",
         {"email": "karto.help@ro.ru", "nameservers": ["127.0.0.1"], "dns_port": sandbox.dns_port, "timeout": 2},
         [
             ({"email": "KARTO <karto.help@ro.ru>"}, "email"),
             ({"domain": "ro.ru"}, "email"),
             ({"email": DROP}, "email"),
             ({"email": DROP, "domain": "ex ample.ru"}, "domain"),
             ({"email": DROP, "domain": "ro.ru\n"}, "domain"),
             ({"dkim_selector": "s 1"}, "dkim_selector"),
             ({"return_path_host": "http://bounce.ro.ru"}, "return_path_host"),
             ({"nameservers": ["dns.example"]}, "nameservers"),
             ({"dns_port": 0}, "dns_port"),
             ({"timeout": 0}, "timeout"),
             ({"timeout": -1}, "timeout"),
         ]),
        ("smtp2go_user",
         {"api_url": sandbox.url("smtp2go_api"), "api_key": "{{ smtp2go_key }}", "username": "karto-bad-input",
          "password": secret("User")},
         connection_cases("api_url", sandbox.url("smtp2go_api"), "api_key", "smtp2go_key", 2) + [
             ({"username": "karto-bad-input\n"}, "username"),
             ({"username": "ab"}, "username"),
             ({"username": DROP}, "username"),
             ({"password": secret("U1") + "\n" + secret("U2")}, "password"),
             ({"password": ""}, "password"),
             ({"description": "line\nbreak"}, "description"),
             ({"status": "open"}, "status"),
             ({"rate_limit_period": "soon"}, "rate_limit_period"),
         ]),
        ("smtp2go_sender",
         {"api_url": sandbox.url("smtp2go_api"), "api_key": "{{ smtp2go_key }}", "email_address": "karto.help@ro.ru"},
         connection_cases("api_url", sandbox.url("smtp2go_api"), "api_key", "smtp2go_key", 3) + [
             ({"email_address": "KARTO <karto.help@ro.ru>"}, "email_address"),
             ({"email_address": "karto.help@ro.ru\n"}, "email_address"),
             ({"email_address": DROP, "domain": "https://ro.ru"}, "domain"),
             ({"poll_interval": 0}, "poll_interval"),
             ({"verification_message": "hello\nBcc: x@ro.ru"}, "verification_message"),
         ]),
        ("sendgrid_api_key",
         {"api_url": sandbox.url("sendgrid_api"), "api_key": "{{ sendgrid_key }}", "name": "karto-bad-input"},
         connection_cases("api_url", sandbox.url("sendgrid_api"), "api_key", "sendgrid_key", 4) + [
             ({"name": ""}, "name"),
             ({"name": "karto\nbad"}, "name"),
             ({"scopes": []}, "scopes"),
             ({"scopes": ["mail send"]}, "scopes"),
             ({"state": "gone"}, "state"),
         ]),
        ("sendgrid_sender",
         {"api_url": sandbox.url("sendgrid_api"), "api_key": "{{ sendgrid_key }}", "from_email": "karto.help@ro.ru",
          "check_domain": False},
         connection_cases("api_url", sandbox.url("sendgrid_api"), "api_key", "sendgrid_key", 5) + [
             ({"from_email": "KARTO <karto.help@ro.ru>"}, "from_email"),
             ({"from_email": "karto.help@ro.ru\n"}, "from_email"),
             ({"reply_to": "reply@ro.ru\n"}, "reply_to"),
             ({"from_name": "KARTO\nSupport"}, "from_name"),
             ({"poll_interval": 0}, "poll_interval"),
         ]),
        ("resend_api_key",
         {"api_url": sandbox.url("resend_api"), "api_key": "{{ resend_key }}", "name": "karto-bad-input"},
         connection_cases("api_url", sandbox.url("resend_api"), "api_key", "resend_key", 6) + [
             ({"name": ""}, "name"),
             ({"name": "karto\nbad"}, "name"),
             ({"permission": "all"}, "permission"),
             ({"domain": "ro.ru", "domain_id": "d91cd9bd-1176"}, "domain"),
             ({"domain": "ro.ru\n"}, "domain"),
         ]),
        ("resend_domain",
         {"api_url": sandbox.url("resend_api"), "api_key": "{{ resend_key }}", "name": "karto-bad-input.test"},
         connection_cases("api_url", sandbox.url("resend_api"), "api_key", "resend_key", 7) + [
             ({"name": ""}, "name"),
             ({"name": "ex ample.test"}, "name"),
             ({"name": "karto-bad-input.test\n"}, "name"),
             ({"custom_return_path": "Send!"}, "custom_return_path"),
             ({"region": "mars"}, "region"),
         ]),
        ("mailgun_smtp_credential",
         {"api_url": sandbox.url("mailgun_api"), "api_key": "{{ mailgun_key }}", "domain": mailgun_domain,
          "login": "karto-bad", "password": secret("Mailgun")},
         connection_cases("api_url", sandbox.url("mailgun_api"), "api_key", "mailgun_key", 8) + [
             ({"domain": ""}, "domain"),
             ({"domain": "https://" + mailgun_domain}, "domain"),
             ({"login": "karto bad"}, "login"),
             ({"password": secret("M1") + "\n" + secret("M2")}, "password"),
             ({"password": ""}, "password"),
             ({"update_password": "sometimes"}, "update_password"),
         ]),
        ("mailgun_domain_info",
         {"api_url": sandbox.url("mailgun_api"), "api_key": "{{ mailgun_key }}", "domain": mailgun_domain},
         connection_cases("api_url", sandbox.url("mailgun_api"), "api_key", "mailgun_key", 9) + [
             ({"domain": ""}, "domain"),
             ({"domain": "ex ample.test"}, "domain"),
             ({"domain": mailgun_domain + "\n"}, "domain"),
             ({"region": "asia"}, "region"),
         ]),
    ]


def build_cases(sandbox, accounts):
    cases = []
    for module, base, table in module_table(sandbox, accounts):
        for number, (override, parameter) in enumerate(table):
            args = dict(base)
            for option, value in override.items():
                if value is DROP:
                    args.pop(option, None)
                else:
                    args[option] = value
            cases.append({"id": "%s-%02d-%s" % (module, number, parameter), "module": module, "args": args,
                          "parameter": parameter, "register": "case_%s_%02d" % (module, number)})
    return cases


def secrets_of(cases, extra_vars):
    """Every secret value a case uses, and its whitespace-free parts (a traceback may quote it changed)."""
    values = set(extra_vars.values())
    for case in cases:
        for option, value in case["args"].items():
            if option in ("password", "api_key", "access_token", "anon_key", "service_role_key") \
                    and isinstance(value, str) and "{{" not in value:
                values.add(value)
    parts = set()
    for value in values:
        parts.update(part for part in value.split() if len(part) >= 8)
    return parts


@pytest.fixture(scope="module")
def bad_input_run(sandbox):
    ref, token = sandbox.add_supabase_project()
    mailgun = sandbox.control("POST", "/mailgun/accounts", {})
    mailgun_domain = "mg-bad-input.karto.test"
    sandbox.control("POST", "/mailgun/domains", {"api_key": mailgun["api_key"], "name": mailgun_domain, "state": "active"})
    accounts = {"supabase": (ref, token), "mailgun": (mailgun["api_key"], mailgun_domain)}
    extra_vars = {
        "supabase_token": token,
        "smtp2go_key": sandbox.add_smtp2go_account(),
        "sendgrid_key": sandbox.control("POST", "/sendgrid/accounts", {})["api_key"],
        "resend_key": sandbox.control("POST", "/resend/accounts", {})["api_key"],
        "mailgun_key": mailgun["api_key"],
    }
    cases = build_cases(sandbox, accounts)
    tasks = [{"name": case["id"], NS + case["module"]: case["args"], "register": case["register"],
              "ignore_errors": True} for case in cases]
    sandbox.clear_journal()
    # Two playbooks side by side (about half the cases each, split by task): the cost is Ansible's
    # per-task start-up, which one localhost play pays serially.
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda part: run_tasks(part, extra_vars=extra_vars, timeout=600), (tasks[0::2], tasks[1::2])))
    journal = sandbox.journal()
    results = {name: value for run in runs for name, value in run.results.items()}
    output = "\n".join(run.all_output for run in runs)
    return {"cases": {case["id"]: case for case in cases}, "results": results, "output": output, "journal": journal,
            "secrets": secrets_of(cases, extra_vars)}


# Built without the sandbox, to name the pytest ids; the fixture builds the same table with real URLs.
class _Placeholder:
    ca_cert = "/ca.pem"
    dns_port = 53

    def url(self, name):
        return "http://127.0.0.1:1/" + name

    def smtp_relay_port(self, _listener):
        return 1


CASE_IDS = [case["id"] for case in build_cases(_Placeholder(), {"supabase": ("a" * 20, "t"), "mailgun": ("k", "d")})]


def test_the_table_covers_every_module_with_over_100_cases():
    modules = {case_id.split("-")[0] for case_id in CASE_IDS}
    assert len(CASE_IDS) >= 100 and len(modules) == 13, (len(CASE_IDS), modules)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_bad_value_fails_on_input_naming_the_parameter(bad_input_run, case_id):
    case = bad_input_run["cases"][case_id]
    result = bad_input_run["results"].get(case["register"])
    assert result, "no result registered for %s" % case_id
    assert result.get("failed") is True, result
    message = result.get("msg", "")
    assert case["parameter"] in message, message
    for marker in ("Traceback", "MODULE FAILURE", "in header value", "No connection adapters", "Invalid timeout"):
        assert marker not in json.dumps(result), result


def test_no_request_reached_any_emulator(bad_input_run):
    requests = [(entry["service"], entry["method"], entry["path"]) for entry in bad_input_run["journal"]]
    assert requests == []


def test_no_traceback_and_no_secret_in_any_output(bad_input_run):
    output = bad_input_run["output"] + json.dumps(bad_input_run["results"])
    assert "Traceback" not in output and "MODULE FAILURE" not in output
    leaked = sorted(value for value in bad_input_run["secrets"] if value in output)
    assert leaked == []
