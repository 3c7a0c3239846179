"""sender_domain_check through real ansible-playbook runs against the sandbox DNS server, and the DNS
server itself (UDP, TCP, truncation, NXDOMAIN, journal, faults)."""

import types

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from tests.integration.playbook import run_tasks
from tests.sandbox.core import FaultInjector, Journal
from tests.sandbox.dns_server import DnsServer, ZoneData

MODULE = "karto.supabase_mail.sender_domain_check"


# SMTP2GO's DNS identity as its registered profile gives it (what the smtp2go role puts in mail_relay.dns).
SMTP2GO = {
    "relay": "SMTP2GO",
    "relay_identity": "{{ profile.dns | combine({'own_domain_steps': profile.own_domain_steps}) }}",
}
MAILBOX = {"relay": "the mailbox's own SMTP server", "relay_identity": {"signs_as_sender": True, "dkim_txt_selectors": ["*"]}}


def check_task(sandbox, register, ignore_errors=False, **options):
    args = {"nameservers": ["127.0.0.1"], "dns_port": sandbox.dns_port}
    args.update(options if "relay" in options else dict(SMTP2GO, **options))
    task = {"name": register, MODULE: args, "register": register,
            "vars": {"profile": "{{ lookup('karto.supabase_mail.relay_profile', 'smtp2go') }}"}}
    if ignore_errors:
        task["ignore_errors"] = True
    return task


def dns_queries(sandbox, name=None):
    return [entry for entry in sandbox.journal(service="dns") if name is None or entry["path"] == name]


@pytest.fixture(scope="module")
def checks(sandbox):
    """One playbook run that checks every sandbox zone; each test reads its own result."""
    tasks = [
        check_task(sandbox, "free_mail", email="karto.help@ro.ru"),
        check_task(sandbox, "free_mail_mailbox", email="karto.help@ro.ru", dkim_selector="mail", **MAILBOX),
        check_task(sandbox, "verified_dkim", email="noreply@karto.test", dkim_selector="s123456"),
        check_task(sandbox, "verified_spf", email="noreply@karto.test",
                   return_path_host="em123456.karto.test"),
        check_task(sandbox, "unverified", email="noreply@karto.test"),
        check_task(sandbox, "subdomain", email="noreply@app.karto.test"),
        check_task(sandbox, "relaxed", domain="relaxed.test"),
        check_task(sandbox, "quarantine", domain="quarantine.test"),
        check_task(sandbox, "nodmarc", domain="nodmarc.test"),
        check_task(sandbox, "unknown", domain="nowhere.test"),
    ]
    run = run_tasks(tasks)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run


def test_free_mail_through_smtp2go_will_be_rejected_and_options_are_listed(checks, sandbox):
    result = checks["free_mail"]
    assert result["changed"] is False
    assert result["domain"] == "ro.ru" and result["relay"] == "SMTP2GO"
    assert result["aligned"] is False and result["dmarc_pass"] is False
    assert result["consequence"] == "reject"
    assert result["verdict"] == "will be rejected by receivers that enforce DMARC (p=reject)"
    assert result["dmarc"]["record"] == "v=DMARC1; p=reject; rua=mailto:dmarc-reports@ro.ru"
    assert result["dmarc"]["policy"] == "reject" and result["dmarc"]["pct"] == 100
    assert result["spf"]["record"] == "v=spf1 include:_spf.ro.ru -all"
    assert result["spf"]["authorises_relay"] is False
    assert len(result["options"]) == 3
    mailbox, own_domain, risk = result["options"]
    # Without aligned_alternatives (mail_verify passes the registry's), the generic sentence.
    assert "mailbox's own SMTP server (of the provider hosting ro.ru mail) instead of a relay" in mailbox
    assert "dkim.smtp2go.net" in own_domain and "return.smtp2go.net" in own_domain
    assert risk.startswith("Accept the risk")
    # The nested SPF include was followed through the sandbox DNS.
    assert dns_queries(sandbox, "_spf.ro.ru") and dns_queries(sandbox, "_dmarc.ro.ru")[0]["method"] == "TXT"


def test_the_mailbox_own_smtp_server_passes_for_free_mail(checks):
    result = checks["free_mail_mailbox"]
    assert (result["aligned"], result["dmarc_pass"], result["consequence"], result["verdict"]) == (
        True, True, "none", "passes")
    assert result["options"] == []
    assert result["dkim"]["name"] == "mail._domainkey.ro.ru" and result["dkim"]["record"].startswith("v=DKIM1")


def test_domain_verified_with_smtp2go_passes_by_dkim(checks):
    result = checks["verified_dkim"]
    assert result["dmarc_pass"] is True and result["verdict"] == "passes" and result["consequence"] == "none"
    assert result["dkim"]["target"] == "dkim.smtp2go.net" and result["dkim"]["points_to_relay"] is True
    assert result["dkim"]["record"].startswith("v=DKIM1; k=rsa; p=")  # followed through the CNAME
    assert result["spf"]["authorises_relay"] is True and result["spf"]["aligned"] is False
    assert result["options"] == []


