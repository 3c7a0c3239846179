"""An authoritative DNS server (dnslib) with the sandbox's test zones: SPF, DKIM and DMARC records of a
free-mail domain, of domains with each DMARC policy, and of a domain set up for SMTP2GO.

It answers UDP and TCP on one 127.0.0.1 port (endpoints-file key `dns_port`), as the only DNS of a
small world: a name outside every zone is NXDOMAIN, and a CNAME is followed through every zone
(like a recursive resolver would), so `s123456._domainkey.karto.test` resolves to the TXT at
`dkim.smtp2go.net`. Every query is journaled (service "dns", method = the query type, path = the
query name) and can be faulted. README.md in this folder describes the zones.
"""

import errno
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback

from dnslib import CLASS, EDNS0, QTYPE, RCODE, RR, DNSError, DNSRecord

from .core import LOCALHOST, Service

# Sandbox DKIM public keys (1024-bit RSA, made for the sandbox; no private key is kept anywhere).
_DKIM_KEY_MAILBOX = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDrpJxl2ZtO2bfAWnyCqDlGC9q8hIxGJpAOviE4nxGOlo5UiH53cbHgzI++MTkJKscs"
    "Dmth2wenilQrO7Xm+wtdqVSrMsm6LIiOlWMmDgiOQKnu71dTH+rL+UUSoNmusx8joFHSUUmhXW3oHUyu2Pd8BYRVP5enp5Cu7M3h3SPiLQIDAQAB"
)
_DKIM_KEY_SMTP2GO = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQClxmHl6FuDlCKYt88aUgyJOLKGO/CLiOlr89Cpdnt82yshPTa8ZEpg0mi0po/saIJd"
    "yMx6M8v62h0y/pxMNH3M+YUX5W085SIb4O95emFzotIGLtY4+2RtQ+M2c+kpjhdwQ0wOyv/GNw2rmZE71QjUYVHn3WranMBNCeLYDTDBHwIDAQAB"
)


def _mailbox_zone(domain):
    """A free-mail provider's domain, modelled on Mail.ru's public domains (p=reject since 2016).
    The real policy of a Rambler domain is an ASSUMPTION here; check it live (dig TXT _dmarc.<domain>)."""
    return f"""
$ORIGIN {domain}.
$TTL 300
@ IN SOA ns1 hostmaster 2016030101 3600 600 604800 300
@ IN NS ns1
ns1 IN A 127.0.0.1
@ IN MX 10 mx
mx IN A 192.0.2.25
@ IN TXT "v=spf1 include:_spf.{domain} -all"
_spf IN TXT "v=spf1 ip4:192.0.2.0/25 -all"
_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc-reports@{domain}"
mail._domainkey IN TXT "v=DKIM1; k=rsa; p={_DKIM_KEY_MAILBOX}"
"""


def _zone_head(domain):
    return f"""
$ORIGIN {domain}.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 604800 300
@ IN NS ns1
ns1 IN A 127.0.0.1
"""


# Zone apex -> master-file text. README.md ("DNS server") lists what each zone is for.
ZONES = {
    "ro.ru": _mailbox_zone("ro.ru"),
    "rambler.ru": _mailbox_zone("rambler.ru"),
    "relaxed.test": _zone_head("relaxed.test") + """
@ IN TXT "v=spf1 ip4:198.51.100.10 ~all"
_dmarc IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@relaxed.test"
""",
    "quarantine.test": _zone_head("quarantine.test") + """
@ IN TXT "v=spf1 ip4:198.51.100.20 ~all"
_dmarc IN TXT "v=DMARC1; p=quarantine; pct=50; adkim=s; aspf=s"
""",
    "nodmarc.test": _zone_head("nodmarc.test") + """
@ IN MX 10 mx
mx IN A 198.51.100.30
@ IN TXT "v=spf1 mx include:spf.smtp2go.com ~all"
""",
    # A domain the team controls, verified with SMTP2GO as a sender domain (selectors as the
    # SMTP2GO emulator's /domain/add makes them: s + 6 digits, em + the same digits).
    "karto.test": _zone_head("karto.test") + """
@ IN TXT "v=spf1 include:spf.smtp2go.com ~all"
_dmarc IN TXT "v=DMARC1; p=reject; sp=quarantine; adkim=r; aspf=r; rua=mailto:dmarc@karto.test"
s123456._domainkey IN CNAME dkim.smtp2go.net.
em123456 IN CNAME return.smtp2go.net.
link IN CNAME track.smtp2go.net.
""",
    # Stand-ins for SMTP2GO's own names, so the CNAMEs and SPF includes above resolve. The targets
    # are SMTP2GO's documented ones; the records at them (keys, SPF, addresses) are the sandbox's.
    "smtp2go.net": _zone_head("smtp2go.net") + f"""
dkim IN TXT "v=DKIM1; k=rsa; p={_DKIM_KEY_SMTP2GO}"
return IN TXT "v=spf1 include:spf.smtp2go.com ~all"
track IN A 203.0.113.80
""",
    "smtp2go.com": _zone_head("smtp2go.com") + """
spf IN TXT "v=spf1 ip4:203.0.113.0/24 -all"
""",
}

