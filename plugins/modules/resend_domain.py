#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: resend_domain
short_description: Manage a Resend sending domain and its verification, the From domain Resend relays for
version_added: 0.1.0
description:
  - Resend sends only from domains verified through their DNS ("a domain you own, not a shared or public
    domain"); once a domain is verified, any address at it may be the From address. This module adds the
    domain, returns the DNS records to publish, asks Resend to check them and can wait for the result.
  - Uses C(GET /domains) (the domain is found by O(name); the list has no records), C(GET /domains/{domain_id}),
    C(POST /domains), C(POST /domains/{domain_id}/verify) and C(DELETE /domains/{domain_id}).
  - With O(verify=true) it asks Resend to verify the domain (C(POST /domains/{domain_id}/verify), a write
    reported as C(changed)) when its status is V(not_started), V(failed) or V(partially_failed); a V(pending)
    domain is being checked already, a V(verified) one needs nothing. The request only starts Resend's
    asynchronous check; RV(verified) says whether it has succeeded.
  - A public mailbox domain (V(gmail.com), V(rambler.ru), V(ro.ru) and other well-known ones) is refused before
    any request, with what to do instead; a domain Resend itself refuses as public is reported the same way.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.resend
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Reads the domain and reports what would change; adds, verifies or deletes nothing.
    support: full
  diff_mode:
    description: Shows the domain's status, region and records before and after.
    support: full
options:
  name:
    description:
      - The domain, its identity for this module, matched case-insensitively; for example V(mail.example.com).
        Resend recommends a subdomain, so the reputation of mail it sends stays apart from the root domain's.
      - Every address at it may then be the From address; a subdomain of it may not (add each one).
    type: str
    required: true
  state:
    description:
      - V(present) adds the domain when missing; V(absent) deletes it (mail From it stops at once).
    type: str
    choices: [present, absent]
    default: present
  region:
    description:
      - Where Resend sends the domain's mail from. Used when the domain is added; Resend cannot move a domain,
        so a different region for an existing domain is an error (delete and add it again, which makes new
        DKIM records).
    type: str
    choices: [us-east-1, eu-west-1, sa-east-1, ap-northeast-1]
    default: us-east-1
  custom_return_path:
    description:
      - The subdomain of O(name) used as the Return-Path (bounce) address, where the SPF records go. Used when
        the domain is added, not compared later. Resend advises against names such as V(test), which
        recipients may see.
    type: str
    default: send
  verify:
    description:
      - Ask Resend to check the DNS records when the domain is not verified and no check is running.
    type: bool
    default: true
  wait_for_verification:
    description:
      - Wait until Resend reports the domain verified, or fail after O(verification_timeout) listing the
        records to publish.
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
notes:
  - Resend keeps checking a V(pending) domain for 72 hours, then marks it V(failed); this module asks again on
    its next run.
  - Click and open tracking are left as Resend sets them; tracking rewrites links, which can break Supabase
    Auth's confirmation links.
seealso:
  - name: Resend domains
    description: What the records are and what each status means.
    link: https://resend.com/docs/dashboard/domains/introduction
  - name: Resend domains API
    description: The endpoints this module calls.
    link: https://resend.com/docs/api-reference/domains/create-domain
  - module: karto.supabase_mail.resend_api_key
"""

EXAMPLES = r"""
- name: Add the sending domain and show the records to publish at its DNS host
  karto.supabase_mail.resend_domain:
    api_key: "{{ resend_api_key }}"
    name: mail.karto.test
  register: sending_domain
  delegate_to: localhost

- name: The records, one per line
  ansible.builtin.debug:
    msg: "{{ sending_domain.records | map(attribute='fqdn') | zip(sending_domain.records | map(attribute='type'),
      sending_domain.records | map(attribute='value')) | map('join', ' ') | list }}"
  when: not sending_domain.verified

- name: Once the records are published, wait up to ten minutes for Resend to verify them
  karto.supabase_mail.resend_domain:
    api_key: "{{ resend_api_key }}"
    name: mail.karto.test
    wait_for_verification: true
    verification_timeout: 600
  delegate_to: localhost
"""

RETURN = r"""
domain:
  description: The domain after the run (as it would be, in check mode); null when absent.
  returned: always
  type: dict
  contains:
    id:
      description: Resend's ID of the domain (null for one check mode would add).
      type: str
      sample: d91cd9bd-1176-453e-8fc1-35364d380206
    name:
      description: The domain.
      type: str
      sample: mail.karto.test
    status:
      description:
        - V(not_started) (never checked), V(pending) (Resend is checking), V(verified), V(failed) (records not found
          within 72 hours), V(temporary_failure) (a verified domain whose records went missing), or the
          V(partially_verified) and V(partially_failed) states of a domain that also receives mail.
      type: str
      sample: pending
    region:
      description: Where Resend sends its mail from.
      type: str
      sample: us-east-1
    created_at:
      description: When the domain was added.
      type: str
      sample: "2026-03-28T17:12:02.059593+00:00"
