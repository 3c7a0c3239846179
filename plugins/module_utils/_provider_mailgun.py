# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: everything the collection knows about Mailgun.

The provider profile (`PROFILE`: SMTP host and ports, the per-project SMTP login `<login>@<domain>`
with a password generated on the controller, DNS identity, advice per failure class) and the Mailgun
API client for the objects the collection manages: SMTP credentials
(`/v3/domains/{domain}/credentials`) and, read only, domains (`/v4/domains/{name}`) and the sandbox
domain's authorized recipients (`/v5/sandbox/auth_recipients`), with its error explanations.

Mailgun takes FORM bodies (multipart/form-data in its OpenAPI description), never JSON: a JSON body
reaches it as "no fields", and a password change without a password makes Mailgun generate one
silently. Its write bodies are therefore `FormFields`, which the transport (`_transport.FormBody`)
sends as multipart/form-data.

Sources (see also docs/providers/mailgun.md): Mailgun's OpenAPI description (mailgun/mailgun-mcp-server
`src/openapi.yaml`, saved as ../shared/specs/mailgun-openapi.yaml); the SMTP page
https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/send-smtp; the API overview
https://documentation.mailgun.com/docs/mailgun/api-reference/api-overview (US and EU base URLs);
the responses page https://documentation.mailgun.com/docs/mailgun/quickstart-guide/responses.
Errors come as {"message": "..."}; a refused API key as HTTP 401 with the plain text "Forbidden".

Not a public API; it may change without notice.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

