"""The sandbox's mailbox server (mailbox_server.py): a real Postfix with Dovecot SASL standing in for
a mailbox's own SMTP server (smtp.rambler.ru). These tests prove the configuration: what the
replies are is Postfix's and Dovecot's own.

Dovecot's auth penalty slows every login from an address that just failed one (that is the point of
it), so each test that fails a login connects from a loopback address of its own (127.x.y.z): the
other tests of the worker, and Supabase Auth's sends from 127.0.0.1, are not slowed."""

import base64
import os
import random
import signal
import smtplib
import socket
import ssl
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.sandbox.fixture import SandboxControlError, running_sandbox

TIMEOUT = 30
HOST = "smtp.rambler.ru"
# Dovecot's auth_failure_delay default (doc.dovecot.org, settings: "auth_failure_delay = 2 secs"),
# counted in whole seconds and checked every 0.5 s (src/auth/auth-request-handler.c): a refusal comes
# 1 to 2.5 s after the request. A successful login here takes milliseconds.
FAILURE_DELAY_SECONDS = 2
SHORTEST_FAILURE_DELAY_SECONDS = FAILURE_DELAY_SECONDS - 1
IMPLICIT, STARTTLS = "implicit_tls", "starttls"
TEMPORARY_FAILURE = (454, b"4.7.0 Temporary authentication failure: Connection lost to authentication server")


def new_mailbox(sandbox, clients_enabled=True):
    address = f"box-{uuid.uuid4().hex[:10]}@ro.ru"
    password = "pw:" + uuid.uuid4().hex  # a ':' too: the passwd-file keeps any password
    sandbox.add_mailbox(address, password, clients_enabled=clients_enabled)
    return address, password


