"""Emulated Supabase Management API: a project's Auth config, as the collection's
`supabase_smtp` module and `make demo` use it.

Behaviour follows ../shared/reference/supabase.md (facts with sources) and the Management API
OpenAPI spec (../shared/specs/supabase-management-api.json); README.md in this folder lists it.
"""

import base64
import datetime
import hashlib
import hmac
import json
import re
import time
import uuid
from http import HTTPStatus

from .core import (FixedWindowRateLimiter, HttpError, HttpService, Response, control_route,
                   json_object, route)
from .seed import DEMO_ACCESS_TOKEN, DEMO_PROJECT_REF, DEMO_STAGING_PROJECT_REF

PROJECT_REF_PATTERN = re.compile(r"^[a-z]{20}$")
ACCESS_TOKEN_PATTERN = re.compile(r"^sbp_(oauth_|v0_)?[a-f0-9]{40}$")

# "120 requests / 1 minute / per user, per project or organization, per endpoint"
RATE_LIMIT = 120
RATE_LIMIT_WINDOW_SECONDS = 60

_MAILER_TEMPLATES_CONFIRMATION_CONTENT = (
    "<h2>Confirm your signup</h2>\n"
    "\n"
    "<p>Follow this link to confirm your user:</p>\n"
    "<p><a href=\"{{ .ConfirmationURL }}\">Confirm your mail</a></p>\n"
)
_MAILER_TEMPLATES_EMAIL_CHANGE_CONTENT = (
    "<h2>Confirm Change of Email</h2>\n"
    "\n"
    "<p>Follow this link to confirm the update of your email from {{ .Email }} to {{ .NewEmail }}:</p>\n"
    "<p><a href=\"{{ .ConfirmationURL }}\">Change Email</a></p>\n"
)
_MAILER_TEMPLATES_INVITE_CONTENT = (
    "<h2>You have been invited</h2>\n"
    "\n"
    "<p>You have been invited to create a user on {{ .SiteURL }}. Follow this link to accept the invite:</p>\n"
    "<p><a href=\"{{ .ConfirmationURL }}\">Accept the invite</a></p>\n"
)
_MAILER_TEMPLATES_MAGIC_LINK_CONTENT = (
    "<h2>Magic Link</h2>\n"
    "\n"
    "<p>Follow this link to login:</p>\n"
    "<p><a href=\"{{ .ConfirmationURL }}\">Log In</a></p>\n"
)
_MAILER_TEMPLATES_REAUTHENTICATION_CONTENT = (
    "<h2>Confirm reauthentication</h2>\n"
    "\n"
    "<p>Enter the code: {{ .Token }}</p>\n"
)
_MAILER_TEMPLATES_RECOVERY_CONTENT = (
    "<h2>Reset Password</h2>\n"
    "\n"
    "<p>Follow this link to reset the password for your user:</p>\n"
    "<p><a href=\"{{ .ConfirmationURL }}\">Reset Password</a></p>\n"
)

