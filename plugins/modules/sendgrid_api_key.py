#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sendgrid_api_key
short_description: Manage a SendGrid API key by name, such as the SMTP password of user apikey
version_added: 0.1.0
description:
  - Creates, updates or deletes a SendGrid API key through the v3 API (C(GET /v3/api_keys),
    C(GET /v3/api_keys/{id}), C(POST /v3/api_keys), C(PUT /v3/api_keys/{id}), C(DELETE /v3/api_keys/{id})).
  - The key is found by its O(name). SendGrid does not make names unique, so the module lists the
    keys first and creates one only when none has that name; two keys with that name are an error.
  - SendGrid shows the key's value only in the answer to its creation. The module returns it then,
    once, in RV(api_key), and never again; store it at once (the C(sendgrid) role does, before any
    other step). A key whose value was lost cannot be read back; delete it and create a new one. When
    the answer to the module's own create is lost, the module does that itself in the same run; the key
    it finds is deleted and created once more, and the new value is returned (with a warning).
  - The key always gets the scopes in O(scopes) (default V(mail.send), the least an SMTP password
    needs); SendGrid would make a key created without scopes a Full Access key.
  - Scope drift is corrected with C(PUT). SendGrid adds V(sender_verification_eligible) and
    V(2fa_required) to every key by itself; they are left out of the comparison.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.sendgrid
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Reads the key and reports what would change; creates, updates or deletes nothing.
    support: full
  diff_mode:
    description: Shows the key's name and scopes before and after; never its value.
    support: full
