"""Every module's EXAMPLES block runs, unchanged, against the sandbox's seeded demo objects.

The examples name no endpoint, so the modules' environment fallbacks point them at the sandbox.
Some examples need objects to exist first; a short prelude (not part of the docs) makes them.
"""

import ast
import json
import os
import sys

import pytest
import yaml

from tests.collection_path import REPO_ROOT
from tests.integration.playbook import run_tasks
from tests.sandbox.__main__ import SERVICES
from tests.sandbox.seed import DEMO_ACCESS_TOKEN, DEMO_PROJECT_REF

SMTP_PASSWORD = "Example-pass-4be1c0d2"
MODULES_DIR = os.path.join(REPO_ROOT, "plugins", "modules")


def examples_of(module):
    tree = ast.parse(open(os.path.join(MODULES_DIR, module + ".py")).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "EXAMPLES":
            return yaml.safe_load(node.value.value)
    raise AssertionError("%s has no EXAMPLES" % module)


def prelude(module):
    """Objects an example expects to exist, made with the collection's own modules."""
    if module not in ("supabase_email_test", "smtp_check"):
        return []
    return [
        {"name": "SMTP user the project logs in with", "karto.supabase_mail.smtp2go_user": {
            "api_key": "{{ smtp2go_api_key }}", "username": "karto-supabase",
            "password": "{{ smtp2go_smtp_password }}", "update_password": "always"}},
        {"name": "Verified sender", "karto.supabase_mail.smtp2go_sender": {
            "api_key": "{{ smtp2go_api_key }}", "email_address": "karto.help@ro.ru",
            "wait_for_verification": True, "verification_timeout": 20, "poll_interval": 1}},
        {"name": "Supabase SMTP settings", "karto.supabase_mail.supabase_smtp": {
            "project_ref": DEMO_PROJECT_REF, "access_token": "{{ supabase_access_token }}",
            "host": "mail.smtp2go.com", "port": 465, "username": "karto-supabase",
            "password": "{{ smtp2go_smtp_password }}", "sender_email": "karto.help@ro.ru",
            "sender_name": "KARTO", "max_frequency": 1}},
    ]


MODULES = sorted(name[:-3] for name in os.listdir(MODULES_DIR) if name.endswith(".py"))


def emulator_settings(sandbox):
    """(env, extra vars) every provider emulator publishes for the examples of its modules
    (`module_examples_settings(sandbox)` in its file), so a new provider needs no edit here."""
    env, extra_vars = {}, {}
    for service in SERVICES:
        settings = getattr(sys.modules[service.__module__], "module_examples_settings", None)
        if settings:
            published = settings(sandbox)
            env.update(published.get("env", {}))
            extra_vars.update(published.get("vars", {}))
    return env, extra_vars


@pytest.mark.parametrize("module", MODULES)
def test_examples_run_against_the_sandbox(sandbox, module):
    provider_env, provider_vars = emulator_settings(sandbox)
    tasks = prelude(module) + examples_of(module)
    run = run_tasks(tasks, extra_vars={
        **provider_vars,
        "supabase_access_token": DEMO_ACCESS_TOKEN,
        "smtp2go_smtp_password": SMTP_PASSWORD,
        # What setup-mail.yml has when its examples run: the chosen provider and the contract fact
        # its role set (here the prelude's SMTP2GO user).
        "mail_provider": "smtp2go",
        "mail_relay": {"provider": "smtp2go", "title": "SMTP2GO", "host": "mail.smtp2go.com", "port": 465,
                       "username": "karto-supabase", "password": SMTP_PASSWORD,
                       "sender_email": "karto.help@ro.ru", "sender_name": "KARTO", "sender_verified": True,
                       "ready": True, "dns": {}, "advice": {}},
    }, env={
        **provider_env,
        "SUPABASE_API_URL": sandbox.url("supabase_api"),
        "SUPABASE_AUTH_URL": sandbox.url("supabase_auth"),
        "KARTO_DNS_NAMESERVERS": "127.0.0.1",
        "KARTO_DNS_PORT": str(sandbox.dns_port),
        "SMTP_CHECK_CA_PATH": sandbox.ca_cert,
        "SMTP_CHECK_CONNECT_TO": json.dumps({
            "465": "127.0.0.1:%d" % sandbox.smtp_relay_port("implicit_tls"),
            "587": "127.0.0.1:%d" % sandbox.smtp_relay_port("starttls"),
            "2525": "127.0.0.1:%d" % sandbox.smtp_relay_port("starttls")}),
    })
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert SMTP_PASSWORD not in run.all_output
    assert DEMO_ACCESS_TOKEN not in run.all_output
