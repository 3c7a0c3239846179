# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: RelayProfile and SmtpPreset, the data a provider file declares.

Apart from the registry (`_relay`), which checks profiles and is read on the controller only:
every provider file imports this to build its `PROFILE`, and every module that imports a provider
file for its API client gets this file in its payload. So it imports nothing (a module's start-up
compiles each file it imports, from source, on every run).

Not a public API; it may change without notice.
"""

from __future__ import annotations


class RelayProfile:
    """What one provider is, as data. `as_dict()` is what the relay_profile lookup returns.

    name: the provider's name, as in `mail_provider` and in its role's name.
    title: how messages name it ("Example Relay").
    smtp_host / smtp_ports / default_port: where Supabase Auth connects; ports map to a TLS mode
      ("implicit" on 465, else "starttls", which is what Supabase Auth's mailer does).
    username_rule / fixed_username: see USERNAME_RULES.
    password_source: see PASSWORD_SOURCES.
    dns: the relay's DNS identity under a customer's domain, for the DMARC preflight:
      spf_includes: an SPF include of one of these domains (or a name under one) authorises the relay;
      dkim_cname_suffixes: a DKIM selector that is a CNAME into one of these is the relay's key;
      dkim_txt_selectors: selectors where a TXT key is the relay's ("*": any selector the user names);
      default_selectors: looked up when no selector is known;
      signs_as_sender: the server signs and sends as the From domain itself (a mailbox's own server).
    own_domain_steps: how to make a domain the team controls carry the relay's DKIM (and SPF).
    advice: failure class -> what to do, for this provider; `{sender_email}` is filled in, and with a
      preset for the sender's domain also `{operator}`, `{smtp_host}`, `{smtp_port}` and `{steps}`;
      `{operator_clause}` (" (operator: host on port N, TLS mode)") and `{steps_clause}` ("; steps")
      are those facts as clauses, empty without a preset.
      A provider whose server signs as the sender gives "aligned-alternative": the sentence the DMARC
      preflight of every other provider offers as the aligned way ("set mail_provider: ...").
    smtp_presets: sender domain -> SmtpPreset, for a provider whose server depends on the sender's
      domain (a mailbox's own server); `smtp_host`/`default_port` are then the first preset's.
    rate_limit_per_hour: the most mails an hour the provider takes from one account, when it caps
      them (per preset for a mailbox); the default for Supabase's rate_limit_email_sent.
    """

    def __init__(self, name, title, smtp_host, smtp_ports, default_port, username_rule, password_source,
                 dns, own_domain_steps, advice, fixed_username=None, docs_url=None, is_default=False,
                 smtp_presets=None):
        self.name = name
        self.title = title
        self.smtp_host = smtp_host
        self.smtp_ports = dict(smtp_ports)
        self.default_port = default_port
        self.username_rule = username_rule
        self.fixed_username = fixed_username
        self.password_source = password_source
        self.dns = dict(dns)
        self.own_domain_steps = own_domain_steps
        self.advice = dict(advice)
        self.docs_url = docs_url
        # The provider setup-mail.yml uses when mail_provider is not set; exactly one has it.
        self.is_default = is_default
        self.smtp_presets = dict(smtp_presets or {})

    def preset_for(self, sender_email):
        """The SmtpPreset for the sender address's domain, or None."""
        domain = (sender_email or "").rpartition("@")[2].strip().lower().rstrip(".")
        return self.smtp_presets.get(domain) if domain else None

    def as_dict(self, sender_email=None):
        """Plain data for Ansible: lists instead of tuples, port keys as ints, advice filled in."""
        advice = self.advice
        preset = self.preset_for(sender_email)
        fill = {"{sender_email}": sender_email, "{operator_clause}": "", "{steps_clause}": ""}
        if preset:
            tls = "implicit TLS" if self.smtp_ports.get(preset.port) == "implicit" else "STARTTLS"
            fill.update({"{operator}": preset.operator, "{smtp_host}": preset.host, "{smtp_port}": str(preset.port),
                         "{steps}": preset.steps,
                         "{operator_clause}": " (%s: %s on port %d, %s)" % (preset.operator, preset.host, preset.port, tls),
                         "{steps_clause}": "; %s" % preset.steps})
        if sender_email:
            advice = {key: _fill(text, fill) for key, text in advice.items()}
        return {
            "name": self.name,
            "title": self.title,
            "smtp_host": self.smtp_host,
            "smtp_ports": [{"port": port, "tls": mode} for port, mode in sorted(self.smtp_ports.items())],
            "default_port": self.default_port,
            "username_rule": self.username_rule,
            "fixed_username": self.fixed_username,
            "password_source": self.password_source,
            "dns": {key: list(value) if isinstance(value, (list, tuple)) else value
                    for key, value in self.dns.items()},
            "own_domain_steps": self.own_domain_steps,
            "advice": dict(advice),
            "docs_url": self.docs_url,
            "is_default": self.is_default,
            "smtp_presets": {domain: preset.as_dict() for domain, preset in sorted(self.smtp_presets.items())},
            # The preset for sender_email's domain (None without one, or without sender_email).
            "preset": preset.as_dict() if preset else None,
        }


class SmtpPreset:
    """A known SMTP server for the addresses of one domain (a mailbox provider's own server).

    operator: who runs it ("Example Mail"); host, port: where Supabase Auth connects (465 implicit
    TLS, else STARTTLS); rate_limit_per_hour: the mails an hour to allow Supabase, conservative;
    rate_limit_source: where that figure comes from, or that it is an assumption; steps: what the
    mailbox owner must do first (e.g. allow mail clients in the mailbox settings); source: where
    host and port come from."""

    def __init__(self, operator, host, port, rate_limit_per_hour, rate_limit_source, steps, source):
        self.operator = operator
        self.host = host
        self.port = port
        self.rate_limit_per_hour = rate_limit_per_hour
        self.rate_limit_source = rate_limit_source
        self.steps = steps
        self.source = source

    def as_dict(self):
        return dict(vars(self))


def _fill(text, values):
    for key, value in values.items():
        if value is not None:
            text = text.replace(key, value)
    return text
