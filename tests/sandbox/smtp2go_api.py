"""Emulated SMTP2GO API v3: SMTP users, single sender emails, sender domains and API key
permissions, as the collection's SMTP2GO modules and `make demo` use them. It registers SMTP2GO's
relay backend (`RELAY_HOSTS`, `RELAY_PORTS`, `authenticate`, `sender_allowed`, refusal at the end of
DATA; see core.RelayBackend), through which the SMTP relay and the emulated Supabase Auth use it.

Behaviour follows ../shared/reference/providers-smtp2go-resend-mailgun.md section 1 and the
SMTP2GO OpenAPI fragments (../shared/specs/smtp2go-openapi.yml); README.md in this folder lists
it, and says which details are assumed.
"""

import datetime
import email.utils
import hmac
import math
import re
import secrets
import string
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

from .core import (END_OF_DATA, IMPLICIT_TLS, STARTTLS, FixedWindowRateLimiter, HttpError, HttpService,
                   RelayBackend, Response, auto_verify_delay, control_route, json_object, rate_limit_setting, route)
from .seed import DEMO_SMTP2GO_API_KEY

BASE_PATH = "/v3"

# Every endpoint of the API (the spec's paths), in spec order: the permission list of a key
# created with all endpoints allowed, as `POST /api_keys/permissions` reports it.
ALL_ENDPOINTS = (
    "/activity/search",
    "/allowed_recipients/add", "/allowed_recipients/remove", "/allowed_recipients/update",
    "/allowed_recipients/view",
    "/allowed_senders/add", "/allowed_senders/remove", "/allowed_senders/update", "/allowed_senders/view",
    "/api_keys/add", "/api_keys/edit", "/api_keys/permissions", "/api_keys/remove", "/api_keys/view",
    "/archive/email", "/archive/search",
    "/dedicated_ips/view",
    "/domain/add", "/domain/remove", "/domain/returnpath", "/domain/subaccount_access", "/domain/tracking",
    "/domain/verify", "/domain/view",
    "/email/batch", "/email/mime", "/email/scheduled/remove", "/email/scheduled/search", "/email/send",
    "/ip_allow_list", "/ip_allow_list/add", "/ip_allow_list/edit", "/ip_allow_list/remove",
    "/ip_allow_list/view",
    "/ip_auth/edit", "/ip_auth/remove", "/ip_auth/view",
    "/single_sender_emails/add", "/single_sender_emails/remove", "/single_sender_emails/view",
    "/sms/send", "/sms/summary", "/sms/view-received", "/sms/view-sent",
    "/stats/email_bounces", "/stats/email_cycle", "/stats/email_history", "/stats/email_spam",
    "/stats/email_summary", "/stats/email_unsubs",
    "/subaccount/add", "/subaccount/close", "/subaccount/edit", "/subaccount/reopen", "/subaccounts/search",
    "/suppression/add", "/suppression/remove", "/suppression/view",
    "/template/add", "/template/delete", "/template/edit", "/template/search", "/template/view",
    "/users/smtp/add", "/users/smtp/edit", "/users/smtp/remove", "/users/smtp/view",
    "/webhook/add", "/webhook/edit", "/webhook/remove", "/webhook/view",
)
# "This endpoint is available to all API Keys."
ALWAYS_ALLOWED = {"/api_keys/permissions"}

