#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: resend_api_key
short_description: Manage a Resend API key by name, such as the SMTP password of user resend
version_added: 0.1.0
description:
  - Creates or deletes a Resend API key through the API (C(GET /api-keys), C(POST /api-keys),
    C(DELETE /api-keys/{api_key_id})). Resend's SMTP server takes the user C(resend) and an API key as the
    password.
  - The key is found by its O(name) in the list of keys. Resend does not make names unique, so the module
    creates a key only when none has that name; two keys with that name are an error, except with O(recreate)
    or O(state=absent).
  - Resend shows a key's token only in the answer to its creation. The module returns it then, once, in
    RV(token), and never again; store it at once (the C(resend) role does, before any other step). A key whose
    token was lost cannot be read back; replace it (O(recreate)) or delete it. When the answer to the module's
    own create is lost, the module replaces the key itself in the same run; the key it finds is deleted and
    created once more, and the new token is returned (with a warning).
  - B(Permission drift cannot be detected.) Resend has no C(GET /api-keys/{api_key_id}), and its list shows
    neither a key's permission nor its domain, so O(permission), O(domain) and O(domain_id) are used only when
    the key is created and are never compared with an existing key. To change them, set O(recreate=true) for
    one run.
  - O(recreate=true) creates a new key with the same name and returns its token and the IDs of the keys it
    replaces in RV(replaced_key_ids); it does not delete them, so the new token can be stored first. Delete them
    afterwards with O(state=absent) and O(key_id), as the C(resend) role does.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.resend
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Reads the keys and reports what would change; creates or deletes nothing.
    support: full
  diff_mode:
    description: Shows the key's ID, name and dates before and after; never its token.
    support: full
