#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: smtp_check
short_description: Probe an SMTP relay the way Supabase Auth will use it
version_added: 0.1.0
description:
  - Connects to an SMTP relay on one or more candidate ports, all at the same time, and goes as far
    as Supabase Auth would - TCP connection, TLS, greeting and C(EHLO), C(AUTH), and optionally
    C(MAIL FROM), C(RCPT TO) and a real test message - then says which port works and, for each
    port that does not, why (a failure class) and what to do about it (a hint).
  - The TLS mode follows Supabase Auth's mailer (gomail over Go's C(net/smtp)), chosen by the port
    number only. On a port in O(implicit_tls_ports) (V(465) by default) TLS starts with the first
    byte. On any other port the probe speaks plain SMTP and upgrades with C(STARTTLS) when the
    server offers it.
  - Credentials are never sent over a connection without TLS. A port that offers no C(STARTTLS)
    is reported as V(starttls-unavailable), which is what Supabase Auth reports as
    C(unencrypted connection); such a port is never reported as working.
  - The C(AUTH) mechanism is chosen as Supabase Auth chooses it. C(CRAM-MD5) when offered, else
    C(LOGIN) when offered without C(PLAIN), else C(PLAIN).
  - It changes nothing, so it always reports C(changed=false). It reads no provider API and takes
    no provider credentials.
author:
  - karto maintainers (@karto)
attributes:
  check_mode:
    description:
      - Probes as in a normal run but never sends a message. With O(send=true) it stops after
        C(RCPT TO) and resets the transaction with C(RSET).
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
options:
  host:
    description:
      - The SMTP host name Supabase Auth will use (C(smtp_host)), bare, for example
        V(mail.smtp2go.com), with no scheme, port or path.
      - It is also the name the relay's TLS certificate is checked against, also when
        O(connect_to) sends the connection elsewhere.
    type: str
    required: true
  ports:
    description:
      - Candidate ports, each probed at the same time as the others.
      - The recommended port is the first that works of V(465), then V(587), then the others in
        the order given.
    type: list
    elements: int
    default: [465, 587]
  username:
    description:
      - SMTP user name (for SendGrid V(apikey), for Resend V(resend)).
      - Without O(username) and O(password) no C(AUTH) is tried, as Supabase Auth tries none; a relay
        that wants a login then refuses C(MAIL FROM) (V(auth-unavailable)).
      - Leading or trailing whitespace is reported as V(whitespace-in-credential) without any
        connection.
    type: str
  password:
    description:
      - SMTP password or API key. Never sent before TLS is up, never printed or returned.
      - Leading or trailing whitespace is reported as V(whitespace-in-credential) without any
        connection.
    type: str
  sender:
    description:
      - Envelope sender (C(MAIL FROM)), the address Supabase Auth sends from (C(smtp_admin_email)).
        A relay that checks senders refuses an unverified one here.
      - Some relays (SMTP2GO for one) check the From address only after the message, at the end of
        C(DATA); only O(send=true) sees that refusal.
      - Without it the probe stops after C(AUTH) (after C(EHLO) when no credentials are given).
    type: str
  recipient:
    description:
      - Recipient (C(RCPT TO)) to try. Needs O(sender).
      - Without O(send=true) the transaction is then reset with C(RSET) and nothing is sent.
    type: str
  send:
    description:
      - Send a short real test message from O(sender) to O(recipient) (needs both), one per port
        that gets that far. The subject names the host and port.
      - Never in check mode. There the probe stops after C(RCPT TO) and C(RSET).
    type: bool
    default: false
  timeout:
    description:
      - Seconds the whole probe may take, for all ports together (they run at the same time), from
        the first connection to the last answer. A port still not done by then is reported as
        V(connect-timeout) (or V(dns) while its name was still resolving).
      - A silent (black-holed) port therefore costs at most this long.
    type: int
    default: 10
  validate_certs:
    description:
      - Check the relay's TLS certificate against trusted CAs and O(host), as Supabase Auth does.
      - Set to V(false) only to look past a certificate problem. Supabase Auth will not.
    type: bool
    default: true
  ca_path:
    description:
      - A file of PEM CA certificates (or a directory of hashed ones) to trust besides the system's,
        for example a test relay's own CA.
      - If not set, the environment variable E(SMTP_CHECK_CA_PATH) is used.
    type: path
  connect_to:
    description:
      - Where to really connect, per logical port, like C(curl --connect-to). Each key is a
        port of O(ports) (as a string), each value an C(address:port) (C([IPv6]:port) for an IPv6
        address). The TLS mode still follows the logical port, and the certificate is still checked
        against O(host).
      - For SSH tunnels, proxies and tests. Keys for ports not in O(ports) are ignored.
      - If not set, the environment variable E(SMTP_CHECK_CONNECT_TO) is used, a JSON object such as
        C({"465":"127.0.0.1:10465"}).
    type: dict
  implicit_tls_ports:
    description:
      - Ports on which TLS starts with the first byte (implicit TLS, also called SMTPS or "SSL").
      - Supabase Auth does that on V(465) only, and talks plain SMTP (with C(STARTTLS) when offered)
        on every other port. Any other port listed here gets a warning, because even when it works
        for this probe it will not work for Supabase. V(465) left out gets a warning too.
    type: list
    elements: int
    default: [465]
  fail_on_error:
    description:
      - Fail the task when no port works, with the class and hint of the port that got furthest.
      - With V(false) the task succeeds and RV(ok), RV(results) say what happened.
    type: bool
    default: true
