from __future__ import annotations

import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from jetfleet.common import manifest as mf
from jetfleet.common import pki
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import ArtifactRef, ModelSpec
from jetfleet.common.manifest import FORMAT, Manifest, ManifestError, SignedManifest
from jetfleet.common.preprocess import PreprocessSpec

NOW = 1_760_000_000.0
CLASS = "orin-nano"
ONNX = ArtifactRef("a" * 64, 1234)
TEST_SET = ArtifactRef("b" * 64, 99)


def spec(version: int = 2, model: str = "basic_cnn") -> ModelSpec:
    pre = PreprocessSpec((8, 8), 1, (0.3058,), (0.3761,), tuple("0123456789"))
    return ModelSpec(model, version, "fp16", ONNX, pre, test_set=TEST_SET, reference_accuracy=0.97)


@pytest.fixture(scope="module")
def key() -> ed25519.Ed25519PrivateKey:
    return pki.new_signing_key()


def issue(key: ed25519.Ed25519PrivateKey, version: int | None = 2, **kw) -> SignedManifest:
    kw.setdefault("now", NOW)
    return mf.issue(key, "dep-1", spec(version) if version else None, "basic_cnn", CLASS, **kw)


def verify(signed: SignedManifest | None, key: ed25519.Ed25519PrivateKey, **kw) -> Manifest:
    kw.setdefault("device_class", CLASS)
    kw.setdefault("accepted_version", None)
    kw.setdefault("now", NOW + 10)
    return mf.verify(signed, key.public_key(), **kw)


def refused(reason: str, signed: SignedManifest | None, key: ed25519.Ed25519PrivateKey, **kw) -> str:
    with pytest.raises(ManifestError) as err:
        verify(signed, key, **kw)
    assert err.value.reason == reason, str(err.value)
    assert isinstance(err.value, JetfleetError)
    assert "\n" not in str(err.value)
    return str(err.value)


# --------------------------------------------------------------------------- happy paths


def test_round_trip(key) -> None:
    signed = issue(key, ttl_s=600)
    assert signed.key_id == pki.key_id(key.public_key())
    got = verify(signed, key, accepted_version=2)
    assert got == Manifest("dep-1", "basic_cnn", CLASS, NOW, NOW + 600, spec(2))
    assert got.version == 2 and not got.rollback
    assert got.covers(ONNX.sha256) and got.covers(TEST_SET.sha256) and not got.covers("c" * 64)
    assert got.description == "basic_cnn v2 (fp16)"
    assert Manifest.from_payload(got.to_payload()) == got


def test_upgrade_accepted(key) -> None:
    assert verify(issue(key, version=3), key, accepted_version=2).version == 3


def test_payload_is_canonical_and_deterministic(key) -> None:
    m = Manifest("dep-1", "basic_cnn", CLASS, NOW, NOW + 60, spec())
    payload = m.to_payload()
    assert payload == dataclasses.replace(m).to_payload()
    assert payload == Manifest("dep-1", "basic_cnn", CLASS, int(NOW), int(NOW) + 60, spec()).to_payload()
    assert b" " not in payload and payload.isascii()
    body = json.loads(payload)
    assert body["format"] == FORMAT
    assert payload == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert list(body) == sorted(body)
    # Ed25519 is deterministic too: the same manifest signs to the same bytes.
    assert mf.sign(m, key) == mf.sign(m, key)


def test_rollback_allows_lower_version(key) -> None:
    signed = issue(key, version=1, rollback=True)
    got = verify(signed, key, accepted_version=3)
    assert got.rollback and got.version == 1
    assert got.description == "rollback to basic_cnn v1 (fp16)"


def test_rollback_without_spec(key) -> None:
    got = verify(issue(key, version=None, rollback=True), key, accepted_version=3)
    assert got.spec is None and got.version is None and got.rollback
    assert not got.covers(ONNX.sha256)
    assert got.description == "rollback of basic_cnn"


# --------------------------------------------------------------------------- the seven refusals, in order


