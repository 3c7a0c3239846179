"""_tls: the first handshake trusts the system's hashed CA directory alone, and the full store
decides whenever that handshake fails on the certificate.

Real handshakes against a local TLS listener, with the system store replaced through
SSL_CERT_FILE / SSL_CERT_DIR (OpenSSL reads them at each context's creation; tests/ca_store.py).
"""

import socket
import ssl
import threading

import pytest
import trustme

from ansible_collections.karto.supabase_mail.plugins.module_utils import _tls
from tests.ca_store import ca_store_env, subject_hash

RELAY = "relay.karto.test"


class TlsListener:
    """Accepts connections on 127.0.0.1 and completes a handshake with a certificate for RELAY."""

    def __init__(self, ca):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(RELAY).configure_cert(self.context)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                client, _address = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                with self.context.wrap_socket(client, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError):
                client.close()

    def close(self):
        self.server.close()


@pytest.fixture
def relay_ca():
    return trustme.CA(organization_name="relay CA")


@pytest.fixture
def other_ca():
    return trustme.CA(organization_name="some other CA")


@pytest.fixture
def listener(relay_ca):
    server = TlsListener(relay_ca)
    yield server
    server.close()


@pytest.fixture
def system_store(tmp_path, monkeypatch):
    """Replace the system's CA store: system_store(bundle=[...], hashed=[...])."""
    def replace(bundle=(), hashed=()):
        for name, value in ca_store_env(tmp_path, bundle, hashed).items():
            monkeypatch.setenv(name, value)
    return replace


def handshake(listener, context, name=RELAY):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=name) as tls:
            return tls.recv(2)


def test_the_hashed_directory_is_used_only_when_it_holds_hashed_names(tmp_path, monkeypatch, relay_ca):
    hashed = tmp_path / "hashed"
    hashed.mkdir()
    monkeypatch.setenv("SSL_CERT_DIR", str(hashed))
    assert _tls.hashed_ca_directory() is None, "empty"
    (hashed / "relay-ca.pem").write_bytes(relay_ca.cert_pem.bytes())
    (hashed / "0123abcd.r0").write_bytes(b"")  # a CRL's name: no certificate
    assert _tls.hashed_ca_directory() is None, "PEM files and CRLs only"
    (hashed / (subject_hash(relay_ca.cert_pem.bytes()) + ".0")).symlink_to(hashed / "relay-ca.pem")
    assert _tls.hashed_ca_directory() == str(hashed)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "missing"))
    assert _tls.hashed_ca_directory() is None
    monkeypatch.setenv("SSL_CERT_DIR", "%s:%s" % (hashed, hashed))  # OpenSSL's list form: not looked into
    assert _tls.hashed_ca_directory() is None


def test_the_first_context_loads_no_certificate_up_front_and_trusts_the_hashed_directory(
        system_store, listener, relay_ca, other_ca):
    system_store(bundle=[other_ca], hashed=[relay_ca])
    context, lazy = _tls.verifying_context()
    assert lazy is True
    assert context.cert_store_stats()["x509_ca"] == 0, "nothing parsed before the handshake"
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
    assert handshake(listener, context) == b"ok"
    assert context.cert_store_stats()["x509_ca"] == 1, "the one issuer looked up"
    full, lazy = _tls.verifying_context(full_store=True)
    assert lazy is False
    assert full.cert_store_stats()["x509_ca"] == 1, "the full store parses the bundle"
    assert handshake(listener, full) == b"ok"


def test_a_ca_only_in_the_bundle_is_refused_by_the_first_context_and_trusted_by_the_full_store(
        system_store, listener, relay_ca, other_ca):
    system_store(bundle=[relay_ca], hashed=[other_ca])
    context, lazy = _tls.verifying_context()
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        handshake(listener, context)
    assert _tls.retry_with_full_store(refused.value, lazy) is True
    full, lazy = _tls.verifying_context(full_store=True)
    assert handshake(listener, full) == b"ok"


def test_a_ca_the_system_does_not_trust_is_refused_by_both(system_store, listener, other_ca):
    system_store(bundle=[other_ca], hashed=[other_ca])
    context, lazy = _tls.verifying_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(listener, context)
    full, full_lazy = _tls.verifying_context(full_store=True)
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        handshake(listener, full)
    assert _tls.retry_with_full_store(refused.value, full_lazy) is False, "the full store's refusal is the verdict"


def test_the_first_context_checks_the_host_name(system_store, listener, relay_ca):
    system_store(hashed=[relay_ca])
    context, _lazy = _tls.verifying_context()
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        handshake(listener, context, name="other.karto.test")
    assert "Hostname mismatch" in str(refused.value) or "hostname" in str(refused.value).lower()


def test_without_a_hashed_directory_the_full_store_is_used_at_once(system_store, tmp_path, monkeypatch, listener,
                                                                   relay_ca):
    system_store(bundle=[relay_ca])
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))  # no hashed names (RHEL's /etc/pki/tls/certs)
    context, lazy = _tls.verifying_context()
    assert lazy is False and context.cert_store_stats()["x509_ca"] == 1
    assert handshake(listener, context) == b"ok"


@pytest.mark.parametrize("as_directory", [False, True], ids=["file", "hashed-directory"])
def test_ca_path_is_trusted_besides_the_system_store(system_store, tmp_path, listener, relay_ca, other_ca,
                                                     as_directory):
    system_store(hashed=[other_ca])
    if as_directory:
        ca_path = ca_store_env(tmp_path / "extra", hashed=[relay_ca])["SSL_CERT_DIR"]
    else:
        ca_path = str(tmp_path / "relay-ca.pem")
        relay_ca.cert_pem.write_to_path(ca_path)
    context, lazy = _tls.verifying_context(ca_path)
    assert lazy is True
    assert handshake(listener, context) == b"ok"


def test_only_a_certificate_refusal_of_the_first_context_is_retried():
    refusal = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert _tls.retry_with_full_store(refusal, True) is True
    assert _tls.retry_with_full_store(refusal, False) is False
    assert _tls.retry_with_full_store(ssl.SSLError(1, "wrong version number"), True) is False
    assert _tls.retry_with_full_store(TimeoutError("handshake timed out"), True) is False


def test_the_unverified_context_checks_nothing(listener):
    assert handshake(listener, _tls.unverified_context(), name="anything.invalid") == b"ok"
