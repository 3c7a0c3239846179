# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: relay_profile
short_description: What the collection knows about a mail provider (the provider registry)
version_added: 0.1.0
description:
  - Returns the profile of each named provider, or of every registered provider when no name is
    given. A provider is registered by its file C(plugins/module_utils/_provider_<name>.py) alone.
  - A profile holds the SMTP host and ports (with the TLS mode Supabase Auth uses on each), how the
    SMTP user name is chosen, where the SMTP password comes from, the provider's DNS identity under a
    customer's domain (SPF include, DKIM selectors or CNAME targets), the steps to send from a domain
    the team controls, and the advice per failure class.
  - Provider roles use it to fill the contract fact C(mail_relay); C(setup-mail.yml) uses it to check
    O(_terms) against the providers that exist.
author:
  - karto maintainers (@karto)
options:
  _terms:
    description: Provider names, such as V(smtp2go). None means every registered provider.
    type: list
    elements: str
    required: false
  sender_email:
    description:
      - Fills C({sender_email}) in the advice texts, and picks RV(_raw.preset), the known server for
        that address's domain (for a provider whose server depends on it, such as the mailbox's own).
    type: str
"""

EXAMPLES = r"""
- name: The names of every provider setup-mail.yml can use
  ansible.builtin.debug:
    msg: "{{ query('karto.supabase_mail.relay_profile') | map(attribute='name') | list }}"

- name: SMTP2GO's SMTP host and default port
  ansible.builtin.debug:
    msg: "{{ profile.smtp_host }}:{{ profile.default_port }}"
  vars:
    profile: "{{ lookup('karto.supabase_mail.relay_profile', 'smtp2go') }}"

- name: The mailbox server known for the sender's domain (null when none is)
  ansible.builtin.debug:
    msg: "{{ profile.preset }}"
  vars:
    profile: "{{ lookup('karto.supabase_mail.relay_profile', 'mailbox', sender_email='karto.help@ro.ru') }}"
"""

RETURN = r"""
_raw:
  description: One profile per provider.
  type: list
  elements: dict
  contains:
    name:
      description: The provider's name, as in C(mail_provider) and its role's name.
      type: str
      sample: smtp2go
    title:
      description: How messages name the provider.
      type: str
      sample: SMTP2GO
    smtp_host:
      description: The SMTP host Supabase Auth connects to.
      type: str
      sample: mail.smtp2go.com
    smtp_ports:
      description: Each port with the TLS mode Supabase Auth uses on it (V(implicit) on 465, else V(starttls)).
      type: list
      elements: dict
      sample: [{"port": 465, "tls": "implicit"}, {"port": 587, "tls": "starttls"}]
    default_port:
      description: The port used unless the user picks another.
      type: int
      sample: 465
    username_rule:
      description: V(per_project), V(fixed) (see RV(_raw.fixed_username)) or V(sender).
      type: str
    fixed_username:
      description: The relay's fixed SMTP login, when RV(_raw.username_rule=fixed).
      type: str
    password_source:
      description: V(generated) (stored before use), V(api_key) (shown once, stored at once) or V(user).
      type: str
    dns:
      description: The relay's DNS identity for the DMARC check (C(spf_includes), C(dkim_cname_suffixes),
        C(dkim_txt_selectors), C(default_selectors), C(signs_as_sender)).
      type: dict
    own_domain_steps:
      description: How to make a domain the team controls carry the relay's DKIM and SPF.
      type: str
    advice:
      description:
        - Failure class to what to do, for this provider. A provider whose server signs as the sender
          also gives C(aligned-alternative), the sentence other providers' DMARC check offers.
      type: dict
    smtp_presets:
      description:
        - Sender domain to a known SMTP server (C(operator), C(host), C(port), C(rate_limit_per_hour),
          C(rate_limit_source), C(steps), C(source)); empty for a relay, whose server is one for every sender.
      type: dict
    preset:
      description: The entry of RV(_raw.smtp_presets) for O(sender_email)'s domain; null without one.
      type: dict
    docs_url:
      description: The provider's documentation of its SMTP service.
      type: str
    is_default:
      description: Whether C(setup-mail.yml) uses this provider when C(mail_provider) is not set (exactly one is).
      type: bool
"""

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.karto.supabase_mail.plugins.module_utils._relay import registered_profiles


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        sender_email = self.get_option("sender_email")
        try:
            profiles = registered_profiles()
        except (ImportError, ValueError) as error:
            raise AnsibleError("The provider registry is broken: %s" % error)
        names = [str(term) for term in terms] if terms else sorted(profiles)
        unknown = [name for name in names if name not in profiles]
        if unknown:
            raise AnsibleError("Unknown mail provider %s; registered providers: %s."
                               % (", ".join(repr(name) for name in unknown), ", ".join(sorted(profiles))))
        return [profiles[name].as_dict(sender_email=sender_email) for name in names]