notes:
  - The probe says C(EHLO localhost) (Supabase Auth says its own host name) and, like Go's TLS
    client, accepts TLS 1.2 or later.
  - The relay sees a real login (and, with O(send=true), a real message), so the relay's logs and
    rate limits count it.
seealso:
  - module: karto.supabase_mail.supabase_smtp
  - module: karto.supabase_mail.supabase_email_test
  - name: Supabase custom SMTP
    description: How Supabase Auth uses a custom SMTP server.
    link: https://supabase.com/docs/guides/auth/auth-smtp
"""

EXAMPLES = r"""
- name: Check the relay takes these credentials on 465 or 587, as Supabase Auth will use them
  karto.supabase_mail.smtp_check:
    host: mail.smtp2go.com
    username: karto-supabase
    password: "{{ smtp2go_smtp_password }}"
    sender: karto.help@ro.ru
  register: relay
  delegate_to: localhost

- name: Say which port to give Supabase
  ansible.builtin.debug:
    msg: "Use port {{ relay.recommended_port }}"

- name: Send one real test mail through port 587 (STARTTLS)
  karto.supabase_mail.smtp_check:
    host: mail.smtp2go.com
    ports: [587]
    username: karto-supabase
    password: "{{ smtp2go_smtp_password }}"
    sender: karto.help@ro.ru
    recipient: karto.help@ro.ru
    send: true
  delegate_to: localhost

- name: Probe three ports within 5 seconds and report instead of failing
  karto.supabase_mail.smtp_check:
    host: mail.smtp2go.com
    ports: [465, 587, 2525]
    username: karto-supabase
    password: "{{ smtp2go_smtp_password }}"
    timeout: 5
    fail_on_error: false
  register: probe
  delegate_to: localhost

- name: Show each port's verdict
  ansible.builtin.debug:
    msg: "{{ item.port }}: {{ 'works' if item.ok else item.error_class ~ ' - ' ~ item.hint }}"
  loop: "{{ probe.results }}"
  loop_control:
    label: "{{ item.port }}"
"""

RETURN = r"""
ok:
  description: Whether at least one port worked all the way (as far as the options asked).
  returned: always
  type: bool
  sample: true
recommended_port:
  description:
    - The port to give Supabase - the first that works of 465, then 587, then the others in the order
      of O(ports). Null when none works.
  returned: always
  type: int
  sample: 465
