#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: smtp2go_user
short_description: Manage an SMTP2GO SMTP user, the credential a relay client logs in with
version_added: 0.1.0
description:
  - Creates, updates or removes an SMTP2GO SMTP user through the SMTP2GO API
    (C(/users/smtp/view), C(/users/smtp/add), C(PATCH /users/smtp/edit), C(/users/smtp/remove)).
  - Reads the user once, then sends only the fields that differ, with the C(PATCH) form of
    C(edit) that leaves omitted fields alone (the C(POST) form resets them to defaults).
  - The password is write-only. Choose it yourself (recommended, for example with
    C(lookup('ansible.builtin.password', ...)), which stores it before the user is created) or omit
    it on creation and SMTP2GO generates one, which this module returns exactly once as RV(password).
  - When the answer to a create is lost (a timeout, a dropped connection), the user is read again.
    If it is there, the create landed; if not, the create is sent once more (SMTP2GO refuses a
    second user of the same name, so this never makes two). When the lost answer carried a
    generated password, the module sets a new password of its own on the user and returns that in
    RV(password) with a warning, so no run ends with a password nobody holds.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.smtp2go
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Reads the user and reports what would change; sends no add, edit or remove.
    support: full
  diff_mode:
    description: Shows the managed fields before and after; the password only as changed or unchanged.
    support: full
options:
  username:
    description:
      - The SMTP user name, 5 to 100 characters of letters, digits, C(.), C(_), C(-) and C(@).
      - It is the SMTP login, and the object's identity.
    type: str
    required: true
  state:
    description:
      - V(present) creates the user or brings it to the stated fields; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  password:
    description:
      - The SMTP password. SMTP2GO asks for at least 64 bits of entropy (for example 16 random
        letters and digits).
      - When omitted on creation, SMTP2GO generates one and the module returns it once in
        RV(password); run such a task with C(no_log=true) and store the value at once.
      - If the create's answer (carrying that password) is lost, the module sets a password of its own
        (24 letters and digits) on the user and returns that instead.
      - Leading or trailing whitespace, line breaks and control characters are refused, since they are
        classic paste errors.
    type: str
  update_password:
    description:
      - V(on_create) sets O(password) only when the user is created.
      - V(always) also sets it on an existing user. SMTP2GO never returns the password, so the
        module cannot compare it and reports C(changed) on every such run; use it to rotate.
    type: str
    choices: [always, on_create]
    default: on_create
  description:
    description:
      - Free text shown in the SMTP2GO console. Left as is when omitted.
    type: str
  status:
    description:
      - V(allowed) may send; V(blocked) may not; V(sandbox) accepts mail without delivering it.
      - Left as is when omitted; new users are V(allowed).
    type: str
    choices: [allowed, blocked, sandbox]
  rate_limit:
    description:
      - A custom limit on the mails this user may send per O(rate_limit_period).
      - V(0) removes the custom limit, so the account's default applies. Left as is when omitted.
    type: int
  rate_limit_period:
    description:
      - The period of O(rate_limit), such as V(1 hour), V(1 day), V(1 week) or V(1 month).
    type: str
    default: 1 hour
notes:
  - SMTP2GO has no way to read a password back, so drift of the password cannot be detected by
    this module; M(karto.supabase_mail.smtp_check) logs in with it to prove it works.
seealso:
  - name: SMTP2GO SMTP users API
    description: The endpoints this module calls.
    link: https://developers.smtp2go.com/reference/add-an-smtp-user
  - module: karto.supabase_mail.smtp2go_sender
"""

EXAMPLES = r"""
- name: SMTP user for Supabase Auth, with a password generated and stored on the controller
  karto.supabase_mail.smtp2go_user:
    api_key: "{{ smtp2go_api_key }}"
    username: karto-supabase
    password: "{{ lookup('ansible.builtin.password', 'secrets/smtp2go-karto-supabase.txt', length=24, chars=['ascii_letters', 'digits']) }}"
    description: Supabase Auth mail for KARTO
    rate_limit: 200
    rate_limit_period: 1 hour
  delegate_to: localhost

- name: Let SMTP2GO generate the password; it is returned once, so keep this task quiet
  karto.supabase_mail.smtp2go_user:
    api_key: "{{ smtp2go_api_key }}"
    username: karto-generated
  register: generated_user
  no_log: true
  delegate_to: localhost

- name: Stop the user sending, without deleting it
  karto.supabase_mail.smtp2go_user:
    api_key: "{{ smtp2go_api_key }}"
    username: karto-supabase
    status: blocked
  delegate_to: localhost

