# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: will mail From a domain, sent through a relay, pass DMARC?

Parses SPF (RFC 7208), DMARC (RFC 7489) and DKIM key (RFC 6376) records and decides, from the
From domain's DNS, whether a relay's DKIM signature or envelope sender can be aligned with the
From domain. Pure: every DNS read goes through a `lookup(name) -> (txt_strings, cname_target)`
callable the caller supplies (sender_domain_check gives one backed by _dns_query), so the logic
is unit-tested with a dict of records. Domain names themselves (normalise, check, organisational
domain, mailbox providers' domains) are in `_domain`, which modules that only check a name import.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.karto.supabase_mail.plugins.module_utils._domain import (
    normalise_domain,
    organisational_domain,
    surrounded_problem,
)

# A relay's DNS identity: what it publishes under a customer's domain once the domain is
# verified with it. Each provider's profile holds its own (the relay contract's `dns`); the
# caller passes it in, so this file names no relay.
#   spf_includes: an SPF include (or redirect) of one of these domains, or of a name under one,
#     authorises the relay's servers.
#   dkim_cname_suffixes: a DKIM selector that is a CNAME to one of these names (or a name under
#     one) is the relay's key, so the relay signs with d=<From domain>; "*" means any CNAME at a
#     selector the caller names.
#   dkim_txt_selectors: selectors at which a DKIM key published as TXT is the relay's key; "*"
#     means any selector the caller names (the relay hands out the key and the selector).
#   default_selectors: looked up when the caller gives no dkim_selector.
#   signs_as_sender: the server signs and sends as the From domain itself (a mailbox's own server).
#   aligned_alternatives: sentences naming the aligned paths to offer when this one is not aligned.
# An unknown relay: a key or CNAME at a selector the caller names counts, SPF is not judged.
GENERIC_RELAY = {
    "title": "the relay",
    "spf_includes": (),
    "dkim_cname_suffixes": ("*",),
    "dkim_txt_selectors": ("*",),
    "default_selectors": (),
    "signs_as_sender": False,
    "own_domain_steps": "have the relay sign DKIM with d=<that domain> and publish the relay's key (or CNAME) under it",
    # The aligned ways to send From this address instead (the registered providers whose server signs
    # as the sender say them, in their own words: their advice "aligned-alternative").
    "aligned_alternatives": (),
}
IDENTITY_KEYS = tuple(GENERIC_RELAY)


def relay_identity(title=None, dns=None):
    """A complete identity from a title and a (partial) `dns` dict; missing keys are the generic ones.

    With no `dns` at all the relay is unknown (GENERIC_RELAY); with one, what it leaves out is empty,
    so a relay that names only its SPF include gets no DKIM wildcard it did not ask for.
    """
    identity = dict(GENERIC_RELAY)
    if dns:
        identity.update(spf_includes=(), dkim_cname_suffixes=(), dkim_txt_selectors=(), default_selectors=(),
                        aligned_alternatives=())
        for key in IDENTITY_KEYS:
            if dns.get(key) is not None and key != "title":
                value = dns[key]
                identity[key] = tuple(value) if isinstance(value, (list, tuple)) else value
        if not identity["own_domain_steps"]:
            identity["own_domain_steps"] = GENERIC_RELAY["own_domain_steps"]
    if title:
        identity["title"] = title
    return identity


# The DMARC facts the module returns, in this order.
DMARC_FIELDS = ("domain", "record", "policy", "subdomain_policy", "applied_policy", "pct", "adkim", "aspf", "rua",
                "inherited")

SPF_LOOKUP_LIMIT = 10  # RFC 7208 4.6.4: at most 10 DNS-querying terms per check

_SELECTOR_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_POLICIES = ("none", "quarantine", "reject")


class DnsLookupError(Exception):
    """A lookup could not get an answer (timeout, no usable nameserver): the check cannot go on."""


# ---------------------------------------------------------------------------- input


