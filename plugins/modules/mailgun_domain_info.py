#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mailgun_domain_info
short_description: Read a Mailgun sending domain - its state, the DNS records it needs, its sandbox limits
version_added: 0.1.0
description:
  - Reads one Mailgun domain (C(GET /v4/domains/{name})). It returns its state (V(active), V(unverified)
    or V(disabled)), its type, and the DNS records Mailgun wants published for sending (SPF, DKIM,
    tracking) and receiving (MX), each with Mailgun's verdict. RV(records_to_publish) lists the sending
    records Mailgun does not find valid yet.
  - Mailgun sends nothing through a domain that is not verified. Since December 2016 every domain needs
    its SPF and DKIM records to send.
  - A sandbox domain (V(sandbox<hex>.mailgun.org), one per account) sends only to its authorized
    recipients, at most 5, each of whom confirms by a click. For such a domain the module also reads
    them (C(GET /v5/sandbox/auth_recipients)). Mail to anyone else is refused.
  - Read only. It changes nothing, reports C(changed=false), and runs the same in check mode. It does not
    ask Mailgun to re-check the DNS records; Mailgun does that by itself, or from its console.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.mailgun
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Runs the same reads in check mode; it never changes anything.
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
options:
  domain:
    description:
      - The domain's name in Mailgun, such as V(mg.example.com) or V(sandbox0123abcd.mailgun.org).
      - A domain Mailgun does not know in this account and region fails the task (HTTP 404), saying so.
    type: str
    required: true
seealso:
  - name: Mailgun domains API
    description: The endpoint this module reads.
    link: https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/domains/get-v4-domains--name-
  - name: Mailgun sandbox domains
    description: Sandbox domains send only to authorized recipients, at most 5.
    link: https://documentation.mailgun.com/docs/mailgun/user-manual/domains/domains-sandbox
  - module: karto.supabase_mail.mailgun_smtp_credential
"""

EXAMPLES = r"""
- name: Read the sending domain
  karto.supabase_mail.mailgun_domain_info:
    api_key: "{{ mailgun_api_key }}"
    domain: mg.karto.test
  register: mailgun_domain
  delegate_to: localhost

- name: Say what to publish while Mailgun has not verified it
  ansible.builtin.debug:
    msg: "{{ mailgun_domain.records_to_publish | map(attribute='name') | list }}"
  when: not mailgun_domain.active
"""

RETURN = r"""
domain:
  description: The domain as Mailgun describes it.
  returned: always
  type: dict
  contains:
    name:
      description: The domain's name.
      type: str
      sample: mg.karto.test
    state:
      description: V(active), V(unverified) or V(disabled).
      type: str
      sample: active
    type:
      description: V(custom) or V(sandbox).
      type: str
      sample: custom
    created_at:
      description: When it was added (RFC 1123).
      type: str
      sample: Thu, 13 Oct 2011 18:02:00 GMT
    smtp_login:
      description: The domain's default SMTP login (C(postmaster@<domain>)); not necessarily one that exists.
      type: str
      sample: postmaster@mg.karto.test
    disabled:
      description: Why Mailgun disabled the domain (C(code), C(note), C(permanently), C(reason)), or null.
      type: dict
      sample: null
active:
  description: Whether the domain's state is V(active), that is whether Mailgun sends through it.
  returned: always
  type: bool
  sample: true
is_sandbox:
  description: Whether it is a sandbox domain, which sends only to its authorized recipients.
  returned: always
  type: bool
  sample: false
sending_dns_records:
  description: The records Mailgun needs for sending, with its verdict on each.
  returned: always
  type: list
  elements: dict
  contains:
    type:
      description: TXT, CNAME, ...
      type: str
    name:
      description: The record's name.
      type: str
    value:
      description: The value to publish.
      type: str
    priority:
      description: MX priority, else null.
      type: str
    valid:
      description: Mailgun's verdict, V(valid), V(invalid) or V(unknown).
      type: str
    purpose:
      description: V(spf), V(dkim), V(tracking), V(receiving) or V(other).
      type: str
  sample:
    - {type: TXT, name: mg.karto.test, value: "v=spf1 include:mailgun.org ~all", priority: null, valid: valid, purpose: spf}
