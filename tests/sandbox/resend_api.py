"""Emulated Resend API: API keys (`/api-keys`) and sending domains (`/domains`), as the collection's Resend
modules use them. A domain is verified by looking its records up in the sandbox's DNS server, and the
emulator registers Resend's relay backend (`smtp.resend.com`, login `resend` with a live API key, Resend's
550 for a From domain that is not a verified domain of the key's team; see core.RelayBackend).

Behaviour follows ../shared/reference/providers-smtp2go-resend-mailgun.md section 2 and the OpenAPI
description ../shared/specs/resend-openapi.yaml (resend/resend-openapi), which declares no error bodies:
those follow Resend's error page and what its SDKs and recordings show. README.md in this folder
("Emulated behaviour: Resend API") lists every behaviour with its source and says which are assumed.
"""

import datetime
import email.utils
import hmac
import re
import secrets
import string
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

from dnslib import QTYPE

from .core import (END_OF_DATA, IMPLICIT_TLS, STARTTLS, FixedWindowRateLimiter, HttpError, HttpService, RelayBackend,
                   Response, control_route, json_object, rate_limit_setting, route)
from .dns_server import ZoneData

# The seeded demo team's admin key (`--seed default`): "re_" + 8 + "_" + 24 letters or digits, the shape of
# real keys (assumed: Resend documents only "re_xxxxxxxxx").
DEMO_RESEND_API_KEY = "re_KartoSbx_DemoResendAdminKey000001"
KEY_PATTERN = re.compile(r"^re_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}$")
DOMAIN_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")
LABELS_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")

# CreateDomainRequest.region and CreateApiKeyRequest.permission (resend-openapi).
REGIONS = ("us-east-1", "eu-west-1", "sa-east-1", "ap-northeast-1")
PERMISSIONS = ("full_access", "sending_access")
# Statuses from which POST /domains/{id}/verify starts a new check ("Verify DNS Records").
VERIFY_STARTS_FROM = ("not_started", "failed", "partially_failed", "temporary_failure")

# "The default maximum rate limit is 5 requests per second per team. This limit applies across all API
# keys" (https://resend.com/docs/api-reference/introduction; 2 per second in the 2025 recordings).
RATE_LIMIT = 5
RATE_LIMIT_WINDOW_SECONDS = 1
# "Resend was unable to detect the DNS records within 72 hours" -> failed (dashboard/domains/introduction).
FAIL_AFTER_SECONDS = 72 * 3600
# Seconds between POST /domains/{id}/verify and the DNS check (assumed: the real check takes seconds to
# minutes); 0 checks at the first read after the request.
VERIFY_AFTER_SECONDS = 0

# Error texts. From https://resend.com/docs/api-reference/errors (and resend/resend-python exceptions.py,
# which maps 401 missing_api_key and 403 invalid_api_key) unless marked otherwise in README.md.
MISSING_KEY = (HTTPStatus.UNAUTHORIZED, "missing_api_key", "Missing API key in the authorization header")
INVALID_KEY = (HTTPStatus.FORBIDDEN, "invalid_api_key", "API key is invalid")
RESTRICTED_KEY = (HTTPStatus.UNAUTHORIZED, "restricted_api_key", "This API key is restricted to only send emails")
TOO_MANY = (HTTPStatus.TOO_MANY_REQUESTS, "rate_limit_exceeded",
            "Too many requests. Please limit the number of requests per second. Or contact support to increase "
            "rate limit.")
NO_ENDPOINT = (HTTPStatus.NOT_FOUND, "not_found", "The requested endpoint does not exist.")
BAD_METHOD = (HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "Method is not allowed for the requested path.")
# Observed live (resend/resend-node recording "remove returns error for non-existent API key").
KEY_NOT_FOUND = (HTTPStatus.NOT_FOUND, "not_found", "API key not found")
DOMAIN_NOT_FOUND = (HTTPStatus.NOT_FOUND, "not_found", "Domain not found")  # assumed, by analogy
# Cloudflare in front of the API answers a request without User-Agent with 403, error code 1010
# (https://resend.com/docs/api-reference/introduction, "User-Agent"); the plain-text body is Cloudflare's (assumed).
NO_USER_AGENT_BODY = "error code: 1010"
# Status names for an injected fault's body (`error_body` receives only the reason phrase).
NAMES_BY_STATUS = {400: "validation_error", 401: "missing_api_key", 403: "invalid_api_key", 404: "not_found",
                   405: "method_not_allowed", 409: "concurrent_idempotent_requests", 422: "validation_error",
                   429: "rate_limit_exceeded"}
