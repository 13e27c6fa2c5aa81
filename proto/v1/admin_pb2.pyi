from jetfleet.proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateEnrollmentRequest(_message.Message):
    __slots__ = ("name", "ttl_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    ttl_s: float
    def __init__(self, name: _Optional[str] = ..., ttl_s: _Optional[float] = ...) -> None: ...

class Enrollment(_message.Message):
    __slots__ = ("name", "token", "expires_at", "enroll_address", "ca_sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ENROLL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CA_SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    token: str
    expires_at: float
    enroll_address: str
    ca_sha256: str
    def __init__(self, name: _Optional[str] = ..., token: _Optional[str] = ..., expires_at: _Optional[float] = ..., enroll_address: _Optional[str] = ..., ca_sha256: _Optional[str] = ...) -> None: ...

class RevokeDeviceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RevokeDeviceResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    def __init__(self, revoked: _Optional[int] = ...) -> None: ...

class DeviceView(_message.Message):
    __slots__ = ("name", "address", "device", "tags", "backends", "active", "liveness", "last_seen", "heartbeats", "telemetry", "registered_at")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEATS_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    device: _common_pb2.DeviceInfo
    tags: _containers.ScalarMap[str, str]
    backends: _containers.RepeatedScalarFieldContainer[str]
    active: _containers.RepeatedCompositeFieldContainer[_common_pb2.ModelSlot]
    liveness: str
    last_seen: float
    heartbeats: int
    telemetry: _common_pb2.TelemetrySample
    registered_at: float
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., device: _Optional[_Union[_common_pb2.DeviceInfo, _Mapping]] = ..., tags: _Optional[_Mapping[str, str]] = ..., backends: _Optional[_Iterable[str]] = ..., active: _Optional[_Iterable[_Union[_common_pb2.ModelSlot, _Mapping]]] = ..., liveness: _Optional[str] = ..., last_seen: _Optional[float] = ..., heartbeats: _Optional[int] = ..., telemetry: _Optional[_Union[_common_pb2.TelemetrySample, _Mapping]] = ..., registered_at: _Optional[float] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("selector",)
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    selector: str
    def __init__(self, selector: _Optional[str] = ...) -> None: ...

class DeviceList(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceView]
    def __init__(self, devices: _Optional[_Iterable[_Union[DeviceView, _Mapping]]] = ...) -> None: ...

class TagDeviceRequest(_message.Message):
    __slots__ = ("name", "add", "remove")
    class AddEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    add: _containers.ScalarMap[str, str]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., add: _Optional[_Mapping[str, str]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveDeviceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveDeviceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FleetDeployRequest(_message.Message):
    __slots__ = ("model", "precision", "selector", "wait", "timeout_s", "rollout_id", "canary", "wave_size", "min_accuracy", "max_p99_ms", "plan")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    CANARY_FIELD_NUMBER: _ClassVar[int]
    WAVE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    MAX_P99_MS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    model: str
    precision: str
    selector: str
    wait: bool
    timeout_s: float
    rollout_id: str
    canary: int
    wave_size: int
    min_accuracy: float
    max_p99_ms: float
    plan: bool
    def __init__(self, model: _Optional[str] = ..., precision: _Optional[str] = ..., selector: _Optional[str] = ..., wait: bool = ..., timeout_s: _Optional[float] = ..., rollout_id: _Optional[str] = ..., canary: _Optional[int] = ..., wave_size: _Optional[int] = ..., min_accuracy: _Optional[float] = ..., max_p99_ms: _Optional[float] = ..., plan: bool = ...) -> None: ...

class FleetDeployEvent(_message.Message):
    __slots__ = ("rollout_id", "device", "phase", "message", "step", "fraction", "record", "spec", "engine_cached")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ENGINE_CACHED_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    device: str
    phase: str
    message: str
    step: _common_pb2.Step
    fraction: float
    record: _common_pb2.DeploymentRecord
    spec: _common_pb2.ModelSpec
    engine_cached: bool
    def __init__(self, rollout_id: _Optional[str] = ..., device: _Optional[str] = ..., phase: _Optional[str] = ..., message: _Optional[str] = ..., step: _Optional[_Union[_common_pb2.Step, str]] = ..., fraction: _Optional[float] = ..., record: _Optional[_Union[_common_pb2.DeploymentRecord, _Mapping]] = ..., spec: _Optional[_Union[_common_pb2.ModelSpec, _Mapping]] = ..., engine_cached: bool = ...) -> None: ...

class FleetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DesiredView(_message.Message):
    __slots__ = ("device", "spec", "rollout_id", "decision", "reason")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    device: str
    spec: _common_pb2.ModelSpec
    rollout_id: str
    decision: str
    reason: str
    def __init__(self, device: _Optional[str] = ..., spec: _Optional[_Union[_common_pb2.ModelSpec, _Mapping]] = ..., rollout_id: _Optional[str] = ..., decision: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class FleetStatus(_message.Message):
    __slots__ = ("devices", "desired", "recent")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceView]
    desired: _containers.RepeatedCompositeFieldContainer[DesiredView]
    recent: _containers.RepeatedCompositeFieldContainer[_common_pb2.DeploymentRecord]
    def __init__(self, devices: _Optional[_Iterable[_Union[DeviceView, _Mapping]]] = ..., desired: _Optional[_Iterable[_Union[DesiredView, _Mapping]]] = ..., recent: _Optional[_Iterable[_Union[_common_pb2.DeploymentRecord, _Mapping]]] = ...) -> None: ...

class FleetRollbackRequest(_message.Message):
    __slots__ = ("model", "selector")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    model: str
    selector: str
    def __init__(self, model: _Optional[str] = ..., selector: _Optional[str] = ...) -> None: ...

class FleetJobRequest(_message.Message):
    __slots__ = ("model", "selector", "job_id", "batch_size", "warmup", "iterations", "return_predictions", "limit")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    RETURN_PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    model: str
    selector: str
    job_id: str
    batch_size: int
    warmup: int
    iterations: int
    return_predictions: bool
    limit: int
    def __init__(self, model: _Optional[str] = ..., selector: _Optional[str] = ..., job_id: _Optional[str] = ..., batch_size: _Optional[int] = ..., warmup: _Optional[int] = ..., iterations: _Optional[int] = ..., return_predictions: bool = ..., limit: _Optional[int] = ...) -> None: ...

class FleetJobEvent(_message.Message):
    __slots__ = ("job_id", "device", "phase", "message", "done", "total", "result")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    device: str
    phase: str
    message: str
    done: int
    total: int
    result: _common_pb2.JobResult
    def __init__(self, job_id: _Optional[str] = ..., device: _Optional[str] = ..., phase: _Optional[str] = ..., message: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., result: _Optional[_Union[_common_pb2.JobResult, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("job_id", "limit")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    limit: int
    def __init__(self, job_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class JobList(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_common_pb2.JobResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_common_pb2.JobResult, _Mapping]]] = ...) -> None: ...
