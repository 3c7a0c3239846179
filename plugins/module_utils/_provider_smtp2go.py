# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: everything the collection knows about SMTP2GO.

The provider profile (`PROFILE`: SMTP host and ports, SMTP user and password rules, DNS identity,
advice per failure class) and the SMTP2GO API v3 client with its error explanations.

Every SMTP2GO call is a POST with a JSON body (PATCH for edits); reads such as `view` are
safe to retry, creates are not. Errors come as {"data": {"error", "error_code"}}.

Not a public API; it may change without notice.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiClient, ApiError, http_argument_spec
from ansible_collections.karto.supabase_mail.plugins.module_utils._relay_profile import RelayProfile

DEFAULT_API_URL = "https://api.smtp2go.com/v3"

PROFILE = RelayProfile(
    name="smtp2go",
    title="SMTP2GO",
    smtp_host="mail.smtp2go.com",
    # developers.smtp2go.com/docs/smtp-relay: "25, 2525, 8025, 587 and 80" (STARTTLS or none) and
    # "465, 8465 and 443" (SSL). Supabase Auth speaks implicit TLS on 465 only, so 8465/443 are left out.
    smtp_ports={465: "implicit", 587: "starttls", 2525: "starttls", 8025: "starttls"},
    default_port=465,
    username_rule="per_project",
    password_source="generated",
    dns={
        "spf_includes": ("spf.smtp2go.com",),
        "dkim_cname_suffixes": ("smtp2go.net",),  # <s123456>._domainkey -> dkim.smtp2go.net
        "dkim_txt_selectors": (),
        "default_selectors": (),  # per domain (s + 6 digits): known once the domain is added
        "signs_as_sender": False,
    },
    own_domain_steps=(
        "add it to SMTP2GO as a sender domain (smtp2go_sender_domain) and publish the CNAMEs SMTP2GO "
        "returns, <dkim_selector>._domainkey -> dkim.smtp2go.net and <rpath_selector> -> return.smtp2go.net; "
        "the role then passes the selector and the return path to this check"),
    advice={
        "sender-unverified": (
            "SMTP2GO has not verified {sender_email} yet, and refuses mail From it until then: open that "
            "mailbox and click the verification link SMTP2GO sent (look in the spam folder too), or verify "
            "the whole domain under Sending > Verified Senders (smtp2go_sender_domain); then run "
            "setup-mail.yml again."),
        "sender-rejected": (
            "SMTP2GO refuses mail From {sender_email} until it is a verified sender: open that mailbox and "
            "click the verification link SMTP2GO sent (or verify the domain under Sending > Verified "
            "Senders), then run the playbook again."),
        "auth-rejected": (
            "SMTP2GO refused the SMTP user's login: the stored password is not the SMTP user's (a restored "
            "old backup of the secrets folder, or a password changed in the SMTP2GO console). Remove this "
            "SMTP user's password file from mail_secrets_dir and run setup-mail.yml again: it generates a "
            "new password, sets it on the SMTP user and then in Supabase."),
    },
    docs_url="https://developers.smtp2go.com/docs/smtp-relay",
    # The recommended, simplest path (DESIGN.md): what setup-mail.yml uses without mail_provider.
    is_default=True,
)


def connection_argument_spec():
    """Options every SMTP2GO module takes (documented in the smtp2go doc fragment)."""
    return dict(
        api_url=dict(type="str", default=DEFAULT_API_URL,
                     fallback=(env_fallback, ["SMTP2GO_API_URL"])),
        api_key=dict(type="str", required=True, no_log=True,
                     fallback=(env_fallback, ["SMTP2GO_API_KEY"])),
        **http_argument_spec()
    )


