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

from jetfleet.agent.errors import INVALID_ARGUMENT, AgentError
from jetfleet.agent.store import IncompleteUpload
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import Step
from jetfleet.proto import convert
from jetfleet.proto.rpc import status_code
from jetfleet.proto.v1 import agent_pb2 as apb
from jetfleet.proto.v1 import agent_pb2_grpc

if TYPE_CHECKING:
    from jetfleet.agent.daemon import Agent

log = logging.getLogger(__name__)
T = TypeVar("T")
_DONE = object()


def _abort(context: grpc.ServicerContext, exc: Exception) -> None:
    code = exc.code if isinstance(exc, AgentError) else INVALID_ARGUMENT
    context.abort(status_code(code), str(exc))


def handled(method: Callable[..., T]) -> Callable[..., T]:
    """Turn user-fixable errors into a gRPC status carrying their message."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
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

    @handled
    def GetUploadOffset(self, request: apb.UploadOffsetRequest, context: grpc.ServicerContext) -> apb.UploadOffset:
        ref = _required_artifact(request.artifact)
        state = self.agent.store.offset(ref)
        return apb.UploadOffset(present=state.present, offset=state.offset)

    def UploadArtifact(self, request_iterator: Iterator[apb.UploadChunk], context: grpc.ServicerContext) -> Any:
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
        with self.agent.store.upload(ref, first.header.offset) as upload:
            for msg in chunks:
                if msg.WhichOneof("payload") != "data":
                    raise AgentError(INVALID_ARGUMENT, "only the first upload message may be a header")
                upload.write(msg.data)
            upload.commit()
        log.info("artifact %s: %s", ref.short, "already stored" if upload.present else f"{upload.received} bytes")
        return apb.UploadResult(artifact=first.header.artifact, deduplicated=upload.present, received=upload.received)

    def Deploy(self, request: apb.DeployRequest, context: grpc.ServicerContext) -> Iterator[apb.DeployProgress]:
        try:
            spec = convert.spec_from_pb(request.spec)
        except JetfleetError as exc:
            _abort(context, exc)
        if not request.deployment_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "deployment_id is required")
        margin = request.smoke_margin if request.HasField("smoke_margin") else None
        yield from self._deployment(
            request.deployment_id,
            context,
            lambda emit: self.agent.manager.deploy(request.deployment_id, spec, margin, emit),
        )

    def Rollback(self, request: apb.RollbackRequest, context: grpc.ServicerContext) -> Iterator[apb.DeployProgress]:
        if not request.deployment_id or not request.model:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "deployment_id and model are required")
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
    step = Step(record.failed_step).name.lower().replace("_", " ")
    serving = f"; {record.previous.spec.ref} still serves" if record.previous else ""
    return f"deployment {record.deployment_id} of {record.spec.ref} failed at {step}: {record.reason}{serving}"


def _required_artifact(msg: Any) -> Any:
    ref = convert.artifact_from_pb(msg)
    if ref is None:
        raise AgentError(INVALID_ARGUMENT, "artifact sha256 is required")
    return ref
