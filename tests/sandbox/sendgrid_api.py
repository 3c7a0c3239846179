"""Emulated SendGrid (Twilio SendGrid) v3 API: API keys (`/v3/api_keys`) and verified single senders
(`/v3/verified_senders`), as the collection's SendGrid modules use them. It registers SendGrid's relay
backend (`smtp.sendgrid.net`, login `apikey` with a live API key holding `mail.send`, SendGrid's 550
for a From address that is not a verified Sender Identity; see core.RelayBackend).

Behaviour follows ../shared/reference/sendgrid.md and the OpenAPI descriptions
../shared/specs/sendgrid-api-keys_v3.json and sendgrid-verified-senders_v3.json (twilio/sendgrid-oai);
README.md in this folder ("Emulated behaviour: SendGrid API") lists every behaviour with its source
and says which details are assumed.
"""

import email.utils
import hmac
import re
import secrets
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

from .core import (END_OF_DATA, IMPLICIT_TLS, STARTTLS, FixedWindowRateLimiter, HttpError, HttpService,
                   RelayBackend, Response, auto_verify_delay, control_route, json_object, rate_limit_setting, route)

# The seeded demo account's admin key (`--seed default`): "SG." + 22 + "." + 43 characters, like a real key.
DEMO_SENDGRID_API_KEY = "SG.KartoSandboxDemoKey001.KartoSandboxDemoSendgridAdminKey00000000001"

