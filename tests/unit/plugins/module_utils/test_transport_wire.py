"""_transport's HTTP/1.1 reader against the standard library's: the same wire answers, read alike.

_transport reads answers itself (so no module imports `http.client` and the `email` package it
pulls in). Its reading is checked here against `http.client` (CPython's reference client) on the
same bytes: status, reason, header fields, body, and whether the connection may be kept
(RFC 9112 6.3 and 9.3). The sandbox's emulators answer only with Content-Length, so the framings
real APIs use behind CDNs (chunked, close-delimited, interim 1xx) are exercised here; the
Session tests at the end do it over real sockets, in small pieces, with the connection reused.
"""

import http.client
import io
import socket
import threading

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _transport


class _WireSocket:
    """What http.client.HTTPResponse needs of a socket: makefile() over fixed bytes."""

    def __init__(self, wire):
        self.wire = wire

    def makefile(self, mode):
        return io.BufferedReader(io.BytesIO(self.wire))


def read_with_http_client(wire, method):
    answer = http.client.HTTPResponse(_WireSocket(wire), method=method)
    answer.begin()
    body = answer.read()
    return answer.status, answer.reason, answer.getheaders(), body, bool(answer.will_close)


def read_with_transport(wire, method):
    return _transport._read_answer(io.BufferedReader(io.BytesIO(wire)), method)


def normalised(answer):
    status, reason, headers, body, will_close = answer
    items = headers if isinstance(headers, list) else headers.items()
    return status, reason.strip(), [(name, " ".join(value.split())) for name, value in items], body, will_close


CHUNKED_JSON = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                b"X-RateLimit-Remaining: 9\r\n\r\n"
                b"4;name=value\r\n{\"id\r\n9\r\n\": \"abc\"}\r\n0\r\nX-Trailer: t\r\n\r\n")
BIG_CHUNK = b"x" * 0x1A2B

