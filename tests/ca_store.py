"""A stand-in for the system's CA store, for tests of what the modules trust without ca_path.

OpenSSL reads its default store from SSL_CERT_FILE (a PEM bundle, parsed whole) and SSL_CERT_DIR
(a hashed directory, read one file per issuer looked up): `ca_store_env` builds both in a temp
dir and returns the two variables. A file of the hashed directory is named by its subject's hash,
computed here as OpenSSL's X509_NAME_hash does (crypto/x509/x_name.c); OpenSSL's own lookup judges
it: under a wrong name the directory does not vouch for the CA, and the tests that expect it to
fail. No `openssl` program is needed (`make test` runs the unit tests before any Debian package).
"""

import hashlib
import os
import re

from cryptography import x509


def _der(tag, content):
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _der_oid(dotted):
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def _canonical(value):
    """asn1_string_canon: outer whitespace dropped, inner runs made one space, ASCII lowercased."""
    collapsed = " ".join(part for part in re.split(r"[ \t\n\v\f\r]+", value) if part)
    return "".join(char.lower() if char < "\x80" else char for char in collapsed)


def subject_hash(pem):
    """The 8 hex digits `openssl x509 -subject_hash` prints for this PEM certificate (bytes)."""
    subject = x509.load_pem_x509_certificate(pem).subject
    encoded = b""
    for rdn in subject.rdns:  # each RDN a DER SET OF {OID, UTF8String of the canonical value}
        entries = sorted(_der(0x30, _der_oid(attribute.oid.dotted_string)
                              + _der(0x0C, _canonical(attribute.value).encode("utf-8"))) for attribute in rdn)
        encoded += _der(0x31, b"".join(entries))
    digest = hashlib.sha1(encoded).digest()
    return "%08x" % int.from_bytes(digest[:4], "little")


def pem_bytes(ca):
    if hasattr(ca, "cert_pem"):
        return ca.cert_pem.bytes()
    with open(ca, "rb") as source:
        return source.read()


def ca_store_env(directory, bundle=(), hashed=()):
    """{SSL_CERT_FILE, SSL_CERT_DIR} for a store of `bundle` CAs in one file and `hashed` CAs in a
    hashed directory, both under `directory`. A CA is a trustme.CA or the path of a PEM file."""
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    bundle_path = os.path.join(directory, "bundle.pem")
    with open(bundle_path, "wb") as out:
        for ca in bundle:
            out.write(pem_bytes(ca))
    hashed_dir = os.path.join(directory, "hashed")
    os.makedirs(hashed_dir, exist_ok=True)
    for index, ca in enumerate(hashed):
        pem = os.path.join(directory, "ca-%d.pem" % index)
        with open(pem, "wb") as out:
            out.write(pem_bytes(ca))
        name = subject_hash(pem_bytes(ca))
        serial = 0
        while os.path.exists(os.path.join(hashed_dir, "%s.%d" % (name, serial))):
            serial += 1
        os.symlink(pem, os.path.join(hashed_dir, "%s.%d" % (name, serial)))
    return {"SSL_CERT_FILE": bundle_path, "SSL_CERT_DIR": hashed_dir}
