from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Step(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_UNSPECIFIED: _ClassVar[Step]
    STEP_STAGE: _ClassVar[Step]
    STEP_VERIFY: _ClassVar[Step]
    STEP_BUILD: _ClassVar[Step]
    STEP_SMOKE_TEST: _ClassVar[Step]
    STEP_ACTIVATE: _ClassVar[Step]

class DeploymentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOYMENT_STATE_UNSPECIFIED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_RUNNING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_ACTIVE: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_ROLLED_BACK: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_FAILED: _ClassVar[DeploymentState]
STEP_UNSPECIFIED: Step
STEP_STAGE: Step
STEP_VERIFY: Step
STEP_BUILD: Step
STEP_SMOKE_TEST: Step
STEP_ACTIVATE: Step
DEPLOYMENT_STATE_UNSPECIFIED: DeploymentState
DEPLOYMENT_STATE_RUNNING: DeploymentState
DEPLOYMENT_STATE_ACTIVE: DeploymentState
DEPLOYMENT_STATE_ROLLED_BACK: DeploymentState
DEPLOYMENT_STATE_FAILED: DeploymentState

class ArtifactRef(_message.Message):
    __slots__ = ("sha256", "size")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size: int
    def __init__(self, sha256: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class SignedManifest(_message.Message):
    __slots__ = ("payload", "signature", "key_id")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    key_id: str
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class PreprocessSpec(_message.Message):
    __slots__ = ("height", "width", "channels", "mean", "std", "labels")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    channels: int
    mean: _containers.RepeatedScalarFieldContainer[float]
    std: _containers.RepeatedScalarFieldContainer[float]
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., channels: _Optional[int] = ..., mean: _Optional[_Iterable[float]] = ..., std: _Optional[_Iterable[float]] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelSpec(_message.Message):
    __slots__ = ("model", "version", "precision", "onnx", "preprocess", "test_set", "reference_accuracy")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    ONNX_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    TEST_SET_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    precision: str
    onnx: ArtifactRef
    preprocess: PreprocessSpec
    test_set: ArtifactRef
    reference_accuracy: float
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., precision: _Optional[str] = ..., onnx: _Optional[_Union[ArtifactRef, _Mapping]] = ..., preprocess: _Optional[_Union[PreprocessSpec, _Mapping]] = ..., test_set: _Optional[_Union[ArtifactRef, _Mapping]] = ..., reference_accuracy: _Optional[float] = ...) -> None: ...

class ModelSlot(_message.Message):
    __slots__ = ("spec", "backend", "engine_fingerprint", "activated_at", "smoke_accuracy")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    SMOKE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    spec: ModelSpec
    backend: str
    engine_fingerprint: str
    activated_at: float
    smoke_accuracy: float
    def __init__(self, spec: _Optional[_Union[ModelSpec, _Mapping]] = ..., backend: _Optional[str] = ..., engine_fingerprint: _Optional[str] = ..., activated_at: _Optional[float] = ..., smoke_accuracy: _Optional[float] = ...) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("hostname", "board", "device_class", "is_jetson", "l4t_release", "jetpack", "power_mode", "cpu_model", "cpu_count", "memory_total_mb", "gpu_name", "compute_capability", "cuda_version", "tensorrt_version", "onnxruntime_version", "os_release", "kernel", "python", "agent_version")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    BOARD_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    IS_JETSON_FIELD_NUMBER: _ClassVar[int]
    L4T_RELEASE_FIELD_NUMBER: _ClassVar[int]
    JETPACK_FIELD_NUMBER: _ClassVar[int]
    POWER_MODE_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_MB_FIELD_NUMBER: _ClassVar[int]
    GPU_NAME_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    CUDA_VERSION_FIELD_NUMBER: _ClassVar[int]
    TENSORRT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ONNXRUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    OS_RELEASE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    PYTHON_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    board: str
    device_class: str
    is_jetson: bool
    l4t_release: str
    jetpack: str
    power_mode: str
    cpu_model: str
    cpu_count: int
    memory_total_mb: int
    gpu_name: str
    compute_capability: str
    cuda_version: str
    tensorrt_version: str
    onnxruntime_version: str
    os_release: str
    kernel: str
    python: str
    agent_version: str
    def __init__(self, hostname: _Optional[str] = ..., board: _Optional[str] = ..., device_class: _Optional[str] = ..., is_jetson: bool = ..., l4t_release: _Optional[str] = ..., jetpack: _Optional[str] = ..., power_mode: _Optional[str] = ..., cpu_model: _Optional[str] = ..., cpu_count: _Optional[int] = ..., memory_total_mb: _Optional[int] = ..., gpu_name: _Optional[str] = ..., compute_capability: _Optional[str] = ..., cuda_version: _Optional[str] = ..., tensorrt_version: _Optional[str] = ..., onnxruntime_version: _Optional[str] = ..., os_release: _Optional[str] = ..., kernel: _Optional[str] = ..., python: _Optional[str] = ..., agent_version: _Optional[str] = ...) -> None: ...

class TelemetrySample(_message.Message):
    __slots__ = ("timestamp", "source", "ram_used_mb", "ram_total_mb", "cpu_percent", "cpu_core_percent", "gpu_percent", "temperatures_c", "power_mw")
    class TemperaturesCEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class PowerMwEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RAM_USED_MB_FIELD_NUMBER: _ClassVar[int]
    RAM_TOTAL_MB_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CPU_CORE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    GPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURES_C_FIELD_NUMBER: _ClassVar[int]
    POWER_MW_FIELD_NUMBER: _ClassVar[int]
    timestamp: float
    source: str
    ram_used_mb: float
    ram_total_mb: float
    cpu_percent: float
    cpu_core_percent: _containers.RepeatedScalarFieldContainer[float]
    gpu_percent: float
    temperatures_c: _containers.ScalarMap[str, float]
    power_mw: _containers.ScalarMap[str, float]
    def __init__(self, timestamp: _Optional[float] = ..., source: _Optional[str] = ..., ram_used_mb: _Optional[float] = ..., ram_total_mb: _Optional[float] = ..., cpu_percent: _Optional[float] = ..., cpu_core_percent: _Optional[_Iterable[float]] = ..., gpu_percent: _Optional[float] = ..., temperatures_c: _Optional[_Mapping[str, float]] = ..., power_mw: _Optional[_Mapping[str, float]] = ...) -> None: ...

class LatencyStats(_message.Message):
    __slots__ = ("count", "min_ms", "mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    P90_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    count: int
    min_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    def __init__(self, count: _Optional[int] = ..., min_ms: _Optional[float] = ..., mean_ms: _Optional[float] = ..., median_ms: _Optional[float] = ..., p90_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., max_ms: _Optional[float] = ...) -> None: ...

class ClassMetrics(_message.Message):
    __slots__ = ("label", "precision", "recall", "f1", "support")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    label: str
    precision: float
    recall: float
    f1: float
    support: int
    def __init__(self, label: _Optional[str] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ..., support: _Optional[int] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("item", "label", "score", "truth")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TRUTH_FIELD_NUMBER: _ClassVar[int]
    item: str
    label: int
    score: float
    truth: int
    def __init__(self, item: _Optional[str] = ..., label: _Optional[int] = ..., score: _Optional[float] = ..., truth: _Optional[int] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("item", "reason")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    item: str
    reason: str
    def __init__(self, item: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("job_id", "agent", "model", "items", "errors", "has_labels", "top1", "top5", "per_class", "predictions", "batch_size", "warmup", "iterations", "latency", "host_to_device", "compute", "device_to_host", "throughput", "wall_s", "started_at", "telemetry")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    HAS_LABELS_FIELD_NUMBER: _ClassVar[int]
    TOP1_FIELD_NUMBER: _ClassVar[int]
    TOP5_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    HOST_TO_DEVICE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TO_HOST_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    agent: str
    model: ModelSlot
    items: int
    errors: _containers.RepeatedCompositeFieldContainer[ItemError]
    has_labels: bool
    top1: float
    top5: float
    per_class: _containers.RepeatedCompositeFieldContainer[ClassMetrics]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    batch_size: int
    warmup: int
    iterations: int
    latency: LatencyStats
    host_to_device: LatencyStats
    compute: LatencyStats
    device_to_host: LatencyStats
    throughput: float
    wall_s: float
    started_at: float
    telemetry: _containers.RepeatedCompositeFieldContainer[TelemetrySample]
    def __init__(self, job_id: _Optional[str] = ..., agent: _Optional[str] = ..., model: _Optional[_Union[ModelSlot, _Mapping]] = ..., items: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[ItemError, _Mapping]]] = ..., has_labels: bool = ..., top1: _Optional[float] = ..., top5: _Optional[float] = ..., per_class: _Optional[_Iterable[_Union[ClassMetrics, _Mapping]]] = ..., predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., batch_size: _Optional[int] = ..., warmup: _Optional[int] = ..., iterations: _Optional[int] = ..., latency: _Optional[_Union[LatencyStats, _Mapping]] = ..., host_to_device: _Optional[_Union[LatencyStats, _Mapping]] = ..., compute: _Optional[_Union[LatencyStats, _Mapping]] = ..., device_to_host: _Optional[_Union[LatencyStats, _Mapping]] = ..., throughput: _Optional[float] = ..., wall_s: _Optional[float] = ..., started_at: _Optional[float] = ..., telemetry: _Optional[_Iterable[_Union[TelemetrySample, _Mapping]]] = ...) -> None: ...

class DeploymentRecord(_message.Message):
    __slots__ = ("deployment_id", "agent", "spec", "state", "failed_step", "reason", "started_at", "finished_at", "rollback", "engine_cached", "build_s", "smoke_accuracy", "previous", "code")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILED_STEP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    ENGINE_CACHED_FIELD_NUMBER: _ClassVar[int]
    BUILD_S_FIELD_NUMBER: _ClassVar[int]
    SMOKE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    agent: str
    spec: ModelSpec
    state: DeploymentState
    failed_step: Step
    reason: str
    started_at: float
    finished_at: float
    rollback: bool
    engine_cached: bool
    build_s: float
    smoke_accuracy: float
    previous: ModelSlot
    code: str
    def __init__(self, deployment_id: _Optional[str] = ..., agent: _Optional[str] = ..., spec: _Optional[_Union[ModelSpec, _Mapping]] = ..., state: _Optional[_Union[DeploymentState, str]] = ..., failed_step: _Optional[_Union[Step, str]] = ..., reason: _Optional[str] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., rollback: bool = ..., engine_cached: bool = ..., build_s: _Optional[float] = ..., smoke_accuracy: _Optional[float] = ..., previous: _Optional[_Union[ModelSlot, _Mapping]] = ..., code: _Optional[str] = ...) -> None: ...
