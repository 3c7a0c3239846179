# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: everything the collection knows about SendGrid (Twilio SendGrid).

The provider profile (`PROFILE`: SMTP host and ports, the fixed SMTP user `apikey` with an API key
as the password, DNS identity, advice per failure class) and the SendGrid v3 API client for the two
objects the collection manages: API keys (`/v3/api_keys`) and verified single senders
(`/v3/verified_senders`), with its error explanations.

Sources (see also docs/providers/sendgrid.md): the OpenAPI descriptions twilio/sendgrid-oai
`spec/json/tsg_api_keys_v3.json` and `tsg_verified_senders_v3.json`; the SMTP page
https://www.twilio.com/docs/sendgrid/for-developers/sending-email/integrating-with-the-smtp-api;
the rate-limit page https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits.
Errors come as {"errors": [{"field", "message", "help"?}], "id"?}.

Not a public API; it may change without notice.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiClient, ApiError, http_argument_spec
from ansible_collections.karto.supabase_mail.plugins.module_utils._relay_profile import RelayProfile

DEFAULT_API_URL = "https://api.sendgrid.com"
# "Base url: https://api.eu.sendgrid.com (for EU regional subusers)" (every v3 reference page).
EU_API_URL = "https://api.eu.sendgrid.com"

# SendGrid adds these to every key's scopes by itself: a read-back never equals the requested list
# (anna-money/terraform-provider-sendgrid README "Known issues"; the spec's ApiKeyScopesResponse example
# lists them too). Compare scopes without them, or every run rewrites the key.
SCOPES_ADDED_BY_SENDGRID = ("sender_verification_eligible", "2fa_required")
# The least privilege an SMTP password needs: "create an API key with at least Mail permissions"
# (integrating-with-the-smtp-api).
MAIL_SEND_SCOPE = "mail.send"
# Senders per page when listing /v3/verified_senders (limit + lastSeenID, ListVerifiedSender).
SENDER_PAGE_SIZE = 100

PROFILE = RelayProfile(
    name="sendgrid",
    title="SendGrid",
    smtp_host="smtp.sendgrid.net",
    # integrating-with-the-smtp-api: "smtp.sendgrid.net", "25, 587 for unencrypted/TLS connections",
    # "2525", "465 for SSL connections". Supabase Auth speaks implicit TLS on 465 and STARTTLS elsewhere.
    smtp_ports={465: "implicit", 587: "starttls", 25: "starttls", 2525: "starttls"},
    # The port SendGrid recommends (and the manual how-to this product automates uses).
    default_port=587,
    # "Set your username to the string apikey" and the password to the API key (same page).
    username_rule="fixed",
    fixed_username="apikey",
    password_source="api_key",
    dns={
        # Domain Authentication (twilio.com/docs/sendgrid/ui/account-and-settings/how-to-set-up-domain-authentication):
        # with automated security, CNAMEs s1._domainkey / s2._domainkey -> s1.domainkey.u<id>.wl<n>.sendgrid.net
        # and em<n> -> u<id>.wl<n>.sendgrid.net (SPF include:sendgrid.net through it); without it a TXT
        # key at m1._domainkey and an SPF include of sendgrid.net.
        "spf_includes": ("sendgrid.net",),
        "dkim_cname_suffixes": ("sendgrid.net",),
        "dkim_txt_selectors": ("m1",),
        "default_selectors": ("s1", "s2"),
        "signs_as_sender": False,
    },
    own_domain_steps=(
        "authenticate it in SendGrid (Settings > Sender Authentication > Authenticate Your Domain) and "
        "publish the CNAMEs SendGrid shows, s1._domainkey and s2._domainkey -> "
        "s1/s2.domainkey.u<id>.wl<n>.sendgrid.net and em<n> -> u<id>.wl<n>.sendgrid.net; mail From that "
        "domain is then signed for it (SendGrid calls Single Sender Verification 'recommended for testing only')"),
    advice={
        "sender-unverified": (
            "SendGrid has not verified the single sender {sender_email} yet, and refuses mail From it until "
            "then (550 The from address does not match a verified Sender Identity): open that mailbox and "
            "click the link in the mail 'Please Verify Your Single Sender' SendGrid sent (look in the spam "
            "folder too; sendgrid_sender with resend_verification=true sends it again), or authenticate the "
            "domain in SendGrid; then run setup-mail.yml again."),
        "sender-rejected": (
            "SendGrid refuses mail From {sender_email} until it is a verified Sender Identity: open that "
            "mailbox and click SendGrid's verification link (Settings > Sender Authentication > Single Sender "
            "Verification shows its state and can resend it), then run the playbook again."),
        "auth-rejected": (
            "SendGrid refused the login apikey with the stored API key: the key was deleted or revoked in "
            "SendGrid, lost its Mail Send permission, or the stored file is an old copy. Delete the key named "
            "in sendgrid_smtp_key_name in SendGrid (Settings > API Keys) and its file in mail_secrets_dir, and "
            "run setup-mail.yml again: it creates a new key with mail.send, stores it at once, and sets it in "
            "Supabase."),
        "whitespace-in-credential": (
            "The SendGrid API key carries whitespace or a line break (a pasted or base64-wrapped key): the "
            "stored file must hold the 69-character SG. key on one line."),
    },
    docs_url="https://www.twilio.com/docs/sendgrid/for-developers/sending-email/integrating-with-the-smtp-api",
)