API_KEY_PATTERN = re.compile(r"^api-[A-Za-z0-9]{32}$")
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9._\-@]{5,100}$")
EMAIL_PATTERN = re.compile(
    r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
DOMAIN_LABEL_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
USER_STATUSES = ("allowed", "blocked", "sandbox")

# Requests per key and window before 429 (assumed: SMTP2GO documents 429, not its limits or body).
RATE_LIMIT = 300
RATE_LIMIT_WINDOW_SECONDS = 60

ERR_API_EXCEPTION = "E_ApiResponseCodes.API_EXCEPTION"
ERR_NON_VALIDATING = "E_ApiResponseCodes.NON_VALIDATING_IN_PAYLOAD"
ERR_PERMISSION_DENIED = "E_ApiResponseCodes.ENDPOINT_PERMISSION_DENIED"
ERR_RATE_LIMITED = "E_ApiResponseCodes.RATE_LIMIT_EXCEEDED"  # assumed

# Observed texts (see README for sources).
UNKNOWN_KEY_TEXT = "An API User matching the passed 'api_key' was not found"
PERMISSION_DENIED_TEXT = "You do not have permission to access this API endpoint"
NON_VALIDATING_TEXT = (
    "An error occurred processing the json data you sent with the request. Please make sure the data "
    "conforms to the specification for this call (see the documentation here: "
    "https://developers.smtp2go.com/reference/introduction) and try again. Don't forget to set "
    "Content-Type to 'application/json'."
)
CORRECT_YOUR_PAYLOAD = ", Please correct your JSON payload and try again."

# SMTP2GO's relay: "mail.smtp2go.com"; "SSL: 465, 8465 and 443; TLS (or no encryption): 25, 2525,
# 8025, 587 and 80" (developers.smtp2go.com/docs/smtp-relay). The address is TEST-NET-3, standing in
# for SMTP2GO's in Go's dial errors.
RELAY_HOSTS = ("mail.smtp2go.com",)
RELAY_PORTS = {465: IMPLICIT_TLS, 8465: IMPLICIT_TLS, 443: IMPLICIT_TLS,
               25: STARTTLS, 2525: STARTTLS, 8025: STARTTLS, 587: STARTTLS, 80: STARTTLS}
RELAY_ADDRESS = "203.0.113.25"
# SMTP2GO refuses an unverified sender after the message, on its From header ("550-From header
# sender domain not verified", observed 2022 and 2026: see README, SMTP2GO section).
RELAY_SENDER_CHECK = END_OF_DATA

# What the relay answers (observed SMTP2GO / Exim texts; see README).
AUTH_OK_REPLY = "235 Authentication succeeded"
AUTH_FAILED_REPLY = "535 Incorrect authentication data"
SENDER_OK_REPLY = "250 OK"

DKIM_TARGET = "dkim.smtp2go.net"
RPATH_TARGET = "return.smtp2go.net"
TRACKING_TARGET = "track.smtp2go.net"
DEFAULT_TRACKING_SUBDOMAIN = "link"
# Public suffixes of more than one label that the domain/suffix split knows (no full PSL here).
MULTI_LABEL_SUFFIXES = {
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "com.au", "net.au", "org.au",
    "co.nz", "org.nz", "co.jp", "ne.jp", "or.jp", "com.br", "com.cn", "com.tr", "com.mx", "co.za",
    "co.in", "com.sg", "com.hk", "co.kr", "com.ar", "com.ua", "msk.ru", "spb.ru", "com.ru",
}

# Python's timedelta string form is how SMTP2GO prints intervals ("0:00:00"); months count 30 days,
# as Python database drivers convert a PostgreSQL interval (assumed).
_INTERVAL_PATTERN = re.compile(
    r"^\s*(?:(?P<count>\d+)\s*(?P<unit>hours?|days?|weeks?|months?)\s*,?\s*)?"
    r"(?:(?P<h>\d{1,3}):(?P<m>[0-5]\d):(?P<s>[0-5]\d))?\s*$",
    re.IGNORECASE,
)
_UNIT_DAYS = {"hour": None, "day": 1, "week": 7, "month": 30}

_PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!#%*+-=?@^_"


class ApiError(HttpError):
    """An SMTP2GO error answer: `{"request_id", "data": {"error", "error_code"[, "field_validation_errors"]}}`."""

    def __init__(self, status, message, error_code, headers=None, field_errors=None):
        super().__init__(status, message, headers)
        self.error_code = error_code
        self.field_errors = field_errors


def field_error(fieldname, message):
    """400 NON_VALIDATING_IN_PAYLOAD about one request field (the documented shape)."""
    return ApiError(HTTPStatus.BAD_REQUEST, NON_VALIDATING_TEXT, ERR_NON_VALIDATING, field_errors={
        "fieldname": fieldname, "message": message + CORRECT_YOUR_PAYLOAD})


def api_exception(message):
    return ApiError(HTTPStatus.BAD_REQUEST, message, ERR_API_EXCEPTION)


def new_api_key():
    return "api-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


def generated_password():
    """24 characters, at least one of each class: well over the 128 bits SMTP2GO generates."""
    while True:
        password = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(24))
        if (any(c.islower() for c in password) and any(c.isupper() for c in password)
                and any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)):
            return password


def password_entropy_bits(password):
    """length × log2(size of the character classes used): lower 26, upper 26, digits 10, other 33."""
    pool = 0
    pool += 26 if any(c.islower() for c in password) else 0
    pool += 26 if any(c.isupper() for c in password) else 0
    pool += 10 if any(c.isdigit() for c in password) else 0
    pool += 33 if any(not c.isalnum() for c in password) else 0
    return len(password) * math.log2(pool) if pool else 0.0


def parse_interval(text):
    """"1 hour" → timedelta(hours=1), "2 days 3:00:00", "0:30:00"; None if not the documented syntax."""
    match = _INTERVAL_PATTERN.match(text)
    if not match or (match["count"] is None and match["h"] is None):
        return None
    interval = datetime.timedelta()
    if match["count"] is not None:
        count, unit = int(match["count"]), match["unit"].lower().rstrip("s")
        days = _UNIT_DAYS[unit]
        interval += datetime.timedelta(hours=count) if days is None else datetime.timedelta(days=count * days)
    if match["h"] is not None:
        interval += datetime.timedelta(hours=int(match["h"]), minutes=int(match["m"]), seconds=int(match["s"]))
    return interval


def split_domain(fulldomain):
    """"mail.example.co.uk" → (subdomain "mail", domain "example", suffix "co.uk"); subdomain None at the apex."""
    labels = fulldomain.split(".")
    suffix_labels = 2 if len(labels) >= 3 and ".".join(labels[-2:]) in MULTI_LABEL_SUFFIXES else 1
    suffix = ".".join(labels[-suffix_labels:])
    domain = labels[-suffix_labels - 1]
    subdomain = ".".join(labels[:-suffix_labels - 1]) or None
    return subdomain, domain, suffix


