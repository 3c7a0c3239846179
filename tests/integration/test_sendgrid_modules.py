"""sendgrid_api_key and sendgrid_sender through real ansible-playbook runs against the SendGrid emulator."""

import secrets
import time

import pytest
import requests

from tests.integration.playbook import run_tasks

SENDER = "karto.help@ro.ru"


@pytest.fixture
def account(sandbox):
    """A fresh SendGrid account; its Full Access admin key."""
    return sandbox.control("POST", "/sendgrid/accounts", {})["api_key"]


def state_of(sandbox, api_key):
    return sandbox.control("GET", "/sendgrid/accounts/%s" % api_key)


def key_task(sandbox, register="key", no_log=True, **options):
    args = {"api_url": sandbox.url("sendgrid_api"), "api_key": "{{ admin_key }}"}
    args.update(options)
    task = {"name": "API key", "karto.supabase_mail.sendgrid_api_key": args, "register": register,
            "ignore_errors": True}
    if no_log:
        task["no_log"] = True
    return task


def sender_task(sandbox, register="sender", **options):
    args = {"api_url": sandbox.url("sendgrid_api"), "api_key": "{{ admin_key }}", "from_email": SENDER}
    args.update(options)
    return {"name": "Sender", "karto.supabase_mail.sendgrid_sender": args, "register": register,
            "ignore_errors": True}


def run(tasks, admin_key, **kwargs):
    return run_tasks(tasks, extra_vars={"admin_key": admin_key}, **kwargs)


def calls(sandbox, since, method=None, path=None):
    return [e for e in sandbox.journal(service="sendgrid_api", method=method)
            if e["seq"] > since and (path is None or e["path"] == path)]


def last_seq(sandbox):
    entries = sandbox.journal()
    return entries[-1]["seq"] if entries else 0


def new_name():
    return "supabase-" + secrets.token_hex(6)


def api(sandbox, admin_key, method, path, **kwargs):
    return requests.request(method, sandbox.url("sendgrid_api") + path, timeout=10,
                            headers={"Authorization": "Bearer " + admin_key}, **kwargs)


# --- sendgrid_api_key -------------------------------------------------------------------------

def test_key_created_once_with_mail_send_its_value_returned_once_then_found_by_name(sandbox, account):
    name = new_name()
    mark = last_seq(sandbox)
    first = run([key_task(sandbox, name=name)], account, diff=True)
    assert first.returncode == 0, first.stdout
    result = first["key"]
    assert result["changed"] is True and result["created"] is True
    stored = [k for k in state_of(sandbox, account)["keys"] if k["name"] == name]
    assert len(stored) == 1 and result["api_key"] == stored[0]["api_key"]
    assert result["key"] == {"api_key_id": stored[0]["api_key_id"], "name": name,
                             "scopes": ["mail.send", "sender_verification_eligible", "2fa_required"]}
    creates = calls(sandbox, mark, "POST", "/v3/api_keys")
    assert [c["json"] for c in creates] == [{"name": name, "scopes": ["mail.send"]}]

    mark = last_seq(sandbox)
    second = run([key_task(sandbox, name=name)], account)
    assert second.returncode == 0, second.stdout
    assert second["key"]["changed"] is False and "api_key" not in second["key"]
    assert [c["method"] for c in calls(sandbox, mark)] == ["GET", "GET"]  # the list, then the key
    for output in (first.all_output, second.all_output):
        assert stored[0]["api_key"] not in output and account not in output


def test_scope_drift_is_corrected_with_put_and_check_mode_only_reports_it(sandbox, account):
    name = new_name()
    assert run([key_task(sandbox, name=name)], account).returncode == 0
    key = next(k for k in state_of(sandbox, account)["keys"] if k["name"] == name)
    drift = api(sandbox, account, "PUT", "/v3/api_keys/" + key["api_key_id"],
                json={"name": name, "scopes": ["mail.send", "alerts.read"]})
    assert drift.status_code == 200

    mark = last_seq(sandbox)
    checked = run([key_task(sandbox, name=name)], account, check=True, diff=True)
    assert checked["key"]["changed"] is True and checked["key"]["changed_fields"] == ["scopes"]
    assert calls(sandbox, mark, "PUT") == []

    fixed = run([key_task(sandbox, name=name)], account)
    assert fixed["key"]["changed"] is True and "api_key" not in fixed["key"]
    puts = calls(sandbox, mark, "PUT")
    assert [p["json"] for p in puts] == [{"name": name, "scopes": ["mail.send"]}]
    again = run([key_task(sandbox, name=name)], account)
    assert again["key"]["changed"] is False


