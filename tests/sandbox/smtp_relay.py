"""A real SMTP relay standing in for every provider's relay host: aiosmtpd on 127.0.0.1, one
listener that starts plain and offers STARTTLS, one that speaks TLS from the first byte; plus two
ports for failure classes: a black hole (accepts TCP, never says a word) and a closed port (bound,
never listening, so a connection is refused).

It knows no provider: AUTH asks the relay backends the emulators registered
(`context.relay_backends`, see core.RelayBackend) which one the login belongs to; that backend then
checks the sender at its own stage (MAIL FROM or the end of DATA; knob `sender_check` overrides it)
and its refusal is sent as it wrote it. Accepted mail lands in an inbox a test can read (`GET /inbox`
on the control API, and `.eml` files in state_dir/inbox). Every SMTP command is journaled (service
"smtp_relay", method "SMTP", path = the command) and can be faulted like an HTTP request. README.md
in this folder describes it.
"""

import asyncio
import email
import email.policy
import functools
import logging
import re
import socket
import threading
import time
import warnings
from http import HTTPStatus

from aiosmtpd.smtp import ALLOWED_BEFORE_STARTTLS, SMTP, AuthResult

from .core import (END_OF_DATA, IMPLICIT_TLS, LOCALHOST, MAIL_FROM, SENDER_CHECK_STAGES, STARTTLS, HttpError,
                   Response, Service, control_route, json_object)

# aiosmtpd logs every session on "mail.log" (INFO) and setup remarks at WARNING; the sandbox's
# stderr is for real errors (a handler exception is still logged at ERROR).
logging.getLogger("mail.log").setLevel(logging.ERROR)
# The implicit-TLS listener requires AUTH without aiosmtpd's STARTTLS check: the connection is
# TLS from the first byte, which aiosmtpd does not know about. Its warning does not apply here.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")

# The name in the greeting and EHLO answer: the relay answers for every provider's host at once, so
# it names none of them.
RELAY_HOSTNAME = "relay.sandbox.localhost"
GREETING_IDENT = "ESMTP karto sandbox relay"

STARTTLS_LISTENER = STARTTLS
IMPLICIT_TLS_LISTENER = IMPLICIT_TLS
BLACKHOLE_LISTENER = "blackhole"  # accepts TCP connections and never sends a byte
CLOSED_LISTENER = "closed"  # a port held bound but never listening: connections are refused

# A client that connects to the implicit-TLS port and never starts a TLS handshake (a plain SMTP
# client waiting for the greeting) is dropped after this long; asyncio's default is 60 s.
TLS_HANDSHAKE_TIMEOUT_SECONDS = 30

# aiosmtpd's own reply when a command other than EHLO/NOOP/STARTTLS/QUIT comes before STARTTLS
# (require_starttls=True); the relay sends it itself so that the refusal is journaled too.
STARTTLS_REQUIRED_REPLY = "530 Must issue a STARTTLS command first"

# Reply to RCPT TO for an address in the reject_recipients knob (Postfix's wording, which many
# relays and mailbox servers use; a relay provider that accepts any recipient bounces later instead).
RECIPIENT_REJECTED_REPLY = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"


AUTH_MECHANISMS = ("LOGIN", "PLAIN")
SENDER_CHECK_BACKEND = "backend"  # knob value: the stage of the backend that authenticated the login


def _mechanism_list(value):
    """Check of the auth_mechanisms knob: a non-empty list out of AUTH_MECHANISMS."""
    if not isinstance(value, list) or not value or not set(value) <= set(AUTH_MECHANISMS):
        return f"auth_mechanisms must be a non-empty list out of {', '.join(AUTH_MECHANISMS)}"
    return None


def _address_list(value):
    """Check of the reject_recipients knob: None when `value` is a list of addresses, else why not."""
    if not isinstance(value, list) or not all(isinstance(item, str) and "@" in item for item in value):
        return "reject_recipients must be a list of email addresses"
    return None


