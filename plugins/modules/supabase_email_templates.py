#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: supabase_email_templates
short_description: Manage the subjects and HTML bodies of a Supabase project's Auth mails
version_added: 0.1.0
description:
  - Keeps the subject and the HTML body of each Supabase Auth mail (signup confirmation, invite, magic
    link, password recovery, email change, reauthentication and the seven security notifications) as
    stated, and switches the security notifications on or off, through the Supabase Management API
    (C(GET) and C(PATCH /v1/projects/{ref}/config/auth), fields C(mailer_subjects_<type>),
    C(mailer_templates_<type>_content) and C(mailer_notifications_<name>_enabled)).
  - Reads the config once, then sends only the fields that differ; a mail type, a subject, a body or a
    switch left out of O(templates) is left as the project has it. A second run with the same input
    makes no write and reports C(changed=false).
  - "Every given subject and body is checked before any request: a mail that carries a link or a code
    must keep it (see O(templates)), and a template variable Supabase Auth does not give that mail
    (C({{ .Foo }}), which Auth would render as empty text) is refused, naming the mail, the variable and
    the ones it may use."
  - Bodies are Go C(html/template) text rendered by Supabase Auth with the variables of the Supabase
    Email Templates guide; see U(https://supabase.com/docs/guides/auth/auth-email-templates).
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.supabase
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Reads the config and reports what would change; sends no C(PATCH).
    support: full
  diff_mode:
    description: Shows a unified text diff of each subject, body and switch that changes.
    support: full
options:
  project_ref:
    description:
      - The project's reference ID, the 20 lowercase letters in C(https://<ref>.supabase.co).
    type: str
    required: true
  templates:
    description:
      - One entry per mail type; only the types, and within a type only the keys, given here are managed.
      - "Each type takes C(subject) (one line, not empty) and C(content) (the HTML body, not empty). The
        notification types also take C(enabled)."
      - "Variables a mail may use (Supabase Auth's template data, supabase/auth
        C(internal/mailer/templatemailer/templatemailer.go)): C(confirmation), C(invite), C(magic_link),
        C(recovery): C(.ConfirmationURL), C(.Token), C(.TokenHash), C(.SiteURL), C(.RedirectTo), C(.Email),
        C(.Data); C(email_change) also C(.NewEmail) and C(.SendingTo); C(reauthentication): C(.Token),
        C(.SiteURL), C(.Email), C(.Data); every notification C(.SiteURL), C(.Email), C(.Data), and
        C(email_changed) C(.OldEmail), C(phone_changed) C(.Phone) and C(.OldPhone), C(identity_linked)
        and C(identity_unlinked) C(.Provider), C(mfa_factor_enrolled) and C(mfa_factor_unenrolled)
        C(.FactorType)."
      - "What a body must keep: C(confirmation), C(invite), C(magic_link), C(recovery) and
        C(email_change) the link, as C({{ .ConfirmationURL }}), or the one-time code C({{ .Token }}), or
        a link built from C({{ .TokenHash }}) and C({{ .SiteURL }}) or C({{ .RedirectTo }}) (the forms
        the Email Templates guide documents); C(reauthentication) the code C({{ .Token }}). The
        notifications need none."
    type: dict
    required: true
    suboptions:
      confirmation:
        description: The signup confirmation mail (C(mailer_subjects_confirmation), C(mailer_templates_confirmation_content)).
        type: dict
        suboptions: &auth_mail
          subject:
            description: The subject line; may use the mail's variables (C({{ .Token }})).
            type: str
          content:
            description: The HTML body.
            type: str
      invite:
        description: The invitation mail (C(mailer_subjects_invite), C(mailer_templates_invite_content)).
        type: dict
        suboptions: *auth_mail
      magic_link:
        description: The magic link mail (C(mailer_subjects_magic_link), C(mailer_templates_magic_link_content)).
        type: dict
        suboptions: *auth_mail
      recovery:
        description: The password recovery mail (C(mailer_subjects_recovery), C(mailer_templates_recovery_content)).
        type: dict
        suboptions: *auth_mail
      email_change:
        description: The mail that confirms a change of address (C(mailer_subjects_email_change), C(mailer_templates_email_change_content)).
        type: dict
        suboptions: *auth_mail
      reauthentication:
        description: The mail with the code that confirms a sensitive action (C(mailer_subjects_reauthentication),
          C(mailer_templates_reauthentication_content)).
        type: dict
        suboptions: *auth_mail
      password_changed:
        description: The notification that the password was changed (C(mailer_subjects_password_changed_notification),
          C(mailer_templates_password_changed_notification_content), C(mailer_notifications_password_changed_enabled)).
        type: dict
        suboptions: &notification
          subject:
            description: The subject line.
            type: str
          content:
            description: The HTML body.
            type: str
          enabled:
            description: Whether Supabase Auth sends this notification at all (off on a new project).
            type: bool
      email_changed:
        description: The notification that the address was changed, sent to the old address (C(..._email_changed_...)).
        type: dict
        suboptions: *notification
      phone_changed:
        description: The notification that the phone number was changed (C(..._phone_changed_...)).
        type: dict
        suboptions: *notification
      mfa_factor_enrolled:
        description: The notification that an MFA method was added (C(..._mfa_factor_enrolled_...)).
        type: dict
        suboptions: *notification
      mfa_factor_unenrolled:
        description: The notification that an MFA method was removed (C(..._mfa_factor_unenrolled_...)).
        type: dict
        suboptions: *notification
      identity_linked:
        description: The notification that a sign-in identity was linked (C(..._identity_linked_...)).
        type: dict
        suboptions: *notification
      identity_unlinked:
        description: The notification that a sign-in identity was unlinked (C(..._identity_unlinked_...)).
        type: dict
        suboptions: *notification
