#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sendgrid_sender
short_description: Manage a SendGrid verified single sender, the From address SendGrid relays for
version_added: 0.1.0
description:
  - SendGrid relays only mail whose From address is a verified Sender Identity. For a mailbox on a
    domain you do not own, such as V(karto.help@ro.ru), that is a Single Sender, verified by a person
    clicking the link SendGrid mails to it.
  - Uses C(GET /v3/verified_senders) (there is no read by id, so the module lists, page by page, and
    picks the sender by O(from_email)), C(POST /v3/verified_senders), C(PATCH /v3/verified_senders/{id}),
    C(DELETE /v3/verified_senders/{id}), C(POST /v3/verified_senders/resend/{id}) and
    C(GET /v3/verified_senders/domains).
  - It creates the sender only when missing (creating mails the verification link), sends only the
    fields that differ, and returns whether SendGrid has verified it (RV(verified)) and whether it is
    locked (RV(locked)).
  - It reports SendGrid's warning for a From domain on its Domain Warn List (free-mail domains and
    domains whose DMARC policy makes such mail fail) in RV(domain_warning) and as a warning.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.sendgrid
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Reads the sender and reports what would change; creates, updates, resends or deletes nothing.
    support: full
  diff_mode:
    description: Shows the sender's fields before and after.
    support: full