elapsed:
  description: Seconds the probe took, all ports together (Ansible's own start-up not counted).
  returned: always
  type: float
  sample: 0.42
results:
  description: One entry per port of O(ports), in that order.
  returned: always
  type: list
  elements: dict
  contains:
    port:
      description: The logical port (the one Supabase would use).
      type: int
      sample: 465
    ok:
      description: Whether this port worked all the way.
      type: bool
      sample: true
    stage:
      description:
        - Where the probe stopped - the stage that failed, or the last one done when RV(results[].ok).
        - V(connect) (DNS and TCP), V(tls) (implicit TLS handshake, or C(STARTTLS) and its handshake),
          V(ehlo) (the server's greeting and C(EHLO)), V(auth), V(mail), V(rcpt), V(data).
      type: str
      sample: auth
    tls:
      description: How TLS was started - V(implicit), V(starttls), or null when it was not.
      type: str
      sample: implicit
    auth_mechanism:
      description: The C(AUTH) mechanism used (chosen as Supabase Auth chooses it), or null.
      type: str
      sample: PLAIN
    sent:
      description: Whether a test message was sent (and accepted) through this port.
      type: bool
      sample: false
    connected_to:
      description: The C(address:port) really connected to (see O(connect_to)), or null.
      type: str
      sample: 203.0.113.25:465
    error_class:
      description:
        - Null when the port worked, else one of V(whitespace-in-credential), V(dns), V(connect-timeout),
          V(connection-refused), V(tls-mismatch), V(tls-certificate), V(starttls-unavailable),
          V(auth-unavailable), V(auth-rejected), V(sender-rejected), V(recipient-rejected),
          V(rate-limited), V(relay-refused), V(unknown).
      type: str
      sample: auth-rejected
    hint:
      description: What to do about the failure; null when the port worked.
      type: str
      sample: "The relay refused the SMTP user name or password: check the SMTP user exists and ..."
    reply:
      description:
        - The server's last reply (code and text), or what happened when there was none (for example
          a timeout or a TLS error). Credentials are never part of it.
      type: str
      sample: 535 Incorrect authentication data
    elapsed:
      description: Seconds this port's probe took.
      type: float
      sample: 0.21
"""

import base64
import hashlib
import hmac
import os
import select
import smtplib
import socket
import ssl
import threading
import time
from concurrent.futures import Future, wait
from email.utils import formatdate, make_msgid

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._diagnose import (
    STAGES,
    classify_failure,
    classify_smtp_reply,
    hint_for,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_email,
    check_no_surrounding_whitespace,
    check_not_empty,
    check_range,
    check_smtp_host,
    first_problem,
)

SUPABASE_IMPLICIT_TLS_PORT = 465
PREFERRED_PORTS = (465, 587)
EHLO_NAME = "localhost"  # Go's net/smtp default; Supabase uses its API host name
# Without a greeting after this long (or a quarter of the timeout, if less), the probe checks on a
# second connection whether the port speaks TLS instead, while it keeps waiting.
TLS_SNIFF_AFTER_SECONDS = 1.0
# How long after the deadline the module waits for a port's thread to hand in its own verdict.
DEADLINE_GRACE_SECONDS = 0.5
REDACTED = "********"


class Deadline:
    def __init__(self, seconds):
        self.start = time.monotonic()
        self.end = self.start + seconds

    def remaining(self):
        return max(0.0, self.end - time.monotonic())

    def elapsed(self):
        return time.monotonic() - self.start


class ProbeStop(Exception):
    """The probe of one port stops here: a failure class, what was met, optionally a hint of its own."""

    def __init__(self, error_class, reply, hint=None):
        super().__init__(reply)
        self.error_class = error_class
        self.reply = reply
        self.hint = hint


class Progress:
    """What one port's probe has got to; read by the main thread when the deadline passes."""

    def __init__(self):
        self.stage = "connect"
        self.resolving = True
        self.sockets = []

    def close_sockets(self):
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass


# Input


def parse_address(text):
    """('host', port) from 'host:port' or '[v6]:port'; None when it is not that."""
    text = (text or "").strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            return None
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


def check_connect_to(value):
    """(problem or None, {port: (host, port)})."""
    routes = {}
    for key, target in (value or {}).items():
        key_text = str(key).strip()
        if not key_text.isdigit() or not 1 <= int(key_text) <= 65535:
            return ("connect_to keys must be port numbers between 1 and 65535; got %r." % (key,)), {}
        address = parse_address(target if isinstance(target, str) else None)
        if address is None:
            return ("connect_to[%s] must be an address:port such as 127.0.0.1:2525 or [::1]:2525; got %r."
                    % (key_text, target)), {}
        routes[int(key_text)] = address
    return None, routes


def validate(params):
    """The first problem in the input (a sentence naming the parameter), or None."""
    ports = params["ports"] or []
    duplicates = sorted(port for port in set(ports) if ports.count(port) > 1)
    problem = first_problem(
        check_smtp_host("host", params["host"]),
        "ports must list at least one port." if not ports else None,
        "ports lists %s more than once." % ", ".join(str(port) for port in duplicates) if duplicates else None,
        *[check_range("ports", port, 1, 65535) for port in ports],
        *[check_range("implicit_tls_ports", port, 1, 65535) for port in params["implicit_tls_ports"] or []],
        check_not_empty("username", params["username"]),
        check_not_empty("password", params["password"]),
        check_email("sender", params["sender"]),
        check_email("recipient", params["recipient"]),
        check_range("timeout", params["timeout"], 1, 3600),
    )
    if problem:
        return problem
    if params["ca_path"] and not os.path.exists(params["ca_path"]):
        return "ca_path %s does not exist." % params["ca_path"]
    return check_connect_to(params["connect_to"])[0]


def credential_problem(params):
    """Whitespace around a credential: found before any connection; never quotes the password."""
    return first_problem(
        check_no_surrounding_whitespace("username", params["username"]),
        check_no_surrounding_whitespace("password", params["password"], secret=True),
    )


# Secrets


class Redactor:
    def __init__(self, username, password):
        secrets = []
        if password:
            secrets.append(password)
            for blob in (password, "\0%s\0%s" % (username or "", password), "%s\0%s\0%s" % (username or "", username or "", password)):
                secrets.append(base64.b64encode(blob.encode("utf-8")).decode("ascii"))
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text):
        if text is None:
            return None
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