def check_selector(name, value):
    if value is None:
        return None
    if surrounded_problem(name, value):
        return surrounded_problem(name, value)
    selector = value.strip().rstrip(".").lower()
    if "_domainkey" in selector:
        return ("%s must be the selector alone, such as s123456, without ._domainkey or the domain; got %r."
                % (name, value))
    if not selector or not all(_SELECTOR_LABEL.match(label) for label in selector.split(".")):
        return "%s must be a DKIM selector such as s123456 (letters, digits, hyphens, underscores); got %r." % (name, value)
    return None


def check_nameservers(name, values):
    for value in values or ():
        try:
            ipaddress.ip_address(str(value).strip())
        except ValueError:
            return "%s must be IP addresses such as 127.0.0.1 (no host names); got %r." % (name, value)
    return None


# ---------------------------------------------------------------------------- records


def identifier_aligned(identifier, from_domain, mode):
    """DMARC identifier alignment: strict = the same domain, relaxed = the same organisational domain."""
    identifier, from_domain = normalise_domain(identifier), normalise_domain(from_domain)
    if mode == "s":
        return identifier == from_domain
    return organisational_domain(identifier) == organisational_domain(from_domain)


def _under(name, suffixes):
    name = normalise_domain(name)
    return any(suffix == "*" or name == suffix or name.endswith("." + suffix) for suffix in suffixes)


def pick_spf(txt_records):
    """(record, problem): the one `v=spf1` record among TXT strings; two or more is a permerror."""
    records = [text.strip() for text in txt_records if re.match(r"^v=spf1(\s|$)", text.strip(), re.I)]
    if len(records) > 1:
        return None, "more than one SPF record is published, which makes SPF fail (permerror)"
    return (records[0], None) if records else (None, None)


def spf_terms(record):
    """[(qualifier, name, value)] of an SPF record, e.g. ("+", "include", "spf.relay.example"),
    ("~", "all", None), ("", "redirect", "_spf.example.com") for a modifier."""
    terms = []
    for term in record.split()[1:]:
        if "=" in term and ":" not in term.split("=", 1)[0]:
            name, _sep, value = term.partition("=")
            terms.append(("", name.lower(), value))
            continue
        qualifier = "+"
        if term[:1] in "+-~?":
            qualifier, term = term[0], term[1:]
        name, _sep, value = term.partition(":")
        terms.append((qualifier, name.lower(), value or None))
    return terms


def spf_authorises(record, relay, lookup, budget=None):
    """Whether an SPF record passes the relay's servers: it includes (or redirects to) the relay's
    SPF domain directly or through nested includes, or ends in +all. None when the relay's servers
    are unknown (a mailbox's own server, an unknown relay). ip4/ip6/a/mx terms are not evaluated:
    relays publish their addresses through their include domain. `relay` is an identity (relay_identity)."""
    includes = relay["spf_includes"]
    if not includes:
        return None
    if record is None:
        return False
    budget = budget if budget is not None else [SPF_LOOKUP_LIMIT]
    for qualifier, name, value in spf_terms(record):
        if name == "all" and qualifier == "+":
            return True
        if name not in ("include", "redirect") or not value or qualifier not in ("+", ""):
            continue
        if _under(value, includes):
            return True
        if budget[0] <= 0:
            return False  # RFC 7208: past 10 lookups SPF fails (permerror)
        budget[0] -= 1
        nested, _problem = pick_spf(lookup(normalise_domain(value))[0])
        if nested and spf_authorises(nested, relay, lookup, budget):
            return True
    return False


def parse_tags(text):
    """`k=v; k=v` tag list (DMARC, DKIM) -> ordered dict with lower-case names."""
    tags = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


