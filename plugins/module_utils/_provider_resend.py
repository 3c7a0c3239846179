# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: everything the collection knows about Resend.

The provider profile (`PROFILE`: SMTP host and ports, the fixed SMTP user `resend` with an API key
as the password, DNS identity, advice per failure class), the Resend API client for the two objects
the collection manages, API keys (`/api-keys`) and sending domains (`/domains`), with its error
explanations, and the list of public mailbox domains Resend cannot send from.

Sources (see also docs/providers/resend.md): the OpenAPI description resend/resend-openapi
`resend.yaml` (no error bodies in it); the error page https://resend.com/docs/api-reference/errors
and the SDKs' reading of errors as {"statusCode", "message", "name"} (resend/resend-python
`resend/exceptions.py`, recordings in resend/resend-node `src/api-keys/__recordings__`); the SMTP page
https://resend.com/docs/send-with-smtp; the rate-limit page
https://resend.com/docs/api-reference/rate-limit; pagination https://resend.com/docs/api-reference/pagination.

Not a public API; it may change without notice.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._domain import (
    FREE_MAIL_DOMAINS,
    organisational_domain,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiClient, ApiError, http_argument_spec
from ansible_collections.karto.supabase_mail.plugins.module_utils._relay_profile import RelayProfile

DEFAULT_API_URL = "https://api.resend.com"
# List endpoints page with `limit` (1-100) and the `after` cursor, newest first, until has_more is false.
PAGE_SIZE = 100
# CreateDomainRequest.region (resend-openapi): where Resend sends from; fixed once the domain exists.
REGIONS = ("us-east-1", "eu-west-1", "sa-east-1", "ap-northeast-1")
# CreateApiKeyRequest.permission: "sending_access - Can only send emails", "full_access - Can create,
# delete, get, and update any resource".
PERMISSIONS = ("sending_access", "full_access")
# Domain.status values (resend-openapi), and what the dashboard says they mean
# (https://resend.com/docs/dashboard/domains/introduction).
VERIFIED = "verified"
# Statuses after which Resend checks nothing until asked again ("Verify DNS Records"): not_started (never
# asked), failed (records not found within 72 hours), partially_failed (one capability failed).
NEEDS_VERIFY_REQUEST = ("not_started", "failed", "partially_failed")

# Public mailbox domains: "Resend sends emails using a domain you own (i.e., not a shared or public domain)"
# (https://resend.com/docs/dashboard/domains/introduction), and verifying a domain needs its DNS, so mail From an
# address at one of these can never go through Resend. The collection's shared list of them; a domain missing
# there is still refused by Resend itself when it is added (is_public_domain_refusal).
PUBLIC_MAIL_DOMAINS = FREE_MAIL_DOMAINS

PROFILE = RelayProfile(
    name="resend",
    title="Resend",
    smtp_host="smtp.resend.com",
    # https://resend.com/docs/send-with-smtp: host smtp.resend.com; "SMTPS: 465, 2465" and "STARTTLS: 25, 587,
    # 2587". Supabase Auth speaks implicit TLS only on 465 (any other port gets plain SMTP, then STARTTLS), so
    # 2465 cannot be used by Supabase and is left out; the sandbox's relay still publishes it.
    smtp_ports={465: "implicit", 587: "starttls", 2587: "starttls", 25: "starttls"},
    # Resend's own Supabase guide uses 465 (https://resend.com/docs/send-with-supabase-smtp).
    default_port=465,
    # "Username: resend", "Password: YOUR_API_KEY" (send-with-smtp).
    username_rule="fixed",
    fixed_username="resend",
    password_source="api_key",
    dns={
        # A verified domain carries, at the return-path subdomain (custom_return_path, default "send"), an MX
        # to feedback-smtp.<region>.amazonses.com and the TXT "v=spf1 include:amazonses.com ~all"; DKIM is
        # CNAMEs <token>._domainkey -> <token>.dkim.amazonses.com. (the create example of
        # https://resend.com/docs/api-reference/domains/create-domain), or on older setups a TXT key at
        # resend._domainkey (Resend's Domain Connect template, Domain-Connect/Templates resend.com.mail.json).
        "spf_includes": ("amazonses.com",),
        "dkim_cname_suffixes": ("dkim.amazonses.com",),
        "dkim_txt_selectors": ("resend",),
        "default_selectors": ("resend",),
        "signs_as_sender": False,
    },
    own_domain_steps=(
        "add it to Resend (Domains > Add Domain, or resend_domain) and publish the records Resend shows: an MX "
        "and the SPF TXT \"v=spf1 include:amazonses.com ~all\" at send.<domain>, and the DKIM records at "
        "<selector>._domainkey.<domain>; Resend then signs with d=<domain> and bounces through send.<domain>"),
    advice={
        "sender-unverified": (
            "Resend has not verified the domain of {sender_email} yet, and sends only from verified domains "
            "(550 The <domain> domain is not verified): publish the DNS records resend_domain listed (an MX and "
            "a TXT at send.<domain>, the DKIM records at <selector>._domainkey.<domain>), then run setup-mail.yml "
            "again; it asks Resend to check them (resend_wait_for_verification=true waits for the answer)."),
        "sender-rejected": (
            "Resend refuses mail From {sender_email}: its domain is not a verified domain of this Resend team, or "
            "the SMTP key is restricted to another domain. Verify the domain (Domains in the Resend dashboard show "
            "each record's state) or use a From address on a verified domain, then run the playbook again."),
        "auth-rejected": (
            "Resend refused the login resend with the stored API key (535 API key not found): the key was deleted "
            "in Resend, or the stored file is an old copy. Run setup-mail.yml with resend_recreate_key=true: it "
            "creates a new key, stores it at once, deletes the old one and sets the new one in Supabase."),
        "whitespace-in-credential": (
            "The Resend API key carries whitespace or a line break (a pasted key): the stored file must hold the "
            "re_ key on one line."),
    },
    docs_url="https://resend.com/docs/send-with-smtp",
)


def connection_argument_spec():
    """Options every Resend module takes (documented in the resend doc fragment)."""
    return dict(
        api_url=dict(type="str", default=DEFAULT_API_URL, fallback=(env_fallback, ["RESEND_API_URL"])),
        api_key=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["RESEND_API_KEY"])),
        **http_argument_spec()
    )