KEY_PATTERN = re.compile(r"^SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$")
EMAIL_PATTERN = re.compile(
    r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")

# SendGrid adds these to every key's scopes (reference §0: anna-money/terraform-provider-sendgrid README;
# spec ApiKeyScopesResponse example).
ADDED_SCOPES = ("sender_verification_eligible", "2fa_required")
# What a key created without `scopes` ("Full Access", spec CreateApiKey) lists: a representative subset of
# the permission list (assumed: the full list is long and no client here reads it).
FULL_ACCESS_SCOPES = (
    "alerts.create", "alerts.delete", "alerts.read", "alerts.update",
    "api_keys.create", "api_keys.delete", "api_keys.read", "api_keys.update",
    "mail.batch.create", "mail.batch.delete", "mail.batch.read", "mail.batch.update", "mail.send",
    "user.profile.read", "user.profile.update",
)
MAX_KEYS = 100  # "If the number of maximum keys, 100, is reached, a 403 status will be returned."

# Requests per key, endpoint and window before 429 (assumed numbers: SendGrid documents limits per
# endpoint without a table; 600 per minute is the figure of its 2019 changelog for v2 endpoints).
RATE_LIMIT = 600
RATE_LIMIT_WINDOW_SECONDS = 60

# Texts (see README for sources; "assumed" ones are marked there).
NO_AUTH_TEXT = "authorization required"
BAD_KEY_TEXT = "The provided authorization grant is invalid, expired, or revoked"
FORBIDDEN_TEXT = "access forbidden"
TOO_MANY_TEXT = "too many requests"

# SendGrid's relay (integrating-with-the-smtp-api): smtp.sendgrid.net; 25, 587 and 2525 plain or
# STARTTLS, 465 SSL. The address is TEST-NET-3, standing in for SendGrid's in Go's dial errors.
RELAY_HOSTS = ("smtp.sendgrid.net",)
RELAY_PORTS = {465: IMPLICIT_TLS, 587: STARTTLS, 25: STARTTLS, 2525: STARTTLS}
RELAY_ADDRESS = "203.0.113.30"
RELAY_LOGIN = "apikey"
# Observed: the 550 comes as the answer to the message (Python smtplib SMTPDataError, CoderBounty/coderbounty
# issue 364; nodemailer "Message failed ... DATA", LandOfTheRair/LandOfTheRair issue 308), so SendGrid
# checks the From at the end of DATA. Relay knob sender_check=mail_from moves it to MAIL FROM.
RELAY_SENDER_CHECK = END_OF_DATA
AUTH_OK_REPLY = "235 Authentication successful"
# A revoked or unknown key (observed, sendgrid/sendgrid-nodejs issue 1105).
AUTH_REVOKED_REPLY = "535 Authentication failed: The provided authorization grant is invalid, expired, or revoked"
# A live key without mail.send (assumed: SendGrid's documented refusal of a login, sendgrid/docs issue 2491).
AUTH_REFUSED_REPLY = "535 Authentication failed: Bad username / password"
SENDER_OK_REPLY = "250 Sender address accepted"
SENDER_REFUSED_REPLY = (
    "550 The from address does not match a verified Sender Identity. Mail cannot be sent until this error is "
    "resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ to see the Sender "
    "Identity requirements")

# The Domain Warn List of a new account: the spec's examples (soft gmail.com, hard yahoo.com), plus the
# sandbox DNS's free-mail zones ro.ru and rambler.ru as hard failures, since the sandbox gives them
# p=reject (an assumption there; whether SendGrid lists them is unknown, reference §5-6).
DEFAULT_SOFT_FAILURES = ("gmail.com",)
DEFAULT_HARD_FAILURES = ("yahoo.com", "ro.ru", "rambler.ru")

# VerifiedSenderRequest: field -> maxLength (spec); the first three are required.
SENDER_FIELDS = {
    "nickname": 100, "from_email": 256, "reply_to": 256, "from_name": 256, "reply_to_name": 256,
    "address": 100, "address2": 100, "state": 2, "city": 150, "zip": 10, "country": 100,
}
SENDER_REQUIRED = ("nickname", "from_email", "reply_to")
SENDER_EMAIL_FIELDS = ("from_email", "reply_to")


class ApiError(HttpError):
    """A SendGrid error answer: {"errors": [{"field", "message"[, "error_id"]}]}."""

    def __init__(self, status, message, field_name=None, headers=None, error_id=False):
        super().__init__(status, message, headers)
        self.field = field_name
        self.error_id = error_id


def new_key_value():
    """(id, value): value "SG.<22>.<43>" (69 characters: "Twilio SendGrid API keys are 69 characters long")."""
    key_id = secrets.token_urlsafe(16)  # 22 characters
    return key_id, "SG.%s.%s" % (key_id, secrets.token_urlsafe(32))  # 43 characters


def address_of(mail_from):
    return email.utils.parseaddr(mail_from or "")[1].strip().lower()


@dataclass
class ApiKey:
    api_key_id: str
    name: str
    value: str
    scopes: list
    full_access: bool = False

    def may(self, scope):
        return self.full_access or scope in self.scopes

    def listed(self):
        return {"api_key_id": self.api_key_id, "name": self.name}

    def detailed(self):
        return {"api_key_id": self.api_key_id, "name": self.name, "scopes": list(self.scopes)}


@dataclass
class Sender:
    id: int
    fields: dict
    verified: bool = False
    verified_by: str = None  # "click", "token", "auto"
    mails: list = field(default_factory=list)  # {"to", "time", "token"}
    auto_verify_at: float = None

    def settle(self, now):
        if not self.verified and self.auto_verify_at is not None and now >= self.auto_verify_at:
            self.verified, self.verified_by = True, "auto"

    def as_returned(self):
        body = {"id": self.id}
        for name in SENDER_FIELDS:
            body[name] = self.fields.get(name, "")
        body.update(verified=self.verified, locked=False)
        return body


@dataclass
class Account:
    account_id: int
    keys: dict = field(default_factory=dict)  # api_key_id -> ApiKey, creation order
    senders: dict = field(default_factory=dict)  # id -> Sender
    rate_limit: tuple = (RATE_LIMIT, RATE_LIMIT_WINDOW_SECONDS)
    get_key_shape: str = "flat"  # "flat" (what clients observe) or "result" (what the spec documents)
    soft_failures: tuple = DEFAULT_SOFT_FAILURES
    hard_failures: tuple = DEFAULT_HARD_FAILURES


class SendgridApi(HttpService):
    name = "sendgrid_api"

    def __init__(self, context):
        super().__init__(context)
        self._accounts = {}  # account id -> Account
        self._by_value = {}  # key value -> (account id, api_key_id)
        self._tokens = {}  # verification token -> (account id, sender id)
        self._next_account = 1
        self._next_sender = 1
        self._auto_verify_default = None
        self._auto_verify = {}  # account id -> seconds or None
        self._rate_limiter = FixedWindowRateLimiter()
        context.relay_backends.register(RelayBackend(
            name="sendgrid", hosts=RELAY_HOSTS, ports=RELAY_PORTS, address=RELAY_ADDRESS,
            authenticate=self.authenticate, sender_allowed=self.sender_allowed,
            sender_check=RELAY_SENDER_CHECK))

    def seed_demo(self):
        self.add_account(DEMO_SENDGRID_API_KEY)

    # Errors and answers in SendGrid's shape

    def error_body(self, message, field_name=None, error_id=False):
        error = {"field": field_name, "message": message}
        if error_id:
            error["error_id"] = uuid.uuid4().hex[:20]
        return {"errors": [error]}

    def handle(self, request):
        try:
            return self.router.dispatch(request)
        except ApiError as error:
            return Response(error.status, self.error_body(error.message, error.field, error.error_id), error.headers)
        except HttpError as error:  # unknown path (404) or method (405)
            return Response(error.status, self.error_body(error.message), error.headers)
        except Exception:  # an emulator bug: say so loudly, answer like a server would
            traceback.print_exc(file=sys.stderr)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, {"errors": [{"message": "Internal server error"}]})

    def fault_headers(self, request, status):
        """A faulted answer carries the X-RateLimit-* headers every answer to a known key carries."""
        with self.lock:
            found = self._key_of(request)
            if found is None:
                return {}
            account, key = found
            window = self._rate_limiter.peek(self._window_key(key, request), *account.rate_limit)
        headers = self._rate_headers(window)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            headers["X-RateLimit-Remaining"] = "0"
        return headers

    @staticmethod
    def _rate_headers(window):
        # X-RateLimit-Reset is a Unix timestamp (rate-limits page: "X-RateLimit-Reset: 1392815263").
        return {"X-RateLimit-Limit": str(window.limit), "X-RateLimit-Remaining": str(window.remaining),
                "X-RateLimit-Reset": str(int(time.time()) + window.reset_seconds)}

    def _window_key(self, key, request):
        route_name, _params = self.router.match(request)
        return (key.api_key_id, route_name or request.method + " " + request.path)

    def _key_of(self, request):
        token = request.bearer_token()
        account_id, key_id = self._by_value.get(token, (None, None)) if token else (None, None)
        account = self._accounts.get(account_id)
        key = account.keys.get(key_id) if account else None
        return (account, key) if key else None

    def _admit(self, request, scope=None):
        """Authenticate (Bearer), count against the key's window for this endpoint, check the scope.
        Returns (account, key, rate-limit headers); raises 401, 429 or 403. Call with self.lock held."""
        if request.bearer_token() is None:
            raise ApiError(HTTPStatus.UNAUTHORIZED, NO_AUTH_TEXT)
        found = self._key_of(request)
        if found is None:
            raise ApiError(HTTPStatus.UNAUTHORIZED, BAD_KEY_TEXT)
        account, key = found
        window = self._rate_limiter.hit(self._window_key(key, request), *account.rate_limit)
        headers = self._rate_headers(window)
        if not window.allowed:
            raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, TOO_MANY_TEXT, headers=headers)
        if scope == "full" and not key.full_access or scope not in (None, "full") and not key.may(scope):
            raise ApiError(HTTPStatus.FORBIDDEN, FORBIDDEN_TEXT, headers=headers)
        return account, key, headers

    @staticmethod
    def _body(request, headers):
        if request.json_error is not None or not isinstance(request.json, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "request body is invalid JSON", headers=headers)
        return request.json

    # API keys

    @route("GET", "/v3/api_keys")
    def list_keys(self, request):
        with self.lock:
            account, _key, headers = self._admit(request, "api_keys.read")
            keys = [key.listed() for key in account.keys.values()]
            limit = request.query.get("limit")
            if limit is not None:
                if not limit.isdigit() or int(limit) < 1:
                    raise ApiError(HTTPStatus.BAD_REQUEST, "limit must be a positive integer", "limit",
                                   headers=headers)
                keys = keys[:int(limit)]
            return Response(HTTPStatus.OK, {"result": keys}, headers)

    @route("POST", "/v3/api_keys")
    def create_key(self, request):
        with self.lock:
            account, creator, headers = self._admit(request, "api_keys.create")
            body = self._body(request, headers)
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                raise ApiError(HTTPStatus.BAD_REQUEST, "missing required argument", "name", headers=headers)
            scopes = body.get("scopes")
            if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
                raise ApiError(HTTPStatus.BAD_REQUEST, "scopes must be an array of strings", "scopes", headers=headers)
            if len(account.keys) >= MAX_KEYS:
                raise ApiError(HTTPStatus.FORBIDDEN, "Cannot create more than %d API keys" % MAX_KEYS,
                               headers=headers)
            if scopes is not None:
                beyond = [s for s in scopes if s not in ADDED_SCOPES and not creator.may(s)]
                if beyond:
                    # "You may not give an API key greater permissions than you currently have."
                    raise ApiError(HTTPStatus.FORBIDDEN, FORBIDDEN_TEXT, "scopes", headers=headers)
            key = self._new_key(account, name, scopes)
            return Response(HTTPStatus.CREATED, {"api_key": key.value, **key.detailed()}, headers)

    @route("GET", "/v3/api_keys/{api_key_id}")
    def get_key(self, request, api_key_id):
        with self.lock:
            account, _key, headers = self._admit(request, "api_keys.read")
            key = self._key_by_id(account, api_key_id, headers)
            body = key.detailed() if account.get_key_shape == "flat" else {"result": [key.detailed()]}
            return Response(HTTPStatus.OK, body, headers)

    @route("PATCH", "/v3/api_keys/{api_key_id}")
    def rename_key(self, request, api_key_id):
        with self.lock:
            account, _key, headers = self._admit(request, "api_keys.update")
            key = self._key_by_id(account, api_key_id, headers)
            body = self._body(request, headers)
            if not isinstance(body.get("name"), str) or not body["name"].strip():
                raise ApiError(HTTPStatus.BAD_REQUEST, "missing required argument", "name", headers=headers)
            key.name = body["name"]
            return Response(HTTPStatus.OK, key.listed(), headers)

    @route("PUT", "/v3/api_keys/{api_key_id}")
    def update_key(self, request, api_key_id):
        with self.lock:
            account, creator, headers = self._admit(request, "api_keys.update")
            key = self._key_by_id(account, api_key_id, headers)
            body = self._body(request, headers)
            if not isinstance(body.get("name"), str) or not body["name"].strip():
                raise ApiError(HTTPStatus.BAD_REQUEST, "missing required argument", "name", headers=headers)
            scopes = body.get("scopes")
            if scopes is not None:
                if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
                    # "pass scopes with at least one scope" (UpdateApiKey description).
                    raise ApiError(HTTPStatus.BAD_REQUEST, "scopes must be a non-empty array of strings", "scopes",
                                   headers=headers)
                if [s for s in scopes if s not in ADDED_SCOPES and not creator.may(s)]:
                    raise ApiError(HTTPStatus.FORBIDDEN, FORBIDDEN_TEXT, "scopes", headers=headers)
                key.scopes = with_added_scopes(scopes)
                key.full_access = False
            key.name = body["name"]
            return Response(HTTPStatus.OK, key.detailed(), headers)

    @route("DELETE", "/v3/api_keys/{api_key_id}")
    def delete_key(self, request, api_key_id):
        with self.lock:
            account, _key, headers = self._admit(request, "api_keys.delete")
            key = self._key_by_id(account, api_key_id, headers)
            del account.keys[key.api_key_id]
            self._by_value.pop(key.value, None)
            return Response(HTTPStatus.NO_CONTENT, None, headers)

    @staticmethod
    def _key_by_id(account, api_key_id, headers):
        key = account.keys.get(api_key_id)
        if key is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "unable to find API Key", headers=headers)
        return key

    def _new_key(self, account, name, scopes, full_access=False):
        key_id, value = new_key_value()
        if scopes is None:
            full_access, scopes = True, list(FULL_ACCESS_SCOPES)
        key = ApiKey(key_id, name, value, with_added_scopes(scopes), full_access)
        account.keys[key_id] = key
        self._by_value[value] = (account.account_id, key_id)
        return key

    # Verified senders (Full Access keys only: the permission names are not in the sources, see README)

    @route("GET", "/v3/verified_senders")
    def list_senders(self, request):
        with self.lock:
            account, _key, headers = self._admit(request, "full")
            self._settle(account)
            senders = sorted(account.senders.values(), key=lambda sender: sender.id)
            numbers = {}
            for name in ("limit", "lastSeenID", "id"):
                value = request.query.get(name)
                if value is not None:
                    if not value.isdigit():
                        raise ApiError(HTTPStatus.BAD_REQUEST, "%s must be a number" % name, name,
                                       headers=headers, error_id=True)
                    numbers[name] = int(value)
            if "id" in numbers:
                senders = [sender for sender in senders if sender.id == numbers["id"]]
            if "lastSeenID" in numbers:
                senders = [sender for sender in senders if sender.id > numbers["lastSeenID"]]
            if "limit" in numbers:
                senders = senders[:numbers["limit"]]
            return Response(HTTPStatus.OK, {"results": [sender.as_returned() for sender in senders]}, headers)

    @route("POST", "/v3/verified_senders")
    def create_sender(self, request):
        with self.lock:
            account, _key, headers = self._admit(request, "full")
            fields = self._sender_fields(self._body(request, headers), headers)
            wanted = fields["from_email"].lower()
            if any(s.fields["from_email"].lower() == wanted for s in account.senders.values()):
                raise ApiError(HTTPStatus.BAD_REQUEST, "already exists", "from_email", headers=headers, error_id=True)
            sender = Sender(self._next_sender, fields)
            self._next_sender += 1
            account.senders[sender.id] = sender
            self._send_verification_mail(account, sender)
            self._settle(account)  # auto-verify after 0 s: the link counts as clicked at once
            return Response(HTTPStatus.CREATED, sender.as_returned(), headers)

    @route("PATCH", "/v3/verified_senders/{sender_id}")
    def update_sender(self, request, sender_id):
        with self.lock:
            account, _key, headers = self._admit(request, "full")
            sender = self._sender_by_id(account, sender_id, headers)
            # PATCH reuses the create schema, which requires nickname, from_email and reply_to.
            fields = self._sender_fields(self._body(request, headers), headers)
            changed_address = fields["from_email"].lower() != sender.fields["from_email"].lower()
            sender.fields.update(fields)
            if changed_address:
                sender.verified, sender.verified_by = False, None
                self._send_verification_mail(account, sender)
            self._settle(account)
            return Response(HTTPStatus.OK, sender.as_returned(), headers)

    @route("DELETE", "/v3/verified_senders/{sender_id}")
    def delete_sender(self, request, sender_id):
        with self.lock:
            account, _key, headers = self._admit(request, "full")
            sender = self._sender_by_id(account, sender_id, headers)
            del account.senders[sender.id]
            return Response(HTTPStatus.NO_CONTENT, None, headers)

    @route("POST", "/v3/verified_senders/resend/{sender_id}")
    def resend(self, request, sender_id):
        with self.lock:
            account, _key, headers = self._admit(request, "full")
            sender = self._sender_by_id(account, sender_id, headers)
            self._settle(account)
            if sender.verified:
                raise ApiError(HTTPStatus.BAD_REQUEST, "sender already verified", "id", headers=headers,
                               error_id=True)
            self._send_verification_mail(account, sender)
            return Response(HTTPStatus.NO_CONTENT, None, headers)

    @route("GET", "/v3/verified_senders/domains")
    def domain_warn_list(self, request):
        with self.lock:
            account, _key, headers = self._admit(request, "full")
            return Response(HTTPStatus.OK, {"results": {"soft_failures": list(account.soft_failures),
                                                        "hard_failures": list(account.hard_failures)}}, headers)

    @route("GET", "/v3/verified_senders/steps_completed")
    def steps_completed(self, request):
        with self.lock:
            account, _key, headers = self._admit(request, "full")
            self._settle(account)
            verified = any(sender.verified for sender in account.senders.values())
            return Response(HTTPStatus.OK, {"results": {"sender_verified": verified, "domain_verified": False}},
                            headers)

    @route("GET", "/v3/verified_senders/verify/{token}")
    def verify_token(self, request, token):
        with self.lock:
            account, _key, headers = self._admit(request)
            owner, sender_id = self._tokens.get(token, (None, None))
            if owner != account.account_id or sender_id not in account.senders:
                raise ApiError(HTTPStatus.NOT_FOUND, "resource not found", headers=headers, error_id=True)
            sender = account.senders[sender_id]
            if not sender.verified:
                sender.verified, sender.verified_by = True, "token"
            return Response(HTTPStatus.NO_CONTENT, None, headers)

    @staticmethod
    def _sender_fields(body, headers):
        """The request's VerifiedSenderRequest fields, or 400 naming the first bad one (spec order)."""
        for name in SENDER_REQUIRED:
            if body.get(name) in (None, ""):
                raise ApiError(HTTPStatus.BAD_REQUEST, "%s is required" % name, name, headers=headers, error_id=True)
        fields = {}
        for name, limit in SENDER_FIELDS.items():
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ApiError(HTTPStatus.BAD_REQUEST, "%s must be a string" % name, name, headers=headers,
                               error_id=True)
            if len(value) > limit:
                raise ApiError(HTTPStatus.BAD_REQUEST, "%s must be at most %d characters" % (name, limit), name,
                               headers=headers, error_id=True)
            if name in SENDER_EMAIL_FIELDS and not EMAIL_PATTERN.match(value):
                raise ApiError(HTTPStatus.BAD_REQUEST, "%s must be a valid email address" % name, name,
                               headers=headers, error_id=True)
            fields[name] = value
        return fields

    @staticmethod
    def _sender_by_id(account, sender_id, headers):
        sender = account.senders.get(int(sender_id)) if sender_id.isdigit() else None
        if sender is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "resource not found", headers=headers, error_id=True)
        return sender

    def _send_verification_mail(self, account, sender):
        token = secrets.token_urlsafe(16)
        self._tokens[token] = (account.account_id, sender.id)
        sender.mails.append({"to": sender.fields["from_email"], "time": time.time(), "token": token})
        after = self._auto_verify.get(account.account_id, self._auto_verify_default)
        if after is not None and sender.auto_verify_at is None:
            sender.auto_verify_at = time.monotonic() + after

    @staticmethod
    def _settle(account):
        now = time.monotonic()
        for sender in account.senders.values():
            sender.settle(now)

    # Relay backend (thread-safe)

    def authenticate(self, login, password):
        """None for a login other than "apikey"; else (ok, reply): ok for a live key with mail.send."""
        if login != RELAY_LOGIN:
            return None
        with self.lock:
            account_id, key_id = None, None
            for value, (owner, candidate) in self._by_value.items():
                if isinstance(password, str) and hmac.compare_digest(value.encode(), password.encode()):
                    account_id, key_id = owner, candidate
            account = self._accounts.get(account_id)
            key = account.keys.get(key_id) if account else None
            if key is None:
                return False, AUTH_REVOKED_REPLY
            if not key.may("mail.send"):
                return False, AUTH_REFUSED_REPLY
            # SendGrid's login is always "apikey": the session is the key's account.
            return True, AUTH_OK_REPLY, account.account_id

    def sender_allowed(self, account_id, mail_from):
        """(ok, reply): ok when the address is a verified single sender of the account whose key
        logged in (the identity authenticate named); else SendGrid's 550."""
        address = address_of(mail_from)
        with self.lock:
            account = self._accounts.get(account_id)
            if account is not None and address:
                self._settle(account)
                if any(s.verified and s.fields["from_email"].lower() == address for s in account.senders.values()):
                    return True, SENDER_OK_REPLY
        return False, SENDER_REFUSED_REPLY

    # Accounts (seed and control API)

    def add_account(self, api_key=None, scopes=None):
        """A new account with one admin key (Full Access, or the given scopes); returns its state."""
        with self.lock:
            account = Account(self._next_account)
            self._next_account += 1
            self._accounts[account.account_id] = account
            key = self._new_key(account, "karto sandbox admin", scopes)
            if api_key is not None:
                if api_key in self._by_value:
                    raise HttpError(HTTPStatus.BAD_REQUEST, "that api_key already exists")
                self._by_value.pop(key.value)
                key.value = api_key
                self._by_value[api_key] = (account.account_id, key.api_key_id)
            state = self._account_state(account)
            state["api_key"] = key.value
            return state

    def _account_state(self, account):
        self._settle(account)
        return {
            "account_id": account.account_id,
            "rate_limit": {"limit": account.rate_limit[0], "window_seconds": account.rate_limit[1]},
            "get_key_shape": account.get_key_shape,
            "soft_failures": list(account.soft_failures),
            "hard_failures": list(account.hard_failures),
            "auto_verify_after_seconds": self._auto_verify.get(account.account_id, self._auto_verify_default),
            "keys": [{**key.detailed(), "api_key": key.value, "full_access": key.full_access}
                     for key in account.keys.values()],
            "senders": [{**sender.as_returned(), "verified_by": sender.verified_by,
                         "verification_mail_count": len(sender.mails),
                         "verification_mails": [dict(mail) for mail in sender.mails]}
                        for sender in sorted(account.senders.values(), key=lambda s: s.id)],
        }

    def _control_account(self, api_key):
        owner = self._by_value.get(api_key) if isinstance(api_key, str) else None
        if owner is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "no SendGrid account with that api_key")
        return self._accounts[owner[0]]

    @control_route("POST", "/sendgrid/accounts")
    def control_add_account(self, request):
        body = json_object(request)
        api_key, scopes = body.get("api_key"), body.get("scopes")
        if api_key is not None and (not isinstance(api_key, str) or not KEY_PATTERN.match(api_key)):
            raise HttpError(HTTPStatus.BAD_REQUEST, "api_key must be SG. + 22 + . + 43 characters of A-Za-z0-9_-")
        if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
            raise HttpError(HTTPStatus.BAD_REQUEST, "scopes must be a list of scope names")
        return Response(HTTPStatus.OK, self.add_account(api_key, scopes))

    @control_route("GET", "/sendgrid/accounts/{api_key}")
    def control_get_account(self, request, api_key):
        with self.lock:
            return Response(HTTPStatus.OK, self._account_state(self._control_account(api_key)))

    @control_route("POST", "/sendgrid/accounts/settings")
    def control_settings(self, request):
        """{"api_key", "get_key_shape"?: "flat"|"result", "soft_failures"?, "hard_failures"?} (null restores)."""
        body = json_object(request)
        with self.lock:
            account = self._control_account(body.get("api_key"))
            unknown = set(body) - {"api_key", "get_key_shape", "soft_failures", "hard_failures"}
            if unknown:
                raise HttpError(HTTPStatus.BAD_REQUEST, "unknown settings %s" % sorted(unknown))
            if "get_key_shape" in body:
                if body["get_key_shape"] not in (None, "flat", "result"):
                    raise HttpError(HTTPStatus.BAD_REQUEST, "get_key_shape must be flat, result or null")
                account.get_key_shape = body["get_key_shape"] or "flat"
            for name, default in (("soft_failures", DEFAULT_SOFT_FAILURES), ("hard_failures", DEFAULT_HARD_FAILURES)):
                if name in body:
                    value = body[name]
                    if value is not None and (not isinstance(value, list) or not all(isinstance(d, str) for d in value)):
                        raise HttpError(HTTPStatus.BAD_REQUEST, "%s must be a list of domains or null" % name)
                    setattr(account, name, tuple(d.lower() for d in value) if value is not None else default)
            return Response(HTTPStatus.OK, self._account_state(account))

    @control_route("POST", "/sendgrid/senders/verify")
    def control_verify_sender(self, request):
        """The mailbox owner clicks the link: by `token`, or by api_key + from_email."""
        body = json_object(request)
        with self.lock:
            if body.get("token") is not None:
                owner, sender_id = self._tokens.get(body["token"], (None, None))
                account = self._accounts.get(owner)
                sender = account.senders.get(sender_id) if account else None
                how = "token"
            else:
                account = self._control_account(body.get("api_key"))
                wanted = str(body.get("from_email") or "").lower()
                sender = next((s for s in account.senders.values() if s.fields["from_email"].lower() == wanted), None)
                how = "click"
            if sender is None:
                raise HttpError(HTTPStatus.NOT_FOUND, "no such single sender or token")
            if not sender.verified:
                sender.verified, sender.verified_by = True, how
            return Response(HTTPStatus.OK, sender.as_returned())

    @control_route("POST", "/sendgrid/auto-verify")
    def control_auto_verify(self, request):
        """Verification mails sent from now on count as clicked `after_seconds` later (null: off); for
        one account (api_key), or without it for every account without its own setting."""
        body = json_object(request)
        after = auto_verify_delay(body)
        with self.lock:
            if body.get("api_key") is None:
                self._auto_verify_default = after
            else:
                self._auto_verify[self._control_account(body["api_key"]).account_id] = after
        return Response(HTTPStatus.OK, {"api_key": body.get("api_key"), "after_seconds": after})

    @control_route("POST", "/sendgrid/rate-limit")
    def control_rate_limit(self, request):
        """Requests per key, endpoint and window for one account; `limit` null restores 600 per 60 s."""
        body = json_object(request)
        limit, window_seconds = rate_limit_setting(body, RATE_LIMIT_WINDOW_SECONDS)
        with self.lock:
            account = self._control_account(body.get("api_key"))
            account.rate_limit = (RATE_LIMIT, RATE_LIMIT_WINDOW_SECONDS) if limit is None else (limit, window_seconds)
            ids = set(account.keys)
            self._rate_limiter.forget(lambda key: key[0] in ids)
            limit, window_seconds = account.rate_limit
        return Response(HTTPStatus.OK, {"limit": limit, "window_seconds": window_seconds})


def with_added_scopes(scopes):
    """The key's scopes as SendGrid stores them: the given ones plus the two it adds, no duplicates."""
    return list(dict.fromkeys([*scopes, *ADDED_SCOPES]))


def module_examples_settings(sandbox):
    """What the collection's module EXAMPLES need to run against this emulator
    (tests/integration/test_module_examples.py asks every emulator in SERVICES)."""
    sandbox.control("POST", "/sendgrid/auto-verify", {"api_key": DEMO_SENDGRID_API_KEY, "after_seconds": 0})
    return {"env": {"SENDGRID_API_URL": sandbox.url("sendgrid_api")},
            "vars": {"sendgrid_api_key": DEMO_SENDGRID_API_KEY}}