def parse_dmarc(txt_records):
    """(dmarc, problem) from the TXT strings at _dmarc.<domain> (RFC 7489 6.6.3). dmarc is None when
    no DMARC applies; problem says why when a record exists but cannot be used."""
    records = [text.strip() for text in txt_records if re.match(r"^v\s*=\s*DMARC1\s*(;|$)", text.strip(), re.I)]
    if not records:
        return None, None
    if len(records) > 1:
        return None, "more than one DMARC record is published, so receivers apply none"
    tags = parse_tags(records[0])
    policy = tags.get("p", "").lower()
    subdomain_policy = tags.get("sp", policy).lower()
    rua = [uri.strip() for uri in tags.get("rua", "").split(",") if uri.strip()]
    problem = None
    if policy not in _POLICIES or subdomain_policy not in _POLICIES:
        if not any(uri.lower().startswith("mailto:") for uri in rua):
            return None, "the DMARC record has no valid p= (or sp=) policy and no rua, so receivers ignore it"
        problem = "the DMARC record has no valid p= (or sp=) policy; receivers treat it as p=none"
        policy = policy if policy in _POLICIES else "none"
        subdomain_policy = subdomain_policy if subdomain_policy in _POLICIES else "none"
    pct = tags.get("pct", "100")
    pct = int(pct) if pct.isdigit() and 0 <= int(pct) <= 100 else 100
    return {
        "record": records[0],
        "policy": policy,
        "subdomain_policy": subdomain_policy,
        "pct": pct,
        "adkim": "s" if tags.get("adkim", "r").lower() == "s" else "r",
        "aspf": "s" if tags.get("aspf", "r").lower() == "s" else "r",
        "rua": rua,
    }, problem


def pick_dkim_key(txt_records):
    """(record, usable): the DKIM key record among TXT strings; usable is False for a revoked key
    (empty p=) or a record that is not a key."""
    for text in txt_records:
        tags = parse_tags(text)
        if "p" in tags and tags.get("v", "DKIM1").upper() == "DKIM1":
            return text.strip(), bool(tags["p"])
    return None, False


def dkim_points_to_relay(relay, selector, selector_given, cname_target, key_usable):
    """Whether the key at <selector>._domainkey.<domain> is the relay's (so the relay's signature has
    d=<domain>): a CNAME into the relay's DKIM names, or a TXT key where the relay hands out TXT keys.
    A CNAME counts whether or not a key is published at its target (DKIM alignment needs both)."""
    profile = relay
    if cname_target:
        if relay["signs_as_sender"]:
            return key_usable
        return _under(cname_target, profile["dkim_cname_suffixes"]) and (
            "*" not in profile["dkim_cname_suffixes"] or selector_given)
    if not key_usable:
        return False
    selectors = profile["dkim_txt_selectors"]
    return ("*" in selectors and selector_given) or selector in selectors


# ---------------------------------------------------------------------------- the check


def discover_dmarc(domain, lookup, notes):
    """The DMARC policy for mail From `domain` (RFC 7489 6.6.3): its own record, else the
    organisational domain's with its subdomain policy."""
    dmarc, problem = parse_dmarc(lookup("_dmarc." + domain)[0])
    found_at = domain
    org = organisational_domain(domain)
    if dmarc is None and problem is None and org != domain:
        dmarc, problem = parse_dmarc(lookup("_dmarc." + org)[0])
        found_at = org
    if problem:
        notes.append("DMARC: _dmarc.%s: %s." % (found_at, problem))
    if dmarc is None:
        return None
    dmarc["domain"] = found_at
    dmarc["inherited"] = found_at != domain
    dmarc["applied_policy"] = dmarc["subdomain_policy"] if dmarc["inherited"] else dmarc["policy"]
    return dmarc