# Relay behaviour a test can change with POST /smtp-relay/knobs (new connections only).
# Each knob: (default, allowed values, or a check returning None when fine / a message when not).
# More failure classes are meant to become knobs here.
KNOBS = {
    # "starttls_required": the plain port advertises STARTTLS and refuses AUTH/MAIL before it
    # (aiosmtpd require_starttls). "no_tls": it offers no STARTTLS and advertises AUTH in clear,
    # like a relay port without TLS.
    "plain_port_mode": ("starttls_required", ("starttls_required", "no_tls")),
    # Where an unverified sender is refused: "backend" (each relay backend's own stage,
    # RelayBackend.sender_check), or for every backend "mail_from" (the envelope sender, at MAIL
    # FROM) or "end_of_data" (the From header, after the message). The Go error text is the same
    # either way; a client that only probes (no DATA) sees the refusal only at MAIL FROM.
    "sender_check": (SENDER_CHECK_BACKEND, (SENDER_CHECK_BACKEND, *SENDER_CHECK_STAGES)),
    # Addresses refused at RCPT TO with RECIPIENT_REJECTED_REPLY (case-insensitive), as a relay
    # that knows its recipients refuses an unknown user.
    "reject_recipients": ([], _address_list),
    # The AUTH mechanisms offered (EHLO's AUTH line); e.g. ["LOGIN"] for a relay without PLAIN,
    # to which Supabase's mailer (and smtp_check) log in with LOGIN.
    "auth_mechanisms": (list(AUTH_MECHANISMS), _mechanism_list),
}

_REPLY_LINE = re.compile(r"^(\d{3})[ -]?(.*)$")
_COMMANDS_NOT_JOURNALED = {"NOOP"}


def smtp_reply(text, default_code=550):
    """A (possibly multi-line) reply text as SMTP wants it on the wire: "550-a\\r\\n550 b".
    Lines may or may not carry their code already."""
    lines = [line for line in str(text).replace("\r\n", "\n").split("\n") if line.strip()] or [""]
    match = _REPLY_LINE.match(lines[0])
    code = match.group(1) if match else str(default_code)
    bodies = []
    for line in lines:
        match = _REPLY_LINE.match(line)
        bodies.append(match.group(2) if match and match.group(1) == code else line)
    return "\r\n".join(f"{code}{'-' if index < len(bodies) - 1 else ' '}{body}"
                       for index, body in enumerate(bodies))


class _AuthenticatedUser:
    """What aiosmtpd keeps as `session.auth_data`: the login, the relay backend that accepted it and
    the session's identity that backend named (its account, for a provider whose login is one fixed
    word), never the password."""

    def __init__(self, login, backend, identity):
        self.login = login
        self.backend = backend
        self.identity = identity


