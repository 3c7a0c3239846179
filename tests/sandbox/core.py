"""The sandbox's shared machinery: HTTP serving and routing, the request journal, fault injection,
rate-limit windows and the TLS files every emulator shares.

An emulator is a `Service` subclass in its own module, listed in `tests/sandbox/__main__.py`.
HTTP emulators subclass `HttpService` and mark handler methods with `@route`; methods marked
with `@control_route` are served by the control API, so a test can drive the emulator.

A provider whose SMTP relay Supabase Auth may be configured with registers a `RelayBackend` on
`context.relay_backends` (its host names, ports, login and sender checks): the SMTP relay, the
emulated Supabase Auth's routing and the server certificate read them from there, so none of them
names a provider.
"""

import hashlib
import http.server
import json
import math
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import trustme

LOCALHOST = "127.0.0.1"

# Request headers worth keeping in the journal; anything else (Authorization, API keys) stays out.
JOURNALED_HEADERS = ("Content-Type", "User-Agent", "Accept")


class HttpError(Exception):
    """Raised by a handler to answer `status` with the service's error body for `message`."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    query: dict  # name -> last value
    headers: object  # http.client.HTTPMessage: case-insensitive .get()
    body: bytes
    route: str = ""  # "METHOD /pattern/{param}", set by the router; names an endpoint
    json: object = None
    json_error: str = None  # why a non-empty body is not JSON

    def __post_init__(self):
        if self.body.strip():
            try:
                self.json = json.loads(self.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as error:
                self.json_error = str(error)

    def bearer_token(self):
        scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        return credentials.strip()


@dataclass
class Response:
    status: int
    body: object = None  # a JSON value; str or bytes are sent as they are
    headers: dict = field(default_factory=dict)

    def encoded(self):
        """(bytes, default Content-Type or None) for this body."""
        if self.body is None:
            return b"", None
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode("utf-8"), "application/json; charset=utf-8"


def route(method, pattern):
    """Mark a service method as the handler of `method pattern`; `{name}` segments become kwargs."""
    def mark(handler):
        handler.route = (method, pattern)
        return handler
    return mark


def control_route(method, pattern):
    """Mark a service method as a control-API handler (served on the control port, not journaled)."""
    def mark(handler):
        handler.control_route = (method, pattern)
        return handler
    return mark


class Router:
    def __init__(self):
        self._routes = []  # (method, pattern, regex, handler)

    def add(self, method, pattern, handler):
        regex = re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$")
        self._routes.append((method, pattern, regex, handler))

    def add_marked(self, owner, marker):
        """Add every method of `owner` marked by @route (marker "route") or @control_route."""
        for name in dir(type(owner)):
            method_and_pattern = getattr(getattr(type(owner), name), marker, None)
            if method_and_pattern:
                self.add(*method_and_pattern, getattr(owner, name))

    def match(self, request):
        """("METHOD /pattern", params) of the route `request` would be dispatched to, or (None, {})."""
        for method, pattern, regex, _handler in self._routes:
            found = regex.match(request.path)
            if found and method == request.method:
                return f"{method} {pattern}", {name: urllib.parse.unquote(value)
                                                for name, value in found.groupdict().items()}
        return None, {}

    def dispatch(self, request):
        """Call the matching handler; unknown path → 404, known path with another method → 405."""
        path_matched = False
        for method, pattern, regex, handler in self._routes:
            match = regex.match(request.path)
            if not match:
                continue
            path_matched = True
            if method == request.method:
                request.route = f"{method} {pattern}"
                params = {name: urllib.parse.unquote(value) for name, value in match.groupdict().items()}
                return handler(request, **params)
        if path_matched:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "Method Not Allowed")
        raise HttpError(HTTPStatus.NOT_FOUND, f"Cannot {request.method} {request.path}")


class Journal:
    """Every request an emulator answered (or a fault swallowed), oldest first. Test-only: it keeps
    parsed request bodies, secrets included, but never headers that carry credentials."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = []
        self._next_seq = 1

    def record(self, **entry):
        with self._lock:
            entry = {"seq": self._next_seq, "time": time.time(), **entry}
            self._next_seq += 1
            self._entries.append(entry)
            return entry

    def entries(self, service=None, path_contains=None, method=None):
        with self._lock:
            return [
                entry for entry in self._entries
                if (service is None or entry["service"] == service)
                and (path_contains is None or path_contains in entry["path"])
                and (method is None or entry["method"] == method.upper())
            ]

    def clear(self):
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            return count


