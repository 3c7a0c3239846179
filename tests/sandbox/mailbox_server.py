"""The mailbox's own SMTP server (Rambler's smtp.rambler.ru) played by the real thing: a private
Postfix instance with Dovecot SASL, both Debian's packages (`make mail-server` installs them), run
from the sandbox's state directory on 127.0.0.1.

Why real servers: the `mailbox` provider sends through the mailbox's own server, and an emulator
written by the hands that wrote the client would share the client's assumptions. What Postfix and
Dovecot answer here (reply codes and texts, the stage at which a sender is refused, the failed-login
delay and the auth penalty) is their own; only the configuration is the sandbox's, and README.md in
this folder ("Mailbox server") says what it sets and why.

Per sandbox: one Postfix (own config and queue directories; the master process is a child of the
sandbox, no chroot), one Dovecot (auth only; own base_dir), a small SMTP sink that takes what Postfix
relays onward and puts it in the SMTP relay's inbox (`sandbox.inbox()`), and the TCP link Postfix's
SASL client reaches Dovecot through (where the knob `auth_available` cuts it). Listeners: an
implicit-TLS port (465) and a STARTTLS port (587), both with the sandbox's certificate.

The servers never outlive the sandbox: stop() ends them, and a watchdog ends them if the sandbox
dies without stopping (see _start_watchdog).
"""

import asyncio
import base64
import email
import email.policy
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from aiosmtpd.smtp import SMTP

from .core import (IMPLICIT_TLS, LOCALHOST, RCPT_TO, STARTTLS, HttpError, RelayBackend, Response, Service,
                   control_route, json_object)

POSTFIX = Path("/usr/sbin/postfix")
POSTMAP = Path("/usr/sbin/postmap")
POSTCONF = Path("/usr/sbin/postconf")
DOVECOT = Path("/usr/sbin/dovecot")
SH = Path("/bin/sh")
INSTALL_HINT = "run `make mail-server` (tests/tools/install-mail-server.sh) to install Debian's postfix and dovecot-core"

# Rambler's published SMTP server (../shared/reference/sendgrid.md section 6, chatmail/provider-db
# rambler.ru: smtp.rambler.ru:465 SSL; some client configs use 587 with STARTTLS). Every Rambler
# domain (rambler.ru, ro.ru, lenta.ru, autorambler.ru, myrambler.ru, rambler.ua) uses this host.
MAILBOX_HOSTS = ("smtp.rambler.ru",)
PUBLISHED_PORTS = {465: IMPLICIT_TLS, 587: STARTTLS}
# The listener with an outdated TLS setup (TLS 1.1 at most): reached only through smtp_check's connect_to.
LEGACY_TLS = "legacy_tls"
# A documentation address standing in for smtp.rambler.ru's in Go's dial errors.
MAILBOX_ADDRESS = "203.0.113.45"

# The Postfix greeting and EHLO name: the server stands for a mailbox provider's host, but names none.
MYHOSTNAME = "mailbox.sandbox.localhost"

# The demo mailbox (--seed default): the sender of the docs and `make demo`.
DEMO_MAILBOX = "karto.help@ro.ru"
DEMO_MAILBOX_PASSWORD = "Karto-demo-mailbox-2f9c"

STARTUP_TIMEOUT_SECONDS = 15
STOP_TIMEOUT_SECONDS = 5
# The sink reads the Postfix log line of a relayed mail's queue id (login and listener); postlogd
# writes it asynchronously, long before delivery in practice, so this is only a safety margin.
LOG_LINE_WAIT_SECONDS = 1.0

# Postfix log: "<QUEUE ID>: client=host[ip], sasl_method=PLAIN, sasl_username=<login>" from the
# smtpd of a listener (syslog_name per listener in master.cf), e.g. "postfix/submissions/smtpd[12]:".
_CLIENT_LINE = re.compile(r" postfix/(?P<service>submissions?)/smtpd\[\d+\]: (?P<queue_id>[0-9A-F]+): client=.*?"
                          r"(?:, sasl_method=\S+, sasl_username=(?P<login>\S+))?$")
