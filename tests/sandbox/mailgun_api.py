"""Emulated Mailgun API: SMTP credentials (`/v3/domains/{domain}/credentials`), domain details
(`/v4/domains/{name}`, `/verify`) and the sandbox domain's authorized recipients
(`/v5/sandbox/auth_recipients`), as the collection's Mailgun modules use them. It registers Mailgun's
relay backend (`smtp.mailgun.org`, `smtp.eu.mailgun.org`; logins `login@domain` with their passwords;
a domain that is not active refused at the end of DATA; see core.RelayBackend).

Behaviour follows ../shared/reference/providers-smtp2go-resend-mailgun.md section 3 and Mailgun's
OpenAPI description ../shared/specs/mailgun-openapi.yaml; README.md in this folder ("Emulated
behaviour: Mailgun API") lists every behaviour with its source and says which details are assumed.
"""

import base64
import binascii
import email.parser
import email.policy
import email.utils
import hmac
import secrets
import string
import sys
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus

from .core import (END_OF_DATA, IMPLICIT_TLS, STARTTLS, FixedWindowRateLimiter, HttpError, HttpService,
                   RelayBackend, Response, control_route, json_object, rate_limit_setting, route)

# The seeded demo account (`--seed default`): a key shaped like Mailgun's current private keys
# (32 hex, "-", 8 hex, "-", 8 hex; assumed from keys seen in public examples), its sandbox domain and
# one active custom domain the module EXAMPLES use.
DEMO_MAILGUN_API_KEY = "6b6172746f73616e64626f786d61696c-00000001-6d61696c"
DEMO_SANDBOX_DOMAIN = "sandbox6b6172746f73616e64626f7864656d6f.mailgun.org"
DEMO_CUSTOM_DOMAIN = "mg.karto.test"

# Mailgun's relay (send-smtp): smtp.mailgun.org, smtp.eu.mailgun.org for EU domains; "ports 25, 465, 587,
# and 2525. Port 465 requires a TLS connection. Ports 25, 587, and 2525 ... STARTTLS". The address is
# TEST-NET-3, standing in for Mailgun's in Go's dial errors.
RELAY_HOSTS = ("smtp.mailgun.org", "smtp.eu.mailgun.org")
RELAY_PORTS = {465: IMPLICIT_TLS, 587: STARTTLS, 25: STARTTLS, 2525: STARTTLS}
RELAY_ADDRESS = "203.0.113.40"
# Observed: the sandbox refusal comes as the answer to the message (nodemailer "Message failed: 554 Sandbox
# subdomains are ...", stanford-oval/genie-cloud issue 60), so Mailgun judges after DATA.
RELAY_SENDER_CHECK = END_OF_DATA
# Observed in many reports (e.g. pivorakmeetup/pivorak-web-app issue 712, mailgun/documentation issue 132).
AUTH_FAILED_REPLY = "535 5.7.0 Mailgun is not loving your login or password"
AUTH_OK_REPLY = "235 2.0.0 OK"  # assumed text
SENDER_OK_REPLY = "250 OK"  # assumed text
# "Domain <d> is not allowed to send: <reason>" (observed with 421 for a sandbox domain, baserow issue 1682,
# and for an account not activated, Monstarrrr/rebutify issue 162); the reasons for an unverified or a
# disabled domain are assumed.
NOT_ALLOWED_REPLY = "421 Domain {domain} is not allowed to send: {reason}"
NOT_ALLOWED_REASONS = {
    "unverified": "The domain is unverified and requires DNS configuration. Log in to your control panel to "
                  "view required DNS records.",
    "disabled": "The domain is disabled. Log in to your control panel for details.",
}

# Texts (see README for sources; assumed ones are marked there).
FORBIDDEN_TEXT = "Forbidden"  # 401, plain text (observed; the spec's 401 example of /v3/{domain}/messages)
DOMAIN_NOT_FOUND = "Domain not found"
CREDENTIALS_NOT_FOUND = "Credentials not found"
LOGIN_MISSING = "Parameter 'login' is missing"
LIMIT_TOO_LARGE = "Limit parameter can't be larger than 1000"
PASSWORD_TOO_SHORT = "Password is too short. It must be between 5 and 32 characters."
PASSWORD_TOO_LONG = "Password is too long. It must be between 5 and 32 characters."  # assumed, mirrors the short one
SAME_PASSWORD = "New password cannot be the same as old password."
TOO_MANY_TEXT = "account-requests-per-sec limit exceeded, try again after {seconds} seconds"
GENERATED_NOTE = "Please save the generated password(s): they will not be shown again."  # assumed

