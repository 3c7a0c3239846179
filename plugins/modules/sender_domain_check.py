#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sender_domain_check
short_description: Tell from DNS whether mail From an address will pass DMARC through a relay
version_added: 0.1.0
description:
  - Reads the From domain's SPF, DMARC and (when a selector is known) DKIM records from DNS and
    decides whether mail From that domain, carried by the chosen relay, passes DMARC at the
    receiver; if not, says what receivers that enforce DMARC will do with it and what to do instead.
  - DMARC passes when the relay's DKIM signature or its envelope sender (Return-Path) is aligned
    with the From domain. A relay signs with C(d=<From domain>) only when the From domain publishes
    the relay's DKIM key (a CNAME C(<selector>._domainkey) into the relay's names, or a TXT key the
    relay handed out). SPF counts only for the envelope sender's domain (O(return_path_host)), when
    it is aligned with the From domain and its SPF includes the relay.
  - What a relay publishes is its DNS identity, O(relay_identity). For the providers this collection
    manages it comes from their profile, C(lookup('karto.supabase_mail.relay_profile', name).dns), and
    the provider roles put it, with the selector and return path of a verified domain, into the
    contract fact C(mail_relay.dns), which the C(mail_verify) role passes here.
  - For a free-mail address such as C(karto.help@rambler.ru) no relay can do either, because the
    domain's DNS belongs to the mailbox provider, so such mail fails DMARC and the domain's policy
    (C(p=reject), C(p=quarantine), C(p=none)) decides its fate. Sending through the mailbox's own SMTP
    server (O(relay_identity.signs_as_sender=true)) is aligned, as the provider signs its users' mail itself.
  - The DMARC policy is the From domain's C(_dmarc) record or, for a subdomain without one, the
    organisational domain's record with its subdomain policy (C(sp), else C(p)), as RFC 7489 says.
    The organisational domain is the last two labels of the domain (three under a known two-label
    suffix such as C(co.uk)); the module does not load the Public Suffix List.
  - Queries only the nameservers of O(nameservers) (else the system's resolvers), a few TXT lookups
    per run; changes nothing and reports C(changed=false).
author:
  - karto maintainers (@karto)
attributes:
  check_mode:
    description: Runs the same DNS queries in check mode; it never changes anything.
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
options:
  email:
    description:
      - The From address, for example V(karto.help@ro.ru); its domain is checked.
      - Exactly one of O(email) and O(domain) is required.
    type: str
  domain:
    description:
      - The From domain, for example V(ro.ru), instead of an address.
    type: str
  relay:
    description:
      - How messages name what carries the mail, for example V(Example relay).
    type: str
    default: the relay
  relay_identity:
    description:
      - What the relay publishes under a customer's domain once the domain is verified with it.
      - When omitted, the relay is unknown - a DKIM key or CNAME at O(dkim_selector) counts as the
        relay's key, and SPF is not judged (the relay's servers are unknown). When given, what it
        leaves out is empty.
    type: dict
    suboptions:
      spf_includes:
        description: Domains whose SPF include (or redirect) authorises the relay's servers.
        type: list
        elements: str
      dkim_cname_suffixes:
        description:
          - A DKIM selector that is a CNAME to one of these names (or a name under one) is the relay's key.
          - V(*) means a CNAME at a selector given in O(dkim_selector).
        type: list
        elements: str
      dkim_txt_selectors:
        description:
          - Selectors at which a DKIM key published as TXT is the relay's key.
          - V(*) means the selector given in O(dkim_selector) (the relay hands out the key and the selector).
        type: list
        elements: str
      default_selectors:
        description: Selectors looked up when O(dkim_selector) is not given; the first is used.
        type: list
        elements: str
      signs_as_sender:
        description:
          - The server signs and sends as the From domain itself, as a mailbox provider's own SMTP
            server does for its users; its mail is taken as aligned.
        type: bool
        default: false
      own_domain_steps:
        description: How to make a domain the team controls carry the relay's DKIM and SPF, for the options.
        type: str
      aligned_alternatives:
        description:
          - Sentences naming the aligned ways to send From this address instead, offered first in
            RV(options) when the relay is not aligned. The C(mail_verify) role passes the
            C(aligned-alternative) advice of every registered provider whose server signs as the sender.
          - When empty, a generic sentence about the mailbox's own SMTP server is offered.
        type: list
        elements: str
  dkim_selector:
    description:
      - The selector the relay signs with under the From domain, without C(._domainkey), for example
        V(s123456) (a relay returns it when the domain is added to it).
      - When omitted, the first of O(relay_identity.default_selectors) is looked up, if the relay has a
        fixed selector. Otherwise the relay's DKIM is taken as not aligned (it then signs with its own
        domain).
    type: str
  dkim_domain:
    description:
      - The domain the relay signs as (C(d=)) when it is not the From domain itself, for example a sending
        subdomain V(mg.karto.test) verified with the relay for From addresses at V(karto.test). The key is
        looked up under it, and DKIM is aligned when it is the From domain or, with C(adkim=r), shares its
        organisational domain.
      - When omitted, the From domain.
    type: str
  return_path_host:
    description:
      - The envelope sender (Return-Path, bounce) domain the relay uses for this From domain, such as
        V(em123456.karto.test) (a relay returns it when the domain is added to it).
      - SPF is counted for DMARC only when this is given, aligned with the From domain (the same domain
        under C(aspf=s), the same organisational domain under C(aspf=r)), and its SPF includes the relay.
      - When omitted, the relay is taken to use its own bounce domain, which never aligns.
    type: str
  nameservers:
    description:
      - IP addresses of the DNS servers to ask. Only these are queried.
      - When omitted, the environment variable E(KARTO_DNS_NAMESERVERS) (addresses separated by commas) is
        used, else the system's resolvers from C(/etc/resolv.conf). An empty list also means the system's
        resolvers.
    type: list
    elements: str
  dns_port:
    description:
      - UDP and TCP port of the nameservers.
      - If not set, the environment variable E(KARTO_DNS_PORT) is used, else V(53).
    type: int
    default: 53
  timeout:
    description:
      - Seconds the whole check may take, all its DNS queries together (each query gets what is left),
        so a silent nameserver costs at most this long.
    type: float
    default: 5
  fail_on_reject:
    description:
      - Fail the task when mail would be rejected, that is when it fails DMARC and the applicable policy
        is C(reject). The failure message lists the options.
      - Otherwise the module only reports; use RV(dmarc_pass), RV(consequence) and RV(verdict).
    type: bool
    default: false