_RECEIVED_ID = re.compile(r"\bby " + re.escape(MYHOSTNAME) + r" \(Postfix\) with \S+ id (?P<queue_id>[0-9A-F]+)")
_LISTENER_BY_SYSLOG_NAME = {"submissions": IMPLICIT_TLS, "submission": STARTTLS}
_ADDRESS = re.compile(r"^[^@\s:<>]+@[^@\s:<>]+\.[^@\s:<>]+$")


@dataclass
class Mailbox:
    address: str  # the login and the only sender it may use, lower case
    password: str
    clients_enabled: bool = True  # Rambler's "access by mail clients" setting

    def as_dict(self):
        return {"address": self.address, "clients_enabled": self.clients_enabled}


def _free_port_holder():
    """A socket bound to a free 127.0.0.1 port with SO_REUSEADDR and not listening: it keeps the port
    from being handed out again while Postfix or Dovecot (which bind with SO_REUSEADDR too) take it."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind((LOCALHOST, 0))
    return holder


def _write_config(path, text):
    path.write_text(text, encoding="utf-8")
    # Postfix reads main.cf again every 300 ms while its mtime is the current second (it could be
    # in the middle of an edit): a file dated earlier is read at once.
    past = time.time() - 2
    os.utime(path, (past, past))


def _listening_ports():
    """Local ports in LISTEN state on 127.0.0.1 (from /proc/net/tcp: no connection, so the servers
    log nothing for the readiness check)."""
    ports = set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A" and address in ("0100007F", "00000000"):
                ports.add(int(port, 16))
    return ports


class _SinkHandler:
    """aiosmtpd hooks of the sink: every mail Postfix relays goes to the SMTP relay's inbox."""

    def __init__(self, server):
        self.server = server

    async def handle_DATA(self, smtp, session, envelope):
        entry = await asyncio.get_running_loop().run_in_executor(
            None, self.server.deliver, envelope.original_content or b"", envelope.mail_from, list(envelope.rcpt_tos))
        return f"250 OK id={entry['message_id']}"


