"""Emulated Supabase Auth (GoTrue): the endpoints that send mail, sending it for real over SMTP with
the settings stored through the Management API emulator, the way GoTrue's gomail client does, and
writing GoTrue's log lines to the project's Auth logs (read back through `logs.all`).

Sources: ../shared/reference/supabase.md sections 7 and 8; supabase/auth @bc32168e
(internal/api/{otp,magic_link,signup,recover,resend,invite,mail,errors,middleware}.go,
internal/observability/request-logger.go, internal/mailer/mailmeclient/mailmeclient.go) and
go-gomail/gomail @81ebce5c (smtp.go, auth.go, send.go) with Go's net/smtp. README.md in this folder
lists the behaviour and the routing table.
"""

import base64
import datetime
import email.utils
import hashlib
import hmac
import json
import quopri
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import quote

from .core import LOCALHOST, HttpError, HttpService, Response, control_route, json_object, route

AUTH_BASE_PATH = "/auth/v1"

# How an SMTP host/port stored in the auth config reaches a server on this machine: a host one of
# the relay backends registered (context.relay_backends, core.RelayBackend) goes to the local relay,
# the port choosing the listener by the backend's `ports` (the ports the provider publishes, each
# with its TLS mode), or to the backend's own listener for that port when it names `targets` (the
# mailbox server); a port the provider does not publish is silently dropped (the dial times out),
# reported with the backend's documentation `address` because the sandbox has no real one.
# localhost/127.0.0.1 connect straight to that port here; any other name does not resolve.
LOCAL_HOSTS = ("localhost", "127.0.0.1")

DEFAULT_SMTP_CONNECT_TIMEOUT_SECONDS = 10.0  # gomail's net.DialTimeout
# Go's SMTP client has no read deadline; the sandbox stops waiting for a silent server after this
# long so that no worker thread hangs forever (a request has long been answered with 504 by then).
SMTP_READ_SAFETY_TIMEOUT_SECONDS = 120.0
DEFAULT_REQUEST_TIMEOUT_SECONDS = 10  # GOTRUE_API_MAX_REQUEST_DURATION when the config has none

BUILTIN_MAILER_FROM = "Supabase Auth <noreply@mail.app.supabase.io>"
NIL_UUID = "00000000-0000-0000-0000-000000000000"
REQUEST_TIMEOUT_MESSAGE = "Processing this request timed out, please retry after a moment."

# Kong, in front of Auth, answers these before GoTrue sees the request (no Auth log line).
NO_API_KEY_BODY = {"message": "No API key found in request",
                   "hint": "No `apikey` request header or url param was found."}
INVALID_API_KEY_BODY = {"message": "Invalid API key",
                        "hint": "Double check your Supabase `anon` or `service_role` API key."}
# "You cannot send a publishable or secret key in the `Authorization: Bearer ...` header, except if
# the value exactly equals the `apikey` header" (supabase.com/docs/guides/api/api-keys, "Known
# limitations and compatibility differences"): the gateway refuses such a request before Auth. The
# refusal's wording is not published: this body (Kong's shape) is ASSUMED.
NEW_API_KEY_PREFIXES = ("sb_publishable_", "sb_secret_")
API_KEY_IN_AUTHORIZATION_BODY = {
    "message": "Invalid API key",
    "hint": "A publishable or secret API key may only be sent in the Authorization header when it equals "
            "the `apikey` header.",
}

# Knobs per project (POST /supabase-auth/projects/{ref}/knobs): (default, check, what it must be).
KNOBS = {
    "smtp_connect_timeout_seconds": (DEFAULT_SMTP_CONNECT_TIMEOUT_SECONDS,
                                     lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)
                                     and 0 < value <= 60, "a number of seconds in (0, 60]"),
    # "split": an error line with "msg":"500: Error sending ..." and "error", then "request completed"
    # (GoTrue before supabase/auth#2635, what the reference saw on hosted projects); "consolidated":
    # one "request completed" line carrying "error" (GoTrue after #2635, 2026-07).
    "log_format": ("split", lambda value: value in ("split", "consolidated"), "split or consolidated"),
    # GOTRUE_SMTP_LOGGING_ENABLED: the "mail.send" line of every SMTP attempt.
    "smtp_logging_enabled": (True, lambda value: isinstance(value, bool), "a boolean"),
}

# Mail kinds: template/subject key in the auth config, link `type`, action name for error texts.
MAIL_KINDS = {
    "confirmation": ("confirmation", "signup", "confirmation"),
    "magic_link": ("magic_link", "magiclink", "magic link"),
    "recovery": ("recovery", "recovery", "recovery"),
    "invite": ("invite", "invite", "invite"),
}

_EMAIL_FORMAT = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                           r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
# A Go template action that prints one variable of the template data: `{{ .Token }}`, with trim markers
# (`{{- .Token -}}`), from the root (`$.Token`) or a key of the user metadata (`{{ .Data.name }}`).
_TEMPLATE_FIELD = re.compile(r"{{(-?)\s*\$?\.(\w+)((?:\.\w+)*)\s*(-?)}}")
_GO_JSON_TYPES = {str: "string", bool: "bool", dict: "map[string]interface {}"}


class AuthApiError(Exception):
    """GoTrue's HTTPError: status, error_code, message (the client sees these) and the internal
    error that goes to the log's "error" field."""

    def __init__(self, status, error_code, message, internal=None, extra=None):
        super().__init__(message)
        self.status = int(status)
        self.error_code = error_code
        self.message = message
        self.internal = internal
        self.extra = extra or {}

    @property
    def text(self):
        return f"{self.status}: {self.message}"

    @property
    def cause(self):
        return self.internal if self.internal is not None else self.text


class SmtpSendError(Exception):
    """An SMTP failure, its text as Go's gomail/net/smtp would print it."""