class _RelaySession(SMTP):
    """One SMTP connection. Wraps every command to journal it, apply faults and the STARTTLS gate."""

    # The usual LOGIN challenges; gomail's LOGIN client insists on exactly these.
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, relay, listener, starttls_required, sender_check, reject_recipients=(), **kwargs):
        super().__init__(relay.handler, **kwargs)
        self.relay = relay
        self.listener = listener
        self.starttls_required = starttls_required
        self.sender_check = sender_check
        self.reject_recipients = frozenset(address.lower() for address in reject_recipients)
        self.last_reply = None
        self.attempted_login = None
        self.swallow_final_reply = False  # a drop_answer fault: do the work, never send the answer
        for command, method in list(self._smtp_methods.items()):
            self._smtp_methods[command] = self._wrapped(command, method)

    async def push(self, status):
        self.last_reply = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        if self.swallow_final_reply and not self.last_reply.startswith(("334", "354")):
            return  # intermediate replies (AUTH challenges, DATA's 354) still go out
        await super().push(status)

    @property
    def tls_mode(self):
        if self.listener == IMPLICIT_TLS_LISTENER:
            return "implicit"
        return "starttls" if self._tls_protocol is not None else None

    @property
    def auth_user(self):
        auth_data = self.session.auth_data if self.session else None
        return getattr(auth_data, "login", None)

    @property
    def auth_backend(self):
        auth_data = self.session.auth_data if self.session else None
        return getattr(auth_data, "backend", None)

    @property
    def auth_identity(self):
        auth_data = self.session.auth_data if self.session else None
        return getattr(auth_data, "identity", None)

    def sender_check_stage(self):
        """MAIL_FROM or END_OF_DATA for this session: the knob, or its backend's own stage."""
        if self.sender_check != SENDER_CHECK_BACKEND:
            return self.sender_check
        backend = self.auth_backend
        return backend.sender_check if backend is not None else MAIL_FROM

    def _wrapped(self, command, method):
        @functools.wraps(method)
        async def run(arg):
            fault = self.relay.context.faults.take(self.relay.name, "SMTP", command)
            if fault and fault.action == "delay":
                await asyncio.sleep(fault.seconds)
            if fault and fault.action == "drop":
                self._journal(command, arg, None, fault)
                self.transport.close()
                return
            self.last_reply = None
            self.swallow_final_reply = fault is not None and fault.action == "drop_answer"
            if fault and fault.action == "status":
                # The fault's status is the reply code, its body (if any) the reply text.
                text = fault.body if fault.body is not None else "Error injected by the sandbox"
                await self.push(smtp_reply(text, default_code=fault.status))
            elif (self.starttls_required and self._tls_protocol is None
                  and command not in ALLOWED_BEFORE_STARTTLS):
                await self.push(STARTTLS_REQUIRED_REPLY)
            else:
                await method(arg)
            self._journal(command, arg, self.last_reply, fault)
            if self.swallow_final_reply:
                self.transport.close()

        # aiosmtpd's HELP reads these markers from the command methods.
        for marker in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
            if hasattr(method, marker):
                setattr(run, marker, getattr(method, marker))
        return run

    def _journal(self, command, arg, reply, fault):
        if command in _COMMANDS_NOT_JOURNALED:
            return
        code = None
        if reply:
            match = _REPLY_LINE.match(reply.rsplit("\r\n", 1)[-1])
            code = int(match.group(1)) if match else None
        argument = arg
        if command == "AUTH" and arg:
            argument = arg.split()[0]  # the mechanism; never the credentials
        self.relay.context.journal.record(
            service=self.relay.name,
            method="SMTP",
            path=command,
            query={},
            headers={},
            status=code,
            json={
                "listener": self.listener,
                "port": self.relay.ports.get(self.listener),
                "tls": self.tls_mode,
                "user": self.auth_user or self.attempted_login,
                "argument": argument,
                "reply": reply,
            },
            fault=fault is not None and fault.action in ("status", "drop"),
            fault_action=fault.action if fault else None,
        )


