# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: HTTP/1.1 on the standard library, under `_http.ApiClient`.

Not a public API; it may change without notice.

Why not `requests` (or `ansible.module_utils.urls`): importing either costs more than
`ansible.module_utils.basic` itself, and every module pays that on every task (see
benchmarks/). An API module needs one request at a time to one host: JSON or a form body,
a connect and a read timeout, TLS with the system's CAs, the proxy variables, and to know
whether a failed request could have reached the server.

Why not `http.client` either: it imports the `email` package to parse header fields, which was
about a third of an API module's import cost beyond ansible's own (bench (e)). The part of
HTTP/1.1 used here is small and is read as RFC 9112 says: a status line, header fields
(obs-fold joined), a body framed by chunked coding, Content-Length or the connection's close
(none for HEAD, 1xx, 204 and 304), interim 1xx answers skipped, keep-alive as HTTP/1.0 and 1.1
define it, and a CONNECT tunnel for https through a proxy. tests/unit/.../test_transport_wire.py
replays the same wire answers to `http.client` and checks that both read them alike.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import ssl
import sys
import time
import urllib.parse

from ansible_collections.karto.supabase_mail.plugins.module_utils._tls import (
    bundle_context,
    retry_with_full_store,
    unverified_context,
    verifying_context,
)


class TransportError(Exception):
    """A request that got no HTTP answer. `sent` is False only when the server cannot have
    received the whole request (so even a write is safe to send again)."""

    sent = True


class InvalidUrl(TransportError):
    sent = False


class InvalidHeader(TransportError):
    sent = False


class ConnectFailed(TransportError):
    """Refused, unreachable, or a name that does not resolve: nothing was sent."""

    sent = False


class ConnectTimeout(ConnectFailed):
    pass


class TlsError(TransportError):
    """The TLS handshake failed (certificate, or a port that does not speak TLS): nothing was sent."""

    sent = False


class ConnectionLost(TransportError):
    """The connection closed or reset after the request went out, before a whole answer."""


class ReadTimeout(TransportError):
    """The request went out and no answer came within the read timeout."""


class _BadAnswer(Exception):
    """What came back cannot be read as an HTTP/1.x answer (or stopped before its end)."""


# Bounds on what a server can make us hold, as http.client's (_MAXLINE, _MAXHEADERS).
_MAX_LINE = 65536
_MAX_HEADERS = 100
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FormBody(dict):
    """A request body sent as multipart/form-data (one plain field per item) instead of JSON."""


class Headers:
    """Response headers, looked up without regard to case (as HTTP field names are)."""

    def __init__(self, items=()):
        self._items = [(str(name), str(value)) for name, value in items]

    def get(self, name, default=None):
        wanted = name.lower()
        for key, value in self._items:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name):
        """Every value of the field `name`, in order (a field may be sent on several lines)."""
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def tokens(self, name):
        """The comma-separated items of every `name` field, lower-cased (RFC 9110 5.3: one list)."""
        return [token.strip().lower() for value in self.get_all(name) for token in value.split(",") if token.strip()]

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name):
        return self.get(name) is not None

    def items(self):
        return list(self._items)


class Response:
    def __init__(self, status_code, reason, headers, content):
        self.status_code = status_code
        self.reason = reason
        self.headers = headers
        self.content = content

    @property
    def text(self):
        charset = "utf-8"
        for part in (self.headers.get("Content-Type") or "").split(";")[1:]:
            name, _equals, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, "replace")
        except LookupError:
            return self.content.decode("utf-8", "replace")

    def json(self):
        """The decoded JSON body; ValueError when it is not JSON."""
        return json.loads(self.text)


def _check_header(name, value):
    text = str(value)
    if any(char in text for char in "\r\n\0"):
        # The value is never quoted: it is often a key or token.
        raise InvalidHeader("the %s header value holds a line break or NUL character" % name)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        # Header fields go on the wire as ISO-8859-1 (RFC 9110 5.5); again, the value is not quoted.
        raise InvalidHeader("the %s header value holds a character outside ISO-8859-1" % name)
    return text


