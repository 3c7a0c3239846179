#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: smtp2go_sender
short_description: Manage an SMTP2GO verified sender, a single address or a whole domain
version_added: 0.1.0
description:
  - SMTP2GO relays only mail whose From address is a verified sender. This module adds one
    and reports whether it is verified yet.
  - A single sender email (O(email_address)) is verified by a person clicking the link SMTP2GO
    mails to that address. It is the only way to send as a mailbox on a domain you do not own,
    such as V(karto.help@ro.ru).
  - A sender domain (O(domain)) is verified by publishing the CNAME records the module returns
    in RV(dns_records).
  - The module always looks first and adds only what is missing, because adding an unverified
    address again re-sends the verification mail.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.smtp2go
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Looks the sender up and reports what would change; adds or removes nothing and does not wait.
    support: full
  diff_mode:
    description: Shows the sender before and after.
    support: full
options:
  email_address:
    description:
      - A single sender email to verify. Mutually exclusive with O(domain).
    type: str
    aliases: [email]
  domain:
    description:
      - A sender domain to verify, such as V(mail.example.com). Mutually exclusive with O(email_address).
    type: str
  state:
    description:
      - V(present) adds the sender when missing; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  verification_message:
    description:
      - A short text SMTP2GO adds to the verification mail, so the mailbox owner knows why it came.
    type: str
  wait_for_verification:
    description:
      - Wait until the sender is verified, or fail after O(verification_timeout) with what to do.
      - For a domain, each poll asks SMTP2GO to check the DNS records again.
    type: bool
    default: false
  verification_timeout:
    description:
      - Seconds to wait with O(wait_for_verification).
    type: int
    default: 300
  poll_interval:
    description:
      - Seconds between two looks while waiting.
    type: int
    default: 10
seealso:
  - name: SMTP2GO sender verification
    description: Single sender emails and sender domains.
    link: https://developers.smtp2go.com/docs/getting-started
  - module: karto.supabase_mail.smtp2go_user
"""

EXAMPLES = r"""
- name: Verify the team mailbox as a sender (a person clicks the link SMTP2GO mails to it)
  karto.supabase_mail.smtp2go_sender:
    api_key: "{{ smtp2go_api_key }}"
    email_address: karto.help@ro.ru
    verification_message: Supabase Auth for KARTO will send from this address.
  register: sender
  delegate_to: localhost

- name: Wait up to ten minutes for the click
  karto.supabase_mail.smtp2go_sender:
    api_key: "{{ smtp2go_api_key }}"
    email_address: karto.help@ro.ru
    wait_for_verification: true
    verification_timeout: 600
  delegate_to: localhost

- name: Add a sender domain and show the CNAME records to publish
  karto.supabase_mail.smtp2go_sender:
    api_key: "{{ smtp2go_api_key }}"
    domain: mail.example.com
  register: sender_domain
  delegate_to: localhost

- name: Show the records
  ansible.builtin.debug:
    msg: "{{ item.name }} CNAME {{ item.value }}"
  loop: "{{ sender_domain.dns_records }}"
"""

RETURN = r"""
sender:
  description: The sender after the run (as it would be, in check mode); null when absent.
  returned: always
  type: dict
  contains:
    type:
      description: email or domain.
      type: str
      sample: email
    name:
      description: The address or domain.
      type: str
      sample: karto.help@ro.ru
    verified:
      description: Whether SMTP2GO accepts mail from it.
      type: bool
      sample: false
verified:
  description: Whether the sender is verified; false when absent or added in check mode.
  returned: always
  type: bool
  sample: true
verification_sent:
  description: Whether this run made SMTP2GO mail a verification link (single sender email only).
  returned: always
  type: bool
  sample: false
dns_records:
  description: For a domain, the CNAME records to publish and whether SMTP2GO has seen each.
  returned: when O(domain) is given and the domain exists
  type: list
  elements: dict
  sample:
    - {type: CNAME, purpose: dkim, name: s123456._domainkey.mail.example.com, value: dkim.smtp2go.net, verified: false}
    - {type: CNAME, purpose: return-path, name: em123456.mail.example.com, value: return.smtp2go.net, verified: false}
