"""The agent's gRPC servicer: decode, call the agent's plain functions, encode.

Long operations (deploy, rollback, jobs) run on their own thread and stream
progress through a queue, so a client that disconnects does not cancel a
deployment halfway: it finishes, and its record waits in the history for
whoever asks next.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from jetfleet.agent.errors import FAILED_PRECONDITION, INVALID_ARGUMENT, PERMISSION_DENIED, AgentError
from jetfleet.agent.store import IncompleteUpload
from jetfleet.common import pki
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import Step
from jetfleet.common.manifest import Manifest, ManifestError, SignedManifest
from jetfleet.common.manifest import verify as verify_manifest
from jetfleet.proto import convert
from jetfleet.proto.rpc import peer_certificate, status_code
from jetfleet.proto.v1 import agent_pb2 as apb
from jetfleet.proto.v1 import agent_pb2_grpc, common_pb2

if TYPE_CHECKING:
    from jetfleet.agent.daemon import Agent

log = logging.getLogger(__name__)
T = TypeVar("T")
_DONE = object()


# Why a manifest was refused -> the status the controller sees: PERMISSION_DENIED is permanent (never
# retried), FAILED_PRECONDITION says the request may succeed once something changes (a fresh signature).
_MANIFEST_CODES = {
    "expired": FAILED_PRECONDITION,
    "not-yet-valid": FAILED_PRECONDITION,
    "downgrade": FAILED_PRECONDITION,
}


def _abort(context: grpc.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, ManifestError):
        code = _MANIFEST_CODES.get(exc.reason, PERMISSION_DENIED)
        context.abort(status_code(code), f"manifest rejected ({exc.reason}): {exc}")
    code = exc.code if isinstance(exc, AgentError) else INVALID_ARGUMENT
    context.abort(status_code(code), str(exc))


def handled(method: Callable[..., T]) -> Callable[..., T]:
    """Only the controller may call; user-fixable errors become a gRPC status carrying their message."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        self.check_caller(context)
        try:
            return method(self, request, context)
        except JetfleetError as exc:
            _abort(context, exc)
            raise  # unreachable: abort raises

    return wrapper