# Every key of AuthConfigResponse in spec order: (JSON type, value on a fresh hosted project).
# GET always returns all of them.
AUTH_CONFIG_FIELDS = {
    "api_max_request_duration": ("integer", 10),
    "db_max_pool_size": ("integer", None),
    "db_max_pool_size_unit": ("string", None),
    "disable_signup": ("boolean", False),
    "external_anonymous_users_enabled": ("boolean", False),
    "external_apple_additional_client_ids": ("string", None),
    "external_apple_client_id": ("string", None),
    "external_apple_email_optional": ("boolean", False),
    "external_apple_enabled": ("boolean", False),
    "external_apple_secret": ("string", None),
    "external_azure_client_id": ("string", None),
    "external_azure_email_optional": ("boolean", False),
    "external_azure_enabled": ("boolean", False),
    "external_azure_secret": ("string", None),
    "external_azure_url": ("string", None),
    "external_bitbucket_client_id": ("string", None),
    "external_bitbucket_email_optional": ("boolean", False),
    "external_bitbucket_enabled": ("boolean", False),
    "external_bitbucket_secret": ("string", None),
    "external_discord_client_id": ("string", None),
    "external_discord_email_optional": ("boolean", False),
    "external_discord_enabled": ("boolean", False),
    "external_discord_secret": ("string", None),
    "external_email_enabled": ("boolean", True),
    "external_facebook_client_id": ("string", None),
    "external_facebook_email_optional": ("boolean", False),
    "external_facebook_enabled": ("boolean", False),
    "external_facebook_secret": ("string", None),
    "external_figma_client_id": ("string", None),
    "external_figma_email_optional": ("boolean", False),
    "external_figma_enabled": ("boolean", False),
    "external_figma_secret": ("string", None),
    "external_github_client_id": ("string", None),
    "external_github_email_optional": ("boolean", False),
    "external_github_enabled": ("boolean", False),
    "external_github_secret": ("string", None),
    "external_gitlab_client_id": ("string", None),
    "external_gitlab_email_optional": ("boolean", False),
    "external_gitlab_enabled": ("boolean", False),
    "external_gitlab_secret": ("string", None),
    "external_gitlab_url": ("string", None),
    "external_google_additional_client_ids": ("string", None),
    "external_google_client_id": ("string", None),
    "external_google_email_optional": ("boolean", False),
    "external_google_enabled": ("boolean", False),
    "external_google_secret": ("string", None),
    "external_google_skip_nonce_check": ("boolean", False),
    "external_kakao_client_id": ("string", None),
    "external_kakao_email_optional": ("boolean", False),
    "external_kakao_enabled": ("boolean", False),
    "external_kakao_secret": ("string", None),
    "external_keycloak_client_id": ("string", None),
    "external_keycloak_email_optional": ("boolean", False),
    "external_keycloak_enabled": ("boolean", False),
    "external_keycloak_secret": ("string", None),
    "external_keycloak_url": ("string", None),
    "external_linkedin_oidc_client_id": ("string", None),
    "external_linkedin_oidc_email_optional": ("boolean", False),
    "external_linkedin_oidc_enabled": ("boolean", False),
    "external_linkedin_oidc_secret": ("string", None),
    "external_slack_oidc_client_id": ("string", None),
    "external_slack_oidc_email_optional": ("boolean", False),
    "external_slack_oidc_enabled": ("boolean", False),
    "external_slack_oidc_secret": ("string", None),
    "external_notion_client_id": ("string", None),
    "external_notion_email_optional": ("boolean", False),
    "external_notion_enabled": ("boolean", False),
    "external_notion_secret": ("string", None),
    "external_phone_enabled": ("boolean", False),
    "external_slack_client_id": ("string", None),
    "external_slack_email_optional": ("boolean", False),
    "external_slack_enabled": ("boolean", False),
    "external_slack_secret": ("string", None),
    "external_spotify_client_id": ("string", None),
    "external_spotify_email_optional": ("boolean", False),
    "external_spotify_enabled": ("boolean", False),
    "external_spotify_secret": ("string", None),
    "external_twitch_client_id": ("string", None),
    "external_twitch_email_optional": ("boolean", False),
    "external_twitch_enabled": ("boolean", False),
    "external_twitch_secret": ("string", None),
    "external_twitter_client_id": ("string", None),
    "external_twitter_email_optional": ("boolean", False),
    "external_twitter_enabled": ("boolean", False),
    "external_twitter_secret": ("string", None),
    "external_x_client_id": ("string", None),
    "external_x_email_optional": ("boolean", False),
    "external_x_enabled": ("boolean", False),
    "external_x_secret": ("string", None),
    "external_workos_client_id": ("string", None),
    "external_workos_enabled": ("boolean", False),
    "external_workos_secret": ("string", None),
    "external_workos_url": ("string", None),
    "external_web3_solana_enabled": ("boolean", False),
    "external_web3_ethereum_enabled": ("boolean", False),
    "external_zoom_client_id": ("string", None),
    "external_zoom_email_optional": ("boolean", False),
    "external_zoom_enabled": ("boolean", False),
    "external_zoom_secret": ("string", None),
    "hook_custom_access_token_enabled": ("boolean", False),
    "hook_custom_access_token_uri": ("string", None),
    "hook_custom_access_token_secrets": ("string", None),
    "hook_mfa_verification_attempt_enabled": ("boolean", False),
    "hook_mfa_verification_attempt_uri": ("string", None),
    "hook_mfa_verification_attempt_secrets": ("string", None),
    "hook_password_verification_attempt_enabled": ("boolean", False),
    "hook_password_verification_attempt_uri": ("string", None),
    "hook_password_verification_attempt_secrets": ("string", None),
    "hook_send_sms_enabled": ("boolean", False),
    "hook_send_sms_uri": ("string", None),
    "hook_send_sms_secrets": ("string", None),
    "hook_send_email_enabled": ("boolean", False),
    "hook_send_email_uri": ("string", None),
    "hook_send_email_secrets": ("string", None),
    "hook_before_user_created_enabled": ("boolean", False),
    "hook_before_user_created_uri": ("string", None),
    "hook_before_user_created_secrets": ("string", None),
    "hook_after_user_created_enabled": ("boolean", False),
    "hook_after_user_created_uri": ("string", None),
    "hook_after_user_created_secrets": ("string", None),
    "jwt_exp": ("integer", 3600),
    "mailer_allow_unverified_email_sign_ins": ("boolean", False),
    "mailer_autoconfirm": ("boolean", False),
    "mailer_otp_exp": ("integer", 3600),
    "mailer_otp_length": ("integer", 6),
    "mailer_secure_email_change_enabled": ("boolean", True),
    # Mail templates (spec: every mailer_subjects_*, mailer_templates_*_content a nullable string, every
    # mailer_notifications_*_enabled a nullable boolean, in UpdateAuthConfigBody and AuthConfigResponse).
    # Stored and returned as sent (UTF-8 text, Go template actions untouched); supabase_auth.py renders them.
    # Fresh subjects: the defaults the local-development guide lists ("Default subject: \"Confirm Your
    # Signup\"", "You have been invited", ..., supabase.com/docs/guides/local-development/customizing-email-templates);
    # security notifications off and their bodies unset until a user writes one (ASSUMED: GoTrue then
    # uses its built-in body, supabase/auth internal/mailer/templatemailer/template.go getEmailContentConfig).
    "mailer_subjects_confirmation": ("string", "Confirm Your Signup"),
    "mailer_subjects_email_change": ("string", "Confirm Email Change"),
    "mailer_subjects_invite": ("string", "You have been invited"),
    "mailer_subjects_magic_link": ("string", "Your Magic Link"),
    "mailer_subjects_reauthentication": ("string", "Confirm reauthentication"),
    "mailer_subjects_recovery": ("string", "Reset Your Password"),
    "mailer_subjects_password_changed_notification": ("string", "Your password has been changed"),
    "mailer_subjects_email_changed_notification": ("string", "Your email address has been changed"),
    "mailer_subjects_phone_changed_notification": ("string", "Your phone number has been changed"),
    "mailer_subjects_mfa_factor_enrolled_notification": ("string", "A new MFA factor has been enrolled"),
    "mailer_subjects_mfa_factor_unenrolled_notification": ("string", "An MFA factor has been unenrolled"),
    "mailer_subjects_identity_linked_notification": ("string", "A new identity has been linked"),
    "mailer_subjects_identity_unlinked_notification": ("string", "An identity has been unlinked"),
    "mailer_templates_confirmation_content": ("string", _MAILER_TEMPLATES_CONFIRMATION_CONTENT),
    "mailer_templates_email_change_content": ("string", _MAILER_TEMPLATES_EMAIL_CHANGE_CONTENT),
    "mailer_templates_invite_content": ("string", _MAILER_TEMPLATES_INVITE_CONTENT),
    "mailer_templates_magic_link_content": ("string", _MAILER_TEMPLATES_MAGIC_LINK_CONTENT),
    "mailer_templates_reauthentication_content": ("string", _MAILER_TEMPLATES_REAUTHENTICATION_CONTENT),
    "mailer_templates_recovery_content": ("string", _MAILER_TEMPLATES_RECOVERY_CONTENT),
    "mailer_templates_password_changed_notification_content": ("string", None),
    "mailer_templates_email_changed_notification_content": ("string", None),
    "mailer_templates_phone_changed_notification_content": ("string", None),
    "mailer_templates_mfa_factor_enrolled_notification_content": ("string", None),
    "mailer_templates_mfa_factor_unenrolled_notification_content": ("string", None),
    "mailer_templates_identity_linked_notification_content": ("string", None),
    "mailer_templates_identity_unlinked_notification_content": ("string", None),
    "mailer_notifications_password_changed_enabled": ("boolean", False),
    "mailer_notifications_email_changed_enabled": ("boolean", False),
    "mailer_notifications_phone_changed_enabled": ("boolean", False),
    "mailer_notifications_mfa_factor_enrolled_enabled": ("boolean", False),
    "mailer_notifications_mfa_factor_unenrolled_enabled": ("boolean", False),
    "mailer_notifications_identity_linked_enabled": ("boolean", False),
    "mailer_notifications_identity_unlinked_enabled": ("boolean", False),
    "mfa_max_enrolled_factors": ("integer", 10),
    "mfa_totp_enroll_enabled": ("boolean", True),
    "mfa_totp_verify_enabled": ("boolean", True),
    "mfa_phone_enroll_enabled": ("boolean", False),
    "mfa_phone_verify_enabled": ("boolean", False),
    "mfa_web_authn_enroll_enabled": ("boolean", False),
    "mfa_web_authn_verify_enabled": ("boolean", False),
    "passkey_enabled": ("boolean", False),
    "webauthn_rp_display_name": ("string", None),
    "webauthn_rp_id": ("string", None),
    "webauthn_rp_origins": ("string", None),
    "mfa_phone_otp_length": ("integer", 6),
    "mfa_phone_template": ("string", "Your code is {{ .Code }}"),
    "mfa_phone_max_frequency": ("integer", 5),
    "nimbus_oauth_client_id": ("string", None),
    "nimbus_oauth_email_optional": ("boolean", False),
    "nimbus_oauth_client_secret": ("string", None),
    "password_hibp_enabled": ("boolean", False),
    "password_min_length": ("integer", 6),
    "password_required_characters": ("string", ""),
    "rate_limit_anonymous_users": ("integer", 30),
    "rate_limit_email_sent": ("integer", 2),
    "rate_limit_sms_sent": ("integer", 30),
    "rate_limit_token_refresh": ("integer", 150),
    "rate_limit_verify": ("integer", 30),
    "rate_limit_otp": ("integer", 30),
    "rate_limit_web3": ("integer", 30),
    "refresh_token_rotation_enabled": ("boolean", True),
    "saml_enabled": ("boolean", False),
    "saml_external_url": ("string", None),
    "saml_allow_encrypted_assertions": ("boolean", False),
    "security_sb_forwarded_for_enabled": ("boolean", False),
    "security_captcha_enabled": ("boolean", False),
    "security_captcha_provider": ("string", None),
    "security_captcha_secret": ("string", None),
    "security_manual_linking_enabled": ("boolean", False),
    "security_refresh_token_reuse_interval": ("integer", 10),
    "security_update_password_require_reauthentication": ("boolean", False),
    "sessions_inactivity_timeout": ("number", None),
    "sessions_single_per_user": ("boolean", False),
    "sessions_tags": ("string", None),
    "sessions_timebox": ("number", None),
    "site_url": ("string", "http://localhost:3000"),
    "sms_autoconfirm": ("boolean", False),
    "sms_max_frequency": ("integer", 60),
    "sms_messagebird_access_key": ("string", None),
    "sms_messagebird_originator": ("string", None),
    "sms_otp_exp": ("integer", 60),
    "sms_otp_length": ("integer", 6),
    "sms_provider": ("string", "twilio"),
    "sms_template": ("string", "Your code is {{ .Code }}"),
    "sms_test_otp": ("string", None),
    "sms_test_otp_valid_until": ("string", None),
    "sms_textlocal_api_key": ("string", None),
    "sms_textlocal_sender": ("string", None),
    "sms_twilio_account_sid": ("string", None),
    "sms_twilio_auth_token": ("string", None),
    "sms_twilio_content_sid": ("string", None),
    "sms_twilio_message_service_sid": ("string", None),
    "sms_twilio_verify_account_sid": ("string", None),
    "sms_twilio_verify_auth_token": ("string", None),
    "sms_twilio_verify_message_service_sid": ("string", None),
    "sms_vonage_api_key": ("string", None),
    "sms_vonage_api_secret": ("string", None),
    "sms_vonage_from": ("string", None),
    "smtp_admin_email": ("string", None),
    "smtp_host": ("string", None),
    "smtp_max_frequency": ("integer", 60),
    "smtp_pass": ("string", None),
    "smtp_port": ("string", None),
    "smtp_sender_name": ("string", None),
    "smtp_user": ("string", None),
    "uri_allow_list": ("string", ""),
    "oauth_server_enabled": ("boolean", False),
    "oauth_server_allow_dynamic_registration": ("boolean", False),
    "oauth_server_authorization_path": ("string", None),
    "custom_oauth_enabled": ("boolean", False),
    "custom_oauth_max_providers": ("integer", 3),
}