verified:
  description: Whether Resend sends mail From this domain; false when absent or added in check mode.
  returned: always
  type: bool
  sample: false
records:
  description: The DNS records Resend checks, each as Resend lists it plus its full name; empty when absent.
  returned: always
  type: list
  elements: dict
  contains:
    record:
      description: What the record is for (V(SPF), V(DKIM), ...).
      type: str
      sample: SPF
    name:
      description: The name as Resend shows it, relative to the registrable domain.
      type: str
      sample: send.mail
    fqdn:
      description: The record's full DNS name.
      type: str
      sample: send.mail.karto.test
    type:
      description: The record type (V(MX), V(TXT), V(CNAME)).
      type: str
      sample: MX
    value:
      description: The value to publish.
      type: str
      sample: feedback-smtp.us-east-1.amazonses.com
    priority:
      description: The MX priority; null for other types.
      type: int
      sample: 10
    ttl:
      description: The TTL Resend suggests.
      type: str
      sample: Auto
    status:
      description: Whether Resend found the record (V(not_started), V(pending), V(verified), V(failed), ...).
      type: str
      sample: pending
dkim_selector:
  description: The DKIM selector of the domain (the label before C(._domainkey)); null when there is none.
  returned: always
  type: str
  sample: nhapbbryle57yxg3fbjytyodgbt2kyyg
return_path_host:
  description: The Return-Path host, where the SPF records are; null when there is none.
  returned: always
  type: str
  sample: send.mail.karto.test
verification_requested:
  description: Whether this run asked Resend to check the records (or would, in check mode).
  returned: always
  type: bool
  sample: true
public_domain:
  description: True when the run failed because the domain is a public mailbox domain.
  returned: always
  type: bool
  sample: false
changed_fields:
  description: What the run sent (or would send) to add the domain. Names only.
  returned: always
  type: list
  elements: str
  sample: [custom_return_path, name, region]