def _encode_form(fields):
    boundary = "karto-" + base64.b16encode(os.urandom(12)).decode().lower()
    parts = []
    for name, value in fields.items():
        parts.append(
            "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (boundary, str(name).replace('"', "%22"))
        )
        parts.append("%s\r\n" % value)
    parts.append("--%s--\r\n" % boundary)
    return "".join(parts).encode("utf-8"), "multipart/form-data; boundary=%s" % boundary


def _proxy_for(scheme, host):
    """(proxy URL parts, or None) from the *_PROXY / NO_PROXY variables, as curl and requests read them."""
    if not any(name.lower().endswith("_proxy") for name in os.environ) and sys.platform.startswith("linux"):
        # On Linux getproxies() reads only these variables: without any, there is no proxy, and
        # urllib.request (3-4 ms of a module's start-up) is not imported. Elsewhere it also asks the system.
        return None
    import urllib.request  # pylint: disable=import-outside-toplevel

    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    parts = urllib.parse.urlsplit(proxy)
    return parts if parts.hostname else None


def _proxy_auth_header(proxy):
    if proxy.username is None:
        return {}
    credentials = "%s:%s" % (urllib.parse.unquote(proxy.username), urllib.parse.unquote(proxy.password or ""))
    return {"Proxy-Authorization": "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")}


def _tls_context(verify, full_store=False):
    """(context, lazy) for an https connection; `lazy` as in _tls.verifying_context."""
    if not verify:
        return unverified_context(), False
    # A bundle named the way requests users name it replaces the system's CAs, as it does for
    # requests, so existing set-ups keep working.
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        return bundle_context(bundle), False
    # The system's CAs (SSL_CERT_FILE / SSL_CERT_DIR honoured by OpenSSL).
    return verifying_context(full_store=full_store)


def _host_field(hostname, port, default_port):
    """`hostname[:port]` as the Host field and CONNECT target write it (IPv6 in brackets, IDN as A-labels)."""
    host = hostname if hostname.isascii() else hostname.encode("idna").decode("ascii")
    if ":" in host:
        host = "[%s]" % host
    return host if port == default_port else "%s:%d" % (host, port)