def address_of(mail_from):
    """The bare address in "Name <a@b>", "<a@b>" or "a@b", lowercased; "" when there is none."""
    address = email.utils.parseaddr(mail_from or "")[1]
    return address.strip().lower()


# Request fields of /users/smtp/add and /users/smtp/edit (POST and PATCH): name -> kind.
USER_REQUEST_FIELDS = {
    "username": "username",
    "email_password": "password",
    "description": "string",
    "custom_ratelimit": "boolean",
    "custom_ratelimit_value": "ratelimit_value",
    "custom_ratelimit_period": "interval",
    "ip_pool": "integer",
    "feedback_enabled": "boolean",
    "feedback_domain": "string",
    "feedback_html": "string",
    "feedback_text": "string",
    "open_tracking_enabled": "boolean",
    "click_tracking_enabled": "boolean",
    "archive_enabled": "boolean",
    "audit_email": "optional_email",
    "bounce_notifications": "bounce",
    "status": "status",
}

# What an SMTP user is when a field is not given (add, and POST edit, which resets omitted fields).
USER_DEFAULTS = {
    "description": "",
    "custom_ratelimit": False,
    "custom_ratelimit_value": None,
    "custom_ratelimit_period": None,  # a timedelta when set
    "ip_pool": None,
    "feedback_enabled": False,
    "feedback_html": "",
    "feedback_text": "",
    "open_tracking_enabled": False,
    "click_tracking_enabled": False,
    "archive_enabled": False,
    "audit_email": None,
    "bounce_notifications": "from",
    "status": "allowed",
}


def validate_user_fields(body, require_username=True):
    """Raise field_error for the first field (in spec order) that is not acceptable; `null` counts as absent."""
    if require_username and body.get("username") is None:
        raise field_error("username", "The field 'username' is required")
    for name, kind in USER_REQUEST_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        problem = _field_problem(name, kind, value)
        if problem:
            raise field_error(name, problem)
    if body.get("subaccount_id") is not None:
        raise field_error("subaccount_id", "The field 'subaccount_id' names no subaccount of this account "
                          f"(found '{body['subaccount_id']}')")


def _field_problem(name, kind, value):
    found = f"but found '{value}'"
    if kind in ("boolean",):
        return None if isinstance(value, bool) else f"The field '{name}' was expecting a boolean {found}"
    if kind in ("integer", "ratelimit_value"):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"The field '{name}' was expecting an integer {found}"
        if kind == "ratelimit_value" and not 1 <= value <= 2147483647:
            return f"The field '{name}' was expecting an integer from 1 to 2147483647 {found}"
        return None
    if not isinstance(value, str):
        return f"The field '{name}' was expecting a string {found}"
    if kind == "username" and not USERNAME_PATTERN.match(value):
        return (f"The field '{name}' was expecting 5 to 100 characters from A-Z, a-z, 0-9, '.', '_', '-' "
                f"and '@' {found}")
    if kind == "password" and value and password_entropy_bits(value) < 64:
        # Never echo the password.
        return f"The field '{name}' was expecting a password with an entropy of at least 64 bits"
    if kind == "interval" and parse_interval(value) is None:
        return (f"The field '{name}' was expecting an interval like '1 hour', '2 days' or '0:30:00' "
                f"{found}")
    if kind == "optional_email" and value and not EMAIL_PATTERN.match(value):
        return f"The field '{name}' was expecting a valid RFC-822 formatted email field {found}"
    if kind == "bounce" and value not in ("from", "drop") and not EMAIL_PATTERN.match(value):
        return f"The field '{name}' was expecting one of 'from', 'drop' or a valid email address {found}"
    if kind == "status" and value not in USER_STATUSES:
        return (f"The field '{name}' was expecting a value from the allowed list "
                f"{list(USER_STATUSES)} but instead found '{value}'")
    return None


@dataclass
class SmtpUser:
    username: str
    password: str
    settings: dict  # USER_DEFAULTS keys

    def as_returned(self, password=None):
        """The user as the API shows it: `email_password` only when `password` is given (add, or an
        edit that generated one); the custom rate limit only while `custom_ratelimit` is on."""
        settings = self.settings
        custom = settings["custom_ratelimit"]
        period = settings["custom_ratelimit_period"] if custom else None
        user = {"username": self.username}
        if password is not None:
            user["email_password"] = password
        user.update({
            "sending_allowed": settings["status"] == "allowed",
            "custom_ratelimit": custom,
            "custom_ratelimit_value": settings["custom_ratelimit_value"] if custom else None,
            "custom_ratelimit_period": str(period or datetime.timedelta()),
            "default_ratelimit_value": 0,
            "default_ratelimit_period": "unlimited",
            "description": settings["description"],
            "feedback_enabled": settings["feedback_enabled"],
            "feedback_domain": "default",
            "feedback_html": settings["feedback_html"],
            "feedback_text": settings["feedback_text"],
            "archive_enabled": settings["archive_enabled"],
            "open_tracking_enabled": settings["open_tracking_enabled"],
            "click_tracking_enabled": settings["click_tracking_enabled"],
            "audit_email": settings["audit_email"] or None,
            "bounce_notifications": settings["bounce_notifications"],
            "status": settings["status"],
        })
        if settings["ip_pool"] is not None:
            user["ippool"] = settings["ip_pool"]
        return user