"""

import re

from ansible_collections.karto.supabase_mail.plugins.module_utils._domain import check_domain, normalise_domain
from ansible_collections.karto.supabase_mail.plugins.module_utils._engine import (
    CREATE,
    ManagedObject,
    verification_argument_spec,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_resend import (
    NEEDS_VERIFY_REQUEST,
    PUBLIC_MAIL_DOMAINS,
    REGIONS,
    VERIFIED,
    ResendClient,
    connection_argument_spec,
    is_public_domain_refusal,
    public_domain_message,
    records_view,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_no_surrounding_whitespace,
    check_not_empty,
    check_pattern,
    check_range,
    check_single_line,
    first_problem,
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    region=dict(type="str", default="us-east-1", choices=list(REGIONS)),
    custom_return_path=dict(type="str", default="send"),
    verify=dict(type="bool", default=True),
    **verification_argument_spec()
)
# One or more DNS labels (a subdomain of the domain).
SUBDOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


def public_domain_of(name):
    """The public mailbox domain `name` is (or is under), or None."""
    domain = normalise_domain(name)
    return next((public for public in sorted(PUBLIC_MAIL_DOMAINS)
                 if domain == public or domain.endswith("." + public)), None)


def validate(params):
    return first_problem(
        check_api_options(params, "api_url", "api_key"),
        check_not_empty("name", params["name"]),
        check_single_line("name", params["name"]),
        check_no_surrounding_whitespace("name", params["name"]),
        check_domain("name", params["name"]),
        check_pattern("custom_return_path", params["custom_return_path"], SUBDOMAIN,
                      "a subdomain label such as send (lower-case letters, digits, hyphens)"),
        check_range("verification_timeout", params["verification_timeout"], 0, 86400),
        check_range("poll_interval", params["poll_interval"], 1, 3600),
    )


def dkim_selector(records):
    """The selector of the first DKIM record (<selector>._domainkey.<domain>), or None."""
    for record in records:
        if record.get("record") == "DKIM" and "._domainkey." in record["fqdn"]:
            return record["fqdn"].split("._domainkey.")[0]
    return None


def return_path_host(records):
    """Where the SPF records go (the Return-Path host), or None."""
    return next((record["fqdn"] for record in records if record.get("record") == "SPF"), None)


def domain_view(domain):
    if not domain:
        return None
    return {field: domain.get(field) for field in ("id", "name", "status", "region", "created_at")}


class Domain(ManagedObject):
    result_key = "domain"

    def __init__(self, module, client):
        super().__init__(module, client)
        self.verification_requested = False

    @property
    def label(self):
        return "the Resend domain %s" % self.params["name"]

    def find(self):
        listed = self.client.find_domain(self.params["name"])
        if listed is None:
            return None
        # The list has no records: read the domain itself. Gone in between: treat as absent.
        return self.client.get_domain(listed["id"])

    def present(self, current):
        if current is None:
            return {"name": normalise_domain(self.params["name"]), "region": self.params["region"],
                    "custom_return_path": self.params["custom_return_path"]}
        if current.get("region") and current["region"] != self.params["region"]:
            self.module.fail_json(
                msg="The Resend domain %s sends from region %s, not %s, and Resend cannot move a domain: keep "
                    "region=%s, or delete the domain (state=absent) and add it again, which makes new DKIM records "
                    "to publish." % (current.get("name"), current["region"], self.params["region"], current["region"]),
                domain=domain_view(current), public_domain=False)
        return {}

    def create(self, changes):
        try:
            return self.client.create_domain(changes)
        except ApiError as error:
            if is_public_domain_refusal(error):
                said = "%s (Resend said: %s)" % (public_domain_message(changes["name"]), error.provider_message)
                self.module.fail_json(msg=said, public_domain=True, **error.to_result())
            raise

    def delete(self, current):
        self.client.delete_domain(current["id"])

    def predict(self, current, changes):
        after = dict(current or {"id": None, "status": "not_started", "created_at": None, "records": []})
        after.update({key: value for key, value in changes.items() if key != "custom_return_path"})
        return after

    def needs_verify_request(self, domain):
        return bool(self.params["verify"] and domain and domain.get("status", "not_started") in NEEDS_VERIFY_REQUEST)

    def settle(self, after):
        if after is None:
            return after
        if self.needs_verify_request(after):
            self.client.verify_domain(after["id"])
            self.verification_requested = True
            after = self.client.get_domain(after["id"]) or after
        if self.params["wait_for_verification"]:
            return self.wait_until(
                after, done=lambda obj: obj.get("status") == VERIFIED,
                reread=lambda obj: self.client.get_domain(obj["id"]) or obj, failure=self.not_verified)
        return after

    def not_verified(self, domain):
        records = records_view(domain)
        missing = [record for record in records if record.get("status") != VERIFIED] or records
        return dict(
            msg="Resend has not verified the domain %s after %d seconds (status %s): publish these records at the "
                "DNS host of %s, exactly as shown: %s. Resend keeps checking a pending domain for 72 hours; run "
                "again later." % (self.params["name"], self.params["verification_timeout"], domain.get("status"),
                                  self.params["name"], describe_records(missing)),
            verified=False, domain=domain_view(domain), records=records, public_domain=False)

    def view(self, obj):
        return domain_view(obj)

    def diff_view(self, obj):
        view = domain_view(obj)
        if view is not None:
            view["records"] = ["%s %s %s" % (r["fqdn"], r["type"], r["value"]) for r in records_view(obj)]
        return view

    def report(self, after, changes):
        records = records_view(after) if after else []
        requested = self.verification_requested or (
            self.module.check_mode and (self.action == CREATE and self.params["verify"] or
                                        self.needs_verify_request(after)))
        result = {"verified": bool(after and after.get("id") and after.get("status") == VERIFIED),
                  "records": records, "dkim_selector": dkim_selector(records),
                  "return_path_host": return_path_host(records), "verification_requested": bool(requested),
                  "public_domain": False, "changed_fields": sorted(changes)}
        if requested:
            # Asking Resend to verify is a write of its own.
            result["changed"] = True
        return result


def describe_records(records):
    return "; ".join("%s %s %s%s" % (record["fqdn"], record.get("type"),
                                     "%s " % record["priority"] if record.get("priority") is not None else "",
                                     record.get("value")) for record in records)


def main():
    module = ApiModule(argument_spec=ARGUMENT_SPEC, connection_spec=connection_argument_spec())
    params = module.params
    module.fail_on_problem(validate(params))
    public = public_domain_of(params["name"]) if params["state"] == "present" else None
    if public:
        # Before any request: Resend could never send From it (see public_domain_message).
        module.fail_json(msg=public_domain_message(normalise_domain(params["name"])), public_domain=True,
                         verified=False, domain=None, records=[])
    client = ResendClient(params["api_url"], params["api_key"], timeout=params["timeout"],
                          validate_certs=params["validate_certs"])
    Domain(module, client).run()


if __name__ == "__main__":
    main()