notes:
  - "Runs where the task runs: use C(delegate_to: localhost) to query from the controller."
  - The policy for a Rambler or Mail.ru free-mail domain changes only at the provider; check it before
    relying on a relay (C(dig TXT _dmarc.rambler.ru)).
  - A DKIM key published as TXT cannot show whose it is. Where O(relay_identity.dkim_txt_selectors) is
    V(*) (or O(relay_identity) is omitted) the key at a O(dkim_selector) you name is taken as the relay's;
    a relay without TXT selectors counts only a CNAME into its names.
seealso:
  - name: RFC 7489 (DMARC)
    description: Policy discovery, identifier alignment and the p, sp, pct, adkim, aspf tags.
    link: https://www.rfc-editor.org/rfc/rfc7489
  - module: karto.supabase_mail.smtp_check
"""

EXAMPLES = r"""
- name: Will mail From the team mailbox pass DMARC through the chosen provider's relay?
  karto.supabase_mail.sender_domain_check:
    email: karto.help@ro.ru
    relay: "{{ provider.title }}"
    relay_identity: "{{ provider.dns }}"
  vars:
    provider: "{{ lookup('karto.supabase_mail.relay_profile', mail_provider) }}"
  register: sender_dns
  delegate_to: localhost

- name: Say what receivers will do with it, and the options
  ansible.builtin.debug:
    msg: "{{ [sender_dns.verdict] + sender_dns.options }}"
  when: not sender_dns.dmarc_pass

