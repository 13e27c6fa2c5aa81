"""Domain dataclasses survive the wire unchanged, optional fields included."""

from __future__ import annotations

import pytest

from jetfleet.common.device import DeviceInfo, TelemetrySample
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import (
    ArtifactRef,
    DeploymentRecord,
    DeploymentState,
    ItemError,
    JobResult,
    ModelSlot,
    ModelSpec,
    Prediction,
    Step,
)
from jetfleet.common.latency import LatencyStats
from jetfleet.common.metrics import ClassMetrics
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.proto import convert
from jetfleet.proto.v1 import common_pb2

SHA = "ab" * 32


def _spec(**kw: object) -> ModelSpec:
    pre = PreprocessSpec((8, 8), 1, (0.3058,), (0.3761,), tuple("0123456789"))
    return ModelSpec("basic_cnn", 3, "int8", ArtifactRef(SHA, 1234), pre, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [{}, {"test_set": ArtifactRef("cd" * 32, 99), "reference_accuracy": 0.9833}])
def test_spec_round_trip(kw: dict) -> None:
    spec = _spec(**kw)
    assert convert.spec_from_pb(convert.spec_to_pb(spec)) == spec


def test_record_and_job_result_round_trip() -> None:
    slot = ModelSlot(_spec(), "onnxruntime", "f" * 32, 1.5e9, smoke_accuracy=0.97)
    rec = DeploymentRecord(
        "dep-1", "jetson-01", _spec(), DeploymentState.ROLLED_BACK, 1.0, 2.0, Step.SMOKE_TEST, "too low", previous=slot
    )
    assert convert.record_from_pb(convert.record_to_pb(rec)) == rec
    lat = LatencyStats.from_ms([1.0, 2.0, 3.0, 10.0])
    sample = TelemetrySample(5.0, "tegrastats", ram_used_mb=1000.0, gpu_percent=None, temperatures_c={"gpu": 41.5})
    result = JobResult(
        job_id="j",
        agent="jetson-01",
        model=slot,
        items=4,
        batch_size=2,
        warmup=1,
        iterations=0,
        latency=lat,
        throughput=123.0,
        wall_s=0.5,
        started_at=4.0,
        errors=(ItemError("bad.png", "truncated"),),
        has_labels=True,
        top1=0.75,
        top5=1.0,
        per_class=(ClassMetrics("0", 1.0, 0.5, 0.66, 2),),
        predictions=(Prediction("a.png", 3, 0.9, 3), Prediction("b.png", 1, 0.4, None)),
        compute=lat,
        telemetry=(sample,),
    )
    back = convert.job_result_from_pb(convert.job_result_to_pb(result))
    assert back == result and back.host_to_device is None and back.telemetry[0].gpu_percent is None


def test_device_info_keeps_absent_fields_absent() -> None:
    info = DeviceInfo("h", "x86", "cpu-x86_64", False, "cpu", 2, 24000, "Debian", "6.1", "3.11", "0.1.0")
    assert convert.device_from_pb(convert.device_to_pb(info)) == info
    jetson = DeviceInfo(
        "orin", "NVIDIA Jetson AGX Orin", "jetson-agx-orin", True, "ARMv8", 12, 64000, "Ubuntu 22.04", "5.15", "3.10",
        "0.1.0", l4t_release="R36.4.0", compute_capability="8.7", power_mode="MAXN",
    )  # fmt: skip
    assert convert.device_from_pb(convert.device_to_pb(jetson)) == jetson


def test_malformed_messages_are_refused_with_the_reason() -> None:
    msg = convert.spec_to_pb(_spec())
    msg.onnx.sha256 = "../../etc/passwd"
    with pytest.raises(JetfleetError, match="not a sha256"):
        convert.spec_from_pb(msg)
    msg = convert.spec_to_pb(_spec())
    msg.precision = "int4"
    with pytest.raises(JetfleetError, match="precision"):
        convert.spec_from_pb(msg)
    with pytest.raises(JetfleetError, match="no ONNX artifact"):
        convert.spec_from_pb(common_pb2.ModelSpec(model="m", version=1, precision="fp32"))
