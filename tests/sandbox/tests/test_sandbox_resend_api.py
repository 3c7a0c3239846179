"""The sandbox's Resend emulator, exercised with plain HTTP, DNS queries and smtplib the way a client would,
plus its relay backend in-process."""

import http.client
import json
import secrets
import smtplib
import ssl
import time
import urllib.parse

import dns.resolver
import pytest
import requests
import yaml

from tests.sandbox.core import SandboxContext
from tests.sandbox.fixture import REPO_ROOT, SandboxControlError
from tests.sandbox.resend_api import (AUTH_REFUSED_REPLY, DEMO_RESEND_API_KEY, KEY_PATTERN, RESTRICTED_OTHER_REPLY,
                                      RESTRICTED_UNVERIFIED_REPLY, UNVERIFIED_REPLY, Domain, ResendApi, domain_records)

SPECS = REPO_ROOT.parent / "shared" / "specs"
TIMEOUT = 10


class Resend:
    """One emulated Resend team, called the way a client would."""

    def __init__(self, sandbox, api_key=None):
        self.sandbox = sandbox
        self.api_key = api_key or sandbox.control("POST", "/resend/accounts", {})["api_key"]

    def call(self, method, path, key=None, **kwargs):
        headers = {} if key is False else {"Authorization": "Bearer " + (key or self.api_key)}
        return requests.request(method, self.sandbox.url("resend_api") + path, headers=headers, timeout=TIMEOUT,
                                **kwargs)

    def state(self):
        return self.sandbox.control("GET", "/resend/accounts/" + self.api_key)

    def settings(self, **values):
        return self.sandbox.control("POST", "/resend/accounts/settings", {"api_key": self.api_key, **values})

    def new_domain(self, name=None, **fields):
        answer = self.call("POST", "/domains", json={"name": name or fresh_domain(), **fields})
        assert answer.status_code == 201, answer.text
        return answer.json()


def fresh_domain():
    return "r%s.karto.test" % secrets.token_hex(4)


@pytest.fixture
def team(sandbox):
    """A fresh team whose rate limit (5 requests a second) does not get in the way of a quick test."""
    created = Resend(sandbox)
    sandbox.control("POST", "/resend/rate-limit", {"api_key": created.api_key, "limit": 1000})
    return created


def error(answer):
    return answer.status_code, answer.json()


# --- authentication, User-Agent, rate limits --------------------------------------------------------

def test_missing_unknown_and_sending_only_keys_get_resends_error_shapes(team):
    assert error(team.call("GET", "/domains", key=False)) == (401, {
        "statusCode": 401, "message": "Missing API key in the authorization header", "name": "missing_api_key"})
    assert error(team.call("GET", "/domains", key="re_nobody")) == (403, {
        "statusCode": 403, "message": "API key is invalid", "name": "invalid_api_key"})
    sending = team.call("POST", "/api-keys", json={"name": "smtp", "permission": "sending_access"}).json()["token"]
    assert error(team.call("GET", "/api-keys", key=sending)) == (401, {
        "statusCode": 401, "message": "This API key is restricted to only send emails", "name": "restricted_api_key"})
    assert error(team.call("GET", "/nowhere")) == (404, {
        "statusCode": 404, "message": "The requested endpoint does not exist.", "name": "not_found"})


def test_a_request_without_user_agent_gets_cloudflares_403_1010(sandbox, team):
    url = urllib.parse.urlsplit(sandbox.url("resend_api"))
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT)
    connection.request("GET", "/domains", headers={"Authorization": "Bearer " + team.api_key})  # no User-Agent
    answer = connection.getresponse()
    assert (answer.status, answer.read()) == (403, b"error code: 1010")
    connection.close()


