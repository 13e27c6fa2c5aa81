"""The agent's link to the controller: registration, heartbeats and reports.

The link is optional for serving: while the controller is unreachable the
agent keeps running its active models and jobs, retries with capped
exponential backoff (with jitter, so a fleet that lost its controller does
not reconnect in lock-step), and sends queued deployment records and job
results once it is back. Reports are idempotent on the controller side (by
deployment and job id), so resending after an ambiguous failure is safe.
The queue is durable (:mod:`jetfleet.agent.outbox`): reports accepted before
a restart are delivered after it.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING, Any

import grpc

from jetfleet.common.fleet import DeploymentRecord, JobResult
from jetfleet.proto import convert
from jetfleet.proto.rpc import CONTROLLER_TLS_NAME, QUICK_S, make_channel
from jetfleet.proto.v1 import controller_pb2 as cpb
from jetfleet.proto.v1 import controller_pb2_grpc

if TYPE_CHECKING:
    from jetfleet.agent.daemon import Agent
    from jetfleet.agent.outbox import Outbox

log = logging.getLogger(__name__)
# The controller refused the report itself: resending cannot help, and it must not block the queue.
PERMANENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,  # e.g. a report queued under the agent's name before it re-enrolled
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
}


class Backoff:
    """Capped exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to ``cap``, each × U(0.5, 1)."""

    def __init__(self, cap: float, base: float = 0.5, rng: random.Random | None = None) -> None:
        self.cap, self.base = cap, base
        self.attempt = 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return delay * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0


class Reporter:
    """A background thread that keeps the agent registered and its reports delivered."""

    def __init__(self, agent: Agent, address: str, outbox: Outbox) -> None:
        self.agent = agent
        self.address = address
        creds = agent.identity.credentials if agent.identity is not None else None
        self.channel = make_channel(address, credentials=creds, server_name=CONTROLLER_TLS_NAME)
        self.stub = controller_pb2_grpc.ControllerServiceStub(self.channel)
        self.connected = False
        self.interval = agent.config.heartbeat_interval_s
        self._backoff = Backoff(agent.config.max_backoff_s)
        self.outbox = outbox
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reporter-{agent.name}", daemon=True)
        self._sequence = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=QUICK_S)
        self.channel.close()
        self.outbox.close()

    def deployment(self, record: DeploymentRecord) -> None:
        self._enqueue(cpb.DeploymentReport(record=convert.record_to_pb(record)))

    def job_result(self, result: JobResult) -> None:
        self._enqueue(cpb.JobResultReport(result=convert.job_result_to_pb(result)))

    def _enqueue(self, msg: Any) -> None:
        self.outbox.append(type(msg).__name__, msg.SerializeToString())
        self._wake.set()

    def _run(self) -> None:
        registered = False
        while not self._stop.is_set():
            try:
                if not registered:
                    self._register()
                    registered = True
                registered = self._heartbeat()  # first: a long backlog must not make the agent look dead
                if registered:
                    self._flush()
                self._backoff.reset()
                delay = self.interval
            except grpc.RpcError as exc:
                registered = False
                delay = self._backoff.next()
                if self.connected:
                    log.warning("lost the controller at %s (%s); retrying", self.address, exc.code())
                self.connected = False
            except Exception:  # a bug must not silently end the link: log it and keep trying
                log.exception("reporter error; retrying")
                registered, delay = False, self._backoff.next()
            if self._wake.wait(delay):
                self._wake.clear()

    def _register(self) -> None:
        a = self.agent
        reply = self.stub.Register(
            cpb.RegisterRequest(
                name=a.name,
                address=a.address,
                device=convert.device_to_pb(a.device),
                tags=[f"{k}={v}" for k, v in sorted(a.config.tags.items())],
                active=[convert.slot_to_pb(s) for s in a.manager.active()],
                backends=a.backends,
            ),
            timeout=QUICK_S,
        )
        if reply.heartbeat_interval_s > 0:
            self.interval = reply.heartbeat_interval_s
        if not self.connected:
            log.info("registered with the controller at %s", self.address)
        self.connected = True

    def _flush(self) -> None:
        """Send queued reports oldest first; a failure leaves the rest (and that one) queued."""
        while (item := self.outbox.peek()) is not None:
            row_id, kind, payload = item
            msg = (cpb.DeploymentReport if kind == "DeploymentReport" else cpb.JobResultReport).FromString(payload)
            try:
                if isinstance(msg, cpb.DeploymentReport):
                    self.stub.ReportDeployment(msg, timeout=QUICK_S)
                else:
                    self.stub.ReportJobResult(msg, timeout=QUICK_S)
            except grpc.RpcError as exc:
                if exc.code() not in PERMANENT:
                    raise
                log.error(
                    "the controller refused a %s (%s: %s); dropped", type(msg).__name__, exc.code(), exc.details()
                )
            self.outbox.remove(row_id)

    def _heartbeat(self) -> bool:
        """One heartbeat; False when the controller asks the agent to register again."""
        self._sequence += 1
        reply = self.stub.Heartbeat(
            cpb.HeartbeatRequest(
                name=self.agent.name,
                telemetry=convert.telemetry_to_pb(self.agent.telemetry.latest()),
                active=[convert.slot_to_pb(s) for s in self.agent.manager.active()],
                sequence=self._sequence,
            ),
            timeout=QUICK_S,
        )
        return not reply.reregister

    @property
    def pending(self) -> int:
        return len(self.outbox)
