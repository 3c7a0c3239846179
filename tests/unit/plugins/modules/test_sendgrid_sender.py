"""sendgrid_sender: validation, the fields it sends, the domain warning and its engine hooks against an
in-memory SendGrid."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _engine

from ansible_collections.karto.supabase_mail.plugins.module_utils import _provider_sendgrid as sendgrid
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.modules import sendgrid_sender
from tests.unit.plugins.module_utils.test_engine import Exited, Failed, FakeModule

EMAIL = "karto.help@ro.ru"
WARN_LIST = {"soft_failures": ["gmail.com"], "hard_failures": ["yahoo.com", "ro.ru"]}


def params(**overrides):
    values = {option: None for option in sendgrid_sender.ARGUMENT_SPEC}
    values.update(from_email=EMAIL, state="present", resend_verification=False, wait_for_verification=False,
                  verification_timeout=300, poll_interval=10, check_domain=True)
    values.update(overrides)
    return values


def stored(**overrides):
    sender = {"id": 7, "nickname": EMAIL, "from_email": EMAIL, "reply_to": EMAIL, "from_name": "KARTO",
              "reply_to_name": "", "address": "1 Example Street", "address2": "", "state": "", "city": "Moscow",
              "zip": "", "country": "Russia", "verified": False, "locked": False}
    sender.update(overrides)
    return sender


class FakeSendgrid:
    def __init__(self, sender=None, fault=None):
        self.sender = dict(sender) if sender else None
        self.calls = []
        self.fault = fault

    def explain(self, error):
        return "Explained: %s" % error.message

    def sender_domain_warnings(self):
        self.calls.append("domains")
        return WARN_LIST

    def find_verified_sender(self, from_email):
        self.calls.append("list")
        return dict(self.sender) if self.sender and self.sender["from_email"].lower() == from_email.lower() else None

    def create_verified_sender(self, fields):
        self.calls.append(("create", dict(fields)))
        self.sender = stored(**{"id": 8, "verified": False, **fields})
        if self.fault == "lose_answer":
            raise ApiError("no answer", method="POST", outcome_unknown=True)
        return dict(self.sender)

    def update_verified_sender(self, sender_id, fields):
        self.calls.append(("patch", sender_id, dict(fields)))
        self.sender.update(fields)
        return dict(self.sender)

    def delete_verified_sender(self, sender_id):
        self.calls.append("delete")
        self.sender = None

    def resend_verification(self, sender_id):
        self.calls.append("resend")


def run(api, check_mode=False, diff=False, **overrides):
    module = FakeModule(params(**overrides), check_mode=check_mode, diff=diff)
    try:
        sendgrid_sender.Sender(module, api).run()
    except (Exited, Failed) as outcome:
        outcome.module = module
        return outcome
    raise AssertionError("the module neither exited nor failed")


@pytest.mark.parametrize("overrides, problem", [
    ({}, None),
    ({"from_email": "karto.help"}, "from_email must be a plain email address"),
    ({"reply_to": "nobody"}, "reply_to must be a plain email address"),
    ({"address_state": "MOW"}, "address_state must be at most 2 characters"),
    ({"zip": "12345678901"}, "zip must be at most 10 characters"),
    ({"nickname": "a\nb"}, "nickname must be a single line"),
    ({"poll_interval": 0}, "poll_interval must be between 1 and 3600"),
])
def test_validate_names_the_parameter(overrides, problem):
    found = sendgrid_sender.validate(params(**overrides))
    assert (found is None) if problem is None else found.startswith(problem), found


def test_create_sends_the_required_fields_with_defaults():
    fields = sendgrid_sender.wanted_fields(params(from_name="KARTO", city="Moscow", address_state="MO"), None)
    assert fields == {"from_email": EMAIL, "nickname": EMAIL, "reply_to": EMAIL, "from_name": "KARTO",
                      "city": "Moscow", "state": "MO"}


@pytest.mark.parametrize("email, level", [("a@ro.ru", "hard"), ("a@GMAIL.com", "soft"), ("a@karto.test", None)])
def test_domain_warning_levels(email, level):
    warning = sendgrid.domain_warning(email, WARN_LIST)
    assert (warning or {}).get("level") == level


def test_created_once_with_a_verification_mail_then_left_alone():
    api = FakeSendgrid()
    first = run(api, from_name="KARTO", city="Moscow", diff=True)
    assert first.result["changed"] is True and first.result["verification_sent"] is True
    assert first.result["verified"] is False and first.result["domain_warning"]["level"] == "hard"
    assert any("SendGrid lists ro.ru" in warning for warning in first.module.warnings)
    second = run(api, from_name="KARTO", city="Moscow")
    assert second.result["changed"] is False and second.result["verification_sent"] is False
    assert [c if isinstance(c, str) else c[0] for c in api.calls] == ["domains", "list", "create", "domains", "list"]


def test_update_sends_the_required_fields_and_only_what_differs():
    api = FakeSendgrid(stored())
    outcome = run(api, city="Kazan", from_name="KARTO")
    assert outcome.result["changed_fields"] == ["city"]
    assert ("patch", 7, {"nickname": EMAIL, "from_email": EMAIL, "reply_to": EMAIL, "city": "Kazan"}) in api.calls


def test_check_mode_writes_nothing_and_predicts_an_unverified_sender():
    api = FakeSendgrid()
    outcome = run(api, check_mode=True, resend_verification=True, wait_for_verification=True)
    assert outcome.result["changed"] is True and outcome.result["verified"] is False
    assert api.calls == ["domains", "list"]


def test_resend_only_for_an_unverified_existing_sender():
    api = FakeSendgrid(stored())
    outcome = run(api, resend_verification=True)
    assert outcome.result["changed"] is True and outcome.result["verification_sent"] is True
    assert api.calls.count("resend") == 1
    verified = FakeSendgrid(stored(verified=True))
    outcome = run(verified, resend_verification=True)
    assert outcome.result["changed"] is False and "resend" not in verified.calls


def test_lost_create_answer_is_found_on_reread():
    api = FakeSendgrid(fault="lose_answer")
    outcome = run(api)
    assert isinstance(outcome, Exited) and outcome.result["changed"] is True
    assert outcome.result["verification_sent"] is True
    assert len([c for c in api.calls if isinstance(c, tuple) and c[0] == "create"]) == 1


def test_wait_times_out_with_what_to_do(monkeypatch):
    monkeypatch.setattr(_engine.time, "sleep", lambda seconds: None)
    outcome = run(FakeSendgrid(stored()), wait_for_verification=True, verification_timeout=0)
    assert isinstance(outcome, Failed) and "click the link" in outcome.result["msg"]


def test_absent_deletes_and_reads_no_warn_list():
    api = FakeSendgrid(stored())
    assert run(api, state="absent").result["changed"] is True
    assert api.calls == ["list", "delete"]
    assert run(api, state="absent").result["domain_warning"] is None
