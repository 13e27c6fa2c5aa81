"""The records the controller and its agents exchange, as plain dataclasses.

Handlers on both sides work with these; only :mod:`jetfleet.proto.convert`
knows the wire messages. They also are the agent's on-disk state (JSON via
``to_dict``/``from_dict``), so a restart reads back exactly what was sent.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from jetfleet.common.errors import JetfleetError
from jetfleet.common.hashing import check_sha256
from jetfleet.common.latency import LatencyStats
from jetfleet.common.metrics import ClassMetrics
from jetfleet.common.preprocess import PreprocessSpec

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ArtifactRef:
    """A content-addressed blob: its sha256 and size."""

    sha256: str
    size: int

    def __post_init__(self) -> None:
        check_sha256(self.sha256)
        if self.size < 0:
            raise JetfleetError(f"artifact {self.sha256[:12]}: negative size {self.size}")

    @property
    def short(self) -> str:
        return self.sha256[:12]


@dataclass(frozen=True)
class ModelSpec:
    """One model version in one precision: everything an agent needs to install it."""

    model: str
    version: int
    precision: str
    onnx: ArtifactRef
    preprocess: PreprocessSpec
    test_set: ArtifactRef | None = None
    reference_accuracy: float | None = None  # registry's top-1 (0-1) of this artifact on test_set

    def __post_init__(self) -> None:
        if not self.model:
            raise JetfleetError("model spec: empty model name")
        if self.precision not in PRECISIONS:
            raise JetfleetError(f"model spec: precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.version < 1:
            raise JetfleetError(f"model spec: version must be >= 1, got {self.version}")

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}/{self.precision}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        test_set = d.get("test_set")
        return cls(
            model=d["model"],
            version=int(d["version"]),
            precision=d["precision"],
            onnx=ArtifactRef(**d["onnx"]),
            preprocess=PreprocessSpec.from_dict(d["preprocess"]),
            test_set=ArtifactRef(**test_set) if test_set else None,
            reference_accuracy=d.get("reference_accuracy"),
        )


@dataclass(frozen=True)
class ModelSlot:
    """A model an agent serves or served, with the engine it runs on."""

    spec: ModelSpec
    backend: str
    engine_fingerprint: str
    activated_at: float
    smoke_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spec": self.spec.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSlot:
        return cls(**{**d, "spec": ModelSpec.from_dict(d["spec"])})


class Step(enum.IntEnum):
    """Activation steps in order (values match the wire enum)."""

    UNSPECIFIED = 0
    STAGE = 1
    VERIFY = 2
    BUILD = 3
    SMOKE_TEST = 4
    ACTIVATE = 5


class DeploymentState(enum.IntEnum):
    UNSPECIFIED = 0
    RUNNING = 1
    ACTIVE = 2
    ROLLED_BACK = 3
    FAILED = 4


@dataclass(frozen=True)
class DeploymentRecord:
    """What happened to one deployment (or explicit rollback) on one agent."""

    deployment_id: str
    agent: str
    spec: ModelSpec
    state: DeploymentState
    started_at: float
    finished_at: float = 0.0
    failed_step: Step = Step.UNSPECIFIED
    reason: str = ""
    rollback: bool = False
    engine_cached: bool = False
    build_s: float = 0.0
    smoke_accuracy: float | None = None
    previous: ModelSlot | None = None
    code: str = ""  # gRPC status name it ended with: "OK" when active; tells transient from permanent failures

    def finish(self, state: DeploymentState, finished_at: float, **changes: Any) -> DeploymentRecord:
        return replace(self, state=state, finished_at=finished_at, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            spec=self.spec.to_dict(),
            state=self.state.name,
            failed_step=self.failed_step.name,
            previous=self.previous.to_dict() if self.previous else None,
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeploymentRecord:
        return cls(
            **{
                **d,
                "spec": ModelSpec.from_dict(d["spec"]),
                "state": DeploymentState[d["state"]],
                "failed_step": Step[d["failed_step"]],
                "previous": ModelSlot.from_dict(d["previous"]) if d.get("previous") else None,
            }
        )


@dataclass(frozen=True)
class ItemError:
    item: str
    reason: str


@dataclass(frozen=True)
class Prediction:
    item: str
    label: int
    score: float
    truth: int | None = None


@dataclass(frozen=True)
class JobResult:
    """What a classification job measured on a device (trtexec/MLPerf fields)."""

    job_id: str
    agent: str
    model: ModelSlot
    items: int
    batch_size: int
    warmup: int
    iterations: int
    latency: LatencyStats
    throughput: float
    wall_s: float
    started_at: float
    errors: tuple[ItemError, ...] = ()
    has_labels: bool = False
    top1: float | None = None
    top5: float | None = None
    per_class: tuple[ClassMetrics, ...] = ()
    predictions: tuple[Prediction, ...] = ()
    host_to_device: LatencyStats | None = None
    compute: LatencyStats | None = None
    device_to_host: LatencyStats | None = None
    telemetry: tuple[Any, ...] = field(default=())  # TelemetrySample, sampled while the job ran

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d