def _go_json_syntax_error(body):
    """Roughly what Go's encoding/json says about a body that is not JSON."""
    text = body.decode("utf-8", "replace")
    try:
        json.loads(text)
    except ValueError as error:
        position = getattr(error, "pos", len(text))
        if position >= len(text.rstrip()):
            return "unexpected end of JSON input"
        return f"invalid character '{text[position]}' looking for beginning of value"
    return "unexpected end of JSON input"


def required_character_sets(value):
    """GoTrue's PasswordRequiredCharacters.Decode: the sets are separated by ":", and a set that ends
    in a backslash goes on with ":" and the next part (supabase/auth internal/conf/configuration.go)."""
    parts = (value or "").split(":")
    for index in range(len(parts) - 1):
        part = parts[index]
        if part and part.endswith("\\"):
            parts[index] = part[:-1] + ":" + parts[index + 1]
            parts[index + 1] = ""
    return [part for part in parts if part]


def check_password_strength(config, password):
    """GoTrue's checkPasswordStrength (supabase/auth internal/api/password.go), without the
    HaveIBeenPwned check: 422 weak_password with every reason ("length", "characters") and their
    messages joined by a space. The hosted config's password_min_length (GoTrue's default 6 when
    unset) and password_required_characters feed it."""
    minimum = config.get("password_min_length") or 6
    sets = required_character_sets(config.get("password_required_characters"))
    reasons, messages = [], []
    if len(password) < minimum:
        reasons.append("length")
        messages.append(f"Password should be at least {minimum} characters.")
    if any(not any(char in password for char in characters) for characters in sets):
        reasons.append("characters")
        messages.append(f"Password should contain at least one character of each: {', '.join(sets)}.")
    if reasons:
        raise AuthApiError(422, "weak_password", " ".join(messages), extra={"weak_password": {"reasons": reasons}})


def go_time(at):
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_time(at):
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


# SMTP client: gomail.v2 Dialer.DialAndSend over Go's net/smtp, in Python


def _q_encode(text):
    encoded = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char == " ":
            encoded.append("_")
        elif 33 <= byte <= 126 and char not in "=?_":
            encoded.append(char)
        else:
            encoded.append(f"={byte:02X}")
    return "".join(encoded)


def _needs_encoding(text):
    return any(not (" " <= char <= "~") and char != "\t" for char in text)


def encode_header_value(text):
    """mime.QEncoding.Encode("UTF-8", text) as gomail applies it to header values."""
    return f"=?UTF-8?q?{_q_encode(text)}?=" if _needs_encoding(text) else text


