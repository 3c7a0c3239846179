"""resend_api_key and resend_domain through real ansible-playbook runs against the Resend emulator, and every
request they send checked against Resend's published specification."""

import secrets
import time

import pytest
import requests

from tests.collection_path import make_importable
from tests.integration.openapi_spec import check_requests
from tests.integration.playbook import run_tasks
from tests.sandbox.fixture import REPO_ROOT
from tests.sandbox.resend_api import PUBLIC_DOMAINS

make_importable()
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_resend import PUBLIC_MAIL_DOMAINS  # noqa: E402 pylint: disable=wrong-import-position

SPECS = REPO_ROOT.parent / "shared" / "specs"


@pytest.fixture
def team(sandbox):
    """A fresh Resend team; its Full access admin key."""
    return sandbox.control("POST", "/resend/accounts", {})["api_key"]


def state_of(sandbox, api_key):
    return sandbox.control("GET", "/resend/accounts/%s" % api_key)


def key_task(sandbox, register="key", no_log=True, **options):
    args = {"api_url": sandbox.url("resend_api"), "api_key": "{{ admin_key }}"}
    args.update(options)
    task = {"name": "API key", "karto.supabase_mail.resend_api_key": args, "register": register,
            "ignore_errors": True}
    if no_log:
        task["no_log"] = True
    return task


def domain_task(sandbox, name, register="domain", **options):
    args = {"api_url": sandbox.url("resend_api"), "api_key": "{{ admin_key }}", "name": name}
    args.update(options)
    return {"name": "Domain", "karto.supabase_mail.resend_domain": args, "register": register, "ignore_errors": True}


def run(tasks, admin_key, **kwargs):
    return run_tasks(tasks, extra_vars={"admin_key": admin_key}, **kwargs)


def calls(sandbox, since, method=None, path=None):
    return [e for e in sandbox.journal(service="resend_api", method=method)
            if e["seq"] > since and (path is None or e["path"] == path)]


def last_seq(sandbox):
    entries = sandbox.journal()
    return entries[-1]["seq"] if entries else 0


def new_domain():
    return "r%s.karto.test" % secrets.token_hex(4)


def api(sandbox, admin_key, method, path, **kwargs):
    return requests.request(method, sandbox.url("resend_api") + path, timeout=10,
                            headers={"Authorization": "Bearer " + admin_key}, **kwargs)


# --- the requests against Resend's published specification ------------------------------------

def assert_requests_match_the_spec(entries):
    """Every journaled request is an operation of resend-openapi.yaml, with its query parameters and a body
    valid against its request schema (left out when ../shared/specs is not present)."""
    check_requests(["resend-openapi.yaml"], entries)


# --- resend_api_key ------------------------------------------------------------------------------

def test_key_created_once_restricted_to_a_domain_token_returned_once_then_found_by_name(sandbox, team):
    name, domain = "supabase-" + secrets.token_hex(6), new_domain()
    start = mark = last_seq(sandbox)
    first = run([dict(key_task(sandbox, "checked", name=name, domain=domain), check_mode=True),
                 domain_task(sandbox, domain, verify=False),
                 dict(key_task(sandbox, name=name, domain=domain), diff=True)], team)
    assert first["checked"]["failed"] is True and "no domain named %s" % domain in first["checked"]["msg"]
    result = first["key"]
    assert result["changed"] is True and result["created"] is True and result["recreated"] is False
    [stored] = [k for k in state_of(sandbox, team)["keys"] if k["name"] == name]
    assert result["token"] == stored["token"] and stored["domain_id"] == first["domain"]["domain"]["id"]
    assert result["key"] == {"id": stored["id"], "name": name, "created_at": None, "last_used_at": None,
                             "permission": "sending_access", "domain_id": stored["domain_id"]}
    creates = calls(sandbox, mark, "POST", "/api-keys")
    assert [c["json"] for c in creates] == [{"name": name, "permission": "sending_access",
                                            "domain_id": stored["domain_id"]}]
    assert result["diff"]["before"] == {} and result["diff"]["after"]["name"] == name
    assert stored["token"] not in str(result["diff"])

    mark = last_seq(sandbox)
    second = run([key_task(sandbox, name=name, domain=domain), key_task(sandbox, "gone", name=name, state="absent"),
                  key_task(sandbox, "again", name=name, state="absent")], team)
    assert second["key"]["changed"] is False and "token" not in second["key"]
    assert second["key"]["key"]["permission"] is None  # Resend does not show it
    assert second["gone"]["changed"] is True and second["gone"]["deleted_key_ids"] == [stored["id"]]
    assert second["again"]["changed"] is False
    # One read for the unchanged key; the delete's read and write; the second absent's read.
    assert [c["method"] for c in calls(sandbox, mark)] == ["GET", "GET", "DELETE", "GET"]
    assert [k for k in state_of(sandbox, team)["keys"] if k["name"] == name] == []
    for output in (first.all_output, second.all_output):
        assert stored["token"] not in output and team not in output
    assert_requests_match_the_spec(calls(sandbox, start))