def check_sender_domain(domain, relay, lookup, dkim_selector=None, return_path_host=None, dkim_domain=None):
    """Everything sender_domain_check returns besides `changed`. `lookup(name)` returns
    (txt_strings, cname_target_or_None) and returns ([], None) for a missing name or record; it
    raises DnsLookupError when it cannot get an answer. `relay` is an identity (relay_identity).
    `dkim_domain`: the domain the relay signs as (d=), when it is not the From domain itself (a
    sending subdomain verified with the relay); its key is looked up there."""
    domain = normalise_domain(domain)
    signing_domain = normalise_domain(dkim_domain) if dkim_domain else domain
    profile = relay
    notes = []
    mailbox = relay["signs_as_sender"]

    dmarc = discover_dmarc(domain, lookup, notes)
    adkim = dmarc["adkim"] if dmarc else "r"
    aspf = dmarc["aspf"] if dmarc else "r"

    # SPF: DMARC counts SPF only for the envelope sender (Return-Path) domain.
    return_path = normalise_domain(return_path_host) if return_path_host else None
    spf_domain = return_path or domain
    spf_record, spf_problem = pick_spf(lookup(spf_domain)[0])
    if spf_problem:
        notes.append("SPF: %s: %s." % (spf_domain, spf_problem))
    authorises = spf_authorises(spf_record, relay, lookup)
    if mailbox:
        spf_aligned = True
        notes.append("SPF: assumed aligned: the mailbox provider sends with the mailbox address as "
                     "envelope sender, from servers its own SPF lists.")
    elif return_path is None:
        spf_aligned = False
        notes.append("SPF: not aligned: without return_path_host the relay's own bounce domain is the "
                     "envelope sender, so SPF passes (if at all) for the relay's domain, not %s." % domain)
    else:
        rp_aligned = identifier_aligned(return_path, domain, aspf)
        spf_aligned = bool(rp_aligned and authorises)
        if not rp_aligned:
            notes.append("SPF: not aligned: the return path %s is not %s %s (aspf=%s)."
                         % (return_path, "the From domain" if aspf == "s" else "under the organisational domain of",
                            domain, aspf))
        elif not authorises:
            notes.append("SPF: not aligned: the SPF of %s does not authorise %s." % (return_path, profile["title"]))
        else:
            notes.append("SPF: aligned: %s authorises %s and aligns with %s (aspf=%s)."
                         % (return_path, profile["title"], domain, aspf))

    # DKIM
    selector = dkim_selector.strip().rstrip(".").lower() if dkim_selector else None
    selector_given = selector is not None
    if selector is None and profile["default_selectors"]:
        selector = profile["default_selectors"][0]
    dkim = {"selector": selector, "name": None, "record": None, "target": None, "points_to_relay": None}
    usable = False
    if selector:
        dkim["name"] = "%s._domainkey.%s" % (selector, signing_domain)
        txt, target = lookup(dkim["name"])
        key, usable = pick_dkim_key(txt)
        dkim.update(record=key, target=target,
                    points_to_relay=dkim_points_to_relay(relay, selector, selector_given, target, usable))
        if key and not usable:
            notes.append("DKIM: %s holds a revoked key (empty p=)." % dkim["name"])
        if key is None and target is None:
            notes.append("DKIM: nothing is published at %s." % dkim["name"])
    if mailbox:
        dkim_aligned = True
        notes.append("DKIM: assumed aligned: the mailbox provider signs its users' mail with d=%s." % domain)
    else:
        # The key lives under the signing domain, so a signature with it has d=<that domain>: aligned
        # when that is the From domain, or in relaxed mode a domain under the same organisational domain.
        d_aligned = identifier_aligned(signing_domain, domain, adkim)
        dkim_aligned = bool(dkim["points_to_relay"] and usable and d_aligned)
        if dkim["points_to_relay"] and usable and not d_aligned:
            notes.append("DKIM: not aligned: %s signs with d=%s, which is not %s %s (adkim=%s)."
                         % (profile["title"], signing_domain,
                            "the From domain" if adkim == "s" else "under the organisational domain of", domain, adkim))
        elif dkim["points_to_relay"] and not usable:
            notes.append("DKIM: not aligned: %s points to %s (CNAME to %s) but no usable key is published there, "
                         "so receivers cannot verify its signature." % (dkim["name"], profile["title"], dkim["target"]))
        elif dkim_aligned:
            notes.append("DKIM: aligned: %s is %s's key, so it signs with d=%s (adkim=%s)."
                         % (dkim["name"], profile["title"], signing_domain, adkim))
        elif selector is None:
            notes.append("DKIM: not aligned: no dkim_selector given, so %s is assumed to sign with its own "
                         "domain, as it does for a domain not verified with it." % profile["title"])
        else:
            notes.append("DKIM: not aligned: %s is not %s's key%s." % (
                dkim["name"], profile["title"],
                " (it is a CNAME to %s)" % dkim["target"] if dkim["target"] else ""))
    dkim["aligned"] = dkim_aligned

    aligned = dkim_aligned or spf_aligned
    decision = decide(domain, relay, dmarc, aligned)
    if dmarc:
        dmarc_view = {key: dmarc[key] for key in DMARC_FIELDS}
    else:
        dmarc_view = {"domain": None, "record": None, "policy": None, "subdomain_policy": None,
                      "applied_policy": None, "pct": None, "adkim": None, "aspf": None, "rua": [],
                      "inherited": False}
        org = organisational_domain(domain)
        notes.append("DMARC: no usable DMARC record at _dmarc.%s%s." % (
            domain, " nor at _dmarc.%s (the organisational domain)" % org if org != domain else ""))
    result = {
        "domain": domain,
        "relay": relay["title"],
        "spf": {"domain": spf_domain, "record": spf_record, "authorises_relay": authorises,
                "return_path": return_path, "aligned": spf_aligned},
        "dmarc": dmarc_view,
        "dkim": dkim,
        "aligned": aligned,
        "notes": notes,
    }
    result.update(decision)
    return result