def test_unsigned(key) -> None:
    assert refused("unsigned", None, key) == (
        "the deployment carries no signed manifest (deploy through a controller configured with a manifest signing key)"
    )
    signed = issue(key)
    refused("unsigned", dataclasses.replace(signed, signature=b""), key)


def test_unknown_key(key) -> None:
    other = pki.new_signing_key()
    message = refused("unknown-key", issue(other), key)
    assert (
        f"manifest signed by key {pki.key_id(other.public_key())}, this device trusts {pki.key_id(key.public_key())}"
        in message
    )


def test_another_key_with_forged_key_id(key) -> None:
    forged = dataclasses.replace(issue(pki.new_signing_key()), key_id=pki.key_id(key.public_key()))
    message = refused("bad-signature", forged, key)
    assert "does not verify" in message


@pytest.mark.parametrize("index", [0, 20, -1])
def test_flipped_payload_byte(key, index: int) -> None:
    signed = issue(key)
    payload = bytearray(signed.payload)
    payload[index] ^= 0x01
    refused("bad-signature", dataclasses.replace(signed, payload=bytes(payload)), key)


def test_flipped_signature_byte(key) -> None:
    signed = issue(key)
    signature = bytearray(signed.signature)
    signature[3] ^= 0x80
    refused("bad-signature", dataclasses.replace(signed, signature=bytes(signature)), key)


def test_signed_garbage_is_malformed(key) -> None:
    # Parsing happens after the signature: a *validly signed* bad payload is "malformed".
    payload = b'{"format":"jetfleet.manifest/0"}'
    signed = SignedManifest(payload, key.sign(payload), pki.key_id(key.public_key()))
    assert "jetfleet.manifest/0" in refused("malformed", signed, key)


def test_expired(key) -> None:
    signed = issue(key, ttl_s=3600)
    verify(signed, key, now=NOW + 3600)  # still valid at the very second it expires
    message = refused("expired", signed, key, now=NOW + 3600 + 7200)
    assert "basic_cnn v2" in message and "expired at 2025-10-09 09:53:20 UTC, 2.0 h ago" in message


def test_not_yet_valid(key) -> None:
    signed = issue(key, now=NOW + 1000)
    verify(signed, key, now=NOW + 1000 - 299)  # within the allowed clock skew
    message = refused("not-yet-valid", signed, key, now=NOW)
    assert "ahead of this device's clock" in message and "check the device clock" in message
    verify(signed, key, now=NOW, skew_s=1000)


def test_wrong_device_class(key) -> None:
    message = refused("wrong-device-class", issue(key), key, device_class="xavier-nx")
    assert message == ("manifest for basic_cnn v2 (fp16) targets device class orin-nano, this device is xavier-nx")


def test_replayed_older_version_is_a_downgrade(key) -> None:
    old = issue(key, version=1)
    verify(old, key, accepted_version=1)  # the same version again is fine (reinstall)
    message = refused("downgrade", old, key, accepted_version=2)
    assert message == (
        "basic_cnn v1 is older than v2 already accepted on this device; a downgrade needs a signed rollback"
    )


def test_checks_run_in_order(key) -> None:
    """An expired manifest for another class, replaying an old version: expiry is reported first."""
    signed = issue(key, version=1, ttl_s=10)
    refused("expired", signed, key, now=NOW + 100, device_class="other", accepted_version=5)
    refused("wrong-device-class", signed, key, device_class="other", accepted_version=5)


# --------------------------------------------------------------------------- malformed payloads


def body() -> dict:
    return json.loads(Manifest("dep-1", "basic_cnn", CLASS, NOW, NOW + 60, spec()).to_payload())


def encode(d: dict) -> bytes:
    return json.dumps(d).encode()


def test_from_payload_accepts_non_canonical_json() -> None:
    assert Manifest.from_payload(json.dumps(body(), indent=2).encode()).version == 2


