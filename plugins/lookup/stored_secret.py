# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: stored_secret
short_description: Read a secret file the collection stored on the controller, as it is
version_added: 0.1.0
description:
  - Reads a file the role C(karto.supabase_mail.secret_store) wrote (an SMTP password or API key),
    on the controller, and says whether it exists. The text is returned as stored, Ansible
    Vault-encrypted or not; the role decrypts it with C(ansible.builtin.unvault).
  - Unlike C(ansible.builtin.file), a missing file is an answer (RV(_raw.exists) false), not an
    error, and an encrypted file is not decrypted with the run's vault secrets (the role's own
    password decrypts it); unlike C(ansible.builtin.stat) and C(ansible.builtin.slurp), no module
    process starts, which makes the read on every run cheap.
  - A file that exists but cannot be read fails the lookup with the path and the reason, never
    with the content; the caller must not treat it as missing, or a new secret would replace one
    the relay still holds.
author:
  - karto maintainers (@karto)
options:
  _terms:
    description: The path of the secret file, one; C(~) is the home of the controller's user.
    type: list
    elements: path
    required: true
"""

EXAMPLES = r"""
- name: Read the stored SMTP password, if an earlier run stored one
  ansible.builtin.set_fact:
    smtp_password_found: "{{ stored.exists }}"
    smtp_password: "{{ stored.text }}"
  vars:
    stored: "{{ lookup('karto.supabase_mail.stored_secret', '/tmp/karto-secrets/smtp2go-supabase-demo.password') }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description: The file's state, one dict for the one path.
  type: list
  elements: dict
  contains:
    exists:
      description: Whether the file exists.
      type: bool
    text:
      description: The file's text without surrounding whitespace; empty when it does not exist.
      type: str
"""

import errno
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("stored_secret reads one path; got %d." % len(terms))
        # As the modules that write it (copy, file) take a path: ~ is the controller user's home.
        path = os.path.expanduser(terms[0])
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            if error.errno == errno.ENOENT:
                return [{"exists": False, "text": ""}]
            raise AnsibleLookupError("cannot read the stored secret %s: %s" % (path, error.strerror)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise AnsibleLookupError("the stored secret %s is not UTF-8 text: restore it from a backup, or "
                                     "delete it so that the next run sets a new secret" % path) from None
        return [{"exists": True, "text": text.strip()}]