@dataclass
class SingleSender:
    email_address: str
    verified: bool = False
    verified_by: str = None  # "click" (control call), "token", "auto"
    mails: list = field(default_factory=list)  # verification mails: {"to", "time", "token", "message"}
    auto_verify_at: float = None  # time.monotonic() deadline set by auto-verify

    def settle(self, now):
        if not self.verified and self.auto_verify_at is not None and now >= self.auto_verify_at:
            self.verified, self.verified_by = True, "auto"


@dataclass
class SenderDomain:
    fulldomain: str
    selector_digits: str
    rpath_selector: str
    tracking_subdomain: str
    dns_published: bool = False
    verified: bool = False  # both DKIM and return path CNAMEs found by a verification check
    checked: bool = False  # a verification check has run (add with auto_verify, /domain/verify)

    def as_returned(self, setup_link=True):
        subdomain, domain, suffix = split_domain(self.fulldomain)
        tracker_subdomain, tracker_domain, tracker_suffix = split_domain(
            f"{self.tracking_subdomain}.{self.fulldomain}")
        return {
            "domain": {
                "fulldomain": self.fulldomain,
                "subdomain": subdomain,
                "domain": domain,
                "suffix": suffix,
                "dkim_selector": "s" + self.selector_digits,
                "dkim_verified": self.verified,
                "dkim_status": "",
                "dkim_value": DKIM_TARGET,
                "dkim_expected": DKIM_TARGET,
                "rpath_selector": self.rpath_selector,
                "rpath_verified": self.verified,
                "rpath_status": "",
                "rpath_value": RPATH_TARGET,
                "rpath_expected": RPATH_TARGET,
                "setup_link": (f"https://sandbox.invalid/smtp2go/domain-setup/{self.fulldomain}"
                               if setup_link else "unavailable"),
            },
            "trackers": [{
                "fulldomain": f"{self.tracking_subdomain}.{self.fulldomain}",
                "subdomain": tracker_subdomain,
                "domain": tracker_domain,
                "suffix": tracker_suffix,
                "cname_verified": self.verified,
                "cname_status": "",
                "cname_value": TRACKING_TARGET if self.checked else "",
                "enabled": self.verified,
            }],
            "subaccount_access": {"subaccounts": [], "future_subaccounts": False},
        }


@dataclass
class Account:
    api_key: str
    allowed_endpoints: tuple  # endpoint paths without /v3
    users: dict = field(default_factory=dict)  # username -> SmtpUser, insertion order
    senders: dict = field(default_factory=dict)  # lowercased address -> SingleSender
    domains: dict = field(default_factory=dict)  # fulldomain -> SenderDomain
    rate_limit: tuple = (RATE_LIMIT, RATE_LIMIT_WINDOW_SECONDS)


