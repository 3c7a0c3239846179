#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mailgun_smtp_credential
short_description: Manage a Mailgun SMTP credential, the login a relay client uses on a sending domain
version_added: 0.1.0
description:
  - Creates, updates the password of, or deletes an SMTP credential of a Mailgun sending domain
    through the Mailgun API (C(GET), C(POST /v3/domains/{domain}/credentials),
    C(PUT) and C(DELETE /v3/domains/{domain}/credentials/{login})).
  - The login is a full address on the domain, V(supabase-abc@mg.example.com); a bare O(login) gets
    C(@<domain>) appended. Mailgun has no lookup by login, so the module lists the domain's credentials
    (one request per 1000) and looks for it.
  - The password is write-only and Mailgun never shows it. Choose it yourself (recommended; the
    C(mailgun) role generates it on the controller and stores it before the credential exists) or omit it
    on creation, and Mailgun generates one, which this module returns exactly once as RV(password).
  - Idempotency for a chosen password follows C(ansible.builtin.user). With
    O(update_password=on_create) an existing credential is left alone, whatever its password. With
    O(update_password=always) the password is sent with C(PUT) on every run. Mailgun answers HTTP 400
    "New password cannot be the same as old password" when nothing changes. The module reports that as
    not changed, so such a run is idempotent, but it still sends one C(PUT).
  - Mailgun takes form bodies, not JSON. A JSON C(PUT) would reach Mailgun without a password, and
    Mailgun would silently generate one. The module sends C(multipart/form-data).
  - When the answer to a create is lost (a timeout, a dropped connection), the credential is read again.
    If it is there, the create landed. If not, the create is sent once more (Mailgun has one credential per
    login, so this never makes two). When the lost answer carried a password Mailgun generated, the
    module sets a password of its own on the credential with C(PUT) and returns that in RV(password) with
    a warning, so no run ends with a password nobody holds.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.mailgun
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Reads the credentials and reports what would change; sends no create, password change or delete.
    support: full
  diff_mode:
    description: Shows the login before and after; the password only as changed or unchanged.
    support: full