FAULT_ACTIONS = ("status", "drop", "delay", "drop_answer")


@dataclass
class Fault:
    id: int
    service: str
    action: str
    method: str = None
    path_contains: str = None
    # A substring of the request body (HTTP only): aims a fault at one client's write among parallel
    # ones whose paths are the same (an API whose create names its object only in the body).
    body_contains: str = None
    times: int = 1  # -1 = forever
    status: int = None
    headers: dict = None
    body: object = None
    seconds: float = 0.0
    # A `status` fault whose body quotes the request (headers and body), as some proxies and
    # error pages do: what a client's redaction must survive.
    echo_request: bool = None

    @classmethod
    def from_spec(cls, fault_id, spec):
        """Build a fault from a control-API spec, or raise ValueError saying what is wrong."""
        unknown = set(spec) - {"service", "method", "path_contains", "body_contains", "action", "times",
                               "status", "headers", "body", "seconds", "echo_request"}
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        if not isinstance(spec.get("service"), str):
            raise ValueError("service is required")
        if spec.get("action") not in FAULT_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(FAULT_ACTIONS)}")
        if spec.get("body_contains") is not None and (not isinstance(spec["body_contains"], str)
                                                      or not spec["body_contains"]):
            raise ValueError("body_contains must be a non-empty string")
        times = spec.get("times", 1)
        if not _is_int(times) or (times < 1 and times != -1):
            raise ValueError("times must be a positive integer or -1 (forever)")
        fault = cls(id=fault_id, service=spec["service"], action=spec["action"],
                    method=spec["method"].upper() if spec.get("method") else None,
                    path_contains=spec.get("path_contains"), body_contains=spec.get("body_contains"),
                    times=times)
        if fault.action == "status":
            if not _is_int(spec.get("status")) or not 100 <= spec["status"] <= 599:
                raise ValueError("status must be an HTTP status code")
            if not isinstance(spec.get("headers", {}), dict):
                raise ValueError("headers must be an object")
            fault.status, fault.headers, fault.body = spec["status"], spec.get("headers", {}), spec.get("body")
            if spec.get("echo_request") not in (None, False, True):
                raise ValueError("echo_request must be true or false")
            fault.echo_request = spec.get("echo_request") or None
        if fault.action == "delay":
            seconds = spec.get("seconds")
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
                raise ValueError("seconds must be a number >= 0")
            fault.seconds = float(seconds)
        return fault

    def matches(self, service, method, path, body=None):
        return (self.service == service
                and (self.method is None or self.method == method)
                and (self.path_contains is None or self.path_contains in path)
                and (self.body_contains is None or self.body_contains in (body or "")))

    def as_dict(self):
        return {name: value for name, value in self.__dict__.items() if value is not None}


class FaultInjector:
    """Faults queued by tests; the first queued fault matching a request answers it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []
        self._next_id = 1

    def add(self, spec):
        with self._lock:
            fault = Fault.from_spec(self._next_id, spec)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def take(self, service, method, path, body=None):
        """The fault for this request, if any; uses up one of its `times`. `body` is the request
        body as text, for faults with `body_contains` (a request without one never matches them)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(service, method, path, body):
                    if fault.times != -1:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
            return None

    def list(self):
        with self._lock:
            return [fault.as_dict() for fault in self._faults]

    def remove(self, fault_id):
        with self._lock:
            before = len(self._faults)
            self._faults = [fault for fault in self._faults if fault.id != fault_id]
            return before != len(self._faults)

    def clear(self):
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count


@dataclass
class RateLimitWindow:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