notes:
  - Leaves every SMTP setting alone; M(karto.supabase_mail.supabase_smtp) manages those. Both modules send
    only their own keys, so they never undo each other.
  - There is no C(state=absent); to go back to Supabase's text, give Supabase's default subject and body.
seealso:
  - name: Supabase Email Templates
    description: The mail types and the template variables.
    link: https://supabase.com/docs/guides/auth/auth-email-templates
  - name: Management API auth config
    description: The endpoint this module reads and updates.
    link: https://api.supabase.com/api/v1#tag/auth/PATCH/v1/projects/{ref}/config/auth
  - module: karto.supabase_mail.supabase_smtp
"""

EXAMPLES = r"""
# Go template text in a playbook: wrap it in {% raw %} (or tag the value !unsafe) so that Ansible does not
# read {{ .ConfirmationURL }} as Jinja. Text from a file lookup needs neither.
- name: Russian signup and magic link mails
  karto.supabase_mail.supabase_email_templates:
    project_ref: kartodemoprojectrefa
    access_token: "{{ supabase_access_token }}"
    templates:
      confirmation:
        subject: Подтвердите регистрацию
        content: |
          {% raw %}<h2>Подтвердите адрес</h2>
          <p><a href="{{ .ConfirmationURL }}">Подтвердить</a></p>{% endraw %}
      magic_link:
        subject: Ссылка для входа
        content: |
          {% raw %}<p><a href="{{ .ConfirmationURL }}">Войти</a> или введите код {{ .Token }}</p>{% endraw %}
  delegate_to: localhost

- name: Tell users when their password changes
  karto.supabase_mail.supabase_email_templates:
    project_ref: kartodemoprojectrefa
    access_token: "{{ supabase_access_token }}"
    templates:
      password_changed:
        enabled: true
        subject: Your password was changed
  delegate_to: localhost
"""

RETURN = r"""
templates:
  description:
    - The managed mail types after the run (as they would be, in check mode), each with the keys given in
      O(templates), read back from Supabase.
  returned: always
  type: dict
  sample:
    confirmation:
      subject: Подтвердите регистрацию
      content: <h2>Подтвердите адрес</h2> ...
    password_changed:
      enabled: true