# AuthConfigResponse keys that are never null: a PATCH null puts back the fresh-project value.
NEVER_NULL = {
    "mailer_otp_exp", "passkey_enabled", "mfa_phone_otp_length", "sms_otp_length", "oauth_server_enabled",
    "oauth_server_allow_dynamic_registration", "custom_oauth_enabled", "custom_oauth_max_providers",
}
# UpdateAuthConfigBody keys that refuse null.
UPDATE_NEVER_NULL = {"mailer_otp_exp", "sms_otp_length", "passkey_enabled", "custom_oauth_enabled"}
# In AuthConfigResponse but not UpdateAuthConfigBody: a PATCH ignores them like unknown keys.
RESPONSE_ONLY = {"nimbus_oauth_email_optional", "saml_allow_encrypted_assertions", "custom_oauth_max_providers"}

# UpdateAuthConfigBody constraints beyond the JSON type.
_UNSIGNED_INT32 = {"minimum": 0, "maximum": 2147483647}
_POSITIVE_INT32 = {"minimum": 1, "maximum": 2147483647}
_UNSIGNED_INT16 = {"minimum": 0, "maximum": 32767}
UPDATE_CONSTRAINTS = {
    "site_url": {"pattern": r"^[^,]+$"},
    "jwt_exp": {"minimum": 0, "maximum": 604800},
    "smtp_admin_email": {"format": "email"},
    "smtp_max_frequency": _UNSIGNED_INT16,
    "mfa_max_enrolled_factors": _UNSIGNED_INT32,
    "saml_external_url": {"pattern": r"^[^,]+$"},
    "security_captcha_provider": {"enum": ["turnstile", "hcaptcha"]},
    "sessions_timebox": {"minimum": 0},
    "sessions_inactivity_timeout": {"minimum": 0},
    "sessions_tags": {"pattern": r"^\s*([a-zA-Z0-9_-]+(\s*,+\s*)?)*\s*$"},
    "rate_limit_anonymous_users": _POSITIVE_INT32,
    "rate_limit_email_sent": _POSITIVE_INT32,
    "rate_limit_sms_sent": _POSITIVE_INT32,
    "rate_limit_verify": _POSITIVE_INT32,
    "rate_limit_token_refresh": _POSITIVE_INT32,
    "rate_limit_otp": _POSITIVE_INT32,
    "rate_limit_web3": _POSITIVE_INT32,
    "password_min_length": {"minimum": 6, "maximum": 32767},
    "password_required_characters": {"enum": [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789",
        "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789",
        "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789:!@#$%^&*()_+-=[]{};'\\\\:\"|<>?,./`~",
        "",
    ]},
    "security_refresh_token_reuse_interval": _UNSIGNED_INT32,
    "mailer_otp_exp": _UNSIGNED_INT32,
    "mailer_otp_length": {"minimum": 6, "maximum": 10},
    "sms_max_frequency": _UNSIGNED_INT16,
    "sms_otp_exp": _UNSIGNED_INT32,
    "sms_otp_length": _UNSIGNED_INT16,
    "sms_provider": {"enum": ["messagebird", "textlocal", "twilio", "twilio_verify", "vonage"]},
    "sms_test_otp": {"pattern": r"^([0-9]{1,15}=[0-9]+,?)*$"},
    "sms_test_otp_valid_until": {"format": "date-time"},
    "db_max_pool_size_unit": {"enum": ["connections", "percent"]},
    "mfa_phone_max_frequency": _UNSIGNED_INT16,
    "mfa_phone_otp_length": _UNSIGNED_INT16,
}

