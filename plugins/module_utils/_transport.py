# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: HTTP/1.1 on the standard library, under `_http.ApiClient`.

Not a public API; it may change without notice.

Why not `requests` (or `ansible.module_utils.urls`): importing either costs more than
`ansible.module_utils.basic` itself, and every module pays that on every task (see
benchmarks/). An API module needs one request at a time to one host: JSON or a form body,
a connect and a read timeout, TLS with the system's CAs, the proxy variables, and to know
whether a failed request could have reached the server. `http.client` and `ssl` do that.
"""

from __future__ import annotations

import base64
import http.client
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


def _open_connection(parts, port, proxy, context, timeout):
    """A connected HTTP(S)Connection (through `proxy` if given); closed again if connecting fails."""
    host, host_port = (proxy.hostname, proxy.port or 80) if proxy else (parts.hostname, port)
    if context is not None:
        connection = http.client.HTTPSConnection(host, host_port, timeout=timeout, context=context)
        if proxy:
            connection.set_tunnel(parts.hostname, port, headers=_proxy_auth_header(proxy))
    else:
        connection = http.client.HTTPConnection(host, host_port, timeout=timeout)
    try:
        connection.connect()
    except BaseException:
        connection.close()
        raise
    return connection


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
        for connection in self._connections.values():
            connection.close()
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
            port = parts.port or (443 if parts.scheme == "https" else 80)
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
        if proxy is not None and parts.scheme == "http":
            # A plain-HTTP proxy takes the whole URL in the request line.
            target = urllib.parse.urlunsplit((parts.scheme, parts.netloc, target, "", ""))
            headers.extend(_proxy_auth_header(proxy).items())
        key = (parts.scheme, parts.hostname, port, bool(verify), proxy.geturl() if proxy else None)
        connection = self._connection(key, parts, port, proxy, verify, connect_timeout)
        try:
            connection.sock.settimeout(read_timeout)
            connection.putrequest(prepared.method, target, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders(prepared.body)
            answer = connection.getresponse()
            content = answer.read()
        except socket.timeout as exc:
            self._drop(key)
            raise ReadTimeout("no answer within %.1f s (%s)" % (read_timeout, exc or "timed out"))
        except (OSError, http.client.HTTPException) as exc:
            self._drop(key)
            raise ConnectionLost("the connection was lost (%s: %s)" % (type(exc).__name__, exc))
        if answer.will_close:
            self._drop(key)
        return Response(answer.status, answer.reason, Headers(answer.getheaders()), content)

    def _connection(self, key, parts, port, proxy, verify, connect_timeout):
        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and not _is_dropped(connection.sock):
            return connection
        self._drop(key)
        started = time.monotonic()
        context, lazy = _tls_context(verify) if parts.scheme == "https" else (None, False)
        try:
            try:
                connection = _open_connection(parts, port, proxy, context, connect_timeout)
            except ssl.SSLError as exc:
                if not retry_with_full_store(exc, lazy):
                    raise
                # Not trusted by the system's hashed CA directory alone: the full store decides (_tls),
                # within what is left of the connect timeout. Nothing was sent yet.
                context, _lazy = _tls_context(verify, full_store=True)
                left = max(0.001, connect_timeout - (time.monotonic() - started))
                connection = _open_connection(parts, port, proxy, context, left)
        except ssl.SSLError as exc:
            raise TlsError(str(exc))
        except socket.timeout as exc:
            raise ConnectTimeout("no connection within %.1f s (%s)" % (connect_timeout, exc or "timed out"))
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectFailed("could not connect to %s:%s (%s)" % (parts.hostname, port, exc))
        self._connections[key] = connection
        return connection

    def _drop(self, key):
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()


def _is_dropped(sock):
    """A kept-alive socket the server closed (readable with no request outstanding) is not reused."""
    try:
        readable = select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return True
    return bool(readable)


def _json_dumps(value):
    return json.dumps(value, allow_nan=False)
