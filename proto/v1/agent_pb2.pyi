from jetfleet.proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadOffsetRequest(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: _common_pb2.ArtifactRef
    def __init__(self, artifact: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class UploadOffset(_message.Message):
    __slots__ = ("present", "offset")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    present: bool
    offset: int
    def __init__(self, present: bool = ..., offset: _Optional[int] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("artifact", "offset", "manifest")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    artifact: _common_pb2.ArtifactRef
    offset: int
    manifest: _common_pb2.SignedManifest
    def __init__(self, artifact: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., offset: _Optional[int] = ..., manifest: _Optional[_Union[_common_pb2.SignedManifest, _Mapping]] = ...) -> None: ...

class UploadChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadResult(_message.Message):
    __slots__ = ("artifact", "deduplicated", "received")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    artifact: _common_pb2.ArtifactRef
    deduplicated: bool
    received: int
    def __init__(self, artifact: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., deduplicated: bool = ..., received: _Optional[int] = ...) -> None: ...

class DeployRequest(_message.Message):
    __slots__ = ("deployment_id", "spec", "smoke_margin", "manifest")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SMOKE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    spec: _common_pb2.ModelSpec
    smoke_margin: float
    manifest: _common_pb2.SignedManifest
    def __init__(self, deployment_id: _Optional[str] = ..., spec: _Optional[_Union[_common_pb2.ModelSpec, _Mapping]] = ..., smoke_margin: _Optional[float] = ..., manifest: _Optional[_Union[_common_pb2.SignedManifest, _Mapping]] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("deployment_id", "model", "manifest")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    model: str
    manifest: _common_pb2.SignedManifest
    def __init__(self, deployment_id: _Optional[str] = ..., model: _Optional[str] = ..., manifest: _Optional[_Union[_common_pb2.SignedManifest, _Mapping]] = ...) -> None: ...

class DeployProgress(_message.Message):
    __slots__ = ("deployment_id", "step", "message", "fraction", "result")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    step: _common_pb2.Step
    message: str
    fraction: float
    result: _common_pb2.DeploymentRecord
    def __init__(self, deployment_id: _Optional[str] = ..., step: _Optional[_Union[_common_pb2.Step, str]] = ..., message: _Optional[str] = ..., fraction: _Optional[float] = ..., result: _Optional[_Union[_common_pb2.DeploymentRecord, _Mapping]] = ...) -> None: ...

class InlineImage(_message.Message):
    __slots__ = ("name", "data", "label")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: bytes
    label: int
    def __init__(self, name: _Optional[str] = ..., data: _Optional[bytes] = ..., label: _Optional[int] = ...) -> None: ...

class InlineImages(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[InlineImage]
    def __init__(self, images: _Optional[_Iterable[_Union[InlineImage, _Mapping]]] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("job_id", "model", "test_set", "folder", "images", "batch_size", "warmup", "iterations", "return_predictions", "limit")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEST_SET_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    RETURN_PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    model: str
    test_set: _common_pb2.ArtifactRef
    folder: str
    images: InlineImages
    batch_size: int
    warmup: int
    iterations: int
    return_predictions: bool
    limit: int
    def __init__(self, job_id: _Optional[str] = ..., model: _Optional[str] = ..., test_set: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., folder: _Optional[str] = ..., images: _Optional[_Union[InlineImages, _Mapping]] = ..., batch_size: _Optional[int] = ..., warmup: _Optional[int] = ..., iterations: _Optional[int] = ..., return_predictions: bool = ..., limit: _Optional[int] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("job_id", "phase", "done", "total", "result")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    phase: str
    done: int
    total: int
    result: _common_pb2.JobResult
    def __init__(self, job_id: _Optional[str] = ..., phase: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., result: _Optional[_Union[_common_pb2.JobResult, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("history",)
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    history: int
    def __init__(self, history: _Optional[int] = ...) -> None: ...

class StoredArtifact(_message.Message):
    __slots__ = ("artifact", "stored_at")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    STORED_AT_FIELD_NUMBER: _ClassVar[int]
    artifact: _common_pb2.ArtifactRef
    stored_at: float
    def __init__(self, artifact: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., stored_at: _Optional[float] = ...) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("name", "agent_version", "device", "telemetry", "active", "history", "backends", "artifacts", "store_bytes", "disk_free_bytes", "tags", "controller_connected", "started_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    STORE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    agent_version: str
    device: _common_pb2.DeviceInfo
    telemetry: _common_pb2.TelemetrySample
    active: _containers.RepeatedCompositeFieldContainer[_common_pb2.ModelSlot]
    history: _containers.RepeatedCompositeFieldContainer[_common_pb2.DeploymentRecord]
    backends: _containers.RepeatedScalarFieldContainer[str]
    artifacts: _containers.RepeatedCompositeFieldContainer[StoredArtifact]
    store_bytes: int
    disk_free_bytes: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    controller_connected: bool
    started_at: float
    def __init__(self, name: _Optional[str] = ..., agent_version: _Optional[str] = ..., device: _Optional[_Union[_common_pb2.DeviceInfo, _Mapping]] = ..., telemetry: _Optional[_Union[_common_pb2.TelemetrySample, _Mapping]] = ..., active: _Optional[_Iterable[_Union[_common_pb2.ModelSlot, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[_common_pb2.DeploymentRecord, _Mapping]]] = ..., backends: _Optional[_Iterable[str]] = ..., artifacts: _Optional[_Iterable[_Union[StoredArtifact, _Mapping]]] = ..., store_bytes: _Optional[int] = ..., disk_free_bytes: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., controller_connected: bool = ..., started_at: _Optional[float] = ...) -> None: ...