# `smtp_host: ""` disables custom SMTP: "Api resets all values when SMTP is disabled" (supabase/cli
# apps/cli-go/pkg/config/auth.go), so every smtp_* key goes to null; and the email rate limit goes
# back to the fresh project's 2/h: "When disabling, backend will handle resetting to default"
# (Studio SmtpForm.tsx) and "Verified changes on prod - enabling custom smtp brings rate limit
# emails to 30, disabling brings it back to 2" (supabase/supabase PR 40638 review). Observed through
# the Dashboard; that the v1 PATCH with `smtp_host: ""` takes the same backend path is assumed.
SMTP_FIELDS = tuple(name for name in AUTH_CONFIG_FIELDS if name.startswith("smtp_"))
DISABLED_SMTP_RATE_LIMIT_EMAIL_SENT = 2

_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# logs.all: "30 requests / 1 minute" (stricter than the 120 of other endpoints); at most 1000 rows;
# a range of more than 24 hours is refused; without timestamps, the last minute.
LOGS_RATE_LIMIT = 30
LOGS_MAX_ROWS = 1000
LOGS_MAX_RANGE_SECONDS = 24 * 60 * 60
LOGS_DEFAULT_RANGE_SECONDS = 60
_SQL_LIMIT = re.compile(r"\blimit\s+(\d+)", re.IGNORECASE)

