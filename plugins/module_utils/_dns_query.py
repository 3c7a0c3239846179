# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: ask a recursive nameserver one DNS question (TXT), with the
standard library only.

sender_domain_check asks a few TXT questions per run. dnspython did this before; importing it took
about 70 ms of every run of the module (measured by `make bench`, part (e)), more than the whole
check. This file does what the module used of dnspython's stub resolver (`Resolver.resolve`, no
search list, no EDNS), as RFC 1035 describes it:
- the question goes over UDP (section 4.2.1) to each nameserver in turn; an answer with TC set is
  asked again over TCP, with the two-octet length prefix (4.2.2);
- an answer whose ID or question does not match is ignored, as a stub resolver must (7.3), and the
  socket is connected, so the kernel drops datagrams from any other address;
- SERVFAIL, REFUSED, NOTIMP, FORMERR, a refused port or a malformed answer: the next nameserver;
- one deadline bounds everything: a nameserver that does not answer in time ends the question.
Names in answers may be compressed (4.1.4); pointers must stay inside the message and may not loop.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import random
import socket
import struct
import time

TXT = 16
CNAME = 5
CLASS_IN = 1
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
NXDOMAIN = 3
UDP_ANSWER_SIZE = 512  # no EDNS (RFC 1035 2.3.4): a longer answer comes with TC set and is asked over TCP
MAX_CNAME_HOPS = 16


class DnsTimeout(Exception):
    """No answer before the deadline."""


class DnsNoAnswer(Exception):
    """Every nameserver failed; the message lists each one's reason."""


class DnsBadName(Exception):
    """The name cannot be asked (a label over 63 octets, an empty label, over 255 octets)."""


class _Malformed(Exception):
    pass


class Answer:
    """rcode: the answer's RCODE; records: (owner, type, data) of the answer section, owner and CNAME
    targets lowercased without the final dot, TXT data as one string (its character-strings joined)."""

    def __init__(self, rcode, records):
        self.rcode = rcode
        self.records = records

    def chain(self, name):
        """(TXT strings of `name`, following CNAMEs within the answer; the CNAME target of `name` or None)."""
        first_target, current = None, name
        for _hop in range(MAX_CNAME_HOPS):
            texts = [data for owner, rtype, data in self.records if owner == current and rtype == TXT]
            if texts:
                return texts, first_target
            target = next((data for owner, rtype, data in self.records if owner == current and rtype == CNAME), None)
            if target is None:
                break
            first_target = first_target or target
            current = target
        return [], first_target


def system_nameservers(path="/etc/resolv.conf"):
    """The `nameserver` addresses of resolv.conf, in order; [] when there are none or no file."""
    servers = []
    try:
        with open(path, encoding="utf-8", errors="replace") as conf:
            for line in conf:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    servers.append(fields[1])  # a link-local IPv6 address keeps its %scope: connect() needs it
    except OSError:
        return []
    return servers


def encode_name(name):
    """`name` in wire form (RFC 1035 3.1); a non-ASCII label in its IDNA (ACE) form."""
    wire = bytearray()
    for label in name.rstrip(".").split("."):
        try:
            raw = label.encode("ascii")
        except UnicodeEncodeError:
            try:
                raw = label.encode("idna")
            except UnicodeError:
                raise DnsBadName("%r is not a DNS name (label %r cannot be encoded)" % (name, label)) from None
        if not 0 < len(raw) <= 63:
            raise DnsBadName("%r is not a DNS name (a label is empty or longer than 63 octets)" % name)
        wire += bytes((len(raw),)) + raw
    wire += b"\0"
    if len(wire) > 255:
        raise DnsBadName("%r is not a DNS name (longer than 255 octets)" % name)
    return bytes(wire)


def build_query(query_id, question):
    """A standard query with RD set (the nameserver recurses), the one `question`, nothing else."""
    return struct.pack("!6H", query_id, 0x0100, 1, 0, 0, 0) + question