class FixedWindowRateLimiter:
    """Counts requests per key in fixed windows that open with the key's first request."""

    def __init__(self):
        self._lock = threading.Lock()
        self._windows = {}  # key -> (opened_at, count)

    def hit(self, key, limit, window_seconds):
        now = time.monotonic()
        with self._lock:
            opened_at, count = self._windows.get(key, (now, 0))
            if now - opened_at >= window_seconds:
                opened_at, count = now, 0
            count += 1
            self._windows[key] = (opened_at, count)
        return RateLimitWindow(
            allowed=count <= limit,
            limit=limit,
            remaining=max(limit - count, 0),
            # Rounded first: (t + 60) - t can come out as 60.000000000001, which would ceil to 61.
            reset_seconds=max(math.ceil(round(opened_at + window_seconds - now, 6)), 0),
        )

    def peek(self, key, limit, window_seconds):
        """The key's window as `hit` would report it, without counting a request."""
        now = time.monotonic()
        with self._lock:
            opened_at, count = self._windows.get(key, (now, 0))
        if now - opened_at >= window_seconds:
            opened_at, count = now, 0
        return RateLimitWindow(allowed=count <= limit, limit=limit, remaining=max(limit - count, 0),
                               reset_seconds=max(math.ceil(round(opened_at + window_seconds - now, 6)), 0))

    def forget(self, key_matches):
        with self._lock:
            for key in [key for key in self._windows if key_matches(key)]:
                del self._windows[key]


# Names on the sandbox's server certificate besides the relay host names of the registered relay
# backends (RelayBackend.hosts), which are added when the certificate is made.
BASE_CERT_NAMES = ("127.0.0.1", "localhost")

# How a relay port speaks TLS (RelayBackend.ports values; also the SMTP relay's listener names).
IMPLICIT_TLS = "implicit_tls"  # TLS from the first byte (e.g. 465)
STARTTLS = "starttls"  # plain greeting, then STARTTLS (e.g. 587, 2525)
RELAY_TLS_MODES = (IMPLICIT_TLS, STARTTLS)

# Where a relay refuses a sender that is not verified (RelayBackend.sender_check).
MAIL_FROM = "mail_from"  # the envelope sender, at MAIL FROM
END_OF_DATA = "end_of_data"  # the message's From header, after the data
SENDER_CHECK_STAGES = (MAIL_FROM, END_OF_DATA)
# Only for a backend with its own server (RelayBackend.targets): the envelope sender, judged at RCPT
# TO (Postfix's default, smtpd_delay_reject = yes). The shared relay has no such stage.
RCPT_TO = "rcpt_to"

# The relay's answer to a login that no backend claims, when no backend names its own
# (RFC 4954 section 6, "535 5.7.8 Authentication credentials invalid").
GENERIC_AUTH_FAILED_REPLY = "535 5.7.8 Authentication credentials invalid"