PASSWORD_MIN, PASSWORD_MAX = 5, 32
GENERATED_PASSWORD_LENGTH = 24  # assumed
SANDBOX_RECIPIENT_LIMIT = 5
# Requests per account and window before 429 (assumed numbers: Mailgun documents 429, not its limits).
RATE_LIMIT = 300
RATE_LIMIT_WINDOW_SECONDS = 60
STATES = ("active", "unverified", "disabled")


def rfc2822(when=None):
    """'Fri, 23 Jan 2026 10:16:00 +0000', the credentials' created_at (the spec's pattern)."""
    return email.utils.formatdate(when if when is not None else time.time()).replace("-0000", "+0000")


def rfc1123(when=None):
    """'Thu, 13 Oct 2011 18:02:00 GMT', the domains' created_at (spec example)."""
    return email.utils.formatdate(when if when is not None else time.time(), usegmt=True)


def form_fields(request):
    """The request's form fields, {name: [values]}: multipart/form-data (the spec's content type) or
    application/x-www-form-urlencoded. Any other body (JSON) holds no field Mailgun reads."""
    content_type = request.headers.get("Content-Type") or ""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return urllib.parse.parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    if not content_type.startswith("multipart/form-data"):
        return {}
    head = ("Content-Type: %s\r\nMIME-Version: 1.0\r\n\r\n" % content_type).encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    fields = {}
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True) or b""
            fields.setdefault(name, []).append(payload.decode("utf-8", "replace"))
    return fields


def new_password(length=GENERATED_PASSWORD_LENGTH):
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def address_of(mail_from):
    return email.utils.parseaddr(mail_from or "")[1].strip().lower()


@dataclass
class Credential:
    login: str
    password: str
    created: float = field(default_factory=time.time)
    system: bool = False

    def listed(self):
        # CredentialMetadata: mailbox, login, created_at, size_bytes (string or null).
        return {"mailbox": self.login, "login": self.login, "created_at": rfc2822(self.created), "size_bytes": None}


@dataclass
class Domain:
    name: str
    account: str  # the api key of its account
    kind: str = "custom"  # "custom" or "sandbox"
    state: str = "unverified"
    dns_published: bool = False
    id: str = field(default_factory=lambda: secrets.token_hex(12))
    dkim_id: str = field(default_factory=lambda: str(secrets.randbelow(900000) + 100000))
    created: float = field(default_factory=time.time)
    credentials: dict = field(default_factory=dict)  # login (lower case) -> Credential

    def as_returned(self):
        # The spec's Domain schema (its required fields); `disabled` only for a disabled domain.
        body = {"created_at": rfc1123(self.created), "id": self.id, "is_disabled": self.state == "disabled",
                "name": self.name, "require_tls": False, "skip_verification": False,
                "smtp_login": "postmaster@%s" % self.name, "spam_action": "disabled", "state": self.state,
                "type": self.kind, "use_automatic_sender_security": self.kind == "custom", "web_prefix": "email",
                "web_scheme": "https", "wildcard": False, "encrypt_incoming_message": False, "message_ttl": 259200}
        if self.state == "disabled":
            body["disabled"] = {"code": "sandbox", "note": "", "permanently": False, "reason": "disabled in the sandbox"}
        return body

    def records(self):
        """(sending, receiving) DNS records, as GET /v4/domains/{name} lists them. A sandbox domain lives
        under mailgun.org: nothing to publish (assumed)."""
        if self.kind == "sandbox":
            return [], []
        dkim = "%s._domainkey.%s.dkim1.mailgun.com"  # user-manual/domains/dkim_security
        sending = [("TXT", self.name, "v=spf1 include:mailgun.org ~all", None),
                   ("CNAME", "pdk1._domainkey.%s" % self.name, dkim % ("pdk1", self.dkim_id), None),
                   ("CNAME", "pdk2._domainkey.%s" % self.name, dkim % ("pdk2", self.dkim_id), None),
                   ("CNAME", "email.%s" % self.name, "mailgun.org", None)]
        receiving = [("MX", self.name, "mxa.mailgun.org", "10"), ("MX", self.name, "mxb.mailgun.org", "10")]
        return [self._record(*record) for record in sending], [self._record(*record) for record in receiving]

    def _record(self, kind, name, value, priority):
        record = {"is_active": True, "cached": [value] if self.dns_published else [], "name": name,
                  "record_type": kind, "valid": "valid" if self.dns_published else "unknown", "value": value}
        if priority:
            record["priority"] = priority
        return record

    def details(self):
        sending, receiving = self.records()
        return {"domain": self.as_returned(), "receiving_dns_records": receiving, "sending_dns_records": sending}