# One port


def reply_text(code, message):
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    message = (message or "").strip()
    return ("%s %s" % (code, message)).strip() if code not in (None, -1) else message


class PortProbe:
    """The conversation with one port, as Supabase Auth's mailer would have it."""

    def __init__(self, spec, port, deadline, progress):
        self.spec = spec
        self.port = port
        self.deadline = deadline
        self.progress = progress
        self.implicit = port in spec["implicit_tls_ports"]
        self.target = spec["connect_to"].get(port, (spec["host"], port))
        self.result = {
            "port": port, "ok": False, "stage": "connect", "tls": None, "auth_mechanism": None,
            "sent": False, "connected_to": None, "error_class": None, "hint": None, "reply": None,
            "elapsed": None,
        }
        self.smtp = None
        self.sockaddr = None
        self.last_reply = None

    # plumbing

    def stage(self, name):
        self.result["stage"] = name
        self.progress.stage = name

    def arm(self, what):
        """Give the next socket operation what is left of the time, or stop when nothing is."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise ProbeStop("connect-timeout", "No answer %s within the %d s timeout." % (what, self.spec["timeout"]))
        if self.smtp is not None and self.smtp.sock is not None:
            self.smtp.sock.settimeout(remaining)
        return remaining

    def tls_context(self, verify=True):
        if verify and self.spec["validate_certs"]:
            context = ssl.create_default_context()
            ca_path = self.spec["ca_path"]
            if ca_path:
                if os.path.isdir(ca_path):
                    context.load_verify_locations(capath=ca_path)
                else:
                    context.load_verify_locations(cafile=ca_path)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def tls_failure(self, error, during):
        """Stop for a failed TLS handshake: certificate, timeout, or the port not speaking TLS."""
        if isinstance(error, ssl.SSLCertVerificationError):
            detail = getattr(error, "verify_message", None) or str(error)
            raise ProbeStop("tls-certificate", "TLS certificate of %s not accepted (%s): %s"
                            % (self.spec["host"], during, detail))
        if isinstance(error, socket.timeout):
            raise ProbeStop("connect-timeout", "No TLS answer (%s) within the %d s timeout." % (during, self.spec["timeout"]))
        reason = getattr(error, "reason", None) or str(error) or error.__class__.__name__
        raise ProbeStop("tls-mismatch", "TLS handshake failed (%s): %s" % (during, reason))

    # steps

    def connect(self):
        self.stage("connect")
        host, port = self.target
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise ProbeStop("dns", "%s does not resolve: %s" % (host, error.strerror or error))
        except UnicodeError as error:
            raise ProbeStop("dns", "%s is not a valid host name: %s" % (host, error))
        self.progress.resolving = False
        last_error = (None, OSError("no address for %s" % host))
        for family, kind, proto, _canonname, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            self.progress.sockets.append(sock)
            try:
                sock.settimeout(self.arm("to the TCP connection"))
                sock.connect(sockaddr)
            except socket.timeout:
                sock.close()
                raise ProbeStop("connect-timeout", "No TCP answer from %s within the %d s timeout."
                                % (format_address(sockaddr), self.spec["timeout"]))
            except OSError as error:
                sock.close()
                last_error = (sockaddr, error)
                continue
            self.sockaddr = sockaddr
            self.result["connected_to"] = format_address(sockaddr)
            return sock
        sockaddr, error = last_error
        where = format_address(sockaddr) if sockaddr else host
        if isinstance(error, ConnectionRefusedError):
            raise ProbeStop("connection-refused", "Connection refused by %s." % where)
        text = "%s: %s" % (where, error.strerror or error)
        raise ProbeStop(classify_failure(text)[0], text)

    def fresh_connection(self, timeout):
        sock = socket.socket(self.sockaddr_family(), socket.SOCK_STREAM)
        self.progress.sockets.append(sock)
        sock.settimeout(timeout)
        sock.connect(self.sockaddr)
        return sock

    def sockaddr_family(self):
        return socket.AF_INET6 if len(self.sockaddr) == 4 else socket.AF_INET

    def sniff_tls(self):
        """Whether the port completes a TLS handshake on a second connection (certificate unchecked)."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            return False
        try:
            sock = self.fresh_connection(remaining)
            with self.tls_context(verify=False).wrap_socket(sock, server_hostname=self.spec["host"]):
                return True
        except (OSError, ValueError):
            return False

    def sniff_plain_greeting(self):
        """The first line the port sends in plain text on a second connection, or None."""
        remaining = min(self.deadline.remaining(), 2.0)
        if remaining <= 0:
            return None
        try:
            sock = self.fresh_connection(remaining)
            try:
                data = sock.recv(512)
            finally:
                sock.close()
        except OSError:
            return None
        line = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        return line if line[:3].isdigit() else None

    def start_implicit_tls(self, sock):
        self.stage("tls")
        try:
            sock.settimeout(self.arm("to the TLS handshake"))
            tls_sock = self.tls_context().wrap_socket(sock, server_hostname=self.spec["host"])
        except (ssl.SSLError, OSError) as error:
            if isinstance(error, (ssl.SSLCertVerificationError, socket.timeout)):
                self.tls_failure(error, "implicit TLS")
            greeting = self.sniff_plain_greeting()
            if greeting:
                if self.port == SUPABASE_IMPLICIT_TLS_PORT:
                    hint = ("Port 465 answers in plain SMTP, but Supabase Auth always starts TLS at once on 465, so this "
                            "relay's 465 cannot work: use its STARTTLS port (587).")
                else:
                    hint = ("Port %d answers in plain SMTP: remove it from implicit_tls_ports. Supabase Auth talks plain "
                            "SMTP (then STARTTLS) to every port but 465." % self.port)
                raise ProbeStop("tls-mismatch", "TLS handshake failed: the port answers in plain text (%s)." % greeting, hint)
            self.tls_failure(error, "implicit TLS")
        self.progress.sockets.append(tls_sock)
        self.result["tls"] = "implicit"
        return tls_sock

    def wait_for_greeting(self, sock):
        """True once the plain socket has something to read; checks for a TLS port if it stays silent."""
        connected = time.monotonic()
        sniff_after = min(TLS_SNIFF_AFTER_SECONDS, self.spec["timeout"] / 4.0)
        sniffed = False
        while True:
            remaining = self.deadline.remaining()
            if remaining <= 0:
                return False
            waited = time.monotonic() - connected
            if not sniffed and waited >= sniff_after:
                sniffed = True
                if self.sniff_tls():
                    if self.port == SUPABASE_IMPLICIT_TLS_PORT:
                        hint = ("Port 465 speaks implicit TLS, and Supabase Auth uses implicit TLS on 465: keep 465 in "
                                "implicit_tls_ports (it is there by default).")
                    else:
                        hint = ("Port %d expects TLS from the first byte (implicit TLS), but Supabase Auth starts TLS at "
                                "once only on 465; on %d it talks plain SMTP and waits for a greeting that never comes. "
                                "Use 465, or a STARTTLS port such as 587." % (self.port, self.port))
                    raise ProbeStop("tls-mismatch", "No SMTP greeting in plain text, but the port completes a TLS "
                                    "handshake: it expects implicit TLS.", hint)
                continue
            wait_for = remaining if sniffed else min(remaining, sniff_after - waited)
            readable, _writable, _errored = select.select([sock], [], [], max(0.0, wait_for))
            if readable:
                return True

    def greet(self, sock):
        self.stage("ehlo")
        smtp = smtplib.SMTP(local_hostname=EHLO_NAME)
        smtp.sock = sock
        smtp._host = self.spec["host"]  # the name STARTTLS checks the certificate against
        self.smtp = smtp
        if not self.implicit and not self.wait_for_greeting(sock):
            raise ProbeStop("connect-timeout", "Connected, but no SMTP greeting within the %d s timeout (and no TLS "
                            "handshake either)." % self.spec["timeout"])
        self.arm("with the SMTP greeting")
        code, message = self.read_reply(smtp.getreply)
        self.last_reply = reply_text(code, message)
        if code != 220:
            error_class, _hint = classify_smtp_reply("connect", code, self.last_reply)
            raise ProbeStop(error_class, self.last_reply)

    def read_reply(self, call, *args):
        try:
            return call(*args)
        except smtplib.SMTPResponseException:
            raise  # a refusal with a code (DATA's): the caller classifies it
        except smtplib.SMTPServerDisconnected as error:
            if "timed out" in str(error):
                raise ProbeStop("connect-timeout", "No answer from the server within the %d s timeout (%s)."
                                % (self.spec["timeout"], self.result["stage"]))
            raise ProbeStop("relay-refused", "The server closed the connection (%s)." % self.result["stage"])
        except socket.timeout:
            raise ProbeStop("connect-timeout", "No answer from the server within the %d s timeout (%s)."
                            % (self.spec["timeout"], self.result["stage"]))
        except (ssl.SSLError, OSError) as error:
            raise ProbeStop("relay-refused", "Connection lost (%s): %s" % (self.result["stage"], error))

    def hello(self):
        self.stage("ehlo")
        self.arm("to EHLO")
        code, message = self.read_reply(self.smtp.ehlo)
        if code != 250:
            self.arm("to HELO")
            code, message = self.read_reply(self.smtp.helo)
            self.smtp.esmtp_features = {}
        self.last_reply = reply_text(code, message)
        if code != 250:
            error_class, _hint = classify_smtp_reply("ehlo", code, self.last_reply)
            raise ProbeStop(error_class, self.last_reply)

    def offered(self):
        features = self.smtp.esmtp_features
        return ", ".join(sorted(" ".join([name.upper()] + value.split()) for name, value in features.items())) or "nothing"

    def starttls(self):
        self.stage("tls")
        if not self.smtp.has_extn("starttls"):
            raise ProbeStop("starttls-unavailable", "EHLO offered no STARTTLS (it offered: %s), so no credentials were "
                            "sent; Supabase Auth would stop with \"unencrypted connection\"." % self.offered())
        self.arm("to STARTTLS")
        try:
            code, message = self.smtp.starttls(context=self.tls_context())
        except smtplib.SMTPResponseException as error:
            self.last_reply = reply_text(error.smtp_code, error.smtp_error)
            raise ProbeStop(classify_smtp_reply("tls", error.smtp_code, self.last_reply)[0],
                            "STARTTLS refused: %s" % self.last_reply)
        except smtplib.SMTPServerDisconnected:
            raise ProbeStop("relay-refused", "The server closed the connection at STARTTLS.")
        except (ssl.SSLError, OSError) as error:  # the handshake after STARTTLS
            self.tls_failure(error, "after STARTTLS")
        self.progress.sockets.append(self.smtp.sock)
        self.result["tls"] = "starttls"
        self.last_reply = reply_text(code, message)
        self.hello()

    def mechanism(self):
        offered = self.smtp.esmtp_features.get("auth", "").upper().split()
        if "CRAM-MD5" in offered:
            return "CRAM-MD5"
        if "LOGIN" in offered and "PLAIN" not in offered:
            return "LOGIN"
        return "PLAIN"

    def authenticate(self):
        self.stage("auth")
        if not self.smtp.has_extn("auth"):
            raise ProbeStop("auth-unavailable", "EHLO offered no AUTH (it offered: %s)." % self.offered())
        username, password = self.spec["username"], self.spec["password"]
        mechanism = self.mechanism()
        self.result["auth_mechanism"] = mechanism
        self.arm("to AUTH")
        if mechanism == "PLAIN":
            blob = b64("\0%s\0%s" % (username, password))
            code, message = self.read_reply(self.smtp.docmd, "AUTH", "PLAIN " + blob)
        elif mechanism == "LOGIN":
            code, message = self.read_reply(self.smtp.docmd, "AUTH", "LOGIN")
            for answer in (username, password):
                if code != 334:
                    break
                self.arm("to AUTH LOGIN")
                code, message = self.read_reply(self.smtp.docmd, b64(answer))
        else:
            code, message = self.read_reply(self.smtp.docmd, "AUTH", "CRAM-MD5")
            if code == 334:
                challenge = base64.b64decode(message)
                digest = hmac.new(password.encode("utf-8"), challenge, hashlib.md5).hexdigest()
                self.arm("to AUTH CRAM-MD5")
                code, message = self.read_reply(self.smtp.docmd, b64("%s %s" % (username, digest)))
        if code == 334:  # a challenge this client does not answer: cancel, as Go does
            self.arm("to the AUTH cancel")
            code, message = self.read_reply(self.smtp.docmd, "*")
        self.last_reply = reply_text(code, message)
        if code != 235:
            error_class, _hint = classify_smtp_reply("auth", code, self.last_reply)
            raise ProbeStop(error_class, self.last_reply)

    def envelope(self):
        self.stage("mail")
        self.arm("to MAIL FROM")
        code, message = self.read_reply(self.smtp.mail, self.spec["sender"])
        self.last_reply = reply_text(code, message)
        if code != 250:
            error_class, _hint = classify_smtp_reply("mail", code, self.last_reply)
            raise ProbeStop(error_class, self.last_reply)
        if not self.spec["recipient"]:
            return
        self.stage("rcpt")
        self.arm("to RCPT TO")
        code, message = self.read_reply(self.smtp.rcpt, self.spec["recipient"])
        self.last_reply = reply_text(code, message)
        if code not in (250, 251):
            error_class, _hint = classify_smtp_reply("rcpt", code, self.last_reply)
            raise ProbeStop(error_class, self.last_reply)

    def send_message(self):
        self.stage("data")
        self.arm("to DATA")
        try:
            code, message = self.read_reply(self.smtp.data, self.test_message())
        except smtplib.SMTPDataError as error:
            code, message = error.smtp_code, error.smtp_error
        self.last_reply = reply_text(code, message)
        if code != 250:
            error_class, _hint = classify_smtp_reply("data", code, self.last_reply)
            raise ProbeStop(error_class, self.last_reply)
        self.result["sent"] = True

    def test_message(self):
        spec = self.spec
        sender, recipient = spec["sender"], spec["recipient"]
        lines = [
            "From: %s" % sender,
            "To: %s" % recipient,
            "Subject: smtp_check test mail via %s port %d" % (spec["host"], self.port),
            "Date: %s" % formatdate(usegmt=True),
            "Message-ID: %s" % make_msgid("smtp-check", domain=sender.rpartition("@")[2]),
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 7bit",
            "Auto-Submitted: auto-generated",
            "",
            "A test mail from the karto.supabase_mail smtp_check Ansible module.",
            "%s accepted it on port %d (%s TLS), the way Supabase Auth will send its mail."
            % (spec["host"], self.port, self.result["tls"]),
            "",
        ]
        return "\r\n".join(lines).encode("utf-8")

    def reset(self):
        self.arm("to RSET")
        self.read_reply(self.smtp.rset)

    def quit(self):
        if self.smtp is None or self.smtp.sock is None:
            return
        remaining = min(self.deadline.remaining(), 1.0)
        try:
            if remaining > 0:
                self.smtp.sock.settimeout(remaining)
                self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            self.smtp.close()

    # the whole conversation

    def run(self):
        spec = self.spec
        try:
            sock = self.connect()
            if self.implicit:
                sock = self.start_implicit_tls(sock)
            self.greet(sock)
            self.hello()
            if not self.implicit:
                self.starttls()
            if spec["username"] is not None:
                self.authenticate()
            if spec["sender"]:
                self.envelope()
                if spec["send"] and spec["recipient"] and not spec["check_mode"]:
                    self.send_message()
                else:
                    self.reset()
            self.result["ok"] = True
        except ProbeStop as stop:
            self.result["error_class"] = stop.error_class
            self.result["hint"] = stop.hint or hint_for(stop.error_class)
            self.last_reply = stop.reply
        finally:
            self.quit()
            self.progress.close_sockets()
        self.result["reply"] = spec["redact"](self.last_reply)
        self.result["elapsed"] = round(self.deadline.elapsed(), 3)
        return self.result