@dataclass(frozen=True)
class RelayBackend:
    """What one provider's SMTP relay is, for the sandbox's shared SMTP relay and for Supabase Auth.

    An emulator registers one with `context.relay_backends.register(...)` in its __init__. Then:
    its `hosts` are on the server certificate and Supabase Auth routes a stored `smtp_host` among
    them to the local relay (the port decides the listener: `ports[port]` is IMPLICIT_TLS or
    STARTTLS; a port not listed is silently dropped, reported with `address`); the relay's AUTH
    asks every backend's `authenticate(login, password)`, which answers None for a login that is
    not one of its own, else (ok, SMTP reply) or (ok, SMTP reply, identity); the backend that claimed
    the login then answers `sender_allowed(identity, mail_from)` -> (ok, SMTP reply), where identity is
    what it named (its account, when the login is one fixed word such as "apikey") or else the login,
    at its `sender_check` stage (MAIL_FROM
    or END_OF_DATA) unless the relay knob `sender_check` says otherwise.

    A backend that runs its own SMTP server instead (the mailbox server: a real Postfix) names its
    local listeners in `targets` (published port -> local port): Supabase Auth dials those, the shared
    relay never sees its logins, so it needs no `authenticate`/`sender_allowed`, and its
    `sender_check` may also be RCPT_TO."""
    name: str  # short provider name, e.g. in error messages
    hosts: tuple  # SMTP host names, lower case
    ports: dict  # port -> IMPLICIT_TLS | STARTTLS: the ports the provider publishes
    authenticate: object = None  # (login, password) -> None | (ok, reply) | (ok, reply, identity)
    sender_allowed: object = None  # (identity or login, mail_from) -> (ok, reply)
    sender_check: str = END_OF_DATA
    # A documentation address standing in for the provider's in Go's dial errors (no real one here).
    address: str = "203.0.113.25"
    # The reply to a login no backend claims, if this provider should give it (at most the first
    # registered backend that sets it is used; else GENERIC_AUTH_FAILED_REPLY).
    unknown_login_reply: str = None
    # port -> local port on 127.0.0.1 of the backend's own server (one entry per port in `ports`),
    # or None: the shared relay's listener for the port's TLS mode.
    targets: dict = None

    def problem(self):
        """None when the backend is well formed, else what is wrong."""
        if not self.name or not self.hosts:
            return "a relay backend needs a name and at least one host"
        if any(not isinstance(host, str) or host != host.lower().rstrip(".") or not host for host in self.hosts):
            return f"relay backend {self.name}: hosts must be lower-case names without a final dot"
        if not self.ports or any(not _is_int(port) or not 0 < port < 65536 or mode not in RELAY_TLS_MODES
                                 for port, mode in self.ports.items()):
            return f"relay backend {self.name}: ports must map port numbers to {' or '.join(RELAY_TLS_MODES)}"
        stages = SENDER_CHECK_STAGES + ((RCPT_TO,) if self.targets is not None else ())
        if self.sender_check not in stages:
            return f"relay backend {self.name}: sender_check must be one of {', '.join(stages)}"
        if self.targets is not None:
            if set(self.targets) != set(self.ports) or not all(
                    _is_int(port) and 0 < port < 65536 for port in self.targets.values()):
                return f"relay backend {self.name}: targets must map each of its ports to a local port"
            if self.authenticate is not None or self.sender_allowed is not None:
                return f"relay backend {self.name}: a backend with its own targets checks logins itself"
        elif not callable(self.authenticate) or not callable(self.sender_allowed):
            return f"relay backend {self.name}: authenticate and sender_allowed must be callables"
        return None


