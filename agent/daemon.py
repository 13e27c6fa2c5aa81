"""One agent process: the store, the models, telemetry, the gRPC server and the controller link.

:class:`Agent` wires the parts together and is what ``jetfleet-agent serve``
runs; tests start several in one process on loopback (each with its own data
folder), which is also how ``benchmarks/`` drives them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc

from jetfleet.agent.activation import ModelManager
from jetfleet.agent.config import AgentConfig
from jetfleet.agent.engines.base import Backend
from jetfleet.agent.engines.choose import choose_backend, usable_backends
from jetfleet.agent.errors import INVALID_ARGUMENT, AgentError
from jetfleet.agent.identity import AgentIdentity
from jetfleet.agent.inputs import JobInput, open_input
from jetfleet.agent.jobs import JobParams, run_job
from jetfleet.agent.outbox import Outbox
from jetfleet.agent.reporter import Reporter
from jetfleet.agent.server import AgentServicer
from jetfleet.agent.store import ArtifactStore
from jetfleet.agent.telemetry import Telemetry, detect_device
from jetfleet.common.device import DeviceInfo, TelemetrySample
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import DeploymentRecord, JobResult
from jetfleet.common.version import __version__
from jetfleet.proto import convert
from jetfleet.proto.rpc import add_health, bind, make_server
from jetfleet.proto.v1 import agent_pb2 as apb
from jetfleet.proto.v1 import agent_pb2_grpc

log = logging.getLogger(__name__)
STAGING_EXPIRY_S = 24 * 3600  # a partial upload nobody resumed within a day is abandoned


class Agent:
    """A device agent with its own data folder; :meth:`start` serves it, :meth:`stop` ends it."""

    def __init__(
        self,
        config: AgentConfig,
        device: DeviceInfo | None = None,
        backend: Backend | None = None,
        telemetry_interval_s: float = 1.0,
    ) -> None:
        self.config = config
        self.name = config.name
        self.data_dir = Path(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fh = _lock_data_dir(self.data_dir)
        self.device = device or detect_device(__version__)
        self.backends = usable_backends(config.backends)
        self.backend = backend or choose_backend(config, self.device, self.data_dir)
        self.store = ArtifactStore(self.data_dir / "artifacts", config.max_store_bytes, config.min_free_bytes)
        self.manager = ModelManager(
            config.name, self.data_dir, self.store, self.backend, self.device, config.smoke_margin
        )
        self.identity = _identity(config, self.data_dir)
        self.telemetry = Telemetry.start(interval_s=telemetry_interval_s)
        self.started_at = time.time()
        self.reporter: Reporter | None = None
        self.server: grpc.Server | None = None
        self.port = 0

    def start(self) -> int:
        """Restore the active models, serve, and connect to the controller; returns the bound port."""
        self.store.clean_staging(STAGING_EXPIRY_S)
        self.manager.restore()
        self.server = make_server(self.config.max_message_bytes)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(self), self.server)
        add_health(self.server, ["jetfleet.v1.AgentService"])
        creds = self.identity.credentials if self.identity is not None else None
        self.port = bind(self.server, self.config.listen, creds)
        if self.port == 0:
            raise JetfleetError(f"cannot listen on {self.config.listen}", "is the port in use?")
        self.server.start()
        log.info("agent %s serving on port %d (%s backend)", self.name, self.port, self.backend.name)
        if self.config.controller:
            self.reporter = Reporter(self, self.config.controller, Outbox(self.data_dir / "outbox.db"))
            self.reporter.start()
        return self.port

    def stop(self, grace: float = 2.0) -> None:
        if self.server is not None:  # first: calls finishing in the grace period may still queue reports
            self.server.stop(grace).wait()
        if self.reporter is not None:
            self.reporter.stop()
        self.telemetry.close()
        self._lock_fh.close()

    def wait(self) -> None:
        if self.server is not None:
            self.server.wait_for_termination()

    @property
    def address(self) -> str:
        """What the controller should dial: the configured advertise address, or this host and the bound port."""
        if self.config.advertise:
            return self.config.advertise
        host = self.config.listen.rsplit(":", 1)[0]
        host = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
        return f"{host}:{self.port}"

    @property
    def manifest_key(self) -> object | None:
        """The pinned manifest key; None only for an unenrolled agent started with ``insecure``."""
        return self.identity.manifest_key if self.identity is not None else None

    # -- operations called by the servicer --------------------------------
    def run_job(self, request: apb.JobRequest, progress: Callable[[str, int, int], None]) -> JobResult:
        params = JobParams(
            batch_size=request.batch_size or 32,
            warmup=request.warmup,
            iterations=request.iterations,
            return_predictions=request.return_predictions,
        )
        _check_job_params(params)
        job_id = request.job_id or uuid.uuid4().hex
        started = time.time()
        with self.manager.use(request.model) as loaded:
            spec = loaded.slot.spec
            progress("load", 0, 0)
            job_input: JobInput = open_input(request, spec, self.store, params.batch_size, max(0, request.limit))
            measured = run_job(
                loaded.runner,
                job_input.batches,
                job_input.total,
                loaded.runner.num_classes or len(spec.preprocess.labels),
                spec.preprocess.labels,
                params,
                progress,
            )
            slot = loaded.slot
        result = JobResult(
            job_id=job_id,
            agent=self.name,
            model=slot,
            batch_size=params.batch_size,
            warmup=params.warmup,
            iterations=params.iterations,
            started_at=started,
            telemetry=self._job_telemetry(started),
            **measured.__dict__,
        )
        if self.reporter is not None:
            self.reporter.job_result(result)
        return result

    def _job_telemetry(self, started: float) -> tuple[TelemetrySample, ...]:
        """Samples taken during the job; a job shorter than the sampling interval gets the newest one."""
        return tuple(self.telemetry.since(started)) or (self.telemetry.latest(),)

    def report_deployment(self, record: DeploymentRecord) -> None:
        if self.reporter is not None:
            self.reporter.deployment(record)

    def status_pb(self, history: int) -> apb.AgentStatus:
        return apb.AgentStatus(
            name=self.name,
            agent_version=__version__,
            device=convert.device_to_pb(self.device),
            telemetry=convert.telemetry_to_pb(self.telemetry.latest()),
            active=[convert.slot_to_pb(s) for s in self.manager.active()],
            history=[convert.record_to_pb(r) for r in self.manager.history(history)],
            backends=self.backends,
            artifacts=[
                apb.StoredArtifact(artifact=convert.artifact_to_pb(ref), stored_at=t) for ref, t in self.store.list()
            ],
            store_bytes=self.store.usage(),
            disk_free_bytes=self.store.disk_free(),
            tags=[f"{k}={v}" for k, v in sorted(self.config.tags.items())],
            controller_connected=self.reporter is not None and self.reporter.connected,
            started_at=self.started_at,
        )


MAX_BATCH = 1024  # decoded images held at once; a Nano has 4 GB shared with the GPU
MAX_ITERATIONS = 1_000_000  # a benchmark, not a burn-in: bounded so a typo cannot occupy a device for days
MAX_WARMUP = 10_000


def _check_job_params(params: JobParams) -> None:
    for name, value, low, high in (
        ("batch size", params.batch_size, 1, MAX_BATCH),
        ("iterations", params.iterations, 0, MAX_ITERATIONS),
        ("warmup", params.warmup, 0, MAX_WARMUP),
    ):
        if not low <= value <= high:
            raise AgentError(INVALID_ARGUMENT, f"{name} must be between {low} and {high}, got {value}")


def _identity(config: AgentConfig, data_dir: Path) -> AgentIdentity | None:
    """The enrolled identity; without one, only ``insecure`` may serve (plaintext, unsigned manifests)."""
    identity = AgentIdentity.load(data_dir)
    if identity is None:
        if not config.insecure:
            raise JetfleetError(
                f"agent {config.name} is not enrolled (no identity in {data_dir})",
                "run `jetfleet-agent enroll` with a token from `jetfleet devices enroll`, or pass --insecure",
            )
        log.warning("agent %s runs WITHOUT TLS and accepts unsigned manifests (--insecure)", config.name)
        return None
    if identity.name != config.name:
        raise JetfleetError(
            f"this agent is enrolled as {identity.name!r}, not {config.name!r}",
            f"use --name {identity.name}, or enroll again under the new name",
        )
    return identity


def _lock_data_dir(data_dir: Path) -> object:
    """Hold an exclusive lock on the data folder: two agents on one store would corrupt each other."""
    fh = open(data_dir / "agent.lock", "a+")  # noqa: SIM115 - held for the agent's lifetime
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise JetfleetError(f"another agent is using {data_dir}", "stop it or choose another --data-dir") from None
    fh.truncate(0)
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh
