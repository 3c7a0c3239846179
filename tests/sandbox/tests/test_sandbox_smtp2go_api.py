"""The sandbox's SMTP2GO API emulator, exercised with plain HTTP the way the collection's client will
use it, plus the interface the SMTP relay uses (in-process)."""

import math
import re
import time
import uuid

import pytest
import requests

from tests.sandbox.core import ControlApi, SandboxContext
from tests.sandbox.fixture import REPO_ROOT, Sandbox, SandboxControlError, running_sandbox
from tests.sandbox.seed import DEMO_SMTP2GO_API_KEY
from tests.sandbox.smtp2go_api import (ALL_ENDPOINTS, Smtp2goApi, parse_interval, password_entropy_bits,
                                       split_domain)

SPEC_PATH = REPO_ROOT.parent / "shared" / "specs" / "smtp2go-openapi.yml"
TIMEOUT = 10
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STRONG_PASSWORD = "correct horse battery staple"
NON_VALIDATING = "E_ApiResponseCodes.NON_VALIDATING_IN_PAYLOAD"
API_EXCEPTION = "E_ApiResponseCodes.API_EXCEPTION"
PERMISSION_DENIED = "E_ApiResponseCodes.ENDPOINT_PERMISSION_DENIED"
USER_KEYS = ["username", "sending_allowed", "custom_ratelimit", "custom_ratelimit_value", "custom_ratelimit_period",
             "default_ratelimit_value", "default_ratelimit_period", "description", "feedback_enabled",
             "feedback_domain", "feedback_html", "feedback_text", "archive_enabled", "open_tracking_enabled",
             "click_tracking_enabled", "audit_email", "bounce_notifications", "status"]


class Smtp2go:
    """One emulated SMTP2GO account, called the way a client would."""

    def __init__(self, base_url, api_key):
        self.base_url, self.api_key = base_url, api_key

    def call(self, endpoint, body=None, method="POST", api_key=None, in_body=False, **kwargs):
        key = api_key or self.api_key
        headers = {} if in_body else {"X-Smtp2go-Api-Key": key}
        if in_body:
            body = {**(body or {}), "api_key": key}
        return requests.request(method, self.base_url + endpoint, json=body if body is not None else {},
                                headers=headers, timeout=TIMEOUT, **kwargs)

    def ok(self, endpoint, body=None, method="POST"):
        response = self.call(endpoint, body, method)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert UUID_PATTERN.match(answer["request_id"])
        return answer["data"]

    def add_user(self, username=None, **fields):
        username = username or unique_username()
        return self.ok("/users/smtp/add", {"username": username, **fields})["results"][0]