class MailboxServer(Service):
    name = "mailbox_server"

    def __init__(self, context):
        super().__init__(context)
        self.lock = threading.Lock()
        # In the state directory: configuration, tables, logs (Postfix's config_directory holds only
        # root's files: `postfix check` warns about any other owner there).
        self.root = context.state_dir / "mailbox"
        self.postfix_dir = self.root / "postfix"
        self.dovecot_dir = self.root / "dovecot"
        # Made in start(), see there: the directories with the servers' sockets and locks.
        self.runtime_dir = None
        self.postfix_log = self.root / "postfix.log"
        self.dovecot_log = self.root / "dovecot.log"
        self.mailboxes = {}  # address -> Mailbox
        self.auth_available = True
        self._master = None
        self._dovecot = None
        self._watchdog = None
        self._loop = None  # the sink's and the auth link's, in one thread
        self._loop_thread = None
        self._servers = []
        self._links = set()  # open auth link connections (writers), closed in stop()
        self.sink_port = None
        self.auth_link_port = None
        self._file_stamp = 0  # last mtime given to a table file (see _touch)
        self.startup_seconds = None  # measured by start()
        # Ports are chosen now, so that the relay backend below can name them; the holders keep them
        # free until the servers listen (start()). "dovecot": Dovecot's auth listener.
        self._holders = {name: _free_port_holder() for name in (IMPLICIT_TLS, STARTTLS, LEGACY_TLS, "dovecot")}
        self.ports = {name: holder.getsockname()[1] for name, holder in self._holders.items()}
        context.relay_backends.register(RelayBackend(
            name="mailbox", hosts=MAILBOX_HOSTS, ports=dict(PUBLISHED_PORTS),
            targets={port: self.ports[mode] for port, mode in PUBLISHED_PORTS.items()},
            sender_check=RCPT_TO, address=MAILBOX_ADDRESS))

    def seed_demo(self):
        self.mailboxes[DEMO_MAILBOX] = Mailbox(DEMO_MAILBOX, DEMO_MAILBOX_PASSWORD)

    # Lifecycle

    def start(self):
        try:
            return self._start()
        except BaseException:
            self.stop()  # run_services stops only the services that started
            raise

    def _start(self):
        started = time.monotonic()
        self._check_installation()
        relay = self.context.services.get("smtp_relay")
        if relay is None or not hasattr(relay, "add_to_inbox"):
            raise RuntimeError("mailbox_server delivers into the SMTP relay's inbox: list SmtpRelay among the services")
        shutil.rmtree(self.root, ignore_errors=True)
        for folder in (self.postfix_dir, self.dovecot_dir / "passwd", self.dovecot_dir / "clients-disabled"):
            folder.mkdir(parents=True)
        # One fresh temporary folder outside the state directory (linked from it as runtime/, removed
        # by stop() or the watchdog) for Postfix's queue_directory and data_directory and Dovecot's
        # base_dir: their Unix socket paths must stay under 108 bytes, which a deep state directory
        # (pytest's) exceeds, and Postfix's master takes its lock in data_directory as mail_owner
        # (postfix), who may not traverse the state directory's parents (0700 for pytest's and
        # mkdtemp's).
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="karto-mailbox-"))
        self.runtime_dir.chmod(0o755)
        (self.runtime_dir / "queue").mkdir()
        (self.runtime_dir / "data").mkdir()
        shutil.chown(self.runtime_dir / "data", "postfix", "postfix")
        (self.root / "runtime").symlink_to(self.runtime_dir)
        self._start_loop()
        self._write_dovecot_config()
        self._write_postfix_config()
        self._write_tables()
        # `postfix check` creates the queue directories with their owners and modes (as `postfix
        # start` does before it runs the master) and fails on a broken configuration.
        self._run([str(POSTFIX), "-c", str(self.postfix_dir), "check"])
        self._dovecot = self._spawn([str(DOVECOT), "-F", "-c", str(self.dovecot_dir / "dovecot.conf")], "dovecot")
        # The master in the foreground (no -w), as `postfix start-fg` runs it, but as our own child.
        self._master = self._spawn([str(self._daemon_directory() / "master"), "-c", str(self.postfix_dir)],
                                   "postfix-master")
        self._start_watchdog()
        self._wait_listening({self.ports["dovecot"]: self._dovecot, self.ports[IMPLICIT_TLS]: self._master,
                              self.ports[STARTTLS]: self._master, self.ports[LEGACY_TLS]: self._master})
        for holder in self._holders.values():
            holder.close()
        self.startup_seconds = round(time.monotonic() - started, 3)
        return {
            "mailbox_smtp_implicit_tls_port": self.ports[IMPLICIT_TLS],
            "mailbox_smtp_starttls_port": self.ports[STARTTLS],
            "mailbox_smtp_legacy_tls_port": self.ports[LEGACY_TLS],
            "mailbox_smtp_hosts": list(MAILBOX_HOSTS),
            "mailbox_postfix_log": str(self.postfix_log),
            "mailbox_dovecot_log": str(self.dovecot_log),
        }

    def stop(self):
        if self._watchdog is not None:  # stopped here, so it signals nobody (a pid could be reused)
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog.stdin.close()
        # SIGTERM to both first (Postfix's master and Dovecot stop their children and exit; Dovecot
        # takes about a second), then wait; SIGKILL what is left.
        processes = [process for process in (self._master, self._dovecot) if process and process.poll() is None]
        for process in processes:
            process.send_signal(signal.SIGTERM)
        if self._loop is not None and self._loop_thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close_servers(), self._loop).result(STOP_TIMEOUT_SECONDS)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(STOP_TIMEOUT_SECONDS)
            if not self._loop_thread.is_alive():
                self._loop.close()
        for process in processes:
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for holder in self._holders.values():
            holder.close()
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _spawn(self, argv, name):
        with open(self.root / f"{name}.stderr", "wb") as stderr:  # early errors, before their log files
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)

    def _start_watchdog(self):
        """A shell that waits for the end of a pipe only the sandbox holds: when the sandbox process
        ends in any way (SIGKILL included, or a killed pytest with --exit-on-stdin-eof), the pipe
        closes and the watchdog sends SIGTERM to the Postfix master and Dovecot (which stop their
        children), then removes the runtime directory. A parent-death signal (prctl PR_SET_PDEATHSIG)
        would not do: the master changes its effective uid at start, which clears it."""
        self._watchdog = subprocess.Popen(
            [str(SH), "-c", 'cat >/dev/null; kill -TERM "$2" "$3" 2>/dev/null; n=0; '
                            'while kill -0 "$2" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done; '
                            'rm -rf -- "$1"',
             "mailbox-watchdog", str(self.runtime_dir), str(self._master.pid), str(self._dovecot.pid)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _check_installation(self):
        missing = [str(path) for path in (POSTFIX, POSTMAP, POSTCONF, DOVECOT) if not os.access(path, os.X_OK)]
        if missing:
            raise RuntimeError(f"mailbox_server: {', '.join(missing)} not found: {INSTALL_HINT}")
        if os.geteuid() != 0:
            # Postfix's master must run as root (it binds, then runs its daemons as mail_owner).
            raise RuntimeError("mailbox_server: the sandbox must run as root to start Postfix's master")

    def _daemon_directory(self):
        return Path(self._run([str(POSTCONF), "-c", str(self.postfix_dir), "-h", "daemon_directory"]).stdout.strip())

    def _run(self, argv):
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"mailbox_server: {' '.join(argv)} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}{self._log_tail(self.postfix_log)}")
        return result

    def _wait_listening(self, processes):
        """Poll until every port (-> the process that should listen there) listens; fail as soon as
        one of the processes exits, or after STARTUP_TIMEOUT_SECONDS."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not set(processes) <= _listening_ports():
            exited = [process for process in processes.values() if process.poll() is not None]
            if exited or time.monotonic() > deadline:
                what = (f"{exited[0].args[0]} exited with {exited[0].returncode}" if exited
                        else f"ports {sorted(processes)} not all listening after {STARTUP_TIMEOUT_SECONDS}s")
                raise RuntimeError(f"mailbox_server: {what}" + "".join(
                    self._log_tail(path) for path in (self.root / "postfix-master.stderr", self.postfix_log,
                                                      self.root / "dovecot.stderr", self.dovecot_log)))
            time.sleep(0.01)

    @staticmethod
    def _log_tail(path, lines=20):
        try:
            return f"\n--- {path}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # Dovecot

    def _write_dovecot_config(self):
        run = self.runtime_dir / "dovecot"
        _write_config(self.dovecot_dir / "dovecot.conf", f"""\
# Private Dovecot of the sandbox's mailbox server (tests/sandbox/mailbox_server.py): SASL for
# Postfix only. Everything not set here is Dovecot's default; in particular auth_failure_delay
# (2 secs) and the auth penalty (anvil) stay on, as on a real server.
base_dir = {run}
state_dir = {self.runtime_dir / "dovecot-state"}
instance_name = karto-mailbox-{self.ports["dovecot"]}
log_path = {self.dovecot_log}
protocols = none
ssl = no
auth_mechanisms = plain login
auth_verbose = yes

# One passwd-file per mailbox (%u): Dovecot stats a passwd-file at most once a second
# (db-passwd-file.c, passwd_file_sync), but a new file is read at once, so a mailbox added by a
# test can log in right away.
# A mailbox whose access by mail clients is switched off (Rambler's setting) has a file here: its
# login fails with Dovecot's plain authentication failure, whatever the password ("deny" passdb).
passdb {{
  driver = passwd-file
  deny = yes
  args = {self.dovecot_dir / "clients-disabled" / "%u"}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dovecot_dir / "passwd" / "%u"}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home=/nonexistent
}}

