"""Test support: agents on loopback and a real digits model from the registry to deploy to them.

``digits_model`` trains ``basic_cnn`` on the embedded digits once per test
session, registers it, exports ONNX FP32 and derives FP16 and INT8-QDQ: the
same artifacts ``jetfleet train`` produces, with the registry's accuracy
figures the agent's smoke tests and jobs are judged against.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from jetfleet.agent.config import AgentConfig
from jetfleet.agent.daemon import Agent
from jetfleet.agent.identity import AgentIdentity, store_identity
from jetfleet.common import pki
from jetfleet.controller.fleet.agent_client import AgentClient
from jetfleet.controller.fleet.security import FleetPKI, init_pki
from jetfleet.controller.fleet.specs import Deployable, deployable
from jetfleet.proto.v1 import controller_pb2 as cpb


@dataclass(frozen=True)
class DigitsModel:
    fp32: Deployable
    fp16: Deployable
    int8: Deployable
    root: Path


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> DigitsModel:
    from jetfleet.controller.registry.blobs import BlobStore
    from jetfleet.controller.registry.db import make_engine, migrate
    from jetfleet.controller.registry.optimize import optimize_version
    from jetfleet.controller.registry.runs import register_run
    from jetfleet.controller.registry.store import Registry
    from jetfleet.controller.training.config import TrainConfig
    from jetfleet.controller.training.trainer import train

    root = tmp_path_factory.mktemp("digits-model")
    train(TrainConfig(epochs=8), root / "run", Console(file=io.StringIO()))
    engine = make_engine(f"sqlite:///{root / 'registry.db'}")
    migrate(engine)
    registry = Registry(engine, BlobStore(root / "blobs"))
    version = register_run(registry, root / "run", name="basic_cnn")
    optimize_version(registry, version.ref, log=lambda _msg: None)
    model = DigitsModel(*(deployable(registry, version.ref, p) for p in ("fp32", "fp16", "int8")), root=root)
    engine.dispose()
    return model


@pytest.fixture(scope="session")
def fleet_pki(tmp_path_factory: pytest.TempPathFactory) -> FleetPKI:
    """One fleet CA and manifest key for the whole test session (made as `jetfleet certs init` makes it)."""
    folder = tmp_path_factory.mktemp("pki")
    init_pki(folder)
    return FleetPKI(folder)


def provision(data_dir: Path, name: str, fleet: FleetPKI) -> AgentIdentity:
    """Give an agent the identity enrollment would (same files, same checks), without the token round trip."""
    key = pki.new_private_key()
    cert = fleet.issue_device(name, pki.make_csr(key, pki.Identity("device", name)))
    reply = cpb.EnrollResponse(
        certificate_pem=cert, ca_pem=fleet.ca_pem, manifest_public_key_pem=fleet.signing_public_pem()
    )
    return store_identity(data_dir / "identity", pki.Identity("device", name), key, reply, "provisioned by a test")


def client_for(agent: Agent, fleet: FleetPKI | None) -> AgentClient:
    """The controller's view of ``agent``: mutual TLS and signed manifests, or plaintext for --insecure."""
    address = f"127.0.0.1:{agent.port}"
    if fleet is None:
        return AgentClient(address, agent.name)
    return AgentClient(
        address,
        agent.name,
        credentials=fleet.controller_credentials(),
        signer=fleet.signer(),
        device_class=agent.device.device_class,
    )


@dataclass
class RunningAgent:
    agent: Agent
    client: AgentClient
    config: AgentConfig

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.agent.port}"


StartAgent = Callable[..., RunningAgent]


def agent_config(data_dir: Path, name: str = "jetson-01", **overrides: Any) -> AgentConfig:
    """Loopback, any free port, one inference thread (tests share 2 cores), ONNX Runtime."""
    values: dict[str, Any] = {
        "name": name,
        "listen": "127.0.0.1:0",
        "data_dir": data_dir,
        "backends": ("onnxruntime",),
        "job_threads": 1,
        "heartbeat_interval_s": 0.2,
        "max_backoff_s": 0.5,
    }
    return AgentConfig(**{**values, **overrides})


@pytest.fixture
def start_agent(tmp_path: Path, fleet_pki: FleetPKI) -> Iterator[StartAgent]:
    """``start_agent(name, **config)`` serves an enrolled agent on loopback (mutual TLS, signed manifests;
    ``insecure=True``: unenrolled, plaintext); all are stopped after the test."""
    running: list[RunningAgent] = []

    def start(name: str = "jetson-01", data_dir: Path | None = None, **overrides: Any) -> RunningAgent:
        config = agent_config(data_dir or tmp_path / name, name, **overrides)
        if not config.insecure and AgentIdentity.load(config.data_dir) is None:
            provision(config.data_dir, name, fleet_pki)
        agent = Agent(config, telemetry_interval_s=0.2)
        agent.start()
        ra = RunningAgent(agent, client_for(agent, None if config.insecure else fleet_pki), config)
        running.append(ra)
        return ra

    yield start
    for ra in running:
        ra.client.close()
        if ra.agent.server is not None:
            ra.agent.stop(grace=0.5)


def stop(ra: RunningAgent) -> None:
    """Stop an agent as a restart would (its data folder stays)."""
    ra.client.close()
    ra.agent.stop(grace=0.5)
    ra.agent.server = None


class CuttingProxy:
    """A TCP proxy on loopback that cuts the first connection after ``cut_after`` bytes from the client.

    The cut is a real one: both sockets are closed with SO_LINGER 0 (a TCP
    reset), as when a Wi-Fi link drops mid-transfer. Later connections pass
    through untouched, so a client that reconnects can resume.
    """

    def __init__(self, target_port: int, cut_after: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self.cut_after = cut_after
        self.cuts = 0
        self._armed = True
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                armed, self._armed = self._armed, False
            threading.Thread(target=self._pump, args=(client, upstream, armed), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: Any, dst: Any, cut: bool) -> None:
        import socket
        import struct

        seen = 0
        try:
            while data := src.recv(65536):
                if cut and seen + len(data) >= self.cut_after:
                    dst.sendall(data[: max(0, self.cut_after - seen)])
                    self.cuts += 1
                    for s in (src, dst):
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        s.close()
                    return
                seen += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()