def test_every_answer_carries_ratelimit_headers_and_the_team_limit_gives_429_with_retry_after(sandbox):
    team = Resend(sandbox)
    answer = team.call("GET", "/domains")
    assert (answer.headers["ratelimit-limit"], answer.headers["ratelimit-policy"]) == ("5", "5;w=1")
    assert answer.headers["ratelimit-remaining"] == "4" and answer.headers["ratelimit-reset"] == "1"
    sandbox.control("POST", "/resend/rate-limit", {"api_key": team.api_key, "limit": 1, "window_seconds": 1})
    assert team.call("GET", "/domains").status_code == 200
    over = team.call("GET", "/api-keys")  # another endpoint: the limit is the team's
    assert error(over)[0] == 429 and over.json()["name"] == "rate_limit_exceeded"
    assert over.headers["retry-after"] == "1" and over.headers["ratelimit-remaining"] == "0"
    time.sleep(1.1)
    assert team.call("GET", "/api-keys").status_code == 200


def test_a_faulted_answer_carries_the_ratelimit_headers_and_resends_shape(sandbox, team):
    sandbox.inject_fault(service="resend_api", path_contains="/domains", action="status", status=503)
    answer = team.call("GET", "/domains")
    assert error(answer) == (503, {"statusCode": 503, "message": "Service Unavailable", "name": "application_error"})
    assert "ratelimit-reset" in answer.headers


# --- API keys -------------------------------------------------------------------------------------

def test_the_token_is_returned_once_and_lists_show_neither_token_nor_permission(team):
    created = team.call("POST", "/api-keys", json={"name": "smtp", "permission": "sending_access"})
    body = created.json()
    assert created.status_code == 201 and set(body) == {"id", "object", "token"} and KEY_PATTERN.match(body["token"])
    listed = team.call("GET", "/api-keys").json()
    assert listed["object"] == "list" and listed["has_more"] is False
    assert all(set(key) == {"id", "name", "created_at", "last_used_at"} for key in listed["data"])
    assert listed["data"][0]["id"] == body["id"]  # newest first
    assert body["token"] not in json.dumps(listed)
    # An empty name is accepted (recorded live); an unknown permission or domain is not.
    assert team.call("POST", "/api-keys", json={"name": ""}).status_code == 201
    assert error(team.call("POST", "/api-keys", json={"name": "x", "permission": "admin"}))[1]["name"] == "invalid_access"
    assert team.call("POST", "/api-keys", json={"name": "x", "permission": "sending_access",
                                                "domain_id": "00000000-0000-0000-0000-000000000000"}).status_code == 404
    deleted = team.call("DELETE", "/api-keys/" + body["id"])
    assert deleted.json() == {"object": "list", "id": body["id"], "deleted": True}
    assert error(team.call("DELETE", "/api-keys/" + body["id"])) == (404, {
        "statusCode": 404, "message": "API key not found", "name": "not_found"})


def test_lists_page_with_limit_and_cursors_newest_first(team):
    ids = [team.call("POST", "/api-keys", json={"name": "k%d" % i}).json()["id"] for i in range(4)]
    everything = [key["id"] for key in team.call("GET", "/api-keys").json()["data"]]
    assert everything[:4] == ids[::-1]
    first = team.call("GET", "/api-keys", params={"limit": 2}).json()
    assert [key["id"] for key in first["data"]] == everything[:2] and first["has_more"] is True
    rest = team.call("GET", "/api-keys", params={"limit": 100, "after": everything[1]}).json()
    assert [key["id"] for key in rest["data"]] == everything[2:] and rest["has_more"] is False
    back = team.call("GET", "/api-keys", params={"limit": 1, "before": everything[2]}).json()
    assert [key["id"] for key in back["data"]] == [everything[1]]
    assert team.call("GET", "/api-keys", params={"limit": 101}).status_code == 422


# --- domains and their verification -----------------------------------------------------------------