def unique_username(prefix="relay"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def unique_address(domain="rambler.ru"):
    return f"karto.{uuid.uuid4().hex[:10]}@{domain}"


def unique_domain():
    return f"d{uuid.uuid4().hex[:10]}.example.com"


def assert_error(response, status, error_code, error=None, fieldname=None):
    assert response.status_code == status, response.text
    answer = response.json()
    assert UUID_PATTERN.match(answer["request_id"])
    assert answer["data"]["error_code"] == error_code
    if error is not None:
        assert answer["data"]["error"] == error
    if fieldname is not None:
        assert answer["data"]["field_validation_errors"]["fieldname"] == fieldname
        assert answer["data"]["field_validation_errors"]["message"].endswith(
            ", Please correct your JSON payload and try again.")
    return answer["data"]


def wait_for(condition, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def account(sandbox):
    return Smtp2go(sandbox.url("smtp2go_api"), sandbox.add_smtp2go_account())


# Basics: endpoint, seed, auth, permissions, envelopes


def test_endpoints_file_points_at_v3_and_the_demo_key_is_seeded(sandbox):
    assert re.match(r"^http://127\.0\.0\.1:\d+/v3$", sandbox.url("smtp2go_api"))
    assert re.match(r"^api-[A-Za-z0-9]{32}$", DEMO_SMTP2GO_API_KEY)

    demo = Smtp2go(sandbox.url("smtp2go_api"), DEMO_SMTP2GO_API_KEY)

    assert demo.ok("/api_keys/permissions") == list(ALL_ENDPOINTS)
    state = sandbox.smtp2go_account(DEMO_SMTP2GO_API_KEY)
    assert state["allowed_endpoints"] == list(ALL_ENDPOINTS)
    # Its users and senders are not asserted empty: the sandbox is shared by every test of a pytest
    # worker, and the module examples (tests/integration) use the demo account too.


@pytest.mark.skipif(not SPEC_PATH.exists(), reason=f"OpenAPI spec not present at {SPEC_PATH}")
def test_endpoint_list_is_the_specs():
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load(SPEC_PATH.read_text())
    assert list(ALL_ENDPOINTS) == list(spec["paths"])


def test_api_key_in_header_or_body(account):
    assert account.call("/users/smtp/view").status_code == 200
    assert account.call("/users/smtp/view", in_body=True).status_code == 200


@pytest.mark.parametrize("how", ["unknown header", "unknown body", "missing"])
def test_unknown_or_missing_key_is_401(account, how):
    if how == "missing":
        response = requests.post(account.base_url + "/users/smtp/view", json={}, timeout=TIMEOUT)
    else:
        response = account.call("/users/smtp/view", api_key="api-" + "x" * 32, in_body=how == "unknown body")

    assert_error(response, 401, API_EXCEPTION, "An API User matching the passed 'api_key' was not found")


def test_endpoint_outside_the_keys_permissions_is_403(sandbox):
    limited = Smtp2go(sandbox.url("smtp2go_api"),
                      sandbox.add_smtp2go_account(allowed_endpoints=["/users/smtp/view"]))

    assert limited.call("/users/smtp/view").status_code == 200
    assert_error(limited.call("/users/smtp/add", {"username": unique_username()}), 403, PERMISSION_DENIED,
                 "You do not have permission to access this API endpoint")
    # /api_keys/permissions "is available to all API Keys"
    assert limited.ok("/api_keys/permissions") == ["/users/smtp/view"]


def test_body_that_is_not_a_json_object_is_400(account):
    response = requests.post(account.base_url + "/users/smtp/view", data="not json",
                             headers={"X-Smtp2go-Api-Key": account.api_key, "Content-Type": "application/json"},
                             timeout=TIMEOUT)
    assert_error(response, 400, NON_VALIDATING)
    assert_error(account.call("/users/smtp/view", ["a list"]), 400, NON_VALIDATING)


def test_get_is_405_and_an_unemulated_endpoint_404_in_the_error_envelope(account):
    assert_error(account.call("/users/smtp/view", method="GET"), 405, API_EXCEPTION)
    data = assert_error(account.call("/email/send"), 404, API_EXCEPTION)
    assert "does not emulate" in data["error"]


# SMTP users


def test_add_user_returns_the_given_password_once(sandbox, account):
    username = unique_username()

    user = account.add_user(username, email_password=STRONG_PASSWORD, description="Supabase Auth")

    assert list(user) == ["username", "email_password", *USER_KEYS[1:]]
    assert user["email_password"] == STRONG_PASSWORD
    assert user["sending_allowed"] is True and user["status"] == "allowed"
    assert (user["custom_ratelimit"], user["custom_ratelimit_value"], user["custom_ratelimit_period"]) == \
        (False, None, "0:00:00")
    assert (user["default_ratelimit_value"], user["default_ratelimit_period"]) == (0, "unlimited")
    assert user["description"] == "Supabase Auth"
    assert user["bounce_notifications"] == "from" and user["audit_email"] is None
    viewed = account.ok("/users/smtp/view", {"username": username})
    assert viewed["results"] == [{key: value for key, value in user.items() if key != "email_password"}]
    assert "email_password" not in viewed["results"][0]
    stored = sandbox.smtp2go_account(account.api_key)["users"]
    assert [(u["username"], u["email_password"]) for u in stored] == [(username, STRONG_PASSWORD)]


@pytest.mark.parametrize("password", [None, ""])
def test_omitted_or_blank_password_is_generated(sandbox, account, password):
    fields = {} if password is None else {"email_password": password}

    user = account.add_user(**fields)

    assert len(user["email_password"]) >= 16
    assert password_entropy_bits(user["email_password"]) >= 128
    assert sandbox.smtp2go_account(account.api_key)["users"][0]["email_password"] == user["email_password"]


def test_view_lists_all_users_filters_by_contains_and_is_empty_for_a_new_account(sandbox, account):
    assert account.ok("/users/smtp/view") == {"results": [], "default_ratelimit_value": 0,
                                              "default_ratelimit_period": "unlimited"}
    base = unique_username()
    account.add_user(base)
    account.add_user(base + "-b")
    account.add_user(unique_username("other"))

    assert len(account.ok("/users/smtp/view")["results"]) == 3
    # The filter matches more than the exact name: a client must pick its user out itself.
    assert [u["username"] for u in account.ok("/users/smtp/view", {"username": base})["results"]] == \
        [base, base + "-b"]
    # Another account does not see them.
    other = Smtp2go(sandbox.url("smtp2go_api"), sandbox.add_smtp2go_account())
    assert other.ok("/users/smtp/view", {"username": base})["results"] == []


@pytest.mark.parametrize("body, fieldname", [
    ({}, "username"),
    ({"username": "abcd"}, "username"),
    ({"username": "x" * 101}, "username"),
    ({"username": "bad name!"}, "username"),
    ({"username": 12345}, "username"),
    ({"username": "{u}", "email_password": "Sh0rt!pw9"}, "email_password"),  # 9 chars: < 64 bits
    ({"username": "{u}", "email_password": "abcdefghijklm"}, "email_password"),  # 61 bits
    ({"username": "{u}", "status": "paused"}, "status"),
    ({"username": "{u}", "custom_ratelimit": "yes"}, "custom_ratelimit"),
    ({"username": "{u}", "custom_ratelimit": True, "custom_ratelimit_value": 0}, "custom_ratelimit_value"),
    ({"username": "{u}", "custom_ratelimit": True, "custom_ratelimit_period": "1 fortnight"},
     "custom_ratelimit_period"),
    ({"username": "{u}", "bounce_notifications": "bounce"}, "bounce_notifications"),
    ({"username": "{u}", "audit_email": "not-an-address"}, "audit_email"),
])
def test_add_user_validation_is_400_non_validating(sandbox, account, body, fieldname):
    body = {key: unique_username() if value == "{u}" else value for key, value in body.items()}

    assert_error(account.call("/users/smtp/add", body), 400, NON_VALIDATING, fieldname=fieldname)
    assert sandbox.smtp2go_account(account.api_key)["users"] == []


def test_weak_password_is_not_echoed(account):
    data = assert_error(account.call("/users/smtp/add", {"username": unique_username(), "email_password": "test123"}),
                        400, NON_VALIDATING, fieldname="email_password")
    assert "test123" not in str(data)


def test_username_is_unique_across_accounts(sandbox, account):
    username = unique_username()
    account.add_user(username)
    other = Smtp2go(sandbox.url("smtp2go_api"), sandbox.add_smtp2go_account())

    for client in (account, other):
        data = assert_error(client.call("/users/smtp/add", {"username": username}), 400, API_EXCEPTION)
        assert username in data["error"]


@pytest.mark.parametrize("period, shown", [
    ("1 hour", "1:00:00"),
    ("2 hours", "2:00:00"),
    ("1 day", "1 day, 0:00:00"),
    ("2 days", "2 days, 0:00:00"),
    ("1 week", "7 days, 0:00:00"),
    ("1 month", "30 days, 0:00:00"),
    ("0:30:00", "0:30:00"),
    ("4 months 5:00:00", "120 days, 5:00:00"),
    ("2 months,3:00:00", "60 days, 3:00:00"),
])
def test_custom_ratelimit_period_is_shown_in_timedelta_form(account, period, shown):
    user = account.add_user(custom_ratelimit=True, custom_ratelimit_value=100, custom_ratelimit_period=period)

    assert (user["custom_ratelimit"], user["custom_ratelimit_value"], user["custom_ratelimit_period"]) == \
        (True, 100, shown)


def test_custom_ratelimit_values_are_not_stored_while_it_is_off(account):
    user = account.add_user(custom_ratelimit_value=100, custom_ratelimit_period="1 day")

    assert (user["custom_ratelimit"], user["custom_ratelimit_value"], user["custom_ratelimit_period"]) == \
        (False, None, "0:00:00")


def test_post_edit_resets_omitted_fields_and_keeps_the_password(sandbox, account):
    user = account.add_user(email_password=STRONG_PASSWORD, description="relay", status="sandbox",
                            custom_ratelimit=True, custom_ratelimit_value=50, custom_ratelimit_period="1 hour",
                            open_tracking_enabled=True, audit_email="audit@example.com")

    edited = account.ok("/users/smtp/edit", {"username": user["username"], "feedback_enabled": True})["results"][0]

    assert "email_password" not in edited
    assert edited["feedback_enabled"] is True
    assert (edited["description"], edited["status"], edited["sending_allowed"]) == ("", "allowed", True)
    assert (edited["custom_ratelimit"], edited["custom_ratelimit_value"], edited["custom_ratelimit_period"]) == \
        (False, None, "0:00:00")
    assert (edited["open_tracking_enabled"], edited["audit_email"]) == (False, None)
    assert sandbox.smtp2go_account(account.api_key)["users"][0]["email_password"] == STRONG_PASSWORD


def test_patch_edit_keeps_omitted_fields_and_answers_a_list(sandbox, account):
    user = account.add_user(email_password=STRONG_PASSWORD, description="relay", custom_ratelimit=True,
                            custom_ratelimit_value=50, custom_ratelimit_period="1 day")

    data = account.ok("/users/smtp/edit", {"username": user["username"], "status": "blocked",
                                           "description": None}, method="PATCH")

    assert isinstance(data, list) and len(data) == 1
    patched = data[0]
    assert "email_password" not in patched
    assert (patched["status"], patched["sending_allowed"]) == ("blocked", False)
    assert patched["description"] == "relay"
    assert (patched["custom_ratelimit_value"], patched["custom_ratelimit_period"]) == (50, "1 day, 0:00:00")
    assert account.ok("/users/smtp/view", {"username": user["username"]})["results"] == data
    assert sandbox.smtp2go_account(account.api_key)["users"][0]["email_password"] == STRONG_PASSWORD


def test_patch_sets_a_new_password_or_generates_one_for_blank(sandbox, account):
    user = account.add_user(email_password=STRONG_PASSWORD)
    new_password = "another correct horse battery staple"

    patched = account.ok("/users/smtp/edit", {"username": user["username"], "email_password": new_password},
                         method="PATCH")[0]

    assert "email_password" not in patched
    assert sandbox.smtp2go_account(account.api_key)["users"][0]["email_password"] == new_password
    generated = account.ok("/users/smtp/edit", {"username": user["username"], "email_password": ""},
                           method="PATCH")[0]["email_password"]
    assert len(generated) >= 16
    assert sandbox.smtp2go_account(account.api_key)["users"][0]["email_password"] == generated


def test_patch_validates_like_add(account):
    user = account.add_user()
    assert_error(account.call("/users/smtp/edit", {"username": user["username"], "status": "on"}, method="PATCH"),
                 400, NON_VALIDATING, fieldname="status")
    assert_error(account.call("/users/smtp/edit", {"status": "allowed"}, method="PATCH"),
                 400, NON_VALIDATING, fieldname="username")


@pytest.mark.parametrize("endpoint, method", [
    ("/users/smtp/edit", "POST"), ("/users/smtp/edit", "PATCH"), ("/users/smtp/remove", "POST")])
def test_edit_or_remove_of_a_missing_user_is_api_exception(sandbox, account, endpoint, method):
    foreign = unique_username()
    Smtp2go(sandbox.url("smtp2go_api"), sandbox.add_smtp2go_account()).add_user(foreign)

    for username in (unique_username(), foreign):  # unknown, and another account's
        data = assert_error(account.call(endpoint, {"username": username}, method=method), 400, API_EXCEPTION)
        assert "doesn't exist" in data["error"]


def test_remove_returns_the_user_and_frees_the_username(sandbox, account):
    user = account.add_user()

    removed = account.ok("/users/smtp/remove", {"username": user["username"]})

    assert removed["results"][0]["username"] == user["username"]
    assert "email_password" not in removed["results"][0]
    assert account.ok("/users/smtp/view")["results"] == []
    account.add_user(user["username"])


# Single sender emails


def test_single_sender_add_sends_one_verification_mail_per_add_until_verified(sandbox, account):
    address = unique_address()

    response = account.call("/single_sender_emails/add", {"email_address": address, "message": "Hi Karto"})

    assert response.status_code == 200
    assert UUID_PATTERN.match(response.json()["request_id"])
    assert account.ok("/single_sender_emails/view")["senders"] == [{"email_address": address, "verified": False}]
    sender = sandbox.smtp2go_account(account.api_key)["senders"][0]
    assert sender["verification_mail_count"] == 1
    mail = sender["verification_mails"][0]
    assert (mail["to"], mail["message"]) == (address, "Hi Karto")
    assert mail["token"] and abs(mail["time"] - time.time()) < 60

    account.ok("/single_sender_emails/add", {"email_address": address})  # not verified yet: re-sent
    assert sandbox.smtp2go_account(account.api_key)["senders"][0]["verification_mail_count"] == 2

    sandbox.verify_smtp2go_sender(account.api_key, address)
    account.ok("/single_sender_emails/add", {"email_address": address})  # verified: no mail
    sender = sandbox.smtp2go_account(account.api_key)["senders"][0]
    assert (sender["verified"], sender["verified_by"], sender["verification_mail_count"]) == (True, "click", 2)
    assert account.ok("/single_sender_emails/view")["senders"] == [{"email_address": address, "verified": True}]


def test_single_sender_view_has_request_id_in_data_and_filters(account):
    first, second = unique_address(), unique_address("example.org")
    for address in (first, second):
        account.ok("/single_sender_emails/add", {"email_address": address})

    answer = account.call("/single_sender_emails/view", {"email_address": "example.org"}).json()

    assert answer["data"]["request_id"] == answer["request_id"]
    assert answer["data"]["senders"] == [{"email_address": second, "verified": False}]
    assert len(account.ok("/single_sender_emails/view")["senders"]) == 2


def test_verification_by_the_mails_token(sandbox, account):
    address = unique_address()
    account.ok("/single_sender_emails/add", {"email_address": address})
    token = sandbox.smtp2go_account(account.api_key)["senders"][0]["verification_mails"][0]["token"]

    sender = sandbox.verify_smtp2go_sender(token=token)

    assert (sender["email_address"], sender["verified"], sender["verified_by"]) == (address, True, "token")
    with pytest.raises(SandboxControlError, match="404"):
        sandbox.verify_smtp2go_sender(token="no-such-token")


def test_single_sender_remove_and_remove_of_a_missing_one(account):
    address = unique_address()
    account.ok("/single_sender_emails/add", {"email_address": address})

    assert account.ok("/single_sender_emails/remove", {"email_address": address}) == "OK"
    assert account.ok("/single_sender_emails/view")["senders"] == []
    assert_error(account.call("/single_sender_emails/remove", {"email_address": address}), 400, API_EXCEPTION,
                 "Failed to remove the single sender email - An error occurred deleting sender email "
                 f"{address} or it doesn't exist")


@pytest.mark.parametrize("body", [{}, {"email_address": "not an address"}, {"email_address": 7}])
def test_single_sender_address_validation(account, body):
    assert_error(account.call("/single_sender_emails/add", body), 400, NON_VALIDATING, fieldname="email_address")


def test_auto_verify_clicks_the_link_after_the_delay(sandbox, account):
    slow = unique_address()
    sandbox.set_smtp2go_auto_verify(3600, api_key=account.api_key)
    account.ok("/single_sender_emails/add", {"email_address": slow})
    sandbox.set_smtp2go_auto_verify(0.2, api_key=account.api_key)
    quick = unique_address()

    account.ok("/single_sender_emails/add", {"email_address": quick})

    def verified():
        return {s["email_address"]: s["verified"] for s in account.ok("/single_sender_emails/view")["senders"]}
    assert wait_for(lambda: verified()[quick]) is True
    assert verified()[slow] is False
    sender = next(s for s in sandbox.smtp2go_account(account.api_key)["senders"] if s["email_address"] == quick)
    assert sender["verified_by"] == "auto"
    assert sandbox.smtp2go_account(account.api_key)["auto_verify_after_seconds"] == 0.2


def test_auto_verify_for_every_account_is_the_default(sandbox):
    sandbox.set_smtp2go_auto_verify(0.1)
    try:
        client = Smtp2go(sandbox.url("smtp2go_api"), sandbox.add_smtp2go_account())
        client.ok("/single_sender_emails/add", {"email_address": unique_address()})
        assert wait_for(lambda: client.ok("/single_sender_emails/view")["senders"][0]["verified"]) is True
    finally:
        sandbox.set_smtp2go_auto_verify(None)


# Sender domains


def test_domain_add_returns_the_records_to_publish(account):
    fulldomain = unique_domain()

    data = account.ok("/domain/add", {"domain": fulldomain.upper()})

    [entry] = data["domains"]
    domain = entry["domain"]
    assert (domain["fulldomain"], domain["subdomain"], domain["domain"], domain["suffix"]) == \
        (fulldomain, fulldomain.split(".", maxsplit=1)[0], "example", "com")
    assert re.match(r"^s\d{6}$", domain["dkim_selector"])
    assert domain["rpath_selector"] == "em" + domain["dkim_selector"][1:]
    assert (domain["dkim_value"], domain["rpath_value"]) == ("dkim.smtp2go.net", "return.smtp2go.net")
    assert (domain["dkim_verified"], domain["rpath_verified"]) == (False, False)
    assert (domain["dkim_status"], domain["rpath_status"]) == ("", "")
    assert domain["setup_link"].startswith("https://")
    [tracker] = entry["trackers"]
    assert tracker["fulldomain"] == f"link.{fulldomain}"
    assert (tracker["cname_verified"], tracker["enabled"]) == (False, False)


def test_domain_verifies_only_once_dns_is_published(sandbox, account):
    fulldomain = unique_domain()
    account.ok("/domain/add", {"domain": fulldomain})

    unverified = account.ok("/domain/verify", {"domain": fulldomain})["domains"][0]["domain"]
    assert (unverified["dkim_verified"], unverified["rpath_verified"]) == (False, False)

    sandbox.verify_smtp2go_domain_dns(account.api_key, fulldomain)
    assert account.ok("/domain/view", {"domain": fulldomain})["domains"][0]["domain"]["dkim_verified"] is False
    verified = account.ok("/domain/verify", {"domain": fulldomain})["domains"][0]
    assert (verified["domain"]["dkim_verified"], verified["domain"]["rpath_verified"]) == (True, True)
    assert (verified["trackers"][0]["cname_verified"], verified["trackers"][0]["cname_value"]) == \
        (True, "track.smtp2go.net")
    assert account.ok("/domain/view", {"domain": fulldomain})["domains"][0]["domain"]["dkim_verified"] is True
    state = sandbox.smtp2go_account(account.api_key)["domains"][0]
    assert (state["dns_published"], state["verified"]) == (True, True)


def test_domain_view_setup_link_and_filter(account):
    first, second = unique_domain(), unique_domain()
    for fulldomain in (first, second):
        account.ok("/domain/add", {"domain": fulldomain, "auto_verify": False,
                                   "tracking_subdomain": "track", "returnpath_subdomain": "bounces"})

    both = account.ok("/domain/view")["domains"]
    one = account.ok("/domain/view", {"domain": second})["domains"]

    assert [d["domain"]["fulldomain"] for d in both] == [first, second]
    assert {d["domain"]["setup_link"] for d in both} == {"unavailable"}
    assert [d["domain"]["fulldomain"] for d in one] == [second]
    assert one[0]["domain"]["setup_link"] != "unavailable"
    assert one[0]["domain"]["rpath_selector"] == "bounces"
    assert one[0]["trackers"][0]["fulldomain"] == f"track.{second}"
    assert one[0]["subaccount_access"] == {"subaccounts": [], "future_subaccounts": False}


def test_domain_add_twice_verify_or_remove_missing(account):
    fulldomain = unique_domain()
    account.ok("/domain/add", {"domain": fulldomain})

    assert_error(account.call("/domain/add", {"domain": fulldomain}), 400, API_EXCEPTION,
                 f"A sender domain matching the passed value of {fulldomain} already exists")
    assert account.ok("/domain/remove", {"domain": fulldomain}) == {"domains": []}
    assert account.ok("/domain/view")["domains"] == []
    for endpoint in ("/domain/verify", "/domain/remove"):
        data = assert_error(account.call(endpoint, {"domain": fulldomain}), 400, API_EXCEPTION)
        assert "doesn't exist" in data["error"]


@pytest.mark.parametrize("value", [None, "", "localhost", "exa mple.com", "-bad.com", "example.123", 42])
def test_domain_validation(account, value):
    body = {} if value is None else {"domain": value}
    assert_error(account.call("/domain/add", body), 400, NON_VALIDATING, fieldname="domain")


@pytest.mark.parametrize("fulldomain, parts", [
    ("example.com", (None, "example", "com")),
    ("mail.example.com", ("mail", "example", "com")),
    ("a.b.example.com", ("a.b", "example", "com")),
    ("example.co.uk", (None, "example", "co.uk")),
    ("mail.example.co.uk", ("mail", "example", "co.uk")),
])
def test_split_domain(fulldomain, parts):
    assert split_domain(fulldomain) == parts


# Rate limit, faults, journal


def test_rate_limit_per_key_answers_429_without_headers(sandbox, account):
    other = Smtp2go(sandbox.url("smtp2go_api"), sandbox.add_smtp2go_account())
    assert sandbox.set_smtp2go_rate_limit(account.api_key, 3) == {"limit": 3, "window_seconds": 60}

    statuses = [account.call("/users/smtp/view").status_code for _attempt in range(3)]
    limited = account.call("/users/smtp/view")

    assert statuses == [200, 200, 200]
    assert_error(limited, 429, "E_ApiResponseCodes.RATE_LIMIT_EXCEEDED")
    assert not [name for name in limited.headers if name.lower().startswith("x-ratelimit")]
    assert other.call("/users/smtp/view").status_code == 200
    assert sandbox.set_smtp2go_rate_limit(account.api_key, None) == {"limit": 300, "window_seconds": 60}
    assert account.call("/users/smtp/view").status_code == 200


def test_faults_answer_in_the_error_envelope_and_are_journaled(sandbox, account):
    sandbox.inject_fault(service="smtp2go_api", path_contains="/users/smtp/view", action="status", status=503)

    response = account.call("/users/smtp/view")

    assert_error(response, 503, API_EXCEPTION, "Service Unavailable")
    assert account.call("/users/smtp/view").status_code == 200
    entries = sandbox.journal(service="smtp2go_api", path_contains="/v3/users/smtp/view")
    assert [(e["status"], e["fault"]) for e in entries[-2:]] == [(503, True), (200, False)]
    assert all("X-Smtp2go-Api-Key" not in e["headers"] for e in entries)


# Control API


def test_control_api_errors(sandbox):
    with pytest.raises(SandboxControlError, match="400"):
        sandbox.add_smtp2go_account(api_key="api-short")
    with pytest.raises(SandboxControlError, match="400"):
        sandbox.add_smtp2go_account(allowed_endpoints=["users/smtp/add"])
    with pytest.raises(SandboxControlError, match="404"):
        sandbox.smtp2go_account("api-" + "0" * 32)
    key = sandbox.add_smtp2go_account()
    with pytest.raises(SandboxControlError, match="404"):
        sandbox.verify_smtp2go_sender(key, "nobody@example.com")
    with pytest.raises(SandboxControlError, match="404"):
        sandbox.verify_smtp2go_domain_dns(key, "example.com")
    with pytest.raises(SandboxControlError, match="400"):
        sandbox.set_smtp2go_rate_limit(key, 0)


def test_control_add_account_with_a_given_key_is_idempotent(sandbox):
    key = "api-" + uuid.uuid4().hex
    assert sandbox.add_smtp2go_account(api_key=key) == key
    Smtp2go(sandbox.url("smtp2go_api"), key).add_user()

    assert sandbox.add_smtp2go_account(api_key=key, allowed_endpoints=["/users/smtp/view"]) == key

    state = sandbox.smtp2go_account(key)
    assert len(state["users"]) == 1
    assert state["allowed_endpoints"] == ["/users/smtp/view"]


# Interface for the SMTP relay (in-process, as the relay calls it)


@pytest.fixture
def local(tmp_path):
    """An in-process SMTP2GO emulator (and its control API) without the seed."""
    context = SandboxContext(tmp_path)
    service = Smtp2goApi(context)
    control = ControlApi(context)
    endpoints = {**service.start(), **control.start()}
    local_sandbox = Sandbox(endpoints)
    try:
        yield service, local_sandbox
    finally:
        local_sandbox.close()
        control.stop()
        service.stop()


def test_authenticate(local):
    service, local_sandbox = local
    client = Smtp2go(local_sandbox.url("smtp2go_api"), local_sandbox.add_smtp2go_account())
    allowed = client.add_user("relay-allowed", email_password=STRONG_PASSWORD)["username"]
    sandboxed = client.add_user("relay-sandbox", email_password=STRONG_PASSWORD, status="sandbox")["username"]
    blocked = client.add_user("relay-blocked", email_password=STRONG_PASSWORD, status="blocked")["username"]

    assert service.authenticate(allowed, STRONG_PASSWORD) == (True, "235 Authentication succeeded")
    assert service.authenticate(sandboxed, STRONG_PASSWORD)[0] is True
    refused = (False, "535 Incorrect authentication data")
    assert service.authenticate(allowed, STRONG_PASSWORD + "x") == refused
    assert service.authenticate(blocked, STRONG_PASSWORD) == refused
    assert service.authenticate(allowed, None) == refused
    # Not an SMTP user of this emulator: not its login (the relay asks the other backends, then
    # answers with SMTP2GO's unknown_login_reply).
    assert service.authenticate("nobody-here", STRONG_PASSWORD) is None
    assert client.api_key and service.authenticate(client.api_key, STRONG_PASSWORD) is None
    assert [service.user_status(name) for name in (allowed, sandboxed, blocked, "nobody-here")] == \
        ["allowed", "sandbox", "blocked", None]


def test_sender_allowed(local):
    service, local_sandbox = local
    key = local_sandbox.add_smtp2go_account()
    client = Smtp2go(local_sandbox.url("smtp2go_api"), key)
    username = client.add_user("relay-user")["username"]
    other = Smtp2go(local_sandbox.url("smtp2go_api"), local_sandbox.add_smtp2go_account())
    other.ok("/single_sender_emails/add", {"email_address": "elsewhere@example.net"})
    local_sandbox.verify_smtp2go_sender(other.api_key, "elsewhere@example.net")
    client.ok("/single_sender_emails/add", {"email_address": "Karto.Help@rambler.ru"})

    ok, reply = service.sender_allowed(username, "karto.help@rambler.ru")
    assert not ok
    assert reply == ("550-From header sender domain not verified (rambler.ru)\r\n"
                     "550-On your Sending > Verified Senders page\r\n"
                     "550 verify the sender domain or email to be allowed to send.")

    local_sandbox.verify_smtp2go_sender(key, "karto.help@rambler.ru")
    for mail_from in ("karto.help@rambler.ru", "<KARTO.HELP@rambler.ru>", "Karto <karto.help@rambler.ru>"):
        assert service.sender_allowed(username, mail_from) == (True, "250 OK"), mail_from
    assert service.sender_allowed(username, "someone.else@rambler.ru")[0] is False
    assert service.sender_allowed(username, "elsewhere@example.net")[0] is False  # another account's sender
    assert service.sender_allowed("nobody-here", "karto.help@rambler.ru")[0] is False

    client.ok("/domain/add", {"domain": "karto.example"})
    assert service.sender_allowed(username, "noreply@karto.example")[0] is False
    local_sandbox.verify_smtp2go_domain_dns(key, "karto.example")
    client.ok("/domain/verify", {"domain": "karto.example"})
    assert service.sender_allowed(username, "noreply@karto.example") == (True, "250 OK")
    assert service.sender_allowed(username, "noreply@sub.karto.example")[0] is False


def test_registers_smtp2go_s_relay_backend(local):
    service, _local_sandbox = local
    [backend] = service.context.relay_backends.all()

    assert backend.hosts == ("mail.smtp2go.com",)
    # "SSL: 465, 8465 and 443; TLS (or no encryption): 25, 2525, 8025, 587 and 80" (docs/smtp-relay)
    assert {port for port, mode in backend.ports.items() if mode == "implicit_tls"} == {465, 8465, 443}
    assert {port for port, mode in backend.ports.items() if mode == "starttls"} == {25, 2525, 8025, 587, 80}
    assert backend.sender_check == "end_of_data"  # observed: "From header sender domain not verified"
    assert backend.unknown_login_reply == "535 Incorrect authentication data"
    assert service.context.relay_backends.for_host("MAIL.SMTP2GO.COM") is backend


def test_sender_allowed_follows_auto_verify(local):
    service, local_sandbox = local
    key = local_sandbox.add_smtp2go_account()
    client = Smtp2go(local_sandbox.url("smtp2go_api"), key)
    username = client.add_user("relay-auto")["username"]
    local_sandbox.set_smtp2go_auto_verify(0.1, api_key=key)

    client.ok("/single_sender_emails/add", {"email_address": "karto.help@rambler.ru"})

    assert wait_for(lambda: service.sender_allowed(username, "karto.help@rambler.ru")[0]) is True


# Helpers


def test_parse_interval_and_entropy():
    assert str(parse_interval("1 hour")) == "1:00:00"
    assert parse_interval("soon") is None and parse_interval("") is None
    assert password_entropy_bits("Aa1!Aa1!A") < 64 <= password_entropy_bits("Aa1!Aa1!Aa")
    assert math.isclose(password_entropy_bits("abcdefghijklmn"), 14 * math.log2(26))


def test_unseeded_sandbox_has_no_demo_account(tmp_path):
    with running_sandbox(tmp_path, seed="none") as unseeded:
        response = Smtp2go(unseeded.url("smtp2go_api"), DEMO_SMTP2GO_API_KEY).call("/api_keys/permissions")
        assert_error(response, 401, API_EXCEPTION)
    assert "Traceback" not in (tmp_path / "sandbox.log").read_text()