MAX_CNAME_HOPS = 8
PLAIN_UDP_LIMIT = 512  # bytes of a UDP answer to a query without EDNS (RFC 1035)
MAX_UDP_PAYLOAD = 1232  # what the server accepts to send when a query's EDNS offers more
TCP_IDLE_SECONDS = 10
# rcodes a `status` fault may answer with (its body names one; anything else is SERVFAIL).
FAULT_RCODES = {"SERVFAIL": RCODE.SERVFAIL, "REFUSED": RCODE.REFUSED, "NXDOMAIN": RCODE.NXDOMAIN,
                "NOTIMP": RCODE.NOTIMP, "FORMERR": RCODE.FORMERR}
PORT_ATTEMPTS = 50


def _name(label):
    """A DNS name as the server's tables key it: lower case, no trailing dot."""
    return str(label).rstrip(".").lower()


class ZoneData:
    """The records of every zone, looked up like one authoritative view of the world."""

    def __init__(self, zones):
        self.apexes = sorted((_name(apex) for apex in zones), key=len, reverse=True)
        self.records = {}  # (name, qtype) -> [RR]
        self.names = set()  # names that own records, and their ancestors inside a zone (empty non-terminals)
        for text in zones.values():
            for record in RR.fromZone(text):
                name = _name(record.rname)
                self.records.setdefault((name, record.rtype), []).append(record)
                zone = self.zone_of(name)
                while name and zone and (name == zone or name.endswith("." + zone)):
                    self.names.add(name)
                    name = name.partition(".")[2]

    def zone_of(self, name):
        for apex in self.apexes:
            if name == apex or name.endswith("." + apex):
                return apex
        return None

    def soa(self, zone):
        return self.records[(zone, QTYPE.SOA)][0]

    def answer(self, qname, qtype):
        """(rcode, answer RRs, authority RRs) for a query, following CNAMEs across zones."""
        answers = []
        name = _name(qname)
        for _hop in range(MAX_CNAME_HOPS):
            zone = self.zone_of(name)
            if zone is None:
                # Outside every zone: the sandbox's world has no such name. After a CNAME the
                # answer keeps the chain (as a resolver would show it) with the final NXDOMAIN.
                return RCODE.NXDOMAIN, answers, []
            found = self.records.get((name, qtype), [])
            if qtype == QTYPE.ANY:
                found = [rr for (owner, _type), rrs in self.records.items() if owner == name for rr in rrs]
            if found:
                return RCODE.NOERROR, answers + found, []
            cname = self.records.get((name, QTYPE.CNAME))
            if cname and qtype != QTYPE.CNAME:
                answers += cname
                name = _name(cname[0].rdata.label)
                continue
            rcode = RCODE.NOERROR if name in self.names else RCODE.NXDOMAIN
            return rcode, answers, [self.soa(zone)]
        return RCODE.SERVFAIL, answers, []  # a CNAME loop or an over-long chain