def public_domain_message(domain, sender_email=None):
    """Why Resend cannot send From an address at a public mailbox domain, and what to do instead. (The resend
    role adds the registered providers' own aligned way, such as mail_provider: mailbox.)"""
    address = sender_email or "an address at %s" % domain
    return (
        "Resend cannot send mail From %s: Resend sends only from domains you verify through their DNS, and %s is a "
        "public mailbox domain whose DNS only its mail provider controls (Resend: \"a domain you own (i.e., not a "
        "shared or public domain)\"). Nothing was created in Resend. Instead send through the mailbox's own SMTP "
        "server with the mailbox's login, the one path that is DMARC-aligned for such an address; or use a From "
        "address on a domain your team controls, verified in Resend (for example noreply@mail.<your domain>), and "
        "forward its replies to %s (Supabase Auth cannot set a Reply-To header: its Management API has no such "
        "setting)." % (address, domain, address))


def is_public_domain_refusal(error):
    """Whether Resend refused POST /domains because the domain is a shared or public one (its wording for that
    refusal is not published: any 4xx on the create that says "public" or "shared" counts)."""
    said = (error.provider_message or "").lower()
    return (error.method == "POST" and (error.path or "").rstrip("/").endswith("/domains")
            and error.status in (400, 403, 422) and ("public" in said or "shared" in said))


def record_fqdn(record, domain):
    """The full DNS name of a record Resend lists: Resend names records relative to the registrable domain
    (send.mail for mail.example.com, as users of a subdomain zone found out: dreamhunter2333/cloudflare_temp_email
    issue 515 and PR 789), and some (Tracking) in full."""
    name = str(record.get("name") or "").rstrip(".").lower()
    org = organisational_domain(domain)
    if not name:
        return domain
    if name == org or name.endswith("." + org):
        return name
    return "%s.%s" % (name, org)


def records_view(domain):
    """The domain's DNS records as the modules return them: Resend's fields plus `fqdn`."""
    records = []
    for record in (domain or {}).get("records") or []:
        if isinstance(record, dict):
            view = {key: record.get(key) for key in ("record", "name", "type", "value", "priority", "ttl", "status")}
            view["fqdn"] = record_fqdn(record, domain.get("name") or "")
            records.append(view)
    return records