- name: Stop unless mail From our own domain, verified with the provider, passes
  karto.supabase_mail.sender_domain_check:
    email: noreply@karto.test
    relay: "{{ provider.title }}"
    relay_identity: "{{ provider.dns }}"
    # What the provider returned when the domain was added to it (mail_relay.dns holds them).
    dkim_selector: s123456
    return_path_host: em123456.karto.test
    fail_on_reject: true
  vars:
    provider: "{{ lookup('karto.supabase_mail.relay_profile', mail_provider) }}"
  delegate_to: localhost

- name: A relay this collection does not manage, described by hand
  karto.supabase_mail.sender_domain_check:
    email: karto.help@ro.ru
    relay: Example relay
    relay_identity:
      spf_includes: [spf.relay.example]
      dkim_cname_suffixes: [relay.example]
  delegate_to: localhost

- name: The mailbox's own SMTP server is aligned for its own addresses
  karto.supabase_mail.sender_domain_check:
    email: karto.help@ro.ru
    relay: the mailbox's own SMTP server
    relay_identity:
      signs_as_sender: true
  delegate_to: localhost
"""

RETURN = r"""
domain:
  description: The From domain checked, in lower case.
  returned: always
  type: str
  sample: ro.ru
relay:
  description: How the check named the relay (O(relay)).
  returned: always
  type: str
  sample: Example relay
spf:
  description: SPF of the domain DMARC would check SPF for.
  returned: always
  type: dict
  contains:
    domain:
      description: The domain whose SPF was read, O(return_path_host) when given, else the From domain.
      type: str
      sample: ro.ru
    record:
      description: Its C(v=spf1) record, or null when none (or more than one) is published.
      type: str
      sample: v=spf1 include:_spf.ro.ru -all
    authorises_relay:
      description:
        - Whether the record passes the relay's servers (it includes the relay's SPF domain, directly or
          through nested includes within SPF's limit of 10 lookups).
        - Null when the relay's servers are unknown (no O(relay_identity.spf_includes)).
      type: bool
      sample: false
    return_path:
      description: O(return_path_host), or null.
      type: str
      sample: em123456.karto.test
    aligned:
      description: Whether SPF gives an aligned pass for DMARC.
      type: bool
      sample: false
dmarc:
  description: The DMARC policy that applies to mail From the domain. Its values are null when there is none.
  returned: always
  type: dict
  contains:
    domain:
      description: Where the record was found, the From domain or its organisational domain.
      type: str
      sample: ro.ru
    record:
      description: The C(v=DMARC1) record.
      type: str
      sample: v=DMARC1; p=reject; rua=mailto:dmarc-reports@ro.ru
    policy:
      description: The C(p) tag, V(none), V(quarantine) or V(reject).
      type: str
      sample: reject
    subdomain_policy:
      description: The C(sp) tag, or C(p) when the record has none.
      type: str
      sample: reject
    applied_policy:
      description: The policy for this From domain, RV(dmarc.subdomain_policy) when the record is the organisational domain's.
      type: str
      sample: reject
    pct:
      description: The share of failing mail the policy is applied to (C(pct), 100 when absent).
      type: int
      sample: 100
    adkim:
      description: DKIM alignment mode, V(r) (relaxed) or V(s) (strict).
      type: str
      sample: r
    aspf:
      description: SPF alignment mode, V(r) or V(s).
      type: str
      sample: r
    rua:
      description: Aggregate report addresses.
      type: list
      elements: str
      sample: [mailto:dmarc-reports@ro.ru]
    inherited:
      description: Whether the record is the organisational domain's (the From domain has none).
      type: bool
      sample: false