from ansible.module_utils.basic import env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._http import (
    ApiClient,
    ApiError,
    RetryPolicy,
    http_argument_spec,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._relay_profile import RelayProfile
from ansible_collections.karto.supabase_mail.plugins.module_utils._transport import FormBody

# api-overview: "use the appropriate base URL based on which region you have created for your domain".
# The spec's `servers` list the same two.
REGION_API_URLS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
# send-smtp: smtp.mailgun.org, and smtp.eu.mailgun.org for domains in the EU region.
REGION_SMTP_HOSTS = {"us": "smtp.mailgun.org", "eu": "smtp.eu.mailgun.org"}
DEFAULT_REGION = "us"

# SMTP passwords: "5 to 32 characters" (help.mailgun.com "Can I customize my SMTP password";
# the spec's 400 "Password is too short. It must be between 5 and 32 characters.").
PASSWORD_MIN_LENGTH = 5
PASSWORD_MAX_LENGTH = 32
# The 400 Mailgun gives a PUT with the password the credential already has (observed by the
# maintainer of wgebis/terraform-provider-mailgun, pull request 17): that PUT changed nothing.
SAME_PASSWORD_TEXT = "cannot be the same as old password"
# Every account has one: sandbox<hex>.mailgun.org, which "can only send to authorized recipients",
# at most 5 (user-manual/domains/domains-sandbox; the spec's 400 "Only 5 sandbox recipients are allowed").
SANDBOX_DOMAIN = re.compile(r"sandbox[0-9a-f]+\.mailgun\.org", re.IGNORECASE)
SANDBOX_RECIPIENT_LIMIT = 5
# GET .../credentials: "limit" at most 1000 (the spec's 400 "Limit parameter can't be larger than 1000").
CREDENTIAL_PAGE_SIZE = 1000
# The 429 names its wait in the text: "... limit exceeded, try again after 120 seconds" (spec example).
_TRY_AGAIN_AFTER = re.compile(r"try again after (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)

PROFILE = RelayProfile(
    name="mailgun",
    title="Mailgun",
    smtp_host=REGION_SMTP_HOSTS["us"],
    # send-smtp: "The servers listen on ports 25, 465, 587, and 2525. Port 465 requires a TLS connection.
    # Ports 25, 587, and 2525 require a non-TLS connection but may be upgraded to TLS using the STARTTLS
    # command." and "We recommend using #587". Supabase Auth speaks implicit TLS on 465, STARTTLS elsewhere.
    smtp_ports={465: "implicit", 587: "starttls", 25: "starttls", 2525: "starttls"},
    default_port=587,
    # The login is a full address on the sending domain, one per project: supabase-<ref>@<domain>
    # (standard-email-clients: "user@mymailgundomain.com"); the role appends the domain.
    username_rule="per_project",
    password_source="generated",
    dns={
        # A verified Mailgun domain publishes "v=spf1 include:mailgun.org ~all" (spec GET /v4/domains/{name}
        # example). DKIM: with Automatic Sender Security two CNAMEs pdk1/pdk2._domainkey -> pdk1._domainkey.
        # <id>.dkim1.mailgun.com (user-manual/domains/dkim_security); without it a TXT key at the selector
        # Mailgun names for the domain (the spec's mx._domainkey example), hence "*".
        "spf_includes": ("mailgun.org",),
        "dkim_cname_suffixes": ("mailgun.com",),
        "dkim_txt_selectors": ("*",),
        "default_selectors": ("pdk1", "pdk2"),
        "signs_as_sender": False,
    },
    own_domain_steps=(
        "add it (or a subdomain such as mg.<domain>) to Mailgun as a sending domain and publish the records "
        "Mailgun lists for it (mailgun_domain_info returns them): the SPF TXT 'v=spf1 include:mailgun.org ~all' "
        "and the DKIM records (pdk1._domainkey and pdk2._domainkey CNAMEs into dkim1.mailgun.com, or a TXT key); "
        "Mailgun then signs as that domain and bounces through it, so mail From it is aligned"),
    advice={
        "sender-unverified": (
            "Mailgun has not verified the sending domain yet (state unverified or disabled) and sends nothing "
            "through it until then: publish the DNS records mailgun_domain_info lists as records_to_publish "
            "(Mailgun: Send > Domains > the domain > DNS records), wait for Mailgun to see them, then run "
            "setup-mail.yml again."),
        "sender-rejected": (
            "Mailgun refused to send for this domain: the sending domain is not active (unverified or "
            "disabled), or it is a sandbox domain and the recipient is not one of its authorized recipients "
            "(at most 5). Verify the domain's DNS records in Mailgun, or add the recipient under the sandbox "
            "domain's authorized recipients, then run the playbook again."),
        "recipient-rejected": (
            "A Mailgun sandbox domain sends only to its authorized recipients (at most 5, each confirmed by a "
            "click): add the address in Mailgun (the sandbox domain's Overview > Authorized Recipients), or use "
            "a verified custom domain."),
        "auth-rejected": (
            "Mailgun refused the SMTP login (535 ... not loving your login or password): the stored password is "
            "not the credential's (an old copy of the secrets folder, or the password was reset in the Mailgun "
            "console). Remove this credential's password file from mail_secrets_dir and run setup-mail.yml "
            "again: it generates a new password, stores it, sets it on the credential with a PUT and then in "
            "Supabase."),
    },
    docs_url="https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/send-smtp",
)


def connection_argument_spec():
    """Options every Mailgun module takes (documented in the mailgun doc fragment)."""
    return dict(
        api_url=dict(type="str", fallback=(env_fallback, ["MAILGUN_API_URL"])),
        region=dict(type="str", choices=sorted(REGION_API_URLS), default=DEFAULT_REGION,
                    fallback=(env_fallback, ["MAILGUN_REGION"])),
        api_key=dict(type="str", required=True, no_log=True,
                     fallback=(env_fallback, ["MAILGUN_API_KEY"])),
        **http_argument_spec()
    )


def api_url_of(params):
    """The base URL: api_url when given (an empty one is kept, for the input check to refuse, never
    replaced by the live API), else the region's (US or EU)."""
    if params.get("api_url") is not None:
        return params["api_url"]
    return REGION_API_URLS[params.get("region") or DEFAULT_REGION]


def password_problem(name, value):
    """None, or why Mailgun would refuse `value` as an SMTP password (never quoting it)."""
    if value is not None and not PASSWORD_MIN_LENGTH <= len(value) <= PASSWORD_MAX_LENGTH:
        return ("%s must be %d to %d characters long (Mailgun's limit for SMTP passwords); it has %d."
                % (name, PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH, len(value)))
    return None


def full_login(login, domain):
    """`login@domain` from a bare login or a full address (the domain compared case-insensitively)."""
    local, at, login_domain = login.rpartition("@")
    if not at:
        return "%s@%s" % (login, domain.lower())
    return "%s@%s" % (local, login_domain.lower())


def login_domain_problem(login, domain):
    """None, or why a full-address login cannot be a credential of `domain`."""
    local, at, login_domain = login.rpartition("@")
    if at and (not local or login_domain.lower().rstrip(".") != domain.lower().rstrip(".")):
        return ("login must be a name such as supabase-abc, or an address on the domain (name@%s); got %r. A "
                "Mailgun SMTP credential belongs to one sending domain." % (domain, login))
    return None


def is_sandbox_domain(name, domain_type=None):
    """A Mailgun sandbox domain: its type says so, or its name is sandbox<hex>.mailgun.org."""
    return domain_type == "sandbox" or bool(SANDBOX_DOMAIN.fullmatch(str(name or "")))


class FormFields(FormBody):
    """A request body Mailgun must receive as a form: the transport sends it as
    multipart/form-data (the content type of every write in Mailgun's OpenAPI description)."""


class MailgunClient(ApiClient):
    service_name = "Mailgun API"

    def __init__(self, api_url, api_key, **kwargs):
        # HTTP Basic with the user "api" and the key (spec securitySchemes basicAuth; api-reference/authentication).
        self._authorization = "Basic " + base64.b64encode(("api:%s" % api_key).encode()).decode()
        secrets = list(kwargs.pop("secrets", ())) + [api_key, self._authorization.split(" ", 1)[1]]
        super().__init__(api_url, secrets=secrets, **kwargs)

    def auth_headers(self):
        return {"Authorization": self._authorization}

    def parse_error(self, status, body):
        """(None, message) from {"message": ...}, or the plain text of a 401 ("Forbidden")."""
        if isinstance(body, dict):
            return None, body.get("message") or body.get("error")
        return None, body.strip() if isinstance(body, str) and body.strip() else None

    def retry_wait(self, status, headers, body):
        """A 429 names its wait in the message ("try again after 120 seconds"); a header, if any, else."""
        message = body.get("message") if isinstance(body, dict) else body
        found = _TRY_AGAIN_AFTER.search(str(message or ""))
        if found:
            return float(found.group(1))
        return RetryPolicy.server_wait(headers)

    def explain(self, error):
        """One clear sentence per Mailgun error class, naming what to fix."""
        said = error.provider_message or ""
        path = error.path or ""
        if error.status == 401:
            return ("Mailgun refused the api_key (HTTP 401 %s): pass a Mailgun API key that may manage domains "
                    "(Mailgun: API Security > Add new key; a Domain Sending Key may only send messages) as api_key "
                    "or MAILGUN_API_KEY. %s" % (said or "Forbidden", error.message))
        if error.status == 403:
            return ("The api_key may not call %s %s (HTTP 403): use a key with the role Admin (API Security in the "
                    "Mailgun console). %s" % (error.method, path, error.message))
        if error.status == 404 and "/credentials/" in path and error.method in ("PUT", "DELETE"):
            return ("Mailgun has no such SMTP credential any more (HTTP 404 %s): someone deleted it meanwhile; "
                    "run the task again. %s" % (said, error.message))
        if error.status == 404 and "/domains/" in path:
            return ("Mailgun has no domain %s in this account at %s (HTTP 404 %s): check domain, and the region "
                    "(a domain made in the EU region is only seen at %s: region=eu). Mailgun also says a 404 may be "
                    "transient shortly after a change. %s"
                    % (_domain_in(path), self.base_url, said, REGION_API_URLS["eu"], error.message))
        if error.status == 429:
            return ("Mailgun rate-limited this account (HTTP 429) for longer than the retry budget: wait the time "
                    "it names and run again. %s" % error.message)
        if error.status == 400 and "password" in said.lower():
            return ("Mailgun refused the password (HTTP 400: %s): an SMTP password is %d to %d characters. %s"
                    % (said, PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH, error.message))
        if error.status == 400 and "system mailbox" in said.lower():
            return ("Mailgun will not delete the domain's system credential (HTTP 400: %s): manage another login. %s"
                    % (said, error.message))
        if said and error.status == 400:
            return "Mailgun refused the request (HTTP 400): %s. %s" % (said, error.message)
        return error.message

    # --- SMTP credentials ---------------------------------------------------------------------------
    @staticmethod
    def _credentials_path(domain, login=None):
        path = "/v3/domains/%s/credentials" % quote(domain, safe="")
        return path if login is None else "%s/%s" % (path, quote(login, safe="@"))

    def list_credentials(self, domain):
        """Every credential of the domain, [{"login", "mailbox", "created_at", "size_bytes"}] (never a
        password): pages of `limit` at `skip`, until a short page."""
        found, skip = [], 0
        while True:
            body = self.request("GET", self._credentials_path(domain),
                                params={"skip": skip, "limit": CREDENTIAL_PAGE_SIZE}) or {}
            page = [item for item in body.get("items") or [] if isinstance(item, dict)]
            found.extend(page)
            if len(page) < CREDENTIAL_PAGE_SIZE:
                return found
            skip += len(page)

    def find_credential(self, domain, login):
        """The credential whose login is `login` (case-insensitive), or None. There is no GET by login."""
        wanted = login.lower()
        return next((item for item in self.list_credentials(domain)
                     if str(item.get("login") or item.get("mailbox") or "").lower() == wanted), None)

    def create_credential(self, domain, login, password=None):
        """POST the form {login, password?}; without a password Mailgun generates one and answers it
        once, as {"credentials": {login: password}, "note": ...}. Returns the answer."""
        fields = FormFields(login=login)
        if password is not None:
            fields["password"] = password
        return self.request("POST", self._credentials_path(domain), json_body=fields, idempotent=False) or {}

    def change_password(self, domain, login, password):
        """PUT the form {password}. True: changed; False: Mailgun said it is the password already (its
        400 on the first try: nothing changed); None: that 400 came to a retry, so the first try may
        have changed it (its answer was lost)."""
        sent_before = self.requests_sent
        try:
            self.request("PUT", self._credentials_path(domain, login), json_body=FormFields(password=password))
        except ApiError as error:
            if error.status == 400 and SAME_PASSWORD_TEXT in (error.provider_message or "").lower():
                return False if self.requests_sent - sent_before == 1 else None
            raise
        return True

    def delete_credential(self, domain, login):
        """DELETE; a 404 means it is gone already (a retry after a lost answer, or someone else)."""
        try:
            self.request("DELETE", self._credentials_path(domain, login))
        except ApiError as error:
            if error.status != 404:
                raise

    # --- domains (read only) ----------------------------------------------------------------------
    def get_domain(self, domain):
        """{"domain": {...}, "sending_dns_records": [...], "receiving_dns_records": [...]}."""
        return self.request("GET", "/v4/domains/%s" % quote(domain, safe="")) or {}

    def authorized_recipients(self):
        """The sandbox domain's authorized recipients, [{"email", "activated"}] (one list per account)."""
        body = self.request("GET", "/v5/sandbox/auth_recipients") or {}
        return [item for item in body.get("recipients") or [] if isinstance(item, dict)]


def _domain_in(path):
    """The domain named in an API path such as /v4/domains/<name>[/...]."""
    parts = [part for part in path.split("/") if part]
    return parts[2] if len(parts) > 2 and parts[1] == "domains" else "?"


def records_view(records):
    """Mailgun's DNS records as the modules return them: type, name, value, valid, and what they are for."""
    view = []
    for record in records or []:
        if not isinstance(record, dict):
            continue
        name = record.get("name") or ""
        kind = record.get("record_type")
        value = record.get("value")
        if kind == "MX":
            purpose = "receiving"
        elif "._domainkey." in name:
            purpose = "dkim"
        elif kind == "TXT" and str(value or "").startswith("v=spf1"):
            purpose = "spf"
        elif kind == "CNAME":
            purpose = "tracking"
        else:
            purpose = "other"
        view.append({"type": kind, "name": name, "value": value, "priority": record.get("priority"),
                     "valid": record.get("valid"), "purpose": purpose})
    return view


def dkim_selector_of(records):
    """The selector of the domain's DKIM record (pdk1, mx, ...), or None."""
    for record in records:
        if record["purpose"] == "dkim":
            return record["name"].split("._domainkey.", 1)[0]
    return None


__all__ = ["ApiError", "DEFAULT_REGION", "FormFields", "MailgunClient", "PASSWORD_MAX_LENGTH",
           "PASSWORD_MIN_LENGTH", "PROFILE", "REGION_API_URLS", "REGION_SMTP_HOSTS", "SANDBOX_RECIPIENT_LIMIT",
           "api_url_of", "connection_argument_spec", "dkim_selector_of", "full_login", "is_sandbox_domain",
           "login_domain_problem", "password_problem", "records_view"]
