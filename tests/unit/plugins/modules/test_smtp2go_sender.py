"""smtp2go_sender: view before add, predictions, views, waiting, and lost answers through the engine."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _engine

from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.modules import smtp2go_sender
from tests.unit.plugins.module_utils.test_engine import Exited, Failed, FakeModule

EMAIL = "karto.help@ro.ru"
DOMAIN = "mail.example.com"


def params(**overrides):
    values = {option: None for option in smtp2go_sender.ARGUMENT_SPEC}
    values.update(state="present", wait_for_verification=False, verification_timeout=300, poll_interval=10)
    values.update(overrides)
    return values


def domain_entry(verified=False):
    return {"domain": {"fulldomain": DOMAIN, "dkim_selector": "s1", "dkim_value": "dkim.smtp2go.net",
                       "dkim_verified": verified, "rpath_selector": "em1", "rpath_value": "return.smtp2go.net",
                       "rpath_verified": verified}, "trackers": []}


class FakeSmtp2go:
    def __init__(self, senders=(), domains=(), fault=None, verify_after_rechecks=None):
        self.senders = {sender["email_address"]: dict(sender) for sender in senders}
        self.domains = list(domains)
        self.fault = fault
        self.verify_after_rechecks = verify_after_rechecks
        self.calls = []

    def explain(self, error):
        return error.message

    def _lost(self, op, applied):
        if self.fault == "lose_answer" or (self.fault == "drop" and not applied):
            self.fault = None
            raise ApiError("no answer to %s" % op, method="POST", outcome_unknown=True)

    def find_single_sender(self, email_address):
        self.calls.append("view")
        if self.verify_after_rechecks is not None:
            if self.verify_after_rechecks == 0 and email_address in self.senders:
                self.senders[email_address]["verified"] = True
            self.verify_after_rechecks -= 1
        found = self.senders.get(email_address)
        return dict(found) if found else None

    def add_single_sender(self, email_address, message=None):
        self.calls.append("add")
        if self.fault == "drop":
            self._lost("add", applied=False)
        self.senders[email_address] = {"email_address": email_address, "verified": False}
        self._lost("add", applied=True)

    def remove_single_sender(self, email_address):
        self.calls.append("remove")
        self.senders.pop(email_address)
        self._lost("remove", applied=True)

    def find_domain(self, domain):
        self.calls.append("view")
        return self.domains[0] if self.domains else None

    def add_domain(self, domain):
        self.calls.append("add")
        self.domains.append(domain_entry())


def run(api, check_mode=False, diff=False, **overrides):
    module = FakeModule(params(**overrides), check_mode=check_mode, diff=diff)
    kind = smtp2go_sender.EmailSender if module.params["email_address"] else smtp2go_sender.DomainSender
    name = module.params["email_address"] or module.params["domain"]
    with pytest.raises((Exited, Failed)) as outcome:
        kind(module, api, name).run()
    return outcome.value


@pytest.mark.parametrize("overrides, problem", [
    ({"email_address": EMAIL}, None),
    ({"email_address": "karto.help"}, "email_address must be a plain email address"),
    ({"domain": "https://mail.example.com"}, "domain must be a bare host name"),
    ({"email_address": EMAIL, "poll_interval": 0}, "poll_interval must be between 1 and 3600"),
    ({"email_address": EMAIL, "verification_timeout": 90000}, "verification_timeout must be between 0 and 86400"),
])
def test_validate_names_the_parameter(overrides, problem):
    found = smtp2go_sender.validate(params(**overrides))
    assert (found is None) if problem is None else found.startswith(problem)


def test_views_and_verification_of_each_kind():
    module = FakeModule(params(email_address=EMAIL))
    email = smtp2go_sender.EmailSender(module, None, EMAIL)
    assert email.view({"verified": True}) == {"type": "email", "name": EMAIL, "verified": True}
    assert email.view({"predicted": True}) == {"type": "email", "name": EMAIL, "verified": False}
    assert email.view(None) is None
    assert "click the verification link" in email.how_to_verify(None)
    domain = smtp2go_sender.DomainSender(FakeModule(params(domain=DOMAIN)), None, DOMAIN)
    assert domain.is_verified(domain_entry(verified=True)) is True
    assert domain.is_verified(domain_entry()) is False
    assert "s1._domainkey.%s CNAME dkim.smtp2go.net" % DOMAIN in domain.how_to_verify(domain_entry())


def test_email_added_once_then_only_viewed():
    api = FakeSmtp2go()
    first = run(api, email_address=EMAIL, diff=True)
    assert first.result["changed"] is True and first.result["verification_sent"] is True
    assert first.result["verified"] is False
    assert first.result["diff"] == {"before": {}, "after": {"type": "email", "name": EMAIL, "verified": False}}
    second = run(api, email_address=EMAIL)
    assert second.result["changed"] is False and second.result["verification_sent"] is False
    assert api.calls == ["view", "add", "view", "view"]


def test_check_mode_predicts_an_unverified_sender_without_records():
    api = FakeSmtp2go()
    outcome = run(api, domain=DOMAIN, check_mode=True, wait_for_verification=True)
    assert outcome.result["changed"] is True and outcome.result["verified"] is False
    assert outcome.result["sender"] == {"type": "domain", "name": DOMAIN, "verified": False}
    assert "dns_records" not in outcome.result and api.calls == ["view"]


def test_domain_returns_its_records():
    outcome = run(FakeSmtp2go(), domain=DOMAIN)
    assert [record["purpose"] for record in outcome.result["dns_records"]] == ["dkim", "return-path"]
    assert outcome.result["verification_sent"] is False


def test_lost_add_answer_is_found_on_reread_and_not_sent_again():
    api = FakeSmtp2go(fault="lose_answer")
    outcome = run(api, email_address=EMAIL)
    assert isinstance(outcome, Exited) and outcome.result["changed"] is True
    assert outcome.result["verification_sent"] is True
    assert api.calls == ["view", "add", "view"]


def test_dropped_add_not_found_fails_without_a_second_add():
    api = FakeSmtp2go(fault="drop")
    outcome = run(api, email_address=EMAIL)
    assert isinstance(outcome, Failed) and "does not find SMTP2GO sender %s" % EMAIL in outcome.result["msg"]
    assert api.calls.count("add") == 1


def test_lost_remove_answer_is_success_when_gone():
    api = FakeSmtp2go(senders=[{"email_address": EMAIL, "verified": True}], fault="lose_answer")
    outcome = run(api, email_address=EMAIL, state="absent")
    assert isinstance(outcome, Exited) and outcome.result["changed"] is True
    assert outcome.result["sender"] is None and outcome.result["verified"] is False


def test_wait_polls_until_verified(monkeypatch):
    monkeypatch.setattr(_engine.time, "sleep", lambda seconds: None)
    api = FakeSmtp2go(senders=[{"email_address": EMAIL, "verified": False}], verify_after_rechecks=2)
    outcome = run(api, email_address=EMAIL, wait_for_verification=True, poll_interval=1)
    assert outcome.result["verified"] is True and outcome.result["changed"] is False
    assert api.calls == ["view", "view", "view"]


def test_wait_times_out_with_what_to_do():
    api = FakeSmtp2go(senders=[{"email_address": EMAIL, "verified": False}])
    outcome = run(api, email_address=EMAIL, wait_for_verification=True, verification_timeout=0)
    assert isinstance(outcome, Failed) and "click the verification link" in outcome.result["msg"]
    assert outcome.result["sender"] == {"type": "email", "name": EMAIL, "verified": False}
