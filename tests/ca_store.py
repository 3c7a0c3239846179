"""A stand-in for the system's CA store, for tests of what the modules trust without ca_path.

OpenSSL reads its default store from SSL_CERT_FILE (a PEM bundle, parsed whole) and SSL_CERT_DIR
(a hashed directory, read one file per issuer looked up): `ca_store_env` builds both in a temp
dir and returns the two variables. The hashed names come from the `openssl` program (installed
with Debian's ca-certificates), so a wrong name cannot agree with a wrong expectation of ours.
"""

import os
import shutil
import subprocess


def subject_hash(pem_path):
    openssl = shutil.which("openssl")
    assert openssl, "these tests name CA files by their subject hash with the openssl program: apt-get install openssl"
    return subprocess.run([openssl, "x509", "-subject_hash", "-noout", "-in", str(pem_path)],
                          check=True, capture_output=True, text=True).stdout.strip()


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
        name = subject_hash(pem)
        serial = 0
        while os.path.exists(os.path.join(hashed_dir, "%s.%d" % (name, serial))):
            serial += 1
        os.symlink(pem, os.path.join(hashed_dir, "%s.%d" % (name, serial)))
    return {"SSL_CERT_FILE": bundle_path, "SSL_CERT_DIR": hashed_dir}
