# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: the mailbox's own SMTP server as a provider (mail_provider: mailbox).

No API and no relay: Supabase Auth logs in to the server that hosts the sender's mailbox with the
mailbox address and its password, and that server signs and sends the mail as the From domain, so
the mail is DMARC-aligned (the one aligned path for a free-mail address such as karto.help@ro.ru).
The server is chosen by the sender's domain (SMTP_PRESETS) or given by the user.

Not a public API; it may change without notice.
"""

from __future__ import annotations

from ansible_collections.karto.supabase_mail.plugins.module_utils._relay_profile import RelayProfile, SmtpPreset

# Rambler's mail domains and server: chatmail/provider-db `_providers/rambler.ru.md` (commit
# 1cce91c1, checked 2024-03), citing help.rambler.ru/mail/mail-nastrojki-pochtovogo-yashika/2129/:
# SMTP smtp.rambler.ru:465 (SSL); access by mail clients must first be switched on in the mailbox's
# settings (../shared/reference/sendgrid.md section 6). Rambler publishes no sending limit for
# mail clients: 20 an hour is an ASSUMPTION, kept low because a mailbox provider that sees a
# client send in bursts may lock the mailbox, and Supabase Auth mail is sign-ups and resets, not bulk.
_RAMBLER = SmtpPreset(
    operator="Rambler",
    host="smtp.rambler.ru",
    port=465,
    rate_limit_per_hour=20,
    rate_limit_source=("an assumption: Rambler publishes no sending limit for mail clients, so this stays "
                       "well below what mailbox providers usually allow"),
    steps=("switch on access by mail clients in the mailbox's settings first (mail.rambler.ru > Settings > "
           "Mail programs)"),
    source="help.rambler.ru/mail/mail-nastrojki-pochtovogo-yashika/2129/ via chatmail/provider-db rambler.ru.md",
)
SMTP_PRESETS = {domain: _RAMBLER for domain in (
    "rambler.ru", "ro.ru", "lenta.ru", "autorambler.ru", "myrambler.ru", "rambler.ua", "r0.ru")}

PROFILE = RelayProfile(
    name="mailbox",
    title="the mailbox's SMTP server",
    smtp_host=_RAMBLER.host,  # the presets' server; the role picks by the sender's domain or takes mailbox_smtp_host
    # Supabase Auth speaks implicit TLS on 465 and STARTTLS on any other port; a mailbox server
    # usually offers both as submission ports (RFC 8314: 465 implicit TLS, 587 STARTTLS).
    smtp_ports={465: "implicit", 587: "starttls"},
    default_port=465,
    username_rule="sender",
    password_source="user",
    dns={
        # The mailbox provider's own servers send and sign (d=<its domain>): aligned by construction.
        "spf_includes": (),
        "dkim_cname_suffixes": (),
        "dkim_txt_selectors": (),
        "default_selectors": (),
        "signs_as_sender": True,
    },
    own_domain_steps=(
        "host that domain's mail with a mailbox provider and send through its SMTP server with the mailbox's "
        "own login"),
    advice={
        "aligned-alternative": (
            "Set mail_provider: mailbox to send through the mailbox's own SMTP server{operator_clause}: the one "
            "path that is DMARC-aligned for {sender_email}, because the mailbox provider signs its users' mail "
            "itself. Give it the mailbox password (mailbox_password, kept in Ansible Vault){steps_clause}."),
        "sender-unverified": (
            "A mailbox server sends only From its own address: mail_sender_email must be the mailbox's address "
            "(the login), {sender_email}."),
        "sender-rejected": (
            "The mailbox server refuses mail From {sender_email} for this login: a mailbox sends only From its "
            "own address. Set mail_sender_email to the mailbox's address (the login), or leave "
            "mail_smtp_username unset."),
        "auth-rejected": (
            "The mailbox refused the login of {sender_email}: check mailbox_password (no trailing space or "
            "newline; a mailbox with two-factor login needs an app password instead of the usual one), and "
            "that access by mail clients is switched on in the mailbox's settings."),
        "auth-timeout": (
            "The mailbox server did not answer the login in time. Mail servers delay the answer to a wrong "
            "password and then slow down every login from the same address: check mailbox_password and that "
            "access by mail clients is switched on, then wait a few minutes before running setup-mail.yml again."),
        "auth-temporary": (
            "The mailbox server could not check the login just now (a temporary failure on its side): wait a "
            "few minutes and run setup-mail.yml again; nothing was changed in Supabase."),
        "login-required": (
            "The mailbox server sends only for clients that log in: give mailbox_password."),
        "rate-limited": (
            "The mailbox server is limiting how much this mailbox sends: wait an hour, and keep "
            "mail_rate_limit_per_hour at or below the preset's figure."),
    },
    docs_url="https://help.rambler.ru/mail/mail-nastrojki-pochtovogo-yashika/2129/",
    smtp_presets=SMTP_PRESETS,
)