def test_domain_verified_with_smtp2go_passes_by_spf_of_the_return_path(checks):
    result = checks["verified_spf"]
    assert result["dmarc_pass"] is True
    assert result["spf"] == {"domain": "em123456.karto.test", "record": "v=spf1 include:spf.smtp2go.com ~all",
                             "authorises_relay": True, "return_path": "em123456.karto.test", "aligned": True}


def test_own_domain_without_the_selector_is_not_aligned(checks):
    result = checks["unverified"]
    assert result["dmarc_pass"] is False and result["consequence"] == "reject"
    assert "karto.test itself only if you control its DNS" in result["options"][1]


def test_subdomain_gets_the_organisational_subdomain_policy(checks):
    result = checks["subdomain"]
    assert result["dmarc"]["domain"] == "karto.test" and result["dmarc"]["inherited"] is True
    assert result["dmarc"]["policy"] == "reject" and result["dmarc"]["subdomain_policy"] == "quarantine"
    assert result["consequence"] == "quarantine" and result["verdict"] == "may land in spam (sp=quarantine)"


def test_p_none_asks_for_no_action(checks):
    result = checks["relaxed"]
    assert result["consequence"] == "none" and result["dmarc_pass"] is False
    assert result["dmarc"]["policy"] == "none"
    assert result["verdict"].startswith("fails DMARC, but p=none")
    assert len(result["options"]) == 3


def test_quarantine_with_pct(checks):
    result = checks["quarantine"]
    assert result["consequence"] == "quarantine"
    assert result["dmarc"]["pct"] == 50 and result["dmarc"]["adkim"] == "s" and result["dmarc"]["aspf"] == "s"
    assert result["verdict"] == "may land in spam (p=quarantine, pct=50)"


def test_no_dmarc_record(checks):
    result = checks["nodmarc"]
    assert result["consequence"] == "no-dmarc" and result["dmarc_pass"] is False
    assert result["dmarc"]["record"] is None
    assert result["verdict"] == "not DMARC-protected (no DMARC record), delivery depends on the receiver"
    assert result["spf"]["authorises_relay"] is True  # SPF lists SMTP2GO, but nothing aligns it


def test_unknown_domain_has_nothing(checks):
    result = checks["unknown"]
    assert result["spf"]["record"] is None and result["consequence"] == "no-dmarc"


def test_fail_on_reject_fails_with_the_options_and_passing_mail_does_not(sandbox):
    run = run_tasks([
        check_task(sandbox, "rejected", ignore_errors=True, email="karto.help@ro.ru", fail_on_reject=True),
        check_task(sandbox, "passing", email="noreply@karto.test", dkim_selector="s123456", fail_on_reject=True),
    ], check=True)
    assert run.returncode == 0, run.stdout[-4000:]
    rejected = run["rejected"]
    assert rejected["failed"] is True
    assert rejected["msg"].startswith(
        "Mail From karto.help@ro.ru through SMTP2GO will be rejected by receivers that enforce DMARC (p=reject).")
    for number, option in enumerate(rejected["options"], 1):
        assert "%d. %s" % (number, option) in rejected["msg"]
    assert rejected["consequence"] == "reject"
    assert run["passing"]["verdict"] == "passes" and not run["passing"].get("failed")


@pytest.mark.parametrize("options, message", [
    ({"email": "karto.help"}, "email must be a plain email address"),
    ({"domain": "not a domain"}, "domain must be a domain name"),
    ({"email": "a@ro.ru", "dkim_selector": "s1._domainkey.ro.ru"}, "dkim_selector must be the selector alone"),
    ({"email": "a@ro.ru", "nameservers": ["dns.example"]}, "nameservers must be IP addresses"),
    ({"email": "a@ro.ru", "dns_port": 0}, "dns_port must be between 1 and 65535"),
    ({"email": "a@ro.ru", "domain": "ro.ru"}, "mutually exclusive"),
])
def test_bad_input_fails_naming_the_parameter_before_any_query(sandbox, options, message):
    seen = len(dns_queries(sandbox))
    task = check_task(sandbox, "bad", ignore_errors=True)
    task[MODULE].update(options)
    run = run_tasks([task])
    assert run["bad"]["failed"] is True and message in run["bad"]["msg"], run["bad"]["msg"]
    assert len(dns_queries(sandbox)) == seen


def test_unanswered_and_failed_queries_fail_naming_the_nameservers(sandbox):
    dropped = sandbox.inject_fault(service="dns", path_contains="quarantine.test", action="drop", times=-1)
    servfail = sandbox.inject_fault(service="dns", path_contains="relaxed.test", action="status", status=500,
                                    body="SERVFAIL", times=-1)
    try:
        run = run_tasks([
            check_task(sandbox, "timeout", ignore_errors=True, domain="quarantine.test", timeout=1),
            check_task(sandbox, "servfail", ignore_errors=True, domain="relaxed.test"),
        ])
    finally:
        for fault_id in (dropped, servfail):
            sandbox.control("DELETE", "/faults/%d" % fault_id)
    where = "nameservers 127.0.0.1 (dns_port %d)" % sandbox.dns_port
    timeout = run["timeout"]
    assert timeout["failed"] is True
    assert timeout["msg"].startswith("No DNS answer for TXT _dmarc.quarantine.test within 1 s from " + where)
    assert "check nameservers and dns_port" in timeout["msg"]
    servfail_result = run["servfail"]
    assert servfail_result["failed"] is True
    assert servfail_result["msg"].startswith("N" + where[1:] + " could not answer TXT _dmarc.relaxed.test")
    assert "SERVFAIL" in servfail_result["msg"]
    faulted = [e for e in dns_queries(sandbox, "_dmarc.quarantine.test") if e["fault_action"] == "drop"]
    assert faulted and faulted[-1]["status"] is None