changed_fields:
  description: Management API fields the run sent (or would send, in check mode). Names only.
  returned: always
  type: list
  elements: str
  sample: [mailer_subjects_confirmation, mailer_templates_confirmation_content]
"""

import re

from ansible_collections.karto.supabase_mail.plugins.module_utils._diff import changed_fields
from ansible_collections.karto.supabase_mail.plugins.module_utils._engine import ManagedObject
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import (
    ACCESS_TOKEN_PATTERN,
    PROJECT_REF_PATTERN,
    SupabaseManagementClient,
    connection_argument_spec,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_pattern,
    first_problem,
)

# The template data Supabase Auth gives each mail: the keys of the `data` map its builders pass to
# html/template (supabase/auth internal/mailer/templatemailer/templatemailer.go @01e7d351:
# InviteMail, ConfirmationMail, RecoveryMail, MagicLinkMail, EmailChangeMail, ReauthenticateMail and
# the seven *NotificationMail; SiteURL in notifications since supabase/auth#2532).
_LINK_MAIL = frozenset(["ConfirmationURL", "Token", "TokenHash", "SiteURL", "RedirectTo", "Email", "Data"])
_NOTIFICATION = frozenset(["SiteURL", "Email", "Data"])

# What a body must keep so the mail still does its job: LINK = the confirmation link or a documented
# replacement for it, TOKEN = the one-time code. Supabase's Email Templates guide: "{{ .Token }} ...
# can be used instead of the {{ .ConfirmationURL }}", "{{ .TokenHash }} ... useful for constructing
# your own email link", its example `{{ .SiteURL }}/auth/confirm?token_hash={{ .TokenHash }}&type=email`.
NEEDS_LINK = "link"
NEEDS_TOKEN = "token"

# option name -> (GoTrue template type, variables, what the body must keep, notification switch name or None)
MAIL_TYPES = {
    "confirmation": ("confirmation", _LINK_MAIL, NEEDS_LINK, None),
    "invite": ("invite", _LINK_MAIL, NEEDS_LINK, None),
    "magic_link": ("magic_link", _LINK_MAIL, NEEDS_LINK, None),
    "recovery": ("recovery", _LINK_MAIL, NEEDS_LINK, None),
    "email_change": ("email_change", _LINK_MAIL | {"NewEmail", "SendingTo"}, NEEDS_LINK, None),
    "reauthentication": ("reauthentication", frozenset(["Token", "SiteURL", "Email", "Data"]), NEEDS_TOKEN, None),
    "password_changed": ("password_changed_notification", _NOTIFICATION, None, "password_changed"),
    "email_changed": ("email_changed_notification", _NOTIFICATION | {"OldEmail"}, None, "email_changed"),
    "phone_changed": ("phone_changed_notification", _NOTIFICATION | {"Phone", "OldPhone"}, None, "phone_changed"),
    "mfa_factor_enrolled": ("mfa_factor_enrolled_notification", _NOTIFICATION | {"FactorType"}, None,
                            "mfa_factor_enrolled"),
    "mfa_factor_unenrolled": ("mfa_factor_unenrolled_notification", _NOTIFICATION | {"FactorType"}, None,
                              "mfa_factor_unenrolled"),
    "identity_linked": ("identity_linked_notification", _NOTIFICATION | {"Provider"}, None, "identity_linked"),
    "identity_unlinked": ("identity_unlinked_notification", _NOTIFICATION | {"Provider"}, None, "identity_unlinked"),
}


def api_field(kind, key):
    """The Management API field of one key of one mail type (spec UpdateAuthConfigBody)."""
    template_type, _variables, _needs, switch = MAIL_TYPES[kind]
    if key == "subject":
        return "mailer_subjects_%s" % template_type
    if key == "content":
        return "mailer_templates_%s_content" % template_type
    return "mailer_notifications_%s_enabled" % switch


def _mail_spec(kind):
    spec = dict(subject=dict(type="str"), content=dict(type="str"))
    if MAIL_TYPES[kind][3]:
        spec["enabled"] = dict(type="bool")
    # no_log=False: "password_changed" names a mail, not a secret (validate-modules asks by name).
    return dict(type="dict", options=spec, no_log=False)


ARGUMENT_SPEC = dict(
    project_ref=dict(type="str", required=True),
    templates=dict(type="dict", required=True, options={kind: _mail_spec(kind) for kind in MAIL_TYPES}),
)

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|\'(?:[^\'\\\n]|\\.)*\'')
# A field chain starts with `.Name` (or `$.Name`); `.name` after a word, `)` or `]` continues one.
_FIELD = re.compile(r"(?<![\w)\]])\.([A-Za-z_]\w*)")
_ROOT_FIELD = re.compile(r"\$\.([A-Za-z_]\w*)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK_OR_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def template_actions(text):
    """(the code of each Go template action `{{ ... }}`, whether one is left open). Comments
    `{{/* ... */}}` are dropped and quoted strings emptied, so a `}}` or `.Name` inside them counts for
    nothing (text/template's lexer: comments and string, raw string and char constants)."""
    actions = []
    position = 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            return actions, False
        index = start + 2
        code = []
        while True:
            if text.startswith("}}", index):
                break
            if index >= len(text):
                return actions, True
            if text.startswith("/*", index):
                end = text.find("*/", index + 2)
                if end < 0:
                    return actions, True
                index = end + 2
                continue
            literal = _STRING.match(text, index)
            if literal:
                code.append('""')
                index = literal.end()
                continue
            code.append(text[index])
            index += 1
        actions.append("".join(code))
        position = index + 2


def template_variables(text):
    """(variables of the template data the text's actions use, whether an action is left open).

    Inside `with`/`range` the dot is the value given there (`{{ with .Data }}{{ .name }}`), so only
    `$.Name` names the data there; `if` and `block` nest the same way but keep the dot."""
    actions, unclosed = template_actions(text)
    found = set()
    rebound = []  # per open block: whether it rebinds the dot
    for code in actions:
        words = code.strip().lstrip("-").split(None, 1)
        keyword = words[0] if words else ""
        if any(rebound):
            found.update(_ROOT_FIELD.findall(code))
        else:
            found.update(_FIELD.findall(code))
        if keyword in ("with", "range"):
            rebound.append(True)
        elif keyword in ("if", "block", "define"):
            rebound.append(keyword == "define")
        elif keyword == "end" and rebound:
            rebound.pop()
    return found, unclosed


def _shown(names):
    return ", ".join("{{ .%s }}" % name for name in sorted(names))


def check_text(kind, key, value):
    """The problem with one subject or body, or None."""
    name = "templates.%s.%s" % (kind, key)
    if value is None:
        return None
    if value.strip() == "":
        return "%s must not be empty: omit %s to keep the one the project has." % (name, key)
    if key == "subject" and _LINE_BREAK_OR_CONTROL.search(value):
        return "%s must be one line without control characters; got %r." % (name, value)
    if _CONTROL.search(value):
        return "%s must not contain control characters (only tabs and line breaks); remove them." % name
    variables, unclosed = template_variables(value)
    if unclosed:
        return ("%s has a '{{' that is never closed with '}}': Supabase Auth could not parse it and would send its "
                "default text instead; close it or remove it. Nothing was changed." % name)
    allowed = MAIL_TYPES[kind][1]
    unknown = variables - allowed
    if unknown:
        return ("%s uses %s, which Supabase Auth does not give the %s mail (it would render as empty text): "
                "use only %s. Nothing was changed." % (name, _shown(unknown), kind, _shown(allowed)))
    return None


def check_keeps_link(kind, content):
    """The problem when a body drops what its mail needs (the link or the code), or None."""
    needs = MAIL_TYPES[kind][2]
    if content is None or needs is None:
        return None
    variables, _unclosed = template_variables(content)
    name = "templates.%s.content" % kind
    if needs == NEEDS_TOKEN:
        if "Token" in variables:
            return None
        return ("%s drops the one-time code: the %s mail is useless without it. Put {{ .Token }} in the body. "
                "Nothing was changed." % (name, kind))
    if "ConfirmationURL" in variables or "Token" in variables:
        return None
    if "TokenHash" in variables and variables & {"SiteURL", "RedirectTo"}:
        return None
    return ("%s drops the confirmation link: the %s mail is useless without it. Put "
            "<a href=\"{{ .ConfirmationURL }}\">...</a> in the body (or the code {{ .Token }}, or your own link "
            "{{ .SiteURL }}/auth/confirm?token_hash={{ .TokenHash }}&type=...). Nothing was changed."
            % (name, kind))


def validate(params):
    """The first problem in the input, or None; runs before any request."""
    problems = [
        check_pattern("project_ref", params["project_ref"], PROJECT_REF_PATTERN,
                      "the 20 lowercase letters of https://<ref>.supabase.co"),
        check_api_options(params, "api_url", "access_token"),
    ]
    managed = {kind: entry for kind, entry in (params["templates"] or {}).items() if entry}
    if not any(value is not None for entry in managed.values() for value in entry.values()):
        problems.append("templates must give at least one subject, content or enabled, such as "
                        "templates: {confirmation: {subject: ...}}.")
    for kind, entry in managed.items():
        problems.append(check_text(kind, "subject", entry.get("subject")))
        problems.append(check_text(kind, "content", entry.get("content")))
        problems.append(check_keeps_link(kind, entry.get("content")))
    return first_problem(*problems)


def wanted_fields(templates):
    """API field -> wanted value for every key given (None = left as it is)."""
    wanted = {}
    for kind, entry in (templates or {}).items():
        for key, value in (entry or {}).items():
            if value is not None:
                wanted[api_field(kind, key)] = value
    return wanted


def templates_view(config, templates):
    """The managed keys of the managed mail types, as the config holds them."""
    view = {}
    for kind, entry in (templates or {}).items():
        keys = [key for key, value in (entry or {}).items() if value is not None]
        if keys:
            view[kind] = {key: config.get(api_field(kind, key)) for key in keys}
    return view


def _as_text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true\n" if value else "false\n"
    return value if value.endswith("\n") else value + "\n"


def text_diffs(before, after, changes):
    """One before/after text pair per changed field, which Ansible prints as a unified diff."""
    diffs = []
    for kind in MAIL_TYPES:
        for key in ("subject", "content", "enabled"):
            if key == "enabled" and not MAIL_TYPES[kind][3]:
                continue
            field = api_field(kind, key)
            if field not in changes:
                continue
            header = "%s %s (%s)" % (kind, key, field)
            diffs.append({"before_header": header, "after_header": header,
                          "before": _as_text(before.get(field)), "after": _as_text(after.get(field))})
    return diffs


class AuthMailTemplates(ManagedObject):
    """A project's auth config: always there; only the mail template fields are managed."""

    result_key = "templates"

    def find(self):
        return self.client.get_auth_config(self.params["project_ref"]) or {}

    def present(self, current):
        return changed_fields(current, wanted_fields(self.params["templates"]))

    def update(self, current, changes):
        # PATCH is partial and answers with the whole config: no re-read.
        return self.client.update_auth_config(self.params["project_ref"], changes)

    def view(self, obj):
        return templates_view(obj, self.params["templates"])

    def diff_result(self, before, after, changes):
        return text_diffs(before, after, changes)

    def report(self, after, changes):
        return {"changed_fields": sorted(changes)}


def main():
    module = ApiModule(argument_spec=ARGUMENT_SPEC, connection_spec=connection_argument_spec())
    params = module.params
    module.fail_on_problem(validate(params))
    if not ACCESS_TOKEN_PATTERN.fullmatch(params["access_token"]):
        module.warn("access_token does not look like a Supabase access token (sbp_...); trying it anyway.")
    client = SupabaseManagementClient(
        params["api_url"], params["access_token"], project_ref=params["project_ref"],
        settings_label="mail templates", timeout=params["timeout"], validate_certs=params["validate_certs"],
    )
    AuthMailTemplates(module, client).run()


if __name__ == "__main__":
    main()
