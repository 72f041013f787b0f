"""Key material of the simulator: a local CA, the HTTPS server certificate it signs, and the token-signing key.

Everything lives in a *state directory* so a restarted simulator reuses it: clients keep trusting the same CA file
(``ca.pem``) and access tokens issued before a restart stay valid. Files are written atomically (temp file +
rename) so two processes starting on the same state directory never see half-written PEM files.

Nothing here runs at import time; keys are generated on first use (RSA-2048, a few tens of milliseconds each).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"
SIGNING_KEY_FILE = "token-signing-key.pem"
SIGNING_CERT_FILE = "token-signing-cert.pem"

# The names the server certificate is valid for. Clients connect to 127.0.0.1 (the default bind address),
# "localhost" or ::1; nothing else is ever served.
SERVER_DNS_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1", "::1")

_CA_DAYS = 3650
_SERVER_DAYS = 800  # under the 825-day ceiling some TLS stacks enforce for leaf certificates
_RENEW_MARGIN = dt.timedelta(days=7)
_lock = threading.Lock()


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the PEM files the HTTPS server needs; ``ca_path`` is the file clients pass as ``verify=``."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context (TLS 1.2+) presenting the server certificate and its chain."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


@dataclass(frozen=True)
class SigningKey:
    """The identity platform's token-signing key (published in the JWKS with its self-signed certificate)."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def kid(self) -> str:
        """Key id: base64url SHA-1 thumbprint of the certificate, which Entra also uses as ``kid`` and ``x5t``."""
        return b64url(self.certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - thumbprint, not a security hash

    def private_pem(self) -> bytes:
        return _private_pem(self.private_key)

    def jwk(self) -> dict:
        """The public key as a JWKS entry shaped like Entra's ``discovery/v2.0/keys``."""
        numbers = self.private_key.public_key().public_numbers()
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "x5c": [base64.b64encode(der).decode()],
        }


def b64url(data: bytes) -> str:
    """Unpadded base64url, as used in JOSE headers."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ensure_tls(state_dir: str | os.PathLike[str], extra_names: Iterable[str] = ()) -> TlsMaterial:
    """Return the CA and server certificate in ``state_dir``, creating (or renewing) them when needed.

    The CA is kept as long as it is valid, so a client that trusts ``ca.pem`` keeps working across restarts;
    the server certificate is re-issued when it is missing, near expiry, not signed by the current CA, or does not
    name every host in ``extra_names`` (DNS names or IP addresses clients use besides localhost, e.g. the service
    name ``msteams-simulator`` on a compose network).
    """
    root = Path(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    with _lock:
        ca_cert, ca_key = _load_or_create_ca(root)
        _ensure_server_cert(root, ca_cert, ca_key, _subject_names(extra_names))
    return TlsMaterial(root / CA_FILE, root / SERVER_CERT_FILE, root / SERVER_KEY_FILE)


def load_or_create_signing_key(state_dir: str | os.PathLike[str]) -> SigningKey:
    """The token-signing key of ``state_dir`` (created on first use, reused afterwards)."""
    root = Path(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    with _lock:
        key = _read_key(root / SIGNING_KEY_FILE)
        cert = _read_cert(root / SIGNING_CERT_FILE)
        if key is None or cert is None or cert.public_key().public_numbers() != key.public_key().public_numbers():
            key = new_rsa_key()
            cert = self_signed_certificate(key, "accounts.simulator.local token signing", days=_CA_DAYS)
            _write_atomic(root / SIGNING_KEY_FILE, _private_pem(key))
            _write_atomic(root / SIGNING_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))
            log.info("created a token-signing key in %s", root)
    return SigningKey(key, cert)


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str, days: int = 365) -> x509.Certificate:
    """A self-signed certificate for ``key`` (what an admin uploads to an app registration as a credential)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return _certificate_builder(name, name, key, days).sign(key, hashes.SHA256())


def certificate_thumbprints(cert_pem: str | bytes) -> tuple[str, str]:
    """``(sha1_hex_upper, sha256_hex)`` of a PEM certificate, as the portal and JOSE ``x5t``/``x5t#S256`` use them."""
    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    der = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper(), hashlib.sha256(der).hexdigest()  # noqa: S324 - thumbprint


def _load_or_create_ca(root: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    cert = _read_cert(root / CA_FILE)
    key = _read_key(root / CA_KEY_FILE)
    if cert is not None and key is not None and _usable(cert) and _same_key(cert, key):
        return cert, key
    key = new_rsa_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "teamsops simulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, "teamsops simulator local CA"),
    ])  # fmt: skip
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _certificate_builder(name, name, key, _CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_atomic(root / CA_KEY_FILE, _private_pem(key))
    _write_atomic(root / CA_FILE, cert.public_bytes(serialization.Encoding.PEM))
    # A new CA invalidates the old server certificate.
    (root / SERVER_CERT_FILE).unlink(missing_ok=True)
    log.info("created a local CA in %s (clients trust %s)", root, root / CA_FILE)
    return cert, key


def _subject_names(extra: Iterable[str]) -> list[x509.GeneralName]:
    """The server certificate's subject alternative names: localhost's, then ``extra`` (hosts or IPs)."""
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    for host in extra:
        host = host.strip().strip("[]")
        if not host:
            continue
        try:
            name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host.lower())
        if name not in names:
            names.append(name)
    return names


def _names_of(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _ensure_server_cert(root: Path, ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey,
                        sans: list[x509.GeneralName]) -> None:
    cert = _read_cert(root / SERVER_CERT_FILE)
    key = _read_key(root / SERVER_KEY_FILE)
    if (cert is not None and key is not None and _usable(cert) and _same_key(cert, key) and _issued_by(cert, ca_cert)
            and all(name in _names_of(cert) for name in sans)):
        return
    key = new_rsa_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        _certificate_builder(subject, ca_cert.subject, key, _SERVER_DAYS)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_atomic(root / SERVER_KEY_FILE, _private_pem(key))
    _write_atomic(root / SERVER_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))
    log.info("issued a server certificate for %s in %s", ", ".join(SERVER_DNS_NAMES + SERVER_IPS), root)


def _certificate_builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey, days: int
) -> x509.CertificateBuilder:
    """What every certificate here has: subject, issuer, ``key``'s public key, a random serial, and a validity of
    ``days`` that starts five minutes back so a peer whose clock runs slightly behind accepts it at once."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=not cert_sign, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _usable(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _RENEW_MARGIN > _now()


def _same_key(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    return cert.public_key().public_numbers() == key.public_key().public_numbers()


def _issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _read_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _read_key(path: Path) -> rsa.RSAPrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPrivateKey) else None


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600 if b"PRIVATE KEY" in data else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