class ResendClient(ApiClient):
    service_name = "Resend API"

    def __init__(self, api_url, api_key, **kwargs):
        secrets = list(kwargs.pop("secrets", ())) + [api_key]
        super().__init__(api_url, secrets=secrets, **kwargs)
        self._api_key = api_key

    def auth_headers(self):
        # "Authorization: Bearer re_xxxxxxxxx" (https://resend.com/docs/api-reference/introduction). The base
        # client sends a User-Agent on every request, which Resend requires (else 403, error code 1010).
        return {"Authorization": "Bearer %s" % self._api_key}

    def parse_error(self, status, body):
        """(name, message) of {"statusCode", "message", "name"}; the spec declares no error bodies, so
        anything else is read as it comes (a proxy's text, a Cloudflare "error code: 1010")."""
        if isinstance(body, dict):
            # `error` is text (a proxy's page may echo the request in it): never the code, which no
            # redaction reaches.
            return body.get("name"), body.get("message") or body.get("error")
        return None, body or None

    def explain(self, error):
        """One clear sentence per Resend error class, naming what to fix."""
        said = error.provider_message or ""
        path = error.path or ""
        if error.status == 403 and "1010" in said:
            return ("Resend's edge refused the request (HTTP 403, error code 1010): it requires a User-Agent "
                    "header, which this client sends; a proxy between here and %s may strip it. %s"
                    % (DEFAULT_API_URL, error.message))
        if error.code == "restricted_api_key":
            return ("The api_key is a sending-only key (Resend: 'This API key is restricted to only send emails'): "
                    "managing API keys and domains needs a key with Full access, created in the Resend dashboard "
                    "(API Keys > Create API Key, Permission: Full access). %s" % error.message)
        if error.status == 401 or error.code in ("missing_api_key", "invalid_api_key") or (
                error.status in (400, 403) and "api key is invalid" in said.lower()):
            return ("Resend refused the api_key (HTTP %s): pass an API key with Full access, created in the Resend "
                    "dashboard (API Keys > Create API Key), as api_key or RESEND_API_KEY. %s"
                    % (error.status, error.message))
        if error.status == 429:
            return ("Resend rate-limited this team (HTTP 429) for longer than the retry budget: the limit is a few "
                    "requests per second for the whole team, every key together (ratelimit-* headers); wait a moment "
                    "and run again, and run fewer projects at once. %s" % error.message)
        if error.status == 404 and "/domains/" in path:
            return ("Resend has no such domain any more (HTTP 404): someone deleted it meanwhile; run the task "
                    "again. %s" % error.message)
        if error.status == 404 and "/api-keys/" in path:
            return ("Resend has no such API key any more (HTTP 404): someone deleted it meanwhile; run the task "
                    "again. %s" % error.message)
        if error.method == "POST" and path.rstrip("/").endswith("/domains") and error.status in (400, 403, 409, 422):
            return ("Resend would not add the domain (HTTP %s%s): %s. A domain already verified by another Resend "
                    "team must be claimed there first (POST /domains/claim). %s"
                    % (error.status, " %s" % error.code if error.code else "", said, error.message))
        if said and error.status in (400, 403, 409, 422):
            return "Resend refused the request (HTTP %s%s): %s. %s" % (
                error.status, " %s" % error.code if error.code else "", said, error.message)
        return error.message

    # --- paging -------------------------------------------------------------------------------
    def _list(self, path):
        """Every item of a list endpoint: pages of PAGE_SIZE, the next after the last id seen, until
        has_more is false (https://resend.com/docs/api-reference/pagination)."""
        items, after = [], None
        while True:
            params = {"limit": PAGE_SIZE}
            if after is not None:
                params["after"] = after
            body = self.request("GET", path, params=params) or {}
            page = [item for item in body.get("data") or [] if isinstance(item, dict)]
            items.extend(page)
            if not body.get("has_more") or not page or page[-1].get("id") in (None, after):
                return items
            after = page[-1]["id"]

    # --- API keys -----------------------------------------------------------------------------
    def list_api_keys(self):
        """[{"id", "name", "created_at", "last_used_at"}]: never a token, a permission or a domain."""
        return self._list("/api-keys")

    def create_api_key(self, name, permission, domain_id=None):
        """The answer ({"id", "token"}) is the only place the token ever appears."""
        body = {"name": name, "permission": permission}
        if domain_id:
            body["domain_id"] = domain_id
        return self.request("POST", "/api-keys", json_body=body, idempotent=False, expected=(200, 201)) or {}

    def delete_api_key(self, api_key_id):
        self.request("DELETE", "/api-keys/%s" % api_key_id, expected=(200, 204))

    # --- domains ------------------------------------------------------------------------------
    def list_domains(self):
        """[{"id", "name", "status", "region", ...}] without records."""
        return self._list("/domains")

    def find_domain(self, name):
        """The listed domain with this name (case-insensitive), or None."""
        wanted = name.rstrip(".").lower()
        return next((domain for domain in self.list_domains()
                     if str(domain.get("name", "")).rstrip(".").lower() == wanted), None)

    def get_domain(self, domain_id):
        """The domain with its records, or None when the id is unknown."""
        try:
            return self.request("GET", "/domains/%s" % domain_id)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def create_domain(self, fields):
        return self.request("POST", "/domains", json_body=fields, idempotent=False, expected=(200, 201)) or {}

    def verify_domain(self, domain_id):
        """Only asks Resend to check the records (asynchronously); the status says when it is done."""
        self.request("POST", "/domains/%s/verify" % domain_id, expected=(200, 201, 204))

    def delete_domain(self, domain_id):
        self.request("DELETE", "/domains/%s" % domain_id, expected=(200, 204))


__all__ = ["ApiError", "DEFAULT_API_URL", "NEEDS_VERIFY_REQUEST", "PERMISSIONS", "PROFILE", "PUBLIC_MAIL_DOMAINS",
           "REGIONS", "ResendClient", "VERIFIED", "connection_argument_spec", "is_public_domain_refusal",
           "public_domain_message", "record_fqdn", "records_view"]
