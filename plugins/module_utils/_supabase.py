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

from ansible.module_utils.basic import env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiClient, ApiError, http_argument_spec

DEFAULT_API_URL = "https://api.supabase.com"
PROJECT_REF_PATTERN = re.compile(r"^[a-z]{20}$")
ACCESS_TOKEN_PATTERN = re.compile(r"^sbp_(oauth_|v0_)?[a-f0-9]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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
    return isinstance(value, str) and bool(_HEX64.match(value))


class SupabaseManagementClient(ApiClient):
    service_name = "Supabase Management API"

    def __init__(self, api_url, access_token, project_ref=None, **kwargs):
        secrets = list(kwargs.pop("secrets", ())) + [access_token]
        super().__init__(api_url, secrets=secrets, **kwargs)
        self._access_token = access_token
        # Only to word error explanations; every call still names its project.
        self.project_ref = project_ref

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
            return "Supabase rejected the SMTP settings (HTTP 400): %s" % error.message
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


class SupabaseAuthClient(ApiClient):
    """A project's Auth (GoTrue) API, `https://<ref>.supabase.co/auth/v1`."""

    service_name = "Supabase Auth"

    def __init__(self, auth_url, api_key, bearer=None, **kwargs):
        secrets = list(kwargs.pop("secrets", ())) + [api_key, bearer]
        super().__init__(auth_url, secrets=secrets, **kwargs)
        self._api_key = api_key
        self._bearer = bearer

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