@pytest.mark.parametrize(
    "field", ["format", "deployment_id", "model", "device_class", "issued_at", "expires_at", "spec", "rollback"]
)
def test_from_payload_rejects_missing_field(field: str) -> None:
    d = body()
    del d[field]
    with pytest.raises(ManifestError) as err:
        Manifest.from_payload(encode(d))
    assert err.value.reason == "malformed"


def test_from_payload_rejects_extra_fields() -> None:
    with pytest.raises(ManifestError, match="unexpected priority") as err:
        Manifest.from_payload(encode({**body(), "priority": 1}))
    assert err.value.reason == "malformed"
    d = body()
    d["spec"]["min_jetpack"] = "6.0"
    with pytest.raises(ManifestError, match="spec fields: unexpected min_jetpack"):
        Manifest.from_payload(encode(d))


@pytest.mark.parametrize(
    "change",
    [
        {"format": "jetfleet.manifest/2"},
        {"deployment_id": ""},
        {"deployment_id": 7},
        {"model": None},
        {"issued_at": "yesterday"},
        {"issued_at": True},
        {"expires_at": 1.0},  # before issued_at
        {"rollback": "yes"},
        {"spec": None},  # no spec and not a rollback
        {"spec": "basic_cnn:2"},
        {"model": "other_cnn"},  # spec is basic_cnn
    ],
    ids=repr,
)
def test_from_payload_rejects_bad_values(change: dict) -> None:
    with pytest.raises(ManifestError) as err:
        Manifest.from_payload(encode({**body(), **change}))
    assert err.value.reason == "malformed"
    assert str(err.value).startswith("malformed manifest: ")


@pytest.mark.parametrize(
    "spec_change",
    [
        {"version": "2"},
        {"version": 0},
        {"precision": "fp64"},
        {"onnx": {"sha256": "zz", "size": 1}},
        {"onnx": {"sha256": "a" * 64}},
        {"preprocess": {}},
    ],
    ids=repr,
)
def test_from_payload_rejects_bad_spec(spec_change: dict) -> None:
    d = body()
    d["spec"].update(spec_change)
    with pytest.raises(ManifestError) as err:
        Manifest.from_payload(encode(d))
    assert err.value.reason == "malformed"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"format": "jetfleet.manifest/1", "format": "jetfleet.manifest/1"}',
        b'{"issued_at": NaN}',
    ],
    ids=repr,
)
def test_from_payload_rejects_non_objects(data: bytes) -> None:
    with pytest.raises(ManifestError) as err:
        Manifest.from_payload(data)
    assert err.value.reason == "malformed"


def test_invalid_manifest_cannot_be_built_or_issued(key) -> None:
    with pytest.raises(ManifestError, match="expires"):
        issue(key, ttl_s=0)
    with pytest.raises(ManifestError, match="no model spec and is not a rollback"):
        issue(key, version=None)
    with pytest.raises(ManifestError, match="finite"):
        Manifest("d", "basic_cnn", CLASS, float("nan"), NOW, spec())


def test_error_reason_must_be_known() -> None:
    assert ManifestError("mismatch", "artifact not covered").reason == "mismatch"
    with pytest.raises(ValueError):
        ManifestError("nope", "x")


def test_a_manifest_is_for_one_device(key) -> None:
    signed = issue(key, device="jetson-01")
    assert verify(signed, key, device="jetson-01").device == "jetson-01"
    message = refused("wrong-device", signed, key, device="jetson-02")
    assert "jetson-01" in message and "jetson-02" in message
    assert "(none)" in refused("wrong-device", issue(key), key, device="jetson-02")


def test_purpose_is_signed_and_checked(key) -> None:
    assert verify(issue(key, purpose="upload"), key).purpose == "upload"
    with pytest.raises(mf.ManifestError, match="purpose"):
        issue(key, purpose="anything")


def test_covers_checks_the_signed_size_too(key) -> None:
    m = verify(issue(key), key)
    assert m.covers(m.spec.onnx.sha256) and m.covers(m.spec.onnx.sha256, m.spec.onnx.size)
    assert not m.covers(m.spec.onnx.sha256, m.spec.onnx.size + 1)