def b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def format_address(sockaddr):
    host, port = sockaddr[0], sockaddr[1]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def run_port(future, spec, port, deadline, progress):
    try:
        future.set_result(PortProbe(spec, port, deadline, progress).run())
    except Exception as error:  # pylint: disable=broad-exception-caught
        # A bug or an unforeseen error: report it for this port rather than lose the others.
        future.set_exception(error)


def unfinished_result(spec, port, progress, deadline):
    """The verdict for a port whose probe did not hand one in by the deadline."""
    if progress.resolving:
        error_class = "dns"
        name = spec["connect_to"].get(port, (spec["host"],))[0]
        reply = "%s did not resolve within the %d s timeout." % (name, spec["timeout"])
    else:
        error_class = "connect-timeout"
        reply = "No answer within the %d s timeout (%s)." % (spec["timeout"], progress.stage)
    return {
        "port": port, "ok": False, "stage": progress.stage, "tls": None, "auth_mechanism": None, "sent": False,
        "connected_to": None, "error_class": error_class, "hint": hint_for(error_class), "reply": reply,
        "elapsed": round(deadline.elapsed(), 3),
    }


def probe_all(spec):
    """Probe every port at the same time; one result per port, in the order of spec['ports']."""
    deadline = Deadline(spec["timeout"])
    jobs = []
    for port in spec["ports"]:
        future, progress = Future(), Progress()
        # Daemon threads: a thread stuck in a DNS lookup past the deadline must not hold the
        # module's exit (concurrent.futures' pool threads are joined at exit).
        thread = threading.Thread(target=run_port, args=(future, spec, port, deadline, progress),
                                  name="smtp_check-%d" % port, daemon=True)
        thread.start()
        jobs.append((port, future, progress))
    wait([future for _port, future, _progress in jobs], timeout=deadline.remaining() + DEADLINE_GRACE_SECONDS)
    results = []
    for port, future, progress in jobs:
        if not future.done():
            progress.close_sockets()
            results.append(unfinished_result(spec, port, progress, deadline))
        elif future.exception() is not None:
            error = future.exception()
            results.append({
                "port": port, "ok": False, "stage": progress.stage, "tls": None, "auth_mechanism": None,
                "sent": False, "connected_to": None, "error_class": "unknown", "hint": hint_for("unknown"),
                "reply": spec["redact"]("%s: %s" % (error.__class__.__name__, error)),
                "elapsed": round(deadline.elapsed(), 3),
            })
        else:
            results.append(future.result())
    return results, round(deadline.elapsed(), 3)


