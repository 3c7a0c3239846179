#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: supabase_smtp
short_description: Manage a Supabase project's Auth custom SMTP settings
version_added: 0.1.0
description:
  - Turns Supabase Auth's custom SMTP on or off for one project and keeps its host, port,
    user, password, sender and mail rate limits as stated, through the Supabase Management API
    (C(GET) and C(PATCH /v1/projects/{ref}/config/auth)).
  - Reads the current settings once, then sends only the keys that differ; a second run with
    the same input makes no write and reports C(changed=false).
  - The API never returns the SMTP password; it returns the hex HMAC-SHA256 of the password
    keyed with the project ref. The module compares that value with the HMAC of O(password), so
    a changed password is detected without keeping any state and an unchanged one is never re-sent.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.supabase
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Reads the settings and reports what would change; sends no C(PATCH).
    support: full
  diff_mode:
    description: Shows the managed settings before and after; the password only as changed or unchanged.
    support: full
options:
  project_ref:
    description:
      - The project's reference ID, the 20 lowercase letters in C(https://<ref>.supabase.co).
    type: str
    required: true
  state:
    description:
      - V(present) turns custom SMTP on with the given settings.
      - V(absent) turns custom SMTP off (Supabase then resets every SMTP field and Auth falls back
        to its built-in, heavily rate-limited mailer), the way C(supabase config push) does. Supabase
        also sets C(rate_limit_email_sent) back to the built-in mailer's 2 mails an hour.
    type: str
    choices: [present, absent]
    default: present
  host:
    description:
      - SMTP server host name, bare (V(mail.smtp2go.com)); no scheme, port or path.
      - Required when O(state=present).
    type: str
  port:
    description:
      - SMTP port. Supabase Auth uses implicit TLS on V(465) and STARTTLS (when offered) on any
        other port, so prefer V(465) or V(587).
      - Required when O(state=present).
    type: int
  username:
    description:
      - SMTP user name (for SendGrid V(apikey), for Resend V(resend)); without line breaks or control characters.
      - Required when O(state=present).
    type: str
  password:
    description:
      - SMTP password or API key. Write-only at Supabase; see O(update_password).
      - Required the first time custom SMTP is turned on; when omitted later the stored password
        is kept.
      - Leading or trailing whitespace, line breaks and control characters are refused, since relays
        reject such credentials.
    type: str
  update_password:
    description:
      - When to send O(password).
      - V(on_change) sends it only when the API proves the stored password differs (its HMAC
        does not match) or none is stored. If the API hides the value in a form that cannot be
        compared (older projects return C(****)), the password is not sent and a warning says so.
      - V(always) sends it unless the API proves the stored password is the same, so it also
        writes when the stored value cannot be compared. Use it once to re-seed such a project.
    type: str
    choices: [always, on_change]
    default: on_change
  sender_email:
    description:
      - Address Auth mails come from (C(smtp_admin_email)), also the envelope sender. The relay
        must have it verified.
      - Required when O(state=present).
    type: str
  sender_name:
    description:
      - Display name in the From header, for example V(KARTO). Left as is when omitted.
      - V("") removes the display name (mail then comes From the bare address).
    type: str
  max_frequency:
    description:
      - Minimum seconds between two Auth mails to the same user (C(smtp_max_frequency)), 0 to 32767.
      - Left as is when omitted.
    type: int
  email_rate_limit:
    description:
      - Mails Auth may send per hour, project-wide (C(rate_limit_email_sent)), at least 1.
      - Left as is when omitted.
    type: int
seealso:
  - name: Supabase custom SMTP
    description: How Supabase Auth uses a custom SMTP server.
    link: https://supabase.com/docs/guides/auth/auth-smtp
  - name: Management API auth config
    description: The endpoint this module reads and updates.
    link: https://api.supabase.com/api/v1#tag/auth/PATCH/v1/projects/{ref}/config/auth
"""

EXAMPLES = r"""
- name: Send Supabase Auth mail through SMTP2GO from the team mailbox
  karto.supabase_mail.supabase_smtp:
    project_ref: kartodemoprojectrefa
    access_token: "{{ supabase_access_token }}"
    host: mail.smtp2go.com
    port: 465
    username: karto-supabase
    password: "{{ smtp2go_smtp_password }}"
    sender_email: karto.help@ro.ru
    sender_name: KARTO
    max_frequency: 60
    email_rate_limit: 100
  delegate_to: localhost

- name: Same, with the credentials set once for the whole play
  module_defaults:
    group/karto.supabase_mail.supabase:
      access_token: "{{ supabase_access_token }}"
  karto.supabase_mail.supabase_smtp:
    project_ref: kartodemoprojectrefa
    host: mail.smtp2go.com
    port: 587
    username: karto-supabase
    sender_email: karto.help@ro.ru
  delegate_to: localhost

