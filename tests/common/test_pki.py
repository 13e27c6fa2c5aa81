from __future__ import annotations

import datetime as dt
import os
import stat
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from jetfleet.common import pki
from jetfleet.common.errors import JetfleetError
from jetfleet.common.pki import Identity, PKIError

DEVICE = Identity("device", "jetson-01")
CONTROLLER = Identity("controller", "ctl")
SERVER_DNS = "controller.jetfleet.test"


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    return pki.create_ca()


@pytest.fixture(scope="module")
def other_ca() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    return pki.create_ca("somebody else's CA")


def leaf(ca: tuple[ec.EllipticCurvePrivateKey, bytes], identity: Identity = DEVICE, **kw) -> tuple[bytes, bytes]:
    """(key PEM, cert PEM) for ``identity`` signed by ``ca``."""
    key = pki.new_private_key()
    cert = pki.issue_certificate(ca[0], ca[1], key.public_key(), identity, **kw)
    return pki.private_key_pem(key), cert


# --------------------------------------------------------------------------- identities


def test_identity_uri_round_trip() -> None:
    assert DEVICE.uri == "jetfleet://device/jetson-01"
    assert Identity.from_uri(DEVICE.uri) == DEVICE
    assert str(DEVICE) == "device jetson-01"
    assert Identity("admin", "a" * 63).name == "a" * 63
    assert Identity("controller", "ctl-1").uri == "jetfleet://controller/ctl-1"


@pytest.mark.parametrize(
    "name",
    ["", ".hidden", "-flag", "a" * 64, "with space", "slash/name", "ümlaut", "a:b", "JETSON-01", "jetson-01.", "end-"],
)
def test_bad_names_rejected(name: str) -> None:
    with pytest.raises(PKIError, match="invalid device name"):
        Identity("device", name)


@pytest.mark.parametrize("role", ["", "agent", "Device", "root"])
def test_bad_roles_rejected(role: str) -> None:
    with pytest.raises(PKIError, match="unknown identity role") as err:
        Identity(role, "x")
    assert isinstance(err.value, JetfleetError)
    assert "controller, admin, device" in str(err.value)


@pytest.mark.parametrize(
    "uri",
    ["", "jetfleet://device", "jetfleet://device/", "https://device/x", "jetfleet://device/a/b", "jetfleet://user/x"],
)
def test_malformed_uri_rejected(uri: str) -> None:
    with pytest.raises(PKIError):
        Identity.from_uri(uri)


# --------------------------------------------------------------------------- keys


def test_private_key_round_trip_and_bad_keys() -> None:
    key = pki.new_private_key()
    assert isinstance(key.curve, ec.SECP256R1)
    pem = pki.private_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pki.load_private_key(pem).private_numbers() == key.private_numbers()
    with pytest.raises(PKIError, match="not a readable PEM private key"):
        pki.load_private_key(b"garbage")
    with pytest.raises(PKIError, match="expected ECDSA P-256"):
        pki.load_private_key(pki.signing_key_pem(pki.new_signing_key()))
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(PKIError, match="secp384r1"):
        pki.load_private_key(pki.private_key_pem(p384))


def test_signing_keys() -> None:
    key = pki.new_signing_key()
    again = pki.load_signing_key(pki.signing_key_pem(key))
    assert pki.key_id(again.public_key()) == pki.key_id(key.public_key())
    public = pki.load_public_signing_key(pki.public_key_pem(key.public_key()))
    kid = pki.key_id(public)
    assert len(kid) == 16 and int(kid, 16) >= 0
    assert kid != pki.key_id(pki.new_signing_key().public_key())
    with pytest.raises(PKIError, match="expected Ed25519"):
        pki.load_signing_key(pki.private_key_pem(pki.new_private_key()))
    tls_public = pki.new_private_key().public_key()
    with pytest.raises(PKIError, match="expected Ed25519"):
        pki.load_public_signing_key(pki.public_key_pem(tls_public))  # type: ignore[arg-type]
    with pytest.raises(PKIError, match="not a readable PEM public key"):
        pki.load_public_signing_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    assert isinstance(public, ed25519.Ed25519PublicKey)


# --------------------------------------------------------------------------- certificates


def test_ca_certificate(ca) -> None:
    cert = pki.load_certificate(ca[1])
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "jetfleet fleet CA"
    pki.verify_issued_by(ca[1], ca[1])  # self-signed


