"""resend_domain's pure parts (validation, public domains, record names, the DNS identity it reports) and its
engine hooks (add, verify request, region, waiting, a public-domain refusal) against an in-memory Resend."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _provider_resend as resend
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.modules import resend_domain
from tests.unit.plugins.module_utils.test_engine import Exited, Failed, FakeModule

NAME = "mail.karto.test"
RECORDS = [
    {"record": "SPF", "name": "send.mail", "type": "MX", "value": "feedback-smtp.us-east-1.amazonses.com",
     "priority": 10, "ttl": "Auto", "status": "pending"},
    {"record": "SPF", "name": "send.mail", "type": "TXT", "value": '"v=spf1 include:amazonses.com ~all"',
     "ttl": "Auto", "status": "verified"},
    {"record": "DKIM", "name": "abc123._domainkey.mail", "type": "CNAME", "value": "abc123.dkim.amazonses.com.",
     "ttl": "Auto", "status": "pending"},
]


def params(**overrides):
    values = {option: None for option in resend_domain.ARGUMENT_SPEC}
    values.update(name=NAME, state="present", region="us-east-1", custom_return_path="send", verify=True,
                  wait_for_verification=False, verification_timeout=300, poll_interval=10)
    values.update(overrides)
    return values


class FakeResend:
    """Domains by id; `verifies` is the status a verify request leads to at the next read."""

    def __init__(self, domains=(), verifies="pending", refuse=None):
        self.domains = {domain["id"]: dict(domain) for domain in domains}
        self.calls = []
        self.verifies = verifies
        self.refuse = refuse

    def explain(self, error):
        return "Explained: %s" % error.message

    def find_domain(self, name):
        self.calls.append("list")
        return next(({"id": d["id"], "name": d["name"]} for d in self.domains.values() if d["name"] == name), None)

    def get_domain(self, domain_id):
        self.calls.append("get")
        return dict(self.domains[domain_id]) if domain_id in self.domains else None

    def create_domain(self, fields):
        self.calls.append(("create", tuple(sorted(fields))))
        if self.refuse:
            raise self.refuse
        domain = {"id": "d1", "name": fields["name"], "region": fields["region"], "status": "not_started",
                  "records": [dict(r, status="not_started") for r in RECORDS]}
        self.domains["d1"] = domain
        return dict(domain)

    def verify_domain(self, domain_id):
        self.calls.append("verify")
        self.domains[domain_id]["status"] = self.verifies

    def delete_domain(self, domain_id):
        self.calls.append("delete")
        del self.domains[domain_id]


def run(api, check_mode=False, **overrides):
    module = FakeModule(params(**overrides), check_mode=check_mode)
    try:
        resend_domain.Domain(module, api).run()
    except (Exited, Failed) as outcome:
        return outcome
    raise AssertionError("the module neither exited nor failed")


@pytest.mark.parametrize("overrides, problem", [
    ({}, None),
    ({"name": ""}, "name must not be empty"),
    ({"name": "mail.karto.test\n"}, "name must be a single line"),
    ({"name": " mail.karto.test"}, "name has leading whitespace"),
    ({"name": "karto"}, "name must be a domain name"),
    ({"custom_return_path": "send\n"}, "custom_return_path must be a subdomain label"),
    ({"custom_return_path": "Bounce"}, "custom_return_path must be a subdomain label"),
    ({"poll_interval": 0}, "poll_interval must be between 1 and 3600"),
])
def test_validate_names_the_parameter(overrides, problem):
    found = resend_domain.validate(params(**overrides))
    assert (found is None) if problem is None else found.startswith(problem), found


@pytest.mark.parametrize("name, public", [
    ("ro.ru", "ro.ru"), ("RAMBLER.RU.", "rambler.ru"), ("mail.gmail.com", "gmail.com"), ("karto.test", None),
    ("notgmail.com", None),
])
def test_public_mailbox_domains_and_their_subdomains_are_recognised(name, public):
    assert resend_domain.public_domain_of(name) == public


def test_the_public_domain_message_says_why_and_names_the_ways_out():
    text = resend.public_domain_message("ro.ru", "karto.help@ro.ru")
    assert text.startswith("Resend cannot send mail From karto.help@ro.ru")
    assert "mailbox's own SMTP server" in text and "forward its replies to karto.help@ro.ru" in text
    assert "Nothing was created in Resend" in text


@pytest.mark.parametrize("status, method, path, said, public", [
    (403, "POST", "/domains", "The seznam.cz domain is a public domain.", True),
    (422, "POST", "/domains", "Shared domains are not allowed", True),
    (403, "POST", "/domains", "The karto.test domain has already been added", False),
    (403, "POST", "/domains/d1/verify", "public", False),
])
def test_resends_own_refusal_of_a_public_domain_is_recognised(status, method, path, said, public):
    error = ApiError("x", status=status, method=method, path=path, provider_message=said)
    assert resend.is_public_domain_refusal(error) is public


def test_records_get_their_full_name_and_the_dkim_selector_and_return_path_follow():
    records = resend.records_view({"name": NAME, "records": RECORDS + [
        {"record": "Tracking", "name": "links.karto.test", "type": "CNAME", "value": "links1.resend-dns.com"}]})
    assert [r["fqdn"] for r in records] == ["send.mail.karto.test", "send.mail.karto.test",
                                            "abc123._domainkey.mail.karto.test", "links.karto.test"]
    assert resend_domain.dkim_selector(records) == "abc123"
    assert resend_domain.return_path_host(records) == "send.mail.karto.test"
    assert resend.record_fqdn({"name": "send"}, "karto.test") == "send.karto.test"


def test_added_once_verification_requested_then_left_alone_while_resend_checks():
    api = FakeResend()
    first = run(api)
    assert first.result["changed"] is True and first.result["verification_requested"] is True
    assert first.result["domain"]["status"] == "pending" and first.result["verified"] is False
    assert api.calls == ["list", ("create", ("custom_return_path", "name", "region")), "verify", "get"]
    again = run(api)
    assert again.result["changed"] is False and again.result["verification_requested"] is False
    assert api.calls[-2:] == ["list", "get"]


def test_a_failed_domain_is_asked_again_and_a_verified_one_reports_its_identity():
    api = FakeResend([{"id": "d1", "name": NAME, "region": "us-east-1", "status": "failed", "records": RECORDS}],
                     verifies="verified")
    result = run(api).result
    assert result["verification_requested"] is True and result["verified"] is True and result["changed"] is True
    assert (result["dkim_selector"], result["return_path_host"]) == ("abc123", "send.mail.karto.test")


def test_check_mode_predicts_the_add_and_the_request_without_writing():
    api = FakeResend()
    outcome = run(api, check_mode=True)
    assert outcome.result["changed"] is True and outcome.result["verification_requested"] is True
    assert outcome.result["domain"]["id"] is None and outcome.result["verified"] is False
    assert api.calls == ["list"]


def test_another_region_is_an_error_and_waiting_fails_listing_the_missing_records():
    api = FakeResend([{"id": "d1", "name": NAME, "region": "us-east-1", "status": "pending", "records": RECORDS}])
    moved = run(api, region="eu-west-1")
    assert isinstance(moved, Failed) and "Resend cannot move a domain" in moved.result["msg"]
    waited = run(api, wait_for_verification=True, verification_timeout=0)
    assert isinstance(waited, Failed) and waited.result["verified"] is False
    assert "send.mail.karto.test MX 10 feedback-smtp.us-east-1.amazonses.com" in waited.result["msg"]
    assert "abc123._domainkey.mail.karto.test CNAME" in waited.result["msg"]
    assert "send.mail.karto.test TXT" not in waited.result["msg"]  # that one is found already


def test_resends_refusal_of_a_public_domain_fails_with_the_ways_out():
    refusal = ApiError("x", status=403, code="validation_error", method="POST", path="/domains",
                       provider_message="The seznam.cz domain is a public domain. Please, use a domain you own.")
    outcome = run(FakeResend(refuse=refusal), name="seznam.cz")
    assert isinstance(outcome, Failed) and outcome.result["public_domain"] is True
    assert outcome.result["msg"].startswith("Resend cannot send mail From an address at seznam.cz")
    assert "Resend said: The seznam.cz domain is a public domain" in outcome.result["msg"]