"""

from ansible_collections.karto.supabase_mail.plugins.module_utils._engine import ManagedObject, verification_argument_spec
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_smtp2go import (
    Smtp2goClient,
    connection_argument_spec,
    domain_dns_records,
    domain_verified,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_email,
    check_single_line,
    check_range,
    check_smtp_host,
    first_problem,
)

ARGUMENT_SPEC = dict(
    email_address=dict(type="str", aliases=["email"]),
    domain=dict(type="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    verification_message=dict(type="str"),
    **verification_argument_spec()
)


def validate(params):
    return first_problem(
        check_email("email_address", params["email_address"]),
        check_smtp_host("domain", params["domain"]),
        check_range("verification_timeout", params["verification_timeout"], 0, 86400),
        check_range("poll_interval", params["poll_interval"], 1, 3600),
        check_single_line("verification_message", params["verification_message"]),
        check_api_options(params, "api_url", "api_key"),
    )


class Sender(ManagedObject):
    """What both kinds share: look first, add only what is missing, report verification."""

    result_key = "sender"
    kind = None

    def __init__(self, module, client, name):
        super().__init__(module, client)
        self.name = name
        self.result["verification_sent"] = False

    @property
    def label(self):
        return "SMTP2GO sender %s" % self.name

    def present(self, current):
        # Nothing to edit on a sender: it is there or it is added.
        return {}

    def on_lost_create(self, found, changes):
        # No answer arrived: only the re-read says the add landed.
        self.module.warn("The answer to adding SMTP2GO sender %s was lost; a re-read lists it, so the add landed%s."
                         % (self.name, " and SMTP2GO mailed its verification link" if self.kind == "email" else ""))
        return self.after_add(found)

    def after_add(self, found):
        if found is None:
            self.module.fail_json(msg="SMTP2GO answered the add of sender %s without an error, but does not list "
                                      "it yet; rerun in a minute." % self.name)
        self.result["verification_sent"] = self.kind == "email"
        return found

    def predict(self, current, changes):
        # Would exist, not verified yet, no DNS records to show.
        return {"predicted": True}

    def settle(self, after):
        if after is not None and self.params["wait_for_verification"]:
            return self.wait_until_verified(after)
        return after

    def wait_until_verified(self, found):
        return self.wait_until(
            found, done=self.verified, reread=lambda _obj: self.recheck(),
            failure=lambda obj: dict(
                msg="SMTP2GO sender %s is still not verified after %d seconds: %s"
                    % (self.name, self.params["verification_timeout"], self.how_to_verify(obj)),
                verified=False, sender=self.view(obj), dns_records=self.records(obj)))

    def is_verified(self, obj):
        """Verified as reported: a prediction is never verified."""
        return bool(obj) and not obj.get("predicted") and self.verified(obj)

    def view(self, obj):
        if obj is None:
            return None
        return {"type": self.kind, "name": self.name, "verified": self.is_verified(obj)}

    def report(self, after, changes):
        extra = {"verified": self.is_verified(after)}
        if self.kind == "domain" and after and not after.get("predicted"):
            extra["dns_records"] = self.records(after)
        return extra

    # --- what differs per kind ------------------------------------------------------------
    def recheck(self):
        return self.find()

    @staticmethod
    def verified(found):
        raise NotImplementedError

    @staticmethod
    def records(found):
        return None

    def how_to_verify(self, found):
        raise NotImplementedError


class EmailSender(Sender):
    kind = "email"

    def find(self):
        return self.client.find_single_sender(self.name)

    def create(self, changes):
        # `add` mails the verification link: the engine calls it only when find() found nothing.
        self.client.add_single_sender(self.name, self.params["verification_message"])
        return self.after_add(self.find())

    def delete(self, current):
        self.client.remove_single_sender(self.name)

    @staticmethod
    def verified(found):
        return bool(found and found.get("verified"))

    def how_to_verify(self, found):
        return ("open the mailbox %s and click the verification link SMTP2GO sent to it (check the spam "
                "folder; rerun this task without wait_for_verification to see the state)." % self.name)


class DomainSender(Sender):
    kind = "domain"

    def find(self):
        return self.client.find_domain(self.name)

    def create(self, changes):
        self.client.add_domain(self.name)
        return self.after_add(self.find())

    def delete(self, current):
        self.client.remove_domain(self.name)

    def recheck(self):
        # Asks SMTP2GO to look at the DNS now instead of at its next periodic check.
        return self.client.verify_domain(self.name) or self.find()

    @staticmethod
    def verified(found):
        return domain_verified(found)

    @staticmethod
    def records(found):
        return domain_dns_records(found) if found else None

    def how_to_verify(self, found):
        pending = [r for r in (self.records(found) or []) if not r["verified"]]
        listing = "; ".join("%s CNAME %s" % (r["name"], r["value"]) for r in pending)
        return "publish these DNS records, then rerun: %s." % (listing or "see the SMTP2GO console")


def main():
    module = ApiModule(
        argument_spec=ARGUMENT_SPEC,
        connection_spec=connection_argument_spec(),
        mutually_exclusive=[("email_address", "domain")],
        required_one_of=[("email_address", "domain")],
    )
    params = module.params
    module.fail_on_problem(validate(params))
    client = Smtp2goClient(params["api_url"], params["api_key"], timeout=params["timeout"],
                           validate_certs=params["validate_certs"])
    if params["email_address"]:
        sender = EmailSender(module, client, params["email_address"])
    else:
        sender = DomainSender(module, client, params["domain"].lower().rstrip("."))
    sender.run()


if __name__ == "__main__":
    main()