def decide(domain, relay, dmarc, aligned):
    """dmarc_pass, consequence, verdict and options for mail From `domain` through `relay`."""
    dmarc_pass = bool(aligned and dmarc)
    if dmarc is None:
        consequence = "no-dmarc"
        verdict = "not DMARC-protected (no DMARC record), delivery depends on the receiver"
    elif aligned:
        consequence = "none"
        verdict = "passes"
    else:
        consequence = dmarc["applied_policy"]
        tag = "sp" if dmarc.get("inherited") else "p"
        pct = dmarc["pct"]
        if consequence == "reject":
            verdict = "will be rejected by receivers that enforce DMARC (%s=reject%s)" % (
                tag, "" if pct == 100 else ", pct=%d; the rest may land in spam" % pct)
        elif consequence == "quarantine":
            verdict = "may land in spam (%s=quarantine%s)" % (tag, "" if pct == 100 else ", pct=%d" % pct)
        else:
            verdict = "fails DMARC, but %s=none asks receivers for no action: delivery depends on the receiver" % tag
    options = [] if dmarc_pass else remedies(domain, relay, dmarc, aligned, consequence)
    return {"dmarc_pass": dmarc_pass, "consequence": consequence, "verdict": verdict, "options": options}


def remedies(domain, relay, dmarc, aligned, consequence):
    """What the user can do when mail would not pass DMARC, one sentence each."""
    if aligned:  # aligned, but the domain publishes no DMARC record
        return [
            "Publish a DMARC record for %s, for example TXT _dmarc.%s \"v=DMARC1; p=none; rua=mailto:<your "
            "address>\": large receivers expect one, and with it this aligned mail passes DMARC."
            % (organisational_domain(domain), organisational_domain(domain)),
            "Accept the risk: without a DMARC record, receivers judge this mail by their own rules.",
        ]
    alternatives = [text for text in relay.get("aligned_alternatives") or () if text]
    if not alternatives:
        alternatives = [
            "Use the mailbox's own SMTP server (of the provider hosting %s mail) instead of a relay, with the "
            "mailbox's login: the one path that is DMARC-aligned for a mailbox address, because the provider "
            "signs its users' mail itself." % domain]
    own_domain = ("Use a From address on a domain you control (%s itself only if you control its DNS; a mailbox "
                  "provider's domain is not yours): %s; then run this check again with dkim_selector set to the "
                  "relay's selector (and return_path_host to its bounce host, if it has one)."
                  % (domain, relay["own_domain_steps"]))
    if consequence == "reject":
        risk = ("Accept the risk: receivers that enforce DMARC (most large mailbox providers) will refuse this "
                "mail; good for tests only.")
    elif consequence == "quarantine":
        risk = ("Accept the risk: receivers that enforce DMARC will put %s of this mail in spam."
                % ("all" if dmarc["pct"] == 100 else "up to %d%%" % dmarc["pct"]))
    else:
        risk = ("Accept the risk: nothing asks receivers to refuse this mail, but they may still filter or refuse "
                "unaligned mail (Gmail refuses unauthenticated gmail.com mail although gmail.com publishes p=none).")
    return alternatives + [own_domain, risk]