options:
  from_email:
    description:
      - The From address to verify; the sender's identity for this module (matched case-insensitively).
    type: str
    required: true
    aliases: [email_address]
  from_name:
    description: The From display name. Left as is when omitted.
    type: str
  reply_to:
    description: The Reply-To address SendGrid requires; defaults to O(from_email) on creation.
    type: str
  reply_to_name:
    description: The Reply-To display name. Left as is when omitted.
    type: str
  nickname:
    description:
      - A label shown in SendGrid's list of senders (required by SendGrid, at most 100 characters);
        defaults to O(from_email) on creation.
    type: str
  address:
    description:
      - Street address of the sender. The SendGrid app asks for a postal address with every single
        sender (anti-spam laws require one in commercial mail); the API takes it as optional.
    type: str
  address2:
    description: Second address line.
    type: str
  city:
    description: City of the postal address.
    type: str
  address_state:
    description:
      - State or region code of the postal address, at most 2 characters (SendGrid's C(state)).
    type: str
  zip:
    description: Postal code, at most 10 characters.
    type: str
  country:
    description: Country of the postal address, for example V(Russia).
    type: str
  state:
    description:
      - V(present) creates the sender or brings its fields to the options given; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  resend_verification:
    description:
      - Ask SendGrid to mail the verification link again when the sender exists and is not verified yet.
      - Reported as C(changed) when it is sent.
    type: bool
    default: false
  wait_for_verification:
    description:
      - Wait until the sender is verified, or fail after O(verification_timeout) with what to do.
    type: bool
    default: false
  verification_timeout:
    description: Seconds to wait with O(wait_for_verification).
    type: int
    default: 300
  poll_interval:
    description: Seconds between two looks while waiting.
    type: int
    default: 10
  check_domain:
    description:
      - Read SendGrid's Domain Warn List (C(GET /v3/verified_senders/domains)) and report the From
        domain's entry in RV(domain_warning).
    type: bool
    default: true
notes:
  - Changing the From address of a sender makes SendGrid verify it again; this module never does that,
    since O(from_email) is the identity; a new address is a new sender.
seealso:
  - name: SendGrid Single Sender Verification
    description: What the mailbox owner sees, and the form fields.
    link: https://www.twilio.com/docs/sendgrid/ui/sending-email/sender-verification
  - name: SendGrid verified senders API
    description: The endpoints this module calls.
    link: https://www.twilio.com/docs/sendgrid/api-reference/sender-verification/create-verified-sender-request
  - module: karto.supabase_mail.sendgrid_api_key
"""

EXAMPLES = r"""
- name: Verify the team mailbox as SendGrid's single sender (a person clicks the link SendGrid mails)
  karto.supabase_mail.sendgrid_sender:
    api_key: "{{ sendgrid_api_key }}"
    from_email: karto.help@ro.ru
    from_name: KARTO
    address: 1 Example Street
    city: Moscow
    country: Russia
  register: sender
  delegate_to: localhost

- name: Say what SendGrid thinks of the From domain
  ansible.builtin.debug:
    msg: "{{ sender.domain_warning.message }}"
  when: sender.domain_warning is not none

- name: Mail the link again and wait up to ten minutes for the click
  karto.supabase_mail.sendgrid_sender:
    api_key: "{{ sendgrid_api_key }}"
    from_email: karto.help@ro.ru
    resend_verification: true
    wait_for_verification: true
    verification_timeout: 600
  delegate_to: localhost
"""

RETURN = r"""
sender:
  description: The sender after the run (as it would be, in check mode); null when absent.
  returned: always
  type: dict
  contains:
    id:
      description: SendGrid's ID of the sender (null for one check mode would create).
      type: int
      sample: 1234
    from_email:
      description: The From address.
      type: str
      sample: karto.help@ro.ru
    from_name:
      description: The From display name.
      type: str
      sample: KARTO
    reply_to:
      description: The Reply-To address.
      type: str
      sample: karto.help@ro.ru
    nickname:
      description: The label in SendGrid.
      type: str
      sample: karto.help@ro.ru
    verified:
      description: Whether SendGrid accepts mail From it.
      type: bool
      sample: false
    locked:
      description: SendGrid's C(locked) flag.
      type: bool
      sample: false
verified:
  description: Whether the sender is verified; false when absent or created in check mode.
  returned: always
  type: bool
  sample: true
locked:
  description: SendGrid's C(locked) flag of the sender; false when absent.
  returned: always
  type: bool
  sample: false
verification_sent:
  description: Whether this run made SendGrid mail a verification link (on creation or by O(resend_verification)).
  returned: always
  type: bool
  sample: false
domain_warning:
  description:
    - SendGrid's entry for the From domain on its Domain Warn List; null when the domain is not on it,
      or with O(check_domain=false) or O(state=absent).
    - C(level) V(hard) means such mail "will not deliver" as SendGrid puts it; V(soft) that it will likely fail DMARC.
  returned: always
  type: dict
  sample: {domain: ro.ru, level: hard, message: SendGrid lists ro.ru among the domains ...}
changed_fields:
  description: SendGrid fields the run sent (or would send). Names only.
  returned: always
  type: list
  elements: str
  sample: [from_name, city]
"""

from ansible_collections.karto.supabase_mail.plugins.module_utils._diff import changed_fields
from ansible_collections.karto.supabase_mail.plugins.module_utils._engine import (
    CREATE,
    ManagedObject,
    verification_argument_spec,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_sendgrid import (
    SendgridClient,
    connection_argument_spec,
    domain_warning,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_email,
    check_range,
    check_single_line,
    first_problem,
)

ARGUMENT_SPEC = dict(
    from_email=dict(type="str", required=True, aliases=["email_address"]),
    from_name=dict(type="str"),
    reply_to=dict(type="str"),
    reply_to_name=dict(type="str"),
    nickname=dict(type="str"),
    address=dict(type="str"),
    address2=dict(type="str"),
    city=dict(type="str"),
    address_state=dict(type="str"),
    zip=dict(type="str"),
    country=dict(type="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    resend_verification=dict(type="bool", default=False),
    check_domain=dict(type="bool", default=True),
    **verification_argument_spec()
)
# Module option -> SendGrid field, with the field's maxLength in VerifiedSenderRequest.
FIELDS = {
    "nickname": ("nickname", 100),
    "from_name": ("from_name", 256),
    "reply_to": ("reply_to", 256),
    "reply_to_name": ("reply_to_name", 256),
    "address": ("address", 100),
    "address2": ("address2", 100),
    "city": ("city", 150),
    "address_state": ("state", 2),
    "zip": ("zip", 10),
    "country": ("country", 100),
}
# Required by the create schema, which PATCH reuses: sent with every write.
REQUIRED_FIELDS = ("nickname", "from_email", "reply_to")
VIEW_FIELDS = ("id", "from_email", "from_name", "reply_to", "reply_to_name", "nickname", "address", "address2",
               "city", "state", "zip", "country", "verified", "locked")


def validate(params):
    problems = [check_email("from_email", params["from_email"]), check_email("reply_to", params["reply_to"]),
                None if len(params["from_email"] or "") <= 256 else "from_email must be at most 256 characters."]
    for option, (_field, limit) in FIELDS.items():
        value = params.get(option)
        problems.append(check_single_line(option, value))
        if value is not None and len(value) > limit:
            problems.append("%s must be at most %d characters (SendGrid's limit); got %d." % (option, limit, len(value)))
    problems.append(check_api_options(params, "api_url", "api_key"))
    problems += [check_range("verification_timeout", params["verification_timeout"], 0, 86400),
                 check_range("poll_interval", params["poll_interval"], 1, 3600)]
    return first_problem(*problems)


def wanted_fields(params, current):
    """SendGrid fields to send: every given one (with the required defaults) to create, the differing ones to update."""
    wanted = {field: params[option] for option, (field, _limit) in FIELDS.items() if params.get(option) is not None}
    if current is None:
        wanted.setdefault("nickname", params["from_email"])
        wanted.setdefault("reply_to", params["from_email"])
        wanted["from_email"] = params["from_email"]
        return wanted
    return changed_fields(current, wanted)


def sender_view(sender):
    if not sender:
        return None
    view = {field: sender.get(field) for field in VIEW_FIELDS}
    view["verified"] = bool(sender.get("verified"))
    view["locked"] = bool(sender.get("locked"))
    return view


class Sender(ManagedObject):
    result_key = "sender"

    def __init__(self, module, client):
        super().__init__(module, client)
        self.result["verification_sent"] = False
        self.warning = None
        self.domain_checked = False

    @property
    def label(self):
        return "the SendGrid single sender %s" % self.params["from_email"]

    def find(self):
        if not self.domain_checked and self.params["check_domain"] and self.params["state"] == "present":
            # Once per run, inside the engine's read (so an API error is explained like any other).
            self.domain_checked = True
            self.warning = domain_warning(self.params["from_email"], self.client.sender_domain_warnings())
            if self.warning:
                self.module.warn(self.warning["message"])
        return self.client.find_verified_sender(self.params["from_email"])

    def present(self, current):
        return wanted_fields(self.params, current)

    def create(self, changes):
        # Creating mails the verification link: the engine calls this only when find() found nothing.
        created = self.client.create_verified_sender(changes)
        self.result["verification_sent"] = True
        return created or self.find()

    def on_lost_create(self, found, changes):
        self.result["verification_sent"] = True
        return found

    def update(self, current, changes):
        body = {field: current.get(field) for field in REQUIRED_FIELDS}
        body.update(changes)
        answer = self.client.update_verified_sender(current["id"], body)
        after = dict(current)
        after.update(changes)
        if isinstance(answer, dict) and answer.get("id") == current.get("id"):
            after.update(answer)
        return after

    def delete(self, current):
        self.client.delete_verified_sender(current["id"])

    def predict(self, current, changes):
        after = dict(current or {"id": None, "verified": False, "locked": False})
        after.update(changes)
        return after

    def settle(self, after):
        if after is None:
            return after
        if (self.params["resend_verification"] and self.action != CREATE and not after.get("verified")):
            self.client.resend_verification(after["id"])
            self.result["verification_sent"] = True
        if self.params["wait_for_verification"]:
            return self.wait_until_verified(after)
        return after

    def wait_until_verified(self, found):
        return self.wait_until(
            found, done=lambda obj: bool((obj or {}).get("verified")), reread=lambda obj: self.find() or obj,
            failure=lambda obj: dict(
                msg="SendGrid single sender %s is still not verified after %d seconds: open that mailbox and "
                    "click the link in SendGrid's mail 'Please Verify Your Single Sender' (check the spam "
                    "folder; resend_verification=true mails it again)."
                    % (self.params["from_email"], self.params["verification_timeout"]),
                verified=False, sender=self.view(obj)))

    def view(self, obj):
        return sender_view(obj)

    def report(self, after, changes):
        shown = self.view(after) or {}
        real = after is not None and after.get("id") is not None
        result = {"verified": bool(real and shown.get("verified")), "locked": bool(shown.get("locked")),
                  "changed_fields": sorted(changes), "domain_warning": self.warning}
        if self.result.get("verification_sent") and self.action != CREATE:
            # A resend is a write of its own.
            result["changed"] = True
        return result


def main():
    module = ApiModule(argument_spec=ARGUMENT_SPEC, connection_spec=connection_argument_spec())
    params = module.params
    module.fail_on_problem(validate(params))
    client = SendgridClient(params["api_url"], params["api_key"], timeout=params["timeout"],
                            validate_certs=params["validate_certs"])
    Sender(module, client).run()


if __name__ == "__main__":
    main()