class Smtp2goApi(HttpService):
    name = "smtp2go_api"

    def __init__(self, context):
        super().__init__(context)
        self._accounts = {}  # api key -> Account
        self._user_accounts = {}  # SMTP username -> api key (usernames are unique across the emulator)
        self._tokens = {}  # verification token -> (api key, lowercased address)
        self._auto_verify_default = None  # seconds, for accounts without their own setting
        self._auto_verify = {}  # api key -> seconds or None (off)
        self._rate_limiter = FixedWindowRateLimiter()
        context.relay_backends.register(RelayBackend(
            name="smtp2go", hosts=RELAY_HOSTS, ports=RELAY_PORTS, address=RELAY_ADDRESS,
            authenticate=self.authenticate, sender_allowed=self.sender_allowed,
            sender_check=RELAY_SENDER_CHECK,
            # SMTP2GO's logins are free-form user names, so a login no backend claims (a typo, an
            # API key) most likely meant SMTP2GO: its refusal text answers it.
            unknown_login_reply=AUTH_FAILED_REPLY))

    def start(self):
        endpoints = super().start()
        return {self.name: endpoints[self.name] + BASE_PATH}

    def seed_demo(self):
        self.add_account(DEMO_SMTP2GO_API_KEY)

    # Errors in SMTP2GO's envelope

    def error_body(self, message, error_code=ERR_API_EXCEPTION, field_errors=None):
        data = {"error": message, "error_code": error_code}
        if field_errors:
            data["field_validation_errors"] = field_errors
        return {"request_id": str(uuid.uuid4()), "data": data}

    def handle(self, request):
        try:
            return self.router.dispatch(request)
        except ApiError as error:
            return Response(error.status, self.error_body(error.message, error.error_code, error.field_errors),
                            error.headers)
        except HttpError as error:  # unknown path (404) or method (405)
            message = error.message
            if error.status == HTTPStatus.NOT_FOUND and request.path[len(BASE_PATH):] in ALL_ENDPOINTS:
                message = f"{request.path} is a real SMTP2GO endpoint that the sandbox does not emulate"
            return Response(error.status, self.error_body(message), error.headers)
        except Exception:  # an emulator bug: say so loudly, answer like a server would
            traceback.print_exc(file=sys.stderr)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, self.error_body("Internal server error"))

    @staticmethod
    def _ok(data):
        return Response(HTTPStatus.OK, {"request_id": str(uuid.uuid4()), "data": data})

    def _admit(self, request):
        """Authenticate, count against the key's window, check the key's endpoint permission and read
        the body. Returns (account, body); raises 401, 429, 403 or 400. Call with self.lock held."""
        body = request.json if isinstance(request.json, dict) else None
        api_key = request.headers.get("X-Smtp2go-Api-Key") or (body or {}).get("api_key")
        account = self._accounts.get(api_key) if isinstance(api_key, str) else None
        if account is None:
            raise ApiError(HTTPStatus.UNAUTHORIZED, UNKNOWN_KEY_TEXT, ERR_API_EXCEPTION)
        limit, window_seconds = account.rate_limit
        if not self._rate_limiter.hit(api_key, limit, window_seconds).allowed:
            raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, "Too many requests", ERR_RATE_LIMITED)
        endpoint = request.path[len(BASE_PATH):]
        if endpoint not in ALWAYS_ALLOWED and endpoint not in account.allowed_endpoints:
            raise ApiError(HTTPStatus.FORBIDDEN, PERMISSION_DENIED_TEXT, ERR_PERMISSION_DENIED)
        if request.json_error is not None or (request.body.strip() and body is None):
            raise ApiError(HTTPStatus.BAD_REQUEST, NON_VALIDATING_TEXT, ERR_NON_VALIDATING)
        return account, body or {}

    # API keys

    @route("POST", "/v3/api_keys/permissions")
    def api_key_permissions(self, request):
        with self.lock:
            account, _ = self._admit(request)
            return self._ok(list(account.allowed_endpoints))

    # SMTP users

    @route("POST", "/v3/users/smtp/add")
    def add_user(self, request):
        with self.lock:
            account, body = self._admit(request)
            validate_user_fields(body)
            username = body["username"]
            if username in self._user_accounts:
                raise api_exception(f"Failed to add the SMTP user - the username {username} is already in use")
            password = body.get("email_password") or generated_password()
            user = SmtpUser(username, password, self._user_settings(body, base=USER_DEFAULTS))
            account.users[username] = user
            self._user_accounts[username] = account.api_key
            return self._ok({"results": [user.as_returned(password=password)]})

    @route("POST", "/v3/users/smtp/view")
    def view_users(self, request):
        with self.lock:
            account, body = self._admit(request)
            wanted = body.get("username")
            if wanted is not None and not isinstance(wanted, str):
                raise field_error("username", f"The field 'username' was expecting a string but found '{wanted}'")
            # A contains-filter, case-insensitive (assumed): a client must pick its user out itself.
            results = [user.as_returned() for user in account.users.values()
                       if not wanted or wanted.lower() in user.username.lower()]
            return self._ok({"results": results, "default_ratelimit_value": 0,
                             "default_ratelimit_period": "unlimited"})

    @route("POST", "/v3/users/smtp/edit")
    def edit_user(self, request):
        """POST edit: every optional field not given goes back to its default."""
        with self.lock:
            account, body = self._admit(request)
            user = self._user_to_edit(account, body, "edit")
            user.settings = self._user_settings(body, base=USER_DEFAULTS)
            new_password = self._apply_password(user, body)
            return self._ok({"results": [user.as_returned(password=new_password)]})

    @route("PATCH", "/v3/users/smtp/edit")
    def patch_user(self, request):
        """PATCH edit: fields not given (or null) stay as they are; `data` is a list of users."""
        with self.lock:
            account, body = self._admit(request)
            user = self._user_to_edit(account, body, "patch")
            user.settings = self._user_settings(body, base=user.settings)
            new_password = self._apply_password(user, body)
            return self._ok([user.as_returned(password=new_password)])

    @route("POST", "/v3/users/smtp/remove")
    def remove_user(self, request):
        with self.lock:
            account, body = self._admit(request)
            user = self._user_to_edit(account, body, "remove")
            del account.users[user.username]
            del self._user_accounts[user.username]
            return self._ok({"results": [user.as_returned()]})

    def _user_to_edit(self, account, body, action):
        validate_user_fields(body)
        user = account.users.get(body["username"])
        if user is None:
            raise api_exception(f"Failed to {action} the SMTP user - An error occurred finding SMTP user "
                                f"{body['username']} or it doesn't exist")
        return user

    @staticmethod
    def _user_settings(body, base):
        settings = dict(base)
        for name in USER_DEFAULTS:
            if body.get(name) is not None:
                settings[name] = body[name]
        if body.get("custom_ratelimit_period") is not None:
            settings["custom_ratelimit_period"] = parse_interval(body["custom_ratelimit_period"])
        if not settings["custom_ratelimit"]:
            # "Only stores this value if custom_ratelimit is true."
            settings["custom_ratelimit_value"] = None
            settings["custom_ratelimit_period"] = None
        return settings

    @staticmethod
    def _apply_password(user, body):
        """Set the password an edit carries; "" generates one. Returns the generated password, else None."""
        password = body.get("email_password")
        if password is None:
            return None
        if password == "":
            user.password = generated_password()
            return user.password
        user.password = password
        return None

    # Single sender emails

    @route("POST", "/v3/single_sender_emails/add")
    def add_single_sender(self, request):
        with self.lock:
            account, body = self._admit(request)
            address = self._email_address_field(body)
            message = body.get("message")
            if message is not None and not isinstance(message, str):
                raise field_error("message", f"The field 'message' was expecting a string but found '{message}'")
            self._settle(account)
            sender = account.senders.setdefault(address.lower(), SingleSender(address))
            if not sender.verified:  # new, or added before and not yet verified: (re)send the mail
                self._send_verification_mail(account, sender, message)
            return self._ok({})

    @route("POST", "/v3/single_sender_emails/view")
    def view_single_senders(self, request):
        with self.lock:
            account, body = self._admit(request)
            wanted = body.get("email_address")
            if wanted is not None and not isinstance(wanted, str):
                raise field_error("email_address",
                                  f"The field 'email_address' was expecting a string but found '{wanted}'")
            self._settle(account)
            senders = [{"email_address": sender.email_address, "verified": sender.verified}
                       for sender in account.senders.values()
                       if not wanted or wanted.lower() in sender.email_address.lower()]
            request_id = str(uuid.uuid4())
            return Response(HTTPStatus.OK, {"request_id": request_id,
                                            "data": {"request_id": request_id, "senders": senders}})

    @route("POST", "/v3/single_sender_emails/remove")
    def remove_single_sender(self, request):
        with self.lock:
            account, body = self._admit(request)
            address = self._email_address_field(body)
            sender = account.senders.pop(address.lower(), None)
            if sender is None:
                raise api_exception("Failed to remove the single sender email - An error occurred deleting "
                                    f"sender email {address} or it doesn't exist")
            for mail in sender.mails:
                self._tokens.pop(mail["token"], None)
            return self._ok("OK")

    @staticmethod
    def _email_address_field(body):
        address = body.get("email_address")
        if address is None:
            raise field_error("email_address", "The field 'email_address' is required")
        if not isinstance(address, str) or not EMAIL_PATTERN.match(address):
            raise field_error("email_address", "The field 'email_address' was expecting a valid RFC-822 "
                              f"formatted email field but found '{address}'")
        return address

    def _send_verification_mail(self, account, sender, message):
        token = secrets.token_urlsafe(24)
        sender.mails.append({"to": sender.email_address, "time": time.time(), "token": token,
                             "message": message})
        self._tokens[token] = (account.api_key, sender.email_address.lower())
        after_seconds = self._auto_verify.get(account.api_key, self._auto_verify_default)
        if after_seconds is not None:
            deadline = time.monotonic() + after_seconds
            sender.auto_verify_at = min(deadline, sender.auto_verify_at or deadline)

    @staticmethod
    def _settle(account):
        now = time.monotonic()
        for sender in account.senders.values():
            sender.settle(now)

    # Sender domains

    @route("POST", "/v3/domain/add")
    def add_domain(self, request):
        with self.lock:
            account, body = self._admit(request)
            fulldomain = self._domain_field(body)
            for name in ("tracking_subdomain", "returnpath_subdomain"):
                value = body.get(name)
                if value is not None and (not isinstance(value, str) or not DOMAIN_LABEL_PATTERN.match(value)):
                    raise field_error(name, f"The field '{name}' was expecting a subdomain label but found '{value}'")
            for name in ("auto_verify", "requisition_ssl"):
                if body.get(name) is not None and not isinstance(body[name], bool):
                    raise field_error(name, f"The field '{name}' was expecting a boolean but found '{body[name]}'")
            if fulldomain in account.domains:
                raise api_exception(f"A sender domain matching the passed value of {fulldomain} already exists")
            digits = f"{secrets.randbelow(900000) + 100000}"
            domain = SenderDomain(
                fulldomain=fulldomain,
                selector_digits=digits,
                rpath_selector=body.get("returnpath_subdomain") or "em" + digits,
                tracking_subdomain=body.get("tracking_subdomain") or DEFAULT_TRACKING_SUBDOMAIN,
            )
            account.domains[fulldomain] = domain
            if body.get("auto_verify", True):
                self._check_dns(domain)
            return self._ok({"domains": [domain.as_returned()]})

    @route("POST", "/v3/domain/view")
    def view_domains(self, request):
        with self.lock:
            account, body = self._admit(request)
            wanted = body.get("domain")
            if wanted is not None and not isinstance(wanted, str):
                raise field_error("domain", f"The field 'domain' was expecting a string but found '{wanted}'")
            domains = [domain for domain in account.domains.values()
                       if not wanted or domain.fulldomain == wanted.strip().rstrip(".").lower()]
            # setup_link: "only included if a single domain is returned, otherwise 'unavailable'"
            return self._ok({"domains": [domain.as_returned(setup_link=len(domains) == 1) for domain in domains]})

    @route("POST", "/v3/domain/verify")
    def verify_domain(self, request):
        with self.lock:
            account, body = self._admit(request)
            fulldomain = self._domain_field(body)
            domain = account.domains.get(fulldomain)
            if domain is None:
                raise api_exception(f"Failed to verify the sender domain - An error occurred finding sender domain "
                                    f"{fulldomain} or it doesn't exist")
            self._check_dns(domain)
            return self._ok({"domains": [domain.as_returned()]})

    @route("POST", "/v3/domain/remove")
    def remove_domain(self, request):
        with self.lock:
            account, body = self._admit(request)
            fulldomain = self._domain_field(body)
            if account.domains.pop(fulldomain, None) is None:
                raise api_exception(f"Failed to remove the sender domain - An error occurred deleting sender domain "
                                    f"{fulldomain} or it doesn't exist")
            return self._ok({"domains": []})

    @staticmethod
    def _domain_field(body):
        value = body.get("domain")
        if value is None:
            raise field_error("domain", "The field 'domain' is required")
        fulldomain = value.strip().rstrip(".").lower() if isinstance(value, str) else ""
        labels = fulldomain.split(".")
        if (len(labels) < 2 or len(fulldomain) > 253 or not all(DOMAIN_LABEL_PATTERN.match(label) for label in labels)
                or labels[-1].isdigit()):
            raise field_error("domain", f"The field 'domain' was expecting a valid domain name but found '{value}'")
        return fulldomain

    @staticmethod
    def _check_dns(domain):
        """A verification check: finds the CNAMEs only once the test said they are published."""
        domain.checked = True
        if domain.dns_published:
            domain.verified = True

    # Interface for other services (the relay backend: the SMTP relay); thread-safe.

    def authenticate(self, username, password):
        """None when `username` is no SMTP user of this emulator (another backend's login, or
        nobody's: the relay then answers RelayBackend.unknown_login_reply); else (ok, SMTP reply),
        ok only with the user's password and status allowed or sandbox."""
        with self.lock:
            user = self._user(username)
            if user is None:
                return None
            if (not isinstance(password, str)
                    or not hmac.compare_digest(user.password.encode(), password.encode())
                    or user.settings["status"] not in ("allowed", "sandbox")):
                return False, AUTH_FAILED_REPLY
            return True, AUTH_OK_REPLY

    def sender_allowed(self, username, mail_from):
        """(ok, SMTP reply) for sending From `mail_from` ("a@b", "<a@b>" or "Name <a@b>") as
        `username`: ok when the address is a verified single sender of the user's account or its
        domain a verified sender domain of that account. The refusal is SMTP2GO's multi-line 550
        (lines joined by CRLF, ready to send as one reply)."""
        address = address_of(mail_from)
        domain = address.rpartition("@")[2]
        with self.lock:
            api_key = self._user_accounts.get(username)
            account = self._accounts.get(api_key)
            if account is not None and address:
                self._settle(account)
                sender = account.senders.get(address)
                sender_domain = account.domains.get(domain)
                if (sender is not None and sender.verified) or (sender_domain is not None and sender_domain.verified):
                    return True, SENDER_OK_REPLY
        return False, sender_not_verified_reply(domain or "")

    def user_status(self, username):
        """"allowed", "blocked" or "sandbox"; None for an unknown user."""
        with self.lock:
            user = self._user(username)
            return user.settings["status"] if user else None

    def _user(self, username):
        account = self._accounts.get(self._user_accounts.get(username))
        return account.users.get(username) if account else None

    # Accounts (seed and control API)

    def add_account(self, api_key=None, allowed_endpoints=None):
        """Create an account (or, for an existing key, replace its endpoint list when one is given)."""
        api_key = api_key or new_api_key()
        with self.lock:
            account = self._accounts.get(api_key)
            if account is None:
                account = self._accounts[api_key] = Account(api_key, tuple(ALL_ENDPOINTS))
            if allowed_endpoints is not None:
                account.allowed_endpoints = tuple(allowed_endpoints)
            return self._account_state(account)

    def _account_state(self, account):
        self._settle(account)
        after_seconds = self._auto_verify.get(account.api_key, self._auto_verify_default)
        return {
            "api_key": account.api_key,
            "allowed_endpoints": list(account.allowed_endpoints),
            "rate_limit": {"limit": account.rate_limit[0], "window_seconds": account.rate_limit[1]},
            "auto_verify_after_seconds": after_seconds,
            "users": [{**user.as_returned(), "email_password": user.password} for user in account.users.values()],
            "senders": [self._sender_state(sender) for sender in account.senders.values()],
            "domains": [{
                "fulldomain": domain.fulldomain,
                "dkim_selector": "s" + domain.selector_digits,
                "rpath_selector": domain.rpath_selector,
                "tracking_subdomain": domain.tracking_subdomain,
                "dns_published": domain.dns_published,
                "verified": domain.verified,
            } for domain in account.domains.values()],
        }

    @staticmethod
    def _sender_state(sender):
        return {
            "email_address": sender.email_address,
            "verified": sender.verified,
            "verified_by": sender.verified_by,
            "verification_mail_count": len(sender.mails),
            "verification_mails": [dict(mail) for mail in sender.mails],
        }

    def _control_account(self, body):
        api_key = body.get("api_key")
        account = self._accounts.get(api_key) if isinstance(api_key, str) else None
        if account is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no SMTP2GO account with api_key {api_key!r}")
        return account

    @control_route("POST", "/smtp2go/accounts")
    def control_add_account(self, request):
        body = json_object(request)
        api_key, endpoints = body.get("api_key"), body.get("allowed_endpoints")
        if api_key is not None and (not isinstance(api_key, str) or not API_KEY_PATTERN.match(api_key)):
            raise HttpError(HTTPStatus.BAD_REQUEST, "api_key must be api- + 32 letters or digits")
        if endpoints is not None:
            if not isinstance(endpoints, list) or not all(isinstance(item, str) for item in endpoints):
                raise HttpError(HTTPStatus.BAD_REQUEST, "allowed_endpoints must be a list of endpoint paths")
            unknown = [item for item in endpoints if item not in ALL_ENDPOINTS]
            if unknown:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown endpoints {unknown} (use e.g. '/users/smtp/add')")
        return Response(HTTPStatus.OK, self.add_account(api_key, endpoints))

    @control_route("GET", "/smtp2go/accounts/{api_key}")
    def control_get_account(self, request, api_key):
        with self.lock:
            account = self._control_account({"api_key": api_key})
            return Response(HTTPStatus.OK, self._account_state(account))

    @control_route("POST", "/smtp2go/single-senders/verify")
    def control_verify_sender(self, request):
        """The person clicks the link in the verification mail: by `token`, or by api_key + email_address."""
        body = json_object(request)
        with self.lock:
            if body.get("token") is not None:
                api_key, address = self._tokens.get(body["token"], (None, None))
                if api_key is None:
                    raise HttpError(HTTPStatus.NOT_FOUND, "no verification mail with that token")
                sender, how = self._accounts[api_key].senders[address], "token"
            else:
                account = self._control_account(body)
                address = body.get("email_address")
                sender = account.senders.get(address.lower()) if isinstance(address, str) else None
                if sender is None:
                    raise HttpError(HTTPStatus.NOT_FOUND, f"no single sender {address!r} on that account")
                how = "click"
            if not sender.verified:
                sender.verified, sender.verified_by = True, how
            return Response(HTTPStatus.OK, self._sender_state(sender))

    @control_route("POST", "/smtp2go/domains/verify-dns")
    def control_publish_domain_dns(self, request):
        """The DNS records of a sender domain are published: the next verification check finds them."""
        body = json_object(request)
        with self.lock:
            account = self._control_account(body)
            value = body.get("domain")
            domain = account.domains.get(value.strip().rstrip(".").lower()) if isinstance(value, str) else None
            if domain is None:
                raise HttpError(HTTPStatus.NOT_FOUND, f"no sender domain {value!r} on that account")
            domain.dns_published = True
            return Response(HTTPStatus.OK, {"fulldomain": domain.fulldomain, "dns_published": True,
                                            "verified": domain.verified})

    @control_route("POST", "/smtp2go/auto-verify")
    def control_auto_verify(self, request):
        """Verification mails sent from now on are "clicked" `after_seconds` later (null: off);
        for one account, or without api_key for every account without its own setting."""
        body = json_object(request)
        after_seconds = auto_verify_delay(body)
        with self.lock:
            if body.get("api_key") is None:
                self._auto_verify_default = after_seconds
            else:
                self._auto_verify[self._control_account(body).api_key] = after_seconds
        return Response(HTTPStatus.OK, {"api_key": body.get("api_key"), "after_seconds": after_seconds})

    @control_route("POST", "/smtp2go/rate-limit")
    def control_set_rate_limit(self, request):
        """Requests per window for one key; `limit` null restores 300 per 60 s. Resets the key's window."""
        body = json_object(request)
        limit, window_seconds = rate_limit_setting(body, RATE_LIMIT_WINDOW_SECONDS)
        with self.lock:
            account = self._control_account(body)
            account.rate_limit = (RATE_LIMIT, RATE_LIMIT_WINDOW_SECONDS) if limit is None else (limit, window_seconds)
            self._rate_limiter.forget(lambda key: key == account.api_key)
            limit, window_seconds = account.rate_limit
        return Response(HTTPStatus.OK, {"limit": limit, "window_seconds": window_seconds})


def sender_not_verified_reply(domain):
    """SMTP2GO's refusal of a From address that is not a verified sender (observed 2026 wording)."""
    return "\r\n".join((
        f"550-From header sender domain not verified ({domain})",
        "550-On your Sending > Verified Senders page",
        "550 verify the sender domain or email to be allowed to send.",
    ))


def module_examples_settings(sandbox):
    """What the collection's module EXAMPLES need to run against this emulator
    (tests/integration/test_module_examples.py asks every emulator in SERVICES): the environment
    fallbacks that point the modules here, the variables the examples name, and senders verified
    at once."""
    sandbox.control("POST", "/smtp2go/auto-verify", {"api_key": DEMO_SMTP2GO_API_KEY, "after_seconds": 0})
    return {"env": {"SMTP2GO_API_URL": sandbox.url("smtp2go_api")},
            "vars": {"smtp2go_api_key": DEMO_SMTP2GO_API_KEY}}