def test_a_domain_gets_resends_records_named_relative_to_the_registrable_domain(team):
    name = fresh_domain()
    body = team.new_domain(name, region="eu-west-1")
    assert body["status"] == "not_started" and body["region"] == "eu-west-1"
    label = name.split(".")[0]
    assert [(r["record"], r["type"], r["name"]) for r in body["records"][:2]] == [
        ("SPF", "MX", "send." + label), ("SPF", "TXT", "send." + label)]
    assert body["records"][0]["value"] == "feedback-smtp.eu-west-1.amazonses.com" and body["records"][0]["priority"] == 10
    assert body["records"][1]["value"] == '"v=spf1 include:amazonses.com ~all"'
    dkim = body["records"][2:]
    assert len(dkim) == 3 and all(r["type"] == "CNAME" and r["value"] == r["name"].split(".")[0] + ".dkim.amazonses.com."
                                  for r in dkim)
    listed = team.call("GET", "/domains").json()["data"]
    assert listed[0]["id"] == body["id"] and "records" not in listed[0]
    assert team.call("GET", "/domains/" + body["id"]).json()["object"] == "domain"
    # One per team; public mailbox domains and unknown regions are refused.
    assert error(team.call("POST", "/domains", json={"name": name}))[0] == 403
    public = team.call("POST", "/domains", json={"name": "ro.ru"})
    assert error(public)[0] == 403 and "public domain" in public.json()["message"]
    assert error(team.call("POST", "/domains", json={"name": fresh_domain(), "region": "mars"}))[1]["name"] == "invalid_region"
    assert team.call("DELETE", "/domains/" + body["id"]).json() == {"object": "domain", "id": body["id"], "deleted": True}
    assert team.call("GET", "/domains/" + body["id"]).status_code == 404


def test_verification_looks_the_records_up_in_the_sandbox_dns(sandbox, team):
    body = team.new_domain()
    assert team.call("POST", "/domains/%s/verify" % body["id"]).json() == {"object": "domain", "id": body["id"]}
    pending = team.call("GET", "/domains/" + body["id"]).json()
    assert pending["status"] == "pending" and {r["status"] for r in pending["records"]} == {"pending"}

    published = sandbox.control("POST", "/resend/domains/publish-dns", {"api_key": team.api_key, "name": body["name"]})
    assert len(published["published"]) == 5
    # The records are in the sandbox DNS for every client (the preflight's DMARC check among them).
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], sandbox.dns_port
    txt = resolver.resolve("send." + body["name"], "TXT")
    assert [b"".join(r.strings).decode() for r in txt] == ["v=spf1 include:amazonses.com ~all"]
    assert [str(r.exchange) for r in resolver.resolve("send." + body["name"], "MX")] == [
        "feedback-smtp.us-east-1.amazonses.com."]

    verified = team.call("GET", "/domains/" + body["id"]).json()
    assert verified["status"] == "verified" and {r["status"] for r in verified["records"]} == {"verified"}


def test_a_pending_domain_waits_for_its_check_and_fails_after_the_deadline(team):
    team.settings(verify_after_seconds=0.3, fail_after_seconds=0.6)
    body = team.new_domain()
    team.call("POST", "/domains/%s/verify" % body["id"])
    assert team.call("GET", "/domains/" + body["id"]).json()["status"] == "pending"
    time.sleep(0.7)
    failed = team.call("GET", "/domains/" + body["id"]).json()
    assert failed["status"] == "failed" and {r["status"] for r in failed["records"]} == {"failed"}
    # Asked again, it starts over.
    team.call("POST", "/domains/%s/verify" % body["id"])
    assert team.call("GET", "/domains/" + body["id"]).json()["status"] == "pending"


def test_auto_publish_and_the_zone_check_of_the_publish_control(sandbox, team):
    team.settings(auto_publish_dns=True)
    body = team.new_domain()
    team.call("POST", "/domains/%s/verify" % body["id"])
    assert team.call("GET", "/domains/" + body["id"]).json()["status"] == "verified"
    outside = Resend(sandbox)
    name = "mail.example.org"
    outside.new_domain(name)
    with pytest.raises(SandboxControlError):
        sandbox.control("POST", "/resend/domains/publish-dns", {"api_key": outside.api_key, "name": name})
    with pytest.raises(SandboxControlError):
        team.settings(typo=1)


def test_the_demo_team_is_seeded(sandbox):
    assert Resend(sandbox, api_key=DEMO_RESEND_API_KEY).call("GET", "/domains").status_code == 200


