# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: the relay contract's Python side.

A provider (a relay, or the mailbox's own SMTP server) is one file,
`plugins/module_utils/_provider_<name>.py`, that holds its API client (if it has an API), its
error explanations (the client's `explain`) and one `PROFILE = RelayProfile(...)` (the class is in
`_relay_profile`): everything the shared code needs to know about it. This file names no provider: the registry finds the
provider files by their name, so adding a provider edits nothing here.

The registry is read on the controller (the `relay_profile` lookup): roles put the profile's
facts into the contract fact `mail_relay`, and the shared modules receive them as options.
Modules never import the registry (a provider file imports `_relay_profile`, not this file), so a
module's payload holds only what it uses: this file and `_diagnose` cost a module that only needs a
provider's API client about 8 ms of start-up (tests/unit/test_module_payloads.py keeps them out).

Not a public API; it may change without notice.
"""

from __future__ import annotations

import importlib
import os
import re

from ansible_collections.karto.supabase_mail.plugins.module_utils._diagnose import FAILURE_CLASSES
from ansible_collections.karto.supabase_mail.plugins.module_utils._relay_profile import RelayProfile, SmtpPreset

PROVIDER_MODULE_PREFIX = "_provider_"
_PACKAGE = "ansible_collections.karto.supabase_mail.plugins.module_utils"
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")

# Where the SMTP password comes from.
PASSWORD_SOURCES = (
    "generated",  # generated on the controller, stored by the secret_store role, then set on the relay
    "api_key",    # an API key the relay shows once on create: stored right after, and it is the password
    "user",       # given by the user (a mailbox password): never generated, never stored by us
)
# How the SMTP user name is chosen.
USERNAME_RULES = (
    "per_project",  # ours to choose, one per Supabase project (mail_smtp_username, default supabase-<ref>)
    "fixed",        # the relay's fixed login (e.g. a literal user name with the API key as password)
    "sender",       # the sender address itself (a mailbox)
)
TLS_MODES = ("implicit", "starttls")
# Failure classes advice may be given for (the classes of _diagnose), plus the contract's own
# "sender-unverified" (what to do while the relay's API says the sender is not verified yet) and
# "aligned-alternative" (what other providers' DMARC preflight offers as the aligned way).
ADVICE_CLASSES = ("sender-unverified", "aligned-alternative") + FAILURE_CLASSES
DNS_KEYS = ("spf_includes", "dkim_cname_suffixes", "dkim_txt_selectors", "default_selectors", "signs_as_sender")


def profile_problems(profile, module_name=None):
    """Everything that makes a profile unusable, as sentences; [] when complete."""
    problems = []
    if not isinstance(profile, RelayProfile):
        return ["%s: PROFILE is not a RelayProfile" % (module_name or "?")]
    label = profile.name if isinstance(profile.name, str) else repr(profile.name)
    if not isinstance(profile.name, str) or not _NAME.match(profile.name):
        problems.append("%s: name must be 2-31 lowercase letters, digits or '_'" % label)
    if module_name and module_name != PROVIDER_MODULE_PREFIX + str(profile.name):
        problems.append("%s: the file must be named %s%s.py" % (label, PROVIDER_MODULE_PREFIX, profile.name))
    for field in ("title", "smtp_host", "own_domain_steps"):
        if not isinstance(getattr(profile, field), str) or not getattr(profile, field).strip():
            problems.append("%s: %s must be a non-empty string" % (label, field))
    if not profile.smtp_ports or not all(isinstance(port, int) and 0 < port < 65536 and mode in TLS_MODES
                                         for port, mode in profile.smtp_ports.items()):
        problems.append("%s: smtp_ports must map ports to one of %s" % (label, ", ".join(TLS_MODES)))
    elif profile.default_port not in profile.smtp_ports:
        problems.append("%s: default_port must be one of smtp_ports" % label)
    for port, mode in profile.smtp_ports.items():
        # Supabase Auth uses implicit TLS on 465 and STARTTLS on every other port.
        if (port == 465) != (mode == "implicit"):
            problems.append("%s: port %s is %s, but Supabase Auth speaks implicit TLS exactly on 465"
                            % (label, port, mode))
    if profile.username_rule not in USERNAME_RULES:
        problems.append("%s: username_rule must be one of %s" % (label, ", ".join(USERNAME_RULES)))
    if (profile.username_rule == "fixed") != bool(profile.fixed_username):
        problems.append("%s: fixed_username is needed exactly when username_rule is fixed" % label)
    if profile.password_source not in PASSWORD_SOURCES:
        problems.append("%s: password_source must be one of %s" % (label, ", ".join(PASSWORD_SOURCES)))
    missing = [key for key in DNS_KEYS if key not in profile.dns]
    if missing:
        problems.append("%s: dns lacks %s" % (label, ", ".join(missing)))
    unknown = [key for key in profile.dns if key not in DNS_KEYS]
    if unknown:
        problems.append("%s: dns has unknown keys %s" % (label, ", ".join(unknown)))
    for key in ("sender-unverified", "sender-rejected", "auth-rejected"):
        if not str(profile.advice.get(key) or "").strip():
            problems.append("%s: advice for %s is missing" % (label, key))
    unknown = [key for key in profile.advice if key not in ADVICE_CLASSES]
    if unknown:
        problems.append("%s: advice for unknown failure classes %s" % (label, ", ".join(unknown)))
    if profile.dns.get("signs_as_sender") and not str(profile.advice.get("aligned-alternative") or "").strip():
        problems.append("%s: a server that signs as the sender needs advice for aligned-alternative" % label)
    for domain, preset in profile.smtp_presets.items():
        if not isinstance(preset, SmtpPreset):
            problems.append("%s: smtp_presets[%s] is not an SmtpPreset" % (label, domain))
        elif preset.port not in profile.smtp_ports or not all(
                isinstance(value, str) and value.strip() for value in (preset.operator, preset.host, preset.steps,
                                                                       preset.rate_limit_source, preset.source)) \
                or not isinstance(preset.rate_limit_per_hour, int) or preset.rate_limit_per_hour < 1:
            problems.append("%s: smtp_presets[%s] needs operator, host, a port of smtp_ports, a rate limit of at "
                            "least 1 with its source, steps and source" % (label, domain))
    return problems


def provider_module_names(directory=None):
    """The provider files in this package, as module names (`_provider_<name>`), sorted."""
    directory = directory or os.path.dirname(os.path.abspath(__file__))
    return sorted(entry[:-3] for entry in os.listdir(directory)
                  if entry.startswith(PROVIDER_MODULE_PREFIX) and entry.endswith(".py"))


def registered_profiles():
    """{name: RelayProfile} of every provider file. Controller side only (imports each file).

    Raises ValueError naming the file when a profile is incomplete, so a half-added provider
    fails loudly instead of being silently absent.
    """
    profiles = {}
    for module_name in provider_module_names():
        module = importlib.import_module("%s.%s" % (_PACKAGE, module_name))
        profile = getattr(module, "PROFILE", None)
        problems = profile_problems(profile, module_name)
        if problems:
            raise ValueError("; ".join(problems))
        profiles[profile.name] = profile
    defaults = sorted(name for name, profile in profiles.items() if profile.is_default)
    if profiles and len(defaults) != 1:
        raise ValueError("exactly one provider profile must have is_default=True; found %s"
                         % (", ".join(defaults) or "none"))
    return profiles
