"""The pure SPF / DMARC / DKIM parsing and the DMARC decision behind sender_domain_check."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _dns_policy as policy
from ansible_collections.karto.supabase_mail.plugins.module_utils import _domain as domain
from ansible_collections.karto.supabase_mail.plugins.module_utils._provider_smtp2go import PROFILE as SMTP2GO

# DNS identities as provider profiles give them. SMTP2GO's is the registered profile's; the others
# are test data of the same shape (relays whose profiles have not landed yet).
IDENTITIES = {
    "smtp2go": policy.relay_identity(SMTP2GO.title, dict(SMTP2GO.dns, own_domain_steps=SMTP2GO.own_domain_steps)),
    "sendgrid": policy.relay_identity("SendGrid", {
        "spf_includes": ["sendgrid.net"], "dkim_cname_suffixes": ["sendgrid.net"], "dkim_txt_selectors": ["m1"],
        "default_selectors": ["s1"],
        "own_domain_steps": "authenticate it in SendGrid (Domain Authentication) and publish its CNAMEs"}),
    "resend": policy.relay_identity("Resend", {
        "spf_includes": ["amazonses.com"], "dkim_cname_suffixes": ["dkim.amazonses.com"],
        "dkim_txt_selectors": ["resend"], "default_selectors": ["resend"]}),
    "mailgun": policy.relay_identity("Mailgun", {
        "spf_includes": ["mailgun.org"], "dkim_cname_suffixes": ["mailgun.org", "mgsend.net"],
        "dkim_txt_selectors": ["*"]}),
    "mailbox": policy.relay_identity("the mailbox's own SMTP server", {"signs_as_sender": True, "dkim_txt_selectors": ["*"]}),
    "other": policy.relay_identity(),
}


def R(name):
    return IDENTITIES[name]


class FakeDns:
    """lookup(name) -> (TXT strings, CNAME target) from a dict; counts the names asked."""

    def __init__(self, txt=None, cname=None):
        self.txt = {name: list(values) for name, values in (txt or {}).items()}
        self.cname = dict(cname or {})
        self.asked = []

    def __call__(self, name):
        self.asked.append(name)
        target = self.cname.get(name)
        return list(self.txt.get(target or name, [])), target


SMTP2GO_DOMAIN = FakeDns(
    txt={
        "karto.test": ["v=spf1 include:spf.smtp2go.com ~all"],
        "_dmarc.karto.test": ["v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@karto.test"],
        "dkim.smtp2go.net": ["v=DKIM1; k=rsa; p=MIGfMA0G"],
        "return.smtp2go.net": ["v=spf1 include:spf.smtp2go.com ~all"],
    },
    cname={"s123456._domainkey.karto.test": "dkim.smtp2go.net", "em123456.karto.test": "return.smtp2go.net"},
)
FREE_MAIL = FakeDns(txt={
    "ro.ru": ["v=spf1 include:_spf.ro.ru -all"],
    "_spf.ro.ru": ["v=spf1 ip4:192.0.2.0/25 -all"],
    "_dmarc.ro.ru": ["v=DMARC1; p=reject; rua=mailto:dmarc-reports@ro.ru"],
    "mail._domainkey.ro.ru": ["v=DKIM1; k=rsa; p=MIGfMA0G"],
})


# ---------------------------------------------------------------------------- DMARC records


def test_dmarc_tags_and_defaults():
    dmarc, problem = policy.parse_dmarc(["v=DMARC1; p=Quarantine; pct=50; adkim=s; rua=mailto:a@x.test,mailto:b@x.test"])
    assert problem is None
    assert dmarc == {
        "record": "v=DMARC1; p=Quarantine; pct=50; adkim=s; rua=mailto:a@x.test,mailto:b@x.test",
        "policy": "quarantine", "subdomain_policy": "quarantine", "pct": 50, "adkim": "s", "aspf": "r",
        "rua": ["mailto:a@x.test", "mailto:b@x.test"],
    }


@pytest.mark.parametrize("records, expected_policy, problem_part", [
    ([], None, None),
    (["v=spf1 -all", "some verification token"], None, None),
    (["v=DMARC1; p=reject", "v=DMARC1; p=none"], None, "more than one DMARC record"),
    (["v=DMARC1; p=bogus"], None, "no rua"),
    (["v=DMARC1; p=bogus; rua=mailto:r@x.test"], "none", "treat it as p=none"),
    (["v=DMARC1; rua=mailto:r@x.test"], "none", "treat it as p=none"),
    (["v=DMARC1;p=reject"], "reject", None),
    (["v=DMARC10; p=reject"], None, None),
])
def test_dmarc_record_selection_follows_rfc_7489(records, expected_policy, problem_part):
    dmarc, problem = policy.parse_dmarc(records)
    assert (dmarc or {}).get("policy") == expected_policy
    assert (problem_part in problem) if problem_part else problem is None


def test_dmarc_pct_out_of_range_counts_as_100():
    assert policy.parse_dmarc(["v=DMARC1; p=reject; pct=150"])[0]["pct"] == 100
    assert policy.parse_dmarc(["v=DMARC1; p=reject; pct=0"])[0]["pct"] == 0


def test_subdomain_without_record_gets_the_organisational_policy_with_sp():
    notes = []
    dmarc = policy.discover_dmarc("app.karto.test", SMTP2GO_DOMAIN, notes)
    assert dmarc["domain"] == "karto.test" and dmarc["inherited"] is True
    assert dmarc["policy"] == "reject" and dmarc["applied_policy"] == "quarantine"
    assert SMTP2GO_DOMAIN.asked[-2:] == ["_dmarc.app.karto.test", "_dmarc.karto.test"]


def test_sp_defaults_to_p_for_inherited_policy():
    dns = FakeDns(txt={"_dmarc.ro.ru": ["v=DMARC1; p=reject"]})
    assert policy.discover_dmarc("news.ro.ru", dns, [])["applied_policy"] == "reject"


def test_a_domain_with_several_dmarc_records_does_not_fall_back_to_its_parent():
    dns = FakeDns(txt={"_dmarc.a.karto.test": ["v=DMARC1; p=none", "v=DMARC1; p=reject"],
                       "_dmarc.karto.test": ["v=DMARC1; p=reject"]})
    notes = []
    assert policy.discover_dmarc("a.karto.test", dns, notes) is None
    assert "_dmarc.karto.test" not in dns.asked and "more than one" in notes[0]


# ---------------------------------------------------------------------------- SPF


def test_spf_terms():
    assert policy.spf_terms("v=spf1 mx -ip4:192.0.2.1 ~include:a.test redirect=_spf.b.test ?all") == [
        ("+", "mx", None), ("-", "ip4", "192.0.2.1"), ("~", "include", "a.test"),
        ("", "redirect", "_spf.b.test"), ("?", "all", None)]


def test_pick_spf_refuses_two_records():
    record, problem = policy.pick_spf(["v=spf1 -all", "v=spf1 +all"])
    assert record is None and "permerror" in problem
    assert policy.pick_spf(["v=spf1 -all", "other"]) == ("v=spf1 -all", None)
    assert policy.pick_spf(["v=spf10 -all"]) == (None, None)


@pytest.mark.parametrize("record, relay, expected", [
    ("v=spf1 include:spf.smtp2go.com ~all", "smtp2go", True),
    ("v=spf1 include:sendgrid.net -all", "sendgrid", True),
    ("v=spf1 include:u123.wl.sendgrid.net -all", "sendgrid", True),
    ("v=spf1 include:mailgun.org ~all", "mailgun", True),
    ("v=spf1 include:amazonses.com ~all", "resend", True),
    ("v=spf1 include:spf.smtp2go.com ~all", "sendgrid", False),
    ("v=spf1 -include:spf.smtp2go.com ~all", "smtp2go", False),
    ("v=spf1 redirect=spf.smtp2go.com", "smtp2go", True),
    ("v=spf1 +all", "smtp2go", True),
    ("v=spf1 ip4:203.0.113.0/24 -all", "smtp2go", False),
    ("v=spf1 include:spf.smtp2go.com ~all", "mailbox", None),
    ("v=spf1 include:spf.smtp2go.com ~all", "other", None),
])
def test_spf_authorises_the_relay(record, relay, expected):
    assert policy.spf_authorises(record, R(relay), FakeDns()) is expected


def test_spf_follows_nested_includes_within_ten_lookups():
    nested = FakeDns(txt={"_spf.karto.test": ["v=spf1 include:_relays.karto.test -all"],
                          "_relays.karto.test": ["v=spf1 include:spf.smtp2go.com -all"]})
    assert policy.spf_authorises("v=spf1 include:_spf.karto.test -all", R("smtp2go"), nested) is True
    assert nested.asked == ["_spf.karto.test", "_relays.karto.test"]

    chain = FakeDns(txt={"l%d.test" % i: ["v=spf1 include:l%d.test" % (i + 1)] for i in range(20)})
    chain.txt["l20.test"] = ["v=spf1 include:spf.smtp2go.com"]
    assert policy.spf_authorises("v=spf1 include:l0.test", R("smtp2go"), chain) is False
    assert len(chain.asked) == policy.SPF_LOOKUP_LIMIT


# ---------------------------------------------------------------------------- DKIM and alignment


def test_pick_dkim_key():
    assert policy.pick_dkim_key(["v=DKIM1; k=rsa; p=MIGf"]) == ("v=DKIM1; k=rsa; p=MIGf", True)
    assert policy.pick_dkim_key(["v=DKIM1; k=rsa; p="]) == ("v=DKIM1; k=rsa; p=", False)
    assert policy.pick_dkim_key(["v=spf1 -all"]) == (None, False)


@pytest.mark.parametrize("relay, selector, given, target, usable, expected", [
    ("smtp2go", "s123456", True, "dkim.smtp2go.net", True, True),
    ("smtp2go", "s123456", True, "dkim.example.net", True, False),
    ("smtp2go", "mail", True, None, True, False),  # a TXT key is the domain's own, not SMTP2GO's
    ("sendgrid", "s1", False, "s1.domainkey.u1.wl1.sendgrid.net", True, True),
    ("sendgrid", "m1", True, None, True, True),
    ("resend", "resend", False, None, True, True),
    ("resend", "resend", False, None, False, False),  # revoked
    ("mailgun", "k1", True, None, True, True),
    ("mailgun", "k1", True, "k1._domainkey.x.dkim1.mgsend.net", True, True),
    ("other", "sel", True, "anything.example.net", False, True),
    ("other", "sel", True, None, True, True),
])
def test_dkim_points_to_relay(relay, selector, given, target, usable, expected):
    assert policy.dkim_points_to_relay(R(relay), selector, given, target, usable) is expected


@pytest.mark.parametrize("identifier, from_domain, mode, expected", [
    ("karto.test", "karto.test", "s", True),
    ("em123456.karto.test", "karto.test", "s", False),
    ("em123456.karto.test", "karto.test", "r", True),
    ("em123456.karto.test", "app.karto.test", "r", True),
    ("return.smtp2go.net", "karto.test", "r", False),
    ("bounce.shop.co.uk", "shop.co.uk", "r", True),
    ("other.co.uk", "shop.co.uk", "r", False),
])
def test_identifier_alignment(identifier, from_domain, mode, expected):
    assert policy.identifier_aligned(identifier, from_domain, mode) is expected


def test_organisational_domain():
    assert domain.organisational_domain("a.b.karto.test.") == "karto.test"
    assert domain.organisational_domain("mail.shop.co.uk") == "shop.co.uk"
    assert domain.organisational_domain("ro.ru") == "ro.ru"


# ---------------------------------------------------------------------------- the decision


def test_free_mail_through_a_relay_is_rejected_with_three_options():
    result = policy.check_sender_domain("ro.ru", R("smtp2go"), FREE_MAIL)
    assert result["aligned"] is False and result["dmarc_pass"] is False
    assert result["consequence"] == "reject"
    assert result["verdict"] == "will be rejected by receivers that enforce DMARC (p=reject)"
    assert result["spf"]["authorises_relay"] is False and result["dkim"]["selector"] is None
    mailbox, own, risk = result["options"]
    assert "mailbox's own SMTP server (of the provider hosting ro.ru mail) instead of a relay" in mailbox
    assert "a mailbox provider's domain is not yours" in own and "dkim.smtp2go.net" in own
    assert risk.startswith("Accept the risk")


def test_the_aligned_alternatives_given_replace_the_generic_mailbox_sentence():
    # mail_verify passes the registry's "aligned-alternative" advice (the mailbox provider's, with its
    # preset for the domain): the DMARC warning then names mail_provider: mailbox.
    relay = dict(R("smtp2go"), aligned_alternatives=("Set mail_provider: mailbox ... smtp.rambler.ru ...",))
    options = policy.check_sender_domain("ro.ru", relay, FREE_MAIL)["options"]
    assert options[0] == "Set mail_provider: mailbox ... smtp.rambler.ru ..."
    assert len(options) == 3 and options[2].startswith("Accept the risk")


def test_free_mail_through_its_own_smtp_server_passes():
    result = policy.check_sender_domain("ro.ru", R("mailbox"), FREE_MAIL)
    assert (result["aligned"], result["dmarc_pass"], result["consequence"], result["verdict"]) == (
        True, True, "none", "passes")
    assert result["options"] == []


def test_verified_domain_passes_by_dkim_or_by_spf():
    by_dkim = policy.check_sender_domain("karto.test", R("smtp2go"), SMTP2GO_DOMAIN, dkim_selector="s123456")
    assert by_dkim["dkim"]["points_to_relay"] is True and by_dkim["dkim"]["target"] == "dkim.smtp2go.net"
    assert by_dkim["dkim"]["record"].startswith("v=DKIM1")
    assert by_dkim["verdict"] == "passes" and by_dkim["spf"]["aligned"] is False

    by_spf = policy.check_sender_domain("karto.test", R("smtp2go"), SMTP2GO_DOMAIN,
                                        return_path_host="em123456.karto.test")
    assert by_spf["spf"] == {"domain": "em123456.karto.test", "record": "v=spf1 include:spf.smtp2go.com ~all",
                             "authorises_relay": True, "return_path": "em123456.karto.test", "aligned": True}
    assert by_spf["dkim"]["aligned"] is False and by_spf["dmarc_pass"] is True


def test_strict_spf_alignment_needs_the_from_domain_itself():
    dns = FakeDns(txt=dict(SMTP2GO_DOMAIN.txt, **{"_dmarc.karto.test": ["v=DMARC1; p=reject; aspf=s"]}),
                  cname=SMTP2GO_DOMAIN.cname)
    result = policy.check_sender_domain("karto.test", R("smtp2go"), dns, return_path_host="em123456.karto.test")
    assert result["spf"]["authorises_relay"] is True and result["spf"]["aligned"] is False
    assert result["consequence"] == "reject"


def test_a_cname_to_the_relay_without_a_key_behind_it_is_not_aligned():
    dns = FakeDns(txt={"_dmarc.karto.test": ["v=DMARC1; p=reject"]},
                  cname={"s1._domainkey.karto.test": "gone.smtp2go.net"})
    result = policy.check_sender_domain("karto.test", R("smtp2go"), dns, dkim_selector="s1")
    assert result["dkim"]["points_to_relay"] is True and result["dkim"]["record"] is None
    assert result["dkim"]["aligned"] is False and result["consequence"] == "reject"
    assert any("no usable key is published there" in note for note in result["notes"])


def test_wrong_relay_for_a_verified_domain_fails():
    result = policy.check_sender_domain("karto.test", R("sendgrid"), SMTP2GO_DOMAIN, dkim_selector="s123456")
    assert result["dkim"]["points_to_relay"] is False and result["consequence"] == "reject"
    assert "authenticate it in SendGrid" in result["options"][1]


@pytest.mark.parametrize("record, consequence, verdict", [
    ("v=DMARC1; p=none", "none",
     "fails DMARC, but p=none asks receivers for no action: delivery depends on the receiver"),
    ("v=DMARC1; p=quarantine; pct=50", "quarantine", "may land in spam (p=quarantine, pct=50)"),
    ("v=DMARC1; p=quarantine", "quarantine", "may land in spam (p=quarantine)"),
    ("v=DMARC1; p=reject; pct=25", "reject",
     "will be rejected by receivers that enforce DMARC (p=reject, pct=25; the rest may land in spam)"),
])
def test_policy_decides_the_consequence_of_unaligned_mail(record, consequence, verdict):
    result = policy.check_sender_domain("x.test", R("smtp2go"), FakeDns(txt={"_dmarc.x.test": [record]}))
    assert (result["consequence"], result["verdict"]) == (consequence, verdict)
    assert len(result["options"]) == 3


def test_quarantine_options_name_the_share():
    result = policy.check_sender_domain("x.test", R("smtp2go"), FakeDns(txt={"_dmarc.x.test": ["v=DMARC1; p=quarantine; pct=50"]}))
    assert "up to 50% of this mail in spam" in result["options"][2]


def test_no_dmarc_record():
    unaligned = policy.check_sender_domain("nodmarc.test", R("smtp2go"), FakeDns())
    assert unaligned["consequence"] == "no-dmarc" and unaligned["dmarc_pass"] is False
    assert unaligned["verdict"] == "not DMARC-protected (no DMARC record), delivery depends on the receiver"
    assert unaligned["dmarc"]["policy"] is None and unaligned["dmarc"]["rua"] == []

    aligned = policy.check_sender_domain("nodmarc.test", R("mailbox"), FakeDns())
    assert aligned["aligned"] is True and aligned["dmarc_pass"] is False
    assert aligned["options"][0].startswith("Publish a DMARC record for nodmarc.test")


def test_default_selectors_are_looked_up_for_relays_that_have_one():
    dns = FakeDns()
    assert policy.check_sender_domain("x.test", R("resend"), dns)["dkim"]["name"] == "resend._domainkey.x.test"
    assert policy.check_sender_domain("x.test", R("sendgrid"), dns)["dkim"]["selector"] == "s1"
    assert policy.check_sender_domain("x.test", R("smtp2go"), dns)["dkim"]["name"] is None
    assert not [name for name in dns.asked if "_domainkey" in name and name.startswith(("s123", "mail"))]


# ---------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("check, value, part", [
    (domain.check_domain, "ro", "must be a domain name"),
    (domain.check_domain, "bad_domain.test", "must be a domain name"),
    (domain.check_domain, "-x.test", "must be a domain name"),
    (policy.check_selector, "s1._domainkey.karto.test", "without ._domainkey"),
    (policy.check_selector, "s 1", "must be a DKIM selector"),
    (policy.check_nameservers, ["127.0.0.1", "dns.example"], "must be IP addresses"),
])
def test_input_checks_name_the_parameter(check, value, part):
    problem = check("param", value)
    assert problem.startswith("param ") and part in problem


@pytest.mark.parametrize("check, value", [
    (domain.check_domain, "Karto.Test."),
    (domain.check_domain, None),
    (policy.check_selector, "s123456"),
    (policy.check_selector, "2024_01.k1"),
    (policy.check_nameservers, ["127.0.0.1", "::1"]),
    (policy.check_nameservers, None),
])
def test_input_checks_accept_good_values(check, value):
    assert check("param", value) is None


def _subdomain_dns(adkim):
    return FakeDns(
        txt={"_dmarc.karto.test": ["v=DMARC1; p=reject; adkim=%s" % adkim],
             "dkim.smtp2go.net": ["v=DKIM1; k=rsa; p=MIGfMA0G"]},
        cname={"s123456._domainkey.mg.karto.test": "dkim.smtp2go.net"})


def test_a_key_under_a_sending_subdomain_is_found_there_and_aligned_in_relaxed_mode():
    # The relay verified mg.karto.test and signs d=mg.karto.test for From addresses at karto.test
    # (the Mailgun way): the key is under the subdomain, not the From domain.
    result = policy.check_sender_domain("karto.test", R("smtp2go"), _subdomain_dns("r"), dkim_selector="s123456",
                                        dkim_domain="mg.karto.test")
    assert result["dkim"]["name"] == "s123456._domainkey.mg.karto.test"
    assert result["dkim"]["aligned"] is True and result["dmarc_pass"] is True
    without = policy.check_sender_domain("karto.test", R("smtp2go"), _subdomain_dns("r"), dkim_selector="s123456")
    assert without["dkim"]["aligned"] is False  # looked up under karto.test, where nothing is published


def test_a_sending_subdomain_is_not_aligned_under_strict_dkim_alignment():
    result = policy.check_sender_domain("karto.test", R("smtp2go"), _subdomain_dns("s"), dkim_selector="s123456",
                                        dkim_domain="mg.karto.test")
    assert result["dkim"]["points_to_relay"] is True and result["dkim"]["aligned"] is False
    assert any("signs with d=mg.karto.test, which is not the From domain" in note for note in result["notes"])


@pytest.mark.parametrize("check", [domain.check_domain, policy.check_selector])
@pytest.mark.parametrize("value", ["ro.ru\n", " ro.ru", "s1\n"])
def test_a_value_with_a_line_break_or_spaces_around_it_is_refused_not_normalised(check, value):
    problem = check("name", value)
    assert problem and problem.startswith("name must not have spaces or line breaks around it")