def connection_argument_spec():
    """Options every SendGrid module takes (documented in the sendgrid doc fragment)."""
    return dict(
        api_url=dict(type="str", default=DEFAULT_API_URL,
                     fallback=(env_fallback, ["SENDGRID_API_URL"])),
        api_key=dict(type="str", required=True, no_log=True,
                     fallback=(env_fallback, ["SENDGRID_API_KEY"])),
        **http_argument_spec()
    )


def comparable_scopes(scopes):
    """The scopes a caller manages: without the ones SendGrid adds by itself, as a sorted list."""
    return sorted(set(scope for scope in (scopes or ()) if scope not in SCOPES_ADDED_BY_SENDGRID))


def key_from_answer(body):
    """The key object from GET /v3/api_keys/{id}: the spec documents {"result": [...]}, real clients
    read a flat object (kenzo0107/sendgrid api_key.go; anna-money/terraform-provider-sendgrid
    sdk/api_key.go). Both are accepted."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("result"), list):
        return body["result"][0] if body["result"] else None
    if isinstance(body.get("result"), dict):
        return body["result"]
    return body if body.get("api_key_id") or body.get("name") else None


class SendgridClient(ApiClient):
    service_name = "SendGrid API"

    def __init__(self, api_url, api_key, **kwargs):
        secrets = list(kwargs.pop("secrets", ())) + [api_key]
        super().__init__(api_url, secrets=secrets, **kwargs)
        self._api_key = api_key

    def auth_headers(self):
        # "Authorization: Bearer <API key>" (securitySchemes BearerAuth of both specs).
        return {"Authorization": "Bearer %s" % self._api_key}

    def parse_error(self, status, body):
        """(field of the first error, its messages joined) from {"errors": [{"field", "message"}]}."""
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            errors = [error for error in body["errors"] if isinstance(error, dict)]
            messages = [str(error.get("message")) for error in errors if error.get("message")]
            field = next((error.get("field") for error in errors if error.get("field")), None)
            return field, "; ".join(messages) or None
        if isinstance(body, dict):
            return None, body.get("message") or body.get("error")
        return None, body or None

    def explain(self, error):
        """One clear sentence per SendGrid error class, naming what to fix."""
        said = error.provider_message or ""
        if error.status == 401:
            return ("SendGrid refused the api_key (HTTP 401): pass an API key created in the SendGrid app "
                    "(Settings > API Keys) as api_key or SENDGRID_API_KEY. %s" % error.message)
        if error.status == 403 and error.method == "POST" and (error.path or "").rstrip("/").endswith("/api_keys"):
            return ("SendGrid would not create the API key (HTTP 403): the api_key needs the API Keys "
                    "permission (api_keys.create) and every scope it hands on, and an account holds at most "
                    "100 keys (delete unused ones under Settings > API Keys). %s" % error.message)
        if error.status == 403:
            return ("The api_key may not call %s %s (HTTP 403): give it that permission in SendGrid (Settings > "
                    "API Keys > Edit API Key; Full Access covers it). %s" % (error.method, error.path, error.message))
        if error.status == 429:
            return ("SendGrid rate-limited this key (HTTP 429, 'too many requests') for longer than the retry "
                    "budget; limits are per endpoint and reset at X-RateLimit-Reset: wait a minute and run "
                    "again. %s" % error.message)
        if error.status == 404 and "/verified_senders" in (error.path or ""):
            return ("SendGrid has no such verified sender any more (HTTP 404): someone deleted it meanwhile; "
                    "run the task again. %s" % error.message)
        if said and error.status == 400:
            return "SendGrid refused the request (HTTP 400): %s. %s" % (said, error.message)
        return error.message

    # --- API keys -----------------------------------------------------------------------------
    def list_api_keys(self):
        """Every key of the account: [{"api_key_id", "name"}] (no scopes, never the secret).

        ListApiKey takes only `limit`; an account holds at most 100 keys (CreateApiKey: "If the number
        of maximum keys, 100, is reached, a 403"), so one page of 100 is all of them."""
        body = self.request("GET", "/v3/api_keys", params={"limit": 100}) or {}
        return [key for key in body.get("result") or [] if isinstance(key, dict)]

    def get_api_key(self, api_key_id):
        """{"api_key_id", "name", "scopes"} or None when the id is unknown."""
        try:
            body = self.request("GET", "/v3/api_keys/%s" % api_key_id)
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return key_from_answer(body)

    def create_api_key(self, name, scopes):
        """POST with the scopes always sent: omitted, SendGrid creates a Full Access key (CreateApiKey).
        The answer is the only place the key's value ever appears."""
        return self.request("POST", "/v3/api_keys", json_body={"name": name, "scopes": list(scopes)},
                            idempotent=False, expected=(200, 201)) or {}

    def update_api_key(self, api_key_id, name, scopes):
        """PUT replaces name and scopes ("to change scopes only, resend the existing name")."""
        body = self.request("PUT", "/v3/api_keys/%s" % api_key_id,
                            json_body={"name": name, "scopes": list(scopes)}) or {}
        return key_from_answer(body) or {"api_key_id": api_key_id, "name": name, "scopes": list(scopes)}

    def delete_api_key(self, api_key_id):
        self.request("DELETE", "/v3/api_keys/%s" % api_key_id, expected=(200, 204))

    # --- verified single senders ------------------------------------------------------------------
    def list_verified_senders(self):
        """Every single sender, verified or not: pages of `limit`, the next after the last id seen
        (ListVerifiedSender: `limit`, `lastSeenID`), until a page is short."""
        senders, last_seen = [], None
        while True:
            params = {"limit": SENDER_PAGE_SIZE}
            if last_seen is not None:
                params["lastSeenID"] = last_seen
            body = self.request("GET", "/v3/verified_senders", params=params) or {}
            page = [sender for sender in body.get("results") or [] if isinstance(sender, dict)]
            senders.extend(page)
            if len(page) < SENDER_PAGE_SIZE or page[-1].get("id") is None or page[-1].get("id") == last_seen:
                return senders
            last_seen = page[-1]["id"]

    def find_verified_sender(self, from_email):
        """The sender whose from_email is this address (case-insensitive), lowest id first; None if none.
        There is no GET by id, and from_email is not documented as unique: list and filter."""
        wanted = from_email.lower()
        found = [sender for sender in self.list_verified_senders()
                 if str(sender.get("from_email", "")).lower() == wanted]
        return sorted(found, key=lambda sender: sender.get("id") or 0)[0] if found else None

    def create_verified_sender(self, fields):
        # SendGrid mails the verification link to from_email: the caller lists first.
        return self.request("POST", "/v3/verified_senders", json_body=fields, idempotent=False,
                            expected=(200, 201)) or {}

    def update_verified_sender(self, sender_id, fields):
        # PATCH reuses the create schema, whose nickname, from_email and reply_to are required: the
        # caller sends them with every update.
        return self.request("PATCH", "/v3/verified_senders/%s" % sender_id, json_body=fields) or {}

    def delete_verified_sender(self, sender_id):
        self.request("DELETE", "/v3/verified_senders/%s" % sender_id, expected=(200, 204))

    def resend_verification(self, sender_id):
        # Mails the link again: not idempotent in effect, so never retried on a lost answer.
        self.request("POST", "/v3/verified_senders/resend/%s" % sender_id, idempotent=False,
                     expected=(200, 204))

    def sender_domain_warnings(self):
        """{"soft_failures": [...], "hard_failures": [...]} (ListVerifiedSenderDomain, the Domain Warn List)."""
        body = self.request("GET", "/v3/verified_senders/domains") or {}
        results = body.get("results") if isinstance(body, dict) else None
        results = results if isinstance(results, dict) else {}
        return {"soft_failures": [str(d).lower() for d in results.get("soft_failures") or []],
                "hard_failures": [str(d).lower() for d in results.get("hard_failures") or []]}


def domain_warning(from_email, warnings):
    """SendGrid's warning about a From domain on its Domain Warn List, or None.

    Hard failures "will not deliver mail when used as a Sender Identity due to the domain's DMARC
    policy"; soft ones will likely fail a DMARC check (spec ListVerifiedSenderDomain; sendgrid/docs
    sender-verification.md)."""
    domain = str(from_email).rpartition("@")[2].lower()
    if domain in (warnings or {}).get("hard_failures", []):
        return {"domain": domain, "level": "hard", "message": (
            "SendGrid lists %s among the domains that will not deliver mail when used as a Sender Identity "
            "(hard failure, its DMARC policy): mail From %s through SendGrid is likely rejected by receivers "
            "that enforce DMARC. Use an address on a domain you authenticate in SendGrid, or the mailbox's "
            "own SMTP server." % (domain, from_email))}
    if domain in (warnings or {}).get("soft_failures", []):
        return {"domain": domain, "level": "soft", "message": (
            "SendGrid warns that %s, as a Single Sender, will likely fail a DMARC check (soft failure): mail "
            "From %s may land in spam or be refused by strict receivers." % (domain, from_email))}
    return None


__all__ = ["ApiError", "DEFAULT_API_URL", "EU_API_URL", "MAIL_SEND_SCOPE", "PROFILE", "SCOPES_ADDED_BY_SENDGRID",
           "SendgridClient", "comparable_scopes", "connection_argument_spec", "domain_warning", "key_from_answer"]
