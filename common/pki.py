"""The fleet's X.509 identities (gRPC mutual TLS) and its manifest-signing keys.

Why our own small PKI rather than "bring your certificates": a fleet of
Jetsons is enrolled by one operator, and every connection in it (agent →
controller, controller → agent, CLI → controller) must prove *who* is calling,
not just that the bytes are encrypted. So the fleet has one private CA and
every party a leaf certificate whose identity is machine-readable:

- the identity lives in a URI subjectAltName, ``jetfleet://<role>/<name>``
  (the SPIFFE idea), because SANs are what TLS stacks verify and expose to
  servers (``x509_pem_cert`` in gRPC's auth context); the CN and OU repeat it
  for humans reading ``openssl x509 -text``;
- keys are ECDSA P-256: BoringSSL (inside grpcio) and every TLS stack on
  JetPack handle it, and signing on a Jetson Nano is cheap;
- the CA may only sign leaves (``pathlen 0``), leaves are backdated five
  minutes because a freshly booted Jetson without an RTC battery often runs
  a little behind, and a leaf never outlives its CA;
- key files are created 0600 (never world-readable, even for an instant) and
  replaced atomically, so a crash or a power cut leaves the old key or the
  new one, never half of one.

Deployment manifests are signed with a separate Ed25519 key
(:mod:`jetfleet.common.manifest`): TLS proves who is connected, the manifest
signature proves the controller's key approved *this* model for *this*
device class, even if a TLS key or the transport is compromised. A key is
named by :func:`key_id`, the first 16 hex digits of the sha256 of its raw
public bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import fsync_dir

ROLES = ("controller", "admin", "device")
ORGANIZATION = "jetfleet"
URI_SCHEME = "jetfleet://"
CLOCK_SKEW = dt.timedelta(minutes=5)  # leaves are valid from 5 min before issue

# A DNS label: device names become the DNS name the controller checks when it dials, and DNS names match
# case-insensitively, so upper case and a trailing dot would let "JETFLEET-CONTROLLER." pose as another name.
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_URI = re.compile(r"jetfleet://([^/]+)/([^/]+)")


class PKIError(JetfleetError):
    """A key, certificate or CSR is unusable, or does not belong to whom it should."""


# --------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class Identity:
    """Who a certificate speaks for: a role and a name, e.g. ``device jetson-01``."""

    role: str
    name: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise PKIError(f"unknown identity role {self.role!r}", hint=f"use one of {', '.join(ROLES)}")
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise PKIError(
                f"invalid {self.role} name {self.name!r}",
                hint="use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit",
            )

    @property
    def uri(self) -> str:
        return f"{URI_SCHEME}{self.role}/{self.name}"

    @classmethod
    def from_uri(cls, uri: str) -> Identity:
        match = _URI.fullmatch(uri) if isinstance(uri, str) else None
        if not match:
            raise PKIError(f"not a jetfleet identity URI: {uri!r}", hint="expected jetfleet://<role>/<name>")
        return cls(match.group(1), match.group(2))

    def __str__(self) -> str:
        return f"{self.role} {self.name}"


# --------------------------------------------------------------------------- TLS keys


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key (what gRPC/BoringSSL and JetPack's OpenSSL all handle)."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS8 PEM, unencrypted: the file's 0600 mode is its protection (see :func:`write_secret`)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """Parse an unencrypted PEM private key; it must be ECDSA P-256."""
    key = _load_pem_private_key(pem, "TLS private key")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PKIError(
            f"TLS private key is {_key_kind(key)}, expected ECDSA P-256",
            hint="generate fleet keys with jetfleet's PKI (new_private_key)",
        )
    return key


def _load_pem_private_key(pem: bytes, what: str) -> object:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:  # encrypted without a password
        raise PKIError(
            f"{what} is encrypted", hint="jetfleet reads unencrypted PEM keys protected by mode 0600"
        ) from exc
    except (ValueError, UnicodeError) as exc:
        raise PKIError(f"{what} is not a readable PEM private key: {exc}") from exc


def _key_kind(key: object) -> str:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"an EC key on {key.curve.name}"
    return f"a {type(key).__name__.lstrip('_')}"


# --------------------------------------------------------------------------- certificates


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def create_ca(common_name: str = "jetfleet fleet CA", days: int = 3650) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A new self-signed fleet CA: (private key, certificate PEM). It may sign leaves only (pathlen 0)."""
    if days < 1:
        raise PKIError(f"CA validity must be at least 1 day, got {days}")
    key = new_private_key()
    now = _utcnow()
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _subject_alt_name(
    identity: Identity, dns_names: Sequence[str], ip_addresses: Sequence[str]
) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    for dns in dns_names:
        try:
            names.append(x509.DNSName(dns))
        except (ValueError, TypeError) as exc:
            raise PKIError(f"invalid DNS name {dns!r} for {identity}: {exc}") from exc
    for ip in ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as exc:
            raise PKIError(f"invalid IP address {ip!r} for {identity}") from exc
    return x509.SubjectAlternativeName(names)


def _extended_key_usage(identity: Identity, *, server: bool, client: bool) -> x509.ExtendedKeyUsage:
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if not usages:
        raise PKIError(f"certificate for {identity} would be usable neither as TLS server nor as client")
    return x509.ExtendedKeyUsage(usages)


def _check_ca_pair(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate) -> None:
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if ca_key.public_key().public_bytes(der, spki) != ca_cert.public_key().public_bytes(der, spki):
        raise PKIError(
            "the CA private key does not belong to the CA certificate", hint="check the CA key and cert files"
        )


