"""_dns_query against a real nameserver on 127.0.0.1 whose answers dnspython builds: another
implementation of RFC 1035 than ours, so a shared misreading of the wire format cannot pass."""

import socket
import struct
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _dns_query as dq


class Nameserver:
    """UDP and TCP on one port of `host`; `answer(query, transport)` returns a dns.message, raw bytes
    (sent as they are), a list of those (sent in order over UDP), or None (silence)."""

    def __init__(self, answer, host="127.0.0.1", port=0):
        self.answer = answer
        self.queries = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, port))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, self.port))
        self.tcp.listen(4)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._serve_udp, daemon=True),
                        threading.Thread(target=self._serve_tcp, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _replies(self, data, transport):
        query = dns.message.from_wire(data)
        self.queries.append((transport, query))
        replies = self.answer(query, transport)
        if replies is None:
            return []
        return [r if isinstance(r, bytes) else r.to_wire() for r in (replies if isinstance(replies, list) else [replies])]

    def _serve_udp(self):
        self.udp.settimeout(0.05)
        while not self.stop.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            for reply in self._replies(data, "udp"):
                self.udp.sendto(reply, peer)

    def _serve_tcp(self):
        self.tcp.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _peer = self.tcp.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(2)
                length = struct.unpack("!H", conn.recv(2))[0]
                data = b""
                while len(data) < length:
                    data += conn.recv(length - len(data))
                for reply in self._replies(data, "tcp"):
                    conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self):
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def nameserver():
    servers = []

    def start(answer, **kwargs):
        servers.append(Nameserver(answer, **kwargs))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


def reply(query, *rrsets, rcode=dns.rcode.NOERROR):
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for text in rrsets:
        name, rtype, *data = text.split(" ", 2)
        response.answer.append(dns.rrset.from_text(name, 300, "IN", rtype, *data[0].split(" | ")))
    return response


def ask(server, name="_dmarc.karto.test", timeout=2.0):
    return dq.ask(name, dq.TXT, ["127.0.0.1"], server.port, time.monotonic() + timeout)


def test_the_query_is_a_plain_recursive_txt_question(nameserver):
    server = nameserver(lambda q, t: reply(q, '_dmarc.karto.test. TXT "v=DMARC1; p=reject"'))
    assert ask(server, "_DMARC.Karto.Test.").chain("_dmarc.karto.test") == (["v=DMARC1; p=reject"], None)
    transport, query = server.queries[0]
    assert transport == "udp" and query.flags & dns.flags.RD and not query.flags & dns.flags.QR
    assert [(str(q.name), q.rdtype) for q in query.question] == [("_dmarc.karto.test.", dns.rdatatype.TXT)]
    assert query.edns == -1 and not query.additional  # no EDNS, as dnspython's Resolver asked


def test_txt_strings_are_joined_per_record_and_read_as_utf8(nameserver):
    server = nameserver(lambda q, t: reply(
        q, 'karto.test. TXT "v=spf1 include:spf.smtp2go.com " "-all" | "здравствуй" | ""'))
    texts, target = ask(server, "karto.test").chain("karto.test")
    assert sorted(texts) == sorted(["v=spf1 include:spf.smtp2go.com -all", "здравствуй", ""]) and target is None


def test_cname_chains_are_followed_within_the_answer_and_compressed_names_read(nameserver):
    server = nameserver(lambda q, t: reply(
        q, "s1._domainkey.karto.test. CNAME s1.domainkey.u123.wl.sendgrid.net.",
        "s1.domainkey.u123.wl.sendgrid.net. CNAME key.sendgrid.net.",
        'key.sendgrid.net. TXT "v=DKIM1; k=rsa; p=MIGf"'))
    answer = ask(server, "s1._domainkey.karto.test")
    assert answer.chain("s1._domainkey.karto.test") == (["v=DKIM1; k=rsa; p=MIGf"], "s1.domainkey.u123.wl.sendgrid.net")
    # dnspython compressed the owner names: the answer is shorter than its names written out.
    wire = server.answer(server.queries[0][1], "udp").to_wire()
    assert wire.count(b"sendgrid") < 3


def test_nxdomain_keeps_the_cname_of_the_name_asked(nameserver):
    server = nameserver(lambda q, t: reply(q, "em1.karto.test. CNAME u1.wl.sendgrid.net.", rcode=dns.rcode.NXDOMAIN))
    answer = ask(server, "em1.karto.test")
    assert answer.rcode == dq.NXDOMAIN and answer.chain("em1.karto.test") == ([], "u1.wl.sendgrid.net")


