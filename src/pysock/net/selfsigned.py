"""A fresh self-signed server certificate, made in memory for `listen --tls` without
--cert (as ncat --ssl does). Neither key nor certificate ever touches the disk: they
reach OpenSSL through an anonymous memory file."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl

VALID_DAYS = 365


def make_self_signed() -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM): EC P-256, CN=pysock, for localhost, this
    host's name and the loopback addresses."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pysock")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost")]
    host = socket.gethostname()
    if host and host != "localhost":
        names.append(x509.DNSName(host))
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem


def load_self_signed(ctx: ssl.SSLContext) -> str:
    """Make a certificate, load it into ctx, return its SHA-256 fingerprint."""
    cert_pem, key_pem = make_self_signed()
    with _memory_file(cert_pem + key_pem) as path:
        ctx.load_cert_chain(path)
    return fingerprint(ssl.PEM_cert_to_DER_cert(cert_pem.decode()))


def fingerprint(der: bytes) -> str:
    """SHA-256 over the DER certificate, as openssl x509 -fingerprint -sha256 prints it."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


@contextlib.contextmanager
def _memory_file(data: bytes):
    fd = os.memfd_create("pysock-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
