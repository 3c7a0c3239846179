"""_transport.Session against real local servers: plain HTTP, TLS (trustme CA), a forward proxy.

What is checked is what _http.ApiClient relies on: bodies and query strings on the wire, the
connection kept between requests and replaced when the server closed it, timeouts and lost
connections told apart by whether the request could have reached the server, TLS errors, the
proxy variables, and that no error text quotes a header value (it is often a key).
"""

import email.parser
import http.server
import json
import socket
import ssl
import threading

import pytest
import trustme

from ansible_collections.karto.supabase_mail.plugins.module_utils import _transport
from tests.ca_store import ca_store_env


class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = None  # list of dicts, set per server

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": body, "client_port": self.client_address[1]})
        behaviour = self.server.behaviour
        if behaviour == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if behaviour == "slow":
            threading.Event().wait(1.0)
        try:
            self._send_ok(behaviour)
        except OSError:
            pass  # the client gave up first (the read-timeout case)

    def _send_ok(self, behaviour):
        payload = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-RateLimit-Reset", "7")
        if behaviour == "close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.seen, httpd.behaviour = [], None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(httpd, path="/v1/x"):
    return "http://127.0.0.1:%d%s" % (httpd.server_address[1], path)


def test_json_body_params_and_headers_reach_the_server(server, no_proxy):
    session = _transport.Session()
    session.headers["User-Agent"] = "karto-test"
    response = session.request("POST", url(server, "/v1/users?a=1"), json={"name": "ü\"x"},
                               params={"limit": 5, "skip": None, "tag": ["a", "b"]}, headers={"X-Key": "k"})
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert response.headers.get("x-ratelimit-reset") == "7"
    seen = server.seen[0]
    assert seen["path"] == "/v1/users?a=1&limit=5&tag=a&tag=b"
    assert json.loads(seen["body"]) == {"name": "ü\"x"}
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["headers"]["User-Agent"] == "karto-test"
    assert seen["headers"]["X-Key"] == "k"


def test_form_body_is_multipart_with_one_field_per_item(server, no_proxy):
    session = _transport.Session()
    session.request("POST", url(server), json=_transport.FormBody({"login": "a@b.c", "password": "p;\"w"}))
    seen = server.seen[0]
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + seen["headers"]["Content-Type"].encode() + b"\r\n\r\n" + seen["body"])
    fields = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True).decode()
              for part in message.get_payload()}
    assert fields == {"login": "a@b.c", "password": "p;\"w"}


def test_connection_is_kept_and_replaced_when_the_server_closed_it(server, no_proxy):
    session = _transport.Session()
    session.request("GET", url(server))
    session.request("GET", url(server))
    assert server.seen[0]["client_port"] == server.seen[1]["client_port"], "second request reuses the connection"
    server.behaviour = "close"
    session.request("GET", url(server))
    server.behaviour = None
    session.request("GET", url(server))
    assert server.seen[3]["client_port"] != server.seen[2]["client_port"], "a closed connection is not reused"


def test_refused_connection_was_not_sent(no_proxy):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(_transport.ConnectFailed) as caught:
        _transport.Session().request("POST", "http://127.0.0.1:%d/x" % port, json={})
    assert caught.value.sent is False


def test_lost_answer_and_read_timeout_count_as_sent(server, no_proxy):
    server.behaviour = "drop"
    with pytest.raises(_transport.ConnectionLost) as lost:
        _transport.Session().request("POST", url(server), json={})
    assert lost.value.sent is True
    server.behaviour = "slow"
    with pytest.raises(_transport.ReadTimeout) as slow:
        _transport.Session().request("GET", url(server), timeout=(2.0, 0.2))
    assert slow.value.sent is True


@pytest.mark.parametrize("bad", ["api.example.com/v1", "ftp://api.example.com", "", "https://", "http://h:99999/x",
                                 "http://127.0.0.1/a b"])
def test_unusable_urls_fail_before_any_connection(bad, no_proxy):
    with pytest.raises(_transport.InvalidUrl) as caught:
        _transport.Session().request("GET", bad)
    assert caught.value.sent is False


def test_header_with_a_line_break_is_refused_without_quoting_it(server, no_proxy):
    secret = "sbp_0123456789abcdef\n"
    with pytest.raises(_transport.InvalidHeader) as caught:
        _transport.Session().request("GET", url(server), headers={"Authorization": "Bearer " + secret})
    assert "sbp_" not in str(caught.value) and "Authorization" in str(caught.value)
    assert server.seen == []


