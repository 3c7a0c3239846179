"""The `sandbox` pytest fixture: one sandbox process per pytest session (so one per xdist worker),
and `Sandbox`, a small client for its control API."""

import json
import secrets
import string
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 30
SHUTDOWN_TIMEOUT_SECONDS = 10


class SandboxControlError(RuntimeError):
    """A control-API call failed; the message carries the status and the sandbox's explanation."""


class Sandbox:
    """A running sandbox, seen from a test."""

    def __init__(self, endpoints, log_path=None):
        self.endpoints = endpoints
        self.log_path = log_path  # the sandbox's stderr: emulator tracebacks land here
        self._http = requests.Session()
        self._supabase_refs = set()

    def url(self, name):
        """Base URL of a service, e.g. url("supabase_api")."""
        return self.endpoints[name]

    @property
    def ca_cert(self):
        return self.endpoints["ca_cert"]

    @property
    def state_dir(self):
        return self.endpoints["state_dir"]

    def control(self, method, path, json_body=None, params=None):
        """Call the control API; returns the decoded JSON answer."""
        response = self._http.request(method, self.url("control") + path, json=json_body, params=params,
                                      timeout=30)
        if response.status_code >= 400:
            raise SandboxControlError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def close(self):
        self._http.close()

    # Journal and faults (every service)

    def journal(self, service=None, path_contains=None, method=None):
        params = {"service": service, "path_contains": path_contains, "method": method}
        return self.control("GET", "/journal", params={k: v for k, v in params.items() if v is not None})

    def clear_journal(self):
        self.control("DELETE", "/journal")

    def inject_fault(self, **spec):
        """Queue a fault (see README: service, action, method, path_contains, times, ...); returns its id."""
        return self.control("POST", "/faults", spec)["id"]

    def faults(self):
        """Faults still queued, with the `times` they have left."""
        return self.control("GET", "/faults")

    def clear_faults(self):
        self.control("DELETE", "/faults")

    # Supabase Management API

    def add_supabase_project(self, ref=None, token=None):
        """Create a project (a fresh random ref and token unless given); returns (ref, token)."""
        if ref is None:
            ref = self._new_supabase_ref()
        token = token or "sbp_" + secrets.token_hex(20)
        self.control("POST", "/supabase/projects", {"ref": ref, "access_token": token})
        self._supabase_refs.add(ref)
        return ref, token

    def _new_supabase_ref(self):
        while True:
            ref = "".join(secrets.choice(string.ascii_lowercase) for _ in range(20))
            if ref not in self._supabase_refs:
                return ref

    def supabase_auth_config(self, ref):
        """The stored auth config, with the plaintext smtp_pass."""
        return self.control("GET", f"/supabase/projects/{ref}/auth-config")

    def set_supabase_rate_limit(self, ref, limit, window_seconds=60):
        """Requests per window for this project (per token and endpoint); limit=None restores 120/60s."""
        return self.control("POST", f"/supabase/projects/{ref}/rate-limit",
                            {"limit": limit, "window_seconds": window_seconds})

    # SMTP2GO API

    def add_smtp2go_relay_user(self, sender, password_prefix="pw-"):
        """A fresh SMTP2GO account with one SMTP user (known password) and `sender` verified.

        Made through the emulator's own API, as a client would; returns (api_key, username, password).
        """
        api_key = self.add_smtp2go_account()
        username = "karto-" + secrets.token_hex(6)
        password = password_prefix + secrets.token_hex(16)
        api = self.url("smtp2go_api")
        for path, body in (("/users/smtp/add", {"username": username, "email_password": password}),
                           ("/single_sender_emails/add", {"email_address": sender})):
            answer = self._http.post(api + path, json=dict(body, api_key=api_key), timeout=30)
            if answer.status_code != 200:
                raise SandboxControlError(f"POST {path} -> {answer.status_code}: {answer.text}")
        self.verify_smtp2go_sender(api_key, sender)
        return api_key, username, password

    def add_smtp2go_account(self, api_key=None, allowed_endpoints=None):
        """Create an isolated SMTP2GO account (a random api- key unless given; all endpoints unless
        `allowed_endpoints`, e.g. ["/users/smtp/view"]); returns its API key."""
        body = {"api_key": api_key, "allowed_endpoints": allowed_endpoints}
        return self.control("POST", "/smtp2go/accounts", {k: v for k, v in body.items() if v is not None})["api_key"]

    def smtp2go_account(self, api_key):
        """The account's state: users with plaintext `email_password`, senders with their verification
        mails, domains with `dns_published`/`verified`, rate limit and auto-verify setting."""
        return self.control("GET", f"/smtp2go/accounts/{api_key}")

    def verify_smtp2go_sender(self, api_key=None, email_address=None, token=None):
        """The mailbox owner clicks the verification link (by address, or by a mail's `token`)."""
        body = {"token": token} if token else {"api_key": api_key, "email_address": email_address}
        return self.control("POST", "/smtp2go/single-senders/verify", body)

    def verify_smtp2go_domain_dns(self, api_key, domain):
        """The sender domain's CNAMEs are published; the next /domain/verify finds them."""
        return self.control("POST", "/smtp2go/domains/verify-dns", {"api_key": api_key, "domain": domain})

    def set_smtp2go_auto_verify(self, after_seconds, api_key=None):
        """Verification mails sent from now on are clicked `after_seconds` later (None: off); for one
        account, or for every account without its own setting when api_key is None."""
        body = {"after_seconds": after_seconds}
        if api_key is not None:
            body["api_key"] = api_key
        return self.control("POST", "/smtp2go/auto-verify", body)

    def set_smtp2go_rate_limit(self, api_key, limit, window_seconds=60):
        """Requests per window for this key; limit=None restores 300/60 s."""
        return self.control("POST", "/smtp2go/rate-limit",
                            {"api_key": api_key, "limit": limit, "window_seconds": window_seconds})

    # SMTP relay

    def inbox(self, to=None):
        """Mail the relay accepted, oldest first (optionally only mail with `to` among its recipients):
        dicts with mail_from, rcpt_tos, auth_user, listener, port, tls, headers (raw), from, to,
        subject, body, eml_path."""
        return self.control("GET", "/inbox", params={"to": to} if to else None)

    def clear_inbox(self):
        return self.control("DELETE", "/inbox")["cleared"]

    def wait_for_mail(self, to, count=1, timeout=10):
        """Poll the inbox until `to` has at least `count` mails; returns them (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            mails = self.inbox(to)
            if len(mails) >= count:
                return mails
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(mails)} mail(s) to {to} after {timeout}s, expected {count}")
            time.sleep(0.05)

    def set_smtp_relay_knobs(self, **knobs):
        """Relay behaviour for new connections (see README), e.g. plain_port_mode="no_tls", or
        sender_check="mail_from" / "end_of_data" (default "backend": each relay backend's own stage);
        None restores."""
        return self.control("POST", "/smtp-relay/knobs", knobs)

    def relay_backends(self):
        """The registered relay backends: [{"name", "hosts", "address", "ports": {"465": "implicit_tls",
        ...}, "sender_check"}] (see README, Relay backends)."""
        return self.control("GET", "/relay-backends")

    def smtp_relay_port(self, listener):
        """The local port of the relay's "starttls" or "implicit_tls" listener."""
        return self.endpoints[f"smtp_relay_{listener}_port"]

    # Mailbox server (a real Postfix + Dovecot standing in for the mailbox's own SMTP server)

    def mailbox_smtp_port(self, listener):
        """The local port of the mailbox server's "implicit_tls" (465) or "starttls" (587) listener."""
        return self.endpoints[f"mailbox_smtp_{listener}_port"]

    def add_mailbox(self, address, password, clients_enabled=True):
        """Create (or change) a mailbox: its login and only allowed sender is `address`;
        clients_enabled=False is Rambler's "access by mail clients" switched off (AUTH fails)."""
        return self.control("POST", "/mailbox/mailboxes",
                            {"address": address, "password": password, "clients_enabled": clients_enabled})

    def mailboxes(self):
        """The mailboxes: [{"address", "clients_enabled"}] (no passwords)."""
        return self.control("GET", "/mailbox/mailboxes")

    def set_mailbox_knobs(self, **knobs):
        """auth_available=False: Postfix's next AUTH loses its Dovecot connection (its real 454);
        True or None restores. Returns the knobs in effect."""
        return self.control("POST", "/mailbox/knobs", knobs)

    def mailbox_log(self, which="postfix"):
        """The lines of the mailbox server's Postfix (maillog_file) or Dovecot ("dovecot") log so far;
        take len() before a step and slice after it to see that step's lines."""
        try:
            with open(self.endpoints[f"mailbox_{which}_log"], encoding="utf-8", errors="replace") as log:
                return log.read().splitlines()
        except FileNotFoundError:
            return []

    # Supabase Auth (and what it needs from the Management API emulator)

    def auth_url(self):
        """Base URL of the emulated Auth API (like https://<ref>.supabase.co/auth/v1); the project is
        chosen by the `apikey` header."""
        return self.url("supabase_auth") + "/auth/v1"

    def project_api_keys(self, ref):
        """The project's keys, revealed: {"anon", "service_role", "publishable", "secret"}."""
        keys = self.control("GET", f"/supabase/projects/{ref}/api-keys")
        return {(item["name"] if item["type"] == "legacy" else item["type"]): item["api_key"] for item in keys}

    def auth_logs(self, ref):
        """Every Auth log row of the project, newest first, each with its line parsed as `event`
        (the test view; the API view is logs.all on supabase_api)."""
        return self.control("GET", f"/supabase/projects/{ref}/auth-logs")

    def add_auth_log(self, ref, event, timestamp=None):
        """Add an Auth log line (dict or text) as if logged at `timestamp` (microseconds; default now)."""
        return self.control("POST", f"/supabase/projects/{ref}/auth-logs", {"event": event, "timestamp": timestamp})

    def wait_for_auth_log(self, ref, predicate, timeout=10):
        """Poll the project's Auth log until a row's `event` satisfies `predicate`; returns that event."""
        deadline = time.monotonic() + timeout
        while True:
            for row in self.auth_logs(ref):
                if predicate(row["event"]):
                    return row["event"]
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching Auth log line for {ref} after {timeout}s")
            time.sleep(0.05)

    def add_auth_user(self, ref, email, confirmed=True):
        """A user of the project's Auth as if signed up (and confirmed) earlier; no mail is sent."""
        return self.control("POST", f"/supabase-auth/projects/{ref}/users", {"email": email, "confirmed": confirmed})

    def auth_users(self, ref):
        return self.control("GET", f"/supabase-auth/projects/{ref}/users")

    def add_team_member(self, ref, email):
        """An address the built-in mailer (custom SMTP off) may send to."""
        return self.control("POST", f"/supabase-auth/projects/{ref}/team-members", {"email": email})

    def set_auth_knobs(self, ref, **knobs):
        """This project's emulated-Auth knobs (smtp_connect_timeout_seconds, log_format,
        smtp_logging_enabled); None restores a default. Returns the knobs in effect."""
        return self.control("POST", f"/supabase-auth/projects/{ref}/knobs", knobs)

    # DNS

    @property
    def dns_port(self):
        """The UDP and TCP port of the sandbox DNS server on 127.0.0.1 (zones: see README, DNS server)."""
        return self.endpoints["dns_port"]


@contextmanager
def running_sandbox(workdir, seed="default"):
    """Start `python -m tests.sandbox` with its files in `workdir`; yield a Sandbox; stop it."""
    workdir = Path(workdir)
    endpoints_file = workdir / "endpoints.json"
    log_path = workdir / "sandbox.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.sandbox", "--endpoints-file", str(endpoints_file),
             "--seed", seed, "--state-dir", str(workdir / "state"), "--exit-on-stdin-eof"],
            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
        )
    sandbox = None
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not endpoints_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"sandbox exited with {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox not ready after {STARTUP_TIMEOUT_SECONDS}s:\n{log_path.read_text()}")
            time.sleep(0.02)
        sandbox = Sandbox(json.loads(endpoints_file.read_text()), log_path)
        yield sandbox
    finally:
        if sandbox:
            sandbox.close()
        process.terminate()
        try:
            process.wait(SHUTDOWN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdin.close()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    with running_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running