receiving_dns_records:
  description: The MX records Mailgun needs to receive mail for the domain, in the same form.
  returned: always
  type: list
  elements: dict
  sample:
    - {type: MX, name: mg.karto.test, value: mxa.mailgun.org, priority: "10", valid: valid, purpose: receiving}
records_to_publish:
  description: The sending records Mailgun does not find valid yet (empty when all are).
  returned: always
  type: list
  elements: dict
  sample: []
dkim_selector:
  description: The selector of the domain's DKIM record, such as V(pdk1) (V(mx) for a TXT key), or null.
  returned: always
  type: str
  sample: pdk1
authorized_recipients:
  description: For a sandbox domain, the addresses it may send to, each with C(email) and C(activated) (confirmed by its owner); else empty.
  returned: always
  type: list
  elements: dict
  sample: [{email: karto.help@ro.ru, activated: true}]
authorized_recipient_limit:
  description: How many authorized recipients a sandbox domain may have (5); null for a custom domain.
  returned: always
  type: int
  sample: 5
smtp_host:
  description: The SMTP host of O(region), where the domain's credentials log in (C(smtp.eu.mailgun.org) for V(eu)).
  returned: always
  type: str
  sample: smtp.mailgun.org
"""

from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_mailgun import (
    REGION_SMTP_HOSTS,
    SANDBOX_RECIPIENT_LIMIT,
    MailgunClient,
    api_url_of,
    connection_argument_spec,
    dkim_selector_of,
    is_sandbox_domain,
    records_view,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_not_empty,
    check_smtp_host,
    first_problem,
)

ARGUMENT_SPEC = dict(
    domain=dict(type="str", required=True),
)
DOMAIN_FIELDS = ("name", "state", "type", "created_at", "smtp_login", "disabled")


def validate(params):
    return first_problem(
        check_not_empty("domain", params["domain"]),
        check_smtp_host("domain", params["domain"]),
        # An empty api_url must fail here, not fall back to the region's real endpoint.
        check_api_options(dict(params, api_url=api_url_of(params)), "api_url", "api_key"),
    )


def domain_facts(answer):
    """The module's result (without recipients) from Mailgun's GET /v4/domains/{name} answer."""
    domain = answer.get("domain") if isinstance(answer.get("domain"), dict) else {}
    sending = records_view(answer.get("sending_dns_records"))
    return {
        "domain": {field: domain.get(field) for field in DOMAIN_FIELDS},
        "active": domain.get("state") == "active",
        "is_sandbox": is_sandbox_domain(domain.get("name"), domain.get("type")),
        "sending_dns_records": sending,
        "receiving_dns_records": records_view(answer.get("receiving_dns_records")),
        "records_to_publish": [record for record in sending if record["valid"] != "valid"],
        "dkim_selector": dkim_selector_of(sending),
    }


def main():
    module = ApiModule(argument_spec=ARGUMENT_SPEC, connection_spec=connection_argument_spec())
    params = module.params
    module.fail_on_problem(validate(params))
    client = MailgunClient(api_url_of(params), params["api_key"], timeout=params["timeout"],
                           validate_certs=params["validate_certs"])
    try:
        facts = domain_facts(client.get_domain(params["domain"].lower().rstrip(".")))
        recipients = client.authorized_recipients() if facts["is_sandbox"] else []
    except ApiError as error:
        module.fail_api(error, client.explain(error))
        return
    module.exit_json(changed=False, authorized_recipients=[
        {"email": item.get("email"), "activated": bool(item.get("activated"))} for item in recipients],
        authorized_recipient_limit=SANDBOX_RECIPIENT_LIMIT if facts["is_sandbox"] else None,
        smtp_host=REGION_SMTP_HOSTS[params["region"]], **facts)


if __name__ == "__main__":
    main()