@dataclass
class Account:
    api_key: str
    sandbox_domain: str
    recipients: dict = field(default_factory=dict)  # email -> activated
    rate_limit: tuple = (RATE_LIMIT, RATE_LIMIT_WINDOW_SECONDS)


class ApiError(HttpError):
    """A Mailgun error answer: {"message": ...}, or plain text (the 401's "Forbidden")."""

    def __init__(self, status, message, headers=None, text=False):
        super().__init__(status, message, headers)
        self.text = text


class MailgunApi(HttpService):
    name = "mailgun_api"

    def __init__(self, context):
        super().__init__(context)
        self._accounts = {}  # api key -> Account
        self._domains = {}  # domain name -> Domain (names are unique across Mailgun)
        self._rate_limiter = FixedWindowRateLimiter()
        context.relay_backends.register(RelayBackend(
            name="mailgun", hosts=RELAY_HOSTS, ports=RELAY_PORTS, address=RELAY_ADDRESS,
            authenticate=self.authenticate, sender_allowed=self.sender_allowed, sender_check=RELAY_SENDER_CHECK))

    def seed_demo(self):
        self.add_account(DEMO_MAILGUN_API_KEY, sandbox_domain=DEMO_SANDBOX_DOMAIN)
        self.set_domain(DEMO_MAILGUN_API_KEY, DEMO_CUSTOM_DOMAIN, "active")

    # Errors and answers in Mailgun's shape

    def handle(self, request):
        try:
            return self.router.dispatch(request)
        except ApiError as error:
            body = error.message if error.text else self.error_body(error.message)
            return Response(error.status, body, error.headers)
        except HttpError as error:  # unknown path (404) or method (405)
            return Response(error.status, self.error_body(error.message), error.headers)
        except Exception:  # an emulator bug: say so loudly, answer like a server would
            traceback.print_exc(file=sys.stderr)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, self.error_body("Internal Server Error"))

    def _admit(self, request):
        """The account of the request's Basic credentials (user "api", password the key), counted against
        its window. Raises 401 "Forbidden" or 429. Call with self.lock held."""
        scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
        try:
            user, _, key = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, key = None, None
        account = self._accounts.get(key) if scheme.lower() == "basic" and user == "api" else None
        if account is None:
            raise ApiError(HTTPStatus.UNAUTHORIZED, FORBIDDEN_TEXT, text=True)
        window = self._rate_limiter.hit(account.api_key, *account.rate_limit)
        if not window.allowed:
            # No rate-limit headers: Mailgun documents none; the wait is in the message.
            raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, TOO_MANY_TEXT.format(seconds=max(window.reset_seconds, 1)))
        return account

    def _domain(self, account, name):
        domain = self._domains.get(name.lower())
        if domain is None or domain.account != account.api_key:
            raise ApiError(HTTPStatus.NOT_FOUND, DOMAIN_NOT_FOUND)
        return domain

    @staticmethod
    def _form(request):
        """The form fields, and the request's journal entry shows them (first value each; test-only)."""
        fields = form_fields(request)
        if fields or request.json is None:
            request.json = {name: values[0] if len(values) == 1 else values for name, values in fields.items()}
        return fields

    @staticmethod
    def _login(domain, spec):
        """The full login for a spec: a bare name gets @domain (old docs: "The user name, for example
        bob.bar"); an address must be on the domain (assumed: refused otherwise)."""
        local, at, on = spec.strip().rpartition("@")
        if not at:
            return "%s@%s" % (spec.strip(), domain.name)
        if not local or on.lower() != domain.name:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Login %s is not on the domain %s" % (spec, domain.name))
        return "%s@%s" % (local, domain.name)

    @staticmethod
    def _check_password(password):
        if len(password) < PASSWORD_MIN:
            raise ApiError(HTTPStatus.BAD_REQUEST, PASSWORD_TOO_SHORT)
        if len(password) > PASSWORD_MAX:
            raise ApiError(HTTPStatus.BAD_REQUEST, PASSWORD_TOO_LONG)

    # SMTP credentials (spec tag Credentials)

    @route("GET", "/v3/domains/{domain_name}/credentials")
    def list_credentials(self, request, domain_name):
        with self.lock:
            account = self._admit(request)
            domain = self._domain(account, domain_name)
            numbers = {}
            for name, default in (("skip", 0), ("limit", 100)):
                value = request.query.get(name, str(default))
                if not value.isdigit():
                    raise ApiError(HTTPStatus.BAD_REQUEST, "Invalid %s parameter" % name)  # text assumed
                numbers[name] = int(value)
            if numbers["limit"] > 1000:
                raise ApiError(HTTPStatus.BAD_REQUEST, LIMIT_TOO_LARGE)
            items = [c.listed() for c in domain.credentials.values()]
            return Response(HTTPStatus.OK, {"total_count": len(items),
                                            "items": items[numbers["skip"]:numbers["skip"] + numbers["limit"]]})

    @route("POST", "/v3/domains/{domain_name}/credentials")
    def create_credentials(self, request, domain_name):
        with self.lock:
            account = self._admit(request)
            domain = self._domain(account, domain_name)
            fields = self._form(request)
            specs = fields.get("login") or fields.get("mailbox")  # "mailbox ... may be used in place of 'login'"
            if not specs or not specs[0].strip():
                raise ApiError(HTTPStatus.BAD_REQUEST, LOGIN_MISSING)
            passwords = fields.get("password") or []
            made = []
            for index, spec in enumerate(specs):  # "accepts multiple values"
                login = self._login(domain, spec)
                if login.lower() in domain.credentials:
                    # Assumed: Mailgun's answer to a second create of a login is not documented.
                    raise ApiError(HTTPStatus.BAD_REQUEST, "Credentials for %s already exist" % login)
                password = passwords[index] if index < len(passwords) else None
                if password is not None:
                    self._check_password(password)
                made.append((login, password))
            answer = {"message": "Created %d credentials pair(s)" % len(made)}
            generated = {}
            for login, password in made:
                if password is None:
                    password = generated[login] = new_password()
                domain.credentials[login.lower()] = Credential(login, password)
            if generated:
                # CreateCredsResp: note and credentials "when generated by Mailgun", the only time they show.
                answer.update(note=GENERATED_NOTE, credentials=generated)
            return Response(HTTPStatus.OK, answer)

    @route("PUT", "/v3/domains/{domain_name}/credentials/{spec}")
    def change_password(self, request, domain_name, spec):
        with self.lock:
            account = self._admit(request)
            domain = self._domain(account, domain_name)
            credential = domain.credentials.get(self._login(domain, spec).lower())
            if credential is None:
                raise ApiError(HTTPStatus.NOT_FOUND, CREDENTIALS_NOT_FOUND)
            password = (self._form(request).get("password") or [None])[0]
            # "Supply desired password ... if preferred over a generated one": none (a JSON body too) -> generated.
            answer = {"message": "Password changed"}  # observed in the clients' tests; the spec's example repeats create's
            if password is None:
                password = new_password()
                answer.update(note=GENERATED_NOTE, credentials={credential.login: password})
            else:
                self._check_password(password)
                if hmac.compare_digest(password.encode(), credential.password.encode()):
                    raise ApiError(HTTPStatus.BAD_REQUEST, SAME_PASSWORD)
            credential.password = password
            return Response(HTTPStatus.OK, answer)

    @route("DELETE", "/v3/domains/{domain_name}/credentials/{spec}")
    def delete_credential(self, request, domain_name, spec):
        with self.lock:
            account = self._admit(request)
            domain = self._domain(account, domain_name)
            credential = domain.credentials.get(self._login(domain, spec).lower())
            if credential is None:
                raise ApiError(HTTPStatus.NOT_FOUND, CREDENTIALS_NOT_FOUND)
            if credential.system:
                raise ApiError(HTTPStatus.BAD_REQUEST, "Cannot delete system mailbox: %s" % credential.login)
            del domain.credentials[credential.login.lower()]
            return Response(HTTPStatus.OK, {"message": "Credentials have been deleted", "spec": credential.login})

    # Domains (read, and the DNS re-check)

    @route("GET", "/v4/domains/{name}")
    def get_domain(self, request, name):
        with self.lock:
            return Response(HTTPStatus.OK, self._domain(self._admit(request), name).details())

    @route("PUT", "/v4/domains/{name}/verify")
    def verify_domain(self, request, name):
        with self.lock:
            domain = self._domain(self._admit(request), name)
            if domain.kind == "custom" and domain.state == "unverified" and domain.dns_published:
                domain.state = "active"
            # "Domain DNS records have been updated" also when nothing verified (mailgun/documentation PR 303).
            return Response(HTTPStatus.OK, dict(domain.details(), message="Domain DNS records have been updated"))

    @route("GET", "/v5/sandbox/auth_recipients")
    def authorized_recipients(self, request):
        with self.lock:
            account = self._admit(request)
            return Response(HTTPStatus.OK, {"recipients": [{"email": email_address, "activated": activated}
                                                           for email_address, activated in account.recipients.items()]})

    # Relay backend (thread-safe)

    def authenticate(self, login, password):
        """None for a login on no domain of this emulator (another backend's); else (ok, reply, domain):
        ok with the credential's password."""
        name = login.rpartition("@")[2].lower() if "@" in login else None
        with self.lock:
            domain = self._domains.get(name) if name else None
            if domain is None:
                return None
            credential = domain.credentials.get(login.lower())
            if credential is None or not isinstance(password, str) or not hmac.compare_digest(
                    credential.password.encode(), password.encode()):
                return False, AUTH_FAILED_REPLY
            return True, AUTH_OK_REPLY, domain.name

    def sender_allowed(self, domain_name, mail_from):
        """(ok, reply): Mailgun does not check the From address (help.mailgun.com "DMARC": it "neither offers
        DMARC records nor checks for their presence"); it refuses to send for a domain that is not active.
        A sandbox domain's limit to its authorized recipients is not checked: the relay contract hands a
        backend the From, not the recipients."""
        with self.lock:
            domain = self._domains.get(domain_name)
            state = domain.state if domain else "disabled"
        if state == "active" and address_of(mail_from):
            return True, SENDER_OK_REPLY
        reason = NOT_ALLOWED_REASONS.get(state, NOT_ALLOWED_REASONS["disabled"])
        return False, NOT_ALLOWED_REPLY.format(domain=domain_name, reason=reason)

    # Accounts and domains (seed and control API)

    def add_account(self, api_key=None, sandbox_domain=None):
        with self.lock:
            api_key = api_key or "%s-%s-%s" % (secrets.token_hex(16), secrets.token_hex(4), secrets.token_hex(4))
            if api_key in self._accounts:
                raise HttpError(HTTPStatus.BAD_REQUEST, "that api_key already exists")
            # Every account gets sandbox<hex>.mailgun.org (user-manual/domains/domains-sandbox), with the
            # system credential postmaster@ (spec DELETE .../credentials/{spec}: "Cannot delete system mailbox").
            sandbox = Domain(sandbox_domain or "sandbox%s.mailgun.org" % secrets.token_hex(16), api_key,
                             kind="sandbox", state="active", dns_published=True)
            sandbox.credentials["postmaster@" + sandbox.name] = Credential("postmaster@" + sandbox.name,
                                                                           new_password(), system=True)
            self._accounts[api_key] = Account(api_key, sandbox.name)
            self._domains[sandbox.name] = sandbox
            return self._account_state(self._accounts[api_key])

    def set_domain(self, api_key, name, state=None):
        """Add a custom domain (unverified, its records unpublished), or put one in `state`: "active"
        publishes its records too."""
        with self.lock:
            account = self._control_account(api_key)
            name = str(name or "").lower().rstrip(".")
            domain = self._domains.get(name)
            if domain is not None and domain.account != api_key:
                raise HttpError(HTTPStatus.BAD_REQUEST, "the domain %s belongs to another account" % name)
            if domain is None:
                if not name or "." not in name:
                    raise HttpError(HTTPStatus.BAD_REQUEST, "name must be a domain name")
                domain = self._domains[name] = Domain(name, account.api_key)
            if state is not None:
                if state not in STATES:
                    raise HttpError(HTTPStatus.BAD_REQUEST, "state must be one of %s" % ", ".join(STATES))
                domain.state = state
                domain.dns_published = domain.dns_published or state == "active"
            return domain.details()

    def _account_state(self, account):
        domains = [d for d in self._domains.values() if d.account == account.api_key]
        return {
            "api_key": account.api_key,
            "sandbox_domain": account.sandbox_domain,
            "rate_limit": {"limit": account.rate_limit[0], "window_seconds": account.rate_limit[1]},
            "recipients": [{"email": e, "activated": a} for e, a in account.recipients.items()],
            "domains": [{"name": d.name, "type": d.kind, "state": d.state, "dns_published": d.dns_published,
                         "credentials": [{"login": c.login, "password": c.password, "system": c.system}
                                         for c in d.credentials.values()]} for d in domains],
        }

    def _control_account(self, api_key):
        account = self._accounts.get(api_key) if isinstance(api_key, str) else None
        if account is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "no Mailgun account with that api_key")
        return account

    @control_route("POST", "/mailgun/accounts")
    def control_add_account(self, request):
        body = json_object(request)
        api_key = body.get("api_key")
        if api_key is not None and (not isinstance(api_key, str) or not api_key or any(c.isspace() for c in api_key)):
            raise HttpError(HTTPStatus.BAD_REQUEST, "api_key must be a string without whitespace")
        return Response(HTTPStatus.OK, self.add_account(api_key))

    @control_route("GET", "/mailgun/accounts/{api_key}")
    def control_get_account(self, request, api_key):
        with self.lock:
            return Response(HTTPStatus.OK, self._account_state(self._control_account(api_key)))

    @control_route("POST", "/mailgun/domains")
    def control_domain(self, request):
        """{"api_key", "name", "state"?}: add a custom domain (unverified) or set its state."""
        body = json_object(request)
        return Response(HTTPStatus.OK, self.set_domain(body.get("api_key"), body.get("name"), body.get("state")))

    @control_route("POST", "/mailgun/domains/verify-dns")
    def control_verify_dns(self, request):
        """{"api_key", "name"}: the domain's records are published; the next PUT .../verify activates it."""
        body = json_object(request)
        with self.lock:
            domain = self._domain(self._control_account(body.get("api_key")), str(body.get("name") or ""))
            domain.dns_published = True
            return Response(HTTPStatus.OK, domain.details())

    @control_route("POST", "/mailgun/authorized-recipients")
    def control_recipient(self, request):
        """{"api_key", "email", "activated"?: true}: an authorized recipient of the sandbox domain (at most 5,
        the spec's 400 "Only 5 sandbox recipients are allowed")."""
        body = json_object(request)
        with self.lock:
            account = self._control_account(body.get("api_key"))
            address = str(body.get("email") or "").strip().lower()
            if "@" not in address:
                raise HttpError(HTTPStatus.BAD_REQUEST, "email must be an address")
            if address not in account.recipients and len(account.recipients) >= SANDBOX_RECIPIENT_LIMIT:
                raise HttpError(HTTPStatus.BAD_REQUEST, "Only 5 sandbox recipients are allowed")
            account.recipients[address] = bool(body.get("activated", True))
            return Response(HTTPStatus.OK, self._account_state(account))

    @control_route("POST", "/mailgun/rate-limit")
    def control_rate_limit(self, request):
        """Requests per account and window; `limit` null restores 300 per 60 s."""
        body = json_object(request)
        limit, window_seconds = rate_limit_setting(body, RATE_LIMIT_WINDOW_SECONDS)
        with self.lock:
            account = self._control_account(body.get("api_key"))
            account.rate_limit = (RATE_LIMIT, RATE_LIMIT_WINDOW_SECONDS) if limit is None else (limit, window_seconds)
            self._rate_limiter.forget(lambda key: key == account.api_key)
            limit, window_seconds = account.rate_limit
        return Response(HTTPStatus.OK, {"limit": limit, "window_seconds": window_seconds})


def module_examples_settings(sandbox):
    """What the collection's module EXAMPLES need to run against this emulator
    (tests/integration/test_module_examples.py asks every emulator in SERVICES)."""
    return {"env": {"MAILGUN_API_URL": sandbox.url("mailgun_api")},
            "vars": {"mailgun_api_key": DEMO_MAILGUN_API_KEY}}