ANSWERS = {
    "content-length, keep-alive": (
        "GET", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"),
    "chunked with an extension and a trailer": ("GET", CHUNKED_JSON),
    "chunked, upper-case hex, one large chunk": (
        "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1A2B\r\n" + BIG_CHUNK + b"\r\n0\r\n\r\n"),
    "chunked wins over Content-Length": (
        "POST", b"HTTP/1.1 201 Created\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    "204 has no body": ("DELETE", b"HTTP/1.1 204 No Content\r\nX-RateLimit-Reset: 3\r\n\r\n"),
    "304 has no body despite Content-Length": (
        "GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 20\r\nETag: \"x\"\r\n\r\n"),
    "HEAD has no body despite Content-Length": (
        "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"),
    "100 Continue before the answer": (
        "POST", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "HTTP/1.0, body until the close": ("GET", b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nthe rest"),
    "HTTP/1.0 with Content-Length closes": ("GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "HTTP/1.0 with keep-alive": (
        "GET", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
    "HTTP/1.0 with a Keep-Alive field": (
        "GET", b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok"),
    "HTTP/1.1, no framing: body until the close": ("GET", b"HTTP/1.1 500 Internal Server Error\r\n\r\noops"),
    "Connection: close": (
        "GET", b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n"),
    "Connection: close among other tokens": (
        "GET", b"HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n\r\n"),
    "folded header field": (
        "GET", b"HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\n\tthird\r\nContent-Length: 0\r\n\r\n"),
    "repeated fields kept apart, in order": (
        "GET", b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Id: 1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"),
    "status line without a reason": ("GET", b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n"),
    "reason with spaces": ("GET", b"HTTP/1.1 422 Unprocessable  Entity\r\nContent-Length: 0\r\n\r\n"),
    "bare LF line ends": ("GET", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    "non-ASCII field value (ISO-8859-1)": (
        "GET", b"HTTP/1.1 400 Bad Request\r\nX-Message: caf\xe9\r\nContent-Length: 0\r\n\r\n"),
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answers_are_read_as_http_client_reads_them(name):
    method, wire = ANSWERS[name]
    ours = read_with_transport(wire, method)
    assert normalised(ours) == normalised(read_with_http_client(wire, method))


def test_the_table_covers_every_framing():
    """The table above is only worth something if it holds each way an answer can end."""
    read = {name: read_with_transport(wire, method) for name, (method, wire) in ANSWERS.items()}
    assert read["chunked with an extension and a trailer"][3] == b'{"id": "abc"}'
    assert read["chunked, upper-case hex, one large chunk"][3] == BIG_CHUNK
    assert read["100 Continue before the answer"][:2] == (200, "OK")
    assert [name for name, answer in read.items() if answer[4]] == [
        "HTTP/1.0, body until the close", "HTTP/1.0 with Content-Length closes", "HTTP/1.1, no framing: body until the close", "Connection: close",
        "Connection: close among other tokens"]
    assert read["folded header field"][2].items()[0] == ("X-Long", "first second third")


def test_where_http_client_is_laxer_the_rfc_is_followed():
    """Two answers http.client reads in a way RFC 9112 does not: a field given on two lines is one
    list (RFC 9110 5.3), so `gzip` then `chunked` is chunked; http.client looks at the first line only
    and reads to the close. A header cut by the close is no answer; http.client takes it for a
    complete one with an empty body, which the write engine would take for the server's word."""
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\nX"
    assert read_with_transport(wire, "GET")[3:] == (b"z", False)
    assert read_with_http_client(wire, "GET")[3:] == (b"1\r\nz\r\n0\r\n\r\nX", True)
    cut = b"HTTP/1.1 200 OK\r\nContent-Len"
    assert read_with_http_client(cut, "GET")[0] == 200
    with pytest.raises(_transport._BadAnswer, match="inside the answer's header"):
        read_with_transport(cut, "GET")


BROKEN = {
    "nothing at all": b"",
    "not HTTP": b"SSH-2.0-OpenSSH_9.2\r\n",
    "body shorter than Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd",
    "closed inside a chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
    "chunk size not hex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "status line too long": b"HTTP/1.1 200 " + b"x" * 70000 + b"\r\n\r\n",
    "too many header fields": b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"Content-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_answers_fail_in_both(name):
    wire = BROKEN[name]
    with pytest.raises((http.client.HTTPException, ValueError)):
        read_with_http_client(wire, "GET")
    with pytest.raises(_transport._BadAnswer):
        read_with_transport(wire, "GET")


# ---------------------------------------------------------------- over real sockets, through Session


class ScriptedServer:
    """Accepts connections on 127.0.0.1 and answers each request with the next scripted wire
    answer, sent in `piece`-byte sends; records (connection number, request line, headers, body)."""

    def __init__(self, answers, piece=7):
        self.answers, self.piece, self.seen = list(answers), piece, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.answers:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with client, client.makefile("rb") as reader:
                while self.answers:
                    request_line = reader.readline()
                    if not request_line:
                        break
                    headers = {}
                    for line in iter(reader.readline, b"\r\n"):
                        name, _colon, value = line.decode("latin-1").partition(":")
                        headers[name.lower()] = value.strip()
                    body = reader.read(int(headers.get("content-length", 0)))
                    self.seen.append((self.connections, request_line.decode().strip(), headers, body))
                    wire, close = self.answers.pop(0)
                    for start in range(0, len(wire), self.piece):
                        client.sendall(wire[start:start + self.piece])
                    if close:
                        break

    def url(self, path="/v1/x"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.listener.close()
        self.thread.join(5)


def test_chunked_and_bodiless_answers_keep_the_connection(no_proxy):
    server = ScriptedServer([
        (CHUNKED_JSON, False),
        (ANSWERS["204 has no body"][1], False),
        (ANSWERS["HEAD has no body despite Content-Length"][1], False),
        (ANSWERS["100 Continue before the answer"][1], False),
        (ANSWERS["content-length, keep-alive"][1], False),
    ])
    session = _transport.Session()
    try:
        first = session.request("GET", server.url())
        assert first.json() == {"id": "abc"} and first.headers.get("x-ratelimit-remaining") == "9"
        assert session.request("DELETE", server.url()).status_code == 204
        head = session.request("HEAD", server.url())
        assert (head.status_code, head.content) == (200, b"")
        assert session.request("POST", server.url(), json={"a": 1}).content == b"ok"
        assert session.request("GET", server.url()).json() == {"ok": True}
    finally:
        session.close()
        server.close()
    assert [seen[0] for seen in server.seen] == [1, 1, 1, 1, 1], "one connection for all five"
    assert server.seen[3][1:] == ("POST /v1/x HTTP/1.1", {
        "host": "127.0.0.1:%d" % server.port, "content-type": "application/json", "content-length": "8"},
        b'{"a": 1}')


def test_an_answer_that_ends_at_the_close_is_read_whole_and_the_next_request_reconnects(no_proxy):
    server = ScriptedServer([(ANSWERS["HTTP/1.0, body until the close"][1], True),
                             (ANSWERS["Connection: close"][1], True),
                             (ANSWERS["content-length, keep-alive"][1], False)])
    session = _transport.Session()
    try:
        assert session.request("GET", server.url()).content == b"the rest"
        assert session.request("GET", server.url()).status_code == 429
        assert session.request("GET", server.url()).status_code == 200
    finally:
        session.close()
        server.close()
    assert [seen[0] for seen in server.seen] == [1, 2, 3]


@pytest.mark.parametrize("name", ["body shorter than Content-Length", "closed inside a chunk", "not HTTP"])
def test_an_answer_cut_short_is_a_lost_connection_that_may_have_been_applied(no_proxy, name):
    server = ScriptedServer([(BROKEN[name], True)])
    try:
        with pytest.raises(_transport.ConnectionLost) as caught:
            _transport.Session().request("POST", server.url(), json={"name": "x"})
    finally:
        server.close()
    assert caught.value.sent is True
    assert len(server.seen) == 1


def test_host_field_and_request_line(no_proxy):
    server = ScriptedServer([(ANSWERS["content-length, keep-alive"][1], False)])
    try:
        _transport.Session().request("GET", server.url("/v3/domains/почта.рф"), params={"q": "é"})
    finally:
        server.close()
    assert server.seen[0][1] == "GET /v3/domains/%D0%BF%D0%BE%D1%87%D1%82%D0%B0.%D1%80%D1%84?q=%C3%A9 HTTP/1.1"
    assert _transport._host_field("api.smtp2go.com", 443, 443) == "api.smtp2go.com"
    assert _transport._host_field("::1", 8080, 80) == "[::1]:8080"
    assert _transport._host_field("почта.рф", 443, 443) == "xn--80a1acny.xn--p1ai"


def test_a_header_value_outside_latin_1_is_refused_before_any_connection(no_proxy):
    with pytest.raises(_transport.InvalidHeader) as caught:
        _transport.Session().request("GET", "http://127.0.0.1:9/x", headers={"Authorization": "Bearer ключ"})
    assert "ключ" not in str(caught.value) and caught.value.sent is False


def test_a_proxy_that_refuses_the_tunnel_is_a_connect_failure(no_proxy, monkeypatch):
    proxy = ScriptedServer([(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n", True)])
    monkeypatch.setenv("https_proxy", "http://u:p@127.0.0.1:%d" % proxy.port)
    try:
        with pytest.raises(_transport.ConnectFailed) as caught:
            _transport.Session().request("POST", "https://api.example.invalid/v1/x", json={"a": 1})
    finally:
        proxy.close()
    assert caught.value.sent is False
    assert "407" in str(caught.value)
    assert proxy.seen[0][1] == "CONNECT api.example.invalid:443 HTTP/1.1"
    assert proxy.seen[0][2]["host"] == "api.example.invalid:443"
    assert proxy.seen[0][2]["proxy-authorization"] == "Basic dTpw"


def test_a_broken_answer_is_not_quoted_in_the_error(no_proxy):
    """An answer that echoes the request (some proxies do) and breaks its framing, and a server that
    answers with the echo alone: the error says what broke, never which bytes, so no part of an
    echoed secret reaches the task's output (_http's redactor knows whole secrets, not pieces)."""
    secret = b"smtp-pass-0123456789abcdef"
    echo = b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nerror\r\n" + secret + b"\r\n"
    server = ScriptedServer([(echo, True), (secret + b"\r\n\r\n", True)])
    errors = []
    try:
        for _request in range(2):
            with pytest.raises(_transport.ConnectionLost) as caught:
                _transport.Session().request("POST", server.url(), json={"password": secret.decode()})
            errors.append(str(caught.value))
    finally:
        server.close()
    assert "chunk" in errors[0] and "status line" in errors[1]
    assert not [error for error in errors if "smtp" in error or "0123" in error]
