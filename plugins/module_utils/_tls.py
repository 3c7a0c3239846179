# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: TLS client contexts that check certificates against the
system's CAs without parsing all of them on every run.

`ssl.create_default_context()` makes OpenSSL read the system bundle (SSL_CERT_FILE, e.g.
/etc/ssl/certs/ca-certificates.crt) whole: OpenSSL 3.0 takes 25-50 ms for Debian's ~150 CAs,
the largest single cost of an smtp_check task (`make bench`). The system's hashed CA directory
(SSL_CERT_DIR, kept by update-ca-certificates or `openssl rehash`) is read lazily instead: only
the file named by the hash of an issuer being looked up.

So a first handshake trusts the hashed directory alone (`verifying_context`). A certificate error
there is not a verdict: the caller connects again with the full default store
(`verifying_context(..., full_store=True)`, the same as `ssl.create_default_context()`), and that
store decides. A chain that verifies against the directory verifies against the full store, which
holds the directory too (OpenSSL's default paths are the bundle and the directory). Without a
hashed directory (RHEL's /etc/pki/tls/certs holds bundles only; Windows; macOS) the full store is
used at once.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import os
import re
import ssl

# `openssl rehash` / c_rehash names: the subject hash, a dot and a serial number (".r0" files are CRLs).
_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+\Z")


def hashed_ca_directory():
    """The system's default CA directory (SSL_CERT_DIR or OpenSSL's own) if it holds hashed
    certificate names, else None."""
    directory = ssl.get_default_verify_paths().capath  # None when it does not exist
    if not directory:
        return None
    try:
        with os.scandir(directory) as entries:
            if any(_HASHED_NAME.match(entry.name) for entry in entries):
                return directory
    except OSError:
        pass
    return None


def verifying_context(ca_path=None, full_store=False):
    """A client context that checks the certificate and the host name.

    Trusts the system's CAs, and `ca_path` (a PEM file, or a hashed directory) as well. Returns
    (context, lazy): `lazy` is True when it trusts the system's hashed directory alone, so that a
    certificate error must be retried with `full_store=True` before it is reported.
    """
    directory = None if full_store else hashed_ca_directory()
    if directory:
        # create_default_context sets the checks and flags of this Python version (3.13 adds
        # VERIFY_X509_STRICT); with capath given it loads that directory and nothing else.
        context = ssl.create_default_context(capath=directory)
    else:
        context = ssl.create_default_context()
    if ca_path:
        context.load_verify_locations(**_locations(ca_path))
    return context, directory is not None


def bundle_context(path):
    """A client context that checks the certificate and the host name against `path` alone (a PEM
    file, or a hashed directory), not the system's CAs."""
    return ssl.create_default_context(**_locations(path))


def _locations(path):
    return {"capath": path} if os.path.isdir(path) else {"cafile": path}


def unverified_context():
    """A client context that checks nothing: validate_certs=false, or a look at whether a port speaks TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def retry_with_full_store(error, lazy):
    """Whether a failed handshake on a context from `verifying_context` must be tried again with
    the full store before its error is a verdict."""
    return lazy and isinstance(error, ssl.SSLCertVerificationError)