def _streamed(work: Callable[[Callable[[Any], None]], Any], context: grpc.ServicerContext) -> Iterator[Any]:
    """Run ``work(emit)`` on a thread; yield what it emits, then ("result", value) or ("error", exc).

    When the client goes away the generator stops waiting (its server thread
    is freed) while the work carries on to its end.
    """
    q: queue.Queue[Any] = queue.Queue()

    def target() -> None:
        try:
            q.put(("result", work(q.put)))
        except BaseException as exc:
            q.put(("error", exc))
        q.put(_DONE)

    threading.Thread(target=target, name="agent-op", daemon=True).start()
    while True:
        try:
            item = q.get(timeout=1.0)
        except queue.Empty:
            if not context.is_active():
                return
            continue
        if item is _DONE:
            return
        yield item


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def check_caller(self, context: grpc.ServicerContext) -> None:
        """With mutual TLS, the caller must hold the controller's certificate (the TLS layer checked the CA)."""
        if self.agent.identity is None:
            return  # --insecure: plaintext, nobody to check
        pem = peer_certificate(context)
        try:
            identity = pki.identity_of(pem) if pem else None
        except pki.PKIError:
            identity = None
        if identity is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a client certificate from the fleet CA is required")
        if identity.role != "controller":  # type: ignore[union-attr]
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{identity} may not call a device; only the controller")

    def verify(self, signed: common_pb2.SignedManifest | None, model: str | None = None) -> Manifest | None:
        """The verified manifest (None when this agent runs unenrolled with --insecure and none was sent).

        ``model`` names the model an accepted version applies to when the
        caller knows it before parsing (a rollback request); otherwise it is the
        manifest's own, checked after the signature.
        """
        key = self.agent.manifest_key
        present = signed is not None and (signed.payload or signed.signature)
        if key is None and not present:
            return None
        if key is None:
            raise AgentError(FAILED_PRECONDITION, "this agent has no pinned manifest key; enroll it first")
        sm = SignedManifest(signed.payload, signed.signature, signed.key_id) if present else None  # type: ignore[union-attr]
        device_class, name = self.agent.device.device_class, self.agent.name
        check = {"device_class": device_class, "device": name}
        probe = verify_manifest(sm, key, accepted_version=None, **check)  # type: ignore[arg-type]
        floor = self.agent.manager.accepted_version(model or probe.model)
        return verify_manifest(sm, key, accepted_version=floor, **check)  # type: ignore[arg-type]

    @handled
    def GetUploadOffset(self, request: apb.UploadOffsetRequest, context: grpc.ServicerContext) -> apb.UploadOffset:
        ref = _required_artifact(request.artifact)
        state = self.agent.store.offset(ref)
        return apb.UploadOffset(present=state.present, offset=state.offset)

    def UploadArtifact(self, request_iterator: Iterator[apb.UploadChunk], context: grpc.ServicerContext) -> Any:
        self.check_caller(context)
        try:
            return self._upload(request_iterator)
        except IncompleteUpload as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except JetfleetError as exc:
            _abort(context, exc)

    def _upload(self, chunks: Iterator[apb.UploadChunk]) -> apb.UploadResult:
        first = next(chunks, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise AgentError(INVALID_ARGUMENT, "an upload must start with a header message")
        ref = _required_artifact(first.header.artifact)
        manifest = self.verify(first.header.manifest if first.header.HasField("manifest") else None)
        if manifest is not None and not manifest.covers(ref.sha256, ref.size):
            raise AgentError(
                PERMISSION_DENIED, f"artifact {ref.short} is not part of the signed manifest for {manifest.model}"
            )
        with self.agent.store.upload(ref, first.header.offset) as upload:
            for msg in chunks:
                if msg.WhichOneof("payload") != "data":
                    raise AgentError(INVALID_ARGUMENT, "only the first upload message may be a header")
                upload.write(msg.data)
            upload.commit()
        log.info("artifact %s: %s", ref.short, "already stored" if upload.present else f"{upload.received} bytes")
        return apb.UploadResult(artifact=first.header.artifact, deduplicated=upload.present, received=upload.received)

    def Deploy(self, request: apb.DeployRequest, context: grpc.ServicerContext) -> Iterator[apb.DeployProgress]:
        self.check_caller(context)
        if not request.deployment_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "deployment_id is required")
        try:
            spec, downgrade = self._signed_spec(request)
        except JetfleetError as exc:
            log.warning("deployment %s refused: %s", request.deployment_id, exc)
            _abort(context, exc)
        margin = request.smoke_margin if request.HasField("smoke_margin") else None
        if margin is not None and self.agent.identity is not None:
            margin = min(margin, self.agent.config.smoke_margin)  # unsigned: it may tighten the gate, never loosen it
        yield from self._deployment(
            request.deployment_id,
            context,
            lambda emit: self.agent.manager.deploy(request.deployment_id, spec, margin, emit, downgrade=downgrade),
        )

    def _signed_spec(self, request: apb.DeployRequest) -> tuple[Any, bool]:
        """The spec to deploy and whether it may go below the accepted version: the signed manifest's, or
        (unenrolled, --insecure) the request's own."""
        manifest = self.verify(request.manifest if request.HasField("manifest") else None)
        if manifest is None:
            return convert.spec_from_pb(request.spec), False
        if manifest.spec is None or manifest.deployment_id != request.deployment_id:
            raise ManifestError(
                "mismatch", f"the manifest is for deployment {manifest.deployment_id}, not {request.deployment_id}"
            )
        if manifest.purpose != "deploy":
            raise ManifestError(
                "mismatch", f"the manifest for {manifest.description} allows an upload, not a deployment"
            )
        if request.HasField("spec") and convert.spec_from_pb(request.spec) != manifest.spec:
            raise ManifestError("mismatch", "the request's model spec differs from the signed manifest's")
        return manifest.spec, manifest.rollback

    def Rollback(self, request: apb.RollbackRequest, context: grpc.ServicerContext) -> Iterator[apb.DeployProgress]:
        self.check_caller(context)
        if not request.deployment_id or not request.model:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "deployment_id and model are required")
        try:
            manifest = self.verify(request.manifest if request.HasField("manifest") else None, request.model)
            if manifest is not None and (
                not manifest.rollback
                or manifest.spec is not None  # a rollback to the device's own previous version names no spec
                or manifest.purpose != "deploy"
                or manifest.model != request.model
                or manifest.deployment_id != request.deployment_id
            ):
                raise ManifestError(
                    "mismatch",
                    f"the manifest does not sign a rollback of {request.model} for deployment {request.deployment_id}",
                )
        except JetfleetError as exc:
            log.warning("rollback %s refused: %s", request.deployment_id, exc)
            _abort(context, exc)
        yield from self._deployment(
            request.deployment_id,
            context,
            lambda emit: self.agent.manager.rollback(request.deployment_id, request.model, emit),
        )

    def _deployment(
        self, deployment_id: str, context: grpc.ServicerContext, work: Callable[[Callable[..., None]], Any]
    ) -> Iterator[apb.DeployProgress]:
        def run(put: Callable[[Any], None]) -> Any:
            outcome = work(lambda step, message, fraction: put(("progress", (step, message, fraction))))
            self.agent.report_deployment(outcome.record)  # here, not in the stream: the client may be gone
            return outcome

        for kind, value in _streamed(run, context):
            if kind == "progress":
                step, message, fraction = value
                yield apb.DeployProgress(
                    deployment_id=deployment_id, step=int(step), message=message, fraction=fraction
                )
            elif kind == "error":
                _raise_or_abort(context, value)
            else:
                yield apb.DeployProgress(
                    deployment_id=deployment_id,
                    step=int(value.record.failed_step or Step.ACTIVATE),
                    message=value.record.reason or "active",
                    fraction=1.0,
                    result=convert.record_to_pb(value.record),
                )
                if value.code != "OK":
                    context.abort(status_code(value.code), _failure_message(value.record))

    def RunJob(self, request: apb.JobRequest, context: grpc.ServicerContext) -> Iterator[apb.JobProgress]:
        self.check_caller(context)

        def run(put: Callable[[Any], None]) -> Any:
            return self.agent.run_job(request, lambda phase, done, total: put(("progress", (phase, done, total))))

        for kind, value in _streamed(run, context):
            if kind == "progress":
                phase, done, total = value
                yield apb.JobProgress(job_id=request.job_id, phase=phase, done=done, total=total)
            elif kind == "error":
                _raise_or_abort(context, value)
            else:
                yield apb.JobProgress(
                    job_id=request.job_id,
                    phase="done",
                    done=value.items,
                    total=value.items + len(value.errors),
                    result=convert.job_result_to_pb(value),
                )

    @handled
    def GetStatus(self, request: apb.StatusRequest, context: grpc.ServicerContext) -> apb.AgentStatus:
        return self.agent.status_pb(request.history)


def _raise_or_abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, JetfleetError):
        _abort(context, exc)
    raise exc


def _failure_message(record: Any) -> str:
    serving = f"; {record.previous.spec.ref} still serves" if record.previous else ""
    if record.failed_step == Step.UNSPECIFIED:  # finished by restore(): the step in flight is not known
        return f"deployment {record.deployment_id} of {record.spec.ref} did not finish: {record.reason}{serving}"
    step = Step(record.failed_step).name.lower().replace("_", " ")
    return f"deployment {record.deployment_id} of {record.spec.ref} failed at {step}: {record.reason}{serving}"


def _required_artifact(msg: Any) -> Any:
    ref = convert.artifact_from_pb(msg)
    if ref is None:
        raise AgentError(INVALID_ARGUMENT, "artifact sha256 is required")
    return ref