def test_the_documented_result_form_of_get_key_is_read_too(sandbox, account):
    name = new_name()
    assert run([key_task(sandbox, name=name)], account).returncode == 0
    sandbox.control("POST", "/sendgrid/accounts/settings", {"api_key": account, "get_key_shape": "result"})
    again = run([key_task(sandbox, name=name)], account)
    assert again.returncode == 0 and again["key"]["changed"] is False
    assert again["key"]["key"]["scopes"][0] == "mail.send"


def test_absent_deletes_the_key_and_then_changes_nothing(sandbox, account):
    name = new_name()
    assert run([key_task(sandbox, name=name)], account).returncode == 0
    gone = run([key_task(sandbox, name=name, state="absent"), key_task(sandbox, "again", name=name, state="absent")],
               account)
    assert gone["key"]["changed"] is True and gone["again"]["changed"] is False
    assert [k for k in state_of(sandbox, account)["keys"] if k["name"] == name] == []


def test_two_keys_with_the_name_are_an_error_naming_both(sandbox, account):
    name = new_name()
    for _attempt in range(2):
        assert api(sandbox, account, "POST", "/v3/api_keys", json={"name": name, "scopes": ["mail.send"]}).status_code == 201
    mark = last_seq(sandbox)
    result = run([key_task(sandbox, name=name, no_log=False)], account)["key"]
    assert result["failed"] is True and "2 API keys named %s" % name in result["msg"]
    assert calls(sandbox, mark, "POST") == []


def test_a_lost_create_answer_is_replaced_once_and_the_run_ends_holding_the_key(sandbox, account):
    """The key's value was only in the lost answer: the key found by the re-read is deleted and created
    once more, so the run returns a value that works and leaves one key (the write engine's secret_shown_once)."""
    name = new_name()
    mark = last_seq(sandbox)
    sandbox.inject_fault(service="sendgrid_api", method="POST", path_contains="/v3/api_keys", action="drop_answer")
    result = run([key_task(sandbox, name=name, no_log=False)], account)["key"]
    keys = [k for k in state_of(sandbox, account)["keys"] if k["name"] == name]
    assert result["changed"] is True and len(keys) == 1 and result["api_key"] == keys[0]["api_key"]
    assert any("was lost" in warning for warning in result.get("warnings", []))
    assert [e["method"] for e in calls(sandbox, mark) if e["method"] != "GET"] == ["POST", "DELETE", "POST"]


def test_a_429_is_retried_after_x_ratelimit_reset(sandbox, account):
    name = new_name()
    mark = last_seq(sandbox)
    sandbox.inject_fault(service="sendgrid_api", method="GET", path_contains="/v3/api_keys", action="status",
                         status=429, headers={"X-RateLimit-Reset": str(int(time.time()) + 1)},
                         body={"errors": [{"field": None, "message": "too many requests"}]})
    result = run([key_task(sandbox, name=name)], account)
    assert result.returncode == 0 and result["key"]["created"] is True
    lists = calls(sandbox, mark, "GET", "/v3/api_keys")
    assert [entry["status"] for entry in lists] == [429, 200]


@pytest.mark.parametrize("admin_scopes, key, message", [
    (None, "SG.unknownunknownunknown.unknownunknownunknownunknownunknownunknown0", "SendGrid refused the api_key (HTTP 401)"),
    (["api_keys.read"], None, "SendGrid would not create the API key (HTTP 403)"),
])
def test_refusals_are_explained(sandbox, admin_scopes, key, message):
    if key is None:
        key = sandbox.control("POST", "/sendgrid/accounts", {"scopes": admin_scopes})["api_key"]
    result = run([key_task(sandbox, name=new_name(), no_log=False)], key)
    assert result["key"]["failed"] is True and message in result["key"]["msg"]
    assert key not in result.all_output


def test_bad_input_fails_before_any_request(sandbox, account):
    mark = last_seq(sandbox)
    result = run([key_task(sandbox, name=new_name(), scopes=["sender_verification_eligible"], no_log=False)], account)
    assert "scopes must name at least one scope" in result["key"]["msg"]
    assert calls(sandbox, mark) == []


# --- sendgrid_sender ---------------------------------------------------------------------------

ADDRESS = {"address": "1 Example Street", "city": "Moscow", "country": "Russia"}