options:
  name:
    description:
      - The key's name, its identity for this module, for example V(supabase-abcdefghijklmnopqrst).
      - At most 50 characters (the Resend dashboard's limit).
    type: str
    required: true
  state:
    description:
      - V(present) creates the key when no key has O(name); V(absent) deletes every key with O(name), or only
        the one with O(key_id).
    type: str
    choices: [present, absent]
    default: present
  permission:
    description:
      - What the key may do, used when it is created. V(sending_access) can only send mail, which is all an
        SMTP password needs; V(full_access) can manage every resource.
    type: str
    choices: [sending_access, full_access]
    default: sending_access
  domain:
    description:
      - Restrict a V(sending_access) key to sending From this domain of the team, for example
        V(mail.example.com). Looked up by name (C(GET /domains)) when the key is created.
      - Mutually exclusive with O(domain_id).
    type: str
  domain_id:
    description:
      - Restrict a V(sending_access) key to sending From the domain with this Resend ID (RV(karto.supabase_mail.resend_domain#module:domain.id)).
      - Mutually exclusive with O(domain).
    type: str
  recreate:
    description:
      - Create a new key with O(name) even though one exists, with the current O(permission) and domain, and
        return its token; the existing keys with O(name) are listed in RV(replaced_key_ids) and left in place.
      - Set it for one run, to rotate the key or to change what it may do; every run with it creates a key.
    type: bool
    default: false
  key_id:
    description:
      - With O(state=absent), delete only the key with this ID (it must be named O(name)), such as one of the
        RV(replaced_key_ids) of a O(recreate) run.
    type: str
notes:
  - Deleting a key also stops SMTP logins with it.
seealso:
  - name: Resend API keys API
    description: The endpoints this module calls.
    link: https://resend.com/docs/api-reference/api-keys/create-api-key
  - name: Resend SMTP
    description: User C(resend), password an API key.
    link: https://resend.com/docs/send-with-smtp
  - module: karto.supabase_mail.resend_domain
"""

EXAMPLES = r"""
- name: The sending domain the key will be restricted to
  karto.supabase_mail.resend_domain:
    api_key: "{{ resend_api_key }}"
    name: mail.karto.test
  register: sending_domain
  delegate_to: localhost

- name: The SMTP password of Supabase Auth, a key that may only send From that domain
  karto.supabase_mail.resend_api_key:
    api_key: "{{ resend_api_key }}"
    name: supabase-abcdefghijklmnopqrst
    permission: sending_access
    domain_id: "{{ sending_domain.domain.id }}"
  register: smtp_key
  no_log: true
  delegate_to: localhost

- name: Store it at once, Resend never shows it again
  ansible.builtin.include_role:
    name: karto.supabase_mail.secret_store
    tasks_from: store
  vars:
    secret_store_dir: "{{ playbook_dir }}/secrets"
    secret_store_name: resend-supabase-abcdefghijklmnopqrst.api_key
    secret_store_new_value: "{{ smtp_key.token }}"
  when: smtp_key.token is defined

- name: Replace the key (Resend cannot show or change a key's permission)
  karto.supabase_mail.resend_api_key:
    api_key: "{{ resend_api_key }}"
    name: supabase-abcdefghijklmnopqrst
    domain: mail.karto.test
    recreate: true
  register: new_key
  no_log: true
  delegate_to: localhost

- name: Store the new token before the old key goes
  ansible.builtin.include_role:
    name: karto.supabase_mail.secret_store
    tasks_from: store
  vars:
    secret_store_dir: "{{ playbook_dir }}/secrets"
    secret_store_name: resend-supabase-abcdefghijklmnopqrst.api_key
    secret_store_new_value: "{{ new_key.token }}"

- name: Delete the keys it replaced
  karto.supabase_mail.resend_api_key:
    api_key: "{{ resend_api_key }}"
    name: supabase-abcdefghijklmnopqrst
    key_id: "{{ item }}"
    state: absent
  loop: "{{ new_key.replaced_key_ids }}"
  delegate_to: localhost

- name: Revoke the key
  karto.supabase_mail.resend_api_key:
    api_key: "{{ resend_api_key }}"
    name: supabase-abcdefghijklmnopqrst
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
key:
  description: The key after the run (as it would be, in check mode); null when absent. Never holds its token.
  returned: always
  type: dict
  contains:
    id:
      description: Resend's ID of the key (null for a key check mode would create).
      type: str
      sample: 02e47a5e-7f28-4160-9727-3e94b76bc500
    name:
      description: The key's name.
      type: str
      sample: supabase-abcdefghijklmnopqrst
    created_at:
      description: When Resend created the key (null for a key this run created; the create answer has no date).
      type: str
      sample: "2026-10-06 23:47:56.678+00"
    last_used_at:
      description: When the key was last used, as Resend lists it; null when never.
      type: str
      sample: null
    permission:
      description: The permission the key was created with by this run; null for an existing key, since Resend does not show it.
      type: str
      sample: sending_access
    domain_id:
      description: The domain the key was restricted to by this run; null otherwise (Resend does not show it).
      type: str
      sample: d91cd9bd-1176-453e-8fc1-35364d380206
created:
  description: Whether this run created a key (also true for O(recreate)).
  returned: always
  type: bool
  sample: true
recreated:
  description: Whether this run created a new key in place of existing ones (O(recreate)).
  returned: always
  type: bool
  sample: false
replaced_key_ids:
  description: With O(recreate), the IDs of the existing keys with O(name), newest first; they still exist.
  returned: always
  type: list
  elements: str
  sample: [02e47a5e-7f28-4160-9727-3e94b76bc500]
deleted_key_ids:
  description: With O(state=absent), the IDs of the keys deleted (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: []
token:
  description:
    - The new key's token (C(re_) and more characters), returned only by the run that created it.
    - Resend shows it nowhere else and never again; store it immediately.
  returned: when a key was created
  type: str
  sample: re_c1tpEyD8_NKFusih9vKVQknRAQfmFcWCv
changed_fields:
  description: What the run sent (or would send) to create a key. Names only.
  returned: always
  type: list
  elements: str
  sample: [domain_id, name, permission]
"""

import re

from ansible_collections.karto.supabase_mail.plugins.module_utils._domain import check_domain
from ansible_collections.karto.supabase_mail.plugins.module_utils._engine import CREATE, DELETE, UPDATE, ManagedObject
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_resend import (
    PERMISSIONS,
    ResendClient,
    connection_argument_spec,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_no_surrounding_whitespace,
    check_not_empty,
    check_pattern,
    check_single_line,
    first_problem,
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    permission=dict(type="str", default="sending_access", choices=list(PERMISSIONS)),
    domain=dict(type="str"),
    domain_id=dict(type="str"),
    recreate=dict(type="bool", default=False),
    key_id=dict(type="str"),
)
MUTUALLY_EXCLUSIVE = [("domain", "domain_id")]
TOKEN_FIELD = "token"
# Resend's IDs are UUIDs; anything of letters, digits and hyphens is let through to the API.
ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,64}")
NAME_LIMIT = 50


def validate(params):
    restricted = params["domain"] is not None or params["domain_id"] is not None
    return first_problem(
        check_api_options(params, "api_url", "api_key"),
        check_not_empty("name", params["name"]),
        check_single_line("name", params["name"]),
        check_no_surrounding_whitespace("name", params["name"]),
        None if len(params["name"] or "") <= NAME_LIMIT else "name must be at most %d characters (Resend's limit); "
        "got %d." % (NAME_LIMIT, len(params["name"])),
        check_single_line("domain", params["domain"]),
        check_no_surrounding_whitespace("domain", params["domain"]),
        check_domain("domain", params["domain"]),
        check_pattern("domain_id", params["domain_id"], ID_PATTERN,
                      "a Resend domain ID such as d91cd9bd-1176-453e-8fc1-35364d380206"),
        check_pattern("key_id", params["key_id"], ID_PATTERN,
                      "a Resend API key ID such as 02e47a5e-7f28-4160-9727-3e94b76bc500"),
        "domain and domain_id restrict a sending_access key; Resend ignores them for full_access: drop them or "
        "set permission=sending_access." if restricted and params["permission"] == "full_access" else None,
        "key_id picks the key to delete: use it with state=absent." if params["key_id"] is not None
        and params["state"] != "absent" else None,
        "recreate makes a new key: use it with state=present." if params["recreate"] and params["state"] == "absent"
        else None,
    )


def key_view(key):
    if not key:
        return None
    return {field: key.get(field) for field in ("id", "name", "created_at", "last_used_at", "permission", "domain_id")}


def newest_first(keys):
    """Keys by creation time, newest first (Resend lists newest first; a stable sort keeps that for equal dates)."""
    return sorted(keys, key=lambda key: str(key.get("created_at") or ""), reverse=True)


class ApiKey(ManagedObject):
    result_key = "key"
    # The key's value is in the create's answer only: a key whose answer was lost is replaced.
    secret_shown_once = True

    def __init__(self, module, client):
        super().__init__(module, client)
        self.named = []  # every key with the name (or the key_id one), newest first

    @property
    def label(self):
        return "the Resend API key named %s" % self.params["name"]

    def find(self):
        keys = self.client.list_api_keys()
        if self.params["key_id"] is not None:
            chosen = [key for key in keys if key.get("id") == self.params["key_id"]]
            if chosen and chosen[0].get("name") != self.params["name"]:
                self.module.fail_json(msg="The Resend API key %s is named %r, not %r: key_id must be a key named "
                                          "name." % (self.params["key_id"], chosen[0].get("name"), self.params["name"]))
            self.named = chosen
        else:
            self.named = newest_first([key for key in keys if key.get("name") == self.params["name"]])
        if len(self.named) > 1 and self.params["state"] == "present" and not self.params["recreate"]:
            self.module.fail_json(
                msg="Resend has %d API keys named %s (%s, newest first); this module manages one key per name. After "
                    "an interrupted recreate the newest holds the stored token: run once more with recreate=true "
                    "(it replaces them all), or delete the extra ones in Resend (API Keys)."
                    % (len(self.named), self.params["name"],
                       ", ".join("%s created %s" % (k.get("id"), k.get("created_at")) for k in self.named)),
                key_ids=[k.get("id") for k in self.named])
        return self.named[0] if self.named else None

    def present(self, current):
        if current is not None and not self.params["recreate"]:
            # Nothing to compare: the list shows neither permission nor domain (see DOCUMENTATION).
            return {}
        changes = {"name": self.params["name"], "permission": self.params["permission"]}
        domain_id = self.params["domain_id"] or self.domain_id_of(self.params["domain"])
        if domain_id and self.params["permission"] == "sending_access":
            changes["domain_id"] = domain_id
        return changes

    def domain_id_of(self, name):
        if name is None:
            return None
        found = self.client.find_domain(name)
        if found is None:
            self.module.fail_json(msg="Resend has no domain named %s in this team: add it first (resend_domain), or "
                                      "drop domain to let the key send From every domain." % name)
        return found.get("id")

    def _create_key(self, changes):
        created = self.client.create_api_key(changes["name"], changes["permission"], changes.get("domain_id"))
        token = created.get(TOKEN_FIELD)
        if token:
            self.client.redact.add(token)
            self.result[TOKEN_FIELD] = token
            self.module.warn("Resend showed the token of the new API key %s once; it is returned in 'token'. Store "
                             "it now." % self.params["name"])
        return {"id": created.get("id"), "name": changes["name"], "created_at": None, "last_used_at": None,
                "permission": changes["permission"], "domain_id": changes.get("domain_id")}

    def create(self, changes):
        return self._create_key(changes)

    def on_lost_create(self, found, changes):
        self.lost_token(found, changes)

    def lost_token(self, found, changes):
        self.module.fail_json(
            msg="Resend created the API key %s (id %s) but the answer carrying its token was lost, and Resend never "
                "shows a token again. Delete that key (state=absent with key_id=%s, or API Keys in the dashboard) and "
                "run again to create a new one." % (self.params["name"], found.get("id"), found.get("id")),
            created=True, changed=True, key=key_view(found), changed_fields=sorted(changes))

    def update(self, current, changes):
        """The recreate: a new key beside the old ones, which stay until the caller stored the new token."""
        replaced = [key.get("id") for key in self.named]
        try:
            after = self._create_key(changes)
        except ApiError as error:
            if not error.outcome_unknown:
                raise
            new = [key for key in self.client.list_api_keys()
                   if key.get("name") == self.params["name"] and key.get("id") not in replaced]
            if new:
                self.lost_token(newest_first(new)[0], changes)
            self.module.fail_api(error, "%s A re-read finds no new key named %s, so it was probably not created; the "
                                        "create was not sent again: run the task again."
                                 % (self.client.explain(error), self.params["name"]))
        self.result["replaced_key_ids"] = replaced
        return after

    def delete(self, current):
        for key in self.named:
            self.client.delete_api_key(key["id"])

    def predict(self, current, changes):
        return {"id": None, "name": self.params["name"], "created_at": None, "last_used_at": None,
                "permission": changes.get("permission"), "domain_id": changes.get("domain_id")}

    def view(self, obj):
        return key_view(obj)

    def report(self, after, changes):
        replaced = self.result.pop("replaced_key_ids", None)
        if replaced is None and self.action == UPDATE:
            replaced = [key.get("id") for key in self.named]  # check mode: what the run would replace
        return {"created": self.action in (CREATE, UPDATE), "recreated": self.action == UPDATE,
                "replaced_key_ids": replaced or [],
                "deleted_key_ids": [key.get("id") for key in self.named] if self.action == DELETE else [],
                "changed_fields": sorted(changes)}


def main():
    module = ApiModule(argument_spec=ARGUMENT_SPEC, connection_spec=connection_argument_spec(),
                       mutually_exclusive=MUTUALLY_EXCLUSIVE)
    params = module.params
    module.fail_on_problem(validate(params))
    client = ResendClient(params["api_url"], params["api_key"], timeout=params["timeout"],
                          validate_certs=params["validate_certs"])
    ApiKey(module, client).run()


if __name__ == "__main__":
    main()