options:
  name:
    description:
      - The key's name, its identity for this module, for example V(supabase-abcdefghijklmnopqrst).
      - At most 100 characters (assumed from the SendGrid app's form).
    type: str
    required: true
  state:
    description:
      - V(present) creates the key or brings its scopes to O(scopes); V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  scopes:
    description:
      - The permissions of the key, such as V(mail.send). Always sent on create and compared on
        every run, without the two scopes SendGrid adds by itself.
      - The O(api_key) must hold every scope it hands on.
    type: list
    elements: str
    default: [mail.send]
notes:
  - SendGrid allows at most 100 API keys per account; the 101st create is refused with HTTP 403.
  - Deleting a key also stops SMTP logins with it, after a short propagation delay.
seealso:
  - name: SendGrid API keys API
    description: The endpoints this module calls.
    link: https://www.twilio.com/docs/sendgrid/api-reference/api-keys/create-api-keys
  - name: SendGrid SMTP relay
    description: User C(apikey), password an API key with Mail Send.
    link: https://www.twilio.com/docs/sendgrid/for-developers/sending-email/integrating-with-the-smtp-api
  - module: karto.supabase_mail.sendgrid_sender
"""

EXAMPLES = r"""
- name: The SMTP password of Supabase Auth, a key that may only send mail
  karto.supabase_mail.sendgrid_api_key:
    api_key: "{{ sendgrid_api_key }}"
    name: supabase-abcdefghijklmnopqrst
  register: smtp_key
  no_log: true
  delegate_to: localhost

- name: Store it at once, SendGrid never shows it again
  ansible.builtin.include_role:
    name: karto.supabase_mail.secret_store
    tasks_from: store
  vars:
    secret_store_dir: "{{ playbook_dir }}/secrets"
    secret_store_name: sendgrid-supabase-abcdefghijklmnopqrst.api_key
    secret_store_new_value: "{{ smtp_key.api_key }}"
  when: smtp_key.api_key is defined

- name: Revoke a key
  karto.supabase_mail.sendgrid_api_key:
    api_key: "{{ sendgrid_api_key }}"
    name: supabase-abcdefghijklmnopqrst
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
key:
  description: The key after the run (as it would be, in check mode); null when absent. Never holds its value.
  returned: always
  type: dict
  contains:
    api_key_id:
      description: SendGrid's ID of the key (null for a key check mode would create).
      type: str
      sample: qfTQ6KG0QBiwWdJ0-pCLCA
    name:
      description: The key's name.
      type: str
      sample: supabase-abcdefghijklmnopqrst
    scopes:
      description: The key's scopes as SendGrid lists them, including those it adds by itself.
      type: list
      elements: str
      sample: [mail.send, sender_verification_eligible, 2fa_required]
created:
  description: Whether this run created the key.
  returned: always
  type: bool
  sample: true
api_key:
  description:
    - The key's value (C(SG.) and 66 more characters), returned only by the run that created it.
    - SendGrid shows it nowhere else and never again; store it immediately.
  returned: when the key was created
  type: str
  sample: SG.qfTQ6KG0QBiwWdJ0-pCLCA.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
changed_fields:
  description: What the run sent (or would send). Names only.
  returned: always
  type: list
  elements: str
  sample: [scopes]
"""

from ansible_collections.karto.supabase_mail.plugins.module_utils._engine import CREATE, ManagedObject
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_sendgrid import (
    SendgridClient,
    comparable_scopes,
    connection_argument_spec,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_no_surrounding_whitespace,
    check_not_empty,
    check_single_line,
    first_problem,
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    scopes=dict(type="list", elements="str", default=["mail.send"]),
)
VALUE_FIELD = "api_key"


def validate(params):
    scopes = params["scopes"] or []
    return first_problem(
        check_api_options(params, "api_url", "api_key"),
        check_not_empty("name", params["name"]),
        check_single_line("name", params["name"]),
        check_no_surrounding_whitespace("name", params["name"]),
        None if len(params["name"] or "") <= 100 else "name must be at most 100 characters; got %d."
        % len(params["name"]),
        None if params["state"] == "absent" or comparable_scopes(scopes) else
        "scopes must name at least one scope (SendGrid would create a Full Access key without any); "
        "for an SMTP password use [mail.send].",
        next(("scopes must be scope names without whitespace, such as mail.send; got %r." % scope
              for scope in scopes if not scope or scope != scope.strip() or " " in scope), None),
    )


def key_view(key):
    if not key:
        return None
    return {"api_key_id": key.get("api_key_id"), "name": key.get("name"), "scopes": list(key.get("scopes") or [])}


def wanted_changes(params, current):
    """{"name", "scopes"} to send: all on create, the scopes when they differ (name resent, as PUT needs)."""
    wanted = comparable_scopes(params["scopes"])
    if current is None:
        return {"name": params["name"], "scopes": wanted}
    if comparable_scopes(current.get("scopes")) != wanted:
        return {"scopes": wanted}
    return {}


class ApiKey(ManagedObject):
    result_key = "key"
    # The key's value is in the create's answer only: a key whose answer was lost is replaced.
    secret_shown_once = True

    @property
    def label(self):
        return "the SendGrid API key named %s" % self.params["name"]

    def find(self):
        named = [key for key in self.client.list_api_keys() if key.get("name") == self.params["name"]]
        if len(named) > 1:
            self.module.fail_json(
                msg="SendGrid has %d API keys named %s (ids %s); this module manages one key per name. Delete "
                    "the extra ones in SendGrid (Settings > API Keys), keeping the one whose value you stored."
                    % (len(named), self.params["name"], ", ".join(str(k.get("api_key_id")) for k in named)),
                    key_ids=[k.get("api_key_id") for k in named])
        if not named:
            return None
        # The list has no scopes: read the key itself. Gone in between: treat as absent.
        return self.client.get_api_key(named[0]["api_key_id"])

    def present(self, current):
        return wanted_changes(self.params, current)

    def create(self, changes):
        created = self.client.create_api_key(changes["name"], changes["scopes"])
        value = created.get(VALUE_FIELD)
        if value:
            self.client.redact.add(value)
            self.result[VALUE_FIELD] = value
            self.module.warn("SendGrid showed the value of the new API key %s once; it is returned in "
                             "'api_key'. Store it now." % self.params["name"])
        return {key: item for key, item in created.items() if key != VALUE_FIELD}

    def on_lost_create(self, found, changes):
        self.module.fail_json(
            msg="SendGrid created the API key %s (id %s) but the answer carrying its value was lost, and SendGrid "
                "never shows a key's value again. Delete that key (state=absent, or Settings > API Keys) and run "
                "again to create a new one." % (self.params["name"], found.get("api_key_id")),
            created=True, changed=True, key=key_view(found), changed_fields=sorted(changes))

    def update(self, current, changes):
        return self.client.update_api_key(current["api_key_id"], current.get("name") or self.params["name"],
                                          changes["scopes"])

    def delete(self, current):
        self.client.delete_api_key(current["api_key_id"])

    def predict(self, current, changes):
        after = dict(current or {"api_key_id": None, "name": self.params["name"]})
        after.update(changes)
        return after

    def view(self, obj):
        return key_view(obj)

    def report(self, after, changes):
        return {"created": self.action == CREATE, "changed_fields": sorted(changes)}


def main():
    module = ApiModule(argument_spec=ARGUMENT_SPEC, connection_spec=connection_argument_spec())
    params = module.params
    module.fail_on_problem(validate(params))
    client = SendgridClient(params["api_url"], params["api_key"], timeout=params["timeout"],
                            validate_certs=params["validate_certs"])
    ApiKey(module, client).run()


if __name__ == "__main__":
    main()