def test_sender_created_once_with_its_address_then_left_alone(sandbox, account):
    mark = last_seq(sandbox)
    first = run([sender_task(sandbox, from_name="KARTO", **ADDRESS)], account, diff=True)
    result = first["sender"]
    assert result["changed"] is True and result["verification_sent"] is True
    assert result["verified"] is False and result["locked"] is False
    assert result["domain_warning"]["level"] == "hard" and result["domain_warning"]["domain"] == "ro.ru"
    assert "SendGrid lists ro.ru" in first.stdout + first.stderr
    creates = calls(sandbox, mark, "POST", "/v3/verified_senders")
    assert [c["json"] for c in creates] == [{"from_email": SENDER, "from_name": "KARTO", "nickname": SENDER,
                                             "reply_to": SENDER, **ADDRESS}]

    mark = last_seq(sandbox)
    second = run([sender_task(sandbox, from_name="KARTO", **ADDRESS)], account)
    assert second["sender"]["changed"] is False and second["sender"]["verification_sent"] is False
    assert [c["method"] for c in calls(sandbox, mark)] == ["GET", "GET"]  # the warn list, the senders
    assert state_of(sandbox, account)["senders"][0]["verification_mail_count"] == 1


def test_a_changed_field_is_patched_with_the_required_fields(sandbox, account):
    assert run([sender_task(sandbox, **ADDRESS)], account).returncode == 0
    mark = last_seq(sandbox)
    checked = run([sender_task(sandbox, city="Kazan")], account, check=True)
    assert checked["sender"]["changed"] is True and checked["sender"]["changed_fields"] == ["city"]
    assert calls(sandbox, mark, "PATCH") == []
    changed = run([sender_task(sandbox, city="Kazan")], account)
    assert changed["sender"]["sender"]["city"] == "Kazan"
    patches = calls(sandbox, mark, "PATCH")
    assert [p["json"] for p in patches] == [{"nickname": SENDER, "from_email": SENDER, "reply_to": SENDER,
                                             "city": "Kazan"}]


def test_resend_on_request_and_wait_for_the_click(sandbox, account):
    assert run([sender_task(sandbox, **ADDRESS)], account).returncode == 0
    mark = last_seq(sandbox)
    resent = run([sender_task(sandbox, resend_verification=True)], account)
    assert resent["sender"]["changed"] is True and resent["sender"]["verification_sent"] is True
    assert len(calls(sandbox, mark, "POST")) == 1
    assert state_of(sandbox, account)["senders"][0]["verification_mail_count"] == 2

    timed_out = run([sender_task(sandbox, wait_for_verification=True, verification_timeout=1, poll_interval=1)],
                    account)
    assert timed_out["sender"]["failed"] is True and "click the link" in timed_out["sender"]["msg"]

    sandbox.control("POST", "/sendgrid/senders/verify", {"api_key": account, "from_email": SENDER.upper()})
    waited = run([sender_task(sandbox, wait_for_verification=True, resend_verification=True)], account)
    assert waited["sender"]["verified"] is True and waited["sender"]["changed"] is False


def test_sender_found_past_the_first_page_and_deleted(sandbox, account):
    for index in range(101):
        other = "other%03d@karto.test" % index
        assert api(sandbox, account, "POST", "/v3/verified_senders",
                   json={"nickname": other, "from_email": other, "reply_to": other}).status_code == 201
    assert run([sender_task(sandbox, **ADDRESS)], account).returncode == 0
    mark = last_seq(sandbox)
    again = run([sender_task(sandbox, **ADDRESS)], account)
    assert again["sender"]["changed"] is False
    pages = calls(sandbox, mark, "GET", "/v3/verified_senders")
    hundredth = state_of(sandbox, account)["senders"][99]["id"]
    assert [p["query"] for p in pages] == [{"limit": "100"}, {"limit": "100", "lastSeenID": str(hundredth)}]
    gone = run([sender_task(sandbox, state="absent"), sender_task(sandbox, "again", state="absent")], account)
    assert gone["sender"]["changed"] is True and gone["again"]["changed"] is False
    assert SENDER not in [s["from_email"] for s in state_of(sandbox, account)["senders"]]


def test_sender_bad_input_fails_before_any_request(sandbox, account):
    mark = last_seq(sandbox)
    result = run([sender_task(sandbox, address_state="Moscow")], account)
    assert "address_state must be at most 2 characters" in result["sender"]["msg"]
    assert calls(sandbox, mark) == []