STATUS_BY_PHRASE = {status.phrase: status.value for status in HTTPStatus}

# Public mailbox domains the emulator refuses to add ("Resend sends emails using a domain you own (i.e., not a
# shared or public domain)", dashboard/domains/introduction; observed refused in dreamhunter2333/cloudflare_temp_email
# issue 515). Resend's list and its wording are not published: both are assumed. seznam.cz and libero.it are not
# in the collection's own list (_domain.FREE_MAIL_DOMAINS), so a test can reach Resend's refusal.
PUBLIC_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "mail.ru", "yandex.ru",
                  "rambler.ru", "ro.ru", "seznam.cz", "libero.it")
PUBLIC_DOMAIN_TEXT = "The %s domain is a public domain. Please, use a domain you own."  # assumed
DUPLICATE_DOMAIN_TEXT = "The %s domain has already been added to your team."  # assumed

# Resend's relay (https://resend.com/docs/send-with-smtp): smtp.resend.com, "SMTPS: 465, 2465",
# "STARTTLS: 25, 587, 2587", user "resend", password an API key. TEST-NET-3 address for Go's dial errors.
RELAY_HOSTS = ("smtp.resend.com",)
RELAY_PORTS = {465: IMPLICIT_TLS, 2465: IMPLICIT_TLS, 25: STARTTLS, 587: STARTTLS, 2587: STARTTLS}
RELAY_ADDRESS = "203.0.113.35"
RELAY_LOGIN = "resend"
# Assumed: Resend's SMTP server hands the message to its sending API, which checks the `from` of the message;
# the public error texts (below) come from Auth logs that cannot tell the stage (gomail wraps MAIL, RCPT and DATA
# alike). Relay knob sender_check=mail_from moves it to MAIL FROM.
RELAY_SENDER_CHECK = END_OF_DATA
AUTH_OK_REPLY = "235 Authentication successful"  # assumed
# Observed in Supabase Auth logs of Resend users (../shared/reference/supabase.md, "How the error text is built").
AUTH_REFUSED_REPLY = "535 API key not found"
SENDER_OK_REPLY = "250 OK"  # assumed
# Observed in Supabase Auth logs (same section): "550 The gmail.com domain is not verified. Please, add and
# verify your domain on https://resend.com/domains"; the API says the same with 403 validation_error.
UNVERIFIED_REPLY = "550 The %s domain is not verified. Please, add and verify your domain on https://resend.com/domains"
# A sending key restricted to an unverified domain: the text Resend logged for such an SMTP send (supabase/supabase
# issue 20739); the 550 is assumed.
RESTRICTED_UNVERIFIED_REPLY = ("550 The associated domain with your API key is not verified. Please, create a new "
                               "API key with full access or with a verified domain.")
# A sending key restricted to another domain (assumed wording: nothing public shows it).
RESTRICTED_OTHER_REPLY = "550 The API key is restricted to sending from %s, not %s."

# DKIM tokens look like Amazon SES Easy DKIM ones: 32 lower-case letters and digits (the create example of
# https://resend.com/docs/api-reference/domains/create-domain).
DKIM_TOKEN_ALPHABET = string.ascii_lowercase + "234567"
DKIM_RECORDS = 3


class ResendError(HttpError):
    """A Resend error answer: {"statusCode", "message", "name"}."""

    def __init__(self, error, message=None, headers=None):
        status, name, text = error
        super().__init__(status, message or text, headers)
        self.name = name