def issue_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert_pem: bytes,
    public_key: ec.EllipticCurvePublicKey,
    identity: Identity,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    days: int = 365,
    server: bool = False,
    client: bool = True,
) -> bytes:
    """Sign a leaf certificate (PEM) for ``identity`` with the fleet CA.

    The identity goes in the URI SAN (and CN/OU); ``dns_names`` and
    ``ip_addresses`` are the names a TLS client may dial when ``server``.
    The leaf is backdated by :data:`CLOCK_SKEW` and never outlives the CA.
    """
    if days < 1:
        raise PKIError(f"certificate validity must be at least 1 day, got {days}")
    ca_cert = load_certificate(ca_cert_pem)
    _check_ca_pair(ca_key, ca_cert)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    now = _utcnow()
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(identity.name, identity.role))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())  # 159 random bits
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(_extended_key_usage(identity, server=server, client=client), critical=False)
        .add_extension(_subject_alt_name(identity, dns_names, ip_addresses), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def make_csr(key: ec.EllipticCurvePrivateKey, identity: Identity) -> bytes:
    """A PEM certificate signing request for ``identity`` (CN and URI SAN), signed by ``key``."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(identity.name, identity.role))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_public_key(csr_pem: bytes, expected: Identity) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a CSR that proves possession of it and asks for exactly ``expected``."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except (ValueError, TypeError) as exc:
        raise PKIError(f"certificate request for {expected} is not a readable PEM CSR: {exc}") from exc
    if not csr.is_signature_valid:
        raise PKIError(f"certificate request for {expected} has an invalid self-signature")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PKIError(f"certificate request for {expected} carries {_key_kind(key)}, expected ECDSA P-256")
    uris = _uris(csr.extensions)
    if uris != [expected.uri]:
        raise PKIError(f"certificate request asks for {', '.join(uris) or 'no identity'}, expected {expected.uri}")
    cns = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cns != [expected.name]:
        raise PKIError(f"certificate request has common name {cns}, expected {expected.name!r}")
    return key


def _uris(extensions: x509.Extensions) -> list[str]:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [uri for uri in san.get_values_for_type(x509.UniformResourceIdentifier) if uri.startswith(URI_SCHEME)]


def load_certificate(pem: bytes) -> x509.Certificate:
    """Parse the first certificate of a PEM blob."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as exc:
        raise PKIError(f"not a readable PEM certificate: {exc}") from exc


def identity_of(cert_pem: bytes) -> Identity:
    """The jetfleet identity in a certificate's URI SAN."""
    cert = load_certificate(cert_pem)
    uris = _uris(cert.extensions)
    if len(uris) != 1:
        raise PKIError(
            f"certificate {cert.subject.rfc4514_string()!r} carries {len(uris)} jetfleet identities, expected one",
            hint="issue fleet certificates with jetfleet's PKI",
        )
    return Identity.from_uri(uris[0])


def cert_serial(cert_pem: bytes) -> int:
    return load_certificate(cert_pem).serial_number


def cert_fingerprint(cert_pem: bytes) -> str:
    """sha256 of the DER certificate, lowercase hex (what ``openssl x509 -fingerprint -sha256`` shows)."""
    return load_certificate(cert_pem).fingerprint(hashes.SHA256()).hex()


def cert_not_after(cert_pem: bytes) -> float:
    return load_certificate(cert_pem).not_valid_after_utc.timestamp()


def verify_issued_by(cert_pem: bytes, ca_cert_pem: bytes, now: float | None = None) -> None:
    """Raise :class:`PKIError` unless ``ca_cert_pem`` signed ``cert_pem`` and both are valid at ``now``."""
    cert, ca = load_certificate(cert_pem), load_certificate(ca_cert_pem)
    who = cert.subject.rfc4514_string()
    try:
        cert.verify_directly_issued_by(ca)
    except ValueError as exc:
        raise PKIError(f"certificate {who!r} was not issued by CA {ca.subject.rfc4514_string()!r}: {exc}") from exc
    except (InvalidSignature, TypeError) as exc:
        raise PKIError(
            f"certificate {who!r}: signature does not verify against CA {ca.subject.rfc4514_string()!r}"
        ) from exc
    at = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc)
    for what, c in ((f"certificate {who!r}", cert), ("CA certificate", ca)):
        if at < c.not_valid_before_utc:
            raise PKIError(
                f"{what} is not valid before {c.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC", hint="check the clock"
            )
        if at > c.not_valid_after_utc:
            raise PKIError(f"{what} expired at {c.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC", hint="renew it")


# --------------------------------------------------------------------------- files


def write_secret(path: Path, data: bytes) -> None:
    """Atomically write a private key: mode 0600 from creation, parent directories created 0700."""
    _write_atomic(Path(path), data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """Atomically write a certificate or public key: mode 0644 (parents created 0700, like keys')."""
    _write_atomic(Path(path), data, 0o644)


def _make_private_dirs(directory: Path) -> None:
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue  # created concurrently: keep whatever mode its creator chose
        os.chmod(d, 0o700)  # exactly 0700 whatever the umask


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    _make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never reuse (or follow a symlink planted at) an existing name; mode applies at creation.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may only have narrowed it; make it exact
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


# --------------------------------------------------------------------------- manifest-signing keys


def new_signing_key() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 key for signing deployment manifests (separate from any TLS key)."""
    return ed25519.Ed25519PrivateKey.generate()


def signing_key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_signing_key(pem: bytes) -> ed25519.Ed25519PrivateKey:
    key = _load_pem_private_key(pem, "manifest signing key")
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise PKIError(f"manifest signing key is {_key_kind(key)}, expected Ed25519")
    return key


def public_key_pem(public_key: ed25519.Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_signing_key(pem: bytes) -> ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise PKIError(f"manifest public key is not a readable PEM public key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise PKIError(f"manifest public key is {_key_kind(key)}, expected Ed25519")
    return key


def key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """Short, stable name of a signing key: first 16 hex digits of sha256 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