class RelayBackends:
    """The relay backends of one sandbox, in registration order (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._backends = []
        self._closed_reason = None  # set once the certificate is made: no new host can join it

    def register(self, backend):
        problem = backend.problem()
        if problem:
            raise ValueError(problem)
        with self._lock:
            if self._closed_reason:
                raise RuntimeError(f"relay backend {backend.name} registered too late: {self._closed_reason}")
            taken = {host: other.name for other in self._backends for host in other.hosts}
            clash = [host for host in backend.hosts if host in taken]
            if clash or any(other.name == backend.name for other in self._backends):
                raise ValueError(f"relay backend {backend.name}: name or hosts already registered ({clash})")
            self._backends.append(backend)
        return backend

    def close(self, reason):
        with self._lock:
            self._closed_reason = reason

    def all(self):
        with self._lock:
            return list(self._backends)

    def host_names(self):
        return tuple(host for backend in self.all() for host in backend.hosts)

    def for_host(self, host):
        """The backend whose SMTP host `host` is (case-insensitive, a final dot ignored), or None."""
        name = (host or "").lower().rstrip(".")
        return next((backend for backend in self.all() if name in backend.hosts), None)

    def authenticate(self, login, password):
        """(backend, (ok, reply)) for the first backend that claims `login`; (None, (False, reply))
        when none does."""
        for backend in self.all():
            if backend.authenticate is None:  # its own server checks its logins (targets)
                continue
            verdict = backend.authenticate(login, password)
            if verdict is not None:
                return backend, verdict
        return None, (False, self.unknown_login_reply())

    def unknown_login_reply(self):
        return next((backend.unknown_login_reply for backend in self.all() if backend.unknown_login_reply),
                    GENERIC_AUTH_FAILED_REPLY)


@dataclass
class TlsFiles:
    """A throwaway CA and one server certificate for every name the sandbox's TLS servers answer to:
    127.0.0.1, localhost and the relay host names Supabase Auth is configured with."""
    ca_cert: Path
    server_cert: Path  # certificate chain, PEM
    server_key: Path
    names: tuple = BASE_CERT_NAMES  # the names on the server certificate

    @classmethod
    def create(cls, state_dir, extra_names=()):
        state_dir = Path(state_dir)
        names = tuple(dict.fromkeys((*BASE_CERT_NAMES, *extra_names)))
        ca = trustme.CA(organization_name="karto.supabase_mail sandbox")
        server = ca.issue_cert(*names)
        files = cls(state_dir / "ca.pem", state_dir / "server.pem", state_dir / "server.key", names)
        ca.cert_pem.write_to_path(str(files.ca_cert))
        for index, blob in enumerate(server.cert_chain_pems):
            blob.write_to_path(str(files.server_cert), append=index > 0)
        server.private_key_pem.write_to_path(str(files.server_key))
        files.server_key.chmod(0o600)
        return files

    def server_ssl_context(self):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.server_cert), str(self.server_key))
        return context


class SandboxContext:
    """What every service shares: state dir, TLS files, journal, faults, and the other services."""

    def __init__(self, state_dir):
        self.state_dir = Path(state_dir)
        self.journal = Journal()
        self.faults = FaultInjector()
        self.services = {}  # name -> Service
        self.relay_backends = RelayBackends()
        self._tls = None
        self._tls_lock = threading.Lock()

    @property
    def tls(self):
        """The TLS files, made on first use (in start(), once every service registered its relay
        backend): the certificate carries BASE_CERT_NAMES and every backend's hosts."""
        with self._tls_lock:
            if self._tls is None:
                self.relay_backends.close("the server certificate is already made")
                self._tls = TlsFiles.create(self.state_dir, self.relay_backends.host_names())
            return self._tls

    def service(self, name):
        return self.services[name]


class Service:
    """Anything the sandbox runs. `name` is its key in the endpoints file, journal and faults."""
    name = None

    def __init__(self, context):
        self.context = context
        context.services[self.name] = self

    def seed_demo(self):
        """Create the demo data of `--seed default` (see seed.py)."""

    def start(self):
        """Start listening on 127.0.0.1; return the endpoints-file entries for this service."""
        raise NotImplementedError

    def stop(self):
        pass


class HttpService(Service):
    """An HTTP emulator: its @route methods answer requests, serialised by `self.lock` where they
    touch state. Requests are journaled and can be faulted (see FaultInjector)."""
    journaled = True

    def __init__(self, context):
        super().__init__(context)
        self.lock = threading.Lock()
        self.router = Router()
        self.router.add_marked(self, "route")
        self._server = None

    def error_body(self, message):
        """The provider's error shape; override per provider."""
        return {"message": message}

    def fault_headers(self, request, status):
        """Headers the real service would put on an answer it gives with `status` to `request`, for a
        `status` fault (e.g. rate-limit headers); the fault's own `headers` win. Override per provider."""
        return {}

    def handle(self, request):
        try:
            return self.router.dispatch(request)
        except HttpError as error:
            return Response(error.status, self.error_body(error.message), error.headers)
        except Exception:  # an emulator bug: say so loudly, answer like a server would
            traceback.print_exc(file=sys.stderr)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, self.error_body("Internal server error"))

    def start(self):
        self._server = _SandboxHttpServer((LOCALHOST, 0), _RequestHandler)
        self._server.service = self
        # A short poll interval keeps shutdown (which waits for the next poll) quick.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name=f"{self.name}-http", daemon=True).start()
        host, port = self._server.server_address[:2]
        return {self.name: f"http://{host}:{port}"}

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()