# ---------------------------------------------------------------------------- the DNS server itself


def ask(sandbox, name, rdtype="TXT", tcp=False, use_edns=None):
    query = dns.message.make_query(name, rdtype, use_edns=use_edns)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=sandbox.dns_port, timeout=5)


def test_udp_and_tcp_answer_on_one_port_and_are_journaled(sandbox):
    udp = ask(sandbox, "_dmarc.ro.ru")
    tcp = ask(sandbox, "_dmarc.ro.ru", tcp=True)
    for response in (udp, tcp):
        assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
        assert [rr.to_text() for rr in response.answer[0]] == ['"v=DMARC1; p=reject; rua=mailto:dmarc-reports@ro.ru"']
    entries = dns_queries(sandbox, "_dmarc.ro.ru")[-2:]
    assert [(e["service"], e["method"], e["status"], e["json"]["transport"]) for e in entries] == [
        ("dns", "TXT", 0, "udp"), ("dns", "TXT", 0, "tcp")]


def test_cname_is_followed_across_zones(sandbox):
    response = ask(sandbox, "s123456._domainkey.karto.test")
    types_and_names = [(dns.rdatatype.to_text(rrset.rdtype), rrset.name.to_text()) for rrset in response.answer]
    assert types_and_names == [("CNAME", "s123456._domainkey.karto.test."), ("TXT", "dkim.smtp2go.net.")]
    assert ask(sandbox, "s123456._domainkey.karto.test", "CNAME").answer[0][0].target.to_text() == "dkim.smtp2go.net."


def test_missing_names_and_records(sandbox):
    nxdomain = ask(sandbox, "nothing.karto.test")
    assert nxdomain.rcode() == dns.rcode.NXDOMAIN
    assert nxdomain.authority[0].rdtype == dns.rdatatype.SOA and nxdomain.authority[0].name.to_text() == "karto.test."
    nodata = ask(sandbox, "karto.test", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority
    empty_non_terminal = ask(sandbox, "_domainkey.karto.test")
    assert empty_non_terminal.rcode() == dns.rcode.NOERROR and not empty_non_terminal.answer
    outside = ask(sandbox, "gmail.com")
    assert outside.rcode() == dns.rcode.NXDOMAIN and not outside.authority
    assert ask(sandbox, "ro.ru", "SOA").answer[0][0].mname.to_text() == "ns1.ro.ru."
    assert ask(sandbox, "ro.ru", "NS").answer[0][0].target.to_text() == "ns1.ro.ru."


def test_a_resolver_gets_every_zone(sandbox):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], sandbox.dns_port, 5
    expected = {
        "ro.ru": "v=spf1 include:_spf.ro.ru -all",
        "_dmarc.relaxed.test": "v=DMARC1; p=none; rua=mailto:dmarc@relaxed.test",
        "_dmarc.quarantine.test": "v=DMARC1; p=quarantine; pct=50; adkim=s; aspf=s",
        "nodmarc.test": "v=spf1 mx include:spf.smtp2go.com ~all",
        "karto.test": "v=spf1 include:spf.smtp2go.com ~all",
        "em123456.karto.test": "v=spf1 include:spf.smtp2go.com ~all",
    }
    for name, text in expected.items():
        assert [b"".join(r.strings).decode() for r in resolver.resolve(name, "TXT")] == [text], name
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("_dmarc.nodmarc.test", "TXT")


def test_big_answers_are_truncated_over_udp_and_whole_over_tcp():
    context = types.SimpleNamespace(services={}, faults=FaultInjector(), journal=Journal())
    server = DnsServer(context)
    long_text = " ".join(['"%s"' % ("k" * 200)] * 4)
    server.zones = ZoneData({"big.test": "$ORIGIN big.test.\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n"
                                         "key IN TXT %s\n" % long_text})
    query = dns.message.make_query("key.big.test", "TXT", use_edns=False)
    udp = dns.message.from_wire(server.reply_to(query.to_wire(), "udp"))
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = dns.message.from_wire(server.reply_to(query.to_wire(), "tcp"))
    assert not tcp.flags & dns.flags.TC and len(b"".join(tcp.answer[0][0].strings)) == 800
    edns = dns.message.make_query("key.big.test", "TXT", use_edns=0, payload=1232)
    assert not dns.message.from_wire(server.reply_to(edns.to_wire(), "udp")).flags & dns.flags.TC
    journal = context.journal.entries(service="dns")
    assert [e["json"]["truncated"] for e in journal] == [True, False, False]
    assert server.reply_to(b"\x00garbage", "udp") is None