def test_a_truncated_udp_answer_is_asked_again_over_tcp(nameserver):
    long_text = "v=DKIM1; p=" + "A" * 800

    def answer(query, transport):
        if transport == "udp":
            truncated = reply(query)
            truncated.flags |= dns.flags.TC
            return truncated
        return reply(query, 'karto.test. TXT "%s" "%s"' % (long_text[:255], long_text[255:510]) + ' "%s" "%s"'
                     % (long_text[510:765], long_text[765:]))
    server = nameserver(answer)
    assert ask(server, "karto.test").chain("karto.test") == ([long_text], None)
    assert [transport for transport, _q in server.queries] == ["udp", "tcp"]
    assert server.queries[0][1].id == server.queries[1][1].id


def test_an_answer_to_another_question_or_id_is_ignored(nameserver):
    def answer(query, transport):
        other_id = reply(query, 'karto.test. TXT "forged"')
        other_id.id = (query.id + 1) % 65536
        other_question = dns.message.make_response(dns.message.make_query("evil.test", "TXT", id=query.id))
        other_question.answer.append(dns.rrset.from_text("evil.test.", 300, "IN", "TXT", '"forged"'))
        return [other_id, other_question, reply(query, 'karto.test. TXT "real"')]
    server = nameserver(answer)
    assert ask(server, "karto.test").chain("karto.test") == (["real"], None)


def test_servfail_moves_on_to_the_next_nameserver(nameserver):
    failing = nameserver(lambda q, t: reply(q, rcode=dns.rcode.SERVFAIL))
    answering = nameserver(lambda q, t: reply(q, 'karto.test. TXT "ok"'), host="127.0.0.2", port=failing.port)
    answer = dq.ask("karto.test", dq.TXT, ["127.0.0.1", "127.0.0.2"], failing.port, time.monotonic() + 2)
    assert answer.chain("karto.test") == (["ok"], None)
    assert len(failing.queries) == 1 and len(answering.queries) == 1


def test_every_nameserver_failing_names_each_reason(nameserver):
    refusing = nameserver(lambda q, t: reply(q, rcode=dns.rcode.REFUSED))
    with pytest.raises(dq.DnsNoAnswer) as raised:
        ask(refusing)
    assert str(raised.value) == "127.0.0.1 answered REFUSED"


def test_a_malformed_answer_is_a_failure_of_that_nameserver(nameserver):
    def looping(query, transport):
        header = struct.pack("!6H", query.id, 0x8180, 1, 1, 0, 0)
        question = dq.encode_name("karto.test") + struct.pack("!2H", dq.TXT, 1)
        # The answer's owner is a compression pointer to itself.
        record = struct.pack("!H", 0xC000 | (12 + len(question))) + struct.pack("!2HIH", dq.TXT, 1, 60, 0)
        return header + question + record
    server = nameserver(looping)
    with pytest.raises(dq.DnsNoAnswer, match="malformed message .compression pointers loop"):
        ask(server, "karto.test")


def test_silence_ends_at_the_deadline(nameserver):
    server = nameserver(lambda q, t: None)
    started = time.monotonic()
    with pytest.raises(dq.DnsTimeout):
        ask(server, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 1.0  # the deadline, not a second full wait


def test_a_closed_port_is_a_failure_not_a_wait():
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    started = time.monotonic()
    with pytest.raises(dq.DnsNoAnswer, match="127.0.0.1: "):
        dq.ask("karto.test", dq.TXT, ["127.0.0.1"], port, time.monotonic() + 2)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("name", ["a" * 64 + ".test", "karto..test", ".".join(["a" * 60] * 5)])
def test_names_that_cannot_be_asked(name):
    with pytest.raises(dq.DnsBadName):
        dq.encode_name(name)
    # before any nameserver is asked
    with pytest.raises(dq.DnsBadName):
        dq.ask(name, dq.TXT, [], 53, time.monotonic() + 1)


def test_names_are_encoded_as_dnspython_encodes_them():
    for name in ("karto.test", "_dmarc.ro.ru.", "s1._domainkey.mail.karto.test", "пример.рф"):
        assert dq.encode_name(name) == dns.name.from_text(name).to_wire()


def test_system_nameservers_are_read_from_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch karto.test\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions ndots:1\n")
    assert dq.system_nameservers(str(conf)) == ["10.0.0.2", "fe80::1%eth0"]
    assert dq.system_nameservers(str(tmp_path / "missing")) == []
