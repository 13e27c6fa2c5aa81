"""The agent's link to a real controller service: backoff while it is away, reports once it is back."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable

import grpc
from agents import DigitsModel, StartAgent

from jetfleet.agent.reporter import Backoff
from jetfleet.controller.fleet.inventory import Inventory
from jetfleet.controller.fleet.service import ControllerServicer
from jetfleet.proto.rpc import make_server
from jetfleet.proto.v1 import controller_pb2_grpc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _controller(port: int) -> tuple[grpc.Server, Inventory]:
    inventory = Inventory()
    server = make_server()
    controller_pb2_grpc.add_ControllerServiceServicer_to_server(ControllerServicer(inventory, 0.2), server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    server.start()
    return server, inventory


def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_backoff_is_capped_exponential_with_jitter() -> None:
    b = Backoff(cap=4.0, base=0.5, rng=random.Random(0))
    delays = [b.next() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 4, 4, 4, 4]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    b.reset()
    assert b.next() <= 0.5


def test_agent_registers_when_the_controller_appears_and_reports_exactly_once(
    start_agent: StartAgent, digits_model: DigitsModel
) -> None:
    port = _free_port()
    ra = start_agent(controller=f"127.0.0.1:{port}", tags={"board": "orin", "site": "lab"})
    d = digits_model.int8
    # Offline: the agent deploys and classifies anyway, and queues what it would report.
    assert ra.client.push(d.spec, d.files).ok
    offline = ra.client.run_job(test_set=d.spec.test_set, job_id="job-offline")
    assert not ra.agent.reporter.connected and ra.agent.reporter.pending == 2

    server, inventory = _controller(port)
    try:
        _until(lambda: "jetson-01" in inventory.devices and len(inventory.jobs) == 1)
        dev = inventory.devices["jetson-01"]
        assert dev.address == ra.address and dev.tags == {"board": "orin", "site": "lab"}
        assert dev.device.device_class == ra.agent.device.device_class
        assert [s.spec for s in dev.active] == [d.spec]
        assert inventory.jobs["jetson-01/job-offline"].top1 == offline.top1
        assert [r.state.name for r in inventory.deployments.values()] == ["ACTIVE"]
        _until(lambda: inventory.devices["jetson-01"].heartbeats >= 3)
        assert inventory.devices["jetson-01"].telemetry is not None
    finally:
        server.stop(0).wait()

    # The controller restarts with an empty inventory: the agent is told to register again and does.
    ra.client.run_job(test_set=d.spec.test_set, job_id="job-during-outage")
    server, inventory = _controller(port)
    try:
        _until(lambda: "jetson-01" in inventory.devices and "jetson-01/job-during-outage" in inventory.jobs)
        assert ra.agent.reporter.pending == 0 and ra.agent.reporter.connected
        assert "jetson-01/job-offline" not in inventory.jobs  # delivered before; not sent twice
    finally:
        server.stop(0).wait()