class ControlApi(HttpService):
    """The test-facing API: journal, faults, and every service's @control_route handlers."""
    name = "control"
    journaled = False

    def __init__(self, context):
        super().__init__(context)
        for service in context.services.values():
            if service is not self:
                self.router.add_marked(service, "control_route")

    @route("GET", "/journal")
    def get_journal(self, request):
        return Response(HTTPStatus.OK, self.context.journal.entries(
            service=request.query.get("service"),
            path_contains=request.query.get("path_contains"),
            method=request.query.get("method"),
        ))

    @route("DELETE", "/journal")
    def clear_journal(self, request):
        return Response(HTTPStatus.OK, {"cleared": self.context.journal.clear()})

    @route("GET", "/faults")
    def list_faults(self, request):
        return Response(HTTPStatus.OK, self.context.faults.list())

    @route("POST", "/faults")
    def add_fault(self, request):
        spec = json_object(request)
        if spec.get("service") not in self.context.services or spec.get("service") == self.name:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown service {spec.get('service')!r}")
        try:
            fault = self.context.faults.add(spec)
        except ValueError as error:
            raise HttpError(HTTPStatus.BAD_REQUEST, str(error)) from None
        return Response(HTTPStatus.OK, {"id": fault.id})

    @route("GET", "/relay-backends")
    def list_relay_backends(self, request):
        """The registered relay backends, as data (no callables)."""
        return Response(HTTPStatus.OK, [{
            "name": backend.name, "hosts": list(backend.hosts), "address": backend.address,
            "ports": {str(port): mode for port, mode in sorted(backend.ports.items())},
            "sender_check": backend.sender_check,
            "targets": ({str(port): local for port, local in sorted(backend.targets.items())}
                        if backend.targets is not None else None),
        } for backend in self.context.relay_backends.all()])

    @route("DELETE", "/faults")
    def clear_faults(self, request):
        return Response(HTTPStatus.OK, {"cleared": self.context.faults.clear()})

    @route("DELETE", "/faults/{fault_id}")
    def remove_fault(self, request, fault_id):
        if not fault_id.isdigit() or not self.context.faults.remove(int(fault_id)):
            raise HttpError(HTTPStatus.NOT_FOUND, f"no fault {fault_id}")
        return Response(HTTPStatus.OK, {"cleared": 1})


@contextmanager
def run_services(state_dir, service_classes, seed=False):
    """Make a context, one instance of each class (in order), the control API (last: it serves the
    others' control routes); seed if asked; start them all. Yields (context, endpoints); stops them
    in reverse order on the way out. `python -m tests.sandbox` runs this with SERVICES; a test can
    run it in-process with its own list (e.g. a relay backend of its own)."""
    context = SandboxContext(state_dir)
    services = [service_class(context) for service_class in service_classes]
    control = ControlApi(context)
    if seed:
        for service in services:
            service.seed_demo()
    started = []
    try:
        endpoints = {}
        for service in (control, *services):
            endpoints.update(service.start())
            started.append(service)
        endpoints.update(ca_cert=str(context.tls.ca_cert), state_dir=str(context.state_dir))
        yield context, endpoints
    finally:
        for service in reversed(started):
            service.stop()


def json_object(request):
    """The request body as a JSON object, or a 400 in the service's error shape."""
    if request.json_error is not None:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"Invalid JSON body: {request.json_error}")
    if not isinstance(request.json, dict):
        raise HttpError(HTTPStatus.BAD_REQUEST, "Expected a JSON object body")
    return request.json


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def auto_verify_delay(body):
    """`after_seconds` of a provider emulator's auto-verify control call: a number >= 0, or None (off)."""
    after = body.get("after_seconds")
    if after is not None and (not isinstance(after, (int, float)) or isinstance(after, bool) or after < 0):
        raise HttpError(HTTPStatus.BAD_REQUEST, "after_seconds must be a number >= 0 or null")
    return after


def client_id(request):
    """An opaque id of the credential a request carried (its Authorization header, or the first
    header naming a key), so a test running many accounts at once can tell their requests apart in
    the journal; never the credential itself. None when the request carried none."""
    for name, value in request.headers.items():
        if name.lower() == "authorization" or "key" in name.lower():
            return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:12]
    return None