service auth {{
  # root, to read the passwd-files in the sandbox's (private) state directory.
  user = root
  # Over TCP: Postfix's SASL client reaches it through the sandbox's auth link (smtpd_sasl_path
  # = inet:..., the link's port), where the knob auth_available cuts it.
  inet_listener {{
    address = {LOCALHOST}
    port = {self.ports["dovecot"]}
  }}
}}
""")

    # Postfix

    def _write_postfix_config(self):
        tls = self.context.tls
        _write_config(self.postfix_dir / "main.cf", f"""\
# Private Postfix of the sandbox's mailbox server (tests/sandbox/mailbox_server.py); README.md in
# tests/sandbox ("Mailbox server") says why each setting is what it is.
compatibility_level = 3.6
queue_directory = {self.runtime_dir / "queue"}
data_directory = {self.runtime_dir / "data"}
maillog_file = {self.postfix_log}
maillog_file_prefixes = {self.root}
inet_interfaces = {LOCALHOST}
inet_protocols = ipv4
myhostname = {MYHOSTNAME}
mydomain = sandbox.localhost
myorigin = $myhostname

# A null client that relays everything to the sandbox's sink (BASIC_CONFIGURATION_README).
mydestination =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
relayhost = [{LOCALHOST}]:{self.sink_port}
# Deliver at once: no deferral waits (the sink is always there; this is only in case).
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
in_flow_delay = 0s
# No reverse DNS of the client (127.0.0.x): the sandbox has no resolver for it.
smtpd_peername_lookup = no

