# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: the Supabase Management API client.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets

from ansible.module_utils.basic import env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._http import (
    NO_RETRY,
    ApiClient,
    ApiError,
    RetryPolicy,
    http_argument_spec,
)

DEFAULT_API_URL = "https://api.supabase.com"
# Whole strings: use fullmatch (a `$` would let a trailing newline through).
PROJECT_REF_PATTERN = re.compile(r"[a-z]{20}")
ACCESS_TOKEN_PATTERN = re.compile(r"sbp_(oauth_|v0_)?[a-f0-9]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# A signup's throwaway password meets any password policy GoTrue can enforce: the Management API's
# password_required_characters sets (spec UpdateAuthConfigBody) are lowercase, uppercase, digits and
# the symbols below; password_min_length may ask for a long one, and bcrypt takes at most 72 bytes.
PASSWORD_LOWER = "abcdefghijklmnopqrstuvwxyz"
PASSWORD_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PASSWORD_DIGITS = "0123456789"
PASSWORD_SYMBOLS = "!@#$%^&*()_+-=[]{};'\\:\"|<>?,./`~"
SIGNUP_PASSWORD_LENGTH = 64
# The new API keys (not JWTs): sb_publishable_... and sb_secret_...
NEW_KEY_PREFIXES = ("sb_publishable_", "sb_secret_")
# GoTrue's 429 for smtp_max_frequency: "For security purposes, you can only request this after N
# seconds." (supabase/auth internal/api/mail.go); its hourly limits name no wait.
_AUTH_WAIT_SECONDS = re.compile(r"after (\d+) seconds?")


def connection_argument_spec():
    """Options every Supabase Management API module takes (documented in the doc fragment)."""
    return dict(
        api_url=dict(type="str", default=DEFAULT_API_URL,
                     fallback=(env_fallback, ["SUPABASE_API_URL"])),
        access_token=dict(type="str", required=True, no_log=True,
                          fallback=(env_fallback, ["SUPABASE_ACCESS_TOKEN"])),
        **http_argument_spec()
    )


def smtp_pass_hmac(project_ref, password):
    """What the Management API returns for `smtp_pass`: hex HMAC-SHA256(key=ref, msg=password)."""
    return hmac.new(project_ref.encode("utf-8"), password.encode("utf-8"), hashlib.sha256).hexdigest()


def is_password_hmac(value):
    """True when a GET value is the comparable 64-hex HMAC, not an older `****` mask."""
    return isinstance(value, str) and bool(_HEX64.fullmatch(value))


class SupabaseManagementClient(ApiClient):
    service_name = "Supabase Management API"

    def __init__(self, api_url, access_token, project_ref=None, settings_label="SMTP settings", **kwargs):
        secrets = list(kwargs.pop("secrets", ())) + [access_token]
        super().__init__(api_url, secrets=secrets, **kwargs)
        self._access_token = access_token
        # Only to word error explanations; every call still names its project and what it changes.
        self.project_ref = project_ref
        self.settings_label = settings_label

    def auth_headers(self):
        return {"Authorization": "Bearer %s" % self._access_token}

    def parse_error(self, status, body):
        # Management API errors are {"message": "<field>: <text>"}; Cloudflare may send plain text.
        if isinstance(body, dict):
            return body.get("code"), body.get("message") or body.get("error")
        return None, body or None

    def explain(self, error):
        """One clear sentence per error class, naming the parameter to fix."""
        project_ref = self.project_ref
        status = error.status
        path = error.path or ""
        if status == 403 and "/api-keys" in path:
            return ("The access_token may not read project_ref %s's API keys (HTTP 403): give it the "
                    "secrets:read scope, or pass the keys as anon_key / service_role_key. %s"
                    % (project_ref, error.message))
        if status == 403 and "/analytics/" in path:
            return ("The access_token may not read project_ref %s's logs (HTTP 403): it needs "
                    "analytics_logs_read. %s" % (project_ref, error.message))
        if status == 401:
            return ("Supabase refused the access_token (HTTP 401): create a personal access token under "
                    "Account > Access Tokens and pass it as access_token or SUPABASE_ACCESS_TOKEN. %s"
                    % error.message)
        if status == 403:
            return ("The access_token may not change project_ref %s's auth config (HTTP 403): it needs "
                    "auth_config_write and project_admin_write. %s" % (project_ref, error.message))
        if status == 404:
            return ("Project project_ref=%s was not found or is not visible to this access_token "
                    "(HTTP 404). %s" % (project_ref, error.message))
        if status == 429:
            return ("The Supabase Management API rate limit held for longer than the retry budget "
                    "(HTTP 429); raise timeout or run fewer projects at once. %s" % error.message)
        if status == 400:
            return "Supabase rejected the %s (HTTP 400): %s" % (self.settings_label, error.message)
        return error.message

    def get_auth_config(self, project_ref):
        return self.request("GET", "/v1/projects/%s/config/auth" % project_ref)

    def update_auth_config(self, project_ref, changes):
        """PATCH is a partial update: send only the keys that must change."""
        return self.request("PATCH", "/v1/projects/%s/config/auth" % project_ref, json_body=changes)

    def get_api_keys(self, project_ref):
        """The project's API keys with their values (needs the secrets:read scope)."""
        return self.request("GET", "/v1/projects/%s/api-keys" % project_ref, params={"reveal": "true"}) or []

    def query_auth_logs(self, project_ref, start, end, limit=100):
        """Recent Auth (GoTrue) log lines, newest first, as dicts parsed from event_message.

        Only `timestamp` and `event_message` are selected: the same query works whether the
        logs engine is BigQuery or ClickHouse; the JSON line is parsed here.
        """
        sql = "select id, timestamp, event_message from auth_logs order by timestamp desc limit %d" % limit
        answer = self.request("GET", "/v1/projects/%s/analytics/endpoints/logs.all" % project_ref, params={
            "sql": sql,
            "iso_timestamp_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "iso_timestamp_end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }) or {}
        if answer.get("error"):
            raise ApiError("Supabase logs query failed: %s" % (answer["error"],), status=200,
                           provider_message=str(answer["error"]))
        lines = []
        for row in answer.get("result") or []:
            try:
                line = json.loads(row.get("event_message") or "{}")
            except ValueError:
                line = {"msg": row.get("event_message")}
            if isinstance(line, dict):
                line.setdefault("timestamp", row.get("timestamp"))
                lines.append(line)
        return lines


def pick_api_key(keys, kind):
    """The value of the project's `anon` (public) or `service_role` (secret) key, or None.

    Prefers the new publishable/secret keys, falls back to the legacy JWT keys.
    """
    wanted = {"anon": ("publishable", "anon"), "service_role": ("secret", "service_role")}[kind]
    for preferred in wanted:
        for key in keys:
            if preferred in (key.get("type"), key.get("name")) and key.get("api_key"):
                if key.get("type") == "legacy" and key.get("name") != preferred:
                    continue
                return key["api_key"]
    return None


def throwaway_password(length=SIGNUP_PASSWORD_LENGTH):
    """A random password with lowercase, uppercase, digits and every symbol GoTrue's policy
    sets name (however the policy string splits them), `length` ASCII characters long."""
    rng = secrets.SystemRandom()
    chars = [rng.choice(PASSWORD_LOWER), rng.choice(PASSWORD_UPPER), rng.choice(PASSWORD_DIGITS)]
    chars += list(PASSWORD_SYMBOLS)
    alphabet = PASSWORD_LOWER + PASSWORD_UPPER + PASSWORD_DIGITS
    chars += [rng.choice(alphabet) for dummy in range(max(0, length - len(chars)))]
    rng.shuffle(chars)
    return "".join(chars)


def is_new_api_key(key):
    """True for a publishable or secret key (sb_publishable_..., sb_secret_...), which is not a JWT."""
    return isinstance(key, str) and key.startswith(NEW_KEY_PREFIXES)


class SupabaseAuthClient(ApiClient):
    """A project's Auth (GoTrue) API, `https://<ref>.supabase.co/auth/v1`.

    `api_key` goes in the `apikey` header; `bearer`, when given, in `Authorization: Bearer`.
    Supabase: "You cannot send a publishable or secret key in the `Authorization: Bearer ...`
    header, except if the value exactly equals the `apikey` header." (supabase/supabase
    apps/docs/content/guides/api/api-keys.mdx @1b3c2d0b, "Known limitations and compatibility
    differences"; https://supabase.com/docs/guides/api/api-keys). So a new key is never a
    different Bearer; use `admin()` for the endpoints that need the secret key.
    """

    service_name = "Supabase Auth"
    url_option = "auth_url"

    def __init__(self, auth_url, api_key, bearer=None, project_ref=None, **kwargs):
        if bearer and bearer != api_key and is_new_api_key(bearer):
            # No key (nor a prefix of one) in the message.
            raise ValueError("a publishable or secret API key may go in Authorization: Bearer only when it "
                             "equals the apikey header; send the secret key as the apikey")
        secrets = list(kwargs.pop("secrets", ())) + [api_key, bearer]
        super().__init__(auth_url, secrets=secrets, **kwargs)
        self._api_key = api_key
        self._bearer = bearer
        # Only to word error explanations.
        self.project_ref = project_ref

    @classmethod
    def admin(cls, auth_url, service_key, **kwargs):
        """A client for the admin endpoints (`/invite`): a secret key (sb_secret_...) goes in
        `apikey` alone, and the gateway lets it act as the service_role; a legacy service_role
        JWT goes in both headers, as GoTrue's requireAdminCredentials reads the Bearer."""
        bearer = None if is_new_api_key(service_key) else service_key
        return cls(auth_url, service_key, bearer=bearer, **kwargs)

    def auth_headers(self):
        headers = {"apikey": self._api_key}
        if self._bearer:
            headers["Authorization"] = "Bearer %s" % self._bearer
        return headers

    def parse_error(self, status, body):
        if isinstance(body, dict):
            return (body.get("error_code") or body.get("code"),
                    body.get("msg") or body.get("message") or body.get("error_description") or body.get("error"))
        return None, body or None

    def retry_wait(self, status, headers, body):
        """GoTrue names the wait of a per-address limit (smtp_max_frequency) in its message; a
        429 that names none is an hourly limit (rate_limit_email_sent, rate_limit_otp): waiting
        a few seconds cannot help, so it is not retried."""
        _code, message = self.parse_error(status, body)
        found = _AUTH_WAIT_SECONDS.search(message) if isinstance(message, str) else None
        if found:
            return float(found.group(1))
        wait = RetryPolicy.server_wait(headers)
        return NO_RETRY if wait is None else wait

    def error_request_id(self, status, headers, body):
        """GoTrue sends no X-Request-Id; a 5xx body's `error_id` is the `request_id` of the
        request's Auth log lines."""
        if isinstance(body, dict) and isinstance(body.get("error_id"), str):
            return body["error_id"] or None
        return None

    def advice(self, error):
        """What to change for an Auth error, or None when its text is the whole story."""
        ref = self.project_ref or "the project"
        code = error.code
        if error.status is None:
            if error.outcome_unknown:
                return ("Supabase Auth did not answer in time: the mail may or may not have been sent; "
                        "check the inbox, raise timeout, or read %s's Auth logs." % ref)
            return "Supabase Auth could not be reached: check auth_url (or project_ref) and the network."
        if error.status == 401:
            return ("Supabase Auth refused the API key (HTTP 401): pass anon_key (and service_role_key "
                    "for action=invite) of project_ref %s, or omit them so they are read with the "
                    "Management API (the access_token needs secrets:read)." % ref)
        if error.status == 403 or code in ("bad_jwt", "not_admin", "no_authorization"):
            return ("action=invite needs project_ref %s's secret (or legacy service_role) key: pass it "
                    "as service_role_key, or omit it so it is read with the Management API." % ref)
        if error.status == 429:
            return ("Supabase Auth rate-limited the mail (HTTP 429): wait, raise rate_limit_wait for a "
                    "per-address limit (smtp_max_frequency), or raise rate_limit_email_sent.")
        if code == "otp_disabled":
            return "The address has no user and create_user is false: set create_user=true or use a known address."
        if code in ("signup_disabled", "email_provider_disabled"):
            return "Email signups are off for project_ref %s: use action=otp or recover for an existing user." % ref
        if code == "email_exists":
            return "The address already belongs to a confirmed user: use action=recover or otp, or another address."
        if code == "weak_password":
            return ("The project's password policy refused the module's throwaway password: use action=otp, "
                    "or set password_min_length to at most %d." % SIGNUP_PASSWORD_LENGTH)
        return None

    def explain(self, error):
        """One sentence naming what to fix, then the error."""
        advice = self.advice(error)
        return "%s %s" % (advice, error.message) if advice else error.message
