"""Scenario 6: tampered artifacts and bad manifests are rejected before activation; the old model serves.

An enrolled agent (mutual TLS, the controller's manifest key pinned) serves
basic_cnn FP32. Each attack arrives over the controller's own TLS identity,
so only the manifest layer stands between it and the device:

- one flipped byte in an artifact (the signed hash no longer matches);
- an unsigned manifest; one signed by another key; one signed by another key
  that claims the real key's id; a payload changed after signing;
- a replayed older manifest after a newer version was accepted;
- an expired manifest; one for another device class.

Expected outcome for each: refused with the reason in the gRPC details, no
byte accepted where the manifest is checked before the upload, and the
agent still serving what it served. At the end: every active model hash on
the agent is one the controller signed, and versions only went up.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from agents import DigitsModel, RunningAgent, StartAgent

from jetfleet.common import manifest as mf
from jetfleet.common import pki
from jetfleet.common.fleet import ArtifactRef, ModelSpec
from jetfleet.common.hashing import sha256_file
from jetfleet.controller.fleet.agent_client import AgentCallError, _manifest_pb
from jetfleet.controller.fleet.security import FleetPKI
from jetfleet.proto.v1 import common_pb2


@pytest.fixture
def serving(start_agent: StartAgent, digits_model: DigitsModel) -> RunningAgent:
    ra = start_agent()
    assert ra.client.push(digits_model.fp32.spec, digits_model.fp32.files).ok
    return ra


def _deploy_with(ra: RunningAgent, spec: ModelSpec, signed: common_pb2.SignedManifest | None) -> AgentCallError:
    """Deploy ``spec`` under exactly the manifest given (None: none at all); the refusal."""
    deployment_id = _deployment_id(signed) if signed is not None else uuid.uuid4().hex
    with pytest.raises(AgentCallError) as info:
        ra.client.deploy(spec, deployment_id=deployment_id, manifest=signed or common_pb2.SignedManifest())
    return info.value


def _deployment_id(signed: common_pb2.SignedManifest) -> str:
    try:
        return mf.Manifest.from_payload(signed.payload).deployment_id
    except mf.ManifestError:
        return uuid.uuid4().hex


def _signed(
    key: object, spec: ModelSpec | None, device_class: str, device: str = "jetson-01", **kw: object
) -> common_pb2.SignedManifest:
    model = spec.model if spec is not None else "basic_cnn"
    return _manifest_pb(mf.issue(key, uuid.uuid4().hex, spec, model, device_class, device=device, **kw))  # type: ignore[arg-type]


def _still_serving(ra: RunningAgent, spec: ModelSpec) -> bool:
    return [s.spec for s in ra.agent.manager.active()] == [spec]


def test_every_bad_manifest_is_refused_and_the_old_model_serves(
    serving: RunningAgent, digits_model: DigitsModel, fleet_pki: FleetPKI, tmp_path: Path, invariants
) -> None:
    ra, fp32, int8 = serving, digits_model.fp32.spec, digits_model.int8
    key = pki.load_signing_key((fleet_pki.folder / "manifest-signing.key").read_bytes())
    device_class = ra.agent.device.device_class
    signed_hashes = {fp32.onnx.sha256}
    invariants.record("serving", spec=fp32.ref)

    # Unsigned, foreign key, forged key id, changed payload: PERMISSION_DENIED with the reason; fp32 serves.
    other = pki.new_signing_key()
    forged = _signed(other, int8.spec, device_class)
    forged.key_id = pki.key_id(key.public_key())
    tampered = _signed(key, int8.spec, device_class)
    tampered.payload = tampered.payload.replace(b'"version":1', b'"version":9')
    cases = {
        "unsigned": None,
        "unknown-key": _signed(other, int8.spec, device_class),
        "bad-signature": forged,
        "bad-signature ": tampered,
        "expired": _signed(key, int8.spec, device_class, ttl_s=60, now=time.time() - 3600),
        "wrong-device-class": _signed(key, int8.spec, "jetson-agx-thor"),
        "wrong-device": _signed(key, int8.spec, device_class, device="jetson-02"),  # captured from a sibling
        "mismatch": _signed(key, int8.spec, device_class, purpose="upload"),  # a job's test-set manifest
    }
    for reason, signed in cases.items():
        err = _deploy_with(ra, int8.spec, signed)
        invariants.record("deploy refused", case=reason, code=err.code.name, details=err.details)
        invariants.expect(
            f"{reason.strip()}: refused with its reason", f"({reason.strip()})" in err.details, err.details
        )
        expected = grpc.StatusCode.FAILED_PRECONDITION if reason == "expired" else grpc.StatusCode.PERMISSION_DENIED
        invariants.expect(f"{reason.strip()}: status {expected.name}", err.code == expected, err.code)
        invariants.expect(f"{reason.strip()}: fp32 still serves", _still_serving(ra, fp32))

    # The same manifests on an upload: refused before a single byte is staged.
    for reason in ("unknown-key", "wrong-device-class"):
        with pytest.raises(AgentCallError) as info:
            ra.client.upload(int8.files[int8.spec.onnx.sha256], int8.spec.onnx, manifest=cases[reason], attempts=1)
        invariants.expect(f"upload, {reason}: refused", f"({reason})" in info.value.details, info.value.details)
        invariants.expect(f"upload, {reason}: nothing staged", ra.client.offset(int8.spec.onnx).offset == 0)
    # A signed manifest that does not cover the artifact being sent.
    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"not in any manifest" * 100)
    with pytest.raises(AgentCallError) as info:
        ra.client.upload(stray, manifest=_signed(key, int8.spec, device_class), attempts=1)
    invariants.expect("uncovered artifact refused", info.value.code == grpc.StatusCode.PERMISSION_DENIED)
    invariants.expect("uncovered artifact: nothing stored", not ra.agent.store.has(ArtifactRef(*sha256_file(stray))))
    invariants.expect(
        "every active hash was signed by the controller",
        all(s.spec.onnx.sha256 in signed_hashes for s in ra.agent.manager.active()),
    )
    invariants.check()


def test_a_flipped_byte_is_caught_and_never_activated(
    serving: RunningAgent, digits_model: DigitsModel, tmp_path: Path, invariants
) -> None:
    ra, fp32, int8 = serving, digits_model.fp32.spec, digits_model.int8
    bad = tmp_path / "int8-flipped.onnx"
    data = bytearray(int8.files[int8.spec.onnx.sha256].read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    manifest = ra.client.sign(int8.spec, "flip")
    with pytest.raises(AgentCallError) as info:
        ra.client.upload(bad, int8.spec.onnx, manifest=manifest, attempts=1)  # declared: the signed size and hash
    invariants.record("upload refused", code=info.value.code.name, details=info.value.details)
    invariants.expect("flipped byte: DATA_LOSS", info.value.code == grpc.StatusCode.DATA_LOSS, info.value.code)
    invariants.expect("flipped byte: not stored", not ra.agent.store.has(int8.spec.onnx))
    outcome = ra.client.deploy(int8.spec, deployment_id="flip", manifest=manifest)
    invariants.expect("deploy without the true bytes fails", not outcome.ok, outcome.record.reason)
    invariants.expect("fp32 still serves", _still_serving(ra, fp32))
    assert ra.client.push(int8.spec, int8.files).ok  # the true bytes, then, go through
    invariants.expect("the genuine artifact activates", _still_serving(ra, int8.spec))
    invariants.check()


def test_a_replayed_older_manifest_is_refused_but_a_signed_rollback_is_not(
    serving: RunningAgent, digits_model: DigitsModel, invariants
) -> None:
    ra, fp32 = serving, digits_model.fp32
    v2 = replace(fp32.spec, version=2)
    old_manifest = ra.client.sign(fp32.spec, "replayed")  # captured on the wire when v1 was current
    signed_hashes = {fp32.spec.onnx.sha256}
    assert ra.client.deploy(v2).ok
    versions = [ra.agent.manager.accepted_version("basic_cnn")]
    invariants.record("v2 active", accepted=versions[-1])

    with pytest.raises(AgentCallError) as info:
        ra.client.deploy(fp32.spec, deployment_id="replayed", manifest=old_manifest)
    invariants.expect("replay refused as a downgrade", "(downgrade)" in info.value.details, info.value.details)
    invariants.expect("v2 still serves", _still_serving(ra, v2))

    outcome = ra.client.deploy(fp32.spec, rollback=True)  # the operator asked for v1: an explicit, signed rollback
    invariants.expect("a signed rollback to v1 is accepted", outcome.ok, outcome.details)
    versions.append(ra.agent.manager.accepted_version("basic_cnn"))
    invariants.expect("the floor follows the signed rollback", versions == [2, 1], versions)
    with pytest.raises(AgentCallError):  # the rollback was signed for v1 only: v2's old manifest is not a pass
        ra.client.deploy(v2, deployment_id="v2-again", manifest=ra.client.sign(v2, "other-id"))
    invariants.expect(
        "every active hash was signed by the controller",
        all(s.spec.onnx.sha256 in signed_hashes for s in ra.agent.manager.active()),
    )
    invariants.check()


def test_a_rollback_request_needs_a_signed_rollback_manifest(
    serving: RunningAgent, digits_model: DigitsModel, invariants
) -> None:
    ra = serving
    assert ra.client.push(digits_model.int8.spec, digits_model.int8.files).ok
    key = pki.new_signing_key()
    from jetfleet.proto.v1 import agent_pb2 as apb

    request = apb.RollbackRequest(deployment_id="rb-1", model="basic_cnn")
    request.manifest.CopyFrom(_signed(key, None, ra.agent.device.device_class, rollback=True))
    with pytest.raises(grpc.RpcError) as info:
        list(ra.client.stub.Rollback(request, timeout=10))
    invariants.expect("foreign-key rollback refused", info.value.code() == grpc.StatusCode.PERMISSION_DENIED)
    invariants.expect("int8 still serves", _still_serving(ra, digits_model.int8.spec))
    outcome = ra.client.rollback("basic_cnn")
    invariants.expect(
        "the controller's signed rollback works", outcome.ok and _still_serving(ra, digits_model.fp32.spec)
    )
    invariants.check()