def read_name(message, offset):
    """(name lowercased without the final dot, offset after it in place) of the name at `offset`."""
    labels, end, jumps = [], None, 0
    while True:
        if offset >= len(message):
            raise _Malformed("a name runs past the end of the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message):
                raise _Malformed("a compression pointer runs past the end of the message")
            if end is None:
                end = offset + 2
            jumps += 1
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            if jumps > 127:
                raise _Malformed("compression pointers loop")
            continue
        if length & 0xC0:
            raise _Malformed("an unknown label type")
        offset += 1
        if length == 0:
            break
        if offset + length > len(message):
            raise _Malformed("a label runs past the end of the message")
        labels.append(message[offset:offset + length].decode("latin-1").lower())
        offset += length
    return ".".join(labels), (end if end is not None else offset)


def _character_strings(rdata):
    strings, offset = [], 0
    while offset < len(rdata):
        length = rdata[offset]
        if offset + 1 + length > len(rdata):
            raise _Malformed("a TXT string runs past its record")
        strings.append(rdata[offset + 1:offset + 1 + length])
        offset += 1 + length
    return b"".join(strings).decode("utf-8", "replace")


def parse_answer(message, query_id, name, rtype):
    """(Answer, truncated) of a reply to our question, or None when it is an answer to another one."""
    if len(message) < 12:
        raise _Malformed("shorter than a DNS header")
    reply_id, flags, questions, answers = struct.unpack("!4H", message[:8])
    if reply_id != query_id or not flags & 0x8000:
        return None
    offset = 12
    for _index in range(questions):
        asked, offset = read_name(message, offset)
        if offset + 4 > len(message):
            raise _Malformed("a question runs past the end of the message")
        asked_type, asked_class = struct.unpack("!2H", message[offset:offset + 4])
        offset += 4
        if (asked, asked_type, asked_class) != (name, rtype, CLASS_IN):
            return None
    truncated = bool(flags & 0x0200)
    records = []
    if truncated:
        return Answer(flags & 0x000F, records), True
    for _index in range(answers):
        owner, offset = read_name(message, offset)
        if offset + 10 > len(message):
            raise _Malformed("a record runs past the end of the message")
        record_type, record_class, _ttl, length = struct.unpack("!2HIH", message[offset:offset + 10])
        offset += 10
        if offset + length > len(message):
            raise _Malformed("record data runs past the end of the message")
        if record_class == CLASS_IN and record_type == TXT:
            records.append((owner, TXT, _character_strings(message[offset:offset + length])))
        elif record_class == CLASS_IN and record_type == CNAME:
            records.append((owner, CNAME, read_name(message, offset)[0]))
        offset += length
    return Answer(flags & 0x000F, records), False


def _remaining(deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DnsTimeout()
    return remaining


def _ask_udp(server, port, query, query_id, name, rtype, deadline):
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((server, port))
        sock.send(query)
        while True:
            sock.settimeout(_remaining(deadline))
            try:
                message = sock.recv(65535)
            except socket.timeout:
                raise DnsTimeout() from None
            reply = parse_answer(message, query_id, name, rtype)
            if reply is not None:
                return reply


def _read_exactly(sock, size, deadline):
    data = b""
    while len(data) < size:
        sock.settimeout(_remaining(deadline))
        try:
            chunk = sock.recv(size - len(data))
        except socket.timeout:
            raise DnsTimeout() from None
        if not chunk:
            raise _Malformed("the TCP connection closed before the whole answer")
        data += chunk
    return data


def _ask_tcp(server, port, query, query_id, name, rtype, deadline):
    try:
        sock = socket.create_connection((server, port), timeout=_remaining(deadline))
    except socket.timeout:
        raise DnsTimeout() from None
    with sock:
        sock.sendall(struct.pack("!H", len(query)) + query)
        length = struct.unpack("!H", _read_exactly(sock, 2, deadline))[0]
        reply = parse_answer(_read_exactly(sock, length, deadline), query_id, name, rtype)
    if reply is None:
        raise _Malformed("the TCP answer is for another question")
    return reply


def ask(name, rtype, nameservers, port, deadline):
    """The Answer of the first nameserver that gives one (NOERROR or NXDOMAIN) to `name`/`rtype`.

    Raises DnsTimeout when the deadline passes, DnsNoAnswer when every nameserver failed,
    DnsBadName for a name that cannot be asked."""
    name = name.rstrip(".").lower()
    # Encoded once, before any nameserver: a name that cannot be asked fails the same with none.
    question = encode_name(name) + struct.pack("!2H", rtype, CLASS_IN)
    failures = []
    for server in nameservers:
        query_id = random.randrange(0x10000)
        query = build_query(query_id, question)
        try:
            answer, truncated = _ask_udp(server, port, query, query_id, name, rtype, deadline)
            if truncated:
                answer, _truncated = _ask_tcp(server, port, query, query_id, name, rtype, deadline)
        except _Malformed as error:
            failures.append("%s answered a malformed message (%s)" % (server, error))
            continue
        except DnsTimeout:
            raise
        except OSError as error:
            failures.append("%s: %s" % (server, error.strerror or error))
            continue
        if answer.rcode in (0, NXDOMAIN):
            return answer
        failures.append("%s answered %s" % (server, RCODES.get(answer.rcode, "RCODE %d" % answer.rcode)))
    raise DnsNoAnswer("; ".join(failures) or "no nameservers")