def test_recreate_returns_a_new_token_and_leaves_the_old_key_until_it_is_deleted_by_id(sandbox, team):
    name = "supabase-" + secrets.token_hex(6)
    mark = last_seq(sandbox)
    result = run([
        key_task(sandbox, "old", name=name),
        dict(key_task(sandbox, "checked", name=name, recreate=True), check_mode=True),
        dict(key_task(sandbox, "new", name=name, recreate=True), diff=True),
        key_task(sandbox, "refused", no_log=False, name=name),
        key_task(sandbox, "deleted", name=name, key_id="{{ old.key.id }}", state="absent"),
    ], team)
    old_id = result["old"]["key"]["id"]
    assert result["checked"]["changed"] is True and result["checked"]["replaced_key_ids"] == [old_id]
    new = result["new"]
    assert new["recreated"] is True and new["replaced_key_ids"] == [old_id] and new["key"]["id"] != old_id
    assert (new["diff"]["before"]["id"], new["diff"]["after"]["id"]) == (old_id, new["key"]["id"])
    assert [c["json"]["name"] for c in calls(sandbox, mark, "POST")] == [name, name]  # check mode sent none
    # Two keys with the name: a plain run refuses, naming both and the way out.
    refused = result["refused"]
    assert refused["failed"] is True and "2 API keys named %s" % name in refused["msg"]
    assert "recreate=true" in refused["msg"] and set(refused["key_ids"]) == {old_id, new["key"]["id"]}
    assert result["deleted"]["deleted_key_ids"] == [old_id]
    [left] = [k for k in state_of(sandbox, team)["keys"] if k["name"] == name]
    assert left["id"] == new["key"]["id"] and left["token"] == new["token"]


def test_a_429_is_retried_after_retry_after(sandbox, team):
    mark = last_seq(sandbox)
    sandbox.inject_fault(service="resend_api", method="GET", path_contains="/api-keys", action="status", status=429,
                         headers={"retry-after": "1"})
    started = time.monotonic()
    result = run([key_task(sandbox, name="supabase-" + secrets.token_hex(6))], team)
    assert result.returncode == 0 and result["key"]["created"] is True
    assert time.monotonic() - started >= 1
    lists = calls(sandbox, mark, "GET", "/api-keys")
    assert [entry["status"] for entry in lists] == [429, 200]


def test_refusals_bad_input_and_a_lost_answer_are_explained(sandbox, team):
    sending = api(sandbox, team, "POST", "/api-keys", json={"name": "smtp", "permission": "sending_access"})
    lost = "supabase-" + secrets.token_hex(6)
    mark = last_seq(sandbox)
    sandbox.inject_fault(service="resend_api", method="POST", path_contains="/api-keys", action="drop_answer")
    result = run([
        key_task(sandbox, "unknown", no_log=False, name="x", api_key="re_Unknown1_UnknownUnknownUnknownUnkn"),
        key_task(sandbox, "restricted", no_log=False, name="x", api_key=sending.json()["token"]),
        key_task(sandbox, "full_with_domain", no_log=False, name="x", permission="full_access", domain="a.karto.test"),
        key_task(sandbox, "long", no_log=False, name="x" * 51),
        key_task(sandbox, "newline", no_log=False, name="x", domain="a.karto.test\n"),
        domain_task(sandbox, "mail.karto.test", "bad_path", custom_return_path="send path"),
        key_task(sandbox, "lost", no_log=False, name=lost),
    ], team)
    assert "Resend refused the api_key (HTTP 403)" in result["unknown"]["msg"]
    assert "API key is invalid" in result["unknown"]["msg"]
    assert "needs a key with Full access" in result["restricted"]["msg"]
    assert "domain and domain_id restrict a sending_access key" in result["full_with_domain"]["msg"]
    assert result["long"]["msg"].startswith("name must be at most 50 characters")
    assert result["newline"]["msg"].startswith("domain must be a single line")
    assert result["bad_path"]["msg"].startswith("custom_return_path must be a subdomain label")
    # The two refused reads, then the lost create: the re-read finds the key, whose token was only in the
    # lost answer, so it is deleted and created once more (the write engine's secret_shown_once).
    journal = [(e["method"], e["path"]) for e in calls(sandbox, mark)]
    assert journal[:5] == [
        ("GET", "/api-keys"), ("GET", "/api-keys"), ("GET", "/api-keys"), ("POST", "/api-keys"), ("GET", "/api-keys")]
    assert [method for method, _path in journal[5:]] == ["DELETE", "POST"]
    keys = [k for k in state_of(sandbox, team)["keys"] if k["name"] == lost]
    assert result["lost"]["changed"] is True and len(keys) == 1 and result["lost"]["token"] == keys[0]["token"]
    assert any("was lost" in warning for warning in result["lost"].get("warnings", []))
    assert sending.json()["token"] not in result.all_output


