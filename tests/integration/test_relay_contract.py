"""The relay contract: one fact (mail_relay), one schema (roles/relay_contract), and every
registered provider held to it - its profile, its role, its sandbox emulator."""

import os

import pytest
import yaml

from tests.collection_path import REPO_ROOT, make_importable
from tests.integration.playbook import run_tasks

make_importable()
from ansible_collections.karto.supabase_mail.plugins.module_utils import _relay  # noqa: E402 pylint: disable=wrong-import-position

PROVIDERS = sorted(_relay.registered_profiles())
CONTRACT_SPEC = os.path.join(REPO_ROOT, "roles", "relay_contract", "meta", "argument_specs.yml")
# What every provider role reads itself (its defaults or argument spec), so setup-mail.yml
# includes it with no per-provider vars block.
COMMON_INPUTS = ("supabase_project_ref", "mail_sender_email", "mail_sender_name", "mail_smtp_username",
                 "mail_secrets_dir", "mail_secrets_vault_password")


def contract_fields():
    spec = yaml.safe_load(open(CONTRACT_SPEC))
    return spec["argument_specs"]["main"]["options"]["mail_relay"]["options"]


def a_relay(**changes):
    relay = {
        "provider": "example", "title": "Example Relay", "host": "smtp.relay.example", "port": 465,
        "username": "karto", "password": "Relay-pass-7f3a9c", "sender_email": "noreply@karto.test",
        "sender_name": "KARTO", "sender_verified": True, "ready": True,
        "dns": {"spf_includes": ["spf.relay.example"]}, "advice": {},
    }
    relay.update(changes)
    return relay


def test_the_contract_names_what_every_consumer_reads():
    fields = contract_fields()
    for name in ("provider", "title", "host", "port", "username", "password", "sender_email", "sender_name",
                 "sender_verified", "ready", "dns", "advice"):
        assert name in fields
    assert fields["password"].get("no_log") is True
    assert set(fields["dns"]["options"]) >= {"spf_includes", "dkim_cname_suffixes", "dkim_txt_selectors",
                                             "default_selectors", "signs_as_sender", "dkim_selector",
                                             "dkim_domain", "return_path_host", "own_domain_steps"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_provider_has_a_complete_profile_and_a_role_that_takes_the_common_inputs(provider):
    module_name = _relay.PROVIDER_MODULE_PREFIX + provider
    assert _relay.profile_problems(_relay.registered_profiles()[provider], module_name) == []
    role = os.path.join(REPO_ROOT, "roles", provider)
    assert os.path.isfile(os.path.join(role, "README.md"))
    spec = yaml.safe_load(open(os.path.join(role, "meta", "argument_specs.yml")))["argument_specs"]["main"]
    missing = [name for name in COMMON_INPUTS if name not in spec["options"]]
    assert not missing, "%s's role does not take %s" % (provider, missing)
    tasks = open(os.path.join(role, "tasks", "main.yml")).read()
    # The role ends by handing the fact over to the contract role, which validates it.
    assert "karto.supabase_mail.relay_contract" in tasks.rsplit("- name:", 1)[-1]


def test_the_contract_role_accepts_a_complete_fact_and_shows_no_password():
    run = run_tasks([{"name": "Contract", "ansible.builtin.include_role": {"name": "karto.supabase_mail.relay_contract"}}],
                    extra_vars={"mail_relay": a_relay()}, verbosity=3)
    assert run.returncode == 0, run.stdout
    assert "Example Relay: karto at smtp.relay.example:465" in run.stdout
    assert "Relay-pass-7f3a9c" not in run.all_output


@pytest.mark.parametrize("changes, message", [
    ({"port": "four-six-five"}, "port"),
    ({"password": None}, "password"),
    ({"sender_verified": "maybe"}, "sender_verified"),
    ({"dns": {"spf_includes": "spf.relay.example", "signs_as_sender": "sometimes"}}, "signs_as_sender"),
    ({"unknown_field": 1}, "unknown_field"),
])
def test_the_contract_role_refuses_a_fact_that_breaks_the_contract(changes, message):
    relay = a_relay(**changes)
    relay = {key: value for key, value in relay.items() if value is not None}
    run = run_tasks([{"name": "Contract", "ansible.builtin.include_role": {"name": "karto.supabase_mail.relay_contract"}}],
                    extra_vars={"mail_relay": relay})
    assert run.returncode != 0
    assert "Validation of arguments failed" in run.stdout and message in run.stdout
    assert "Relay-pass-7f3a9c" not in run.all_output


def test_supabase_smtp_refuses_a_broken_fact_before_any_request(sandbox):
    ref, token = sandbox.add_supabase_project()
    run = run_tasks([{"name": "Apply", "ansible.builtin.include_role": {"name": "karto.supabase_mail.supabase_smtp"}}],
                    extra_vars={"mail_relay": a_relay(port="four-six-five"), "supabase_smtp_project_ref": ref,
                                "supabase_smtp_access_token": token,
                                "supabase_smtp_api_url": sandbox.url("supabase_api")})
    assert run.returncode != 0 and "port" in run.stdout
    assert sandbox.journal(service="supabase_api", path_contains=ref) == []


def preflight(sandbox, relay):
    return run_tasks([{"name": "Preflight", "ansible.builtin.include_role": {
        "name": "karto.supabase_mail.mail_verify", "tasks_from": "preflight"}}],
        extra_vars={"mail_relay": relay, "mail_verify_dns_nameservers": ["127.0.0.1"],
                    "mail_verify_dns_port": sandbox.dns_port})


def test_the_preflight_judges_an_own_domain_with_the_relays_dkim_selector_from_the_contract(sandbox):
    # karto.test (sandbox DNS) is verified with SMTP2GO: s123456._domainkey and em123456 are its CNAMEs.
    identity = dict(_relay.registered_profiles()["smtp2go"].as_dict()["dns"])
    relay = a_relay(title="SMTP2GO", ready=False, dns=identity)  # ready=False: no probe, DNS only
    unaligned = preflight(sandbox, relay)
    assert unaligned.returncode == 0, unaligned.stdout
    assert "WARNING: mail From noreply@karto.test through SMTP2GO: will be rejected" in unaligned.stdout

    relay["dns"] = dict(identity, dkim_selector="s123456", dkim_domain="karto.test",
                        return_path_host="em123456.karto.test")
    aligned = preflight(sandbox, relay)
    assert aligned.returncode == 0, aligned.stdout
    assert "WARNING" not in aligned.stdout


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_provider_has_a_sandbox_emulator_serving_its_smtp_host_and_ports(sandbox, provider):
    """The profile and the emulator agree: Supabase Auth's routing and the relay's certificate in the
    sandbox cover the provider's host, with the TLS mode Supabase uses on each of its ports."""
    profile = _relay.registered_profiles()[provider]
    backend = next((b for b in sandbox.relay_backends() if b["name"] == provider), None)
    assert backend is not None, "no sandbox emulator registers a relay backend named %s" % provider
    assert profile.smtp_host in backend["hosts"]
    tls = {"implicit": "implicit_tls", "starttls": "starttls"}
    for port, mode in profile.smtp_ports.items():
        assert backend["ports"].get(str(port)) == tls[mode], (port, backend["ports"])