class _RelayHandler:
    """aiosmtpd hooks: the sender check at MAIL FROM or at the end of DATA (the session's stage),
    delivery to the inbox at the end of DATA."""

    def __init__(self, relay):
        self.relay = relay

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if server.sender_check_stage() == MAIL_FROM:
            ok, reply = self.relay.sender_allowed(server, address)
            if not ok:
                return smtp_reply(reply)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in server.reject_recipients:
            return RECIPIENT_REJECTED_REPLY.format(address=address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if server.sender_check_stage() == END_OF_DATA:
            parsed = email.message_from_bytes(envelope.original_content or b"", policy=email.policy.default)
            ok, reply = self.relay.sender_allowed(server, str(parsed.get("From", "")))
            if not ok:
                return smtp_reply(reply)
        message = self.relay.deliver(server, envelope)
        return f"250 OK id={message['message_id']}"


class _BlackHole(asyncio.Protocol):
    """A TCP peer that accepts the connection and then says nothing, ever (no greeting, no TLS):
    a firewall or a dead relay that still completes the TCP handshake."""

    def __init__(self, relay):
        self.relay = relay
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.relay.blackhole_transports.add(transport)

    def data_received(self, data):
        pass  # read and ignored: a ClientHello or an EHLO gets no answer

    def connection_lost(self, exc):
        self.relay.blackhole_transports.discard(self.transport)


class SmtpRelay(Service):
    name = "smtp_relay"

    def __init__(self, context):
        super().__init__(context)
        self.lock = threading.Lock()
        self.handler = _RelayHandler(self)
        self.knobs = {name: default for name, (default, _allowed) in KNOBS.items()}
        self.ports = {}  # listener -> port
        self._inbox = []
        self._next_message_number = 1
        self._inbox_dir = context.state_dir / "inbox"
        self._loop = None
        self._thread = None
        self._servers = []
        self._closed_socket = None
        self.blackhole_transports = set()

    # Lifecycle

    def start(self):
        self._inbox_dir.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.new_event_loop()
        opened = threading.Event()
        failure = []

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._open_listeners())
            except Exception as error:  # reported by start() in the main thread
                failure.append(error)
                return
            finally:
                opened.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtp_relay", daemon=True)
        self._thread.start()
        opened.wait()
        if failure:
            raise failure[0]
        return {
            "smtp_relay_starttls_port": self.ports[STARTTLS_LISTENER],
            "smtp_relay_implicit_tls_port": self.ports[IMPLICIT_TLS_LISTENER],
            "smtp_relay_blackhole_port": self.ports[BLACKHOLE_LISTENER],
            "smtp_relay_closed_port": self.ports[CLOSED_LISTENER],
        }

    async def _open_listeners(self):
        tls_context = self.context.tls.server_ssl_context()
        plain = await self._loop.create_server(
            lambda: self._new_session(STARTTLS_LISTENER, tls_context), LOCALHOST, 0)
        implicit = await self._loop.create_server(
            lambda: self._new_session(IMPLICIT_TLS_LISTENER, tls_context), LOCALHOST, 0,
            ssl=tls_context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_SECONDS)
        blackhole = await self._loop.create_server(lambda: _BlackHole(self), LOCALHOST, 0)
        self._servers = [plain, implicit, blackhole]
        self.ports[STARTTLS_LISTENER] = plain.sockets[0].getsockname()[1]
        self.ports[IMPLICIT_TLS_LISTENER] = implicit.sockets[0].getsockname()[1]
        self.ports[BLACKHOLE_LISTENER] = blackhole.sockets[0].getsockname()[1]
        # Bound (so no other program gets the port) but never listening: the kernel answers a
        # connection attempt with a reset, "connection refused".
        self._closed_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._closed_socket.bind((LOCALHOST, 0))
        self.ports[CLOSED_LISTENER] = self._closed_socket.getsockname()[1]

    def _new_session(self, listener, tls_context):
        with self.lock:
            plain_port_mode, sender_check = self.knobs["plain_port_mode"], self.knobs["sender_check"]
            reject_recipients = tuple(self.knobs["reject_recipients"])
            excluded = [name for name in AUTH_MECHANISMS if name not in self.knobs["auth_mechanisms"]]
        # aiosmtpd takes every "auth_*" member of the session for a mechanism, so the auth_user
        # property would be advertised as "AUTH ... user".
        excluded.append("user")
        common = dict(hostname=RELAY_HOSTNAME, ident=GREETING_IDENT, auth_required=True,
                      authenticator=self._authenticate, loop=self._loop, sender_check=sender_check,
                      reject_recipients=reject_recipients, auth_exclude_mechanism=excluded)
        if listener == IMPLICIT_TLS_LISTENER:
            return _RelaySession(self, listener, starttls_required=False, tls_context=None,
                                 auth_require_tls=False, **common)
        if plain_port_mode == "no_tls":
            return _RelaySession(self, listener, starttls_required=False, tls_context=None,
                                 auth_require_tls=False, **common)
        return _RelaySession(self, listener, starttls_required=True, tls_context=tls_context,
                             auth_require_tls=True, **common)

    def stop(self):
        if not self._loop or not self._thread.is_alive():
            return

        async def close():
            for server in self._servers:
                server.close()
            for transport in list(self.blackhole_transports):
                transport.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                # An unclosed loop's selector is torn down at interpreter exit, too late (EBADF noise).
                self._loop.close()
            if self._closed_socket is not None:
                self._closed_socket.close()

    # Relay backends (the emulators own users and senders; see core.RelayBackend)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        server.attempted_login = login
        backend, verdict = self.context.relay_backends.authenticate(login, password)
        ok, reply = verdict[0], verdict[1]
        # A backend may name the session's identity third (e.g. the account of a fixed login).
        identity = verdict[2] if len(verdict) > 2 else login
        if ok and backend is not None:
            return AuthResult(success=True, auth_data=_AuthenticatedUser(login, backend, identity))
        return AuthResult(success=False, handled=False, message=smtp_reply(reply, default_code=535))

    @staticmethod
    def sender_allowed(server, mail_from):
        """(ok, reply) from the backend that authenticated the session's login."""
        backend = server.auth_backend
        if backend is None:  # AUTH is required before MAIL, so only a bug gets here
            return False, "451 4.3.0 Sender check unavailable (no relay backend for this login)"
        return backend.sender_allowed(server.auth_identity, mail_from)

    # Inbox

    def deliver(self, server, envelope):
        return self.add_to_inbox(envelope.original_content or b"", envelope.mail_from, envelope.rcpt_tos,
                                 server=self.name, auth_user=server.auth_user, listener=server.listener,
                                 port=self.ports.get(server.listener), tls=server.tls_mode)

    def add_to_inbox(self, content, mail_from, rcpt_tos, server, auth_user, listener, port, tls):
        """Store one accepted mail (raw bytes) in the inbox and return its entry. `server` names the
        SMTP server that accepted it (its service name): this relay, or another server of the
        sandbox whose mail lands here too (the mailbox server's sink hands over what Postfix
        delivered)."""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        body_part = parsed.get_body(preferencelist=("html", "plain")) if parsed.is_multipart() else parsed
        try:
            body = body_part.get_content() if body_part is not None else ""
        except (LookupError, ValueError):
            body = body_part.get_payload(decode=True).decode("utf-8", "replace") if body_part else ""
        with self.lock:
            number = self._next_message_number
            self._next_message_number += 1
            message_id = f"sandbox-{number:06d}"
            path = self._inbox_dir / f"{number:06d}.eml"
            path.write_bytes(content)
            message = {
                "id": number,
                "message_id": message_id,
                "received_at": time.time(),
                "server": server,
                "mail_from": mail_from,
                "rcpt_tos": list(rcpt_tos),
                "auth_user": auth_user,
                "listener": listener,
                "port": port,
                "tls": tls,
                # Raw header text (unfolded), as the sender wrote it; from/to/subject below are decoded.
                "headers": {name: re.sub(r"\r?\n[ \t]", " ", value) for name, value in parsed.raw_items()},
                "from": str(parsed.get("From", "")),
                "to": str(parsed.get("To", "")),
                "subject": str(parsed.get("Subject", "")),
                "content_type": body_part.get_content_type() if body_part is not None else None,
                "body": body,
                "eml_path": str(path),
            }
            self._inbox.append(message)
            return message

    def inbox(self, to=None):
        with self.lock:
            return [dict(message) for message in self._inbox
                    if to is None or to.lower() in (rcpt.lower() for rcpt in message["rcpt_tos"])]

    @control_route("GET", "/inbox")
    def control_inbox(self, request):
        return Response(HTTPStatus.OK, self.inbox(request.query.get("to")))

    @control_route("DELETE", "/inbox")
    def control_clear_inbox(self, request):
        with self.lock:
            count = len(self._inbox)
            for message in self._inbox:
                self._inbox_dir.joinpath(f"{message['id']:06d}.eml").unlink(missing_ok=True)
            self._inbox.clear()
        return Response(HTTPStatus.OK, {"cleared": count})

    # Knobs

    @control_route("GET", "/smtp-relay/knobs")
    def control_get_knobs(self, request):
        with self.lock:
            return Response(HTTPStatus.OK, dict(self.knobs))

    @control_route("POST", "/smtp-relay/knobs")
    def control_set_knobs(self, request):
        """Change relay behaviour for new connections; a null value restores the default."""
        body = json_object(request)
        unknown = set(body) - set(KNOBS)
        if unknown:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown relay knobs: {', '.join(sorted(unknown))}")
        for name, value in body.items():
            _default, allowed = KNOBS[name]
            if value is None:
                continue
            if callable(allowed):
                problem = allowed(value)
                if problem:
                    raise HttpError(HTTPStatus.BAD_REQUEST, problem)
            elif value not in allowed:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be one of {', '.join(allowed)}")
        with self.lock:
            for name, value in body.items():
                self.knobs[name] = KNOBS[name][0] if value is None else value
            return Response(HTTPStatus.OK, dict(self.knobs))