def now_text():
    """A timestamp as Resend writes it (the API reference's examples: 2026-03-28T17:12:02.059593+00:00)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def address_domain(mail_from):
    return email.utils.parseaddr(mail_from or "")[1].strip().lower().rpartition("@")[2]


def registrable_domain(name):
    """The last two labels: Resend names records relative to it (see Domain.records)."""
    return ".".join(name.split(".")[-2:])


@dataclass
class ApiKey:
    id: str
    name: str
    token: str
    permission: str
    domain_id: str = None
    created_at: str = field(default_factory=now_text)
    last_used_at: str = None

    def listed(self):
        return {"id": self.id, "name": self.name, "created_at": self.created_at, "last_used_at": self.last_used_at}


@dataclass
class Domain:
    id: str
    name: str
    region: str
    records: list  # Resend's record dicts, each with its full DNS name under "_fqdn" (not shown)
    status: str = "not_started"
    created_at: str = field(default_factory=now_text)
    verify_requested_at: float = None  # time.monotonic() of the last verify request
    dns_published: bool = False
    settings: dict = field(default_factory=lambda: {"open_tracking": False, "click_tracking": False})

    def shown_records(self):
        return [{key: value for key, value in record.items() if not key.startswith("_")} for record in self.records]

    def listed(self):
        return {"id": self.id, "name": self.name, "status": self.status, "created_at": self.created_at,
                "region": self.region, "capabilities": {"sending": "enabled", "receiving": "disabled"},
                **{key: value for key, value in self.settings.items() if key in ("open_tracking", "click_tracking")}}

    def created(self):
        return {**self.listed(), "records": self.shown_records(),
                **({"tracking_subdomain": self.settings["tracking_subdomain"]}
                   if self.settings.get("tracking_subdomain") else {})}

    def detailed(self):
        return {"object": "domain", **self.created()}


@dataclass
class Team:
    team_id: int
    keys: dict = field(default_factory=dict)  # id -> ApiKey, in creation order
    domains: dict = field(default_factory=dict)  # id -> Domain, in creation order
    rate_limit: tuple = (RATE_LIMIT, RATE_LIMIT_WINDOW_SECONDS)
    auto_publish_dns: bool = False
    verify_after_seconds: float = VERIFY_AFTER_SECONDS
    fail_after_seconds: float = FAIL_AFTER_SECONDS


def new_token():
    """(id, token): a UUID (as in the recordings) and "re_" + 8 + "_" + 24 letters or digits."""
    return str(uuid.uuid4()), "re_%s_%s" % (_random_text(8), _random_text(24))


def _random_text(size, alphabet=string.ascii_letters + string.digits):
    return "".join(secrets.choice(alphabet) for _ in range(size))


def domain_records(name, region, return_path):
    """The records Resend asks for (create example of the API reference): at the return-path subdomain an MX to
    feedback-smtp.<region>.amazonses.com and the SPF TXT, and three DKIM CNAMEs to <token>.dkim.amazonses.com.
    Names are relative to the registrable domain, as Resend shows them (a subdomain mail.example.com gets
    send.mail: dreamhunter2333/cloudflare_temp_email issue 515 and PR 789)."""
    registrable = registrable_domain(name)
    below = name[:-len(registrable)].rstrip(".")

    def entry(record, label, kind, value, priority=None):
        relative = label + ("." + below if below else "")
        item = {"record": record, "name": relative, "type": kind, "ttl": "Auto", "status": "not_started",
                "value": value}
        if priority is not None:
            item["priority"] = priority
        item["_fqdn"] = "%s.%s" % (label, name)
        return item

    records = [entry("SPF", return_path, "MX", "feedback-smtp.%s.amazonses.com" % region, 10),
               entry("SPF", return_path, "TXT", '"v=spf1 include:amazonses.com ~all"')]
    for _index in range(DKIM_RECORDS):
        token = _random_text(32, DKIM_TOKEN_ALPHABET)
        records.append(entry("DKIM", token + "._domainkey", "CNAME", token + ".dkim.amazonses.com."))
    return records


class ResendApi(HttpService):
    name = "resend_api"

    def __init__(self, context):
        super().__init__(context)
        self._teams = {}  # team id -> Team
        self._by_token = {}  # token -> (team id, key id)
        self._next_team = 1
        self._rate_limiter = FixedWindowRateLimiter()
        # Writes into the DNS server's zones (publish_dns), which has no lock of its own for them.
        self._dns_lock = threading.Lock()
        context.relay_backends.register(RelayBackend(
            name="resend", hosts=RELAY_HOSTS, ports=RELAY_PORTS, address=RELAY_ADDRESS,
            authenticate=self.authenticate, sender_allowed=self.sender_allowed, sender_check=RELAY_SENDER_CHECK))

    def seed_demo(self):
        self.add_team(DEMO_RESEND_API_KEY)

    # Errors and answers in Resend's shape

    def error_body(self, message, status=None, name=None):
        """{"statusCode", "message", "name"} (observed live, e.g. {"statusCode":404,"message":"API key not
        found","name":"not_found"}). A fault's body gets only the reason phrase: its status follows from it."""
        status = int(status or STATUS_BY_PHRASE.get(message, 500))
        return {"statusCode": status, "message": message,
                "name": name or NAMES_BY_STATUS.get(status, "application_error")}

    def handle(self, request):
        if not request.headers.get("User-Agent"):
            return Response(HTTPStatus.FORBIDDEN, NO_USER_AGENT_BODY)
        try:
            return self.router.dispatch(request)
        except ResendError as error:
            return Response(error.status, self.error_body(error.message, error.status, error.name), error.headers)
        except HttpError as error:  # the router: unknown path (404) or method (405)
            status, name, text = NO_ENDPOINT if error.status == HTTPStatus.NOT_FOUND else BAD_METHOD
            return Response(status, self.error_body(text, status, name), error.headers)
        except Exception:  # an emulator bug: say so loudly, answer like a server would
            traceback.print_exc(file=sys.stderr)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR,
                            self.error_body("Internal server error", 500, "application_error"))

    def fault_headers(self, request, status):
        """A faulted answer carries the ratelimit-* headers every answer to a known key carries."""
        with self.lock:
            found = self._key_of(request)
            if found is None:
                return {}
            team, _key = found
            window = self._rate_limiter.peek((team.team_id,), *team.rate_limit)
        headers = self._rate_headers(window, team)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            headers.update({"ratelimit-remaining": "0", "retry-after": str(max(window.reset_seconds, 1))})
        return headers

    @staticmethod
    def _rate_headers(window, team):
        # Names and values as recorded (ratelimit-limit: 2, ratelimit-policy: 2;w=1, ratelimit-remaining,
        # ratelimit-reset: 1, in resend/resend-node's recordings); the reset is in seconds (rate-limit page).
        return {"ratelimit-limit": str(window.limit), "ratelimit-remaining": str(window.remaining),
                "ratelimit-reset": str(window.reset_seconds),
                "ratelimit-policy": "%d;w=%s" % (window.limit, _number(team.rate_limit[1]))}

    def _key_of(self, request):
        token = request.bearer_token()
        team_id, key_id = self._by_token.get(token, (None, None)) if token else (None, None)
        team = self._teams.get(team_id)
        key = team.keys.get(key_id) if team else None
        return (team, key) if key else None

    def _admit(self, request):
        """Authenticate (Bearer), count against the team's window, require Full access. Returns (team,
        rate-limit headers); raises 401, 403 or 429. Call with self.lock held."""
        if request.bearer_token() is None:
            raise ResendError(MISSING_KEY)
        found = self._key_of(request)
        if found is None:
            raise ResendError(INVALID_KEY)
        team, key = found
        window = self._rate_limiter.hit((team.team_id,), *team.rate_limit)
        headers = self._rate_headers(window, team)
        if not window.allowed:
            # "retry-after: How many seconds you should wait before making a follow-up request" (rate-limit page).
            raise ResendError(TOO_MANY, headers=dict(headers, **{"retry-after": str(max(window.reset_seconds, 1))}))
        key.last_used_at = now_text()
        if key.permission != "full_access":
            raise ResendError(RESTRICTED_KEY, headers=headers)
        return team, headers

    @staticmethod
    def _body(request, headers):
        if request.json_error is not None or not isinstance(request.json, dict):
            raise ResendError((HTTPStatus.BAD_REQUEST, "validation_error", "Invalid JSON body"), headers=headers)
        return request.json

    @staticmethod
    def _page(items, request, headers):
        """Cursor pagination (https://resend.com/docs/api-reference/pagination): without `limit` (and cursors)
        every item; else `limit` (1-100, default 20) items after (or before) the cursor's id, which is excluded.
        Items are newest first. The texts of the 422s are assumed."""
        query = request.query
        if not any(name in query for name in ("limit", "after", "before")):
            return {"object": "list", "has_more": False, "data": items}
        limit = query.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise ResendError((422, "validation_error", "The `limit` parameter must be between 1 and 100."),
                              headers=headers)
        limit = int(limit)
        ids = [item["id"] for item in items]
        if "after" in query and "before" in query:
            raise ResendError((422, "validation_error", "Use either `after` or `before`, not both."), headers=headers)
        for name in ("after", "before"):
            if name in query and query[name] not in ids:
                raise ResendError((422, "validation_error", "The `%s` cursor is not a valid id." % name),
                                  headers=headers)
        if "before" in query:
            end = ids.index(query["before"])
            start = max(end - limit, 0)
            return {"object": "list", "has_more": start > 0, "data": items[start:end]}
        start = ids.index(query["after"]) + 1 if "after" in query else 0
        return {"object": "list", "has_more": start + limit < len(items), "data": items[start:start + limit]}

    # API keys

    @route("GET", "/api-keys")
    def list_keys(self, request):
        with self.lock:
            team, headers = self._admit(request)
            keys = [key.listed() for key in reversed(list(team.keys.values()))]
            return Response(HTTPStatus.OK, self._page(keys, request, headers), headers)

    @route("POST", "/api-keys")
    def create_key(self, request):
        with self.lock:
            team, headers = self._admit(request)
            body = self._body(request, headers)
            name = body.get("name")
            # An empty name is accepted (recording "allows creating an API key with an empty name").
            if not isinstance(name, str):
                raise ResendError((422, "missing_required_field", "Missing `name` field."), headers=headers)
            permission = body.get("permission", "full_access")
            if permission not in PERMISSIONS:
                # The errors page's invalid_access (as copied by @letanure/resend-cli resendErrors.js).
                raise ResendError((422, "invalid_access", 'Access must be "full_access" | "sending_access".'),
                                  headers=headers)
            domain_id = body.get("domain_id") if permission == "sending_access" else None  # "Only used when ..."
            if domain_id is not None and domain_id not in team.domains:
                raise ResendError(DOMAIN_NOT_FOUND, headers=headers)
            key = self._new_key(team, name, permission, domain_id)
            # Observed: the live answer also carries "object": "list" (resend-node recording "creates an API key
            # with sending access"); the spec lists id and token.
            return Response(HTTPStatus.CREATED, {"id": key.id, "object": "list", "token": key.token}, headers)

    @route("PATCH", "/api-keys/{api_key_id}")
    def rename_key(self, request, api_key_id):
        with self.lock:
            team, headers = self._admit(request)
            key = self._key_by_id(team, api_key_id, headers)
            name = self._body(request, headers).get("name")
            if not isinstance(name, str):
                raise ResendError((422, "missing_required_field", "Missing `name` field."), headers=headers)
            key.name = name
            return Response(HTTPStatus.OK, {"object": "api_key", "id": key.id}, headers)

    @route("DELETE", "/api-keys/{api_key_id}")
    def delete_key(self, request, api_key_id):
        with self.lock:
            team, headers = self._admit(request)
            key = self._key_by_id(team, api_key_id, headers)
            del team.keys[key.id]
            self._by_token.pop(key.token, None)
            # Observed: "object": "list" here too (same recording); the spec says "api_key".
            return Response(HTTPStatus.OK, {"object": "list", "id": key.id, "deleted": True}, headers)

    @staticmethod
    def _key_by_id(team, api_key_id, headers):
        key = team.keys.get(api_key_id)
        if key is None:
            raise ResendError(KEY_NOT_FOUND, headers=headers)
        return key

    def _new_key(self, team, name, permission, domain_id=None):
        key_id, token = new_token()
        key = ApiKey(key_id, name, token, permission, domain_id)
        team.keys[key.id] = key
        self._by_token[token] = (team.team_id, key.id)
        return key

    # Domains

    @route("GET", "/domains")
    def list_domains(self, request):
        with self.lock:
            team, headers = self._admit(request)
            self._settle(team)
            domains = [domain.listed() for domain in reversed(list(team.domains.values()))]
            return Response(HTTPStatus.OK, self._page(domains, request, headers), headers)

    @route("POST", "/domains")
    def create_domain(self, request):
        with self.lock:
            team, headers = self._admit(request)
            body = self._body(request, headers)
            name = body.get("name")
            if not isinstance(name, str) or not name:
                raise ResendError((422, "missing_required_field", "Missing `name` field."), headers=headers)
            name = name.rstrip(".").lower()
            if not DOMAIN_PATTERN.match(name):
                raise ResendError((422, "validation_error", "Invalid `name`: %s is not a domain name." % name),
                                  headers=headers)
            region = body.get("region", "us-east-1")
            if region not in REGIONS:
                raise ResendError((422, "invalid_region", "Region must be %s." % " | ".join('"%s"' % r for r in REGIONS)),
                                  headers=headers)
            return_path = body.get("custom_return_path", "send")
            if not isinstance(return_path, str) or not LABELS_PATTERN.match(return_path):
                raise ResendError((422, "validation_error", "Invalid `custom_return_path`."), headers=headers)
            if any(name == public or name.endswith("." + public) for public in PUBLIC_DOMAINS):
                raise ResendError((HTTPStatus.FORBIDDEN, "validation_error", PUBLIC_DOMAIN_TEXT % name),
                                  headers=headers)
            if any(domain.name == name for domain in team.domains.values()):
                raise ResendError((HTTPStatus.FORBIDDEN, "validation_error", DUPLICATE_DOMAIN_TEXT % name),
                                  headers=headers)
            domain = Domain(str(uuid.uuid4()), name, region, domain_records(name, region, return_path))
            for option in ("open_tracking", "click_tracking", "tls", "tracking_subdomain", "capabilities"):
                if option in body:
                    domain.settings[option] = body[option]
            team.domains[domain.id] = domain
            if team.auto_publish_dns:
                self.publish_dns(domain)
            return Response(HTTPStatus.CREATED, domain.created(), headers)

    @route("GET", "/domains/{domain_id}")
    def get_domain(self, request, domain_id):
        with self.lock:
            team, headers = self._admit(request)
            domain = self._domain_by_id(team, domain_id, headers)
            self._settle(team)
            return Response(HTTPStatus.OK, domain.detailed(), headers)

    @route("PATCH", "/domains/{domain_id}")
    def update_domain(self, request, domain_id):
        with self.lock:
            team, headers = self._admit(request)
            domain = self._domain_by_id(team, domain_id, headers)
            body = self._body(request, headers)
            for option in ("open_tracking", "click_tracking", "tls", "tracking_subdomain", "capabilities"):
                if option in body:
                    domain.settings[option] = body[option]
            return Response(HTTPStatus.OK, {"id": domain.id, "object": "domain"}, headers)

    @route("POST", "/domains/{domain_id}/verify")
    def verify_domain(self, request, domain_id):
        with self.lock:
            team, headers = self._admit(request)
            domain = self._domain_by_id(team, domain_id, headers)
            self._settle(team)
            # "Triggers verification" (spec): the check itself runs later; a pending or verified domain goes on.
            if domain.status in VERIFY_STARTS_FROM:
                domain.status = "pending"
                domain.verify_requested_at = time.monotonic()
                for record in domain.records:
                    record["status"] = "pending"
            return Response(HTTPStatus.OK, {"object": "domain", "id": domain.id}, headers)

    @route("DELETE", "/domains/{domain_id}")
    def delete_domain(self, request, domain_id):
        with self.lock:
            team, headers = self._admit(request)
            domain = self._domain_by_id(team, domain_id, headers)
            del team.domains[domain.id]
            return Response(HTTPStatus.OK, {"object": "domain", "id": domain.id, "deleted": True}, headers)

    @staticmethod
    def _domain_by_id(team, domain_id, headers):
        domain = team.domains.get(domain_id)
        if domain is None:
            raise ResendError(DOMAIN_NOT_FOUND, headers=headers)
        return domain

    # Verification against the sandbox's DNS server

    def _settle(self, team):
        """Run the DNS check of every pending domain whose check is due (lazily, on each read)."""
        now = time.monotonic()
        for domain in team.domains.values():
            if domain.status != "pending" or domain.verify_requested_at is None:
                continue
            waited = now - domain.verify_requested_at
            if waited < team.verify_after_seconds:
                continue
            found = [self._published(record) for record in domain.records]
            for record, ok in zip(domain.records, found):
                record["status"] = "verified" if ok else "pending"
            if all(found):
                domain.status = "verified"
            elif waited >= team.fail_after_seconds:
                domain.status = "failed"
                for record, ok in zip(domain.records, found):
                    record["status"] = "verified" if ok else "failed"

    def _published(self, record):
        """Whether the sandbox DNS answers the record at its name with its value."""
        dns = self.context.services.get("dns")
        if dns is None:
            return False
        kind = record["type"]
        _rcode, answers, _authority = dns.zones.answer(record["_fqdn"], getattr(QTYPE, kind))
        wanted = record["value"].strip('"').rstrip(".").lower()
        for answer in answers:
            if answer.rtype != getattr(QTYPE, kind):
                continue
            if kind == "TXT" and b"".join(answer.rdata.data).decode().lower() == wanted:
                return True
            if kind in ("MX", "CNAME") and str(answer.rdata.label).rstrip(".").lower() == wanted and (
                    kind != "MX" or answer.rdata.preference == record.get("priority")):
                return True
        return False

    def publish_dns(self, domain):
        """The team publishes the domain's records at its DNS host: they are added to the sandbox DNS server's
        zones, where the verification (and the preflight's DMARC check) finds them. Every name must be inside a
        zone the sandbox DNS serves (e.g. a subdomain of karto.test). Returns the zone lines added.

        The DNS server offers no API to add records, so this merges a parsed zone fragment into its ZoneData
        (records and the names that exist); it runs under a lock of its own, and each DNS query reads a list
        or set that is only ever appended to, whole."""
        dns = self.context.services.get("dns")
        if dns is None:
            raise HttpError(HTTPStatus.BAD_REQUEST, "this sandbox runs no DNS server")
        lines = {}
        for record in domain.records:
            apex = dns.zones.zone_of(record["_fqdn"])
            if apex is None:
                raise HttpError(HTTPStatus.BAD_REQUEST, "%s is in no zone of the sandbox DNS (%s): use a domain under "
                                "one of them, such as <name>.karto.test" % (record["_fqdn"], ", ".join(dns.zones.apexes)))
            value = record["value"]
            rdata = {"MX": "%s %s." % (record.get("priority", 10), value.rstrip(".")),
                     "TXT": value if value.startswith('"') else '"%s"' % value,
                     "CNAME": value if value.endswith(".") else value + "."}[record["type"]]
            lines.setdefault(apex, []).append("%s. 300 IN %s %s" % (record["_fqdn"], record["type"], rdata))
        with self._dns_lock:
            for apex, zone_lines in lines.items():
                piece = ZoneData({apex: "$ORIGIN %s.\n%s\n" % (apex, "\n".join(zone_lines))})
                for key, records in piece.records.items():
                    existing = dns.zones.records.setdefault(key, [])
                    shown = {str(record) for record in existing}
                    existing.extend(record for record in records if str(record) not in shown)
                dns.zones.names.update(piece.names)
        domain.dns_published = True
        return [line for zone_lines in lines.values() for line in zone_lines]

    # Relay backend (thread-safe)

    def authenticate(self, login, password):
        """None for a login other than "resend"; else (ok, reply[, key id]): ok for a live API key."""
        if login != RELAY_LOGIN:
            return None
        with self.lock:
            found = None
            for token, owner in self._by_token.items():
                if isinstance(password, str) and hmac.compare_digest(token.encode(), password.encode()):
                    found = owner
            if found is None:
                return False, AUTH_REFUSED_REPLY
            team_id, key_id = found
            self._teams[team_id].keys[key_id].last_used_at = now_text()
            # The login is always "resend": the session's identity is the key (its team, its domain restriction).
            return True, AUTH_OK_REPLY, key_id

    def sender_allowed(self, key_id, mail_from):
        """(ok, reply): ok when the From domain is a verified domain of the key's team (and the key's own domain,
        for a key restricted to one); else Resend's 550."""
        domain = address_domain(mail_from)
        with self.lock:
            team = next((team for team in self._teams.values() if key_id in team.keys), None)
            if team is None:
                return False, UNVERIFIED_REPLY % domain
            self._settle(team)
            key = team.keys[key_id]
            if key.domain_id is not None:
                own = team.domains.get(key.domain_id)
                if own is None or own.status != "verified":
                    return False, RESTRICTED_UNVERIFIED_REPLY
                if own.name != domain:
                    return False, RESTRICTED_OTHER_REPLY % (own.name, domain)
                return True, SENDER_OK_REPLY
            if any(item.name == domain and item.status == "verified" for item in team.domains.values()):
                return True, SENDER_OK_REPLY
            return False, UNVERIFIED_REPLY % domain

    # Teams (seed and control API)

    def add_team(self, api_key=None):
        """A new team with one Full access admin key; returns its state plus "api_key"."""
        with self.lock:
            if api_key is not None and api_key in self._by_token:
                raise HttpError(HTTPStatus.BAD_REQUEST, "that api_key already exists")
            team = Team(self._next_team)
            self._next_team += 1
            self._teams[team.team_id] = team
            key = self._new_key(team, "karto sandbox admin", "full_access")
            if api_key is not None:
                self._by_token.pop(key.token)
                key.token = api_key
                self._by_token[api_key] = (team.team_id, key.id)
            return dict(self._team_state(team), api_key=key.token)

    def _team_state(self, team):
        self._settle(team)
        return {
            "team_id": team.team_id,
            "rate_limit": {"limit": team.rate_limit[0], "window_seconds": team.rate_limit[1]},
            "auto_publish_dns": team.auto_publish_dns,
            "verify_after_seconds": team.verify_after_seconds,
            "fail_after_seconds": team.fail_after_seconds,
            "keys": [{**key.listed(), "token": key.token, "permission": key.permission, "domain_id": key.domain_id}
                     for key in team.keys.values()],
            "domains": [{**domain.detailed(), "dns_published": domain.dns_published,
                         "fqdns": [record["_fqdn"] for record in domain.records]}
                        for domain in team.domains.values()],
        }

    def _control_team(self, api_key):
        owner = self._by_token.get(api_key) if isinstance(api_key, str) else None
        if owner is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "no Resend team with that api_key")
        return self._teams[owner[0]]

    @control_route("POST", "/resend/accounts")
    def control_add_team(self, request):
        api_key = json_object(request).get("api_key")
        if api_key is not None and (not isinstance(api_key, str) or not KEY_PATTERN.match(api_key)):
            raise HttpError(HTTPStatus.BAD_REQUEST, "api_key must be re_ + 8 + _ + 24 letters or digits")
        return Response(HTTPStatus.OK, self.add_team(api_key))

    @control_route("GET", "/resend/accounts/{api_key}")
    def control_get_team(self, request, api_key):
        with self.lock:
            return Response(HTTPStatus.OK, self._team_state(self._control_team(api_key)))

    @control_route("POST", "/resend/accounts/settings")
    def control_settings(self, request):
        """{"api_key", "auto_publish_dns"?, "verify_after_seconds"?, "fail_after_seconds"?}; null restores a
        default."""
        body = json_object(request)
        defaults = {"auto_publish_dns": False, "verify_after_seconds": VERIFY_AFTER_SECONDS,
                    "fail_after_seconds": FAIL_AFTER_SECONDS}
        unknown = set(body) - {"api_key", *defaults}
        if unknown:
            raise HttpError(HTTPStatus.BAD_REQUEST, "unknown settings %s" % sorted(unknown))
        with self.lock:
            team = self._control_team(body.get("api_key"))
            for name, default in defaults.items():
                if name not in body:
                    continue
                value = default if body[name] is None else body[name]
                valid = isinstance(value, bool) if name == "auto_publish_dns" else (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0)
                if not valid:
                    raise HttpError(HTTPStatus.BAD_REQUEST, "%s must be %s or null" % (
                        name, "true or false" if name == "auto_publish_dns" else "a number >= 0"))
                setattr(team, name, value)
            return Response(HTTPStatus.OK, self._team_state(team))

    @control_route("POST", "/resend/domains/publish-dns")
    def control_publish_dns(self, request):
        """{"api_key", "name"}: the domain's records are now at its DNS host (the sandbox DNS)."""
        body = json_object(request)
        with self.lock:
            team = self._control_team(body.get("api_key"))
            wanted = str(body.get("name") or "").rstrip(".").lower()
            domain = next((item for item in team.domains.values() if item.name == wanted), None)
            if domain is None:
                raise HttpError(HTTPStatus.NOT_FOUND, "the team has no domain %r" % wanted)
            return Response(HTTPStatus.OK, {"name": domain.name, "published": self.publish_dns(domain)})

    @control_route("POST", "/resend/rate-limit")
    def control_rate_limit(self, request):
        """Requests per team and window; `limit` null restores 5 per second."""
        body = json_object(request)
        limit, window_seconds = rate_limit_setting(body, RATE_LIMIT_WINDOW_SECONDS)
        with self.lock:
            team = self._control_team(body.get("api_key"))
            team.rate_limit = (RATE_LIMIT, RATE_LIMIT_WINDOW_SECONDS) if limit is None else (limit, window_seconds)
            self._rate_limiter.forget(lambda key: key == (team.team_id,))
            limit, window_seconds = team.rate_limit
        return Response(HTTPStatus.OK, {"limit": limit, "window_seconds": window_seconds})


def _number(value):
    return str(int(value)) if float(value).is_integer() else str(value)


def module_examples_settings(sandbox):
    """What the collection's module EXAMPLES need to run against this emulator
    (tests/integration/test_module_examples.py asks every emulator in SERVICES): the demo team's domains
    get their records published at once, so the example that waits for verification gets it."""
    sandbox.control("POST", "/resend/accounts/settings", {"api_key": DEMO_RESEND_API_KEY, "auto_publish_dns": True})
    return {"env": {"RESEND_API_URL": sandbox.url("resend_api")},
            "vars": {"resend_api_key": DEMO_RESEND_API_KEY}}