def echo_request_body(request, body):
    """An error body that quotes the whole request: its text as a JSON string (so the client sees
    the JSON-escaped form of every value) and each header raw, as a debugging proxy would."""
    echoed = {"request_line": f"{request.method} {request.path}",
              "request_headers": {name: value for name, value in request.headers.items()},
              "request_body": request.body.decode("utf-8", "replace")}
    if isinstance(body, dict):
        return {**body, **echoed}
    return {"error": body if isinstance(body, str) else "error", **echoed}


def rate_limit_setting(body, default_window_seconds):
    """(limit, window_seconds) of a provider emulator's rate-limit control call; limit None restores
    the provider's default."""
    limit = body.get("limit")
    window_seconds = body.get("window_seconds", default_window_seconds)
    if limit is not None and (not _is_int(limit) or limit < 1):
        raise HttpError(HTTPStatus.BAD_REQUEST, "limit must be a positive integer or null")
    if not isinstance(window_seconds, (int, float)) or isinstance(window_seconds, bool) or window_seconds <= 0:
        raise HttpError(HTTPStatus.BAD_REQUEST, "window_seconds must be a positive number")
    return limit, window_seconds


class _SandboxHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a request stuck in a delay fault must not hold up shutdown
    request_queue_size = 64  # the default backlog of 5 drops bursts of concurrent clients
    service = None

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup of the host; 127.0.0.1 needs none.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # A client that gave up (timeout, dropped connection) is routine here, not an error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs; every answer has a length
    server_version = "sandbox"
    # Headers and body go out in separate writes; without TCP_NODELAY each answer waits ~40 ms
    # for a delayed ACK.
    disable_nagle_algorithm = True

    def version_string(self):
        return self.server_version

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # no line per request

    def log_error(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write(f"sandbox {self.server.service.name}: {format % args}\n")

    def _handle(self):
        service = self.server.service
        url = urllib.parse.urlsplit(self.path)
        request = Request(
            method=self.command,
            path=url.path,
            query={name: values[-1] for name, values in urllib.parse.parse_qs(url.query).items()},
            headers=self.headers,
            body=self._read_body(),
        )
        fault = None
        if service.journaled:
            fault = service.context.faults.take(service.name, request.method, request.path,
                                                request.body.decode("utf-8", "replace"))
        if fault and fault.action == "delay":
            time.sleep(fault.seconds)
        if fault and fault.action == "drop":
            self._journal(request, status=None, fault=fault)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault and fault.action == "status":
            body = fault.body if fault.body is not None else service.error_body(HTTPStatus(fault.status).phrase)
            if fault.echo_request:
                body = echo_request_body(request, body)
            # The service's own headers first (a client must not tell a faulted answer from a real
            # one by missing headers), the fault's on top.
            headers = {**service.fault_headers(request, fault.status), **dict(fault.headers)}
            response = Response(fault.status, body, headers)
        else:
            response = service.handle(request)
        # Journal before answering, so a client that has its answer also finds the entry.
        if service.journaled:
            self._journal(request, status=int(response.status), fault=fault)
        if fault and fault.action == "drop_answer":
            # The emulator did the work; the client never hears of it (a lost answer).
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(response)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers up to the closing empty line
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    def _journal(self, request, status, fault):
        self.server.service.context.journal.record(
            service=self.server.service.name,
            method=request.method,
            path=request.path,
            query=request.query,
            headers={name: request.headers[name] for name in JOURNALED_HEADERS if name in request.headers},
            status=status,
            json=request.json,
            # true when the fault answered instead of the emulator (status, drop)
            fault=fault is not None and fault.action in ("status", "drop"),
            fault_action=fault.action if fault else None,
            fault_id=fault.id if fault else None,
            client=client_id(request),
        )

    def _send(self, response):
        body, content_type = response.encoded()
        headers = dict(response.headers)
        if content_type and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = content_type
        self.send_response(int(response.status))
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
