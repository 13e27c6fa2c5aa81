"""The controller's side of fleet security: the fleet CA, enrollment, revocation, manifest signing.

``jetfleet certs init`` writes one folder (``$JETFLEET_HOME/pki`` by default,
keys owner-only):

    ca.pem  ca.key                 the fleet CA (signs every TLS certificate)
    controller.pem  controller.key the controller's certificate (server and client)
    admin.pem  admin.key           the operator's certificate for the CLI
    manifest-signing.key/.pub      Ed25519 key for deployment manifests, separate
                                   from TLS: a leaked TLS key cannot sign a model

Why the device makes its own key: the enrollment token only authorizes one
certificate signing request for one name, once, before it expires; the
device's private key never crosses the network. Revocation is checked on
every call (an in-memory set of revoked serials, loaded at start and updated
by ``devices revoke``), so a revoked device is refused at once rather than
when its certificate expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import sessionmaker

from jetfleet.common import pki
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import ModelSpec
from jetfleet.common.manifest import SignedManifest, issue
from jetfleet.controller.fleet.schema import EnrollmentToken, IssuedCertificate
from jetfleet.proto.rpc import CONTROLLER_TLS_NAME, Credentials, peer_certificate

TOKEN_TTL_S = 3600.0  # long enough to walk to the device and type it, short enough to be useless if leaked
DEVICE_CERT_DAYS = 365  # re-enrollment is one command; a year bounds a stolen key without revocation
MANIFEST_TTL_S = 3600.0  # a manifest is signed at push time; an hour covers a slow upload to a Nano
RESERVED_NAMES = {CONTROLLER_TLS_NAME}  # a device with this name could pose as the controller

FILES = {
    "ca": "ca.pem",
    "ca_key": "ca.key",
    "controller": "controller.pem",
    "controller_key": "controller.key",
    "admin": "admin.pem",
    "admin_key": "admin.key",
    "signing_key": "manifest-signing.key",
    "signing_pub": "manifest-signing.pub",
}


def default_pki_dir() -> Path:
    from jetfleet.controller.registry.db import jetfleet_home

    return jetfleet_home() / "pki"


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PkiSummary:
    folder: Path
    ca_sha256: str
    signing_key_id: str
    hosts: tuple[str, ...]


def init_pki(folder: Path, hosts: Sequence[str] = (), admin: str = "operator", force: bool = False) -> PkiSummary:
    """Create the fleet CA, the controller's and the operator's certificates and the manifest key.

    Refuses to overwrite an existing CA unless ``force``: a new CA orphans
    every enrolled device, which must then enroll again.
    """
    if (folder / FILES["ca"]).exists() and not force:
        raise JetfleetError(
            f"a fleet CA already exists in {folder}",
            "use it, or pass --force to replace it (every device must then enroll again)",
        )
    ca_key, ca_pem = pki.create_ca()
    names = sorted({CONTROLLER_TLS_NAME, "localhost", socket.gethostname(), *(h for h in hosts if not _is_ip(h))})
    ips = sorted({"127.0.0.1", "::1", *(h for h in hosts if _is_ip(h))})
    controller_key = pki.new_private_key()
    controller_pem = pki.issue_certificate(
        ca_key,
        ca_pem,
        controller_key.public_key(),
        pki.Identity("controller", "controller"),
        dns_names=names,
        ip_addresses=ips,
        days=DEVICE_CERT_DAYS * 2,
        server=True,
        client=True,
    )
    admin_key = pki.new_private_key()
    admin_pem = pki.issue_certificate(
        ca_key, ca_pem, admin_key.public_key(), pki.Identity("admin", admin), days=DEVICE_CERT_DAYS, client=True
    )
    signing = pki.new_signing_key()
    # Every file owner-only, certificates too: nothing here is for other local users (ca.pem is handed to
    # devices by the operator, who can read it).
    pki.write_secret(folder / FILES["ca_key"], pki.private_key_pem(ca_key))
    pki.write_secret(folder / FILES["controller_key"], pki.private_key_pem(controller_key))
    pki.write_secret(folder / FILES["admin_key"], pki.private_key_pem(admin_key))
    pki.write_secret(folder / FILES["signing_key"], pki.signing_key_pem(signing))
    pki.write_secret(folder / FILES["controller"], controller_pem)
    pki.write_secret(folder / FILES["admin"], admin_pem)
    pki.write_secret(folder / FILES["signing_pub"], pki.public_key_pem(signing.public_key()))
    pki.write_secret(folder / FILES["ca"], ca_pem)  # last: its presence means the folder is complete
    return PkiSummary(folder, _sha256_hex(ca_pem), pki.key_id(signing.public_key()), (*names, *ips))


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class FleetPKI:
    """The loaded PKI folder: credentials for the controller and the CLI, device issuing, manifest signing."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if not (folder / FILES["ca"]).exists():
            raise JetfleetError(
                f"no fleet CA in {folder}", "run `jetfleet certs init` first, or pass --insecure for local development"
            )
        self.ca_pem = self._read("ca")
        self.ca_sha256 = _sha256_hex(self.ca_pem)

    def _read(self, key: str) -> bytes:
        path = self.folder / FILES[key]
        try:
            return path.read_bytes()
        except OSError as exc:
            raise JetfleetError(f"cannot read {path}: {exc.strerror}", "is the PKI folder complete?") from exc

    def controller_credentials(self) -> Credentials:
        return Credentials(self.ca_pem, self._read("controller"), self._read("controller_key"))

    def admin_credentials(self) -> Credentials:
        return Credentials(self.ca_pem, self._read("admin"), self._read("admin_key"))

    def signing_public_pem(self) -> bytes:
        return self._read("signing_pub")

    def signer(self) -> ManifestSigner:
        return ManifestSigner(pki.load_signing_key(self._read("signing_key")))

    def issue_device(self, name: str, csr_pem: bytes) -> bytes:
        """Sign a device's CSR: its name as identity and as DNS name (the controller dials it by that name)."""
        identity = pki.Identity("device", name)
        public_key = pki.csr_public_key(csr_pem, identity)
        ca_key = pki.load_private_key(self._read("ca_key"))
        return pki.issue_certificate(
            ca_key,
            self.ca_pem,
            public_key,
            identity,
            dns_names=[name],
            days=DEVICE_CERT_DAYS,
            server=True,
            client=True,
        )