class Smtp2goClient(ApiClient):
    service_name = "SMTP2GO API"

    def __init__(self, api_url, api_key, **kwargs):
        secrets = list(kwargs.pop("secrets", ())) + [api_key]
        super().__init__(api_url, secrets=secrets, **kwargs)
        self._api_key = api_key

    def auth_headers(self):
        return {"X-Smtp2go-Api-Key": self._api_key}

    def parse_error(self, status, body):
        if isinstance(body, dict):
            inner = body.get("data") if isinstance(body.get("data"), dict) else body
            return inner.get("error_code"), inner.get("error") or body.get("message")
        return None, body or None

    def call(self, path, body=None, method="POST", idempotent=True):
        """One API call; returns the `data` member of the success envelope."""
        answer = self.request(method, path, json_body=body or {}, idempotent=idempotent) or {}
        data = answer.get("data") if isinstance(answer, dict) else None
        if isinstance(data, dict) and data.get("error_code"):
            # Some failures arrive with HTTP 200; treat them like any other error.
            code, message = self.parse_error(200, answer)
            raise self._error("%s %s %s failed: %s: %s" % (self.service_name, method, path, code, message),
                              method, path, status=200, code=code, provider_message=message)
        return data

    def explain(self, error):
        """One clear sentence per SMTP2GO error class, naming what to fix."""
        code = error.code or ""
        if error.status == 401 or "API User matching" in (error.provider_message or ""):
            return ("SMTP2GO refused the api_key (HTTP %s): create an API key under Sending > API Keys and "
                    "pass it as api_key or SMTP2GO_API_KEY. %s" % (error.status, error.message))
        if code.endswith("ENDPOINT_PERMISSION_DENIED") or error.status == 403:
            return ("The api_key may not call %s: allow that endpoint on the key in SMTP2GO "
                    "(Sending > API Keys > Permissions). %s" % (error.path, error.message))
        if error.status == 429:
            return ("SMTP2GO rate-limited this machine (HTTP 429) for longer than the retry budget; "
                    "SMTP2GO blocks an address for at least a minute after bursts of requests or errors, "
                    "so wait a minute and run again. %s" % error.message)
        return error.message

    # --- SMTP users -------------------------------------------------------
    def find_smtp_user(self, username):
        data = self.call("/users/smtp/view", {"username": username}) or {}
        # The filter may match loosely; only an exact name is the object we manage.
        return next((user for user in data.get("results", []) if user.get("username") == username), None)

    def add_smtp_user(self, fields):
        data = self.call("/users/smtp/add", fields, idempotent=False) or {}
        results = data.get("results") or []
        return results[0] if results else {}

    def edit_smtp_user(self, username, fields):
        # PATCH ignores omitted properties; the POST form resets them to defaults.
        body = dict(fields, username=username)
        return self.call("/users/smtp/edit", body, method="PATCH")

    def remove_smtp_user(self, username):
        return self.call("/users/smtp/remove", {"username": username}, idempotent=False)

    # --- single sender emails ------------------------------------------------
    def find_single_sender(self, email_address):
        data = self.call("/single_sender_emails/view", {"email_address": email_address}) or {}
        wanted = email_address.lower()
        return next((sender for sender in data.get("senders", [])
                     if str(sender.get("email_address", "")).lower() == wanted), None)

    def add_single_sender(self, email_address, message=None):
        body = {"email_address": email_address}
        if message:
            body["message"] = message
        # `add` (re)sends the verification mail: the caller views first.
        return self.call("/single_sender_emails/add", body, idempotent=False)

    def remove_single_sender(self, email_address):
        return self.call("/single_sender_emails/remove", {"email_address": email_address}, idempotent=False)

    # --- sender domains ---------------------------------------------------------
    def find_domain(self, domain):
        data = self.call("/domain/view", {"domain": domain}) or {}
        return _match_domain(data.get("domains", []), domain)

    def add_domain(self, domain):
        data = self.call("/domain/add", {"domain": domain, "auto_verify": True}, idempotent=False) or {}
        return _match_domain(data.get("domains", []), domain)

    def verify_domain(self, domain):
        data = self.call("/domain/verify", {"domain": domain}) or {}
        return _match_domain(data.get("domains", []), domain)

    def remove_domain(self, domain):
        return self.call("/domain/remove", {"domain": domain}, idempotent=False)


def _match_domain(entries, domain):
    wanted = domain.lower().rstrip(".")
    for entry in entries:
        if str((entry.get("domain") or {}).get("fulldomain", "")).lower() == wanted:
            return entry
    return None


def domain_dns_records(entry):
    """The CNAME records SMTP2GO asks the domain owner to publish, with their state."""
    info = entry.get("domain") or {}
    full = info.get("fulldomain")
    records = []
    if info.get("dkim_selector"):
        records.append({"type": "CNAME", "purpose": "dkim",
                        "name": "%s._domainkey.%s" % (info["dkim_selector"], full),
                        "value": info.get("dkim_value"), "verified": bool(info.get("dkim_verified"))})
    if info.get("rpath_selector"):
        records.append({"type": "CNAME", "purpose": "return-path",
                        "name": "%s.%s" % (info["rpath_selector"], full),
                        "value": info.get("rpath_value"), "verified": bool(info.get("rpath_verified"))})
    for tracker in entry.get("trackers") or []:
        if tracker.get("enabled"):
            records.append({"type": "CNAME", "purpose": "tracking", "name": tracker.get("fulldomain"),
                            "value": tracker.get("cname_value"),
                            "verified": bool(tracker.get("cname_verified"))})
    return records


def domain_verified(entry):
    info = (entry or {}).get("domain") or {}
    return bool(info.get("dkim_verified") and info.get("rpath_verified"))


__all__ = ["ApiError", "PROFILE", "Smtp2goClient", "connection_argument_spec", "domain_dns_records",
           "domain_verified"]