@pytest.fixture
def tls_server(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.seen, httpd.behaviour, httpd.connections, httpd.ca = [], None, [], ca
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    accept = httpd.get_request

    def counted_accept():  # called once per incoming connection; the handshake happens inside
        httpd.connections.append(1)
        return accept()
    httpd.get_request = counted_accept
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield httpd, str(ca_file)
    httpd.shutdown()
    httpd.server_close()


def test_tls_trusts_the_named_bundle_and_refuses_an_unknown_ca(tls_server, no_proxy, monkeypatch):
    httpd, ca_file = tls_server
    address = "https://127.0.0.1:%d/v1" % httpd.server_address[1]
    with pytest.raises(_transport.TlsError) as caught:
        _transport.Session().request("GET", address)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert caught.value.sent is False
    assert _transport.Session().request("GET", address, verify=False).status_code == 200
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    assert _transport.Session().request("GET", address).json() == {"ok": True}


@pytest.mark.parametrize("store, connections", [("hashed", 1), ("bundle", 2)])
def test_the_system_store_is_asked_through_its_hashed_directory_first(tls_server, no_proxy, monkeypatch, tmp_path,
                                                                      store, connections):
    """_tls: the hashed directory alone first; a CA found only in the bundle costs a second
    connection (nothing is sent on the first), not a failure."""
    httpd, _ca_file = tls_server
    other = trustme.CA()
    layout = {"hashed": {"bundle": [other], "hashed": [httpd.ca]}, "bundle": {"bundle": [httpd.ca], "hashed": [other]}}
    for name, value in ca_store_env(tmp_path / "store", **layout[store]).items():
        monkeypatch.setenv(name, value)
    address = "https://127.0.0.1:%d/v1" % httpd.server_address[1]
    session = _transport.Session()
    assert session.request("GET", address).json() == {"ok": True}
    assert session.request("GET", address).json() == {"ok": True}, "the verified connection is kept"
    assert len(httpd.connections) == connections
    assert len(httpd.seen) == 2


def test_a_ca_the_system_store_lacks_is_refused_after_the_full_store_is_asked(
        tls_server, no_proxy, monkeypatch, tmp_path):
    httpd, _ca_file = tls_server
    other = trustme.CA()
    for name, value in ca_store_env(tmp_path / "store", bundle=[other], hashed=[other]).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(_transport.TlsError) as caught:
        _transport.Session().request("POST", "https://127.0.0.1:%d/v1" % httpd.server_address[1], json={"a": 1})
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) and caught.value.sent is False
    assert len(httpd.connections) == 2 and httpd.seen == []


def test_https_to_a_plain_http_port_is_a_tls_error(server, no_proxy):
    with pytest.raises(_transport.TlsError) as caught:
        _transport.Session().request("GET", "https://127.0.0.1:%d/v1" % server.server_address[1])
    assert "WRONG_VERSION_NUMBER" in str(caught.value) or "record layer" in str(caught.value).lower()


def test_plain_http_goes_through_the_proxy_from_the_environment(server, no_proxy, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://user:p%40ss@127.0.0.1:" + str(server.server_address[1]))
    response = _transport.Session().request("GET", "http://api.example.invalid/v3/x?y=1")
    assert response.status_code == 200
    seen = server.seen[0]
    assert seen["path"] == "http://api.example.invalid/v3/x?y=1", "absolute-form request line to the proxy"
    assert seen["headers"]["Proxy-Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss
    monkeypatch.setenv("no_proxy", "api.example.invalid")
    with pytest.raises(_transport.ConnectFailed):
        _transport.Session().request("GET", "http://api.example.invalid/v3/x", timeout=(2.0, 2.0))


def test_https_is_tunnelled_through_the_proxy(tls_server, no_proxy, monkeypatch):
    httpd, ca_file = tls_server
    upstream = httpd.server_address[1]
    connects = []

    def tunnel(listener):
        client = listener.accept()[0]
        request = b""
        while b"\r\n\r\n" not in request:
            request += client.recv(4096)
        connects.append(request.split(b"\r\n")[0].decode())
        remote = socket.create_connection(("127.0.0.1", upstream))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, sink in ((client, remote), (remote, client)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    threading.Thread(target=tunnel, args=(listener,), daemon=True).start()
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:%d" % listener.getsockname()[1])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    # The certificate is for 127.0.0.1, so the tunnel is asked for that host.
    assert _transport.Session().request("GET", "https://127.0.0.1:%d/v1" % upstream).status_code == 200
    assert connects == ["CONNECT 127.0.0.1:%d HTTP/1.1" % upstream]
    listener.close()


def _pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