def preference(ports):
    return [port for port in PREFERRED_PORTS if port in ports] + [port for port in ports if port not in PREFERRED_PORTS]


def recommended_port(results):
    working = {result["port"] for result in results if result["ok"]}
    return next((port for port in preference([result["port"] for result in results]) if port in working), None)


def best_failure(results):
    """The port that got furthest (ties: the preferred one)."""
    order = preference([result["port"] for result in results])
    return max(results, key=lambda result: (STAGES.index(result["stage"]) if result["stage"] in STAGES else -1,
                                            -order.index(result["port"])))


def whitespace_results(ports, problem):
    return [{
        "port": port, "ok": False, "stage": "connect", "tls": None, "auth_mechanism": None, "sent": False,
        "connected_to": None, "error_class": "whitespace-in-credential", "hint": problem, "reply": None,
        "elapsed": 0.0,
    } for port in ports]


def tls_warnings(ports, implicit_tls_ports):
    warnings = []
    for port in ports:
        if port in implicit_tls_ports and port != SUPABASE_IMPLICIT_TLS_PORT:
            warnings.append("implicit_tls_ports has %d: Supabase Auth uses implicit TLS on 465 only and would talk plain "
                            "SMTP (then STARTTLS) to port %d, so what this probe finds there does not hold for "
                            "Supabase." % (port, port))
    if SUPABASE_IMPLICIT_TLS_PORT in ports and SUPABASE_IMPLICIT_TLS_PORT not in implicit_tls_ports:
        warnings.append("implicit_tls_ports lacks 465: Supabase Auth always uses implicit TLS on 465, so a plain probe "
                        "of 465 does not show what Supabase will meet.")
    return warnings


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            ports=dict(type="list", elements="int", default=[465, 587]),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            sender=dict(type="str"),
            recipient=dict(type="str"),
            send=dict(type="bool", default=False),
            timeout=dict(type="int", default=10),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path", fallback=(env_fallback, ["SMTP_CHECK_CA_PATH"])),
            connect_to=dict(type="dict", fallback=(env_fallback, ["SMTP_CHECK_CONNECT_TO"])),
            implicit_tls_ports=dict(type="list", elements="int", default=[465]),
            fail_on_error=dict(type="bool", default=True),
        ),
        required_together=[("username", "password")],
        required_by={"recipient": "sender"},
        required_if=[("send", True, ("sender", "recipient"))],
        supports_check_mode=True,
    )
    params = module.params
    problem = validate(params)
    if problem:
        module.fail_json(msg=problem)

    ports = list(params["ports"])
    for warning in tls_warnings(ports, params["implicit_tls_ports"]):
        module.warn(warning)

    spec = dict(
        host=params["host"],
        ports=ports,
        username=params["username"],
        password=params["password"],
        sender=params["sender"],
        recipient=params["recipient"],
        send=params["send"],
        check_mode=module.check_mode,
        timeout=params["timeout"],
        validate_certs=params["validate_certs"],
        ca_path=params["ca_path"],
        connect_to=check_connect_to(params["connect_to"])[1],
        implicit_tls_ports=set(params["implicit_tls_ports"]),
        redact=Redactor(params["username"], params["password"]),
    )

    whitespace = credential_problem(params)
    if whitespace:
        results, elapsed = whitespace_results(ports, whitespace), 0.0
    else:
        results, elapsed = probe_all(spec)

    recommended = recommended_port(results)
    outcome = dict(changed=False, ok=recommended is not None, recommended_port=recommended, results=results,
                   elapsed=elapsed)
    if recommended is None and params["fail_on_error"]:
        if whitespace:
            message = "whitespace-in-credential: %s Nothing was sent to %s." % (whitespace, params["host"])
        else:
            best = best_failure(results)
            detail = " (%s)" % best["reply"] if best["reply"] else ""
            message = ("No port of %s works the way Supabase Auth would use it. Port %d got furthest and stopped at %s "
                       "with %s%s. %s" % (params["host"], best["port"], best["stage"], best["error_class"], detail,
                                          best["hint"]))
        module.fail_json(msg=message, **outcome)
    module.exit_json(**outcome)


def main():
    run_module()


if __name__ == "__main__":
    main()