def test_issued_leaf_fields(ca) -> None:
    before = time.time()
    _, pem = leaf(ca, CONTROLLER, dns_names=[SERVER_DNS], ip_addresses=["127.0.0.1", "::1"], server=True, days=30)
    cert = pki.load_certificate(pem)
    pki.verify_issued_by(pem, ca[1])
    assert pki.identity_of(pem) == CONTROLLER
    subject = {a.oid: a.value for a in cert.subject}
    assert subject == {
        NameOID.COMMON_NAME: "ctl",
        NameOID.ORGANIZATION_NAME: "jetfleet",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "controller",
    }
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["jetfleet://controller/ctl"]
    assert san.get_values_for_type(x509.DNSName) == [SERVER_DNS]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    ca_ski = pki.load_certificate(ca[1]).extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert 0 < cert.serial_number < 2**159 and pki.cert_serial(pem) == cert.serial_number
    not_before = cert.not_valid_before_utc.timestamp()
    assert before - 5 * 60 - 2 <= not_before <= time.time() - 5 * 60 + 2  # backdated for clock skew
    assert pki.cert_not_after(pem) == pytest.approx(before + 30 * 86400, abs=5)
    assert pki.cert_fingerprint(pem) == cert.fingerprint(cert.signature_hash_algorithm).hex()
    assert len(pki.cert_fingerprint(pem)) == 64 and pki.cert_fingerprint(pem).islower()


def test_client_only_leaf_and_serials_are_random(ca) -> None:
    _, a = leaf(ca)
    _, b = leaf(ca)
    eku = pki.load_certificate(a).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert pki.cert_serial(a) != pki.cert_serial(b)
    with pytest.raises(PKIError, match="neither as TLS server nor as client"):
        leaf(ca, server=False, client=False)


def test_leaf_never_outlives_its_ca() -> None:
    short_ca = pki.create_ca(days=10)
    _, pem = leaf(short_ca, days=365)
    assert pki.cert_not_after(pem) == pki.cert_not_after(short_ca[1])


def test_issue_rejects_mismatched_ca_key_and_bad_names(ca, other_ca) -> None:
    key = pki.new_private_key()
    with pytest.raises(PKIError, match="does not belong to the CA certificate"):
        pki.issue_certificate(other_ca[0], ca[1], key.public_key(), DEVICE)
    with pytest.raises(PKIError, match="invalid IP address"):
        pki.issue_certificate(ca[0], ca[1], key.public_key(), DEVICE, ip_addresses=["300.1.1.1"])


def test_leaf_from_another_ca_fails_verification(ca, other_ca) -> None:
    _, pem = leaf(other_ca)
    with pytest.raises(PKIError, match="not issued by CA"):
        pki.verify_issued_by(pem, ca[1])
    # Same subject as our CA but another key: the signature check is what catches it.
    impostor_ca = pki.create_ca()
    _, forged = leaf(impostor_ca)
    with pytest.raises(PKIError, match="signature does not verify"):
        pki.verify_issued_by(forged, ca[1])


def test_verify_checks_validity_window(ca) -> None:
    _, pem = leaf(ca, days=1)
    pki.verify_issued_by(pem, ca[1], now=time.time() + 3600)
    with pytest.raises(PKIError, match="expired at"):
        pki.verify_issued_by(pem, ca[1], now=time.time() + 2 * 86400)
    with pytest.raises(PKIError, match="not valid before"):
        pki.verify_issued_by(pem, ca[1], now=time.time() - 3600)