class DnsServer(Service):
    """The sandbox's DNS: one port, UDP and TCP, answers from `ZONES`."""
    name = "dns"

    def __init__(self, context):
        super().__init__(context)
        self.zones = ZoneData(ZONES)
        self._servers = []
        self.port = None

    def start(self):
        for _attempt in range(PORT_ATTEMPTS):
            udp = _UdpServer((LOCALHOST, 0), _UdpHandler)
            port = udp.server_address[1]
            try:
                tcp = _TcpServer((LOCALHOST, port), _TcpHandler)
            except OSError as error:
                udp.server_close()
                if error.errno == errno.EADDRINUSE:
                    continue  # the free UDP port is taken for TCP: try another one
                raise
            break
        else:
            raise RuntimeError(f"dns: no port free for both UDP and TCP after {PORT_ATTEMPTS} attempts")
        self.port = port
        for server in (udp, tcp):
            server.service = self
            self._servers.append(server)
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             name=f"dns-{server.transport}", daemon=True).start()
        return {"dns_port": port}

    def stop(self):
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def reply_to(self, data, transport):
        """The packed answer to one query message, or None to send nothing (a malformed query or a
        `drop` fault)."""
        try:
            request = DNSRecord.parse(data)
        except (DNSError, struct.error, IndexError, ValueError):
            return None  # not a DNS message: a real server ignores it too
        if not request.questions:
            return None
        question = request.q
        qname, qtype_name = _name(question.qname), QTYPE.get(question.qtype, str(question.qtype))
        fault = self.context.faults.take(self.name, qtype_name, qname)
        if fault and fault.action == "delay":
            time.sleep(fault.seconds)
        if fault and fault.action == "drop":
            self._journal(qname, qtype_name, transport, None, [], fault)
            return None

        reply = request.reply()  # QR, AA and RD set, the question copied
        reply.header.ra = 0
        if fault and fault.action == "status":
            # A DNS answer has no HTTP status: the fault's body names the rcode (default SERVFAIL).
            rcode = FAULT_RCODES.get(str(fault.body or "SERVFAIL").upper(), RCODE.SERVFAIL)
            answers, authority = [], []
        elif question.qclass != CLASS.IN:
            rcode, answers, authority = RCODE.REFUSED, [], []
        else:
            rcode, answers, authority = self.zones.answer(question.qname, question.qtype)
        reply.header.rcode = rcode
        for record in answers:
            reply.add_answer(record)
        for record in authority:
            reply.add_auth(record)
        limit = None
        if transport == "udp":
            offered = [record.edns_len for record in request.ar if record.rtype == QTYPE.OPT]
            limit = min(max(offered[0], PLAIN_UDP_LIMIT), MAX_UDP_PAYLOAD) if offered else PLAIN_UDP_LIMIT
            if offered:
                reply.add_ar(EDNS0(udp_len=MAX_UDP_PAYLOAD))
        elif any(record.rtype == QTYPE.OPT for record in request.ar):
            reply.add_ar(EDNS0(udp_len=MAX_UDP_PAYLOAD))
        packed = reply.pack()
        truncated = limit is not None and len(packed) > limit
        if truncated:
            short = DNSRecord(reply.header, questions=reply.questions)
            short.header.tc = 1
            packed = short.pack()
        self._journal(qname, qtype_name, transport, rcode, [] if truncated else answers, fault, truncated)
        if fault and fault.action == "drop_answer":
            return None
        return bytes(packed)

    def _journal(self, qname, qtype_name, transport, rcode, answers, fault, truncated=False):
        self.context.journal.record(
            service=self.name,
            method=qtype_name,
            path=qname,
            query={},
            headers={},
            status=rcode,
            json={
                "transport": transport,
                "rcode": RCODE.get(rcode) if rcode is not None else None,
                "answers": [f"{_name(rr.rname)} {QTYPE.get(rr.rtype)} {rr.rdata.toZone()}" for rr in answers],
                "truncated": truncated,
            },
            fault=fault is not None and fault.action in ("status", "drop"),
            fault_action=fault.action if fault else None,
        )


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = False
    transport = "udp"
    service = None

    def handle_error(self, request, client_address):
        traceback.print_exc(file=sys.stderr)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 64
    transport = "tcp"
    service = None

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away
        traceback.print_exc(file=sys.stderr)


class _UdpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        answer = self.server.service.reply_to(data, "udp")
        if answer is not None:
            sock.sendto(answer, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    """Length-prefixed messages (RFC 1035 4.2.2), several per connection if the client likes."""

    def handle(self):
        self.request.settimeout(TCP_IDLE_SECONDS)
        while True:
            prefix = self._read(2)
            if prefix is None:
                return
            data = self._read(struct.unpack("!H", prefix)[0])
            if data is None:
                return
            answer = self.server.service.reply_to(data, "tcp")
            if answer is None:
                self.request.shutdown(socket.SHUT_RDWR)
                return
            self.request.sendall(struct.pack("!H", len(answer)) + answer)

    def _read(self, size):
        chunks, missing = [], size
        while missing:
            try:
                chunk = self.request.recv(missing)
            except (socket.timeout, ConnectionError):
                return None
            if not chunk:
                return None
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)