- name: Back to the built-in mailer
  karto.supabase_mail.supabase_smtp:
    project_ref: kartodemoprojectrefa
    access_token: "{{ supabase_access_token }}"
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
smtp:
  description: The project's effective SMTP settings after the run (as they would be, in check mode). Never holds the password.
  returned: always
  type: dict
  contains:
    enabled:
      description: Whether custom SMTP is on.
      type: bool
      sample: true
    host:
      description: SMTP host.
      type: str
      sample: mail.smtp2go.com
    port:
      description: SMTP port.
      type: int
      sample: 465
    username:
      description: SMTP user name.
      type: str
      sample: karto-supabase
    sender_email:
      description: From address.
      type: str
      sample: karto.help@ro.ru
    sender_name:
      description: From display name.
      type: str
      sample: KARTO
    max_frequency:
      description: Minimum seconds between mails to one user.
      type: int
      sample: 60
    email_rate_limit:
      description: Mails per hour, project-wide.
      type: int
      sample: 100
    password_set:
      description: Whether Supabase holds an SMTP password.
      type: bool
      sample: true
    password_matches:
      description:
        - Whether the stored password is O(password), as proven by its HMAC.
        - Null when O(password) was not given or the API hides the value.
      type: bool
      sample: true
changed_fields:
  description: Management API fields the run sent (or would send, in check mode). Names only, never values.
  returned: always
  type: list
  elements: str
  sample: [smtp_host, smtp_port, smtp_pass]