# API keys are derived from the project ref, so a ref always has the same keys (also across runs).
_API_KEY_DERIVATION_SECRET = b"karto.supabase_mail sandbox API keys"
_LEGACY_KEY_ISSUED_AT = 1735689600  # 2025-01-01T00:00:00Z; legacy keys live ~10 years
_LEGACY_KEY_EXPIRES_AT = _LEGACY_KEY_ISSUED_AT + 10 * 365 * 24 * 60 * 60
_NEW_KEYS_INSERTED_AT = "2025-07-01T00:00:00.000Z"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# What each key stands for at the Auth API: anon (public) or service_role (admin).
API_KEY_ROLES = {"anon": "anon", "service_role": "service_role", "publishable": "anon", "secret": "service_role"}


def _derived_text(ref, purpose, length):
    digest = hmac.new(_API_KEY_DERIVATION_SECRET, f"{ref}:{purpose}".encode(), hashlib.sha512).digest()
    number = int.from_bytes(digest, "big")
    characters = []
    for _ in range(length):
        number, index = divmod(number, len(_BASE62))
        characters.append(_BASE62[index])
    return "".join(characters)


def _base64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _legacy_jwt(ref, role):
    """A legacy anon/service_role key: an HS256 JWT signed with the project's (derived) JWT secret."""
    header = _base64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _base64url(json.dumps({"iss": "supabase", "ref": ref, "role": role, "iat": _LEGACY_KEY_ISSUED_AT,
                                     "exp": _LEGACY_KEY_EXPIRES_AT}, separators=(",", ":")).encode())
    jwt_secret = _derived_text(ref, "jwt-secret", 40).encode()
    signature = hmac.new(jwt_secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_base64url(signature)}"


def project_api_keys(ref):
    """The project's four keys as `GET /v1/projects/{ref}/api-keys?reveal=true` lists them
    (ApiKeyResponse items, keys in spec order): legacy anon and service_role JWTs, then the default
    publishable and secret keys."""
    publishable = f"sb_publishable_{_derived_text(ref, 'publishable', 22)}_{_derived_text(ref, 'publishable-check', 8)}"
    secret = f"sb_secret_{_derived_text(ref, 'secret', 22)}_{_derived_text(ref, 'secret-check', 8)}"

    def legacy(role):
        return {"api_key": _legacy_jwt(ref, role), "id": role, "type": "legacy", "prefix": None, "name": role,
                "description": f"Legacy {role} API key", "hash": None, "secret_jwt_template": None,
                "inserted_at": None, "updated_at": None}

    def new_key(kind, value, prefix, template):
        return {"api_key": value, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox:{ref}:{kind}")), "type": kind,
                "prefix": prefix, "name": "default", "description": None,
                "hash": _base64url(hashlib.sha256(value.encode()).digest()), "secret_jwt_template": template,
                "inserted_at": _NEW_KEYS_INSERTED_AT, "updated_at": _NEW_KEYS_INSERTED_AT}

    return [
        legacy("anon"),
        legacy("service_role"),
        new_key("publishable", publishable, None, None),
        new_key("secret", secret, secret[:len("sb_secret_") + 4], {"role": "service_role"}),
    ]


def _api_key_kind(item):
    return item["name"] if item["type"] == "legacy" else item["type"]


