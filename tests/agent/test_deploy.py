"""Deploy, smoke-test, activate and roll back on a real agent server, driven over gRPC."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from agents import DigitsModel, StartAgent, stop

from jetfleet.common.fleet import ArtifactRef, DeploymentState, Step
from jetfleet.common.hashing import sha256_file


def test_two_agents_serve_fp32_and_int8_with_the_registry_accuracy(
    start_agent: StartAgent, digits_model: DigitsModel
) -> None:
    agents = [start_agent("jetson-01"), start_agent("jetson-02")]
    for first, second in ((digits_model.fp32, digits_model.int8), (digits_model.int8, digits_model.fp32)):
        for ra, d in zip(agents, (first, second)):
            outcome = ra.client.push(d.spec, d.files)
            assert outcome.ok, outcome.details
            assert outcome.record.state == DeploymentState.ACTIVE
            result = ra.client.run_job(test_set=d.spec.test_set, batch_size=32, warmup=2)
            assert result.model.spec == d.spec and result.items == 359 and not result.errors
            assert abs(result.top1 - d.spec.reference_accuracy) <= 0.005, (d.spec.ref, result.top1)
            assert result.top5 >= result.top1 and len(result.per_class) == 10
            lat = result.latency
            assert lat.count == 12  # ceil(359 / 32) timed batches
            assert 0 < lat.min_ms <= lat.median_ms <= lat.p90_ms <= lat.p95_ms <= lat.p99_ms <= lat.max_ms
            assert result.throughput > 0 and result.wall_s > 0
        agents = agents[::-1]


def test_a_redeploy_of_the_active_spec_changes_nothing(start_agent: StartAgent, digits_model: DigitsModel) -> None:
    ra = start_agent()
    d = digits_model.fp32
    first = ra.client.push(d.spec, d.files)
    again = ra.client.push(d.spec, d.files)
    assert first.ok and again.ok and again.record.reason == "already active"
    status = ra.client.status()
    assert [s.spec.model for s in status.active] == ["basic_cnn"]


def test_build_failure_rolls_back_and_the_old_model_serves(
    start_agent: StartAgent, digits_model: DigitsModel, tmp_path
) -> None:
    from jetfleet.common.fleet import ArtifactRef
    from jetfleet.common.hashing import sha256_file

    ra = start_agent()
    good = digits_model.fp32
    assert ra.client.push(good.spec, good.files).ok
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf" * 100)
    ref = ArtifactRef(*sha256_file(junk))
    bad = replace(good.spec, version=2, onnx=ref)
    outcome = ra.client.push(bad, {**good.files, ref.sha256: junk})
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert outcome.record.state == DeploymentState.ROLLED_BACK and outcome.record.failed_step == Step.VERIFY
    assert "protobuf" in outcome.record.reason.lower() or "load model" in outcome.record.reason.lower()
    assert "still serves" in outcome.details
    result = ra.client.run_job(test_set=good.spec.test_set)
    assert result.model.spec == good.spec and result.top1 == pytest.approx(good.spec.reference_accuracy, abs=0.005)
    assert not list((ra.agent.data_dir / "engines").glob(".tmp-*"))


def test_smoke_test_failure_rolls_back(start_agent: StartAgent, digits_model: DigitsModel) -> None:
    ra = start_agent()
    good = digits_model.fp32
    assert ra.client.push(good.spec, good.files).ok
    # A mis-specified normalization: the same ONNX file, inputs scaled wrongly.
    pre = replace(good.spec.preprocess, mean=(0.9,), std=(0.05,))
    bad = replace(good.spec, version=2, preprocess=pre)
    outcome = ra.client.deploy(bad)
    assert outcome.code == grpc.StatusCode.FAILED_PRECONDITION
    rec = outcome.record
    assert rec.state == DeploymentState.ROLLED_BACK and rec.failed_step == Step.SMOKE_TEST
    assert "points below the registry" in rec.reason and rec.previous.spec == good.spec
    assert [s.spec.version for s in ra.client.status().active] == [good.spec.version]


def test_a_spec_that_does_not_match_the_model_is_refused(start_agent: StartAgent, digits_model: DigitsModel) -> None:
    ra = start_agent()
    good = digits_model.fp32
    pre = replace(good.spec.preprocess, input_size=(32, 32), channels=3, mean=(0.5,) * 3, std=(0.2,) * 3)
    outcome = ra.client.push(replace(good.spec, preprocess=pre), good.files)
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert outcome.record.state == DeploymentState.FAILED and outcome.record.failed_step == Step.BUILD
    assert "3×32×32" in outcome.record.reason and "1×8×8" in outcome.record.reason
    assert len(ra.client.status().active) == 0


def test_explicit_rollback_returns_to_the_previous_version(start_agent: StartAgent, digits_model: DigitsModel) -> None:
    ra = start_agent()
    fp32, int8 = digits_model.fp32, digits_model.int8
    assert ra.client.push(fp32.spec, fp32.files).ok
    assert ra.client.push(int8.spec, int8.files).ok
    back = ra.client.rollback("basic_cnn")
    assert back.ok and back.record.rollback and back.record.engine_cached
    assert back.record.spec == fp32.spec and back.record.previous.spec == int8.spec
    result = ra.client.run_job(test_set=fp32.spec.test_set)
    assert result.model.spec == fp32.spec
    with pytest.raises(Exception, match="no previous version"):
        ra.client.rollback("basic_cnn")


def test_active_model_and_history_survive_a_restart(
    start_agent: StartAgent, digits_model: DigitsModel, tmp_path
) -> None:
    ra = start_agent("jetson-01", data_dir=tmp_path / "dev")
    d = digits_model.int8
    deployed = ra.client.push(d.spec, d.files)
    engines = sorted((tmp_path / "dev" / "engines").iterdir())
    stop(ra)
    again = start_agent("jetson-01", data_dir=tmp_path / "dev")
    status = again.client.status(history=10)
    assert [s.spec.precision for s in status.active] == ["int8"]
    assert [r.deployment_id for r in status.history] == [deployed.record.deployment_id]
    assert sorted((tmp_path / "dev" / "engines").iterdir()) == engines  # loaded from the cache, not rebuilt
    result = again.client.run_job(test_set=d.spec.test_set)
    assert abs(result.top1 - d.spec.reference_accuracy) <= 0.005


def test_deploying_without_uploading_is_a_clear_error(start_agent: StartAgent, digits_model: DigitsModel) -> None:
    ra = start_agent()
    outcome = ra.client.deploy(digits_model.fp32.spec)
    assert outcome.code == grpc.StatusCode.NOT_FOUND and outcome.record.failed_step == Step.STAGE
    assert "is not on this device" in outcome.details


def test_deployments_are_idempotent_by_id(start_agent: StartAgent, digits_model: DigitsModel) -> None:
    ra = start_agent()
    fp32, int8 = digits_model.fp32, digits_model.int8
    assert ra.client.push(fp32.spec, fp32.files, deployment_id="d1").ok
    first = ra.client.push(int8.spec, int8.files, deployment_id="d2")
    retry = ra.client.deploy(int8.spec, deployment_id="d2")
    assert retry.ok and retry.record == first.record  # the stored record, nothing done again
    back = ra.client.rollback("basic_cnn", deployment_id="r1")
    again = ra.client.rollback("basic_cnn", deployment_id="r1")  # a retried rollback rolls back once
    assert again.record == back.record
    assert [s.spec.precision for s in ra.client.status().active] == ["fp32"]
    with pytest.raises(Exception, match="already used for another deployment"):
        ra.client.deploy(fp32.spec, deployment_id="d2")
    assert [r.deployment_id for r in ra.client.status(history=10).history] == ["d1", "d2", "r1"]


def test_a_corrupt_blob_is_caught_removed_and_can_be_sent_again(
    start_agent: StartAgent, digits_model: DigitsModel
) -> None:
    import os

    ra = start_agent()
    d = digits_model.fp32
    ra.client.upload(d.files[d.spec.onnx.sha256], d.spec.onnx, manifest=ra.client.sign(d.spec, "upload"))
    blob = ra.agent.data_dir / "artifacts" / "blobs" / d.spec.onnx.sha256
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x10  # bit rot on the device's flash
    blob.write_bytes(bytes(data))
    outcome = ra.client.push(d.spec, {**d.files, d.spec.onnx.sha256: blob})  # dedup: the bad blob is "there"
    assert outcome.code == grpc.StatusCode.DATA_LOSS and outcome.record.failed_step == Step.VERIFY
    assert not blob.exists() and not ra.client.offset(d.spec.onnx).present
    assert ra.client.push(d.spec, d.files).ok


def test_a_changed_engine_fingerprint_rebuilds_and_smoke_tests_at_start(
    start_agent: StartAgent, digits_model: DigitsModel, tmp_path
) -> None:
    import json

    ra = start_agent("jetson-01", data_dir=tmp_path / "dev")
    d = digits_model.fp32
    assert ra.client.push(d.spec, d.files).ok
    stop(ra)
    # As after a JetPack or TensorRT upgrade: the engine the slot names is no longer what this device builds.
    state_file = tmp_path / "dev" / "state.json"
    state = json.loads(state_file.read_text())
    state["active"]["basic_cnn"]["engine_fingerprint"] = "0" * 32
    state_file.write_text(json.dumps(state))
    again = start_agent("jetson-01", data_dir=tmp_path / "dev")
    (slot,) = again.client.status().active
    assert slot.engine_fingerprint != "0" * 32 and slot.smoke_accuracy == pytest.approx(d.spec.reference_accuracy)
    assert json.loads(state_file.read_text())["active"]["basic_cnn"]["engine_fingerprint"] == slot.engine_fingerprint


def test_requests_out_of_range_are_refused(start_agent: StartAgent, digits_model: DigitsModel) -> None:
    ra = start_agent()
    d = digits_model.fp32
    assert ra.client.push(d.spec, d.files).ok
    with pytest.raises(Exception, match="batch size must be between 1 and 1024"):
        ra.client.run_job(test_set=d.spec.test_set, batch_size=5000)
    with pytest.raises(Exception, match="smoke margin"):
        ra.client.deploy(replace(d.spec, version=2), smoke_margin=float("nan"))


def test_unused_artifacts_and_engines_are_pruned(start_agent: StartAgent, digits_model: DigitsModel, tmp_path) -> None:
    ra = start_agent()
    fp32, int8, fp16 = digits_model.fp32, digits_model.int8, digits_model.fp16
    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"an upload whose deployment never came")
    ref = ArtifactRef(*sha256_file(stray))
    stray_ref = ra.client.upload(stray, ref, manifest=ra.client.sign(replace(fp32.spec, onnx=ref), "stray")).artifact
    for d in (fp32, int8):
        assert ra.client.push(d.spec, d.files).ok
    assert ra.agent.store.has(stray_ref)  # within the grace period: it may still be deployed
    assert ra.client.push(fp16.spec, fp16.files).ok
    assert ra.agent.manager.prune(grace_s=0) == (1, 0)  # only the stray: fp32 and int8 are rollback targets
    assert not ra.agent.store.has(stray_ref)
    for d in (fp32, int8, fp16):
        assert ra.agent.store.has(d.spec.onnx) and ra.agent.store.has(d.spec.test_set)
    assert len(ra.agent.manager.cache.entries()) == 3
