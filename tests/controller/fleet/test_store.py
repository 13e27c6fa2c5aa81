"""Fleet store contract, on SQLite and on PostgreSQL: devices, tags, desired state, idempotent reports."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fixtures import pg_url_or_skip

from jetfleet.common.device import DeviceInfo, TelemetrySample
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import ArtifactRef, DeploymentRecord, DeploymentState, JobResult, ModelSlot, ModelSpec
from jetfleet.common.latency import LatencyStats
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.fleet.store import DeviceRecord, FleetStore, Liveness, liveness
from jetfleet.controller.registry.db import make_engine, migrate

INFO = DeviceInfo("orin", "NVIDIA Jetson AGX Orin", "jetson-agx-orin", True, "ARMv8", 12, 64000, "Ubuntu", "5.15", "3.10", "0.1.0", l4t_release="R36.4.0")  # fmt: skip
SPEC = ModelSpec(
    "basic_cnn", 1, "int8", ArtifactRef("ab" * 32, 10), PreprocessSpec((8, 8), 1, (0.3,), (0.4,), ("a", "b"))
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else pg_url_or_skip()
    engine = make_engine(url)  # pg_url_or_skip empties the shared test database first
    migrate(engine)
    yield FleetStore(engine)
    engine.dispose()


def _device(name: str = "jetson-01", **kw: object) -> DeviceRecord:
    return DeviceRecord(name, "10.0.0.5:50051", INFO, {"board": "orin"}, ("tensorrt", "onnxruntime"), **kw)  # type: ignore[arg-type]


def test_register_heartbeat_and_liveness(store: FleetStore) -> None:
    store.register(_device(), now=1000.0)
    slot = ModelSlot(SPEC, "tensorrt", "f" * 32, 999.0, 0.97)
    sample = TelemetrySample(
        1005.0, "tegrastats", ram_used_mb=3000.0, temperatures_c={"gpu": 48.5}, power_mw={"VDD_IN": 5200.0}
    )
    assert store.heartbeat("jetson-01", sample, (slot,), now=1005.0)
    assert not store.heartbeat("unknown", sample, (), now=1005.0)
    dev = store.device("jetson-01")
    assert dev.device == INFO and dev.active == (slot,) and dev.telemetry == sample and dev.heartbeats == 1
    assert dev.serves("basic_cnn") == slot and dev.serves("other") is None
    assert dev.liveness(1010.0) == Liveness.ONLINE
    assert dev.liveness(1040.0) == Liveness.STALE and dev.liveness(1200.0) == Liveness.OFFLINE
    assert liveness(0.0, 5.0, stale_after=5.0) == Liveness.STALE


def test_operator_tags_survive_reregistration_and_win(store: FleetStore) -> None:
    store.register(_device(), now=1.0)
    store.set_tags("jetson-01", {"site": "lab", "board": "orin-nx"})
    store.register(_device(), now=2.0)  # the agent restarts and registers again
    assert store.device("jetson-01").tags == {"board": "orin-nx", "site": "lab"}
    store.set_tags("jetson-01", {}, remove=("board",))
    assert store.device("jetson-01").tags == {"board": "orin", "site": "lab"}
    with pytest.raises(JetfleetError, match="agent's own config"):
        store.set_tags("jetson-01", {}, remove=("board",))
    with pytest.raises(JetfleetError, match="no device named"):
        store.set_tags("ghost", {"a": "b"})


def test_desired_state_is_per_device_and_model(store: FleetStore) -> None:
    store.register(_device("jetson-01"), now=1.0)
    store.register(_device("jetson-02"), now=1.0)
    store.set_desired("jetson-01", SPEC, "rollout-1", now=2.0)
    store.set_desired("jetson-02", SPEC, "rollout-1", now=2.0)
    newer = replace(SPEC, version=2)
    store.set_desired("jetson-01", newer, "rollout-2", now=3.0)
    assert [(d.device, d.spec.version, d.rollout_id) for d in store.desired()] == [
        ("jetson-01", 2, "rollout-2"),
        ("jetson-02", 1, "rollout-1"),
    ]
    store.clear_desired("jetson-02", "basic_cnn")
    assert [d.device for d in store.desired()] == ["jetson-01"]
    store.remove_device("jetson-01")  # its desired state goes with it
    assert store.desired() == [] and [d.name for d in store.devices()] == ["jetson-02"]
    with pytest.raises(JetfleetError):
        store.set_desired("jetson-01", SPEC, "r", now=4.0)


def test_reports_are_idempotent(store: FleetStore) -> None:
    rec = DeploymentRecord("d1", "jetson-01", SPEC, DeploymentState.RUNNING, 1.0)
    assert store.add_deployment(rec, now=1.0)
    assert not store.add_deployment(rec, now=2.0)  # the same report, retried
    done = rec.finish(DeploymentState.ACTIVE, 3.0, code="OK")
    assert store.add_deployment(done, now=3.0)  # the final state replaces the running one
    assert store.deployments() == [done]
    result = JobResult("j1", "jetson-01", ModelSlot(SPEC, "onnxruntime", "f" * 32, 1.0), 10, 8, 1, 0, LatencyStats.from_ms([1.0, 2.0]), 50.0, 0.2, 1.0, top1=0.9)  # fmt: skip
    assert store.add_job(result, now=5.0) and not store.add_job(result, now=6.0)
    assert store.jobs() == [result] and store.jobs("j1") == [result] and store.jobs("j2") == []
