"""The agent's identity: enrollment, its TLS material and the manifest key it pins.

``jetfleet-agent enroll`` runs once per device. The agent makes its own
P-256 key (it never leaves the device), sends a certificate signing request
with the single-use token the operator got from ``jetfleet devices enroll``,
and stores what comes back under ``<data-dir>/identity``:

    agent.key  agent.pem  ca.pem  manifest.pub  enrolled.json   (each 0600, in a 0700 folder)

The enrollment call uses TLS that authenticates the controller against the
fleet CA the operator handed over (``--ca``; its sha256 is checked against
``--ca-sha256`` when given), so a token typed on a hostile network reaches
only the real controller. ``manifest.pub`` is the controller's Ed25519 key:
pinned here, it is what every deployment manifest must be signed with, and
nothing the controller says later can replace it (re-enrollment can).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric import ed25519

from jetfleet.common import pki
from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_write_text
from jetfleet.proto.rpc import CONTROLLER_TLS_NAME, QUICK_S, Credentials, make_channel
from jetfleet.proto.v1 import controller_pb2 as cpb
from jetfleet.proto.v1 import controller_pb2_grpc

FOLDER = "identity"
KEY, CERT, CA, MANIFEST_KEY, INFO = "agent.key", "agent.pem", "ca.pem", "manifest.pub", "enrolled.json"


@dataclass(frozen=True)
class AgentIdentity:
    """What an enrolled agent authenticates with and trusts."""

    name: str
    credentials: Credentials
    manifest_key: ed25519.Ed25519PublicKey
    folder: Path

    @classmethod
    def load(cls, data_dir: Path) -> AgentIdentity | None:
        """The stored identity, None if this agent never enrolled; a damaged one is an error, not plaintext."""
        folder = data_dir / FOLDER
        if not (folder / INFO).exists():
            return None
        try:
            creds = Credentials((folder / CA).read_bytes(), (folder / CERT).read_bytes(), (folder / KEY).read_bytes())
            manifest_key = pki.load_public_signing_key((folder / MANIFEST_KEY).read_bytes())
        except OSError as exc:
            raise JetfleetError(f"the agent identity in {folder} is incomplete: {exc}", "enroll again") from exc
        identity = pki.identity_of(creds.cert_pem)
        if identity.role != "device":
            raise JetfleetError(f"{folder / CERT} is a {identity.role} certificate, not a device's")
        return cls(identity.name, creds, manifest_key, folder)

    def validity(self) -> tuple[float, float]:
        """(not before, not after) of the device certificate, as Unix times: what doctor and serve check."""
        cert = pki.load_certificate(self.credentials.cert_pem)
        return cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()


def enrolled_info(data_dir: Path) -> dict[str, object]:
    """What ``enrolled.json`` recorded (name, time, enrollment address...); empty when absent or unreadable."""
    try:
        info = json.loads((data_dir / FOLDER / INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def enrollment_channel(address: str, ca_pem: bytes) -> grpc.Channel:
    """Server-only TLS to the enrollment port: the controller proves itself against ``ca_pem``; we show nothing.

    Shared by ``enroll`` and the clock check, which both run before this device has a certificate.
    """
    return make_channel(address, ca_only=ca_pem, server_name=CONTROLLER_TLS_NAME)


@dataclass(frozen=True)
class ClockReading:
    """One ``EnrollmentService.Clock`` round trip: local send and receive times around the controller's answer."""

    sent_s: float
    received_s: float
    controller_s: float

    @property
    def skew_s(self) -> float:
        """Controller minus device at the round trip's midpoint: positive when this device's clock is behind."""
        return self.controller_s - (self.sent_s + self.received_s) / 2

    @property
    def uncertainty_s(self) -> float:
        """Half the round trip: the answer was stamped somewhere inside it."""
        return (self.received_s - self.sent_s) / 2