def _open_tunnel(sock, hostname, port, proxy):
    """CONNECT hostname:port through the proxy `sock` is connected to (RFC 9110 9.3.6)."""
    authority = _host_field(hostname, port, None)
    lines = ["CONNECT %s HTTP/1.1" % authority, "Host: %s" % authority]
    lines += ["%s: %s" % item for item in _proxy_auth_header(proxy).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    reader = sock.makefile("rb")
    try:
        _version, status, reason, _headers = _read_head(reader)
    except _BadAnswer as exc:
        raise OSError("the proxy's answer to CONNECT is not HTTP (%s)" % exc)
    finally:
        reader.close()
    # Anything after a 2xx head belongs to the tunnel; a refusal's body is not read (the socket is closed).
    if not 200 <= status < 300:
        raise OSError("the proxy refused the tunnel to %s: %d %s" % (authority, status, reason.strip()))


def _open_connection(parts, port, proxy, context, timeout):
    """A connected socket: TLS-wrapped for https, tunnelled through `proxy` if given; closed if connecting fails."""
    host, host_port = (proxy.hostname, proxy.port or 80) if proxy else (parts.hostname, port)
    sock = socket.create_connection((host, host_port), timeout)
    try:
        # The request's head and body go out in one send; no Nagle delay on a small request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            if proxy:
                _open_tunnel(sock, parts.hostname, port, proxy)
            sock = context.wrap_socket(sock, server_hostname=parts.hostname)
    except BaseException:
        sock.close()
        raise
    return sock


def _read_line(reader):
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise _BadAnswer("a line of the answer is longer than %d bytes" % _MAX_LINE)
    return line


def _read_head(reader):
    """(version, status, reason, [(name, value)]) of one answer: its status line and header fields."""
    line = _read_line(reader)
    if not line:
        raise _BadAnswer("the server closed the connection without an answer")
    text = line.decode("iso-8859-1").rstrip("\r\n")
    version, _space, rest = text.partition(" ")
    code, _space, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not (code.isascii() and code.isdigit()) \
            or code[0] == "0":
        # Not quoted: on a kept connection it may be what is left of an answer that echoed the request.
        raise _BadAnswer("the answer does not start with an HTTP/1.x status line")
    headers = []
    while True:
        line = _read_line(reader)
        if line in (b"\r\n", b"\n"):
            return version, int(code), reason, headers
        if not line:
            raise _BadAnswer("the connection closed inside the answer's header")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t"):
            if headers:  # obs-fold: a continuation of the field before (RFC 9112 5.2)
                name, value = headers[-1]
                headers[-1] = (name, (value + " " + text.strip()).strip())
            continue
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            continue  # not a field line: skipped, as lenient clients (http.client included) do
        if len(headers) >= _MAX_HEADERS:
            raise _BadAnswer("the answer has more than %d header fields" % _MAX_HEADERS)
        headers.append((name, value.strip(" \t")))


def _read_chunked(reader):
    chunks = []
    while True:
        line = _read_line(reader)
        size_text = line.split(b";", 1)[0].strip().decode("iso-8859-1")
        if not size_text or not set(size_text) <= _HEX_DIGITS:
            if not line:
                raise _BadAnswer("the connection closed inside the chunked body")
            raise _BadAnswer("a chunk does not start with its size")  # body bytes are never quoted
        size = int(size_text, 16)
        if size == 0:
            break
        data = reader.read(size)
        if len(data) < size or _read_line(reader) not in (b"\r\n", b"\n"):
            raise _BadAnswer("the chunked body stopped inside a chunk")
        chunks.append(data)
    while _read_line(reader) not in (b"\r\n", b"\n", b""):
        pass  # trailer fields: not used
    return b"".join(chunks)


def _read_answer(reader, method):
    """(status, reason, headers, body, will_close) of the final answer to one request (RFC 9112 6.3)."""
    version, status, reason, fields = _read_head(reader)
    while 100 <= status < 200:  # interim answers (100 Continue, 103 Early Hints) come before the real one
        version, status, reason, fields = _read_head(reader)
    headers = Headers(fields)
    connection = headers.tokens("Connection")
    if version == "HTTP/1.0":
        will_close = "keep-alive" not in connection and "Keep-Alive" not in headers
    else:
        will_close = "close" in connection
    if method == "HEAD" or status in (204, 304):
        return status, reason, headers, b"", will_close
    codings = headers.tokens("Transfer-Encoding")
    if codings:
        if codings[-1] == "chunked":
            return status, reason, headers, _read_chunked(reader), will_close
        return status, reason, headers, reader.read(), True  # another coding: the body ends at the close
    lengths = {value.strip() for value in headers.get_all("Content-Length")}
    if not lengths:
        return status, reason, headers, reader.read(), True
    length = lengths.pop()
    if lengths or not (length.isascii() and length.isdigit()):
        raise _BadAnswer("invalid Content-Length")
    body = reader.read(int(length))
    if len(body) < int(length):
        raise _BadAnswer("the connection closed after %d of %s body bytes" % (len(body), length))
    return status, reason, headers, body, will_close


class PreparedRequest:
    def __init__(self, method, parts, port, target, headers, body):
        self.method, self.parts, self.port, self.target = method, parts, port, target
        self.headers = headers  # [(name, value)], checked
        self.body = body

    @property
    def url(self):
        return urllib.parse.urlunsplit((self.parts.scheme, self.parts.netloc, self.target, "", ""))

    def header(self, name):
        return Headers(self.headers).get(name)


class Session:
    """Sends one request at a time, keeping the connection to each host open between them."""

    def __init__(self):
        self.headers = {}
        self._connections = {}

    def close(self):
        for sock in self._connections.values():
            sock.close()
        self._connections.clear()

    def request(self, method, url, json=None, params=None, headers=None, timeout=(10.0, 30.0), verify=True):
        # pylint: disable=redefined-outer-name
        return self.send(self.prepare(method, url, json=json, params=params, headers=headers),
                         timeout=timeout, verify=verify)

    def prepare(self, method, url, json=None, params=None, headers=None):
        """The request as it will go on the wire; InvalidUrl / InvalidHeader before any connection."""
        # pylint: disable=redefined-outer-name
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidUrl("%r is not an http:// or https:// URL with a host" % url)
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise InvalidUrl("%r has an invalid port (%s)" % (url, exc))
        target = parts.path or "/"
        query = [parts.query] if parts.query else []
        if params:
            pairs = [(name, value) for name, value in params.items() if value is not None]
            query.append(urllib.parse.urlencode(pairs, doseq=True))
        if query:
            target += "?" + "&".join(query)
        if any(ord(char) <= 32 or ord(char) == 127 for char in target):
            raise InvalidUrl("%r holds a space or control character in its path or query" % url)
        if not target.isascii():
            # The request line is ASCII: other characters go percent-encoded as UTF-8 (as requests sends them).
            target = "".join(char if char.isascii() else urllib.parse.quote(char) for char in target)

        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        body = None
        if isinstance(json, FormBody):
            body, all_headers["Content-Type"] = _encode_form(json)
        elif json is not None:
            body = _json_dumps(json).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        if body is not None or method.upper() in ("POST", "PUT", "PATCH"):
            all_headers["Content-Length"] = str(len(body or b""))
        checked = [(str(name), _check_header(name, value)) for name, value in all_headers.items()]
        return PreparedRequest(method.upper(), parts, port, target, checked, body)

    def send(self, prepared, timeout=(10.0, 30.0), verify=True):
        connect_timeout, read_timeout = timeout
        parts, port, target, headers = prepared.parts, prepared.port, prepared.target, list(prepared.headers)
        proxy = _proxy_for(parts.scheme, parts.hostname)
        host = _host_field(parts.hostname, port, _DEFAULT_PORTS[parts.scheme])
        if proxy is not None and parts.scheme == "http":
            # A plain-HTTP proxy takes the whole URL in the request line (without any user:password@).
            target = "http://%s%s" % (host, target)
            headers.extend(_proxy_auth_header(proxy).items())
        key = (parts.scheme, parts.hostname, port, bool(verify), proxy.geturl() if proxy else None)
        head = ["%s %s HTTP/1.1" % (prepared.method, target), "Host: %s" % host]
        head += ["%s: %s" % item for item in headers]
        wire = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (prepared.body or b"")
        sock = self._connection(key, parts, port, proxy, verify, connect_timeout)
        try:
            sock.settimeout(read_timeout)
            sock.sendall(wire)
            reader = sock.makefile("rb")
            try:
                status, reason, answer_headers, content, will_close = _read_answer(reader, prepared.method)
            finally:
                reader.close()  # the file object only: the socket stays open for the next request
        except socket.timeout as exc:
            self._drop(key)
            raise ReadTimeout("no answer within %.1f s (%s)" % (read_timeout, exc or "timed out"))
        except _BadAnswer as exc:
            self._drop(key)
            raise ConnectionLost("no whole answer came back (%s)" % exc)
        except OSError as exc:
            self._drop(key)
            raise ConnectionLost("the connection was lost (%s: %s)" % (type(exc).__name__, exc))
        if will_close:
            self._drop(key)
        return Response(status, reason, answer_headers, content)

    def _connection(self, key, parts, port, proxy, verify, connect_timeout):
        sock = self._connections.get(key)
        if sock is not None and not _is_dropped(sock):
            return sock
        self._drop(key)
        started = time.monotonic()
        context, lazy = _tls_context(verify) if parts.scheme == "https" else (None, False)
        try:
            try:
                sock = _open_connection(parts, port, proxy, context, connect_timeout)
            except ssl.SSLError as exc:
                if not retry_with_full_store(exc, lazy):
                    raise
                # Not trusted by the system's hashed CA directory alone: the full store decides (_tls),
                # within what is left of the connect timeout. Nothing was sent yet.
                context, _lazy = _tls_context(verify, full_store=True)
                left = max(0.001, connect_timeout - (time.monotonic() - started))
                sock = _open_connection(parts, port, proxy, context, left)
        except ssl.SSLError as exc:
            raise TlsError(str(exc))
        except socket.timeout as exc:
            raise ConnectTimeout("no connection within %.1f s (%s)" % (connect_timeout, exc or "timed out"))
        except OSError as exc:
            raise ConnectFailed("could not connect to %s:%s (%s)" % (parts.hostname, port, exc))
        self._connections[key] = sock
        return sock

    def _drop(self, key):
        sock = self._connections.pop(key, None)
        if sock is not None:
            sock.close()


def _is_dropped(sock):
    """A kept-alive socket the server closed (readable with no request outstanding) is not reused."""
    try:
        readable = select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return True
    return bool(readable)


def _json_dumps(value):
    return json.dumps(value, allow_nan=False)