# TLS with the sandbox's certificate (smtp.rambler.ru is on it).
smtpd_tls_cert_file = {tls.server_cert}
smtpd_tls_key_file = {tls.server_key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1

# SASL through Dovecot (via the sandbox's auth link, for the knob auth_available); login = the
# mailbox address.
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:{LOCALHOST}:{self.auth_link_port}

# The sender must be the login; relaying only for authenticated clients. smtpd_delay_reject stays
# at its default (yes): both are judged at RCPT TO.
smtpd_sender_login_maps = hash:{self.postfix_dir / "sender_logins"}
smtpd_sender_restrictions = reject_sender_login_mismatch
smtpd_relay_restrictions = permit_sasl_authenticated, reject
""")
        _write_config(self.postfix_dir / "master.cf", f"""\
# service type  private unpriv  chroot  wakeup  maxproc command + args
# 465: TLS from the first byte (smtps/submissions).
{LOCALHOST}:{self.ports[IMPLICIT_TLS]} inet n - n - - smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
# An implicit-TLS port that speaks only TLS 1.0/1.1, which Debian's OpenSSL (security level 2) does
# not allow: a server that does speak TLS but ends every modern handshake with an alert, as a
# mailbox server with an outdated TLS setup would (issue 8; smtp_check's tls-handshake class).
{LOCALHOST}:{self.ports[LEGACY_TLS]} inet n - n - - smtpd
  -o syslog_name=postfix/legacy-tls
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_protocols=<=TLSv1.1
  -o smtpd_tls_mandatory_protocols=<=TLSv1.1
# 587: plain greeting, STARTTLS (submission).
{LOCALHOST}:{self.ports[STARTTLS]} inet n - n - - smtpd
  -o syslog_name=postfix/submission
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""")

    # Mailboxes: Dovecot's passwd-files and Postfix's sender login map

    def _write_tables(self, changed=None):
        """Write the tables from self.mailboxes: every mailbox's files, or only those of `changed`,
        and Postfix's map (call with self.lock held, or before start)."""
        for mailbox in self.mailboxes.values() if changed is None else [changed]:
            # passwd-file line: user:{scheme}password:uid:gid:gecos:home:shell:extra fields.
            # PLAIN.b64 (the PLAIN scheme, base64-encoded) holds any password, ':' included.
            encoded = base64.b64encode(mailbox.password.encode()).decode()
            self._replace(self.dovecot_dir / "passwd" / mailbox.address, f"{mailbox.address}:{{PLAIN.b64}}{encoded}::::::\n")
            disabled = self.dovecot_dir / "clients-disabled" / mailbox.address
            if mailbox.clients_enabled:
                disabled.unlink(missing_ok=True)
            else:
                self._replace(disabled, f"{mailbox.address}:::::::\n")
        # Each mailbox address is owned by the login of the same name. smtpd notices the changed
        # table (its mtime) before it takes the next client, and hands that client to a new process.
        source = self.postfix_dir / "sender_logins"
        self._replace(source, "".join(f"{address} {address}\n" for address in sorted(self.mailboxes)))
        self._run([str(POSTMAP), "-c", str(self.postfix_dir), f"hash:{source}"])
        self._touch(source.with_name(source.name + ".db"))

    def _replace(self, path, text):
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.chmod(0o600)
        os.replace(temporary, path)
        self._touch(path)

    def _touch(self, path):
        """Give the file a newer mtime than any before: Dovecot and Postfix notice a changed table
        by its mtime (whole seconds), and two changes within a second must both be seen."""
        self._file_stamp = max(int(time.time()), self._file_stamp + 1)
        os.utime(path, (self._file_stamp, self._file_stamp))

    # The sink (Postfix's relayhost) and the auth link, served by one asyncio loop in its own thread

    def _start_loop(self):
        self._loop = asyncio.new_event_loop()
        opened = threading.Event()
        failure = []

        async def open_servers():
            sink = await self._loop.create_server(
                lambda: SMTP(_SinkHandler(self), hostname="sink.sandbox.localhost", loop=self._loop), LOCALHOST, 0)
            link = await asyncio.start_server(self._auth_link, LOCALHOST, 0)
            self._servers = [sink, link]
            self.sink_port = sink.sockets[0].getsockname()[1]
            self.auth_link_port = link.sockets[0].getsockname()[1]

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(open_servers())
            except Exception as error:  # reported by start() in the main thread
                failure.append(error)
                return
            finally:
                opened.set()
            self._loop.run_forever()

        self._loop_thread = threading.Thread(target=run, name="mailbox_server", daemon=True)
        self._loop_thread.start()
        opened.wait()
        if failure:
            raise failure[0]

    async def _close_servers(self):
        for server in self._servers:
            server.close()
        for writer in list(self._links):
            writer.close()

    async def _auth_link(self, postfix_reader, postfix_writer):
        """One connection of Postfix's SASL client to Dovecot's auth service, forwarded byte for byte
        (Dovecot's auth protocol is line based). While `auth_available` is false an AUTH request is
        not forwarded: the connection is reset instead, as when Dovecot's auth process goes away
        during a session, and Postfix answers with its own 454 ("Temporary authentication failure:
        Connection lost to authentication server"; Postfix answers a FAIL, even Dovecot's "temp" one,
        with 535: a lost connection is its only 454, xsasl_dovecot_server.c). A reset rather than a
        close: Postfix keeps the broken stream, and its next write then fails at once, so it
        reconnects on the next AUTH instead of failing once more on a half-closed connection.
        Stopping Dovecot would not do: a new smtpd then fails to start ("fatal: no SASL
        authentication mechanisms") and the master throttles the listener for a minute."""
        try:
            dovecot_reader, dovecot_writer = await asyncio.open_connection(LOCALHOST, self.ports["dovecot"])
        except OSError:
            postfix_writer.close()
            return
        self._links.update((postfix_writer, dovecot_writer))

        async def to_postfix():
            while data := await dovecot_reader.read(65536):
                postfix_writer.write(data)
                await postfix_writer.drain()

        async def to_dovecot():
            while line := await postfix_reader.readline():
                if line.startswith(b"AUTH\t") and not self.auth_available:
                    # SO_LINGER 0: close() sends a reset.
                    postfix_writer.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                dovecot_writer.write(line)
                await dovecot_writer.drain()

        tasks = [asyncio.ensure_future(to_postfix()), asyncio.ensure_future(to_dovecot())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # Either side hanging up (a reset included) ends the link; nothing to report.
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (postfix_writer, dovecot_writer):
                writer.close()
                self._links.discard(writer)

    def deliver(self, content, mail_from, rcpt_tos):
        """Put a mail Postfix relayed in the inbox, with the login and listener its smtpd logged."""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        # Postfix's own Received header (the newest, first) names the queue id of the accepting smtpd.
        queue_id = next((found.group("queue_id") for value in parsed.get_all("Received", [])
                         for found in [_RECEIVED_ID.search(re.sub(r"\s+", " ", str(value)))] if found), None)
        session = self._session_of(queue_id) if queue_id else {}
        listener = session.get("listener")
        return self.context.service("smtp_relay").add_to_inbox(
            content, mail_from, rcpt_tos, server=self.name, auth_user=session.get("login"), listener=listener,
            port=self.ports.get(listener), tls={IMPLICIT_TLS: "implicit", STARTTLS: "starttls"}.get(listener))

    def _session_of(self, queue_id):
        deadline = time.monotonic() + LOG_LINE_WAIT_SECONDS
        while True:
            for line in self.log_lines():
                found = _CLIENT_LINE.search(line)
                if found and found.group("queue_id") == queue_id:
                    return {"listener": _LISTENER_BY_SYSLOG_NAME[found.group("service")], "login": found.group("login")}
            if time.monotonic() > deadline:
                print(f"sandbox mailbox_server: no smtpd log line for queue id {queue_id}", file=sys.stderr)
                return {}
            time.sleep(0.02)

    def log_lines(self, which="postfix"):
        path = self.postfix_log if which == "postfix" else self.dovecot_log
        try:
            return path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    # Control API

    @control_route("GET", "/mailbox/mailboxes")
    def control_list_mailboxes(self, request):
        with self.lock:
            return Response(HTTPStatus.OK, [mailbox.as_dict() for mailbox in self.mailboxes.values()])

    @control_route("POST", "/mailbox/mailboxes")
    def control_add_mailbox(self, request):
        """Create or change a mailbox: {"address", "password", "clients_enabled"?: true}."""
        body = json_object(request)
        unknown = set(body) - {"address", "password", "clients_enabled"}
        if unknown:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown fields: {', '.join(sorted(unknown))}")
        address, password = body.get("address"), body.get("password")
        clients_enabled = body.get("clients_enabled", True)
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise HttpError(HTTPStatus.BAD_REQUEST, "address must be an email address (the login)")
        # SASL PLAIN separates login and password with NUL: no password can contain one.
        if not isinstance(password, str) or not password or "\x00" in password:
            raise HttpError(HTTPStatus.BAD_REQUEST, "password must be a non-empty string without NUL")
        if not isinstance(clients_enabled, bool):
            raise HttpError(HTTPStatus.BAD_REQUEST, "clients_enabled must be a boolean")
        mailbox = Mailbox(address.lower(), password, clients_enabled)
        with self.lock:
            existed = mailbox.address in self.mailboxes
            self.mailboxes[mailbox.address] = mailbox
            self._write_tables(changed=mailbox)
            if existed:
                # Dovecot may have read this mailbox's files earlier in this second and would not
                # look at them again before the next one (see the passdb comment in dovecot.conf):
                # answer once that second is over, so the next login sees the change.
                time.sleep(max(0.0, math.floor(time.time()) + 1 - time.time()))
        return Response(HTTPStatus.OK, mailbox.as_dict())

    @control_route("GET", "/mailbox/knobs")
    def control_get_knobs(self, request):
        with self.lock:
            return Response(HTTPStatus.OK, {"auth_available": self.auth_available})

    @control_route("POST", "/mailbox/knobs")
    def control_set_knobs(self, request):
        """{"auth_available": false}: Dovecot's auth service is out of reach for Postfix's next AUTH
        (see _auth_link), which Postfix answers with 454; true or null: back to normal."""
        body = json_object(request)
        unknown = set(body) - {"auth_available"}
        if unknown:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown mailbox knobs: {', '.join(sorted(unknown))}")
        available = body.get("auth_available", True)
        if available is not None and not isinstance(available, bool):
            raise HttpError(HTTPStatus.BAD_REQUEST, "auth_available must be a boolean or null")
        with self.lock:
            self.auth_available = available is not False
            return Response(HTTPStatus.OK, {"auth_available": self.auth_available})