def read_controller_clock(address: str, ca_pem: bytes, timeout: float = QUICK_S) -> ClockReading:
    """Ask the controller's enrollment service for its wall clock; ``JetfleetError`` when it does not answer."""
    channel = enrollment_channel(address, ca_pem)
    try:
        stub = controller_pb2_grpc.EnrollmentServiceStub(channel)
        sent = time.time()
        reply = stub.Clock(cpb.ClockRequest(), timeout=timeout)
        received = time.time()
    except grpc.RpcError as exc:
        raise JetfleetError(
            f"the enrollment service at {address} did not answer: {exc.details() or exc.code().name}",
            "is the controller running, and is this its enrollment address (--enroll-address, port 50049 by default)?",
        ) from exc
    finally:
        channel.close()
    return ClockReading(sent, received, reply.unix_ms / 1000)


def enroll(
    data_dir: Path,
    name: str,
    enroll_address: str,
    token: str,
    ca_pem: bytes,
    ca_sha256: str | None = None,
    timeout: float = QUICK_S,
) -> AgentIdentity:
    """Trade ``token`` for a certificate for ``name`` and store the identity; returns it."""
    identity = pki.Identity("device", name)
    actual = hashlib.sha256(ca_pem).hexdigest()
    expected = (ca_sha256 or "").lower()
    expected = expected[len("sha256:") :] if expected.startswith("sha256:") else expected  # removeprefix is 3.9+
    if expected and actual != expected:
        raise JetfleetError(
            f"the CA file has sha256 {actual[:16]}…, not the {ca_sha256[:16]}… the operator was given",
            "copy ca.pem from the controller's PKI folder again",
        )
    pki.load_certificate(ca_pem)
    key = pki.new_private_key()
    request = cpb.EnrollRequest(name=name, token=token.strip(), csr_pem=pki.make_csr(key, identity))
    channel = enrollment_channel(enroll_address, ca_pem)
    try:
        reply = controller_pb2_grpc.EnrollmentServiceStub(channel).Enroll(request, timeout=timeout)
    except grpc.RpcError as exc:
        raise JetfleetError(
            f"enrollment at {enroll_address} failed: {exc.details() or exc.code().name}",
            "ask the operator for a new token (`jetfleet devices enroll --name NAME`)"
            if exc.code() == grpc.StatusCode.PERMISSION_DENIED
            else "is the controller running, and is this its enrollment address?",
        ) from exc
    finally:
        channel.close()
    _check_reply(reply, identity, ca_pem, key)
    return store_identity(data_dir / FOLDER, identity, key, reply, enroll_address)


def _check_reply(reply: cpb.EnrollResponse, identity: pki.Identity, ca_pem: bytes, key: object) -> None:
    """Trust nothing in the reply that the CA we were given does not vouch for."""
    if reply.ca_pem.strip() != ca_pem.strip():
        raise JetfleetError("the controller answered with another CA than the one this device was given")
    pki.verify_issued_by(reply.certificate_pem, ca_pem)
    got = pki.identity_of(reply.certificate_pem)
    if got != identity:
        raise JetfleetError(f"the controller issued a certificate for {got}, not {identity}")
    cert_key = pki.load_certificate(reply.certificate_pem).public_key()
    if cert_key.public_numbers() != key.public_key().public_numbers():  # type: ignore[attr-defined]
        raise JetfleetError("the issued certificate does not carry this device's key")
    pki.load_public_signing_key(reply.manifest_public_key_pem)


def store_identity(
    folder: Path, identity: pki.Identity, key: object, reply: cpb.EnrollResponse, address: str
) -> AgentIdentity:
    pki.write_secret(folder / KEY, pki.private_key_pem(key))  # type: ignore[arg-type]
    pki.write_secret(folder / CERT, reply.certificate_pem)
    pki.write_secret(folder / CA, reply.ca_pem)
    pki.write_secret(folder / MANIFEST_KEY, reply.manifest_public_key_pem)
    info = {
        "name": identity.name,
        "enrolled_at": time.time(),
        "enroll_address": address,
        "certificate_sha256": pki.cert_fingerprint(reply.certificate_pem),
        "manifest_key_id": pki.key_id(pki.load_public_signing_key(reply.manifest_public_key_pem)),
    }
    atomic_write_text(folder / INFO, json.dumps(info, indent=1))  # last: its presence means complete
    loaded = AgentIdentity.load(folder.parent)
    assert loaded is not None
    return loaded