"""

from ansible_collections.karto.supabase_mail.plugins.module_utils._diff import (
    SECRET_DIFFERENT,
    SECRET_UNCHANGED,
    SECRET_UNKNOWN,
    SECRET_UNMANAGED,
    changed_fields,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._engine import ManagedObject
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import (
    ACCESS_TOKEN_PATTERN,
    PROJECT_REF_PATTERN,
    SupabaseManagementClient,
    connection_argument_spec,
    is_password_hmac,
    smtp_pass_hmac,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_email,
    check_no_control_characters,
    check_no_surrounding_whitespace,
    check_not_empty,
    check_pattern,
    check_range,
    check_single_line,
    check_smtp_host,
    first_problem,
)

# Module option -> Management API field, for every setting besides the password.
FIELD_OF_OPTION = {
    "host": "smtp_host",
    "port": "smtp_port",
    "username": "smtp_user",
    "sender_email": "smtp_admin_email",
    "sender_name": "smtp_sender_name",
    "max_frequency": "smtp_max_frequency",
    "email_rate_limit": "rate_limit_email_sent",
}
PASSWORD_FIELD = "smtp_pass"
# What Supabase sets rate_limit_email_sent to when custom SMTP is turned off: Studio's SMTP form says
# "When disabling, backend will handle resetting to default", and the review of supabase/supabase
# PR 40638 observed "disabling brings it back to 2" (through the dashboard; the sandbox README marks
# the Management API PATCH taking the same path as an assumption).
BUILTIN_MAILER_RATE_LIMIT = 2

ARGUMENT_SPEC = dict(
    project_ref=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    host=dict(type="str"),
    port=dict(type="int"),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    update_password=dict(type="str", default="on_change", choices=["always", "on_change"], no_log=False),
    sender_email=dict(type="str"),
    sender_name=dict(type="str"),
    max_frequency=dict(type="int"),
    email_rate_limit=dict(type="int"),
)


def validate(params):
    """The first problem in the input, or None; runs before any request."""
    return first_problem(
        check_pattern("project_ref", params["project_ref"], PROJECT_REF_PATTERN,
                      "the 20 lowercase letters of https://<ref>.supabase.co"),
        check_smtp_host("host", params["host"]),
        check_range("port", params["port"], 1, 65535),
        check_not_empty("username", params["username"]),
        check_no_surrounding_whitespace("username", params["username"]),
        check_no_control_characters("username", params["username"]),
        check_not_empty("password", params["password"]),
        check_no_surrounding_whitespace("password", params["password"], secret=True),
        check_no_control_characters("password", params["password"], secret=True),
        check_email("sender_email", params["sender_email"]),
        check_single_line("sender_name", params["sender_name"]),
        check_range("max_frequency", params["max_frequency"], 0, 32767),
        check_range("email_rate_limit", params["email_rate_limit"], 1, 2147483647),
        check_api_options(params, "api_url", "access_token"),
    )


def wanted_fields(params):
    """API fields the caller manages, in their wire form (the port is a string on the wire)."""
    wanted = {}
    for option, field in FIELD_OF_OPTION.items():
        value = params[option]
        if value is not None:
            wanted[field] = str(value) if option == "port" else value
    return wanted


def password_verdict(project_ref, password, stored):
    if password is None:
        return SECRET_UNMANAGED
    if not stored:
        return SECRET_DIFFERENT
    if is_password_hmac(stored):
        return SECRET_UNCHANGED if stored == smtp_pass_hmac(project_ref, password) else SECRET_DIFFERENT
    return SECRET_UNKNOWN


def effective_settings(config, project_ref, password):
    """The settings as a user reads them: option names, port as int, no secret."""
    port = config.get("smtp_port")
    stored = config.get(PASSWORD_FIELD)
    matches = None
    if password is not None and is_password_hmac(stored):
        matches = stored == smtp_pass_hmac(project_ref, password)
    return {
        "enabled": bool(config.get("smtp_host")),
        "host": config.get("smtp_host"),
        "port": int(port) if port not in (None, "") else None,
        "username": config.get("smtp_user"),
        "sender_email": config.get("smtp_admin_email"),
        "sender_name": config.get("smtp_sender_name"),
        "max_frequency": config.get("smtp_max_frequency"),
        "email_rate_limit": config.get("rate_limit_email_sent"),
        "password_set": bool(stored),
        "password_matches": matches,
    }


def predicted_config(current, changes, project_ref):
    """The config as the PATCH would leave it, for check mode (mirrors the API's rules)."""
    after = dict(current)
    after.update(changes)
    if changes.get("smtp_host") == "":
        for key in list(after):
            if key.startswith("smtp_"):
                after[key] = None
        after["rate_limit_email_sent"] = BUILTIN_MAILER_RATE_LIMIT
    if PASSWORD_FIELD in changes:
        after[PASSWORD_FIELD] = smtp_pass_hmac(project_ref, changes[PASSWORD_FIELD])
    return after


class AuthSmtpConfig(ManagedObject):
    """A project's auth config: always there, so 'absent' is an update that turns SMTP off."""

    result_key = "smtp"
    secret_option = "password"
    secret_field = PASSWORD_FIELD

    def find(self):
        return self.client.get_auth_config(self.params["project_ref"]) or {}

    def present(self, current):
        ref = self.params["project_ref"]
        verdict = self.secret_verdict(current)
        if verdict == SECRET_UNMANAGED and not current.get("smtp_host"):
            self.module.fail_json(msg="password is required to turn custom SMTP on for project_ref=%s: "
                                      "Supabase holds no SMTP password for it yet." % ref)
        changes = changed_fields(current, wanted_fields(self.params))
        # sender_name "" means no From name: clears a stored one, and equals an unset one.
        if changes.get("smtp_sender_name") == "" and not current.get("smtp_sender_name"):
            del changes["smtp_sender_name"]
        changes.update(self.secret_changes(current))
        if verdict == SECRET_UNKNOWN and PASSWORD_FIELD not in changes:
            self.module.warn("Supabase returned smtp_pass in a form that cannot be compared, so password "
                             "was not sent; set update_password=always to send it once.")
        return changes

    def absent(self, current):
        # An empty host turns custom SMTP off; Supabase then resets every smtp_* field.
        return {"smtp_host": ""} if current.get("smtp_host") else {}

    def secret_verdict(self, current):
        return password_verdict(self.params["project_ref"], self.params["password"], current.get(PASSWORD_FIELD))

    def update(self, current, changes):
        # PATCH is partial and answers with the whole config: no re-read.
        return self.client.update_auth_config(self.params["project_ref"], changes)

    def predict(self, current, changes):
        return predicted_config(current, changes, self.params["project_ref"])

    def view(self, obj):
        return effective_settings(obj, self.params["project_ref"], self.params["password"])

    def diff_view(self, obj):
        # The managed settings without the password bookkeeping (the diff has its own masked line).
        shown = self.view(obj)
        del shown["password_set"], shown["password_matches"]
        return shown

    def secret_stored(self, obj):
        return bool(obj.get(PASSWORD_FIELD))

    def report(self, after, changes):
        return {"changed_fields": sorted(changes)}


def main():
    module = ApiModule(
        argument_spec=ARGUMENT_SPEC,
        connection_spec=connection_argument_spec(),
        required_if=[("state", "present", ("host", "port", "username", "sender_email"))],
    )
    params = module.params
    module.fail_on_problem(validate(params))
    if not ACCESS_TOKEN_PATTERN.fullmatch(params["access_token"]):
        module.warn("access_token does not look like a Supabase access token (sbp_...); "
                    "trying it anyway.")
    client = SupabaseManagementClient(
        params["api_url"], params["access_token"], project_ref=params["project_ref"],
        timeout=params["timeout"], validate_certs=params["validate_certs"], secrets=[params["password"]],
    )
    AuthSmtpConfig(module, client).run()


if __name__ == "__main__":
    main()