def _parse_log_timestamp(name, value):
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name}: Invalid datetime") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def log_query_window(query, now=None):
    """(start, end) in microseconds since the epoch for a logs.all request, or a 400.

    Without timestamps: the last minute. With one of them: one minute from/before it. The range may
    not exceed 24 hours; it is widened to whole minutes (start down, end up), the sandbox's reading
    of "rounded to the nearest minute" that never hides a row inside the requested range."""
    now = time.time() if now is None else now
    start_text, end_text = query.get("iso_timestamp_start"), query.get("iso_timestamp_end")
    end = _parse_log_timestamp("iso_timestamp_end", end_text) if end_text else None
    start = _parse_log_timestamp("iso_timestamp_start", start_text) if start_text else None
    if start is None and end is None:
        start, end = now - LOGS_DEFAULT_RANGE_SECONDS, now
    elif start is None:
        start = end - LOGS_DEFAULT_RANGE_SECONDS
    elif end is None:
        end = start + LOGS_DEFAULT_RANGE_SECONDS
    if end < start:
        raise HttpError(HTTPStatus.BAD_REQUEST, "iso_timestamp_end must be after iso_timestamp_start")
    if end - start > LOGS_MAX_RANGE_SECONDS:
        raise HttpError(HTTPStatus.BAD_REQUEST,
                        "The timestamp range must be no more than 24 hours (iso_timestamp_start to iso_timestamp_end)")
    start_minute = int(start // 60) * 60
    end_minute = -int(-end // 60) * 60
    return start_minute * 1_000_000, end_minute * 1_000_000


def sql_row_limit(sql):
    """The last `limit N` of the SQL, capped at 1000 rows (the only part of the SQL the sandbox reads)."""
    limits = _SQL_LIMIT.findall(sql or "")
    return min(int(limits[-1]), LOGS_MAX_ROWS) if limits else LOGS_MAX_ROWS


def smtp_pass_digest(ref, password):
    """What GET shows instead of the password: hex(HMAC-SHA256(key=project ref, msg=password))."""
    return hmac.new(ref.encode(), password.encode(), hashlib.sha256).hexdigest()


def fresh_auth_config():
    return {name: default for name, (_json_type, default) in AUTH_CONFIG_FIELDS.items()}


def auth_config_update_error(body):
    """The first validation message for a PATCH body, zod style ("field: problem"), or None.

    Keys are checked in spec order, as the real validator reports them."""
    for name, (json_type, _default) in AUTH_CONFIG_FIELDS.items():
        if name not in body or name in RESPONSE_ONLY:
            continue
        value = body[name]
        if value is None:
            problem = _zod_type_problem(json_type, value) if name in UPDATE_NEVER_NULL else None
        else:
            problem = _zod_type_problem(json_type, value) or _constraint_problem(
                UPDATE_CONSTRAINTS.get(name, {}), value)
        if problem:
            return f"{name}: {problem}"
    return None


def apply_auth_config_update(config, body):
    """Partial update: omitted keys stay, null resets, unknown keys are ignored (zod strips them)."""
    for name, value in body.items():
        if name not in AUTH_CONFIG_FIELDS or name in RESPONSE_ONLY:
            continue
        if value is None and name in NEVER_NULL:
            value = AUTH_CONFIG_FIELDS[name][1]
        elif isinstance(value, float) and AUTH_CONFIG_FIELDS[name][0] == "integer":
            value = int(value)  # 5.0 is an integer to a JavaScript validator
        config[name] = value
    if body.get("smtp_host") == "":
        # See SMTP_FIELDS: every smtp_* to null, the email rate limit back to 2/h (also when the same
        # PATCH names another rate_limit_email_sent: the reset is the backend's, after the update).
        config.update(dict.fromkeys(SMTP_FIELDS))
        config["rate_limit_email_sent"] = DISABLED_SMTP_RATE_LIMIT_EMAIL_SENT


def _zod_type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _zod_type_problem(json_type, value):
    expected = "number" if json_type in ("integer", "number") else json_type
    received = _zod_type_name(value)
    if received != expected:
        return f"Expected {expected}, received {received}"
    if json_type == "integer" and isinstance(value, float) and not value.is_integer():
        return "Expected integer, received float"
    return None


def _constraint_problem(constraints, value):
    if "minimum" in constraints and value < constraints["minimum"]:
        return f"Number must be greater than or equal to {constraints['minimum']}"
    if "maximum" in constraints and value > constraints["maximum"]:
        return f"Number must be less than or equal to {constraints['maximum']}"
    if "enum" in constraints and value not in constraints["enum"]:
        expected = " | ".join(f"'{option}'" for option in constraints["enum"])
        return f"Invalid enum value. Expected {expected}, received '{value}'"
    if "pattern" in constraints and not re.search(constraints["pattern"], value):
        return "Invalid"
    if constraints.get("format") == "email" and not _EMAIL_PATTERN.match(value):
        return "Invalid email"
    if constraints.get("format") == "date-time":
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return "Invalid datetime"
    return None


class SupabaseManagementApi(HttpService):
    name = "supabase_api"

    def __init__(self, context):
        super().__init__(context)
        self._auth_configs = {}  # ref -> auth config with the plaintext smtp_pass
        self._token_refs = {}  # access token -> refs it may use
        self._rate_limits = {}  # ref -> (limit, window seconds), set through the control API
        self._masked_smtp_pass = set()  # refs whose smtp_pass is shown as "****" (the pre-2024 API)
        self._rate_limiter = FixedWindowRateLimiter()
        self._api_keys = {}  # ref -> its API keys (ApiKeyResponse items, revealed)
        self._auth_logs = {}  # ref -> Auth log rows, oldest first

    def seed_demo(self):
        self.add_project(DEMO_PROJECT_REF, DEMO_ACCESS_TOKEN)
        self.add_project(DEMO_STAGING_PROJECT_REF, DEMO_ACCESS_TOKEN)

    def add_project(self, ref, access_token):
        """Create the project if new and let `access_token` use it; return its stored auth config."""
        with self.lock:
            config = self._auth_configs.setdefault(ref, fresh_auth_config())
            self._token_refs.setdefault(access_token, set()).add(ref)
            return dict(config)

    def stored_auth_config(self, ref):
        """The auth config as Supabase Auth would use it (plaintext smtp_pass), or None."""
        with self.lock:
            config = self._auth_configs.get(ref)
            return dict(config) if config is not None else None

    @route("GET", "/v1/projects/{ref}/config/auth")
    def get_auth_config(self, request, ref):
        with self.lock:
            rate_limit_headers = self._admit(request, ref)
            return Response(HTTPStatus.OK, self._as_returned(ref), rate_limit_headers)

    @route("PATCH", "/v1/projects/{ref}/config/auth")
    def update_auth_config(self, request, ref):
        with self.lock:
            rate_limit_headers = self._admit(request, ref)
            try:
                body = json_object(request)
            except HttpError as error:
                error.headers = rate_limit_headers
                raise
            problem = auth_config_update_error(body)
            if problem:
                raise HttpError(HTTPStatus.BAD_REQUEST, problem, rate_limit_headers)
            apply_auth_config_update(self._auth_configs[ref], body)
            return Response(HTTPStatus.OK, self._as_returned(ref), rate_limit_headers)

    def _rate_limit_window(self, request, ref, route, default_limit, count=True):
        """The request's rate-limit window (per token as presented, project and endpoint)."""
        limit, window_seconds = self._rate_limits.get(ref, (default_limit, RATE_LIMIT_WINDOW_SECONDS))
        key = (request.bearer_token(), ref, route)
        if count:
            return self._rate_limiter.hit(key, limit, window_seconds)
        return self._rate_limiter.peek(key, limit, window_seconds)

    @staticmethod
    def _rate_limit_headers(window):
        return {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(window.remaining),
            "X-RateLimit-Reset": str(window.reset_seconds),
        }

    def _endpoint_of(self, request):
        """(route, ref, the endpoint's limit) for rate-limit headers outside a handler."""
        route_name, params = self.router.match(request)
        default_limit = LOGS_RATE_LIMIT if route_name and route_name.endswith("/logs.all") else RATE_LIMIT
        return route_name or f"{request.method} {request.path}", params.get("ref"), default_limit

    def fault_headers(self, request, status):
        """A faulted answer carries the rate-limit headers every answer of this API carries (the
        request passed the gateway's limiter, so it counts; a 429 has none left)."""
        route_name, ref, default_limit = self._endpoint_of(request)
        with self.lock:
            window = self._rate_limit_window(request, ref, route_name, default_limit)
        headers = self._rate_limit_headers(window)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            headers["X-RateLimit-Remaining"] = "0"
        return headers

    def handle(self, request):
        response = super().handle(request)
        if not any(name.lower() == "x-ratelimit-limit" for name in response.headers):
            # An answer that did not pass _admit (unknown path, an emulator bug's 500) still carries
            # the headers, as every answer of the real API does; not counted again.
            route_name, ref, default_limit = self._endpoint_of(request)
            with self.lock:
                window = self._rate_limit_window(request, ref, route_name, default_limit, count=False)
            response.headers = {**self._rate_limit_headers(window), **response.headers}
        return response

    def _admit(self, request, ref, default_limit=RATE_LIMIT):
        """Count the request against its rate-limit window, then authenticate and authorize it.
        Returns the X-RateLimit-* headers every answer carries; raises 429, 401 or 404.
        `default_limit` is the endpoint's own limit per minute (30 for logs.all)."""
        token = request.bearer_token()
        window = self._rate_limit_window(request, ref, request.route, default_limit)
        headers = self._rate_limit_headers(window)
        if not window.allowed:
            raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, "Too many requests", headers)
        if token not in self._token_refs:
            raise HttpError(HTTPStatus.UNAUTHORIZED, "Unauthorized", headers)
        if ref not in self._token_refs[token] or ref not in self._auth_configs:
            raise HttpError(HTTPStatus.NOT_FOUND, f"Project {ref} not found", headers)
        return headers

    def _as_returned(self, ref):
        config = dict(self._auth_configs[ref])
        if config["smtp_pass"] is not None:
            # Since 2024 the API returns the HMAC; before, it returned "****" (still seen on some projects).
            masked = ref in self._masked_smtp_pass
            config["smtp_pass"] = "****" if masked else smtp_pass_digest(ref, config["smtp_pass"])
        return config

    @control_route("POST", "/supabase/projects/{ref}/smtp-pass-display")
    def control_set_smtp_pass_display(self, request, ref):
        """`{"display": "hmac"|"masked"}`: how GET/PATCH show smtp_pass for this project."""
        display = json_object(request).get("display")
        if display not in ("hmac", "masked"):
            raise HttpError(HTTPStatus.BAD_REQUEST, "display must be hmac or masked")
        with self.lock:
            if ref not in self._auth_configs:
                raise HttpError(HTTPStatus.NOT_FOUND, f"no project {ref}")
            if display == "masked":
                self._masked_smtp_pass.add(ref)
            else:
                self._masked_smtp_pass.discard(ref)
        return Response(HTTPStatus.OK, {"display": display})

    @control_route("POST", "/supabase/projects")
    def control_add_project(self, request):
        body = json_object(request)
        ref, access_token = body.get("ref"), body.get("access_token")
        if not isinstance(ref, str) or not PROJECT_REF_PATTERN.match(ref):
            raise HttpError(HTTPStatus.BAD_REQUEST, "ref must be 20 lowercase letters")
        if not isinstance(access_token, str) or not ACCESS_TOKEN_PATTERN.match(access_token):
            raise HttpError(HTTPStatus.BAD_REQUEST, "access_token must look like sbp_ + 40 hex")
        return Response(HTTPStatus.OK, self.add_project(ref, access_token))

    @control_route("GET", "/supabase/projects/{ref}/auth-config")
    def control_get_auth_config(self, request, ref):
        config = self.stored_auth_config(ref)
        if config is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no project {ref}")
        return Response(HTTPStatus.OK, config)

    @control_route("POST", "/supabase/projects/{ref}/rate-limit")
    def control_set_rate_limit(self, request, ref):
        """Lower (or restore, with limit null) the limit for one project, so a test can reach it."""
        body = json_object(request)
        limit = body.get("limit")
        window_seconds = body.get("window_seconds", RATE_LIMIT_WINDOW_SECONDS)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise HttpError(HTTPStatus.BAD_REQUEST, "limit must be a positive integer or null")
        if not isinstance(window_seconds, (int, float)) or isinstance(window_seconds, bool) \
                or window_seconds <= 0:
            raise HttpError(HTTPStatus.BAD_REQUEST, "window_seconds must be a positive number")
        with self.lock:
            if ref not in self._auth_configs:
                raise HttpError(HTTPStatus.NOT_FOUND, f"no project {ref}")
            if limit is None:
                self._rate_limits.pop(ref, None)
                limit, window_seconds = RATE_LIMIT, RATE_LIMIT_WINDOW_SECONDS
            else:
                self._rate_limits[ref] = (limit, window_seconds)
            # New limit, fresh windows: the test starts counting from zero.
            self._rate_limiter.forget(lambda key: key[1] == ref)
        return Response(HTTPStatus.OK, {"limit": limit, "window_seconds": window_seconds})

    # API keys (the keys the Supabase Auth emulator accepts in its `apikey` header)

    def api_keys(self, ref):
        """The project's keys, revealed (ApiKeyResponse items), or None for an unknown project."""
        with self.lock:
            return self._api_keys_locked(ref)

    def _api_keys_locked(self, ref):
        if ref not in self._auth_configs:
            return None
        if ref not in self._api_keys:
            self._api_keys[ref] = project_api_keys(ref)
        return [dict(item) for item in self._api_keys[ref]]

    def project_for_api_key(self, key):
        """(ref, role) for one of a project's keys ("anon" or "service_role"), else None."""
        if not key:
            return None
        with self.lock:
            for ref in self._auth_configs:
                for item in self._api_keys_locked(ref):
                    if hmac.compare_digest(item["api_key"].encode(), key.encode()):
                        return ref, API_KEY_ROLES[_api_key_kind(item)]
        return None

    @route("GET", "/v1/projects/{ref}/api-keys")
    def get_api_keys(self, request, ref):
        with self.lock:
            rate_limit_headers = self._admit(request, ref)
            keys = self._api_keys_locked(ref)
        if request.query.get("reveal", "").lower() != "true":
            # Secret keys are only shown with reveal=true (the sandbox hides them as null).
            for item in keys:
                if API_KEY_ROLES[_api_key_kind(item)] == "service_role":
                    item["api_key"] = None
        return Response(HTTPStatus.OK, keys, rate_limit_headers)

    @control_route("GET", "/supabase/projects/{ref}/api-keys")
    def control_get_api_keys(self, request, ref):
        keys = self.api_keys(ref)
        if keys is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no project {ref}")
        return Response(HTTPStatus.OK, keys)

    # Auth logs (written by the Supabase Auth emulator, read through logs.all)

    def append_auth_log(self, ref, event, at=None):
        """Add one Auth log line (a dict, stored as its JSON text like GoTrue's logrus output) to the
        project's `auth_logs`; returns the row. Lines logged now get strictly increasing timestamps;
        a line with an explicit past `at` is filed in time order."""
        message = event if isinstance(event, str) else json.dumps(event, sort_keys=True, separators=(",", ":"))
        timestamp = int((time.time() if at is None else at) * 1_000_000)
        with self.lock:
            rows = self._auth_logs.setdefault(ref, [])
            if at is None and rows and timestamp <= rows[-1]["timestamp"]:
                timestamp = rows[-1]["timestamp"] + 1
            row = {"id": str(uuid.uuid4()), "timestamp": timestamp, "event_message": message}
            rows.append(row)
            rows.sort(key=lambda item: item["timestamp"])
            return dict(row)

    def auth_logs(self, ref):
        """Every Auth log row of the project, newest first."""
        with self.lock:
            return [dict(row) for row in reversed(self._auth_logs.get(ref, []))]

    @route("GET", "/v1/projects/{ref}/analytics/endpoints/logs.all")
    def get_project_logs(self, request, ref):
        """Rows of `auth_logs` in the window, newest first, as {"result": [...], "error": null}.

        Of the SQL only the source and a `limit N` are read: a query naming `auth_logs` gets the
        Auth rows ({"id", "timestamp", "event_message"}, whatever it selects, filters or orders by);
        any other source, or no `sql` (the real default is edge_logs), gets no rows."""
        with self.lock:
            rate_limit_headers = self._admit(request, ref, default_limit=LOGS_RATE_LIMIT)
            try:
                start, end = log_query_window(request.query)
            except HttpError as error:
                error.headers = rate_limit_headers
                raise
            sql = request.query.get("sql") or ""
            rows = []
            if "auth_logs" in sql.lower():
                rows = [dict(row) for row in reversed(self._auth_logs.get(ref, []))
                        if start <= row["timestamp"] <= end][:sql_row_limit(sql)]
        return Response(HTTPStatus.OK, {"result": rows, "error": None}, rate_limit_headers)

    @control_route("POST", "/supabase/projects/{ref}/auth-logs")
    def control_add_auth_log(self, request, ref):
        """Add a line as if Auth had logged it: {"event": {...} or "...", "timestamp"?: microseconds}."""
        body = json_object(request)
        event, timestamp = body.get("event"), body.get("timestamp")
        if not isinstance(event, (dict, str)):
            raise HttpError(HTTPStatus.BAD_REQUEST, "event must be an object or a string")
        if timestamp is not None and (not isinstance(timestamp, int) or isinstance(timestamp, bool)):
            raise HttpError(HTTPStatus.BAD_REQUEST, "timestamp must be microseconds since the epoch")
        with self.lock:
            if ref not in self._auth_configs:
                raise HttpError(HTTPStatus.NOT_FOUND, f"no project {ref}")
        row = self.append_auth_log(ref, event, None if timestamp is None else timestamp / 1_000_000)
        return Response(HTTPStatus.OK, row)

    @control_route("GET", "/supabase/projects/{ref}/auth-logs")
    def control_get_auth_logs(self, request, ref):
        """Every Auth log row, newest first, each with its line parsed as `event` (no window, no limit)."""
        with self.lock:
            if ref not in self._auth_configs:
                raise HttpError(HTTPStatus.NOT_FOUND, f"no project {ref}")
        return Response(HTTPStatus.OK, [{**row, "event": json.loads(row["event_message"])}
                                        for row in self.auth_logs(ref)])