def test_identity_of_requires_a_jetfleet_uri(ca) -> None:
    key = pki.new_private_key()
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")])
    plain = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = plain.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(PKIError, match="0 jetfleet identities"):
        pki.identity_of(pem)
    with pytest.raises(PKIError, match="not a readable PEM certificate"):
        pki.load_certificate(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


# --------------------------------------------------------------------------- CSRs


def test_csr_round_trip(ca) -> None:
    key = pki.new_private_key()
    csr = pki.make_csr(key, DEVICE)
    public = pki.csr_public_key(csr, DEVICE)
    assert public.public_numbers() == key.public_key().public_numbers()
    cert = pki.issue_certificate(ca[0], ca[1], public, DEVICE)
    assert pki.identity_of(cert) == DEVICE


def test_csr_with_wrong_identity_rejected() -> None:
    csr = pki.make_csr(pki.new_private_key(), Identity("device", "jetson-02"))
    with pytest.raises(PKIError, match="asks for jetfleet://device/jetson-02, expected jetfleet://device/jetson-01"):
        pki.csr_public_key(csr, DEVICE)
    admin = pki.make_csr(pki.new_private_key(), Identity("admin", "jetson-01"))
    with pytest.raises(PKIError, match="expected jetfleet://device/jetson-01"):
        pki.csr_public_key(admin, DEVICE)


def test_csr_garbage_and_wrong_key_type_rejected() -> None:
    with pytest.raises(PKIError, match="not a readable PEM CSR"):
        pki.csr_public_key(b"garbage", DEVICE)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = pki.make_csr(rsa_key, DEVICE)  # type: ignore[arg-type]
    with pytest.raises(PKIError, match="expected ECDSA P-256"):
        pki.csr_public_key(csr, DEVICE)


def test_csr_with_bad_self_signature_rejected() -> None:
    csr = x509.load_pem_x509_csr(pki.make_csr(pki.new_private_key(), DEVICE))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # last byte of the ECDSA signature's s: still valid DER, no longer a valid signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(PKIError, match="invalid self-signature"):
        pki.csr_public_key(tampered, DEVICE)


# --------------------------------------------------------------------------- files


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_secret_modes_and_atomic_replace(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "tls" / "device.key"
    old_umask = os.umask(0)  # even a permissive umask must not widen anything
    try:
        pki.write_secret(target, b"one")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"one"
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700 and mode(target.parent.parent) == 0o700
    pki.write_secret(target, b"two")
    assert target.read_bytes() == b"two" and mode(target) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["device.key"]


def test_write_secret_creates_file_with_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mode is given to open(2) itself: never world-readable, not even before a chmod."""
    created: list[int] = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kw):
        if flags & os.O_CREAT:
            created.append(mode)
        return real_open(path, flags, mode, *args, **kw)

    monkeypatch.setattr(pki.os, "open", spy)
    pki.write_secret(tmp_path / "k.pem", b"secret")
    assert created == [0o600]


def test_write_public_mode(tmp_path: Path) -> None:
    target = tmp_path / "certs" / "ca.pem"
    old_umask = os.umask(0o077)
    try:
        pki.write_public(target, b"cert")
    finally:
        os.umask(old_umask)
    assert mode(target) == 0o644 and target.read_bytes() == b"cert"
    assert mode(target.parent) == 0o700


def test_failed_write_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "k.pem"
    pki.write_secret(target, b"old")

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pki.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        pki.write_secret(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["k.pem"]


# --------------------------------------------------------------------------- real gRPC mutual TLS


class RecordingHealth(health.HealthServicer):
    """The standard health service, remembering what TLS told it about each caller."""

    def __init__(self) -> None:
        super().__init__()
        self.auth_contexts: list[dict[str, list[bytes]]] = []

    def Check(self, request, context):
        self.auth_contexts.append(context.auth_context())
        return super().Check(request, context)


@pytest.fixture(scope="module")
def mtls_server(ca):
    key_pem, cert_pem = leaf(
        ca, CONTROLLER, dns_names=[SERVER_DNS], ip_addresses=["127.0.0.1"], server=True, client=False
    )
    servicer = RecordingHealth()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca[1], require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


def health_check(target: str, ca_pem: bytes, key_pem: bytes | None = None, cert_pem: bytes | None = None) -> str:
    creds = grpc.ssl_channel_credentials(ca_pem, key_pem, cert_pem)
    with grpc.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", SERVER_DNS)]) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_grpc_mutual_tls_identifies_the_client(ca, mtls_server) -> None:
    target, servicer = mtls_server
    key_pem, cert_pem = leaf(ca, DEVICE)
    servicer.auth_contexts.clear()
    assert health_check(target, ca[1], key_pem, cert_pem) == "SERVING"
    (auth,) = servicer.auth_contexts
    # grpc 1.85 exposes the peer's leaf as PEM, plus its SAN URI and subject fields.
    assert {"x509_pem_cert", "peer_uri", "x509_subject_alternative_name", "x509_common_name"} <= auth.keys()
    assert auth["transport_security_type"] == [b"ssl"]
    assert pki.identity_of(auth["x509_pem_cert"][0]) == DEVICE
    assert auth["peer_uri"] == [DEVICE.uri.encode()]


def test_grpc_client_without_certificate_is_refused(ca, mtls_server) -> None:
    target, _ = mtls_server
    with pytest.raises(grpc.RpcError) as err:
        health_check(target, ca[1])
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_grpc_client_from_another_ca_is_refused(ca, other_ca, mtls_server) -> None:
    target, _ = mtls_server
    key_pem, cert_pem = leaf(other_ca, DEVICE)
    with pytest.raises(grpc.RpcError) as err:
        health_check(target, ca[1], key_pem, cert_pem)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_grpc_client_refuses_server_from_another_ca(other_ca, mtls_server) -> None:
    target, _ = mtls_server
    key_pem, cert_pem = leaf(other_ca, DEVICE)
    with pytest.raises(grpc.RpcError) as err:
        health_check(target, other_ca[1], key_pem, cert_pem)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
