"""mailgun_domain_info: validation and the facts it derives from Mailgun's domain answer."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.modules import mailgun_domain_info as module

KEY = "0123456789abcdef0123456789abcdef-01234567-89abcdef"


def answer(state="unverified", kind="custom", name="mg.karto.test", valid="unknown"):
    return {
        "domain": {"name": name, "state": state, "type": kind, "created_at": "Thu, 13 Oct 2011 18:02:00 GMT",
                   "smtp_login": "postmaster@" + name, "id": "x", "require_tls": False},
        "sending_dns_records": [
            {"record_type": "TXT", "name": name, "value": "v=spf1 include:mailgun.org ~all", "valid": "valid"},
            {"record_type": "CNAME", "name": "pdk1._domainkey." + name, "value": "pdk1._domainkey.1.dkim1.mailgun.com",
             "valid": valid},
        ],
        "receiving_dns_records": [{"record_type": "MX", "name": name, "value": "mxa.mailgun.org", "priority": "10",
                                   "valid": valid}],
    }


def test_an_unverified_domain_lists_the_sending_records_mailgun_does_not_find_yet():
    facts = module.domain_facts(answer())
    assert facts["active"] is False and facts["is_sandbox"] is False
    assert facts["domain"] == {"name": "mg.karto.test", "state": "unverified", "type": "custom",
                               "created_at": "Thu, 13 Oct 2011 18:02:00 GMT", "smtp_login": "postmaster@mg.karto.test",
                               "disabled": None}
    assert [record["name"] for record in facts["records_to_publish"]] == ["pdk1._domainkey.mg.karto.test"]
    assert facts["dkim_selector"] == "pdk1"
    assert facts["receiving_dns_records"][0]["purpose"] == "receiving"


def test_an_active_domain_has_nothing_to_publish_and_a_sandbox_is_recognised():
    assert module.domain_facts(answer(state="active", valid="valid"))["records_to_publish"] == []
    sandbox = module.domain_facts({"domain": {"name": "sandbox01ab.mailgun.org", "state": "active", "type": "sandbox"}})
    assert sandbox["is_sandbox"] is True and sandbox["active"] is True and sandbox["sending_dns_records"] == []


@pytest.mark.parametrize("overrides, problem", [
    ({}, None),
    ({"domain": ""}, "domain must not be empty"),
    ({"domain": "mg.karto.test\n"}, "domain must not contain whitespace"),
    ({"api_key": ""}, "api_key must not be empty"),
])
def test_validate_names_the_parameter(overrides, problem):
    params = {"domain": "mg.karto.test", "api_key": KEY, "api_url": None, "region": "eu", "timeout": 30}
    params.update(overrides)
    found = module.validate(params)
    assert (found is None) if problem is None else found.startswith(problem), found