dkim:
  description: The DKIM key the relay would sign with under the From domain.
  returned: always
  type: dict
  contains:
    selector:
      description: O(dkim_selector), else the relay's fixed selector, else null (nothing looked up).
      type: str
      sample: s123456
    name:
      description: The name looked up, C(<selector>._domainkey.<domain>).
      type: str
      sample: s123456._domainkey.karto.test
    record:
      description: The DKIM key record found there (through the CNAME, if any), or null.
      type: str
      sample: v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ...
    target:
      description: The CNAME target when the selector is a CNAME, else null.
      type: str
      sample: dkim.relay.example
    points_to_relay:
      description:
        - Whether the selector is the relay's (a CNAME into the relay's DKIM names, or a TXT key where the relay
          hands out TXT keys), so the relay signs with C(d=<domain>).
        - Null when no selector was looked up.
      type: bool
      sample: true
    aligned:
      description: Whether DKIM gives an aligned pass for DMARC (the selector is the relay's and a usable key is published).
      type: bool
      sample: true
aligned:
  description: Whether DKIM or SPF is aligned with the From domain when the relay sends (always true with O(relay_identity.signs_as_sender)).
  returned: always
  type: bool
  sample: false
dmarc_pass:
  description: Whether the mail passes DMARC, that is it is aligned and the domain publishes a DMARC record.
  returned: always
  type: bool
  sample: false
consequence:
  description:
    - What receivers that enforce DMARC do with the mail.
    - V(none) when it passes or the policy is C(p=none); V(quarantine) or V(reject) when it fails such a
      policy; V(no-dmarc) when the domain publishes no DMARC record.
  returned: always
  type: str
  sample: reject
verdict:
  description: One sentence, C(passes) or what happens instead.
  returned: always
  type: str
  sample: will be rejected by receivers that enforce DMARC (p=reject)
options:
  description: What to do instead, one sentence each; empty when the mail passes.
  returned: always
  type: list
  elements: str
  sample:
    - "Use the mailbox's own SMTP server instead of a relay (relay: mailbox): ..."
    - "Use a From address on a domain whose DNS you control ...: add it to the relay as a sender domain ..."
    - "Accept the risk: receivers that enforce DMARC (most large mailbox providers) will refuse this mail; ..."
notes:
  description: How each part of the decision was reached, one sentence each.
  returned: always
  type: list
  elements: str
  sample:
    - "SPF: not aligned: without return_path_host the relay's own bounce domain is the envelope sender, ..."
"""

import time

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._dns_policy import (
    DnsLookupError,
    check_nameservers,
    check_selector,
    check_sender_domain,
    relay_identity,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._dns_query import (
    TXT,
    DnsBadName,
    DnsNoAnswer,
    DnsTimeout,
    ask,
    system_nameservers,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._domain import (
    check_domain,
    domain_of_email,
    normalise_domain,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_email,
    first_problem,
)


def validate(params):
    """The first problem in the input, or None; runs before any DNS query."""
    problems = [
        check_email("email", params["email"]),
        # check_domain tolerates surrounding whitespace; a line break is never part of a name.
        check_domain("domain", params["domain"]),
        check_selector("dkim_selector", params["dkim_selector"]),
        check_domain("return_path_host", params["return_path_host"]),
        check_domain("dkim_domain", params["dkim_domain"]),
        check_nameservers("nameservers", params["nameservers"]),
    ]
    if not 1 <= params["dns_port"] <= 65535:
        problems.append("dns_port must be between 1 and 65535; got %d." % params["dns_port"])
    if not 0 < params["timeout"] <= 300:
        problems.append("timeout must be more than 0 and at most 300 seconds; got %s." % params["timeout"])
    return first_problem(*problems)


class DnsLookup:
    """lookup(name) -> (TXT strings, CNAME target of name or None), cached for the run; a missing
    name or record is ([], None); no answer at all raises DnsLookupError with a sentence for the user."""

    def __init__(self, nameservers, port, timeout):
        if nameservers:
            self.nameservers = list(nameservers)
            self.where = "nameservers %s (dns_port %d)" % (", ".join(nameservers), port)
        else:
            self.nameservers = system_nameservers()
            if not self.nameservers:
                raise DnsLookupError("No system nameservers found (no nameserver line in /etc/resolv.conf): "
                                     "set nameservers.")
            self.where = ("the system's nameservers %s (dns_port %d; set nameservers to ask others)"
                          % (", ".join(self.nameservers), port))
        self.port = port
        self.timeout = timeout
        # One deadline for the whole check: every query gets only what is left of `timeout`.
        self.deadline = time.monotonic() + timeout
        self._cache = {}

    def __call__(self, name):
        name = normalise_domain(name)
        if name not in self._cache:
            self._cache[name] = self._query(name)
        return self._cache[name]

    def _query(self, name):
        if self.deadline - time.monotonic() <= 0:
            raise DnsLookupError(
                "No DNS answer for TXT %s within %s s from %s: the timeout (which bounds the whole check, all "
                "queries together) ran out; check nameservers and dns_port, or raise timeout."
                % (name, _seconds(self.timeout), self.where))
        try:
            answer = ask(name, TXT, self.nameservers, self.port, self.deadline)
        except DnsTimeout:
            raise DnsLookupError(
                "No DNS answer for TXT %s within %s s from %s: check nameservers and dns_port (something must "
                "answer DNS there), or raise timeout (it bounds the whole check, all queries together)."
                % (name, _seconds(self.timeout), self.where)) from None
        except DnsNoAnswer as error:
            raise DnsLookupError("%s could not answer TXT %s (%s): check nameservers and dns_port."
                                 % (_capitalised(self.where), name, error)) from None
        except DnsBadName as error:
            raise DnsLookupError("DNS query TXT %s to %s failed: %s" % (name, self.where, error)) from None
        return answer.chain(name)


def _seconds(value):
    return "%g" % value


def _capitalised(text):
    return text[:1].upper() + text[1:]


def failure_message(result, email):
    sender = email or ("an address at %s" % result["domain"])
    lines = ["Mail From %s through %s %s." % (sender, result["relay"], result["verdict"]),
             "Options:"]
    lines += ["%d. %s" % (number, option) for number, option in enumerate(result["options"], 1)]
    return "\n".join(lines)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            email=dict(type="str"),
            domain=dict(type="str"),
            relay=dict(type="str", default="the relay"),
            relay_identity=dict(type="dict", options=dict(
                spf_includes=dict(type="list", elements="str"),
                dkim_cname_suffixes=dict(type="list", elements="str"),
                dkim_txt_selectors=dict(type="list", elements="str"),
                default_selectors=dict(type="list", elements="str"),
                signs_as_sender=dict(type="bool", default=False),
                own_domain_steps=dict(type="str"),
                aligned_alternatives=dict(type="list", elements="str"),
            )),
            dkim_selector=dict(type="str"),
            return_path_host=dict(type="str"),
            dkim_domain=dict(type="str"),
            nameservers=dict(type="list", elements="str", fallback=(env_fallback, ["KARTO_DNS_NAMESERVERS"])),
            dns_port=dict(type="int", default=53, fallback=(env_fallback, ["KARTO_DNS_PORT"])),
            timeout=dict(type="float", default=5),
            fail_on_reject=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("email", "domain")],
        required_one_of=[("email", "domain")],
        supports_check_mode=True,
    )
    params = module.params
    problem = validate(params)
    if problem:
        module.fail_json(msg=problem)

    domain = domain_of_email(params["email"]) if params["email"] else normalise_domain(params["domain"])
    nameservers = [str(ns).strip() for ns in params["nameservers"] or [] if str(ns).strip()]
    try:
        lookup = DnsLookup(nameservers, params["dns_port"], params["timeout"])
        relay = relay_identity(params["relay"], params["relay_identity"])
        result = check_sender_domain(domain, relay, lookup, dkim_selector=params["dkim_selector"],
                                     return_path_host=params["return_path_host"], dkim_domain=params["dkim_domain"])
    except DnsLookupError as error:
        module.fail_json(msg=str(error), domain=domain, relay=params["relay"])

    result["changed"] = False
    if params["fail_on_reject"] and result["consequence"] == "reject":
        module.fail_json(msg=failure_message(result, params["email"]), **result)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
