# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: the SMTP probe behind the smtp_check module.

Connects to each candidate port the way Supabase Auth's mailer (gomail) does, all ports at once
within one deadline, and reports per port how far it got and why it stopped.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import select
import smtplib
import socket
import ssl
import threading
import time
from concurrent.futures import Future, wait
from email.utils import formatdate, make_msgid

from ansible_collections.karto.supabase_mail.plugins.module_utils._diagnose import (
    STAGES,
    classify_failure,
    classify_smtp_reply,
    hint_for,
    timeout_class,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._secrets import Redactor
from ansible_collections.karto.supabase_mail.plugins.module_utils._tls import (
    retry_with_full_store,
    unverified_context,
    verifying_context,
)

SUPABASE_IMPLICIT_TLS_PORT = 465
PREFERRED_PORTS = (465, 587)
EHLO_NAME = "localhost"  # Go's net/smtp default; Supabase uses its API host name
# Without a greeting after this long (or a quarter of the timeout, if less), the probe checks on a
# second connection whether the port speaks TLS instead, while it keeps waiting.
TLS_SNIFF_AFTER_SECONDS = 1.0
# How long after the deadline the module waits for a port's thread to hand in its own verdict.
DEADLINE_GRACE_SECONDS = 0.5
# OpenSSL reasons that mean the peer speaks TLS but no session could be agreed (an alert from the
# server, or no common protocol version or cipher): the port is right, the server's TLS is not.
_TLS_NO_AGREEMENT = ("UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE",
                     "NO_SUITABLE_SIGNATURE_ALGORITHM", "VERSION_TOO_LOW", "VERSION_TOO_HIGH")


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


class FullStoreNeeded(Exception):
    """A certificate the system's hashed CA directory alone did not trust: ask the full store (_tls)."""


class AuthGate:
    """One login at a time across the ports of one probe, and none after a refusal.

    Mail servers delay the answer to a failed login and then slow down every further login from
    the same address (Dovecot's auth_failure_delay and auth penalty), so the same wrong password
    tried on two ports at once turns a quick 535 into timeouts. The first refusal is the verdict
    for every port."""

    def __init__(self):
        self.lock = threading.Lock()
        self.refusal = None  # (error_class, port, reply) of the first refused login

    def acquire(self, timeout):
        return self.lock.acquire(timeout=max(0.0, timeout))


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


# Secrets


class SmtpRedactor(Redactor):
    """Masks the password and the base64 forms it takes in AUTH PLAIN and LOGIN exchanges."""

    def __init__(self, username, password):
        super().__init__()
        if password:
            user = username or ""
            for blob in (password, "\0%s\0%s" % (user, password), "%s\0%s\0%s" % (user, user, password)):
                self.add(base64.b64encode(blob.encode("utf-8")).decode("ascii"))
            self.add(password)


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
            "elapsed": None, "rcpt_to": None,
        }
        self.smtp = None
        self.sockaddr = None
        self.last_reply = None
        self.unjudged = None  # the refusal of RCPT TO <sender> when it said nothing about the sender
        self.full_store = False  # see _tls: the first handshake trusts the system's hashed CA directory
        self.lazy_trust = False

    # plumbing

    def stage(self, name):
        self.result["stage"] = name
        self.progress.stage = name

    def arm(self, what):
        """Give the next socket operation what is left of the time, or stop when nothing is."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise ProbeStop(timeout_class(self.result["stage"]),
                            "No answer %s within the %d s timeout." % (what, self.spec["timeout"]))
        if self.smtp is not None and self.smtp.sock is not None:
            self.smtp.sock.settimeout(remaining)
        return remaining

    def tls_context(self, verify=True):
        if verify and self.spec["validate_certs"]:
            context, self.lazy_trust = verifying_context(self.spec["ca_path"], full_store=self.full_store)
        else:
            context = unverified_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def tls_failure(self, error, during):
        """Stop for a failed TLS handshake: certificate, timeout, an alert, or the port not speaking TLS."""
        if isinstance(error, ssl.SSLCertVerificationError):
            detail = getattr(error, "verify_message", None) or str(error)
            raise ProbeStop("tls-certificate", "TLS certificate of %s not accepted (%s): %s"
                            % (self.spec["host"], during, detail))
        if isinstance(error, socket.timeout):
            raise ProbeStop("tls-timeout", "No TLS answer (%s) within the %d s timeout." % (during, self.spec["timeout"]))
        reason = getattr(error, "reason", None) or str(error) or error.__class__.__name__
        if tls_disagreement(error):
            raise ProbeStop("tls-handshake", "TLS handshake failed (%s), the server speaks TLS but refused the session: %s"
                            % (during, reason))
        if during == "implicit TLS" and self.port == SUPABASE_IMPLICIT_TLS_PORT:
            hint = ("Port 465 neither completed a TLS handshake nor greeted in plain text. Supabase Auth starts TLS at "
                    "once on 465: check this host really serves implicit TLS on 465, or use its STARTTLS port (587).")
        elif during == "implicit TLS":
            hint = ("Port %d did not complete a TLS handshake: if it speaks plain SMTP, remove it from "
                    "implicit_tls_ports (Supabase Auth starts TLS at once only on 465)." % self.port)
        else:
            hint = ("The server offered STARTTLS on port %d but the handshake after it failed: the server's TLS is "
                    "broken on this port; try its implicit-TLS port 465." % self.port)
        raise ProbeStop("tls-mismatch", "TLS handshake failed (%s): %s" % (during, reason), hint)

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
            if retry_with_full_store(error, self.lazy_trust):
                raise FullStoreNeeded()
            # A certificate, a timeout or an alert: the port speaks TLS, no need to look for a plain greeting.
            if isinstance(error, (ssl.SSLCertVerificationError, socket.timeout)) or tls_disagreement(error):
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
        self.stage("greeting")
        smtp = smtplib.SMTP(local_hostname=EHLO_NAME)
        smtp.sock = sock
        smtp._host = self.spec["host"]  # the name STARTTLS checks the certificate against
        self.smtp = smtp
        if not self.implicit and not self.wait_for_greeting(sock):
            raise ProbeStop("greeting-timeout", "Connected, but no SMTP greeting within the %d s timeout (and no TLS "
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
                raise ProbeStop(timeout_class(self.result["stage"]), "No answer from the server within the %d s "
                                "timeout (%s)." % (self.spec["timeout"], self.result["stage"]))
            raise ProbeStop("relay-refused", "The server closed the connection (%s)." % self.result["stage"])
        except socket.timeout:
            raise ProbeStop(timeout_class(self.result["stage"]), "No answer from the server within the %d s timeout (%s)."
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
            if retry_with_full_store(error, self.lazy_trust):
                raise FullStoreNeeded()
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
        gate = self.spec["auth_gate"]
        if not gate.acquire(self.deadline.remaining()):
            raise ProbeStop("auth-timeout", "No time left for AUTH within the %d s timeout: another port's login "
                            "took it." % self.spec["timeout"])
        try:
            if gate.refusal:
                error_class, port, reply = gate.refusal
                raise ProbeStop(error_class, "AUTH not tried: the same login was just refused on port %d (%s); "
                                "another try would only make the server slow down logins further." % (port, reply))
            try:
                self.login()
            except ProbeStop as stop:
                if stop.error_class in ("auth-rejected", "auth-timeout", "auth-temporary"):
                    gate.refusal = (stop.error_class, self.port, stop.reply)
                raise
        finally:
            gate.lock.release()

    def login(self):
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
        logged_in = self.spec["username"] is not None
        self.stage("mail")
        self.arm("to MAIL FROM")
        code, message = self.read_reply(self.smtp.mail, self.spec["sender"])
        self.last_reply = reply_text(code, message)
        if code != 250:
            error_class, _hint = classify_smtp_reply("mail", code, self.last_reply, logged_in)
            raise ProbeStop(error_class, self.last_reply)
        # Many servers judge the sender only at RCPT TO (Postfix's smtpd_delay_reject=yes, its default,
        # applies smtpd_sender_restrictions there). Without a recipient the sender's own address is
        # used, and the transaction is then reset: nothing is delivered.
        recipient = self.spec["recipient"] or self.spec["sender"]
        self.result["rcpt_to"] = recipient
        self.stage("rcpt")
        self.arm("to RCPT TO")
        code, message = self.read_reply(self.smtp.rcpt, recipient)
        self.last_reply = reply_text(code, message)
        if code in (250, 251):
            return
        error_class, _hint = classify_smtp_reply("rcpt", code, self.last_reply, logged_in)
        if error_class == "recipient-rejected" and not self.spec["recipient"]:
            # A refusal of the sender's own address as a recipient says nothing about the sender.
            self.unjudged = self.last_reply
            return
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

    def converse(self):
        spec = self.spec
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

    def start_over(self):
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None
        self.progress.close_sockets()
        self.progress.sockets.clear()
        self.full_store = True
        self.result.update(stage="connect", tls=None, connected_to=None)

    def run(self):
        spec = self.spec
        try:
            try:
                self.converse()
            except FullStoreNeeded:
                # Not trusted by the hashed CA directory alone: the whole store decides, on a new
                # connection (nothing was sent yet but EHLO and STARTTLS).
                self.start_over()
                self.converse()
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
        if self.unjudged and self.result["ok"]:
            self.spec["warnings"].append(
                "port %d: the server refused the sender's own address as a recipient (%s), so its verdict on the "
                "sender could not be seen; give recipient to check it." % (self.port, spec["redact"](self.unjudged)))
        return self.result


def tls_disagreement(error):
    """Whether a TLS failure shows a peer that speaks TLS but agreed on no session (an alert, no common
    version or cipher), as opposed to a peer that does not speak TLS at all."""
    if not isinstance(error, ssl.SSLError) or isinstance(error, ssl.SSLCertVerificationError):
        return False
    reason = str(getattr(error, "reason", None) or "").upper()
    return "ALERT" in reason or reason in _TLS_NO_AGREEMENT


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
        error_class = timeout_class(progress.stage)
        reply = "No answer within the %d s timeout (%s)." % (spec["timeout"], progress.stage)
    return {
        "port": port, "ok": False, "stage": progress.stage, "tls": None, "auth_mechanism": None, "sent": False,
        "connected_to": None, "error_class": error_class, "hint": hint_for(error_class), "reply": reply,
        "elapsed": round(deadline.elapsed(), 3), "rcpt_to": None,
    }


def probe_all(spec):
    """Probe every port at the same time; one result per port, in the order of spec['ports']."""
    deadline = Deadline(spec["timeout"])
    spec = dict(spec, auth_gate=AuthGate())
    spec.setdefault("warnings", [])
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
                "elapsed": round(deadline.elapsed(), 3), "rcpt_to": None,
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
        "elapsed": 0.0, "rcpt_to": None,
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