@pytest.mark.skipif(not SPECS.is_dir(), reason="../shared/specs is not present")
def test_answers_have_the_fields_of_the_spec_response_schemas(team):
    schemas = yaml.safe_load((SPECS / "resend-openapi.yaml").read_text())["components"]["schemas"]
    body = team.new_domain()
    assert set(body) <= set(schemas["CreateDomainResponse"]["properties"])
    record_fields = set(schemas["DomainRecord"]["properties"])
    assert all(set(record) <= record_fields for record in body["records"])
    assert set(team.call("GET", "/domains/" + body["id"]).json()) <= set(schemas["Domain"]["properties"])
    assert set(team.call("GET", "/domains").json()["data"][0]) <= set(schemas["ListDomainsItem"]["properties"])
    assert set(team.call("GET", "/api-keys").json()["data"][0]) == set(schemas["ApiKey"]["properties"])


# --- the relay backend ---------------------------------------------------------------------------

def test_relay_backend_in_process(tmp_path):
    api = ResendApi(SandboxContext(tmp_path))
    team = api._teams[api.add_team()["team_id"]]
    [backend] = api.context.relay_backends.all()
    assert backend.name == "resend" and backend.hosts == ("smtp.resend.com",)
    full = next(iter(team.keys.values()))
    assert backend.authenticate("apikey", full.token) is None  # not Resend's login
    assert backend.authenticate("resend", "re_revoked") == (False, AUTH_REFUSED_REPLY)
    ok, _reply, identity = backend.authenticate("resend", full.token)
    assert ok is True and identity == full.id
    domain = Domain("d1", "mail.karto.test", "us-east-1", domain_records("mail.karto.test", "us-east-1", "send"))
    team.domains[domain.id] = domain
    assert backend.sender_allowed(identity, "KARTO <noreply@mail.karto.test>") == (
        False, UNVERIFIED_REPLY % "mail.karto.test")
    domain.status = "verified"
    assert backend.sender_allowed(identity, "KARTO <NoReply@Mail.Karto.Test>")[0] is True
    assert backend.sender_allowed(identity, "a@sub.mail.karto.test")[0] is False  # each subdomain is its own
    restricted = api._new_key(team, "smtp", "sending_access", domain.id)
    assert backend.sender_allowed(restricted.id, "a@other.karto.test") == (
        False, RESTRICTED_OTHER_REPLY % ("mail.karto.test", "other.karto.test"))
    domain.status = "pending"
    assert backend.sender_allowed(restricted.id, "a@mail.karto.test") == (False, RESTRICTED_UNVERIFIED_REPLY)


def test_relay_session_refuses_an_unverified_from_domain_with_resends_550_after_the_data(sandbox, team):
    body = team.new_domain()
    key = team.call("POST", "/api-keys", json={"name": "smtp", "permission": "sending_access",
                                               "domain_id": body["id"]}).json()["token"]
    sender = "noreply@" + body["name"]
    context = ssl.create_default_context(cafile=sandbox.ca_cert)
    message = ("From: %s\r\nSubject: x\r\n\r\nx\r\n" % sender).encode()
    with smtplib.SMTP_SSL("127.0.0.1", sandbox.smtp_relay_port("implicit_tls"), context=context,
                          timeout=TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("resend", key[:-1] + ("A" if key[-1] != "A" else "B"))
        assert refused.value.smtp_code == 535 and refused.value.smtp_error == b"API key not found"
        client.login("resend", key)
        with pytest.raises(smtplib.SMTPDataError) as refused_at_data:
            client.sendmail(sender, ["x@karto-mail.ru"], message)
        assert refused_at_data.value.smtp_code == 550
        assert refused_at_data.value.smtp_error.decode() == RESTRICTED_UNVERIFIED_REPLY[4:]
    sandbox.control("POST", "/resend/domains/publish-dns", {"api_key": team.api_key, "name": body["name"]})
    team.call("POST", "/domains/%s/verify" % body["id"])
    with smtplib.SMTP_SSL("127.0.0.1", sandbox.smtp_relay_port("implicit_tls"), context=context,
                          timeout=TIMEOUT) as client:
        client.login("resend", key)
        recipient = "resend-%d@karto-mail.ru" % int(time.time() * 1000)
        assert client.sendmail(sender, [recipient], message.replace(b"Subject: x", b"Subject: ok")) == {}
    assert [mail["subject"] for mail in sandbox.inbox(recipient)] == ["ok"]