options:
  domain:
    description:
      - The Mailgun sending domain the credential belongs to, such as V(mg.example.com) or a sandbox
        domain V(sandbox0123abcd.mailgun.org).
    type: str
    required: true
  login:
    description:
      - The SMTP login, the object's identity. A name such as V(supabase-abc) (C(@<domain>) is appended),
        or a full address on O(domain).
    type: str
    required: true
  state:
    description:
      - V(present) creates the credential, or sets its password under O(update_password); V(absent)
        deletes it.
    type: str
    choices: [present, absent]
    default: present
  password:
    description:
      - The SMTP password, 5 to 32 characters (Mailgun's limit).
      - When omitted on creation, Mailgun generates one and the module returns it once in RV(password);
        run such a task with C(no_log=true) and store the value at once.
      - If the create's answer (carrying that password) is lost, the module sets a password of its own
        (32 letters and digits) on the credential and returns that instead.
      - Leading or trailing whitespace, line breaks and control characters are refused, since they are
        classic paste errors.
    type: str
  update_password:
    description:
      - V(on_create) sets O(password) only when the credential is created.
      - V(always) also sets it on an existing credential with C(PUT). Mailgun never shows a password, so
        the module cannot compare it first. Mailgun's 400 for the same password counts as no change, so
        only a different password reports C(changed). In check mode it reports C(changed).
    type: str
    choices: [always, on_create]
    default: on_create
notes:
  - Mailgun has no way to read a password back, so drift of the password cannot be detected by this
    module; M(karto.supabase_mail.smtp_check) logs in with it to prove it works.
  - Deleting the domain's system credential (C(postmaster@<domain>)) is refused by Mailgun with HTTP 400.
seealso:
  - name: Mailgun SMTP credentials API
    description: The endpoints this module calls.
    link: https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/credentials
  - name: Mailgun SMTP
    description: Hosts C(smtp.mailgun.org) and C(smtp.eu.mailgun.org); ports 25, 587, 2525 (STARTTLS) and 465 (TLS).
    link: https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/send-smtp
  - module: karto.supabase_mail.mailgun_domain_info
"""

EXAMPLES = r"""
- name: SMTP credential for Supabase Auth, with a password generated and stored on the controller
  karto.supabase_mail.mailgun_smtp_credential:
    api_key: "{{ mailgun_api_key }}"
    domain: mg.karto.test
    login: supabase-abcdefghijklmnopqrst
    password: "{{ lookup('ansible.builtin.password', 'secrets/mailgun-supabase-abcdefghijklmnopqrst.password', length=32, chars=['ascii_letters', 'digits']) }}"
  delegate_to: localhost

- name: Let Mailgun generate the password; it is returned once, so keep this task quiet
  karto.supabase_mail.mailgun_smtp_credential:
    api_key: "{{ mailgun_api_key }}"
    domain: mg.karto.test
    login: karto-generated
  register: generated_credential
  no_log: true
  delegate_to: localhost

- name: Rotate the password (Mailgun's "same password" answer counts as no change)
  karto.supabase_mail.mailgun_smtp_credential:
    api_key: "{{ mailgun_api_key }}"
    domain: mg.karto.test
    login: supabase-abcdefghijklmnopqrst@mg.karto.test
    password: "{{ lookup('ansible.builtin.password', 'secrets/mailgun-supabase-abcdefghijklmnopqrst.password', length=32, chars=['ascii_letters', 'digits']) }}"
    update_password: always
  delegate_to: localhost

- name: Remove the credentials
  karto.supabase_mail.mailgun_smtp_credential:
    api_key: "{{ mailgun_api_key }}"
    domain: mg.karto.test
    login: "{{ item }}"
    state: absent
  loop: [supabase-abcdefghijklmnopqrst, karto-generated]
  delegate_to: localhost
"""

RETURN = r"""
credential:
  description: The credential after the run (as it would be, in check mode); null when absent. Never holds the password.
  returned: always
  type: dict
  contains:
    login:
      description: The SMTP login, a full address on the domain.
      type: str
      sample: supabase-abcdefghijklmnopqrst@mg.karto.test
    domain:
      description: The sending domain.
      type: str
      sample: mg.karto.test
    created_at:
      description: When Mailgun created it (RFC 2822); null for one this run created or would create.
      type: str
      sample: Fri, 23 Jan 2026 10:16:00 +0000
created:
  description: Whether this run created the credential.
  returned: always
  type: bool
  sample: true
password:
  description:
    - The password Mailgun generated, returned only on the run that created the credential without O(password).
    - When the create's answer carrying it was lost, the password the module then set on the credential instead.
    - It is shown nowhere else and never again; store it immediately.
  returned: when the run created the credential without O(password)
  type: str
  sample: 3kTq9ZbV0xLmN4rP
changed_fields:
  description: What the run sent (or would send) and Mailgun took. Names only, never values.
  returned: always
  type: list
  elements: str
  sample: [password]
"""

import re
import secrets
import string

from ansible_collections.karto.supabase_mail.plugins.module_utils._engine import CREATE, ManagedObject
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_mailgun import (
    PASSWORD_MAX_LENGTH,
    MailgunClient,
    api_url_of,
    connection_argument_spec,
    full_login,
    login_domain_problem,
    password_problem,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_no_control_characters,
    check_no_surrounding_whitespace,
    check_not_empty,
    check_pattern,
    check_smtp_host,
    first_problem,
)

ARGUMENT_SPEC = dict(
    domain=dict(type="str", required=True),
    login=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    password=dict(type="str", no_log=True),
    update_password=dict(type="str", default="on_create", choices=["always", "on_create"], no_log=False),
)
PASSWORD_FIELD = "password"
# A login's local part: the dot-atom characters of an address (RFC 5322), no spaces, no quotes.
LOGIN_PATTERN = re.compile(r"[!#-'*+\-/-9=?A-Z^-~.]+(?:@[A-Za-z0-9.-]+)?")


def validate(params):
    return first_problem(
        check_not_empty("domain", params["domain"]),
        check_smtp_host("domain", params["domain"]),
        check_pattern("login", params["login"], LOGIN_PATTERN,
                      "a name such as supabase-abc, or an address on the domain, without spaces"),
        login_domain_problem(params["login"], params["domain"]),
        check_not_empty("password", params["password"]),
        check_no_surrounding_whitespace("password", params["password"], secret=True),
        check_no_control_characters("password", params["password"], secret=True),
        password_problem("password", params["password"]),
        # An empty api_url must fail here, not fall back to the region's real endpoint.
        check_api_options(dict(params, api_url=api_url_of(params)), "api_url", "api_key"),
    )


def new_password(length=PASSWORD_MAX_LENGTH):
    """Letters and digits, at least one of each class, from the system's CSPRNG (Mailgun allows 32)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _dummy in range(length))
        if any(c.islower() for c in password) and any(c.isupper() for c in password) and any(
                c.isdigit() for c in password):
            return password


def generated_password(answer, login):
    """The password Mailgun generated for `login`, from {"credentials": {login: password}}, or None."""
    credentials = answer.get("credentials") if isinstance(answer, dict) else None
    if not isinstance(credentials, dict):
        return None
    return next((value for key, value in credentials.items() if str(key).lower() == login.lower()), None)


class SmtpCredential(ManagedObject):
    result_key = "credential"
    secret_option = "password"
    secret_field = PASSWORD_FIELD
    # One credential per login: a create whose answer was lost and that a re-read does not find is sent
    # again. Should the first have landed after all, the second is refused and a re-read finds it, or it
    # sets the same (given) password.
    create_is_unique = True

    def __init__(self, module, client):
        super().__init__(module, client)
        self.domain = self.params["domain"].lower().rstrip(".")
        self.login = full_login(self.params["login"], self.domain)

    @property
    def label(self):
        return "the Mailgun SMTP credential %s" % self.login

    def find(self):
        return self.client.find_credential(self.domain, self.login)

    def present(self, current):
        # Sent on create (when given), and on an existing credential only with update_password=always.
        return self.secret_changes(current)

    def create(self, changes):
        answer = self.client.create_credential(self.domain, self.login, changes.get(PASSWORD_FIELD))
        if self.params["password"] is None:
            generated = generated_password(answer, self.login)
            if generated:
                self.client.redact.add(generated)
                self.result["password"] = generated
                self.module.warn("Mailgun generated the password of %s; it is returned once in 'password'. "
                                 "Store it now." % self.login)
            else:
                # Not in the answer: nobody holds it. Set one of ours.
                self._reset_password("Mailgun's answer to creating %s carried no generated password" % self.login)
        return {"login": self.login, "created_at": None}

    def on_lost_create(self, found, changes):
        if self.params["password"] is None:
            # The credential exists with the password Mailgun generated, which only the lost answer carried.
            self._reset_password("The answer to creating %s, which carried its generated password, was lost"
                                 % self.login)
        return found

    def _reset_password(self, why):
        """No run may end with a password nobody holds: set one of ours and return it once."""
        password = new_password()
        self.client.redact.add(password)
        self.client.change_password(self.domain, self.login, password)
        self.result["password"] = password
        self.module.warn("%s; the credential exists, so a new password was set on it and is returned once in "
                         "'password'. Store it now." % why)

    def update(self, current, changes):
        if self.client.change_password(self.domain, self.login, changes[PASSWORD_FIELD]) is False:
            # Mailgun: "New password cannot be the same as old password" - it is in place already.
            changes.pop(PASSWORD_FIELD)
        return current

    def delete(self, current):
        self.client.delete_credential(self.domain, self.login)

    def predict(self, current, changes):
        return dict(current or {"login": self.login, "created_at": None})

    def view(self, obj):
        if obj is None:
            return None
        return {"login": str(obj.get("login") or obj.get("mailbox") or self.login), "domain": self.domain,
                "created_at": obj.get("created_at")}

    def report(self, after, changes):
        return {"created": self.action == CREATE, "changed_fields": sorted(changes)}


def main():
    module = ApiModule(argument_spec=ARGUMENT_SPEC, connection_spec=connection_argument_spec())
    params = module.params
    module.fail_on_problem(validate(params))
    client = MailgunClient(api_url_of(params), params["api_key"], timeout=params["timeout"],
                           validate_certs=params["validate_certs"], secrets=[params["password"]])
    SmtpCredential(module, client).run()


if __name__ == "__main__":
    main()