- name: Remove the users
  karto.supabase_mail.smtp2go_user:
    api_key: "{{ smtp2go_api_key }}"
    username: "{{ item }}"
    state: absent
  loop: [karto-supabase, karto-generated]
  delegate_to: localhost
"""

RETURN = r"""
user:
  description: The SMTP user after the run (as it would be, in check mode); null when absent. Never holds the password.
  returned: always
  type: dict
  contains:
    username:
      description: SMTP login.
      type: str
      sample: karto-supabase
    description:
      description: Console description.
      type: str
      sample: Supabase Auth mail for KARTO
    status:
      description: allowed, blocked or sandbox.
      type: str
      sample: allowed
    sending_allowed:
      description: Whether SMTP2GO lets the user send.
      type: bool
      sample: true
    rate_limit:
      description: Custom limit per period, 0 when none.
      type: int
      sample: 200
    rate_limit_period:
      description: Period of the custom limit, as SMTP2GO reports it (or as given, right after a change).
      type: str
      sample: "1:00:00"
created:
  description: Whether this run created the user.
  returned: always
  type: bool
  sample: true
password:
  description:
    - The password SMTP2GO generated, returned only on the run that created the user without O(password).
    - When the create's answer carrying it was lost, the password the module then set on the user instead.
    - It is shown nowhere else and never again; store it immediately.
  returned: when the run created the user without O(password)
  type: str
  sample: gA9c1kE0f5Qz7Lm2
changed_fields:
  description: SMTP2GO fields the run sent (or would send). Names only, never values.
  returned: always
  type: list
  elements: str
  sample: [description, custom_ratelimit_value]
"""

import re
import secrets
import string

from ansible_collections.karto.supabase_mail.plugins.module_utils._diff import changed_fields
from ansible_collections.karto.supabase_mail.plugins.module_utils._engine import CREATE, ManagedObject
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_smtp2go import (
    Smtp2goClient,
    connection_argument_spec,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_no_control_characters,
    check_no_surrounding_whitespace,
    check_not_empty,
    check_pattern,
    check_range,
    first_problem,
)

ARGUMENT_SPEC = dict(
    username=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    password=dict(type="str", no_log=True),
    update_password=dict(type="str", default="on_create", choices=["always", "on_create"], no_log=False),
    description=dict(type="str"),
    status=dict(type="str", choices=["allowed", "blocked", "sandbox"]),
    rate_limit=dict(type="int"),
    rate_limit_period=dict(type="str", default="1 hour"),
)
PASSWORD_FIELD = "email_password"
# A password the module sets itself when SMTP2GO's generated one was lost with its answer: 24 letters
# and digits, about 143 bits (SMTP2GO asks for at least 64).
RESET_PASSWORD_LENGTH = 24
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9._\-@]{5,100}")
_PERIOD_UNITS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400}
_PERIOD_WORDS = re.compile(r"^\s*(\d+)\s*(hour|day|week|month)s?\s*(?:,?\s*(\d+):(\d\d):(\d\d))?\s*$")
_PERIOD_CLOCK = re.compile(r"^\s*(?:(\d+)\s*days?,\s*)?(\d+):(\d\d):(\d\d)\s*$")


def period_seconds(period):
    """Seconds in an SMTP2GO period, from the input form (`1 hour`) or the reported one (`1:00:00`)."""
    if period is None:
        return None
    text = str(period).strip().lower()
    match = _PERIOD_WORDS.match(text)
    if match:
        count, unit, hours, minutes, seconds = match.groups()
        extra = int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
        return int(count) * _PERIOD_UNITS[unit] + extra
    match = _PERIOD_CLOCK.match(text)
    if match:
        days, hours, minutes, seconds = match.groups()
        return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return None


def validate(params):
    return first_problem(
        check_pattern("username", params["username"], USERNAME_PATTERN,
                      "5 to 100 letters, digits, '.', '_', '-' or '@'"),
        check_not_empty("password", params["password"]),
        check_no_surrounding_whitespace("password", params["password"], secret=True),
        check_no_control_characters("password", params["password"], secret=True),
        check_no_control_characters("description", params["description"]),
        check_range("rate_limit", params["rate_limit"], 0, 2147483647),
        None if period_seconds(params["rate_limit_period"]) else
        "rate_limit_period must look like '1 hour', '1 day', '1 week' or '1 month'; got %r."
        % params["rate_limit_period"],
        check_api_options(params, "api_url", "api_key"),
    )


def user_view(user):
    """The user as the module reports it: option-like names, no password."""
    if not user:
        return None
    return {
        "username": user.get("username"),
        "description": user.get("description"),
        "status": user.get("status"),
        "sending_allowed": user.get("sending_allowed"),
        "rate_limit": (user.get("custom_ratelimit_value") or 0) if user.get("custom_ratelimit") else 0,
        "rate_limit_period": user.get("custom_ratelimit_period"),
    }


def wanted_fields(params, current):
    """SMTP2GO fields the caller manages and that differ from `current`."""
    wanted = {"description": params["description"], "status": params["status"]}
    changes = changed_fields(current, wanted)
    limit = params["rate_limit"]
    if limit is not None:
        has_limit = bool(current.get("custom_ratelimit"))
        if limit == 0 and has_limit:
            changes["custom_ratelimit"] = False
        elif limit > 0 and (
            not has_limit
            or current.get("custom_ratelimit_value") != limit
            or period_seconds(current.get("custom_ratelimit_period")) != period_seconds(params["rate_limit_period"])
        ):
            changes.update(custom_ratelimit=True, custom_ratelimit_value=limit,
                           custom_ratelimit_period=params["rate_limit_period"])
    return changes


def predicted_user(username, current, changes):
    """The user as add or the PATCH edit would leave it (SMTP2GO's defaults for a new one)."""
    after = dict(current or {"username": username, "status": "allowed"})
    after.update({key: value for key, value in changes.items() if key != PASSWORD_FIELD})
    if changes.get("custom_ratelimit") is False:
        after["custom_ratelimit_value"] = None
    after["sending_allowed"] = after.get("status") == "allowed"
    return after


def new_password(length=RESET_PASSWORD_LENGTH):
    """Letters and digits, at least one of each class, from the system's CSPRNG."""
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _dummy in range(length))
        if any(c.islower() for c in password) and any(c.isupper() for c in password) and any(
                c.isdigit() for c in password):
            return password


