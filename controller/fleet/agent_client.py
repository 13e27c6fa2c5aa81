"""The controller's client for one agent: resumable uploads, deployments, jobs, status.

Every call carries a deadline. Uploads are the one operation retried here,
and only from the offset the agent reports, which makes a retry safe by
construction (the agent verifies the whole artifact before accepting it).
Deployments and jobs are not retried blindly: a deployment id makes a repeat
harmless on the agent, but deciding to repeat belongs to the caller.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from jetfleet.common.errors import JetfleetError
from jetfleet.common.failpoints import failpoint
from jetfleet.common.fleet import ArtifactRef, DeploymentRecord, JobResult, ModelSpec, Step
from jetfleet.common.hashing import sha256_file
from jetfleet.common.manifest import SignedManifest
from jetfleet.proto import convert
from jetfleet.proto.rpc import (
    DEFAULT_CHUNK,
    DEPLOY_S,
    JOB_S,
    MAX_MESSAGE_BYTES,
    QUICK_S,
    UPLOAD_S,
    Credentials,
    make_channel,
)
from jetfleet.proto.v1 import agent_pb2 as apb
from jetfleet.proto.v1 import agent_pb2_grpc
from jetfleet.proto.v1 import common_pb2 as cpb

if TYPE_CHECKING:
    from jetfleet.controller.fleet.security import ManifestSigner

# Worth another attempt from the agent's offset: the link or the agent went away, not the data.
RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
RESUMABLE_UPLOAD = RESUMABLE | {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}


class AgentCallError(JetfleetError):
    """An agent refused or failed a call; ``code`` is the gRPC status."""

    def __init__(self, agent: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{agent}: {details} ({code.name})")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class UploadOutcome:
    artifact: ArtifactRef
    deduplicated: bool  # the agent had it already
    sent: int  # bytes sent over all attempts
    offsets: tuple[int, ...]  # where each attempt started (the agent's staged size at the time)


@dataclass(frozen=True)
class DeployOutcome:
    record: DeploymentRecord
    code: grpc.StatusCode  # OK when the model is active
    details: str

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK


UploadProgress = Callable[[int, int], None]  # (bytes at the agent, total)
DeployProgressFn = Callable[[Step, str, float], None]
JobProgressFn = Callable[[str, int, int], None]


class AgentClient:
    """One agent's client: mutual TLS with ``credentials`` (the device's certificate must carry ``name``),
    and manifests signed by ``signer`` for ``device_class`` on every upload, deployment and rollback.

    Without credentials it speaks plaintext, and without a signer it sends no
    manifests: what an unenrolled agent started with ``--insecure`` accepts.
    """

    def __init__(
        self,
        address: str,
        name: str | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
        credentials: Credentials | None = None,
        signer: ManifestSigner | None = None,
        device_class: str | None = None,
    ) -> None:
        self.address = address
        self.name = name or address
        self.channel = make_channel(address, max_bytes, credentials, server_name=self.name)
        self.stub = agent_pb2_grpc.AgentServiceStub(self.channel)
        self.signer = signer
        self._device_class = device_class

    @property
    def device_class(self) -> str:
        """The class manifests are signed for; asked of the agent once when the caller did not say."""
        if self._device_class is None:
            self._device_class = self.status(history=0).device.device_class
        return self._device_class

    def sign(
        self, spec: ModelSpec, deployment_id: str, rollback: bool = False, purpose: str = "deploy"
    ) -> cpb.SignedManifest | None:
        """A manifest for ``spec`` on this device (None without a signer); ``purpose="upload"`` only lets bytes in."""
        if self.signer is None:
            return None
        return _manifest_pb(self.signer.deploy(deployment_id, spec, self.name, self.device_class, rollback, purpose))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, exc: grpc.RpcError) -> AgentCallError:
        return AgentCallError(self.name, exc.code(), exc.details() or "")

    # -- status -----------------------------------------------------------
    def status(self, history: int = 20, timeout: float = QUICK_S) -> apb.AgentStatus:
        try:
            return self.stub.GetStatus(apb.StatusRequest(history=history), timeout=timeout)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc

    def offset(self, ref: ArtifactRef, timeout: float = QUICK_S) -> apb.UploadOffset:
        try:
            return self.stub.GetUploadOffset(
                apb.UploadOffsetRequest(artifact=convert.artifact_to_pb(ref)), timeout=timeout
            )
        except grpc.RpcError as exc:
            raise self._error(exc) from exc

    # -- upload -----------------------------------------------------------
    def upload(
        self,
        path: Path,
        ref: ArtifactRef | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        progress: UploadProgress | None = None,
        attempts: int = 8,
        timeout: float = UPLOAD_S,
        manifest: cpb.SignedManifest | None = None,
    ) -> UploadOutcome:
        """Send ``path`` (hashed here unless ``ref`` is given), resuming from the agent's offset on failure.

        ``manifest`` must cover the artifact: an enrolled agent accepts no byte without one.
        """
        if ref is None:
            ref = ArtifactRef(*sha256_file(path))
        sent, offsets = 0, []
        for attempt in range(1, attempts + 1):
            state = self.offset(ref)
            if state.present:
                return UploadOutcome(ref, not offsets, sent, tuple(offsets))
            offsets.append(state.offset)
            counter = _Counter()
            try:
                self.stub.UploadArtifact(
                    _chunks(path, ref, state.offset, chunk_size, counter, progress, manifest), timeout=timeout
                )
                return UploadOutcome(ref, False, sent + counter.bytes, tuple(offsets))
            except grpc.RpcError as exc:
                sent += counter.bytes
                if exc.code() not in RESUMABLE_UPLOAD or attempt == attempts:
                    raise self._error(exc) from exc
                # ABORTED: a previous stream of ours still holds the artifact until the agent's keepalive
                # notices the dead connection (~30 s); a broken link needs much less.
                time.sleep(min(8.0, 0.5 * 2**attempt) if exc.code() == grpc.StatusCode.ABORTED else 0.1 * 2**attempt)
        raise AssertionError("unreachable")

    # -- deployments --------------------------------------------------------
    def deploy(
        self,
        spec: ModelSpec,
        deployment_id: str | None = None,
        smoke_margin: float | None = None,
        progress: DeployProgressFn | None = None,
        timeout: float = DEPLOY_S,
        manifest: cpb.SignedManifest | None = None,
        rollback: bool = False,
    ) -> DeployOutcome:
        """Activate ``spec`` (its artifacts uploaded first); the outcome carries the agent's record.

        ``manifest`` defaults to one signed here; ``rollback`` signs it as an
        explicit rollback, allowed below the version the agent accepted last.
        """
        deployment_id = deployment_id or uuid.uuid4().hex
        request = apb.DeployRequest(deployment_id=deployment_id, spec=convert.spec_to_pb(spec))
        if smoke_margin is not None:
            request.smoke_margin = smoke_margin
        manifest = manifest or self.sign(spec, deployment_id, rollback)
        if manifest is not None:
            request.manifest.CopyFrom(manifest)
        return self._deployment(self.stub.Deploy(request, timeout=timeout), progress)

    def rollback(
        self,
        model: str,
        deployment_id: str | None = None,
        progress: DeployProgressFn | None = None,
        timeout: float = DEPLOY_S,
    ) -> DeployOutcome:
        request = apb.RollbackRequest(deployment_id=deployment_id or uuid.uuid4().hex, model=model)
        if self.signer is not None:
            signed = self.signer.rollback(request.deployment_id, model, self.name, self.device_class)
            request.manifest.CopyFrom(_manifest_pb(signed))
        return self._deployment(self.stub.Rollback(request, timeout=timeout), progress)

    def _deployment(self, stream: Iterator[apb.DeployProgress], progress: DeployProgressFn | None) -> DeployOutcome:
        record: DeploymentRecord | None = None
        try:
            for msg in stream:
                if msg.HasField("result"):
                    record = convert.record_from_pb(msg.result)
                elif progress is not None:
                    progress(Step(msg.step), msg.message, msg.fraction)
        except grpc.RpcError as exc:
            if record is None:
                raise self._error(exc) from exc
            return DeployOutcome(record, exc.code(), exc.details() or "")
        if record is None:
            raise AgentCallError(self.name, grpc.StatusCode.INTERNAL, "deployment stream ended without a result")
        return DeployOutcome(record, grpc.StatusCode.OK, "")

    def push(
        self,
        spec: ModelSpec,
        files: dict[str, Path],
        chunk_size: int = DEFAULT_CHUNK,
        deployment_id: str | None = None,
        rollback: bool = False,
        **deploy: Any,
    ) -> DeployOutcome:
        """Upload the spec's artifacts (skipping those the agent has) and deploy it, all under one manifest."""
        deployment_id = deployment_id or uuid.uuid4().hex
        manifest = self.sign(spec, deployment_id, rollback)
        for ref in (spec.onnx, spec.test_set):
            if ref is not None:
                self.upload(files[ref.sha256], ref, chunk_size, manifest=manifest)
        failpoint("controller.push.uploaded")  # artifacts on the device, deployment not yet asked for
        return self.deploy(spec, deployment_id=deployment_id, manifest=manifest, **deploy)

    # -- jobs -------------------------------------------------------------------
    def run_job(
        self,
        model: str = "",
        test_set: ArtifactRef | None = None,
        folder: str | None = None,
        images: list[tuple[str, bytes, int | None]] | None = None,
        batch_size: int = 32,
        warmup: int = 2,
        iterations: int = 0,
        return_predictions: bool = False,
        limit: int = 0,
        job_id: str | None = None,
        progress: JobProgressFn | None = None,
        timeout: float = JOB_S,
    ) -> JobResult:
        """Run a classification job on exactly one input (a test set, a folder on the device, or images)."""
        if sum(x is not None for x in (test_set, folder, images)) != 1:
            raise JetfleetError("a job needs exactly one input: a test set, a folder or images")
        request = apb.JobRequest(
            job_id=job_id or uuid.uuid4().hex,
            model=model,
            batch_size=batch_size,
            warmup=warmup,
            iterations=iterations,
            return_predictions=return_predictions,
            limit=limit,
        )
        if test_set is not None:
            request.test_set.CopyFrom(convert.artifact_to_pb(test_set))
        elif folder is not None:
            request.folder = folder
        else:
            for name, data, label in images or []:
                item = request.images.images.add(name=name, data=data)
                if label is not None:
                    item.label = label
        try:
            for msg in self.stub.RunJob(request, timeout=timeout):
                if msg.HasField("result"):
                    return convert.job_result_from_pb(msg.result)
                if progress is not None:
                    progress(msg.phase, msg.done, msg.total)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        raise AgentCallError(self.name, grpc.StatusCode.INTERNAL, "job stream ended without a result")


def _manifest_pb(signed: SignedManifest) -> cpb.SignedManifest:
    return cpb.SignedManifest(payload=signed.payload, signature=signed.signature, key_id=signed.key_id)


class _Counter:
    bytes = 0


def _chunks(
    path: Path,
    ref: ArtifactRef,
    offset: int,
    size: int,
    counter: _Counter,
    progress: UploadProgress | None,
    manifest: cpb.SignedManifest | None = None,
) -> Iterator[apb.UploadChunk]:
    """A header, then the file from ``offset`` in ``size`` pieces: one chunk in memory at a time."""
    header = apb.UploadHeader(artifact=convert.artifact_to_pb(ref), offset=offset)
    if manifest is not None:
        header.manifest.CopyFrom(manifest)
    yield apb.UploadChunk(header=header)
    with open(path, "rb") as fh:
        fh.seek(offset)
        while data := fh.read(size):
            counter.bytes += len(data)
            yield apb.UploadChunk(data=data)
            if progress is not None:
                progress(offset + counter.bytes, ref.size)
