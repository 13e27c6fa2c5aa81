"""Wire messages <-> domain dataclasses: the one place that knows both.

Servicers and clients decode with ``*_from_pb`` and encode with ``*_to_pb``;
everything else in jetfleet works on :mod:`jetfleet.common` dataclasses. A
malformed message (a bad digest, an unknown precision) raises
``JetfleetError`` here, which servicers turn into ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

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
from jetfleet.proto.v1 import common_pb2 as pb

_DEVICE_OPTIONAL = (
    "l4t_release",
    "jetpack",
    "power_mode",
    "gpu_name",
    "compute_capability",
    "cuda_version",
    "tensorrt_version",
    "onnxruntime_version",
)
_DEVICE_REQUIRED = (
    "hostname",
    "board",
    "device_class",
    "is_jetson",
    "cpu_model",
    "cpu_count",
    "memory_total_mb",
    "os_release",
    "kernel",
    "python",
    "agent_version",
)
_TELEMETRY_OPTIONAL = ("ram_used_mb", "ram_total_mb", "cpu_percent", "gpu_percent")


def artifact_to_pb(ref: ArtifactRef | None) -> pb.ArtifactRef:
    return pb.ArtifactRef(sha256=ref.sha256, size=ref.size) if ref else pb.ArtifactRef()


def artifact_from_pb(msg: pb.ArtifactRef) -> ArtifactRef | None:
    """``None`` for an empty message (no sha256): optional artifacts are sent that way."""
    return ArtifactRef(msg.sha256, msg.size) if msg.sha256 else None


def preprocess_to_pb(spec: PreprocessSpec) -> pb.PreprocessSpec:
    h, w = spec.input_size
    return pb.PreprocessSpec(
        height=h, width=w, channels=spec.channels, mean=spec.mean, std=spec.std, labels=spec.labels
    )


def preprocess_from_pb(msg: pb.PreprocessSpec) -> PreprocessSpec:
    return PreprocessSpec(
        input_size=(msg.height, msg.width),
        channels=msg.channels,
        mean=tuple(msg.mean),
        std=tuple(msg.std),
        labels=tuple(msg.labels),
    )


def spec_to_pb(spec: ModelSpec) -> pb.ModelSpec:
    msg = pb.ModelSpec(
        model=spec.model,
        version=spec.version,
        precision=spec.precision,
        onnx=artifact_to_pb(spec.onnx),
        preprocess=preprocess_to_pb(spec.preprocess),
        test_set=artifact_to_pb(spec.test_set),
    )
    if spec.reference_accuracy is not None:
        msg.reference_accuracy = spec.reference_accuracy
    return msg


def spec_from_pb(msg: pb.ModelSpec) -> ModelSpec:
    onnx = artifact_from_pb(msg.onnx)
    if onnx is None:
        raise JetfleetError(f"model spec {msg.model}:{msg.version} has no ONNX artifact")
    return ModelSpec(
        model=msg.model,
        version=msg.version,
        precision=msg.precision,
        onnx=onnx,
        preprocess=preprocess_from_pb(msg.preprocess),
        test_set=artifact_from_pb(msg.test_set),
        reference_accuracy=msg.reference_accuracy if msg.HasField("reference_accuracy") else None,
    )


def slot_to_pb(slot: ModelSlot) -> pb.ModelSlot:
    msg = pb.ModelSlot(
        spec=spec_to_pb(slot.spec),
        backend=slot.backend,
        engine_fingerprint=slot.engine_fingerprint,
        activated_at=slot.activated_at,
    )
    if slot.smoke_accuracy is not None:
        msg.smoke_accuracy = slot.smoke_accuracy
    return msg


def slot_from_pb(msg: pb.ModelSlot) -> ModelSlot:
    return ModelSlot(
        spec=spec_from_pb(msg.spec),
        backend=msg.backend,
        engine_fingerprint=msg.engine_fingerprint,
        activated_at=msg.activated_at,
        smoke_accuracy=msg.smoke_accuracy if msg.HasField("smoke_accuracy") else None,
    )


def device_to_pb(info: DeviceInfo) -> pb.DeviceInfo:
    msg = pb.DeviceInfo(**{k: getattr(info, k) for k in _DEVICE_REQUIRED})
    for key in _DEVICE_OPTIONAL:
        if (value := getattr(info, key)) is not None:
            setattr(msg, key, value)
    return msg


def device_from_pb(msg: pb.DeviceInfo) -> DeviceInfo:
    optional = {k: getattr(msg, k) if msg.HasField(k) else None for k in _DEVICE_OPTIONAL}
    return DeviceInfo(**{k: getattr(msg, k) for k in _DEVICE_REQUIRED}, **optional)


def telemetry_to_pb(sample: TelemetrySample) -> pb.TelemetrySample:
    msg = pb.TelemetrySample(
        timestamp=sample.timestamp,
        source=sample.source,
        cpu_core_percent=sample.cpu_core_percent,
        temperatures_c=sample.temperatures_c,
        power_mw=sample.power_mw,
    )
    for key in _TELEMETRY_OPTIONAL:
        if (value := getattr(sample, key)) is not None:
            setattr(msg, key, value)
    return msg


def telemetry_from_pb(msg: pb.TelemetrySample) -> TelemetrySample:
    return TelemetrySample(
        timestamp=msg.timestamp,
        source=msg.source,
        cpu_core_percent=tuple(msg.cpu_core_percent),
        temperatures_c=dict(msg.temperatures_c),
        power_mw=dict(msg.power_mw),
        **{k: getattr(msg, k) if msg.HasField(k) else None for k in _TELEMETRY_OPTIONAL},
    )


def latency_to_pb(stats: LatencyStats) -> pb.LatencyStats:
    return pb.LatencyStats(**stats.to_dict())


def latency_from_pb(msg: pb.LatencyStats) -> LatencyStats:
    return LatencyStats(
        count=msg.count,
        min_ms=msg.min_ms,
        mean_ms=msg.mean_ms,
        median_ms=msg.median_ms,
        p90_ms=msg.p90_ms,
        p95_ms=msg.p95_ms,
        p99_ms=msg.p99_ms,
        max_ms=msg.max_ms,
    )


def record_to_pb(rec: DeploymentRecord) -> pb.DeploymentRecord:
    msg = pb.DeploymentRecord(
        deployment_id=rec.deployment_id,
        agent=rec.agent,
        spec=spec_to_pb(rec.spec),
        state=int(rec.state),
        failed_step=int(rec.failed_step),
        reason=rec.reason,
        started_at=rec.started_at,
        finished_at=rec.finished_at,
        rollback=rec.rollback,
        engine_cached=rec.engine_cached,
        build_s=rec.build_s,
        code=rec.code,
    )
    if rec.smoke_accuracy is not None:
        msg.smoke_accuracy = rec.smoke_accuracy
    if rec.previous is not None:
        msg.previous.CopyFrom(slot_to_pb(rec.previous))
    return msg


def record_from_pb(msg: pb.DeploymentRecord) -> DeploymentRecord:
    return DeploymentRecord(
        deployment_id=msg.deployment_id,
        agent=msg.agent,
        spec=spec_from_pb(msg.spec),
        state=DeploymentState(msg.state),
        failed_step=Step(msg.failed_step),
        reason=msg.reason,
        started_at=msg.started_at,
        finished_at=msg.finished_at,
        rollback=msg.rollback,
        engine_cached=msg.engine_cached,
        build_s=msg.build_s,
        smoke_accuracy=msg.smoke_accuracy if msg.HasField("smoke_accuracy") else None,
        previous=slot_from_pb(msg.previous) if msg.HasField("previous") else None,
        code=msg.code,
    )


def job_result_to_pb(res: JobResult) -> pb.JobResult:
    msg = pb.JobResult(
        job_id=res.job_id,
        agent=res.agent,
        model=slot_to_pb(res.model),
        items=res.items,
        errors=[pb.ItemError(item=e.item, reason=e.reason) for e in res.errors],
        has_labels=res.has_labels,
        per_class=[pb.ClassMetrics(**c.__dict__) for c in res.per_class],
        predictions=[_prediction_to_pb(p) for p in res.predictions],
        batch_size=res.batch_size,
        warmup=res.warmup,
        iterations=res.iterations,
        latency=latency_to_pb(res.latency),
        throughput=res.throughput,
        wall_s=res.wall_s,
        started_at=res.started_at,
        telemetry=[telemetry_to_pb(t) for t in res.telemetry],
    )
    for key in ("top1", "top5"):
        if (value := getattr(res, key)) is not None:
            setattr(msg, key, value)
    for key in ("host_to_device", "compute", "device_to_host"):
        if (stats := getattr(res, key)) is not None:
            getattr(msg, key).CopyFrom(latency_to_pb(stats))
    return msg


def _prediction_to_pb(p: Prediction) -> pb.Prediction:
    msg = pb.Prediction(item=p.item, label=p.label, score=p.score)
    if p.truth is not None:
        msg.truth = p.truth
    return msg


def job_result_from_pb(msg: pb.JobResult) -> JobResult:
    def opt_latency(key: str) -> LatencyStats | None:
        return latency_from_pb(getattr(msg, key)) if msg.HasField(key) else None

    return JobResult(
        job_id=msg.job_id,
        agent=msg.agent,
        model=slot_from_pb(msg.model),
        items=msg.items,
        errors=tuple(ItemError(e.item, e.reason) for e in msg.errors),
        has_labels=msg.has_labels,
        top1=msg.top1 if msg.HasField("top1") else None,
        top5=msg.top5 if msg.HasField("top5") else None,
        per_class=tuple(ClassMetrics(c.label, c.precision, c.recall, c.f1, c.support) for c in msg.per_class),
        predictions=tuple(
            Prediction(p.item, p.label, p.score, p.truth if p.HasField("truth") else None) for p in msg.predictions
        ),
        batch_size=msg.batch_size,
        warmup=msg.warmup,
        iterations=msg.iterations,
        latency=latency_from_pb(msg.latency),
        host_to_device=opt_latency("host_to_device"),
        compute=opt_latency("compute"),
        device_to_host=opt_latency("device_to_host"),
        throughput=msg.throughput,
        wall_s=msg.wall_s,
        started_at=msg.started_at,
        telemetry=tuple(telemetry_from_pb(t) for t in msg.telemetry),
    )