def format_address(address, name):
    """gomail Message.FormatAddress: `"Name" <address>`, encoded when the name is not plain ASCII."""
    if not name:
        return address
    if not _needs_encoding(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    if any(char in name for char in '()<>[]:;@\\,."'):
        return f"=?UTF-8?b?{base64.b64encode(name.encode()).decode()}?= <{address}>"
    return f"=?UTF-8?q?{_q_encode(name)}?= <{address}>"


def render_template(text, data):
    """The stored subject or body with each variable action replaced, as GoTrue's templatemailer
    executes it (supabase/auth internal/mailer/templatemailer/template.go @1d1ad0eb: html/template over a
    `map[string]any`; the keys per mail in templatemailer.go @01e7d351). A key the map lacks prints
    nothing (a missing map key is the zero value, which html/template prints as empty text), so a
    mistyped `{{ .ConfirmationUrl }}` sends a mail without its link. `{{-`/`-}}` trim the whitespace
    beside them (text/template). Not emulated: other actions (`if`, `range`, pipelines, functions:
    left as written) and html/template's contextual escaping of the values."""
    def value(match):
        found = data.get(match.group(2))
        for key in filter(None, match.group(3).split(".")):
            found = found.get(key) if isinstance(found, dict) else None
        return "" if found is None else str(found)

    pieces = []
    position = 0
    for match in _TEMPLATE_FIELD.finditer(text):
        before = text[position:match.start()]
        pieces.append(before.rstrip() if match.group(1) else before)
        pieces.append(value(match))
        position = match.end()
        if match.group(4):
            rest = text[position:]
            position += len(rest) - len(rest.lstrip())
    pieces.append(text[position:])
    return "".join(pieces)


def build_message(from_header, to, subject, html_body, at):
    """The bytes gomail writes for SetHeader(From, To, Subject) + SetBody("text/html", body)."""
    headers = [
        ("Mime-Version", "1.0"),
        ("Date", email.utils.format_datetime(datetime.datetime.fromtimestamp(at, datetime.timezone.utc))),
        ("From", from_header),
        ("To", to),
        ("Subject", encode_header_value(subject)),
        ("Content-Type", "text/html; charset=UTF-8"),
        ("Content-Transfer-Encoding", "quoted-printable"),
    ]
    body = quopri.encodestring(html_body.encode("utf-8")).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode()
    return head + b"\r\n" + body


@dataclass
class SmtpSettings:
    host: str
    port_text: str
    user: str
    password: str
    local_name: str  # EHLO name: the host of the API's external URL
    from_header: str
    envelope_from: str


@dataclass
class SmtpTarget:
    """Where a dial of host:port lands: a local port, or an error after `delay` seconds."""
    port: int = None
    error: str = None
    delay: float = 0.0
    remote: str = ""  # host:port as Go would print it in socket errors


class _SmtpConversation:
    """One gomail DialAndSend: connect, (implicit TLS | EHLO, STARTTLS when offered), AUTH, MAIL,
    RCPT, DATA, QUIT. Raises SmtpSendError with Go's error text."""

    def __init__(self, settings, target, ca_cert, connect_timeout, certificate_names=()):
        self.settings = settings
        self.target = target
        self.ca_cert = ca_cert
        self.certificate_names = tuple(certificate_names)  # for Go's "certificate is valid for ..." text
        self.connect_timeout = connect_timeout
        self.sock = None
        self.reader = None
        self.tls = False
        self.extensions = {}
        self.local = ""

    # Go-style texts

    def _io_error(self, error, operation):
        peer = f"{self.local}->{self.target.remote}"
        if isinstance(error, (socket.timeout, TimeoutError)):
            return f"{operation} tcp {peer}: i/o timeout"
        if isinstance(error, ConnectionResetError):
            return f"{operation} tcp {peer}: {operation}: connection reset by peer"
        if isinstance(error, BrokenPipeError):
            return f"{operation} tcp {peer}: {operation}: broken pipe"
        return "EOF"

    def _tls_error(self, error):
        if isinstance(error, ssl.SSLCertVerificationError):
            if error.verify_code in (62, 64):  # hostname / IP address mismatch
                return (f"tls: failed to verify certificate: x509: certificate is valid for "
                        f"{', '.join(self._certificate_names())}, not {self.settings.host}")
            return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        text = str(error).upper()
        if any(marker in text for marker in ("WRONG_VERSION_NUMBER", "RECORD LAYER FAILURE", "PACKET_LENGTH_TOO_LONG",
                                             "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE")):
            return "tls: first record does not look like a TLS handshake"
        if isinstance(error, (ssl.SSLEOFError, ConnectionResetError, ssl.SSLZeroReturnError)) or "EOF" in text:
            return "EOF"
        if isinstance(error, (socket.timeout, TimeoutError)):
            return self._io_error(error, "read")
        return f"tls: {error}"

    def _certificate_names(self):
        """The names Go lists: the certificate's IP SANs for an IP host, else its DNS names."""
        is_ip = re.match(r"^[0-9.]+$|:", self.settings.host) is not None
        return [name for name in self.certificate_names if (re.match(r"^[0-9.]+$", name) is not None) == is_ip]

    # Wire

    def _connect(self):
        if self.target.error:
            if self.target.delay:
                time.sleep(self.target.delay)
            raise SmtpSendError(self.target.error)
        try:
            self.sock = socket.create_connection((LOCALHOST, self.target.port), timeout=self.connect_timeout)
        except ConnectionRefusedError:
            raise SmtpSendError(f"dial tcp {self.target.remote}: connect: connection refused") from None
        except (socket.timeout, TimeoutError):
            raise SmtpSendError(f"dial tcp {self.target.remote}: i/o timeout") from None
        self.sock.settimeout(SMTP_READ_SAFETY_TIMEOUT_SECONDS)
        host, port = self.sock.getsockname()[:2]
        self.local = f"{host}:{port}"
        self.reader = self.sock.makefile("rb")

    def _start_tls(self):
        context = ssl.create_default_context(cafile=self.ca_cert)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # Go's client default
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=self.settings.host)
        except (ssl.SSLError, OSError) as error:
            raise SmtpSendError(self._tls_error(error)) from None
        self.reader = self.sock.makefile("rb")
        self.tls = True

    def _write(self, data):
        try:
            self.sock.sendall(data)
        except OSError as error:
            raise SmtpSendError(self._io_error(error, "write")) from None

    def _read_response(self, expect):
        """textproto.ReadResponse: (code, message with continuation lines joined by \\n)."""
        code, lines = None, []
        while True:
            try:
                raw = self.reader.readline()
            except ssl.SSLError as error:
                raise SmtpSendError(self._tls_error(error)) from None
            except OSError as error:
                raise SmtpSendError(self._io_error(error, "read")) from None
            if not raw:
                raise SmtpSendError("EOF" if not lines else "unexpected EOF")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 4 or not line[:3].isdigit() or line[3] not in " -":
                if len(line) == 3 and line.isdigit():
                    line += " "
                else:
                    raise SmtpSendError(f"short response: {line}" if len(line) < 4
                                        else f"invalid response code: {line}")
            if code is not None and int(line[:3]) != code:
                raise SmtpSendError(f"status code mismatch: {code}, {int(line[:3])}")
            code = int(line[:3])
            lines.append(line[4:])
            if line[3] == " ":
                break
        message = "\n".join(lines)
        if expect and not (code // 100 == expect if expect < 10 else code // 10 == expect if expect < 100
                           else code == expect):
            raise SmtpSendError(f"{code:03d} {message}")
        return code, message

    def _command(self, expect, text):
        self._write(text.encode("utf-8") + b"\r\n")
        return self._read_response(expect)

    # net/smtp Client

    def _hello(self):
        try:
            _code, message = self._command(250, f"EHLO {self.settings.local_name}")
        except SmtpSendError:
            self._command(250, f"HELO {self.settings.local_name}")
            self.extensions = {}
            return
        self.extensions = {}
        for line in message.split("\n")[1:]:
            keyword, _, parameters = line.partition(" ")
            self.extensions[keyword.upper()] = parameters

    def _auth(self):
        mechanisms = self.extensions.get("AUTH", "")
        user, password, host = self.settings.user, self.settings.password, self.settings.host
        if "CRAM-MD5" in mechanisms:
            code, challenge = self._command(0, "AUTH CRAM-MD5")
            if code == 334:
                digest = hmac.new(password.encode(), base64.b64decode(challenge), hashlib.md5).hexdigest()
                code, challenge = self._command(0, base64.b64encode(f"{user} {digest}".encode()).decode())
            self._finish_auth(code, challenge)
        elif "LOGIN" in mechanisms and "PLAIN" not in mechanisms:
            if not self.tls and "LOGIN" not in mechanisms.split(" "):
                self._quit()
                raise SmtpSendError("gomail: unencrypted connection")
            code, challenge = self._command(0, "AUTH LOGIN")
            while code == 334:
                prompt = base64.b64decode(challenge)
                if prompt == b"Username:":
                    answer = user
                elif prompt == b"Password:":
                    answer = password
                else:
                    self._abort_auth()
                    raise SmtpSendError(f"gomail: unexpected server challenge: {prompt.decode('utf-8', 'replace')}")
                code, challenge = self._command(0, base64.b64encode(answer.encode()).decode())
            self._finish_auth(code, challenge)
        else:
            # smtp.PlainAuth refuses to send the password in clear except to localhost.
            if not self.tls and host not in ("localhost", "127.0.0.1", "::1"):
                self._quit()
                raise SmtpSendError("unencrypted connection")
            blob = base64.b64encode(f"\x00{user}\x00{password}".encode()).decode()
            code, message = self._command(0, f"AUTH PLAIN {blob}")
            if code == 334:
                self._abort_auth()
                raise SmtpSendError("unexpected server challenge")
            self._finish_auth(code, message)

    def _finish_auth(self, code, message):
        if code != 235:
            self._abort_auth()
            raise SmtpSendError(f"{code:03d} {message}")

    def _abort_auth(self):
        for text in ("*", "QUIT"):
            try:
                self._command(0, text)
            except SmtpSendError:
                return

    def _quit(self):
        try:
            self._command(221, "QUIT")
        except SmtpSendError:
            pass

    def run(self, recipient, message):
        try:
            self._dial()  # Dial's errors come back raw
            try:
                self._send(recipient, message)
            except SmtpSendError as error:  # gomail.Send wraps what MAIL/RCPT/DATA say
                raise SmtpSendError(f"gomail: could not send email 1: {error}") from None
            finally:
                self._quit()  # DialAndSend: defer s.Close(), which is c.Quit()
        finally:
            if self.sock is not None:
                try:
                    self.sock.close()
                except OSError:
                    pass

    def _dial(self):
        self._connect()
        implicit_tls = int(self.settings.port_text) == 465  # gomail NewDialer: SSL: port == 465
        if implicit_tls:
            self._start_tls()
        self._read_response(220)  # smtp.NewClient reads the greeting
        self._hello()
        if not implicit_tls and "STARTTLS" in self.extensions:
            self._command(220, "STARTTLS")
            self._start_tls()
            self._hello()
        if self.settings.user and "AUTH" in self.extensions:
            self._auth()

    def _send(self, recipient, message):
        mail_command = f"MAIL FROM:<{self.settings.envelope_from}>"
        if "8BITMIME" in self.extensions:
            mail_command += " BODY=8BITMIME"
        self._command(250, mail_command)
        self._command(25, f"RCPT TO:<{recipient}>")
        self._command(354, "DATA")
        lines = message.split(b"\r\n")
        stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
        self._write(stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        self._read_response(250)


def route_smtp(host, port_text, relay_ports, relay_backends):
    """SmtpTarget for the stored host and port: see the routing comment above LOCAL_HOSTS.
    `relay_ports` maps the relay's listeners (core.IMPLICIT_TLS, core.STARTTLS) to local ports."""
    text = port_text.strip()
    if ":" in host:
        return SmtpTarget(error=f"dial tcp: address {host}:{text}: too many colons in address")
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        return SmtpTarget(error=f"dial tcp: address {host}:{text}: invalid port")
    port = int(text)
    name = host.lower().rstrip(".")
    if name in LOCAL_HOSTS:
        return SmtpTarget(port=port, remote=f"127.0.0.1:{port}")
    backend = relay_backends.for_host(name)
    if backend is None:
        return SmtpTarget(error=f"dial tcp: lookup {host}: no such host")
    remote = f"{backend.address}:{port}"
    listener = backend.ports.get(port)
    if listener is None:  # delay None: the caller fills in the connect timeout
        return SmtpTarget(error=f"dial tcp {remote}: i/o timeout", delay=None, remote=remote)
    if backend.targets is not None:  # a backend with its own server (e.g. the mailbox server's Postfix)
        return SmtpTarget(port=backend.targets[port], remote=remote)
    if listener not in relay_ports:  # no relay running in this sandbox
        return SmtpTarget(error=f"dial tcp {remote}: connect: connection refused", remote=remote)
    return SmtpTarget(port=relay_ports[listener], remote=remote)


# The Auth API


@dataclass
class _Call:
    """One Auth request on its way through the emulated GoTrue."""
    service: object
    ref: str
    config: dict
    path: str
    request: object
    key_role: str
    knobs: dict
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.time)
    auth_event: dict = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: bool = False
    timed_out: bool = False

    def log(self, event, **extra):
        self.service.write_log(self.ref, {**event, **extra})

    def request_fields(self):
        fields = {
            "component": "api",
            "method": self.request.method,
            "path": self.path,
            "referer": self.config.get("site_url") or "",
            "remote_addr": (self.request.headers.get("X-Forwarded-For") or "127.0.0.1").split(",")[0].strip(),
            "request_id": self.request_id,
        }
        if self.auth_event is not None:
            fields["auth_event"] = self.auth_event
        return fields