# --- resend_domain -------------------------------------------------------------------------------

def test_domain_added_once_verified_once_its_records_are_published_then_left_alone_and_deleted(sandbox, team):
    domain = new_domain()
    start = mark = last_seq(sandbox)
    first = run([dict(domain_task(sandbox, domain, "checked"), check_mode=True),
                 dict(domain_task(sandbox, domain), diff=True),
                 # Nothing published: a wait times out and lists what to publish, exactly.
                 domain_task(sandbox, domain, "waited", wait_for_verification=True, verification_timeout=1,
                             poll_interval=1)], team)
    checked = first["checked"]
    assert checked["changed"] is True and checked["verification_requested"] is True
    assert checked["domain"]["id"] is None
    added = first["domain"]
    assert added["changed"] is True and added["verification_requested"] is True and added["verified"] is False
    assert added["domain"]["status"] == "pending"
    assert added["diff"]["before"] == {} and added["diff"]["after"]["records"][0] == (
        "send.%s MX feedback-smtp.us-east-1.amazonses.com" % domain)
    assert [(r["record"], r["type"], r["fqdn"]) for r in added["records"][:2]] == [
        ("SPF", "MX", "send." + domain), ("SPF", "TXT", "send." + domain)]
    assert added["return_path_host"] == "send." + domain
    assert added["records"][2]["fqdn"] == added["dkim_selector"] + "._domainkey." + domain
    posts = calls(sandbox, mark, "POST")
    assert [(p["path"].split("/")[-1], p["json"]) for p in posts] == [
        ("domains", {"name": domain, "region": "us-east-1", "custom_return_path": "send"}), ("verify", None)]
    waited = first["waited"]
    assert waited["failed"] is True and "publish these records at the DNS host of %s" % domain in waited["msg"]
    assert "send.%s MX 10 feedback-smtp.us-east-1.amazonses.com" % domain in waited["msg"]

    sandbox.control("POST", "/resend/domains/publish-dns", {"api_key": team, "name": domain})
    mark = last_seq(sandbox)
    second = run([domain_task(sandbox, domain, "verified", wait_for_verification=True, poll_interval=1),
                  domain_task(sandbox, domain),
                  domain_task(sandbox, domain, "moved", region="eu-west-1"),
                  domain_task(sandbox, domain, "gone", state="absent"),
                  domain_task(sandbox, domain, "again", state="absent")], team)
    verified = second["verified"]
    assert verified["verified"] is True and verified["changed"] is False
    assert {r["status"] for r in verified["records"]} == {"verified"}
    assert second["domain"]["changed"] is False and second["domain"]["verification_requested"] is False
    assert second["moved"]["failed"] is True and "Resend cannot move a domain" in second["moved"]["msg"]
    assert second["gone"]["changed"] is True and second["again"]["changed"] is False
    # Reads only (a list and the domain per task), but for the one delete.
    assert [e["method"] for e in calls(sandbox, mark) if e["method"] != "GET"] == ["DELETE"]
    assert state_of(sandbox, team)["domains"] == []
    assert_requests_match_the_spec(calls(sandbox, start))


def test_a_public_mailbox_domain_is_refused_before_any_request_or_by_resend_itself(sandbox, team):
    # A public domain the collection's list lacks: Resend refuses it when it is added.
    theirs = next(domain for domain in PUBLIC_DOMAINS if domain not in PUBLIC_MAIL_DOMAINS)
    mark = last_seq(sandbox)
    result = run([domain_task(sandbox, "ro.ru", "ours"), domain_task(sandbox, theirs, "theirs")], team)
    ours = result["ours"]
    assert ours["failed"] is True and ours["public_domain"] is True
    assert "Resend cannot send mail From an address at ro.ru" in ours["msg"]
    refused = result["theirs"]
    assert refused["failed"] is True and refused["public_domain"] is True
    assert "is a public mailbox domain" in refused["msg"] and "Resend said:" in refused["msg"]
    # ro.ru sent nothing; the other one was listed, then refused when added.
    assert [(e["method"], e["status"]) for e in calls(sandbox, mark)] == [("GET", 200), ("POST", 403)]
    assert state_of(sandbox, team)["domains"] == []