def own_address():
    """A loopback address no other test uses, so Dovecot's auth penalty stays with this test."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def connect(sandbox, listener, source="127.0.0.1"):
    """An SMTP client on the listener, past TLS (STARTTLS on the plain port), after EHLO."""
    tls = ssl.create_default_context(cafile=sandbox.ca_cert)
    port = sandbox.mailbox_smtp_port(listener)
    if listener == IMPLICIT:
        client = smtplib.SMTP_SSL("127.0.0.1", port, context=tls, timeout=TIMEOUT, source_address=(source, 0))
    else:
        client = smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT, source_address=(source, 0))
        client.starttls(context=tls)
    client.ehlo()
    return client


def auth_plain(client, login, password):
    """One AUTH PLAIN (smtplib's login() would try LOGIN after a refusal: a second attempt)."""
    blob = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
    started = time.monotonic()
    code, text = client.docmd("AUTH", "PLAIN " + blob)
    return code, text, time.monotonic() - started


def test_the_listeners_speak_tls_as_published_and_log_in_the_mailbox_with_sender_equal_login(sandbox):
    address, password = new_mailbox(sandbox)
    assert sandbox.endpoints["mailbox_smtp_hosts"] == [HOST]
    tls = ssl.create_default_context(cafile=sandbox.ca_cert)
    with socket.create_connection(("127.0.0.1", sandbox.mailbox_smtp_port(IMPLICIT)), timeout=TIMEOUT) as raw:
        with tls.wrap_socket(raw, server_hostname=HOST) as checked:  # the certificate names the host
            assert checked.recv(512).startswith(b"220 mailbox.sandbox.localhost ESMTP Postfix")
    with smtplib.SMTP("127.0.0.1", sandbox.mailbox_smtp_port(STARTTLS), timeout=TIMEOUT) as plain:
        features = plain.ehlo()[1].decode()
        assert "STARTTLS" in features and "AUTH" not in features  # smtpd_tls_auth_only
        assert plain.docmd("AUTH", "PLAIN AAAA") == (503, b"5.5.1 Error: authentication not enabled")

    for listener in (IMPLICIT, STARTTLS):
        with connect(sandbox, listener) as client:
            assert "PLAIN LOGIN" in client.esmtp_features["auth"]
            assert auth_plain(client, address, password)[:2] == (235, b"2.7.0 Authentication successful")
            assert client.mail(address) == (250, b"2.1.0 Ok")
            assert client.rcpt("someone@karto.test") == (250, b"2.1.5 Ok")
            client.rset()


def test_a_wrong_password_is_refused_after_the_failure_delay_and_slows_the_next_login(sandbox):
    address, password = new_mailbox(sandbox)
    source = own_address()
    with connect(sandbox, IMPLICIT, source) as client:
        code, text, waited = auth_plain(client, address, "not-" + password)
    assert (code, text) == (535, b"5.7.8 Error: authentication failed: (reason unavailable)")
    assert SHORTEST_FAILURE_DELAY_SECONDS <= waited < FAILURE_DELAY_SECONDS + 2

    # Dovecot's auth penalty: the next login from that address waits first, right password or not
    # (2 s doubled per failure, src/auth/auth-penalty.c); another address does not.
    with connect(sandbox, STARTTLS, source) as client:
        code, _text, penalised = auth_plain(client, address, password)
    with connect(sandbox, STARTTLS, own_address()) as client:
        other_code, _text, elsewhere = auth_plain(client, address, password)
    assert code == other_code == 235
    assert penalised >= 2 * FAILURE_DELAY_SECONDS and elsewhere < 1
    # Postfix hands Dovecot the client's address (rip), on which the penalty is kept.
    assert any(line.endswith(f"passwd-file({address},{source}): Password mismatch")
               for line in sandbox.mailbox_log("dovecot"))


def test_a_sender_other_than_the_login_is_refused_at_rcpt_to(sandbox):
    address, password = new_mailbox(sandbox)
    with connect(sandbox, STARTTLS) as client:
        auth_plain(client, address, password)
        assert client.mail("other@ro.ru") == (250, b"2.1.0 Ok")  # smtpd_delay_reject: judged at RCPT
        assert client.rcpt("someone@karto.test") == (
            553, f"5.7.1 <other@ro.ru>: Sender address rejected: not owned by user {address}".encode())


def test_without_login_postfix_refuses_the_mailbox_sender_and_any_relaying(sandbox):
    address, _password = new_mailbox(sandbox)
    for listener in (IMPLICIT, STARTTLS):
        with connect(sandbox, listener) as client:
            assert client.mail(address) == (250, b"2.1.0 Ok")
            assert client.rcpt("someone@karto.test") == (
                553, f"5.7.1 <{address}>: Sender address rejected: not logged in".encode())
            client.rset()
            client.mail("stranger@karto.test")
            assert client.rcpt("someone@karto.test") == (
                554, b"5.7.1 <someone@karto.test>: Recipient address rejected: Access denied")


def test_auth_service_unavailable_gives_postfixs_454_until_restored(sandbox):
    address, password = new_mailbox(sandbox)
    with connect(sandbox, IMPLICIT) as client:
        sandbox.set_mailbox_knobs(auth_available=False)
        try:
            assert sandbox.control("GET", "/mailbox/knobs") == {"auth_available": False}
            assert auth_plain(client, address, password)[:2] == TEMPORARY_FAILURE
            with connect(sandbox, STARTTLS) as other:  # new sessions still greet and offer AUTH
                assert "PLAIN" in other.esmtp_features["auth"]
                assert auth_plain(other, address, password)[:2] == TEMPORARY_FAILURE
        finally:
            sandbox.set_mailbox_knobs(auth_available=None)
        # The same session logs in once the auth service is back (Postfix reconnects).
        assert auth_plain(client, address, password)[:2] == (235, b"2.7.0 Authentication successful")


def test_a_mailbox_with_client_access_switched_off_cannot_log_in_until_switched_on(sandbox):
    address, password = new_mailbox(sandbox, clients_enabled=False)
    with connect(sandbox, IMPLICIT, own_address()) as client:
        code, text, waited = auth_plain(client, address, password)
    assert (code, text) == (535, b"5.7.8 Error: authentication failed: (reason unavailable)")
    assert waited >= SHORTEST_FAILURE_DELAY_SECONDS

    assert sandbox.add_mailbox(address, password, clients_enabled=True) == {
        "address": address, "clients_enabled": True}
    with connect(sandbox, IMPLICIT, own_address()) as client:
        assert auth_plain(client, address, password)[:2] == (235, b"2.7.0 Authentication successful")
    with pytest.raises(SandboxControlError, match="-> 400: .*address must be an email address"):
        sandbox.add_mailbox("not-an-address", password)


def test_accepted_mail_is_relayed_at_once_into_the_sandbox_inbox(sandbox):
    address, password = new_mailbox(sandbox)
    recipient = f"reader-{uuid.uuid4().hex[:8]}@karto.test"
    with connect(sandbox, IMPLICIT) as client:
        auth_plain(client, address, password)
        sent = time.monotonic()
        client.sendmail(address, [recipient], (f"From: Karto <{address}>\r\nTo: {recipient}\r\n"
                                               "Subject: Through Postfix\r\n\r\nHello\r\n").encode())
    [mail] = sandbox.wait_for_mail(recipient, timeout=5)
    assert time.monotonic() - sent < 2
    assert (mail["server"], mail["mail_from"], mail["rcpt_tos"], mail["from"], mail["subject"]) == (
        "mailbox_server", address, [recipient], f"Karto <{address}>", "Through Postfix")
    assert (mail["auth_user"], mail["listener"], mail["tls"], mail["port"]) == (
        address, IMPLICIT, "implicit", sandbox.mailbox_smtp_port(IMPLICIT))
    assert "(Postfix) with ESMTPSA" in mail["headers"]["Received"]


@pytest.mark.parametrize("port, listener, tls", [("465", IMPLICIT, "implicit"), ("587", STARTTLS, "starttls")])
def test_supabase_auth_sends_through_the_mailbox_server_like_gotrue(sandbox, port, listener, tls):
    address, password = new_mailbox(sandbox)
    ref, token = sandbox.add_supabase_project()
    settings = {"smtp_host": HOST, "smtp_port": port, "smtp_user": address, "smtp_pass": password,
                "smtp_admin_email": address, "smtp_sender_name": "Karto"}
    response = requests.patch(f"{sandbox.url('supabase_api')}/v1/projects/{ref}/config/auth", json=settings,
                              headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    user = f"user-{uuid.uuid4().hex[:10]}@karto.test"

    response = requests.post(f"{sandbox.auth_url()}/otp", json={"email": user}, timeout=TIMEOUT,
                             headers={"apikey": sandbox.project_api_keys(ref)["anon"]})

    assert response.status_code == 200, response.text
    [mail] = sandbox.wait_for_mail(user, timeout=5)
    assert (mail["server"], mail["headers"]["From"], mail["mail_from"], mail["auth_user"]) == (
        "mailbox_server", f'"Karto" <{address}>', address, address)
    assert (mail["listener"], mail["tls"]) == (listener, tls)


def test_two_sandboxes_run_their_own_mail_servers_and_a_killed_one_leaves_none_behind(sandbox, tmp_path):
    address, password = new_mailbox(sandbox)
    with running_sandbox(tmp_path, seed="none") as second:
        state = second.state_dir
        assert second.mailbox_smtp_port(IMPLICIT) != sandbox.mailbox_smtp_port(IMPLICIT)
        assert second.mailboxes() == []  # its own Dovecot and tables, empty (--seed none)
        second.add_mailbox(address, password)
        with connect(second, STARTTLS) as client:
            assert auth_plain(client, address, password)[0] == 235
        servers = mail_server_processes(state)
        assert len(servers) >= 2  # Postfix's master and Dovecot, at least

        os.kill(second.endpoints["pid"], signal.SIGKILL)  # no chance to stop them itself
        deadline = time.monotonic() + 10
        while mail_server_processes(state) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mail_server_processes(state) == []
    with connect(sandbox, IMPLICIT) as client:  # the first one is untouched
        assert auth_plain(client, address, password)[0] == 235


def mail_server_processes(state_dir):
    """Live processes (not zombies) whose command line names the sandbox's state directory."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            status = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(state_dir) in command and status != "Z":
            found.append(command)
    return found
