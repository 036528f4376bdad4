"""localvertex's TLS certificate: the SDK reaches a dedicated endpoint only over https, and gapic clients open gRPC
with TLS unless given a channel, so those listeners present a certificate from localvertex's own authority.

Both live in the data directory (the keys mode 0600). `ca-bundle.pem` is that authority added to the usual public
ones, so pointing `REQUESTS_CA_BUNDLE` at it keeps every other https site working.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class Certificates:
    key: Path
    chain: Path  # the server's certificate, then the authority's
    bundle: Path  # what clients trust: the public authorities and localvertex's

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.chain, self.key)
        return context


def certificates(folder: Path) -> Certificates:
    """The certificate for 127.0.0.1 and localhost, issued again when missing or about to expire."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    found = Certificates(folder / "server.key", folder / "server.pem", folder / "ca-bundle.pem")
    if not (found.chain.exists() and found.key.exists() and found.bundle.exists() and _valid(found.chain)):
        _issue(folder)
    return found


def _valid(cert: Path) -> bool:
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    return loaded.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE


def _issue(folder: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localvertex local CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=397))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write(
        folder / "server.key", key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    _write(folder / "server.pem", server.public_bytes(pem) + ca.public_bytes(pem))
    _write(folder / "ca.pem", ca.public_bytes(pem))
    _write(folder / "ca-bundle.pem", Path(certifi.where()).read_bytes() + b"\n" + ca.public_bytes(pem))


def _write(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)