class SmtpUser(ManagedObject):
    result_key = "user"
    secret_option = "password"
    secret_field = PASSWORD_FIELD
    # SMTP2GO refuses a second user of the same name: a create lost on the way can be sent again.
    create_is_unique = True

    @property
    def label(self):
        return "SMTP2GO SMTP user %s" % self.params["username"]

    def find(self):
        return self.client.find_smtp_user(self.params["username"])

    def present(self, current):
        changes = wanted_fields(self.params, current or {})
        # SMTP2GO never shows the password: it is sent on create, and on update only with update_password=always.
        changes.update(self.secret_changes(current))
        return changes

    def create(self, changes):
        created = self.client.add_smtp_user(dict(changes, username=self.params["username"]))
        if self.params["password"] is None and created.get(PASSWORD_FIELD):
            self.result["password"] = created[PASSWORD_FIELD]
            self.client.redact.add(created[PASSWORD_FIELD])
            self.module.warn("SMTP2GO generated the password of %s; it is returned once in 'password'. "
                             "Store it now." % self.params["username"])
        return created

    def on_lost_create(self, found, changes):
        if self.params["password"] is None:
            # The user exists with the password SMTP2GO generated, which only the lost answer carried.
            # No run may end with a password nobody holds: set a new one now and return it once.
            password = new_password()
            self.client.redact.add(password)
            self.client.edit_smtp_user(self.params["username"], {PASSWORD_FIELD: password})
            self.result["password"] = password
            self.module.warn("The answer to creating SMTP user %s, which carried its generated password, was lost; "
                             "the user exists, so a new password was set on it and is returned once in 'password'. "
                             "Store it now." % self.params["username"])
        return found

    def update(self, current, changes):
        after = predicted_user(self.params["username"], current, changes)
        answer = self.client.edit_smtp_user(self.params["username"], changes)
        # PATCH answers with a partial user object; what it holds is the effective value, no re-read needed.
        for entry in answer if isinstance(answer, list) else []:
            if entry.get("username") == self.params["username"]:
                after.update({key: value for key, value in entry.items() if key != PASSWORD_FIELD})
        return after

    def delete(self, current):
        self.client.remove_smtp_user(self.params["username"])

    def predict(self, current, changes):
        return predicted_user(self.params["username"], current, changes)

    def view(self, obj):
        return user_view(obj)

    def report(self, after, changes):
        return {"created": self.action == CREATE, "changed_fields": sorted(changes)}


def main():
    module = ApiModule(argument_spec=ARGUMENT_SPEC, connection_spec=connection_argument_spec())
    params = module.params
    module.fail_on_problem(validate(params))
    client = Smtp2goClient(params["api_url"], params["api_key"], timeout=params["timeout"],
                           validate_certs=params["validate_certs"], secrets=[params["password"]])
    SmtpUser(module, client).run()


if __name__ == "__main__":
    main()