class ManifestSigner:
    """Signs each deployment's manifest at push time with the controller's Ed25519 key."""

    def __init__(self, key: object, ttl_s: float = MANIFEST_TTL_S) -> None:
        self.key = key
        self.ttl_s = ttl_s

    def deploy(
        self,
        deployment_id: str,
        spec: ModelSpec,
        device: str,
        device_class: str,
        rollback: bool = False,
        purpose: str = "deploy",
    ) -> SignedManifest:
        """``spec`` for ``device`` alone; callers pass specs from the registry, never ones a device reported."""
        return issue(
            self.key,  # type: ignore[arg-type]
            deployment_id,
            spec,
            spec.model,
            device_class,
            ttl_s=self.ttl_s,
            rollback=rollback,
            device=device,
            purpose=purpose,
        )

    def rollback(self, deployment_id: str, model: str, device: str, device_class: str) -> SignedManifest:
        return issue(
            self.key,  # type: ignore[arg-type]
            deployment_id,
            None,
            model,
            device_class,
            ttl_s=self.ttl_s,
            rollback=True,
            device=device,
        )


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _ts(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class Token:
    name: str
    token: str
    expires_at: float


class Enrollments:
    """Tokens and issued certificates in the controller's database, with their serials cached in memory.

    Device certificates are an allow-list: one is honoured only if this
    controller recorded it at enrollment and has not revoked it. A controller
    whose database was recreated therefore trusts no device until each
    enrolls again, instead of forgetting which certificates it revoked.
    """

    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._lock = threading.Lock()  # one enrollment at a time: a token is consumed exactly once
        with self._sessions() as s:
            rows = s.execute(select(IssuedCertificate.serial, IssuedCertificate.revoked_at)).all()
        self._revoked = {serial for serial, revoked in rows if revoked is not None}
        self._valid = {serial for serial, revoked in rows if revoked is None}

    def create(self, name: str, ttl_s: float = TOKEN_TTL_S, now: float | None = None) -> Token:
        pki.Identity("device", name)  # validates the name
        if name in RESERVED_NAMES:
            raise JetfleetError(f"{name!r} is reserved for the controller; choose another device name")
        if not 0 < ttl_s <= 7 * 86400:
            raise JetfleetError(f"a token lives between 1 s and 7 days, not {ttl_s:g} s")
        now = time.time() if now is None else now
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(24)
        with self._sessions.begin() as s:
            s.add(
                EnrollmentToken(
                    id=token_id,
                    name=name,
                    secret_sha256=_sha256_hex(secret.encode()),
                    created_at=_dt(now),
                    expires_at=_dt(now + ttl_s),
                )
            )
        return Token(name, f"{token_id}.{secret}", now + ttl_s)

    def consume(self, name: str, token: str, now: float | None = None) -> None:
        """Accept ``token`` for ``name`` once; every refusal says why without revealing which part was wrong."""
        now = time.time() if now is None else now
        token_id, _, secret = token.partition(".")
        refused = JetfleetError(f"enrollment token refused for {name!r}: unknown, used, expired or for another name")
        with self._lock, self._sessions.begin() as s:
            row = s.get(EnrollmentToken, token_id) if token_id and secret else None
            if row is None or not hmac.compare_digest(row.secret_sha256, _sha256_hex(secret.encode())):
                raise refused
            if row.name != name or row.used_at is not None or _ts(row.expires_at) <= now:
                raise refused
            done = s.execute(
                update(EnrollmentToken)
                .where(EnrollmentToken.id == token_id, EnrollmentToken.used_at.is_(None))
                .values(used_at=_dt(now))
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise refused

    def record_certificate(self, cert_pem: bytes, now: float | None = None) -> None:
        """Store a newly issued certificate and revoke the older ones of the same device (re-enrollment)."""
        now = time.time() if now is None else now
        identity = pki.identity_of(cert_pem)
        serial = format(pki.cert_serial(cert_pem), "x")
        with self._sessions.begin() as s:
            older = s.scalars(
                select(IssuedCertificate.serial).where(
                    IssuedCertificate.name == identity.name, IssuedCertificate.revoked_at.is_(None)
                )
            ).all()
            s.execute(update(IssuedCertificate).where(IssuedCertificate.serial.in_(older)).values(revoked_at=_dt(now)))
            s.add(
                IssuedCertificate(
                    serial=serial,
                    name=identity.name,
                    role=identity.role,
                    fingerprint=pki.cert_fingerprint(cert_pem),
                    issued_at=_dt(now),
                    not_after=_dt(pki.cert_not_after(cert_pem)),
                )
            )
        with self._lock:
            self._revoked.update(older)
            self._valid.difference_update(older)
            self._valid.add(serial)

    def revoke(self, name: str, now: float | None = None) -> int:
        """Revoke every certificate of ``name`` and its unused tokens; how many certificates were revoked."""
        now = time.time() if now is None else now
        with self._sessions.begin() as s:
            serials = s.scalars(
                select(IssuedCertificate.serial).where(
                    IssuedCertificate.name == name, IssuedCertificate.revoked_at.is_(None)
                )
            ).all()
            s.execute(
                update(IssuedCertificate).where(IssuedCertificate.serial.in_(serials)).values(revoked_at=_dt(now))
            )
            s.execute(
                update(EnrollmentToken)
                .where(EnrollmentToken.name == name, EnrollmentToken.used_at.is_(None))
                .values(used_at=_dt(now))
            )
        with self._lock:
            self._revoked.update(serials)
            self._valid.difference_update(serials)
        return len(serials)

    def is_revoked(self, cert_pem: bytes) -> bool:
        return format(pki.cert_serial(cert_pem), "x") in self._revoked

    def is_enrolled(self, cert_pem: bytes) -> bool:
        """Whether this controller issued the certificate at an enrollment and has not revoked it.

        A serial missing from memory is looked up once (another controller
        process on the same database may have enrolled it).
        """
        serial = format(pki.cert_serial(cert_pem), "x")
        with self._lock:
            if serial in self._valid:
                return True
            if serial in self._revoked:
                return False
        with self._sessions() as s:
            row = s.get(IssuedCertificate, serial)
        if row is None or row.revoked_at is not None or row.fingerprint != pki.cert_fingerprint(cert_pem):
            return False
        with self._lock:
            self._valid.add(serial)
        return True


class Gate:
    """Who may call what on the controller: checked in every handler, from the caller's TLS certificate.

    ``None`` enrollments means plaintext (``--insecure``): nothing to check.
    """

    def __init__(self, enrollments: Enrollments | None) -> None:
        self.enrollments = enrollments

    def caller(self, context: grpc.ServicerContext, *roles: str) -> pki.Identity | None:
        """The authenticated caller, aborting with UNAUTHENTICATED or PERMISSION_DENIED when it may not call."""
        if self.enrollments is None:
            return None
        pem = peer_certificate(context)
        if pem is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a client certificate signed by the fleet CA is required")
        try:
            identity = pki.identity_of(pem)  # type: ignore[arg-type]
        except pki.PKIError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"unusable client certificate: {exc}")
        if self.enrollments.is_revoked(pem):  # type: ignore[arg-type]
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"the certificate of {identity} was revoked")
        if identity.role == "device" and not self.enrollments.is_enrolled(pem):  # type: ignore[arg-type]
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"the certificate of {identity} was not issued by this controller's enrollment; enroll the device",
            )
        if identity.role not in roles:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{identity} may not call this method")
        return identity

    def device(self, context: grpc.ServicerContext, claimed: str) -> None:
        """An agent may only speak for itself."""
        identity = self.caller(context, "device")
        if identity is not None and identity.name != claimed:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{identity} may not report as {claimed!r}: a device speaks for itself",
            )

    def admin(self, context: grpc.ServicerContext) -> None:
        """Operators only: not even the controller's own certificate, so its TLS key alone cannot enroll devices."""
        self.caller(context, "admin")