class SupabaseAuth(HttpService):
    name = "supabase_auth"

    def __init__(self, context):
        super().__init__(context)
        self._users = {}  # ref -> {email: user}
        self._team_members = {}  # ref -> set of addresses the built-in mailer may send to
        self._knobs = {}  # ref -> {knob: value}
        self._email_windows = {}  # ref -> (window opened at, mails sent) for rate_limit_email_sent

    # Shared state

    def _api(self):
        return self.context.service("supabase_api")

    def knobs(self, ref):
        with self.lock:
            values = {name: default for name, (default, _check, _what) in KNOBS.items()}
            values.update(self._knobs.get(ref, {}))
            return values

    def write_log(self, ref, event, at=None):
        event.setdefault("time", go_time(time.time() if at is None else at))
        self._api().append_auth_log(ref, event, at)

    # Request handling

    def _serve(self, request, path, endpoint):
        key = request.headers.get("apikey") or request.query.get("apikey")
        if not key:
            return Response(HTTPStatus.UNAUTHORIZED, NO_API_KEY_BODY)
        found = self._api().project_for_api_key(key)
        if found is None:
            return Response(HTTPStatus.UNAUTHORIZED, INVALID_API_KEY_BODY)
        ref, key_role = found
        bearer = request.bearer_token()
        if bearer is not None and bearer.startswith(NEW_API_KEY_PREFIXES) and bearer != key:
            return Response(HTTPStatus.UNAUTHORIZED, API_KEY_IN_AUTHORIZATION_BODY)
        call = _Call(self, ref, self._api().stored_auth_config(ref), path, request, key_role, self.knobs(ref))
        outcome = {}
        done = threading.Event()

        def work():
            try:
                outcome["body"] = endpoint(call)
            except AuthApiError as error:
                outcome["error"] = error
            except Exception:  # an emulator bug: say so loudly, answer as GoTrue would
                traceback.print_exc(file=sys.stderr)
                outcome["error"] = AuthApiError(500, "unexpected_failure",
                                                "Unexpected failure, please check server logs for more information",
                                                internal="Unhandled server error: sandbox emulator bug")
            with call.lock:
                call.finished = True
                late = call.timed_out
            if late and "error" in outcome and call.knobs["log_format"] == "split":
                # The handler goroutine outlives GoTrue's timeout middleware; its error still logs.
                self._log_error_line(call, outcome["error"])
            done.set()

        threading.Thread(target=work, name=f"supabase_auth{path}", daemon=True).start()
        timeout = call.config.get("api_max_request_duration") or DEFAULT_REQUEST_TIMEOUT_SECONDS
        if not done.wait(timeout):
            with call.lock:
                call.timed_out = not call.finished
            if call.timed_out:
                return self._error_response(call, AuthApiError(
                    HTTPStatus.GATEWAY_TIMEOUT, "request_timeout", REQUEST_TIMEOUT_MESSAGE,
                    internal="context deadline exceeded"))
            done.wait()
        if "error" in outcome:
            return self._error_response(call, outcome["error"])
        self._log_completed(call, HTTPStatus.OK)
        # GoTrue sends no X-Request-Id: the request id reaches a client only as `error_id` of a 5xx.
        return Response(HTTPStatus.OK, outcome["body"])

    def _api_version(self, call):
        value = call.request.headers.get("X-Supabase-Api-Version") or ""
        return value if re.match(r"^\d{4}-\d{2}-\d{2}$", value) and value >= "2024-01-01" else None

    def _error_response(self, call, error):
        # No X-Request-Id header (GoTrue sets none); a 5xx carries the request id as `error_id`, the
        # `request_id` of the request's log lines (supabase/auth internal/api/errors.go HandleResponseError:
        # `ErrorID: errorID` from `getRequestID(r.Context())` for status >= 500).
        headers = {"x-sb-error-code": error.error_code}
        if self._api_version(call):
            headers["X-Supabase-Api-Version"] = "2024-01-01"
            body = {"code": error.error_code, "message": error.message, **error.extra}
        else:
            body = {"code": error.status, "error_code": error.error_code, "msg": error.message}
            if error.status >= 500:
                body["error_id"] = call.request_id
            body.update(error.extra)
        if call.knobs["log_format"] == "split":
            self._log_error_line(call, error)
        self._log_completed(call, error.status, error)
        return Response(error.status, body, headers)

    def _log_error_line(self, call, error):
        level = "error" if error.status >= 500 else "warning" if error.status >= 400 else "info"
        call.log(call.request_fields(), error=error.cause, level=level, msg=error.text)

    def _log_completed(self, call, status, error=None):
        fields = call.request_fields()
        fields.update(duration=int((time.time() - call.started) * 1e9), msg="request completed", status=int(status))
        if error is not None:
            fields["error_code"] = error.error_code
        if call.knobs["log_format"] == "consolidated":
            fields["level"] = "error" if status >= 500 else "warning" if status >= 400 else "info"
            if error is not None:
                fields["error"] = error.cause
        else:
            fields["level"] = "info"
        call.log(fields)

    def _audit(self, call, action, actor, traits=None):
        """models.NewAuditLogEntry: sets auth_event on the request's log entry and logs audit_event."""
        log_types = {"user_signedup": "team", "user_invited": "team", "user_recovery_requested": "user",
                     "user_confirmation_requested": "user", "user_repeated_signup": "user", "login": "account"}
        payload = {"action": action, "actor_id": actor["id"], "actor_username": actor["email"] or "",
                   "actor_via_sso": False, "log_type": log_types.get(action, "user")}
        if traits is not None:
            payload["traits"] = traits
        call.auth_event = payload
        audit = {**payload, "audit_log_id": str(uuid.uuid4()), "created_at": iso_time(time.time()),
                 "ip_address": "", "request_id": call.request_id}
        user_agent = call.request.headers.get("User-Agent")
        if user_agent:
            audit["user_agent"] = user_agent
        call.log({"auth_audit_event": audit, "level": "info", "msg": "audit_event"})

    # Request bodies, as Go's encoding/json into GoTrue's param structs

    @staticmethod
    def _params(call, struct, fields):
        request = call.request
        if request.json_error is not None or not request.body.strip():
            raise AuthApiError(400, "bad_json",
                               f"Could not parse request body as JSON: {_go_json_syntax_error(request.body)}")
        body = request.json
        if not isinstance(body, dict):
            kind = "array" if isinstance(body, list) else type(body).__name__
            raise AuthApiError(400, "bad_json", f"Could not parse request body as JSON: json: cannot unmarshal "
                                                f"{kind} into Go value of type api.{struct}")
        for name, kind in fields.items():
            value = body.get(name)
            if value is not None and not isinstance(value, kind):
                found = "bool" if isinstance(value, bool) else "number" if isinstance(value, (int, float)) else \
                    "string" if isinstance(value, str) else "array" if isinstance(value, list) else "object"
                raise AuthApiError(400, "bad_json", f"Could not parse request body as JSON: json: cannot unmarshal "
                                                    f"{found} into Go struct field {struct}.{name} of type "
                                                    f"{_GO_JSON_TYPES[kind]}")
        return body

    @staticmethod
    def _validate_email(address):
        if not address:
            raise AuthApiError(400, "validation_failed", "An email address is required")
        if len(address) > 255:
            raise AuthApiError(400, "validation_failed", "An email address is too long")
        if not _EMAIL_FORMAT.match(address):
            raise AuthApiError(400, "validation_failed", "Unable to validate email address: invalid format")
        return address.lower()

    # Users

    def _user(self, ref, address):
        with self.lock:
            user = self._users.get(ref, {}).get(address)
            return dict(user) if user else None

    def _store_user(self, ref, user):
        with self.lock:
            self._users.setdefault(ref, {})[user["email"]] = dict(user)

    @staticmethod
    def _new_user(address, now, confirmed=False):
        stamp = iso_time(now)
        user_id = str(uuid.uuid4())
        # A new user has its email identity (GoTrue models/identity.go, NewIdentity with provider
        # "email"); only the obfuscated answer to a repeated signup has "identities": [] (GoTrue
        # api/signup.go, sanitizeUser; supabase-js docs of signUp: "an obfuscated / fake user
        # object is returned ... the identities array will be empty").
        identity = {"identity_id": str(uuid.uuid4()), "id": user_id, "user_id": user_id,
                    "identity_data": {"email": address, "email_verified": False, "phone_verified": False,
                                      "sub": user_id},
                    "provider": "email", "last_sign_in_at": stamp, "created_at": stamp, "updated_at": stamp,
                    "email": address}
        return {"id": user_id, "aud": "authenticated", "role": "authenticated", "email": address,
                "email_confirmed_at": stamp if confirmed else None, "phone": "", "invited_at": None,
                "confirmation_sent_at": None, "recovery_sent_at": None,
                "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {},
                "identities": [identity], "created_at": stamp, "updated_at": stamp, "is_anonymous": False}

    @staticmethod
    def _as_returned(user):
        returned = {name: value for name, value in user.items() if not name.startswith("_")}
        for name in ("confirmation_sent_at", "recovery_sent_at"):
            if isinstance(returned.get(name), float):
                returned[name] = iso_time(returned[name])
        return returned

    # Sending (GoTrue api/mail.go sendEmail + the template mailer + mailmeclient)

    def _check_frequency(self, call, sent_at):
        frequency = call.config.get("smtp_max_frequency") or 60  # 0 means GoTrue's default, 1 minute
        now = time.time()
        if sent_at is not None and sent_at + frequency > now:
            left = int(sent_at + frequency - now)
            raise AuthApiError(429, "over_email_send_rate_limit",
                               f"For security purposes, you can only request this after {left} seconds.")

    def _take_email_budget(self, call):
        """rate_limit_email_sent: mails per hour per project (GoTrue's IntervalLimiter)."""
        limit = call.config.get("rate_limit_email_sent") or 0
        now = time.monotonic()
        with self.lock:
            opened, count = self._email_windows.get(call.ref, (now, 0))
            if now - opened >= 3600:
                opened += (now - opened) // 3600 * 3600
                count = 0
            allowed = count < limit
            self._email_windows[call.ref] = (opened, count + 1 if allowed else count)
        if not allowed:
            raise AuthApiError(429, "over_email_send_rate_limit", "email rate limit exceeded")

    def _send(self, call, user, kind):
        """Render and send one mail to `user`; AuthApiError on refusal or failure."""
        config = call.config
        template_key, link_type, action_name = MAIL_KINDS[kind]
        recipient = user["email"]
        builtin = not config.get("smtp_host")
        if builtin:
            with self.lock:
                authorized = recipient in self._team_members.get(call.ref, set())
            if not authorized:
                raise AuthApiError(400, "email_address_not_authorized",
                                   f"Email address \"{recipient}\" cannot be used as it is not authorized")
        if not config.get("mailer_autoconfirm"):
            self._take_email_budget(call)
        otp = "".join(secrets.choice("0123456789") for _ in range(config.get("mailer_otp_length") or 6))
        token_hash = hashlib.sha224((recipient + otp).encode()).hexdigest()
        site_url = config.get("site_url") or ""
        confirmation_url = (f"https://{call.ref}.supabase.co{AUTH_BASE_PATH}/verify?token={quote(token_hash)}"
                            f"&type={link_type}&redirect_to={quote(site_url, safe=':/')}")
        data = {"ConfirmationURL": confirmation_url, "Token": otp, "TokenHash": token_hash, "SiteURL": site_url,
                "Email": recipient, "RedirectTo": site_url, "Data": user.get("user_metadata") or {}}
        subject = render_template(config.get(f"mailer_subjects_{template_key}") or template_key, data)
        html = render_template(config.get(f"mailer_templates_{template_key}_content") or "", data)
        if builtin:
            from_header = BUILTIN_MAILER_FROM
            error = None  # Supabase's own mailer: nothing reaches the sandbox's relay
        else:
            from_header = format_address(config.get("smtp_admin_email") or "", config.get("smtp_sender_name") or "")
            error = self._smtp_send(call, from_header, recipient, subject, html)
        if call.knobs["smtp_logging_enabled"]:
            # mailmeclient logs mail.send in a defer: for every attempt, failed ones included.
            call.log({"event": "mail.send", "level": "info", "mail_from": from_header, "mail_to": recipient,
                      "mail_type": template_key, "msg": "mail.send"})
        if error is not None:
            raise AuthApiError(500, "unexpected_failure", f"Error sending {action_name} email", internal=error)

    def _smtp_send(self, call, from_header, recipient, subject, html):
        """None when the relay accepted the mail, else Go's error text."""
        config = call.config
        relay = self.context.services.get("smtp_relay")
        relay_ports = dict(relay.ports) if relay is not None else {}
        host, port_text = config.get("smtp_host") or "", config.get("smtp_port") or "587"
        target = route_smtp(host, port_text, relay_ports, self.context.relay_backends)
        connect_timeout = call.knobs["smtp_connect_timeout_seconds"]
        if target.error and target.delay is None:
            target.delay = connect_timeout  # a dropped SYN: the dial waits its whole timeout
        settings = SmtpSettings(host=host, port_text=port_text, user=config.get("smtp_user") or "",
                                password=config.get("smtp_pass") or "", local_name=f"{call.ref}.supabase.co",
                                from_header=from_header, envelope_from=config.get("smtp_admin_email") or "")
        message = build_message(from_header, recipient, subject, html, time.time())
        try:
            tls = self.context.tls
            _SmtpConversation(settings, target, str(tls.ca_cert), connect_timeout, tls.names).run(recipient, message)
        except SmtpSendError as error:
            return str(error)
        return None

    # Endpoints

    @route("POST", AUTH_BASE_PATH + "/signup")
    def signup(self, request):
        return self._serve(request, "/signup", self._signup)

    @route("POST", AUTH_BASE_PATH + "/otp")
    def otp(self, request):
        return self._serve(request, "/otp", self._otp)

    @route("POST", AUTH_BASE_PATH + "/magiclink")
    def magiclink(self, request):
        return self._serve(request, "/magiclink", self._magic_link)

    @route("POST", AUTH_BASE_PATH + "/recover")
    def recover(self, request):
        return self._serve(request, "/recover", self._recover)

    @route("POST", AUTH_BASE_PATH + "/resend")
    def resend(self, request):
        return self._serve(request, "/resend", self._resend)

    @route("POST", AUTH_BASE_PATH + "/invite")
    def invite(self, request):
        return self._serve(request, "/invite", self._invite)

    @route("GET", AUTH_BASE_PATH + "/health")
    def health(self, request):
        return self._serve(request, "/health", lambda call: {
            "version": "sandbox", "name": "GoTrue", "description": "GoTrue is a user registration and "
                                                                   "authentication API"})

    def _signup(self, call, body=None, password=None):
        config = call.config
        if config.get("disable_signup"):
            raise AuthApiError(422, "signup_disabled", "Signups not allowed for this instance")
        if body is None:
            body = self._params(call, "SignupParams", {"email": str, "password": str, "phone": str, "data": dict})
            password = body.get("password") or ""
            if not password:
                raise AuthApiError(400, "validation_failed", "Signup requires a valid password")
            check_password_strength(config, password)
        if not config.get("external_email_enabled", True):
            raise AuthApiError(400, "email_provider_disabled", "Email signups are disabled")
        address = self._validate_email(body.get("email") or "")
        now = time.time()
        user = self._user(call.ref, address)
        if user is not None and user["email_confirmed_at"]:
            self._audit(call, "user_repeated_signup", user, {"provider": "email"})
            if config.get("mailer_autoconfirm"):
                raise AuthApiError(422, "user_already_exists", "User already registered")
            return self._as_returned({**self._new_user(address, now), "identities": []})  # obfuscated
        user = user or self._new_user(address, now)
        if config.get("mailer_autoconfirm"):
            self._audit(call, "user_signedup", user, {"provider": "email"})
            user["email_confirmed_at"] = iso_time(now)
            self._store_user(call.ref, user)
            self._audit(call, "login", user, {"provider": "email"})
            return {"access_token": secrets.token_urlsafe(32), "token_type": "bearer", "expires_in": 3600,
                    "expires_at": int(now) + 3600, "refresh_token": secrets.token_urlsafe(12),
                    "user": self._as_returned(user)}
        self._audit(call, "user_confirmation_requested", user, {"provider": "email"})
        self._check_frequency(call, user["confirmation_sent_at"])
        self._send(call, user, "confirmation")  # a failure rolls the new user back: nothing is stored
        user["confirmation_sent_at"] = time.time()
        self._store_user(call.ref, user)
        return self._as_returned(user)

    def _otp(self, call):
        body = self._params(call, "OtpParams", {"email": str, "phone": str, "create_user": bool, "data": dict})
        address, phone = body.get("email") or "", body.get("phone") or ""
        if address and phone:
            raise AuthApiError(400, "validation_failed", "Only an email address or phone number should be provided")
        create_user = body.get("create_user", True)
        if create_user is False and address:
            if self._user(call.ref, self._validate_email(address)) is None:
                raise AuthApiError(422, "otp_disabled", "Signups not allowed for otp")
        if address:
            return self._magic_link(call, body)
        if phone:
            raise AuthApiError(400, "phone_provider_disabled", "Unsupported phone provider")
        raise AuthApiError(400, "validation_failed", "One of email or phone must be set")

    def _magic_link(self, call, body=None):
        config = call.config
        if not config.get("external_email_enabled", True):
            raise AuthApiError(422, "email_provider_disabled", "Email logins are disabled")
        if body is None:
            body = self._params(call, "MagicLinkParams", {"email": str, "data": dict})
        if not body.get("email"):
            raise AuthApiError(422, "validation_failed", "Password recovery requires an email")
        address = self._validate_email(body["email"])
        user = self._user(call.ref, address)
        if user is None or not user["email_confirmed_at"]:
            # A new or unconfirmed user gets signed up: the confirmation mail is the magic link.
            password = secrets.token_urlsafe(24)
            self._signup(call, {"email": address}, password)
            if not config.get("mailer_autoconfirm"):
                return {}
            user = self._user(call.ref, address)
        self._audit(call, "user_recovery_requested", user)
        self._check_frequency(call, user["recovery_sent_at"])
        self._send(call, user, "magic_link")
        user["recovery_sent_at"] = time.time()
        self._store_user(call.ref, user)
        return {}

    def _recover(self, call):
        body = self._params(call, "RecoverParams", {"email": str})
        if not body.get("email"):
            raise AuthApiError(400, "validation_failed", "Password recovery requires an email")
        address = self._validate_email(body["email"])
        user = self._user(call.ref, address)
        if user is None:
            return {}  # 200 also for an unknown address: no mail
        self._audit(call, "user_recovery_requested", user)
        self._check_frequency(call, user["recovery_sent_at"])
        self._send(call, user, "recovery")
        user["recovery_sent_at"] = time.time()
        self._store_user(call.ref, user)
        return {}

    def _resend(self, call):
        body = self._params(call, "ResendConfirmationParams", {"type": str, "email": str, "phone": str})
        kind = body.get("type") or ""
        if kind not in ("signup", "email_change", "sms", "phone_change"):
            raise AuthApiError(400, "validation_failed",
                               "Missing one of these types: signup, email_change, sms, phone_change")
        if kind == "signup" and not body.get("email"):
            raise AuthApiError(400, "validation_failed", "Type provided requires an email address")
        if kind in ("sms", "phone_change"):
            raise AuthApiError(400, "validation_failed", "Type provided requires a phone number")
        if not call.config.get("external_email_enabled", True):
            raise AuthApiError(400, "email_provider_disabled", "Email logins are disabled")
        address = self._validate_email(body.get("email") or "")
        user = self._user(call.ref, address)
        if user is None or kind == "email_change" or user["email_confirmed_at"]:
            return {}  # unknown user, confirmed already, or no pending email change: nothing to send
        self._audit(call, "user_confirmation_requested", user)
        self._check_frequency(call, user["confirmation_sent_at"])
        self._send(call, user, "confirmation")
        user["confirmation_sent_at"] = time.time()
        self._store_user(call.ref, user)
        return {}

    def _require_admin(self, call):
        """requireAdminCredentials: a service_role bearer. A publishable or secret key in `apikey` with
        no Authorization header, or with `Authorization: Bearer <the same key>`, reaches GoTrue with
        the gateway's JWT for the key's role in its place (anon, service_role); a different new-style
        key in Authorization never gets here (the gateway's 401 in _serve). A legacy JWT bearer is
        checked as it is."""
        token = call.request.bearer_token()
        apikey = call.request.headers.get("apikey") or call.request.query.get("apikey") or ""
        if apikey.startswith(NEW_API_KEY_PREFIXES) and token in (None, apikey):
            if call.key_role != "service_role":
                raise AuthApiError(403, "not_admin", "User not allowed")
            return
        if token is None:
            raise AuthApiError(401, "no_authorization", "This endpoint requires a valid Bearer token")
        found = self._api().project_for_api_key(token)
        if found is None or found[0] != call.ref:
            if token.count(".") != 2:
                raise AuthApiError(403, "bad_jwt", "invalid JWT: unable to parse or verify signature, token is "
                                                   "malformed: token contains an invalid number of segments")
            raise AuthApiError(403, "bad_jwt", "invalid JWT: unable to parse or verify signature, token "
                                               "signature is invalid: signature is invalid")
        if found[1] != "service_role":
            raise AuthApiError(403, "not_admin", "User not allowed")

    def _invite(self, call):
        self._require_admin(call)
        body = self._params(call, "InviteParams", {"email": str, "data": dict})
        address = self._validate_email(body.get("email") or "")
        now = time.time()
        user = self._user(call.ref, address)
        if user is not None and user["email_confirmed_at"]:
            raise AuthApiError(422, "email_exists", "A user with this email address has already been registered")
        user = user or self._new_user(address, now)
        admin = {"id": NIL_UUID, "email": "service_role"}
        self._audit(call, "user_invited", admin, {"user_email": address, "user_id": user["id"]})
        self._send(call, user, "invite")
        user["invited_at"] = iso_time(time.time())
        user["confirmation_sent_at"] = time.time()
        self._store_user(call.ref, user)
        return self._as_returned(user)

    # Control API

    def _known_project(self, ref):
        if self._api().stored_auth_config(ref) is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no project {ref}")

    @control_route("GET", "/supabase-auth/projects/{ref}/users")
    def control_users(self, request, ref):
        self._known_project(ref)
        with self.lock:
            users = [self._as_returned(user) for user in self._users.get(ref, {}).values()]
        return Response(HTTPStatus.OK, users)

    @control_route("POST", "/supabase-auth/projects/{ref}/users")
    def control_add_user(self, request, ref):
        """A user as if signed up (and, with "confirmed": true, confirmed) earlier: no mail, no log."""
        self._known_project(ref)
        body = json_object(request)
        address = body.get("email")
        if not isinstance(address, str) or not _EMAIL_FORMAT.match(address):
            raise HttpError(HTTPStatus.BAD_REQUEST, "email must be an email address")
        user = self._new_user(address.lower(), time.time(), confirmed=bool(body.get("confirmed", True)))
        self._store_user(ref, user)
        return Response(HTTPStatus.OK, self._as_returned(user))

    @control_route("POST", "/supabase-auth/projects/{ref}/team-members")
    def control_add_team_member(self, request, ref):
        """An address the built-in mailer (no custom SMTP) may send to: a member of the project's team."""
        self._known_project(ref)
        address = json_object(request).get("email")
        if not isinstance(address, str) or not _EMAIL_FORMAT.match(address):
            raise HttpError(HTTPStatus.BAD_REQUEST, "email must be an email address")
        with self.lock:
            members = self._team_members.setdefault(ref, set())
            members.add(address.lower())
            return Response(HTTPStatus.OK, sorted(members))

    @control_route("GET", "/supabase-auth/projects/{ref}/knobs")
    def control_get_knobs(self, request, ref):
        self._known_project(ref)
        return Response(HTTPStatus.OK, self.knobs(ref))

    @control_route("POST", "/supabase-auth/projects/{ref}/knobs")
    def control_set_knobs(self, request, ref):
        """Change this project's emulated-Auth knobs; null restores a knob's default."""
        self._known_project(ref)
        body = json_object(request)
        unknown = set(body) - set(KNOBS)
        if unknown:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown knobs: {', '.join(sorted(unknown))}")
        for name, value in body.items():
            _default, check, what = KNOBS[name]
            if value is not None and not check(value):
                raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be {what}")
        with self.lock:
            own = self._knobs.setdefault(ref, {})
            for name, value in body.items():
                if value is None:
                    own.pop(name, None)
                else:
                    own[name] = value
        return Response(HTTPStatus.OK, self.knobs(ref))
